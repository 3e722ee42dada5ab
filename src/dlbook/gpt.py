"""A GPT from scratch, in the spirit of nanoGPT's ``model.py``: token and position embeddings,
a stack of pre-norm transformer blocks (:class:`dlbook.attention.TransformerBlock`), a final
LayerNorm, and a head that shares its weights with the token embedding.

    logits = LayerNorm(blocks(E[idx] + P[:T])) E^T          (Radford et al., 2018, 2019)

What a GPT adds to chapter 11's transformer:

- **weight tying**: the head that turns the last hidden state into next-token logits is the
  token embedding matrix itself (Press & Wolf, 2017), so a token's input and output vectors
  are one vector, and the model has ``vocab_size * n_embd`` fewer parameters;
- **GPT-2's initialisation**: every weight N(0, 0.02), every bias zero, and the two projections
  that write into the residual stream (attention's ``out_proj`` and the MLP's second layer)
  scaled down by ``1 / sqrt(2 * n_layer)``, so that the stream's variance does not grow with
  depth. With PyTorch's defaults the N(0, 1) position embeddings drown the token embeddings;
- **sampling** with temperature, top-k and top-p (nucleus) filtering (:func:`filter_logits`);
- **a KV cache** (:class:`dlbook.attention.KVCache`): generating a token reads the keys and
  values of the earlier tokens from a cache instead of recomputing the whole context.

``forward(idx, targets=None) -> (logits, loss)`` is makemore's interface, so ``dlbook.training.fit``
trains it. The book's own longer-trained checkpoint (``tools/train_checkpoint.py``) loads with
:func:`load_checkpoint`.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attention import GrowingKVCache, KVCache, TransformerBlock
from .language_models import CharTokenizer

CHECKPOINT = "gpt_moby_dick.safetensors"
VAL_FRACTION = 0.1  # Moby-Dick's last 10% of characters is the validation text


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64  # the longest context it reads
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive whole number, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls, vocab_size: int = 65) -> "GPTConfig":
        """For tests: 2 layers, 2 heads, 32 wide, block 16 (about 26k parameters)."""
        return cls(vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)

    @classmethod
    def chapter(cls, vocab_size: int = 65) -> "GPTConfig":
        """Chapter 14's model: 4 layers, 4 heads, 128 wide, block 64 (about 0.8M parameters)."""
        return cls(vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)

    @classmethod
    def checkpoint(cls, vocab_size: int = 65) -> "GPTConfig":
        """The book's longer-trained checkpoint: the chapter's shape, trained for longer."""
        return cls(vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)


def filter_logits(logits: torch.Tensor, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """The logits ``(..., V)`` with every token outside the top-k, or outside the nucleus, at -inf.

    top-k keeps the ``k`` most likely tokens. top-p keeps the smallest set of most likely tokens
    whose probabilities add up to at least ``p`` (Holtzman et al., 2020): few tokens when the
    model is sure, many when it is not. Both together: a token must pass both.
    """
    original = logits
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Real) \
                or int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be a positive whole number or None, got {top_k!r}")
        k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p is not None and top_p < 1:  # top-p of 1: the nucleus is every token
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
        # in float64: a float32 running sum can reach p = 0.99... before the tail is counted
        probs = torch.softmax(sorted_logits.double(), dim=-1)
        before = probs.cumsum(-1) - probs  # (..., V) mass of the more likely tokens
        drop_sorted = before >= top_p  # the nucleus already holds p without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits if logits is not original else logits.clone()  # never the caller's tensor


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution ``generate`` samples from: ``softmax(filter(logits / temperature))``.

    ``temperature`` 0 is the limit T -> 0: all the probability on the most likely token (greedy
    decoding; the first of tied logits wins, as ``argmax`` picks it).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0 <= temperature < math.inf:
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
    if temperature == 0:
        best = filter_logits(logits, top_k, top_p).argmax(dim=-1, keepdim=True)  # (..., 1)
        return torch.zeros_like(logits).scatter_(-1, best, 1.0)  # (..., V) one-hot
    return torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)


def check_tokens(idx: torch.Tensor, caches, n_layer: int, block_size: int,
                 vocab_size: int) -> int:
    """A language model's input, checked up front: ``idx`` a (B, T >= 1) tensor of ids in
    [0, vocab_size), one cache per layer if any, the cached and new tokens within block_size.
    Returns how many tokens the caches already hold (where the new positions start)."""
    if idx.ndim != 2 or idx.dtype.is_floating_point:
        raise ValueError(f"idx must be a (B, T >= 1) tensor of token ids, got {idx.dtype} "
                         f"of shape {tuple(idx.shape)}")
    if idx.shape[1] == 0:
        raise ValueError("idx holds no tokens: give at least one (B, T >= 1)")
    if caches is not None and len(caches) != n_layer:
        raise ValueError(f"need one KVCache per layer ({n_layer}), got {len(caches)}")
    past = len(caches[0]) if caches else 0
    T = idx.shape[1]
    if past + T > block_size:
        raise ValueError(f"a sequence of {past + T} tokens is longer than block_size "
                         f"{block_size}: crop the context to its last {block_size} tokens")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got ids from {lo} to {hi}")
    return past


