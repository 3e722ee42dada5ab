"""Character-level language models in one interface, makemore's:

    logits, loss = model(idx, targets=None)     idx, targets: (B, T) token ids; logits (B, T, V)

Position t of ``logits`` scores the token that follows ``idx[:, :t + 1]``, and ``loss`` is the
mean cross-entropy (nats per token) against ``targets``, skipping targets of -1. Because every
model speaks it, one training loop (:func:`dlbook.training.fit`), one evaluation and one sampler
(:func:`generate`) serve a table of bigram counts, Bengio's MLP, an RNN, an LSTM and, in later
chapters, a transformer.

- :class:`CharTokenizer`: characters <-> ids; id 0 is the boundary "." that ends every name.
- :class:`BigramLM`: a (V, V) table of next-token logits: from counts, or learned by gradient.
- :class:`MLPLM`: Bengio et al. (2003): embed the previous ``context`` tokens, concatenate,
  one tanh hidden layer.
- :class:`RecurrentLM`: embedding -> RNN / LSTM / GRU (torch's, or the from-scratch layers of
  :mod:`dlbook.rnn`) -> linear head.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .rnn import CELL_KINDS, LAYERS

BOUNDARY = "."  # starts and ends every name; id 0


def lm_loss(logits: torch.Tensor, targets: torch.Tensor | None):
    """Mean cross-entropy over all positions (nats per token); targets of -1 are skipped."""
    if targets is None:
        return None
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets {tuple(targets.shape)} must match idx {tuple(logits.shape[:-1])}")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)


def _check_idx(idx: torch.Tensor, vocab_size: int) -> None:
    if idx.ndim != 2 or idx.dtype.is_floating_point:
        raise ValueError(f"idx must be a (B, T) tensor of token ids, got {idx.dtype} "
                         f"of shape {tuple(idx.shape)}")


class CharTokenizer:
    """Characters to ids and back. Id 0 is the boundary "." (see :data:`BOUNDARY`); the other
    characters follow in sorted order, so ``a`` is 1 ... ``z`` is 26 for lower-case names."""

    def __init__(self, chars):
        chars = sorted(set(chars) - {BOUNDARY})
        self.itos = [BOUNDARY, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts) -> "CharTokenizer":
        return cls(set("".join(texts)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary "
                             f"{''.join(self.itos)!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)

    def stream(self, names) -> torch.Tensor:
        """All names as one token stream, each followed by the boundary: ".emma.olivia." ->
        ids (N,). A model reading it learns where names start (after ".") and end (predicting
        "."), exactly the bigrams makemore counts with its ".emma." padding."""
        names = list(names)
        if not names:
            raise ValueError("need at least one name")
        return torch.tensor(self.encode(BOUNDARY + BOUNDARY.join(names) + BOUNDARY))


class BigramLM(nn.Module):
    """The next token depends only on the current one: ``logits = table[idx]``.

    :meth:`from_counts` sets ``table`` to the log of smoothed bigram frequencies, the maximum-
    likelihood answer; training ``BigramLM(V)`` by gradient descent on the same data should
    arrive at (nearly) the same table.
    """

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size))  # (V, V) logits

    @staticmethod
    def count(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """``N[a, b]``: how often token b follows token a in the stream, (V, V)."""
        pairs = tokens[:-1] * vocab_size + tokens[1:]  # (N - 1,) one id per (a, b)
        return torch.bincount(pairs, minlength=vocab_size ** 2).view(vocab_size, vocab_size)

    @classmethod
    def from_counts(cls, tokens: torch.Tensor, vocab_size: int, smoothing: float = 1.0):
        """The counting model: ``P(b | a) = (N[a, b] + smoothing) / sum_b' (N[a, b'] + smoothing)``
        (add-one smoothing by default, so that no bigram gets probability zero)."""
        model = cls(vocab_size)
        counts = cls.count(tokens, vocab_size).float() + smoothing  # (V, V)
        with torch.no_grad():
            model.table.copy_((counts / counts.sum(1, keepdim=True)).log())
        return model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, self.vocab_size)
        logits = self.table[idx]  # (B, T, V)
        return logits, lm_loss(logits, targets)


@dataclass
class MLPLMConfig:
    vocab_size: int = 27
    context: int = 3  # how many previous tokens the model sees
    n_embd: int = 10  # size of each token's vector
    n_hidden: int = 200

    @classmethod
    def bengio(cls, vocab_size: int = 27) -> "MLPLMConfig":
        """makemore's MLP: 3 characters of context, 10-d embeddings, 200 hidden units."""
        return cls(vocab_size)


