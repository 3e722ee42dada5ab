"""Chapter 14's scaling experiment and its BPE-against-characters comparison, as one recipe that
``tools/ch14_scaling_sweep.py`` runs in full and the chapter re-measures a sample of.

Every run is the same recipe: a GPT of ``N_LAYER`` layers and heads of ``HEAD_SIZE`` (so the
number of heads grows with the width), AdamW with warm-up and cosine decay, ``STEPS`` steps on
``BATCH`` random windows of ``BLOCK`` tokens from the first 90% of *Moby-Dick*. The last 10% is
cut in two: its first half is the **validation** text that picks each size's learning rate, its
second half the **test** text that reports the loss once.

    >>> streams = char_streams()
    >>> val_loss, test_loss, _ = train_run(streams, width=32, lr=8e-3, seed=0)[1:]
    >>> sweep = load_sweep()              # data/ch14_scaling_sweep.json, checked on load
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from .gpt import GPT, GPTConfig, VAL_FRACTION
from .training import TokenStream, evaluate, fit, warmup_cosine

SWEEP_FILE = "ch14_scaling_sweep.json"
N_LAYER, HEAD_SIZE, BLOCK, BATCH, STEPS = 2, 16, 64, 32, 400
WIDTHS = (16, 32, 48, 64, 96)  # n_embd; heads = width / HEAD_SIZE
EVAL_WINDOWS = 300  # windows of BLOCK tokens read from the validation text (the test is whole)
CURVE_EVERY = 50  # steps between the validation losses recorded along a run
BPE_VOCAB = 1000  # chapter 13's tokenizer size: 256 bytes + 744 merges
BPE_WIDTH = 48  # the model both units of text train in the comparison


@dataclass
class Streams:
    """Token streams for one way of cutting the text (characters or BPE tokens)."""
    train: TokenStream
    val: TokenStream
    test: TokenStream
    vocab_size: int
    chars_per_token: dict  # on the tokens each held-out text is scored on: {"val": .., "test": ..}


def split_text(text: str) -> tuple[str, str, str]:
    """The first 90% of characters train; the last 10% is halved into validation and test."""
    n_train = int(round((1 - VAL_FRACTION) * len(text)))
    n_val = n_train + (len(text) - n_train) // 2
    return text[:n_train], text[n_train:n_val], text[n_val:]


def _streams(encode, decode, texts, vocab_size: int, block: int) -> Streams:
    """Training, validation (``EVAL_WINDOWS`` windows) and test (every window) streams; the
    characters per token are counted on the very targets each held-out stream scores."""
    ids = [torch.tensor(encode(t)) for t in texts]
    s = Streams(TokenStream(ids[0], block), TokenStream(ids[1], block, EVAL_WINDOWS),
                TokenStream(ids[2], block), vocab_size, {})
    for name in ("val", "test"):
        y = getattr(s, name).windows()[1]  # (W, T) scored targets
        s.chars_per_token[name] = sum(len(decode(row.tolist())) for row in y) / y.numel()
    return s


def char_streams(block: int = BLOCK) -> Streams:
    from .data import load_moby_dick
    from .language_models import CharTokenizer

    text = load_moby_dick()
    tok = CharTokenizer.from_texts([text])
    return _streams(tok.encode, tok.decode, split_text(text), tok.vocab_size, block)


def bpe_streams(block: int = BLOCK, vocab_size: int = BPE_VOCAB) -> Streams:
    """Chapter 13's byte-level BPE (``dlbook.bpe``), trained on the training text only."""
    from .bpe import BPETokenizer
    from .data import load_moby_dick

    texts = split_text(load_moby_dick())
    tok = BPETokenizer.train(texts[0], vocab_size=vocab_size)
    return _streams(tok.encode, tok.decode, texts, tok.vocab_size, block)


def make_model(vocab_size: int, width: int, seed: int) -> GPT:
    if width % HEAD_SIZE:
        raise ValueError(f"width {width} must be a multiple of the head size {HEAD_SIZE}")
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size, BLOCK, N_LAYER, n_head=width // HEAD_SIZE, n_embd=width))