class GPT(nn.Module):
    """A decoder-only transformer language model; see the module docstring."""

    def __init__(self, config: GPTConfig | None = None, **overrides):
        super().__init__()
        config = config or GPTConfig()
        if overrides:
            config = GPTConfig(**{**asdict(config), **overrides})
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.n_embd, config.n_head, config.dropout, causal=True)
            for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: one (V, C) matrix, two uses
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:  # the two layers that add into the residual stream
            nn.init.normal_(block.attn.out_proj.weight, 0.0, residual_std)
            nn.init.normal_(block.mlp[2].weight, 0.0, residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each counted once (the tied head adds none). ``non_embedding``: without
        the token and position embeddings, the count N of Kaplan et al. (2020)'s scaling laws."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel() + self.pos_emb.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                caches: list[KVCache] | None = None):
        """``idx`` (B, T) token ids -> ``(logits (B, T, V), loss)``; loss is None without targets
        (a target of -1 is not scored). ``caches``: one :class:`KVCache` per layer; ``idx`` are
        then the tokens after those already in the caches, and their positions follow on."""
        past = check_tokens(idx, caches, len(self.blocks), self.config.block_size,
                            self.config.vocab_size)
        T = idx.shape[1]
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if caches is None else caches[i])  # (B, T, C)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None,
                 growing_cache: bool = False) -> torch.Tensor:
        """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens; returns (B, T + new).

        With ``use_cache``, each step feeds only the newest token and reads the earlier keys and
        values from the caches. Once the context fills the block, the window slides, every
        position shifts, and the cached keys are stale: from then on each step re-reads the last
        ``block_size`` tokens, exactly as without the cache, so both give the same tokens.
        ``growing_cache``: caches that fill buffers with room to spare
        (:class:`~dlbook.attention.GrowingKVCache`), the same tokens, faster for large batches.
        """
        next_token_probs(torch.zeros(1), temperature, top_k, top_p)  # checks the arguments
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
                or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"idx is the prompt, (B, T) token ids with T >= 1, got shape "
                             f"{tuple(idx.shape)}: start from one token, e.g. a newline")
        was_training = self.training
        self.eval()
        device = self.tok_emb.weight.device
        idx = idx.to(device)
        block = self.config.block_size
        caches, fed = None, None
        for _ in range(max_new_tokens):
            if use_cache and idx.shape[1] <= block:
                if caches is None:  # first step: fill the caches with the whole prompt
                    cache = GrowingKVCache if growing_cache else KVCache
                    caches = [cache() for _ in self.blocks]
                    fed = idx
                logits, _ = self(fed, caches=caches)  # (B, T_fed, V)
            else:
                logits, _ = self(idx[:, -block:])  # (B, <=block, V)
            probs = next_token_probs(logits[:, -1], temperature, top_k, top_p)  # (B, V)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
            fed = nxt
        self.train(was_training)
        return idx


def moby_dick_streams(block_size: int, val_fraction: float = VAL_FRACTION,
                      max_eval_windows: int | None = None):
    """*Moby-Dick* at the character level: ``(tokenizer, train, val)``, the streams being
    :class:`dlbook.training.TokenStream`. The text is split, not shuffled: the first 90% of the
    characters train and the last 10% validate (chapter 14 and the checkpoint use this split)."""
    from .data import load_moby_dick
    from .training import TokenStream

    text = load_moby_dick()
    tokenizer = CharTokenizer.from_texts([text])
    ids = torch.tensor(tokenizer.encode(text))  # (N,)
    n_train = int(round((1 - val_fraction) * len(ids)))
    return (tokenizer, TokenStream(ids[:n_train], block_size),
            TokenStream(ids[n_train:], block_size, max_eval_windows))


def save_checkpoint(model: GPT, tokenizer: CharTokenizer, path, **provenance) -> None:
    """Write ``model`` as safetensors (no pickle): the weights, and in the metadata the config,
    the tokenizer's characters and any ``provenance`` (strings)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if k != "head.weight"}  # tied to tok_emb.weight: stored once
    metadata = {"config": json.dumps(asdict(model.config)),
                "itos": json.dumps(tokenizer.itos),
                **{k: str(v) for k, v in provenance.items()}}
    save_file(state, str(path), metadata=metadata)


def load_checkpoint(path=None, device=None):
    """The book's longer-trained GPT: ``(model, tokenizer, metadata)``, model in eval mode.

    Without ``path`` it is ``data/gpt_moby_dick.safetensors`` (shipped with dlbook), checked
    against its sha256 first; a missing or damaged file fails with a message saying how to get
    it back (``make checkpoints`` rebuilds it).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from .data import DataIntegrityError, verified_path

    if path is None:
        try:
            path = verified_path(CHECKPOINT)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err}\nOr rebuild the checkpoint with `make checkpoints` "
                                    "(tools/train_checkpoint.py).") from None
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
        config = GPTConfig(**json.loads(metadata["config"]))
        itos = json.loads(metadata["itos"])
    except (SafetensorError, KeyError, TypeError, ValueError) as err:
        raise DataIntegrityError(f"{path} is not a readable dlbook GPT checkpoint "
                                 f"({type(err).__name__}: {err}); rebuild it with "
                                 "`make checkpoints`") from err
    model = GPT(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) != {"head.weight"} or unexpected:
        raise DataIntegrityError(f"{path} does not hold a GPT of its stated config: missing "
                                 f"{sorted(set(missing) - {'head.weight'})}, unexpected "
                                 f"{sorted(unexpected)}")
    tokenizer = CharTokenizer(itos)
    if tokenizer.itos != itos:
        raise DataIntegrityError(f"{path}: the stored vocabulary is not in the tokenizer's order")
    return model.to(device or "cpu").eval(), tokenizer, metadata
