"""The degradation experiment of He et al. (2016), small enough for a CPU (chapter 07).

Three networks of :class:`~dlbook.models.ResNet` shape, width 8, on the 3,200 MNIST-5k training
digits shrunk to 7x7 pixels: a plain net of 8 layers, a plain net of 20 and a ResNet of 20 (the
plain 20 with its shortcuts). Each is trained with the paper's optimiser, SGD with momentum 0.9
and weight decay 10^-4, in batches of 64, with the learning rate decayed to zero along a cosine
over a fixed number of steps, so that every run ends where its schedule lets it settle. Every
``EVAL_EVERY`` steps it records the training loss (on a fixed sample of the training digits, in
eval mode) and the error on the 800 held-out validation digits.

:func:`training_curve` is one run; ``tools/degradation_sweep.py`` runs the grid (learning rates x
networks x seeds) and stores it as ``data/degradation_sweep.json``, which :func:`load_sweep` reads
(its ``--long`` runs, 3,000 steps at one or two rates, are ``data/degradation_long.json``, read by
:func:`load_long`);
the chapter re-runs a sample and checks that it agrees. :func:`shortcut_survival` measures how
much of the shortcut-only gradient path the ReLU after each residual sum leaves open.
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch
from torch import nn

from .data import mnist5k_splits, verified_path
from .models import BasicBlock, ResNet, ResNetConfig

SWEEP_FILE, LONG_FILE = "degradation_sweep.json", "degradation_long.json"
SURVIVAL_FILE = "shortcut_survival.json"  # by tools/shortcut_survival.py
STEPS, EVAL_EVERY, BATCH_SIZE, N_PROBE = 600, 100, 64, 800


def networks() -> dict[str, ResNetConfig]:
    """The three contenders, by name."""
    resnet20 = ResNetConfig(width=8, blocks=(3, 3, 3))
    return {"plain, 8 layers": ResNetConfig(width=8, blocks=(1, 1, 1)).plain(),
            "plain, 20 layers": resnet20.plain(),
            "ResNet, 20 layers": resnet20}


def small_digits(n: int | None = None):
    """Training and validation digits of MNIST-5k, average-pooled to 7x7 and standardised with
    the training digits' mean and deviation: ``((x, y), (x_val, y_val))``, ``x`` (n, 1, 7, 7).
    ``n`` keeps only the first ``n`` of each (for quick tests)."""
    (x, y), (xv, yv), _ = mnist5k_splits(flatten=False)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be a positive number of digits, got {n}")
        x, y, xv, yv = x[:n], y[:n], xv[:n], yv[:n]
    small, small_val = (nn.functional.avg_pool2d(a, 4) for a in (x, xv))  # (n, 1, 7, 7)
    mean, std = small.mean(), small.std()
    return ((small - mean) / std, y), ((small_val - mean) / std, yv)


@torch.no_grad()
def _record(model, train, val):
    model.eval()
    x, y = train[0][:N_PROBE], train[1][:N_PROBE]
    loss = nn.functional.cross_entropy(model(x), y).item()
    error = (model(val[0]).argmax(1) != val[1]).float().mean().item()
    model.train()
    return loss, error


def training_curve(config: ResNetConfig, lr: float, seed: int, data=None,
                   steps: int = STEPS, stop: int | None = None,
                   return_model: bool = False):
    """One run: ``{"train_loss": array, "val_error": array}``, one entry every ``EVAL_EVERY``
    steps, for a cosine schedule over ``steps`` steps. ``stop`` ends the run early (at a
    multiple of ``EVAL_EVERY``) with the same schedule, so that a prefix of a stored run can be
    re-measured. A run whose loss stops being finite records ``nan`` from there on.
    With ``return_model=True`` returns ``(curves, trained model)``."""
    stop = steps if stop is None else stop
    if steps % EVAL_EVERY or stop % EVAL_EVERY or not 0 < stop <= steps:
        raise ValueError(f"steps and stop must be multiples of {EVAL_EVERY} with "
                         f"0 < stop <= steps, got steps={steps}, stop={stop}")
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    train, val = small_digits() if data is None else data
    torch.manual_seed(seed)
    model = ResNet(config)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    n = len(train[0])
    order, at = torch.randperm(n, generator=gen), 0
    losses, errors, finite = [], [], True
    model.train()
    for step in range(stop):
        if at + BATCH_SIZE > n:  # a fresh permutation once the digits run out
            order, at = torch.randperm(n, generator=gen), 0
        idx = order[at:at + BATCH_SIZE]
        at += BATCH_SIZE
        for group in opt.param_groups:  # cosine from lr to 0 over the whole schedule
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        if finite:
            loss = nn.functional.cross_entropy(model(train[0][idx]), train[1][idx])
            finite = bool(torch.isfinite(loss))
            if finite:
                opt.zero_grad()
                loss.backward()
                opt.step()
        if (step + 1) % EVAL_EVERY == 0:
            loss_now, error = _record(model, train, val) if finite else (math.nan, math.nan)
            finite = finite and math.isfinite(loss_now)
            losses.append(loss_now if finite else math.nan)
            errors.append(error if finite else math.nan)
    model.eval()
    curves = {"train_loss": np.array(losses), "val_error": np.array(errors)}
    return (curves, model) if return_model else curves


def load_sweep() -> dict:
    """The stored sweep: ``{"lrs": {name: its grid}, "seeds", "steps", "eval_every",
    "train_loss": {name: array (lr, seed, record)}, "val_error": {same}}``; a run that diverged
    holds ``nan`` from there on."""
    with open(verified_path(SWEEP_FILE)) as f:
        raw = json.load(f)
    for key in ("train_loss", "val_error"):  # null (a diverged run) -> nan
        raw[key] = {name: np.array(c, dtype=float) for name, c in raw[key].items()}
    return raw


def load_long() -> dict:
    """The 3,000-step runs: ``{"lrs", "seeds", "steps", "eval_every", "train_loss": {name:
    array (lr, seed, record)}, "val_error": {same}}``."""
    with open(verified_path(LONG_FILE)) as f:
        raw = json.load(f)
    for key in ("train_loss", "val_error"):
        raw[key] = {name: np.array(c, dtype=float) for name, c in raw[key].items()}
    return raw


def load_survival() -> dict:
    """:func:`shortcut_survival` of the ResNet-20 (rate 0.03, seed 0) after longer runs, stored by
    ``tools/shortcut_survival.py``: ``{"lr", "seed", "digits", "survival": {"100 of 600": (stage,),
    "600 of 600": (stage,), "3000 of 3000": (stage,)}}`` (steps taken of the schedule's)."""
    with open(verified_path(SURVIVAL_FILE)) as f:
        raw = json.load(f)
    raw["survival"] = {k: np.array(v, dtype=float) for k, v in raw["survival"].items()}
    return raw


@torch.no_grad()
def shortcut_survival(model: ResNet, images: torch.Tensor) -> np.ndarray:
    """Per stage of a :class:`~dlbook.models.ResNet`: of the entries live (``x > 0``) where its
    identity blocks begin, the share with ``s = F(x) + x > 0`` in every one of them, where a
    gradient crosses the whole stage along the shortcuts alone (the ReLU after each sum zeroes
    it elsewhere). Blocks whose shortcut is a 1x1 convolution are not on that path. Returns
    ``(stage,)``; the model is left in eval mode."""
    if not isinstance(model, ResNet) or not model.config.skip:
        raise ValueError("a ResNet with shortcuts is needed (its plain twin has none)")
    seen = {}
    hooks = [b.register_forward_hook(lambda m, i, y: seen.__setitem__(m, (i[0] > 0, y > 0)))
             for b in model.modules() if isinstance(b, BasicBlock)]
    try:
        model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    shares = []
    for stage in model.stages:
        ids = [b for b in stage if isinstance(b.shortcut, nn.Identity)]
        if not ids:
            raise ValueError("a stage has no identity block: nothing to measure")
        live = seen[ids[0]][0]                                   # (B, C, H, W)
        through = live & torch.stack([seen[b][1] for b in ids]).all(0)
        shares.append(through.sum().item() / max(live.sum().item(), 1))
    return np.array(shares)