class MLPLM(nn.Module):
    """Bengio, Ducharme, Vincent & Jauvin (2003), "A neural probabilistic language model":
    look up a learned vector for each of the previous ``context`` tokens, concatenate them, one
    tanh hidden layer, logits over the next token. Positions before the window's start read as
    the boundary token (id 0)."""

    def __init__(self, config: MLPLMConfig | None = None, **overrides):
        super().__init__()
        self.config = config = replace(config or MLPLMConfig(), **overrides)
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.hidden = nn.Linear(config.context * config.n_embd, config.n_hidden)
        self.head = nn.Linear(config.n_hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, self.config.vocab_size)
        B, T = idx.shape
        n = self.config.context
        # (B, T + n - 1): boundary tokens in front of the window
        padded = F.pad(idx, (n - 1, 0), value=0)
        contexts = padded.unfold(1, n, 1)  # (B, T, n): the n tokens up to t
        x = self.embed(contexts).flatten(2)  # (B, T, n * n_embd)
        h = torch.tanh(self.hidden(x))  # (B, T, n_hidden)
        logits = self.head(h)  # (B, T, V)
        return logits, lm_loss(logits, targets)


@dataclass
class RecurrentLMConfig:
    vocab_size: int = 27
    cell: str = "rnn"  # "rnn", "lstm" or "gru"
    n_embd: int = 32
    n_hidden: int = 128
    num_layers: int = 1
    from_scratch: bool = False  # True: dlbook.rnn's layers (the equations); False: torch's kernels

    @classmethod
    def small(cls, cell: str = "rnn", vocab_size: int = 27) -> "RecurrentLMConfig":
        return cls(vocab_size, cell, n_embd=16, n_hidden=64)


class RecurrentLM(nn.Module):
    """Embedding -> recurrent layer -> linear head. Unlike the MLP, the hidden state can carry
    information from any earlier token of the window, not just the last few. Each window starts
    from a zero state."""

    def __init__(self, config: RecurrentLMConfig | None = None, **overrides):
        super().__init__()
        self.config = config = replace(config or RecurrentLMConfig(), **overrides)
        if config.cell not in CELL_KINDS:
            raise ValueError(f"cell must be one of {CELL_KINDS}, got {config.cell!r}")
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        if config.from_scratch:
            self.rnn = LAYERS[config.cell](config.n_embd, config.n_hidden, config.num_layers)
        else:
            torch_layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[config.cell]
            self.rnn = torch_layer(config.n_embd, config.n_hidden, config.num_layers,
                                   batch_first=True)
        self.head = nn.Linear(config.n_hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, self.config.vocab_size)
        x = self.embed(idx)  # (B, T, n_embd)
        h, _ = self.rnn(x)  # (B, T, n_hidden): the state after each token
        logits = self.head(h)  # (B, T, V)
        return logits, lm_loss(logits, targets)


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, *,
             temperature: float = 1.0, generator: torch.Generator | None = None,
             block_size: int | None = None) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens, each drawn from the model's
    next-token distribution ``softmax(logits[:, -1] / temperature)``; returns (B, T + new).

    Works for any model in the interface: it simply re-reads the whole context (the last
    ``block_size`` tokens, if given) at every step. A KV cache (chapter 14) avoids that.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    idx = idx.to(device)
    for _ in range(max_new_tokens):
        context = idx if block_size is None else idx[:, -block_size:]  # (B, <=block_size)
        logits, _ = model(context)  # (B, T, V)
        probs = torch.softmax(logits[:, -1] / temperature, dim=-1)  # (B, V)
        nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)  # (B, T + 1)
    model.train(was_training)
    return idx


