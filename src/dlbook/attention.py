"""Attention from its equations: scaled dot-product attention, multi-head attention, sinusoidal
positions, a pre-norm transformer block and a small transformer, and the RNN encoder-decoder
whose fixed-size bottleneck attention removes.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + mask) V          (Vaswani et al., 2017)

Each query row asks "which keys look like me?", the softmax turns the similarities into weights
that sum to one, and the answer is the weighted mean of the values: a soft, differentiable
dictionary lookup. ``tests/test_attention.py`` checks :func:`scaled_dot_product_attention`
against ``F.scaled_dot_product_attention`` (with and without a causal mask) and
:class:`MultiHeadAttention` against ``nn.MultiheadAttention`` with the same weights.

Shapes follow nanoGPT: B batch, T (or Tq, Tk) sequence length, C channels (``n_embd``),
nh heads, hs = C / nh the size of one head.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(T: int, device=None) -> torch.Tensor:
    """``(T, T)`` booleans, True where query ``i`` may look at key ``j``: ``j <= i`` (the past)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _allowed_keys(q, k, v, mask, causal):
    """Checks q, k, v and mask; the (..., Tq, Tk) booleans where a query may look (or None)."""
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError(f"q, k and v need a sequence axis and a feature axis, (..., T, d): got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q (..., Tq, d), k (..., Tk, d) and v (..., Tk, dv) disagree: "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores_shape = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (Tq, Tk)
    allowed = causal_mask(max(Tq, Tk), q.device)[:Tq, :Tk] if causal else None
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("mask holds booleans: True where a query may attend to a key")
        try:
            fits = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit the scores "
                             f"{tuple(scores_shape)} (..., Tq, Tk): it must broadcast to them "
                             f"without enlarging them, e.g. (Tq, Tk), or (B, 1, 1, Tk) to mask "
                             f"padded keys of a (B, nh, Tq, Tk) batch")
        allowed = mask if allowed is None else allowed & mask
    return allowed


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    mask: torch.Tensor | None = None, causal: bool = False,
):
    """softmax(q k^T / sqrt(d)) v, and the weights. q (..., Tq, d),
    k (..., Tk, d), v (..., Tk, dv); mask: booleans, True where a query may
    attend (as torch's); causal: each query sees only keys at or before its
    position."""
    allowed = _allowed_keys(q, k, v, mask, causal)  # checks the inputs too
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if allowed is None:
        weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk), rows sum to 1
    else:  # a query allowed no key gets weights 0 (as torch's), not NaN
        empty = ~allowed.any(-1, keepdim=True)  # (..., Tq, 1)
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=-1)
        weights = weights.masked_fill(empty, 0.0)
    return weights @ v, weights  # (..., Tq, dv), (..., Tq, Tk)


