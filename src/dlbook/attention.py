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


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, causal: bool = False):
    """``softmax(q k^T / sqrt(d) + mask) v`` and the attention weights.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv). ``mask``: booleans broadcastable to
    (..., Tq, Tk), True where a query may attend (as ``F.scaled_dot_product_attention`` reads a
    boolean ``attn_mask``); ``causal``: each query sees only keys at its own position or before.
    Returns ``(out (..., Tq, dv), weights (..., Tq, Tk))``; each row of weights sums to 1.
    Dividing by sqrt(d) keeps the scores' spread near 1 whatever the width: the dot product of
    two random d-vectors with unit-variance entries has variance d, and a softmax of large
    scores is nearly one-hot, with vanishing gradients.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"q (..., Tq, d), k (..., Tk, d) and v (..., Tk, dv) disagree: "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        scores = scores.masked_fill(~causal_mask(max(q.shape[-2], k.shape[-2]), q.device)
                                    [:q.shape[-2], :k.shape[-2]], float("-inf"))
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("mask holds booleans: True where a query may attend to a key")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk), rows sum to 1
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
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False, cache: KVCache | None = None):
        """Self-attention ``mha(x)``, or cross-attention ``mha(x, memory, memory)``.

        query (B, Tq, C), key and value (B, Tk, C). ``mask``: booleans broadcastable to
        (B, nh, Tq, Tk), True where attending is allowed. ``cache``: a :class:`KVCache` of the
        earlier tokens; the new keys and values are appended to it and the queries (the newest
        Tq tokens) attend to all of them. Returns ``(out (B, Tq, C), weights (B, nh, Tq, Tk))``.
        """
        key = query if key is None else key
        value = key if value is None else value
        B, Tq, C = query.shape
        w_q, w_k, w_v = self.in_proj.weight.chunk(3)  # 3 x (C, C)
        b_q, b_k, b_v = self.in_proj.bias.chunk(3) if self.in_proj.bias is not None else (None,) * 3
        q = self._heads(F.linear(query, w_q, b_q))  # (B, nh, Tq, hs)
        k = self._heads(F.linear(key, w_k, b_k))  # (B, nh, Tk, hs)
        v = self._heads(F.linear(value, w_v, b_v))  # (B, nh, Tk, hs)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, nh, T_past + Tk, hs)
            if causal:  # query i is token T_past + i: it sees keys 0 .. T_past + i
                Tk = k.shape[-2]
                past = causal_mask(Tk, query.device)[Tk - Tq:]  # (Tq, Tk)
                mask = past if mask is None else mask & past
                causal = False
        y, weights = scaled_dot_product_attention(q, k, v, mask, causal)  # (B, nh, Tq, hs)
        y = y.transpose(1, 2).reshape(B, Tq, C)  # (B, Tq, C): the heads side by side
        return self.dropout(self.out_proj(y)), weights  # (B, Tq, C), (B, nh, Tq, Tk)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiHeadAttention":
        """The same attention as a torch ``nn.MultiheadAttention`` (weights copied across)."""
        if not isinstance(module, nn.MultiheadAttention) or not module._qkv_same_embed_dim:
            raise TypeError("from_torch takes an nn.MultiheadAttention whose keys and values "
                            "have the query's width")
        ours = cls(module.embed_dim, module.num_heads, bias=module.in_proj_bias is not None)
        with torch.no_grad():
            ours.in_proj.weight.copy_(module.in_proj_weight)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if module.in_proj_bias is not None:
                ours.in_proj.bias.copy_(module.in_proj_bias)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        return ours.to(module.in_proj_weight.device)


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
        n_embd, n_head = layer.self_attn.embed_dim, layer.self_attn.num_heads
        if layer.linear1.out_features != 4 * n_embd:
            raise ValueError("the block's MLP is 4 * n_embd wide: use dim_feedforward=4 * d_model")
        block = cls(n_embd, n_head, causal=causal)
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
            x, weights = block(x, return_weights=True)  # (B, T, C), (B, nh, T, T)
            maps.append(weights)
        logits = self.head(self.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        if return_weights:
            return logits, loss, torch.stack(maps, dim=1)  # maps: (B, n_layer, nh, T, T)
        return logits, loss


class EncoderDecoder(nn.Module):
    """An RNN encoder and a decoder that sees the source either through one fixed-size vector
    or, with ``attention=True``, also through attention over every encoder state.

    The encoder LSTM reads the source ``idx`` (B, S), left-padded with ``pad`` (id 0) so that it
    ends on a real token. Its final state ``c`` (``hidden`` numbers) is the **context**: without
    attention, it is all the decoder ever learns about the source, however long the source is
    (the bottleneck of Sutskever et al., 2014, and Cho et al., 2014). Output position t starts
    from a learned position vector ``p_t``; with attention it also looks up the encoder states:
    query ``W_q [c; p_t]``, keys the states plus a learned vector for their source position
    (what and where), values the states (Bahdanau et al., 2015, in the dot-product form of
    Luong et al., 2015).

    To keep the comparison about the bottleneck alone (and quick to train), the decoder is not
    recurrent: all ``out_len`` outputs are computed at once, in parallel, from ``[c; p_t]`` and
    (with attention) the looked-up context. ``forward(idx, targets=None) -> (logits, loss)``
    with ``targets`` (B, out_len), -1 where not scored.
    """

    def __init__(self, vocab_size: int, hidden: int = 64, attention: bool = True,
                 out_len: int = 16, pad: int = 0):
        super().__init__()
        self.vocab_size, self.hidden, self.use_attention = vocab_size, hidden, attention
        self.out_len, self.pad = out_len, pad
        self.embed = nn.Embedding(vocab_size, hidden)
        self.encoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.positions = nn.Parameter(0.1 * torch.randn(out_len, hidden))  # (L, H) one per output
        self.src_positions = nn.Parameter(0.1 * torch.randn(out_len, hidden))  # (S, H) for keys
        self.query = nn.Linear(2 * hidden, hidden, bias=False)
        self.combine = nn.Linear((3 if attention else 2) * hidden, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_weights: bool = False):
        B, S = idx.shape
        memory, (h, _) = self.encoder(self.embed(idx))  # (B, S, H), (1, B, H)
        c = h[0][:, None].expand(B, self.out_len, self.hidden)  # (B, L, H) the context, copied
        p = self.positions.expand(B, -1, -1)  # (B, L, H)
        parts = [c, p]
        weights = None
        if self.use_attention:
            mask = (idx != self.pad)[:, None, :]  # (B, 1, S) real source tokens only
            q = self.query(torch.cat([c, p], dim=-1))  # (B, L, H)
            keys = memory + self.src_positions[-S:]  # (B, S, H): what and where
            looked_up, weights = scaled_dot_product_attention(q, keys, memory, mask)  # (B, L, H)
            parts.append(looked_up)
        out = torch.tanh(self.combine(torch.cat(parts, dim=-1)))  # (B, L, H)
        logits = self.head(out)  # (B, L, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return (logits, loss, weights) if return_weights else (logits, loss)
