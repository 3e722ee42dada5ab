"""Speculative decoding (Leviathan et al., 2023; Chen et al., 2023), greedy and from scratch,
and the acceptance rule that makes it exact under sampling.

A large *target* model generates one token per forward pass, and on a GPU with a small batch
that pass is bound by reading the weights, not by arithmetic: checking five tokens costs little
more than generating one (on a CPU it costs more; chapter 15 measures it). A cheap *draft* model guesses ``gamma`` tokens one by one; the target
reads them all in one pass and keeps the longest prefix it agrees with, plus its own next token:

    draft:   d1 d2 ... d_gamma            (gamma cheap passes)
    target:  t1 t2 ... t_gamma t_gamma+1  (one pass over last, d1, ..., d_gamma)
    keep:    d1 ... d_n, t_n+1            where n = how many leading d_i equal t_i

Under greedy decoding t_i is exactly the token the target alone would have produced at that
place, so the output is token for token the target's own greedy output, whatever the draft
guesses: a bad draft only costs speed. Each target pass yields between 1 and gamma + 1 tokens.

The two models must share one vocabulary (the target checks the draft's token ids). Both take
``forward(idx, caches=...)`` with one :class:`dlbook.attention.KVCache` per block, as
:class:`dlbook.llama.Llama` does; :func:`early_exit` makes a draft from the target itself (its
first blocks, its final norm and head: no second model to train or ship).

    >>> draft = early_exit(target, 8)
    >>> out, stats = speculative_greedy(target, draft, prompt_ids, 40, gamma=4)
    >>> ref, passes = greedy(target, prompt_ids, 40)     # torch.equal(out, ref)
    >>> stats.acceptance_rate, stats.tokens_per_target_pass

Under sampling, :func:`speculative_sample_step` keeps a draft token with probability
``min(1, p / q)`` and otherwise draws from the residual ``norm(max(0, p - q))``, so that the
token is distributed exactly as the target's ``p`` (:func:`speculative_output_distribution`).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .attention import KVCache


@dataclass
class SpeculativeStats:
    """What one speculative run cost: forward passes of each model, and the draft's hit rate."""

    tokens: int = 0  # new tokens generated
    target_passes: int = 0
    draft_passes: int = 0
    proposed: int = 0  # draft tokens the target checked
    accepted: int = 0  # of those, the ones it kept
    rejected: int = 0  # rounds that ended on a refused guess (the guesses after it unread)

    @property
    def acceptance_rate(self) -> float:
        """Accepted per proposed draft token. Guesses after a refused one count as proposed
        but are never examined, so this is not Leviathan's per-token alpha (see ``alpha``);
        under greedy decoding tokens per target pass = 1 + gamma * this, up to the last round."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def alpha(self) -> float:
        """The per-token acceptance alpha, estimated per *examined* guess: accepted /
        (accepted + rejected). If each guess is accepted independently with chance alpha, a
        pass yields ``(1 - alpha**(gamma + 1)) / (1 - alpha)`` tokens (Leviathan et al.)."""
        examined = self.accepted + self.rejected
        return self.accepted / examined if examined else 0.0

    @property
    def tokens_per_target_pass(self) -> float:
        """Tokens per target pass: plain greedy decoding makes exactly 1."""
        return self.tokens / self.target_passes if self.target_passes else 0.0


def early_exit(model: nn.Module, n_layer: int) -> nn.Module:
    """A draft that is ``model`` cut after its first ``n_layer`` blocks, then its own final
    norm and head (weights shared with ``model``, not copied): the same vocabulary by
    construction, about ``n_layer / model's layers`` of its block compute."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError("early_exit needs a model with a ModuleList `blocks` "
                        f"(a dlbook Llama or GPT), got {type(model).__name__}")
    if not isinstance(n_layer, int) or not 1 <= n_layer < len(blocks):
        raise ValueError(f"n_layer must be a whole number in [1, {len(blocks) - 1}], "
                         f"got {n_layer!r}")
    draft = copy.copy(model)  # a new module object whose attributes are model's
    draft._modules = dict(model._modules)
    draft.blocks = nn.ModuleList(list(blocks)[:n_layer])  # shared blocks, fewer of them
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and hasattr(config, "n_layer"):
        draft.config = dataclasses.replace(config, n_layer=n_layer)
    return draft.eval()


def new_caches(model: nn.Module) -> list[KVCache]:
    """One empty :class:`KVCache` per block of ``model``."""
    return [KVCache() for _ in model.blocks]


def cached_length(caches: list[KVCache]) -> int:
    """How many tokens the caches hold."""
    return len(caches[0]) if caches else 0


def crop(caches: list[KVCache], length: int) -> None:
    """Forget every cached token after the first ``length`` (the rejected guesses)."""
    for c in caches:
        if c.k is not None:
            c.k, c.v = c.k[..., :length, :], c.v[..., :length, :]  # (B, nh, length, hs)