class KVCache:
    """The keys and values one attention layer has computed so far, ``(B, nh, T, hs)`` each.

    Generating token t+1 needs the keys and values of tokens 0..t, and those of 0..t-1 were
    already computed for token t: keep them, and each new token costs one row of queries, keys
    and values instead of a pass over the whole context (chapter 14).
    """

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """Add the new tokens' keys and values; return all of them, ``(B, nh, T_all, hs)``."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)  # (B, nh, T_past + T_new, hs)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class GrowingKVCache(KVCache):
    """A :class:`KVCache` that writes the new keys and values into buffers with room to spare
    (doubled when full) instead of concatenating: the same keys and values, but a step no longer
    copies the whole cache, which dominates generating for thousands of sequences at once
    (chapter 18's preference data). ``k`` and ``v`` are views of the filled part."""

    def __init__(self):
        super().__init__()
        self._k_buf: torch.Tensor | None = None
        self._v_buf: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor):
        """Add the new tokens' keys and values; return all of them, ``(B, nh, T_all, hs)``."""
        past, new = len(self), k.shape[-2]
        if self._k_buf is None or past + new > self._k_buf.shape[-2]:
            room = 2 * (past + new)  # (B, nh, room, hs) each
            k_buf = k.new_empty(k.shape[:-2] + (room, k.shape[-1]))
            v_buf = v.new_empty(v.shape[:-2] + (room, v.shape[-1]))
            if past:
                k_buf[..., :past, :] = self.k
                v_buf[..., :past, :] = self.v
            self._k_buf, self._v_buf = k_buf, v_buf
        self._k_buf[..., past:past + new, :] = k
        self._v_buf[..., past:past + new, :] = v
        self.k = self._k_buf[..., :past + new, :]  # (B, nh, T_past + T_new, hs)
        self.v = self._v_buf[..., :past + new, :]
        if not past:  # the prompt's own keys, as KVCache returns them: the same rounding
            return k, v
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """``n_head`` attentions side by side, each on its own ``C / n_head``-wide projection.

    One linear map ``in_proj`` (C -> 3C) makes the queries, keys and values of all heads at once
    (``nn.MultiheadAttention`` stores the same matrix as ``in_proj_weight``); the heads' outputs
    are concatenated and mixed by ``out_proj``. Each head can look for something different: one
    for the previous token, one for a matching bracket, ...
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.n_embd, self.n_head = n_embd, n_head
        self.in_proj = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.out_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        hs = C // self.n_head  # one head's width
        return x.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)

    def _check_inputs(self, query, key, value) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != 3 or t.shape[-1] != self.n_embd:
                one = " (one sequence: pass x[None])" if t.ndim == 2 else ""
                raise ValueError(f"{name} must be (B, T, {self.n_embd}), got "
                                 f"{tuple(t.shape)}{one}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)} disagree on B (or key and value on T)")

    @staticmethod
    def _extend_with_cache(cache, k, v, mask, causal, Tq):
        k, v = cache.append(k, v)  # (B, nh, T_past + Tk, hs)
        if causal:  # query i is token T_past + i: it sees keys 0 .. T_past + i
            Tk = k.shape[-2]
            past = causal_mask(Tk, k.device)[Tk - Tq:]  # (Tq, Tk)
            mask = past if mask is None else mask & past
            causal = False
        return k, v, mask, causal

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, causal: bool = False,
                cache: KVCache | None = None):
        """Self-attention ``mha(x)``, or cross-attention ``mha(x, m, m)``.

        query (B, Tq, C), key and value (B, Tk, C). ``mask``: booleans
        broadcastable to (B, nh, Tq, Tk), True where attending is allowed.
        ``cache``: a :class:`KVCache` of the earlier tokens; the new keys and
        values are appended to it and the queries (the newest Tq tokens)
        attend to all of them. Returns ``(out (B, Tq, C), weights
        (B, nh, Tq, Tk))``.
        """
        key = query if key is None else key  # self-attention: x attends to x
        value = key if value is None else value
        self._check_inputs(query, key, value)
        B, Tq, C = query.shape
        w_q, w_k, w_v = self.in_proj.weight.chunk(3)  # 3 x (C, C)
        bias = self.in_proj.bias
        b_q, b_k, b_v = (None,) * 3 if bias is None else bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))  # (B, nh, Tq, hs)
        k = self._heads(F.linear(key, w_k, b_k))  # (B, nh, Tk, hs)
        v = self._heads(F.linear(value, w_v, b_v))  # (B, nh, Tk, hs)
        if cache is not None:  # generation: new queries see the cached tokens
            k, v, mask, causal = self._extend_with_cache(
                cache, k, v, mask, causal, Tq)
        y, weights = scaled_dot_product_attention(
            q, k, v, mask, causal)  # (B, nh, Tq, hs), (B, nh, Tq, Tk)
        y = y.transpose(1, 2).reshape(B, Tq, C)  # (B, Tq, C): heads side by side
        return self.dropout(self.out_proj(y)), weights  # (B, Tq, C), weights

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """The same attention as a torch ``nn.MultiheadAttention`` (weights copied across)."""
        if not isinstance(module, nn.MultiheadAttention) or not module._qkv_same_embed_dim:
            raise TypeError("from_torch takes an nn.MultiheadAttention whose keys and values "
                            "have the query's width")
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("from_torch cannot copy add_bias_kv=True or add_zero_attn=True "
                             "(extra key/value rows this MultiHeadAttention does not have)")
        _no_dropout(module.dropout, "the nn.MultiheadAttention")
        ours = cls(module.embed_dim, module.num_heads, bias=module.in_proj_bias is not None)
        ours.to(module.in_proj_weight.dtype)  # float64 stays float64
        with torch.no_grad():
            ours.in_proj.weight.copy_(module.in_proj_weight)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if module.in_proj_bias is not None:
                ours.in_proj.bias.copy_(module.in_proj_bias)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        return ours.to(module.in_proj_weight.device)


def _no_dropout(p: float, what: str) -> None:
    if p > 0:
        raise ValueError(f"{what} has dropout {p}: build it with dropout=0.0 (the copy would "
                         "have none, so training-mode outputs would differ)")


def _check_torch_layer(layer: nn.Module, what: str) -> None:
    """Refuse a torch encoder/decoder layer whose function our blocks cannot reproduce."""
    act = layer.activation
    if not (act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none")):
        raise ValueError(f"{what} uses activation {act}: ours is GELU, so build it with "
                         "activation=\"gelu\"")
    if layer.linear1.out_features != 4 * layer.self_attn.embed_dim:
        raise ValueError("the block's MLP is 4 * n_embd wide: use dim_feedforward=4 * d_model")
    for name, m in layer.named_modules():
        if isinstance(m, nn.Dropout):
            _no_dropout(m.p, f"{what} ({name})")


def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """Vaswani et al.'s position codes, ``(T, d)``: for position p and pair i,
    ``PE[p, 2i] = sin(p / base^(2i/d))`` and ``PE[p, 2i+1] = cos(p / base^(2i/d))``.

    Each pair of columns is a clock turning at its own speed, from once every 2*pi positions to
    once every ``2*pi*base``; a shift by k positions is the same rotation of every pair wherever
    it starts, so "k tokens back" is a linear function of the code.
    """
    if d % 2:
        raise ValueError(f"d must be even (sine and cosine pairs), got {d}")
    position = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # (d/2,)
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(position * freq)  # (T, d/2)
    pe[:, 1::2] = torch.cos(position * freq)  # (T, d/2)
    return pe  # (T, d)


class TransformerBlock(nn.Module):
    """A pre-norm transformer block (as in GPT-2 and nanoGPT):

        x = x + attention(LayerNorm(x))      tokens exchange information
        x = x + MLP(LayerNorm(x))            each token thinks on its own

    The residual stream ``x`` passes through untouched and each sub-layer adds to it, so the
    gradient has a direct path to every layer; normalising the sub-layers' inputs (rather than
    the stream, as the 2017 post-norm design did) makes deep stacks train without warm-up
    tricks.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout=dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_weights: bool = False, cache: KVCache | None = None):
        a, weights = self.attn(self.ln_1(x), mask=mask, causal=self.causal,
                               cache=cache)  # (B, T, C), (B, nh, T, T_all)
        x = x + a  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return (x, weights) if return_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer, causal: bool = True) -> "TransformerBlock":
        """The same block as a torch ``nn.TransformerEncoderLayer`` built with ``norm_first=True,
        activation="gelu", batch_first=True`` (its weights copied across)."""
        if not isinstance(layer, nn.TransformerEncoderLayer) or not layer.norm_first:
            raise TypeError("from_torch takes an nn.TransformerEncoderLayer with norm_first=True "
                            "(the pre-norm block)")
        _check_torch_layer(layer, "the nn.TransformerEncoderLayer")
        n_embd, n_head = layer.self_attn.embed_dim, layer.self_attn.num_heads
        block = cls(n_embd, n_head, causal=causal).to(layer.linear1.weight.dtype)
        with torch.no_grad():
            block.attn.load_state_dict(MultiHeadAttention.from_torch(layer.self_attn).state_dict())
            block.ln_1.load_state_dict(layer.norm1.state_dict())
            block.ln_2.load_state_dict(layer.norm2.state_dict())
            block.mlp[0].load_state_dict(layer.linear1.state_dict())
            block.mlp[2].load_state_dict(layer.linear2.state_dict())
        return block.to(layer.linear1.weight.device)


