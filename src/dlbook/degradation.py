"""The degradation experiment of He et al. (2016), small enough for a CPU (chapter 07).

Three networks of :class:`~dlbook.models.ResNet` shape, width 8, on 480 MNIST-5k training digits
shrunk to 7x7 pixels: a plain net of 8 layers, a plain net of 20 and a ResNet of 20 (the plain 20
with its shortcuts). Each is trained with the paper's optimiser, SGD with momentum 0.9 and weight
decay 10^-4, for a fixed number of steps in batches of 32, and its training loss is recorded.

:func:`training_curve` is one run; ``tools/degradation_sweep.py`` runs the grid (learning rates x
networks x seeds) and stores it as ``data/degradation_sweep.json``, which :func:`load_sweep` reads;
the chapter re-runs a sample and checks that it agrees.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from .data import mnist5k_splits, verified_path
from .models import ResNet, ResNetConfig
from .training import fit

SWEEP_FILE = "degradation_sweep.json"
STEPS, EVAL_EVERY, BATCH_SIZE, N_DIGITS = 600, 50, 32, 480


def networks() -> dict[str, ResNetConfig]:
    """The three contenders, by name."""
    resnet20 = ResNetConfig(width=8, blocks=(3, 3, 3))
    return {"plain, 8 layers": ResNetConfig(width=8, blocks=(1, 1, 1)).plain(),
            "plain, 20 layers": resnet20.plain(),
            "ResNet, 20 layers": resnet20}


def small_digits(n: int = N_DIGITS) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training digits, average-pooled to 7x7 and standardised."""
    (x, y), _, _ = mnist5k_splits(flatten=False)
    small = nn.functional.avg_pool2d(x[:n], 4)  # (n, 1, 7, 7)
    return (small - small.mean()) / small.std(), y[:n]


def training_curve(config: ResNetConfig, lr: float, seed: int, data=None,
                   steps: int = STEPS, return_model: bool = False):
    """Training loss every ``EVAL_EVERY`` steps (the mean over those steps' batches).

    With ``return_model=True`` returns ``(curve, trained model)``."""
    if steps % EVAL_EVERY:
        raise ValueError(f"steps must be a multiple of {EVAL_EVERY}, got {steps}")
    data = small_digits() if data is None else data
    torch.manual_seed(seed)
    model = ResNet(config)
    history = fit(model, data, steps=steps, batch_size=BATCH_SIZE, seed=seed,
                  eval_every=EVAL_EVERY,
                  optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9,
                                                      weight_decay=1e-4))
    curve = np.array(history.train_loss)
    return (curve, model) if return_model else curve


def load_sweep() -> dict:
    """The stored sweep: ``{"lrs", "seeds", "steps", "curves": {name: array (lr, seed, record)}}``."""
    with open(verified_path(SWEEP_FILE)) as f:
        raw = json.load(f)
    raw["curves"] = {name: np.array(c) for name, c in raw["curves"].items()}
    return raw