def _check(model, idx, max_new_tokens):
    if not isinstance(idx, torch.Tensor) or idx.ndim != 2 or idx.shape[0] != 1 \
            or idx.shape[1] < 1 or idx.dtype.is_floating_point:
        raise ValueError("idx must be a (1, T >= 1) tensor of token ids: one prompt, "
                         f"got {getattr(idx, 'dtype', type(idx))} of shape "
                         f"{tuple(getattr(idx, 'shape', ()))}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if not isinstance(getattr(model, "blocks", None), nn.ModuleList):
        raise TypeError(f"need a model with `blocks` and KV caches, got {type(model).__name__}")


@torch.no_grad()
def greedy(model: nn.Module, idx: torch.Tensor, max_new_tokens: int):
    """Plain greedy decoding with a KV cache: ``(ids (1, T + max_new_tokens), passes)``, one
    forward pass per new token."""
    _check(model, idx, max_new_tokens)
    caches = new_caches(model)
    out, feed, passes = idx, idx, 0
    for _ in range(max_new_tokens):
        logits, _ = model(feed, caches=caches)  # (1, T_feed, V)
        passes += 1
        feed = logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        out = torch.cat([out, feed], 1)
    return out, passes


class ModelDraft:
    """A draft model with its own KV cache: proposes tokens by greedy decoding, one pass each."""

    def __init__(self, model: nn.Module):
        if not isinstance(getattr(model, "blocks", None), nn.ModuleList):
            raise TypeError(f"a draft model needs `blocks` and KV caches, got "
                            f"{type(model).__name__}")
        self.model, self.caches, self.passes = model, new_caches(model), 0
        self.vocab_size = model.config.vocab_size

    @torch.no_grad()
    def propose(self, seq: list[int], gamma: int) -> list[int]:
        """``gamma`` greedy guesses after ``seq`` (reads the tokens its cache lacks first)."""
        device = next(self.model.parameters()).device
        guesses, feed = [], seq[cached_length(self.caches):]
        for _ in range(gamma):
            logits, _ = self.model(torch.tensor([feed], device=device), caches=self.caches)
            self.passes += 1
            feed = [int(logits[0, -1].argmax())]
            guesses.append(feed[0])
        return guesses

    def keep(self, length: int) -> None:
        """The sequence's first ``length`` tokens stand: forget cached guesses after them."""
        crop(self.caches, min(cached_length(self.caches), length))


class LookupDraft:
    """Prompt lookup (Saxena, 2023): no model at all. Find the latest earlier place where the
    sequence's last ``n`` tokens occurred (n from ``max_n`` down to 1) and propose the tokens
    that followed there. Free to run, and right whenever the text repeats itself or its prompt
    (quoting a passage, editing code, a loop)."""

    def __init__(self, vocab_size: int, max_n: int = 3):
        if not isinstance(max_n, int) or max_n < 1:
            raise ValueError(f"max_n must be a whole number >= 1, got {max_n!r}")
        self.vocab_size, self.max_n, self.passes = vocab_size, max_n, 0

    def propose(self, seq: list[int], gamma: int) -> list[int]:
        for n in range(min(self.max_n, len(seq) - 1), 0, -1):
            suffix = seq[-n:]
            for i in range(len(seq) - n - 1, -1, -1):  # latest match first
                if seq[i:i + n] == suffix:
                    return seq[i + n:i + n + gamma]
        return []

    def keep(self, length: int) -> None:
        pass


@torch.no_grad()
def speculative_greedy(target: nn.Module, draft, idx: torch.Tensor, max_new_tokens: int,
                       gamma: int = 4):
    """Greedy speculative decoding: ``(ids (1, T + max_new_tokens), SpeculativeStats)``; the
    ids equal ``greedy(target, idx, max_new_tokens)[0]``.

    ``draft``: a model (wrapped in :class:`ModelDraft`) or an object with ``propose(seq,
    gamma)`` and ``keep(length)`` such as :class:`LookupDraft`. Each round the draft proposes
    up to ``gamma`` tokens and the target checks them in one pass. The target's cache always
    holds the sequence without its last token; a rejected guess is cropped away.
    """
    _check(target, idx, max_new_tokens)
    if not isinstance(gamma, int) or gamma < 1:
        raise ValueError(f"gamma (draft tokens per round) must be a whole number >= 1, "
                         f"got {gamma!r}")
    if isinstance(draft, nn.Module):
        draft = ModelDraft(draft)
    if not (hasattr(draft, "propose") and hasattr(draft, "keep")):
        raise TypeError("draft must be a model or have propose(seq, gamma) and keep(length)")
    v_target, v_draft = target.config.vocab_size, draft.vocab_size
    if v_target != v_draft:
        raise ValueError(
            f"the draft's vocabulary ({v_draft:,} tokens) is not the target's "
            f"({v_target:,}): speculative decoding compares token ids, so both models "
            "must share one tokenizer")
    t_cache, seq, stats = new_caches(target), idx[0].tolist(), SpeculativeStats()
    n_prompt = len(seq)
    while len(seq) - n_prompt < max_new_tokens:
        guesses = draft.propose(seq, gamma)[:gamma]
        start = cached_length(t_cache)  # the target reads its unread tokens and the guesses
        logits, _ = target(torch.tensor([seq[start:] + guesses], device=idx.device),
                           caches=t_cache)  # (1, T_new + g, V)
        stats.target_passes += 1
        g = len(guesses)
        wanted = logits[0, -g - 1:].argmax(-1).tolist()  # t_1 .. t_g+1
        n = 0
        while n < g and guesses[n] == wanted[n]:
            n += 1
        new = (guesses[:n] + [wanted[n]])[:max_new_tokens - (len(seq) - n_prompt)]
        stats.proposed += g
        stats.accepted += min(n, len(new))
        stats.rejected += int(n < g and n < len(new))  # guess n + 1 was read and refused
        seq += new
        crop(t_cache, len(seq) - 1)
        draft.keep(len(seq) - 1)
    stats.tokens, stats.draft_passes = len(seq) - n_prompt, draft.passes
    return torch.tensor([seq], device=idx.device), stats


# --- Speculative *sampling* (Leviathan et al., 2023, Algorithm 1; Chen et al., 2023) -------------
#
# Under sampling the target's next token is a draw from p (its distribution at that place), the
# draft's guess x a draw from q. Accept x with probability min(1, p(x) / q(x)); on rejection,
# draw instead from the residual r = max(0, p - q) / sum(max(0, p - q)). The token that comes out
# is distributed exactly as p:
#
#     P(out = x) = q(x) min(1, p(x)/q(x)) + (1 - beta) r(x) = min(p(x), q(x)) + max(0, p(x) - q(x))
#                = p(x),
#
# because the probability of rejecting, 1 - beta = 1 - sum_y min(p(y), q(y)), is exactly
# sum_y max(0, p(y) - q(y)), the residual's normaliser. The acceptance probability beta equals
# 1 - TV(p, q): the closer the draft's distribution to the target's, the more guesses stand.


def _check_pq(p: torch.Tensor, q: torch.Tensor) -> None:
    if p.shape != q.shape or p.ndim != 1 or len(p) < 1:
        raise ValueError(f"p and q must be 1-D distributions of one length, got shapes "
                         f"{tuple(p.shape)} and {tuple(q.shape)}")
    for name, d in (("p", p), ("q", q)):
        if not torch.isfinite(d).all() or (d < 0).any() or abs(float(d.sum()) - 1) > 1e-4:
            raise ValueError(f"{name} must be a probability vector (finite, >= 0, sum 1)")


def acceptance_probability(p: torch.Tensor, q: torch.Tensor) -> float:
    """The chance that a draft guess drawn from ``q`` is accepted by a target with
    distribution ``p``: ``sum_x min(p(x), q(x)) = 1 - TV(p, q)``."""
    _check_pq(p, q)
    return float(torch.minimum(p, q).sum())


def speculative_sample_step(p: torch.Tensor, q: torch.Tensor, guess: int,
                            generator: torch.Generator | None = None) -> tuple[int, bool]:
    """One token of speculative sampling: keep the draft's ``guess`` (drawn from ``q``) with
    probability ``min(1, p[guess] / q[guess])``, else draw from ``norm(max(0, p - q))``.
    Returns ``(token, accepted)``; the token is distributed as ``p`` (see the module's note)."""
    _check_pq(p, q)
    if not 0 <= int(guess) < len(p) or q[guess] <= 0:
        raise ValueError(f"guess must be a token the draft can propose (q > 0), got {guess!r}")
    u = float(torch.rand((), generator=generator))
    if u < min(1.0, float(p[guess] / q[guess])):
        return int(guess), True
    residual = (p - q).clamp_min(0)  # zero only if p == q, when nothing is ever rejected
    token = torch.multinomial(residual / residual.sum(), 1, generator=generator)
    return int(token), False


def speculative_output_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The exact distribution of :func:`speculative_sample_step`'s token when the guess is drawn
    from ``q``: ``q min(1, p/q) + (1 - beta) norm(max(0, p - q))``. It equals ``p``."""
    _check_pq(p, q)
    kept = torch.minimum(p, q)  # q(x) min(1, p(x)/q(x))
    residual = (p - q).clamp_min(0)
    rejected = 1 - kept.sum()
    if residual.sum() > 0:
        return kept + rejected * residual / residual.sum()
    return kept