@dataclass
class TransformerConfig:
    """A small transformer over token ids (positions: learned, or sinusoidal and fixed)."""

    vocab_size: int = 16
    block_size: int = 32  # the longest sequence it reads
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    causal: bool = True  # False: every position sees the whole sequence (an encoder)
    positions: str = "learned"  # or "sinusoidal"

    @classmethod
    def tiny(cls, vocab_size: int = 16, block_size: int = 32) -> "TransformerConfig":
        return cls(vocab_size, block_size, n_layer=1, n_head=1, n_embd=32)

    @classmethod
    def small(cls, vocab_size: int = 16, block_size: int = 32) -> "TransformerConfig":
        return cls(vocab_size, block_size, n_layer=2, n_head=4, n_embd=64)


class Transformer(nn.Module):
    """Token and position embeddings, a stack of :class:`TransformerBlock`, a final LayerNorm and
    a linear head: ``forward(idx, targets=None) -> (logits, loss)`` (makemore's interface; a
    target of -1 is not scored)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if config.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions is 'learned' or 'sinusoidal', got {config.positions!r}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.pos_emb = nn.Parameter(0.02 * torch.randn(config.block_size, config.n_embd))
        else:
            self.register_buffer("pos_emb", sinusoidal_positions(config.block_size, config.n_embd))
        self.blocks = nn.ModuleList(
            TransformerBlock(config.n_embd, config.n_head, config.dropout, config.causal)
            for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_weights: bool = False):
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens, longer than block_size "
                             f"{self.config.block_size}")
        x = self.tok_emb(idx) + self.pos_emb[:T]  # (B, T, C)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_weights=True)  # (B, T, C), weights
            maps.append(weights)  # (B, nh, T, T)
        logits = self.head(self.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                   ignore_index=-1)
        if return_weights:  # maps: (B, n_layer, nh, T, T)
            return logits, loss, torch.stack(maps, dim=1)
        return logits, loss


REVERSE_SEP = 10  # the separator token of the digit tasks; tokens 0-9 are the digits


def _digit_lm_task(digits: torch.Tensor, answer: torch.Tensor):
    n, n_digits = digits.shape
    seq = torch.cat([digits, torch.full((n, 1), REVERSE_SEP), answer], 1)  # (n, 2D+1)
    idx, targets = seq[:, :-1], seq[:, 1:].clone()  # (n, 2D) each
    targets[:, :n_digits] = -1  # position D-1 would predict the separator: not scored either
    return idx, targets, digits


def reversal_lm_task(n: int, seed: int, n_digits: int = 8):
    """``n`` strings of ``n_digits`` random digits for a decoder-only transformer to reverse.

    Each sequence is the digits, the separator ``REVERSE_SEP`` and the digits reversed; the model
    reads ``idx`` (all but the last token) and is scored only where it predicts an answer digit
    (``targets`` -1 elsewhere: the digits and the separator are given, not predicted). Returns
    ``(idx (n, 2 * n_digits), targets (n, 2 * n_digits), digits (n, n_digits))``.
    """
    gen = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, 10, (n, n_digits), generator=gen)  # (n, D)
    return _digit_lm_task(digits, digits.flip(1))


def sorting_lm_task(n: int, seed: int, n_digits: int = 8):
    """As :func:`reversal_lm_task`, but the answer is the digits sorted in ascending order.

    Unlike reversal, where answer position t always copies input position D-1-t, which input
    digit an answer position needs depends on the digits themselves: a lookup by content.
    """
    gen = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, 10, (n, n_digits), generator=gen)  # (n, D)
    return _digit_lm_task(digits, digits.sort(1).values)


@torch.no_grad()
def exact_answer_accuracy(model: nn.Module, task) -> float:
    """The fraction of ``task``'s strings (from :func:`reversal_lm_task` or
    :func:`sorting_lm_task`) whose answer ``model`` writes exactly, every digit right, decoding
    greedily (each step feeds back its most likely token)."""
    idx, targets, digits = task
    n_digits = digits.shape[1]
    device = next(model.parameters()).device
    model.eval()
    idx = idx[:, :n_digits + 1].to(device)  # (n, D + 1): the digits and the separator
    for _ in range(n_digits):
        logits, _ = model(idx)
        idx = torch.cat([idx, logits[:, -1:].argmax(-1)], dim=1)  # greedy
    answer = targets[:, n_digits:]  # (n, D)
    return (idx[:, n_digits + 1:].cpu() == answer).all(1).float().mean().item()


class DigitsMLP(nn.Module):
    """The simple baseline for the digit tasks: an MLP that reads all ``n_digits`` input digits
    at once (one-hot, flattened) and writes all answer digits at once, with no attention and no
    decoding loop. Reads the same ``(idx, targets)`` as the transformer (it uses only the first
    ``n_digits`` tokens of ``idx`` and the answer part of ``targets``); ``forward`` returns
    ``(logits (B, n_digits, 10), loss)``, and :func:`exact_answer_accuracy` scores it too."""

    def __init__(self, n_digits: int = 8, hidden: int = 256):
        super().__init__()
        self.n_digits = n_digits
        self.net = nn.Sequential(nn.Linear(10 * n_digits, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 10 * n_digits))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        D = self.n_digits
        if idx.shape[1] < D or (idx[:, :D] > 9).any():
            raise ValueError(f"idx must start with {D} digits 0-9, got shape {tuple(idx.shape)}")
        x = F.one_hot(idx[:, :D], 10).float().flatten(1)  # (B, 10 D)
        logits = self.net(x).view(-1, D, 10)  # (B, D, 10): every answer digit at once
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets[:, -D:].flatten())
        if idx.shape[1] > D:  # decoding: the next answer digit after those already written
            written = idx.shape[1] - D - 1
            logits = torch.cat([logits.new_zeros(len(idx), idx.shape[1] - 1, 10),
                                logits[:, written:written + 1]], 1)
        return logits, loss


class DigitsLinear(DigitsMLP):
    """The simplest baseline for the digit tasks: one linear map from the ``n_digits`` one-hot
    input digits to the ``n_digits`` answer distributions (a softmax per answer digit), no hidden
    layer. A fixed permutation such as reversal is exactly such a map; sorting is not."""

    def __init__(self, n_digits: int = 8):
        super().__init__(n_digits, hidden=1)
        self.net = nn.Linear(10 * n_digits, 10 * n_digits)


class EncoderDecoder(nn.Module):
    """An RNN encoder-decoder whose decoder sees the source either through the encoder's final
    state alone or, with ``attention=True``, also through attention over every encoder state.

    The encoder LSTM reads the source ``idx`` (B, S), left-padded with ``pad`` (id 0) so that it
    ends on a real token. Its final state, both ``h`` and the cell ``c`` (``2 * hidden``
    numbers), is the **context**: the decoder LSTM starts from it, and without attention it is
    all the decoder ever learns about the source, however long the source is (the bottleneck of
    Sutskever et al., 2014, and Cho et al., 2014). The decoder is recurrent; its input at output
    step t is a learned position vector ``p_t`` (not the previous output token: training and
    testing then run the same computation, with no teacher forcing). With attention, each
    decoder state ``s_t`` is also a query: ``W_q s_t`` against keys and values that are the
    encoder states themselves, with no learned vector per source position: where to look must be
    read from the states (Bahdanau et al., 2015, in the dot-product form of Luong et al., 2015).
    With left padding, output t always needs padded position S - 1 - t, whatever the length;
    right padding would make that position depend on the length. Output t is
    ``head(tanh(W [s_t; looked_up_t]))``. ``forward(idx, targets=None) -> (logits, loss)`` with
    ``targets`` (B, out_len), -1 where not scored; sources at most ``out_len`` long.
    """

    def __init__(self, vocab_size: int, hidden: int = 64, attention: bool = True,
                 out_len: int = 16, pad: int = 0):
        super().__init__()
        self.vocab_size, self.hidden, self.use_attention = vocab_size, hidden, attention
        self.out_len, self.pad = out_len, pad
        self.embed = nn.Embedding(vocab_size, hidden)
        self.encoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.positions = nn.Parameter(0.1 * torch.randn(out_len, hidden))  # (L, H) one per output
        if attention:
            self.query = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear((2 if attention else 1) * hidden, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_weights: bool = False):
        B, S = idx.shape
        if S > self.out_len:
            raise ValueError(f"sources of {S} tokens, longer than out_len "
                             f"{self.out_len}")
        # memory (B, S, H); context: the final (h, c), each (1, B, H)
        memory, context = self.encoder(self.embed(idx))
        p = self.positions.expand(B, -1, -1)  # (B, L, H)
        states, _ = self.decoder(p, context)  # (B, L, H): starts from h and c
        parts, weights = [states], None
        if self.use_attention:
            mask = (idx != self.pad)[:, None, :]  # (B, 1, S): real tokens only
            looked_up, weights = scaled_dot_product_attention(
                self.query(states), memory, memory, mask)  # (B, L, H), (B, L, S)
            parts.append(looked_up)
        out = torch.tanh(self.combine(torch.cat(parts, dim=-1)))  # (B, L, H)
        logits = self.head(out)  # (B, L, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                   ignore_index=-1)
        return (logits, loss, weights) if return_weights else (logits, loss)


def digit_reversal(n: int, seed: int, max_len: int = 10, pad: int = 0):
    """``n`` strings of 2 to ``max_len`` random digits and their reversals, for an encoder-decoder.

    Digits 0..9 are token ids 2..11 (0 is padding). Returns ``(src, tgt, lengths)``: ``src``
    (n, max_len) left-padded, ``tgt`` (n, max_len) the reversed digits then -1 (not scored),
    ``lengths`` (n,).
    """
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len + 1, (n,), generator=gen)  # (n,)
    digits = torch.randint(2, 12, (n, max_len), generator=gen)  # (n, max_len)
    real = torch.arange(max_len) >= max_len - lengths[:, None]  # left padding
    src = torch.where(real, digits, pad)  # (n, max_len)
    first = torch.arange(max_len) < lengths[:, None]
    tgt = torch.where(first, src.flip(1), -1)  # reversed; -1 is not scored
    return src, tgt, lengths


def accuracy_by_length(model: nn.Module, src: torch.Tensor, tgt: torch.Tensor,
                       lengths: torch.Tensor) -> list[float]:
    """The fraction of output digits right, for each source length 2, 3, ..., max."""
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = model(src.to(device))[0].argmax(-1).cpu()  # (n, L)
    correct = (predicted == tgt).float()
    return [correct[lengths == n][:, :n].mean().item()
            for n in range(2, int(lengths.max()) + 1)]


def fit_curve(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], *, steps: int,
              record_at: list[int], evaluate, lr: float, batch_size: int = 64,
              grad_clip: float | None = 1.0, seed: int = 0, device=None) -> list[float]:
    """Adam on random batches of ``train = (inputs, targets)`` for ``steps`` steps, calling
    ``evaluate(model)`` (in eval mode, without gradients) after each step in ``record_at``.

    For a language-model-style ``model(x, y) -> (logits, loss)``. Returns the list of what
    ``evaluate`` returned: a learning curve against steps, reproducible from ``seed``.
    """
    if not record_at or max(record_at) > steps or min(record_at) < 1:
        raise ValueError(f"record_at must name steps in 1..{steps}, got {record_at}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = device or next(model.parameters()).device
    model.to(device)
    x, y = train
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    curve, wanted = [], set(record_at)
    for step in range(1, steps + 1):
        model.train()
        batch = torch.randint(0, len(x), (batch_size,), generator=gen)
        _, loss = model(x[batch].to(device), y[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if step in wanted:
            model.eval()
            with torch.no_grad():
                curve.append(evaluate(model))
    model.eval()
    return curve


def layer_norm(x: torch.Tensor, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Layer normalisation (Ba, Kiros and Hinton, 2016) over the last axis of
    ``x`` (..., C):

        LN(x) = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias

    mean and (biased) variance over the C features of each token on its own,
    so a token's output never depends on the other tokens or examples in the
    batch (batch normalisation averages one feature over the batch instead),
    and training and inference compute the same function.
    """
    mean = x.mean(-1, keepdim=True)  # (..., 1)
    var = x.var(-1, unbiased=False, keepdim=True)  # (..., 1)
    y = (x - mean) / torch.sqrt(var + eps)  # (..., C): mean 0, variance 1
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def gelu(x: torch.Tensor) -> torch.Tensor:
    """The Gaussian error linear unit (Hendrycks and Gimpel, 2016): ``x * Phi(x)``, with Phi the
    standard normal CDF. A smooth ReLU: it lets a little of a negative input through."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class DecoderBlock(nn.Module):
    """A pre-norm decoder block of the encoder-decoder transformer (Vaswani et al., 2017):

        x = x + self_attention(LN(x), causal)        the output so far, never the future
        x = x + cross_attention(LN(x), memory)       queries from x; keys, values: the encoder
        x = x + MLP(LN(x))

    ``memory`` (B, S, C) is the encoder's output; ``memory_mask`` booleans broadcastable to
    (B, nh, T, S), True where a query may look at a source position (e.g. not at padding).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        self.ln_1, self.ln_2, self.ln_3 = (nn.LayerNorm(n_embd) for _ in range(3))
        self.self_attn = MultiHeadAttention(n_embd, n_head, dropout=dropout)
        self.cross_attn = MultiHeadAttention(n_embd, n_head, dropout=dropout)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None = None,
                return_weights: bool = False):
        x = x + self.self_attn(self.ln_1(x), causal=True)[0]  # (B, T, C)
        a, weights = self.cross_attn(self.ln_2(x), memory, memory,
                                     mask=memory_mask)  # (B, T, C), weights
        # weights: (B, nh, T, S), each decoder position over the source
        x = x + a
        x = x + self.mlp(self.ln_3(x))  # (B, T, C)
        return (x, weights) if return_weights else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> "DecoderBlock":
        """The same block as an ``nn.TransformerDecoderLayer(d, nh, 4 * d, activation="gelu",
        batch_first=True, norm_first=True)`` (weights copied across)."""
        if not isinstance(layer, nn.TransformerDecoderLayer) or not layer.norm_first:
            raise TypeError("from_torch takes an nn.TransformerDecoderLayer with norm_first=True")
        _check_torch_layer(layer, "the nn.TransformerDecoderLayer")
        n_embd, n_head = layer.self_attn.embed_dim, layer.self_attn.num_heads
        block = cls(n_embd, n_head).to(layer.linear1.weight.dtype)
        with torch.no_grad():
            for ours, theirs in [(block.self_attn, layer.self_attn),
                                 (block.cross_attn, layer.multihead_attn)]:
                ours.load_state_dict(MultiHeadAttention.from_torch(theirs).state_dict())
            for ours, theirs in [(block.ln_1, layer.norm1), (block.ln_2, layer.norm2),
                                 (block.ln_3, layer.norm3), (block.mlp[0], layer.linear1),
                                 (block.mlp[2], layer.linear2)]:
                ours.load_state_dict(theirs.state_dict())
        return block.to(layer.linear1.weight.device)