def train_run(streams: Streams, width: int, lr: float, seed: int, steps: int = STEPS,
              curve_every: int | None = None):
    """One run of the recipe: ``(model, validation loss, test loss, curve)``, nats per token.

    ``curve`` is ``(steps, validation losses)`` recorded every ``curve_every`` steps (empty lists
    without it); recording does not change the run, whose batches have their own generator."""
    model = make_model(streams.vocab_size, width, seed)
    history = fit(
        model, streams.train, streams.val if curve_every else None, steps=steps,
        batch_size=BATCH, seed=seed, eval_every=curve_every,
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.99), weight_decay=0.1),
        scheduler=warmup_cosine(steps // 10, steps), grad_clip=1.0, metric=None, device="cpu",
        progress=False)
    val, _ = evaluate(model, streams.val, metric=None)
    test, _ = evaluate(model, streams.test, metric=None)
    return model, val, test, (list(history.step), list(history.val_loss))


def flops_per_token(vocab_size: int, width: int) -> float:
    """Training FLOPs per token, Kaplan et al.'s estimate: 6 (N + V C + L T C), with N the
    non-embedding parameters and V C the tied head's multiply-adds."""
    n = make_model(vocab_size, width, 0).num_params(non_embedding=True)
    return 6.0 * (n + vocab_size * width + N_LAYER * BLOCK * width)


def bits_per_char(nats_per_token: float, chars_per_token: float) -> float:
    """A loss per token, in bits per character of the text it predicts."""
    return nats_per_token / math.log(2) / chars_per_token


def fit_power_law(n, loss) -> tuple[float, float, float]:
    """Least squares on log-log axes, ``L = (N_c / N)^alpha``: ``(alpha, N_c, R^2)``."""
    x, y = np.log(np.asarray(n, float)), np.log(np.asarray(loss, float))
    if len(x) < 3:
        raise ValueError(f"a power law needs at least 3 points to be judged, got {len(x)}")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    r2 = 1 - residual.var() / y.var()
    alpha = -slope
    return float(alpha), float(math.exp(intercept / alpha)), float(r2)


def load_sweep(path=None) -> dict:
    """The sweep's results (``tools/ch14_scaling_sweep.py``), sha256-checked."""
    from .data import verified_path

    with open(path or verified_path(SWEEP_FILE)) as f:
        return json.load(f)


def loss_against_compute(sweep: dict) -> dict:
    """For each width of the sweep: the compute ``C`` (training FLOPs, ``flops_per_token`` times
    the tokens seen) at each recorded step, the tokens ``D`` seen, and the mean and standard
    deviation over seeds of the validation loss there. ``{width: {"C", "D", "loss", "sd"}}``."""
    recipe = sweep["recipe"]
    out = {}
    for width, r in sweep["scaling"].items():
        curves = np.asarray(r["curve_val"], float)  # (seeds, points)
        if curves.ndim != 2 or curves.shape[0] < 2:
            raise ValueError(f"width {width}: need curves over at least 2 seeds, got "
                             f"{curves.shape}")
        tokens = np.asarray(r["curve_step"], float) * recipe["batch"] * recipe["block"]
        out[width] = {"C": tokens * r["flops_per_token"], "D": tokens,
                      "loss": curves.mean(0), "sd": curves.std(0, ddof=1)}
    return out


def compute_frontier(curves: dict) -> dict:
    """The lower envelope of loss against compute over all widths: the points, in order of
    compute, whose mean loss is below every point of any width at less or equal compute.
    ``{"C", "loss", "width", "D"}`` arrays (``width`` is the size that is best there)."""
    points = sorted((c, l, w, d) for w, cv in curves.items()
                    for c, l, d in zip(cv["C"], cv["loss"], cv["D"]))
    keep, best = [], math.inf
    for c, l, w, d in points:
        if l < best:
            keep.append((c, l, w, d))
            best = l
    c, l, w, d = zip(*keep)
    return {"C": np.array(c), "loss": np.array(l), "width": np.array(w), "D": np.array(d)}


def best_within(curves: dict, budget: float) -> dict:
    """For each width, the lowest mean loss it reached with at most ``budget`` FLOPs, its
    spread over seeds, and the tokens and FLOPs it had spent then (a width whose first record
    costs more is left out)."""
    out = {}
    for w, cv in curves.items():
        ok = cv["C"] <= budget * (1 + 1e-9)
        if ok.any():
            i = np.flatnonzero(ok)[np.argmin(cv["loss"][ok])]
            out[w] = {"loss": float(cv["loss"][i]), "sd": float(cv["sd"][i]),
                      "D": float(cv["D"][i]), "C": float(cv["C"][i])}
    return out