def sample_names(model: nn.Module, tokenizer: CharTokenizer, n: int = 10, *, seed: int = 0,
                 max_len: int = 20, temperature: float = 1.0) -> list[str]:
    """``n`` names sampled from ``model``: start from the boundary, draw characters until the
    next boundary (or ``max_len`` characters)."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.zeros(n, 1, dtype=torch.long)  # (n, 1) the boundary token
    out = generate(model, start, max_len, temperature=temperature, generator=generator)
    names = []
    for row in out[:, 1:].tolist():
        text = tokenizer.decode(row)
        names.append(text.split(BOUNDARY)[0])
    return names


LADDER = ("MLP", "RNN", "RNN-128", "LSTM")  # chapter 08's contenders on names


def ladder_model(name, vocab_size=27):
    """Chapter 08's contenders: Bengio's MLP (3 characters of context), a
    64-unit RNN, a 128-unit RNN (the LSTM's size) and a 64-unit LSTM, each
    with 16-d character vectors."""
    if name == "MLP":
        return MLPLM(MLPLMConfig.bengio(vocab_size))
    kinds = {"RNN": ("rnn", 64), "RNN-128": ("rnn", 128), "LSTM": ("lstm", 64)}
    if name not in kinds:
        raise ValueError(f"unknown contender {name!r}; pick one of {LADDER}")
    cell, hidden = kinds[name]
    config = RecurrentLMConfig(vocab_size, cell, n_embd=16, n_hidden=hidden)
    return RecurrentLM(config)


class NGramLM(nn.Module):
    """Counts of n tokens: ``P(c | the previous n - 1) = (N[..., c] + k) / sum_c' (N[..., c'] + k)``
    (add-k smoothing). A window's first positions read the boundary token 0 for what lies before
    the window, as :class:`MLPLM` does; ``n = 2`` is :class:`BigramLM` from counts."""

    def __init__(self, log_probs: torch.Tensor):
        super().__init__()
        self.n, self.vocab_size = log_probs.ndim, log_probs.shape[-1]
        # a parameter (frozen) so that it moves with .to() and counts as the model's size
        self.log_probs = nn.Parameter(log_probs, requires_grad=False)  # (V,) * n

    @classmethod
    def from_counts(cls, tokens: torch.Tensor, vocab_size: int, n: int = 3,
                    smoothing: float = 1.0) -> "NGramLM":
        if n < 2 or smoothing <= 0:
            raise ValueError(f"need n >= 2 and smoothing > 0, got n={n}, smoothing={smoothing}")
        grams = tokens.unfold(0, n, 1)  # (N - n + 1, n)
        ids = (grams * vocab_size ** torch.arange(n - 1, -1, -1)).sum(1)  # one id per n-gram
        counts = torch.bincount(ids, minlength=vocab_size ** n).float() + smoothing
        counts = counts.view((vocab_size,) * n)
        return cls((counts / counts.sum(-1, keepdim=True)).log())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, self.vocab_size)
        padded = F.pad(idx, (self.n - 2, 0), value=0)  # (B, T + n - 2)
        contexts = padded.unfold(1, self.n - 1, 1)  # (B, T, n - 1)
        logits = self.log_probs[contexts.unbind(-1)]  # (B, T, V)
        return logits, lm_loss(logits, targets)


class KneserNeyLM(nn.Module):
    """Interpolated Kneser-Ney counts of up to ``n`` tokens (Kneser & Ney 1995; Chen & Goodman
    1999), the strongest plain count table. Order m mixes its discounted counts with order m - 1:

        P_m(c | h) = max(N(h, c) - D, 0) / N(h) + D * types(h) / N(h) * P_{m-1}(c | h[1:])

    where ``types(h)`` is how many different tokens follow h; a context never seen (N(h) = 0)
    takes P_{m-1} as it is. Below the top order, N counts **continuations**: in how many
    different contexts a string occurs, not how often ("francisco" is frequent, but after few
    words). Order 0 is uniform. Counts are kept sparse (sorted ids), so n = 6 or 7 fits in memory.
    Positions before a window's start read as the boundary 0, as in :class:`NGramLM`."""

    def __init__(self, tokens: torch.Tensor, vocab_size: int, n: int = 4, discount: float = 0.75):
        super().__init__()
        if n < 1 or not 0 < discount < 1:
            raise ValueError(f"need n >= 1 and 0 < discount < 1, got n={n}, discount={discount}")
        self.n, self.vocab_size, self.discount = n, vocab_size, discount
        V, tables = vocab_size, []
        gram_ids = self._ids(tokens.unfold(0, n, 1))  # (N - n + 1,) one id per n-gram
        ids, counts = torch.unique(gram_ids, return_counts=True)
        for m in range(n, 0, -1):  # the top order counts, the lower ones continue
            h_ids, h_inv = torch.unique(ids // V, return_inverse=True)  # contexts
            total = torch.zeros(len(h_ids)).index_add_(0, h_inv, counts.float())
            types = torch.bincount(h_inv, minlength=len(h_ids)).float()
            tables[:0] = [ids, counts.float(), h_ids, total, types]
            # continuation counts of order m - 1: distinct tokens before each suffix
            ids, counts = torch.unique(ids % V ** (m - 1), return_counts=True)
        # frozen parameters, so that they move with .to() and count as the model's size
        self.tables = nn.ParameterList(nn.Parameter(t, requires_grad=False) for t in tables)

    def _ids(self, grams: torch.Tensor) -> torch.Tensor:  # (..., m) -> (...) base-V ids
        powers = self.vocab_size ** torch.arange(grams.shape[-1] - 1, -1, -1)
        return (grams * powers).sum(-1)

    @staticmethod
    def _lookup(keys, values, query):  # values[keys == query], 0 where absent
        at = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
        return torch.where(keys[at] == query, values[at], torch.zeros(()))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        _check_idx(idx, self.vocab_size)
        V, D = self.vocab_size, self.discount
        padded = F.pad(idx, (self.n - 1, 0), value=0)  # (B, T + n - 1)
        contexts = padded.unfold(1, self.n, 1)[..., 1:]  # (B, T, n - 1) up to t
        next_token = torch.arange(V)  # (V,)
        p = torch.full((*idx.shape, V), 1.0 / V)  # (B, T, V): order 0
        for m in range(1, self.n + 1):
            ids, counts, h_ids, total, types = self.tables[5 * (m - 1): 5 * m]
            h = self._ids(contexts[..., self.n - m:])  # (B, T) the last m - 1 tokens
            n_h = self._lookup(h_ids, total, h)[..., None]  # (B, T, 1)
            t_h = self._lookup(h_ids, types, h)[..., None]
            n_hc = self._lookup(ids, counts, h[..., None] * V + next_token)  # (B, T, V)
            mixed = ((n_hc - D).clamp(min=0) + D * t_h * p) / n_h.clamp(min=1)
            p = torch.where(n_h > 0, mixed, p)
        logits = p.log()  # (B, T, V)
        return logits, lm_loss(logits, targets)


def train_ladder_model(name, train, dev, *, lr, seed, steps=2000,
                       batch_size=64, eval_every=200, vocab_size=27,
                       grad_clip=1.0):
    """Chapter 08's recipe for every contender: `steps` Adam steps on random
    windows, 100 warm-up steps then cosine decay, gradients clipped at 1
    (`grad_clip=None`: not clipped), dev NLL every `eval_every` steps.
    Returns (model, history)."""
    from .training import fit, warmup_cosine

    torch.manual_seed(seed)
    model = ladder_model(name, vocab_size)
    history = fit(
        model, train, dev, steps=steps, eval_every=eval_every,
        batch_size=batch_size, lr=lr, scheduler=warmup_cosine(100, steps),
        grad_clip=grad_clip, metric=None, seed=seed, device="cpu",
    )
    return model, history