class TransformerEncoderDecoder(nn.Module):
    """Vaswani et al.'s encoder-decoder transformer on vectors (pre-norm, as ``nn.Transformer``
    with ``norm_first=True``): encoder blocks without a causal mask read the source, a final
    LayerNorm gives the ``memory``, and decoder blocks (causal self-attention, cross-attention
    to the memory) read the target so far. ``forward(src (B, S, C), tgt (B, T, C),
    src_keep=None)`` -> (B, T, C); ``src_keep`` (B, S) booleans, False at padding.
    """

    def __init__(self, n_embd: int, n_head: int, n_encoder: int = 2, n_decoder: int = 2):
        super().__init__()
        self.encoder = nn.ModuleList(TransformerBlock(n_embd, n_head, causal=False)
                                     for _ in range(n_encoder))
        self.decoder = nn.ModuleList(DecoderBlock(n_embd, n_head) for _ in range(n_decoder))
        self.ln_enc, self.ln_dec = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                src_keep: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if src_keep is None else src_keep[:, None, None, :]  # (B, 1, 1, S)
        memory = src
        for block in self.encoder:
            memory = block(memory, mask=mask)  # (B, S, C)
        memory = self.ln_enc(memory)
        x = tgt
        for block in self.decoder:
            x = block(x, memory, memory_mask=mask)  # (B, T, C)
        return self.ln_dec(x)

    @classmethod
    def from_torch(cls, model: nn.Transformer) -> "TransformerEncoderDecoder":
        """The same function as an ``nn.Transformer`` built pre-norm with GELU and a 4x MLP."""
        if not isinstance(model, nn.Transformer):
            raise TypeError("from_torch takes an nn.Transformer")
        enc, dec = model.encoder.layers, model.decoder.layers
        ours = cls(model.d_model, model.nhead, len(enc), len(dec))
        ours.to(enc[0].linear1.weight.dtype)
        with torch.no_grad():
            for i, layer in enumerate(enc):
                ours.encoder[i].load_state_dict(
                    TransformerBlock.from_torch(layer, causal=False).state_dict())
            for i, layer in enumerate(dec):
                ours.decoder[i].load_state_dict(DecoderBlock.from_torch(layer).state_dict())
            ours.ln_enc.load_state_dict(model.encoder.norm.state_dict())
            ours.ln_dec.load_state_dict(model.decoder.norm.state_dict())
        return ours.to(enc[0].linear1.weight.device)


class Seq2SeqTransformer(nn.Module):
    """:class:`TransformerEncoderDecoder` on token ids, with the interface of
    :class:`EncoderDecoder` (``forward(idx, targets=None) -> (logits, loss)``) for the same
    tasks: source tokens get an embedding plus a learned vector per source position, padding
    (``pad``) is masked out of every attention to the source, and, as in ``EncoderDecoder``,
    the decoder reads a learned vector per output position (not the previous output token), so
    training and testing run the same computation."""

    def __init__(self, vocab_size: int, n_embd: int = 32, n_head: int = 2, n_encoder: int = 1,
                 n_decoder: int = 1, out_len: int = 16, pad: int = 0):
        super().__init__()
        self.out_len, self.pad = out_len, pad
        self.embed = nn.Embedding(vocab_size, n_embd)
        self.src_pos = nn.Parameter(0.02 * torch.randn(out_len, n_embd))  # (S, C)
        self.out_pos = nn.Parameter(0.02 * torch.randn(out_len, n_embd))  # (L, C)
        self.body = TransformerEncoderDecoder(n_embd, n_head, n_encoder, n_decoder)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, S = idx.shape
        if S > self.out_len:
            raise ValueError(f"sources of {S} tokens, longer than out_len {self.out_len}")
        src = self.embed(idx) + self.src_pos[:S]  # (B, S, C)
        out = self.body(src, self.out_pos.expand(B, -1, -1), src_keep=idx != self.pad)
        logits = self.head(out)  # (B, L, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss
