"""MNIST-1D (Greydanus, 2020): the paper's MLP and CNN, and the one training run that chapter 06
and its sweep (``tools/mnist1d_sweep.py``) both use.

MNIST-1D's signals are 40 numbers; the class sits in a signal's shape, wherever it lies. The test
of a convolution's spatial assumption is to shuffle the 40 positions with one fixed permutation:
an MLP is indifferent, a CNN loses its notion of neighbours.

    >>> train, val, test, order = splits()           # 3200 / 800 / 1000 signals, a permutation
    >>> model, history = train_contender("CNN", "normal", lr=3e-3, seed=0, data=(train, val))

The full comparison (two models, two conditions, a learning-rate grid, three seeds, 3,000 steps)
and the chosen rates re-trained on train and validation together (:func:`refit_contender`)
is too long for the chapter; the sweep runs it and commits ``data/mnist1d_sweep.json``, which
:func:`load_sweep` reads (sha256-checked) and the chapter re-measures a sample of.
"""
from __future__ import annotations

import json

import torch
from torch import nn

from .data import validation_split, verified_path
from .models import MLP
from .training import fit

STEPS = 3000         # Adam steps per run: where the CNN's validation accuracy has settled
LONG_STEPS = 12_000  # the sweep follows the one curve still rising at STEPS this far
BATCH_SIZE = 128
EVAL_EVERY = 100     # a validation curve point every 100 steps; the final weights are kept
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # the grid every contender is tuned on
SWEEP_FILE = "mnist1d_sweep.json"


def splits(seed: int = 0):
    """The 4,000 generated training signals split 3,200 / 800 (stratified) into train and
    validation, the 1,000 test signals, and the fixed permutation of the 40 positions."""
    from mnist1d.data import (  # generated in memory, no download
        get_dataset_args,
        make_dataset,
    )

    signals = make_dataset(get_dataset_args())  # the package's default seed (42)
    x = torch.tensor(signals["x"], dtype=torch.float32)  # (4000, 40)
    y = torch.tensor(signals["y"])  # (4000,)
    test = (torch.tensor(signals["x_test"], dtype=torch.float32),
            torch.tensor(signals["y_test"]))  # (1000, 40), (1000,)
    train, val = validation_split(x, y, 0.2, seed=seed)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(seed))
    return train, val, test, order


def mlp() -> nn.Module:
    """The paper's MLP: two hidden layers of 100 units."""
    return MLP(sizes=(40, 100, 100, 10))


def cnn(channels: int = 25) -> nn.Module:
    """The paper's CNN: three 1-D convolutions of 25 channels, each halving the signal."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),  # (B, 1, 40)
        nn.Conv1d(1, channels, 5, stride=2, padding=1),  # (B, 25, 19)
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # (B, 25, 10)
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # (B, 25, 5)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 5, 10),
    )


CONTENDERS = {"MLP": mlp, "CNN": cnn}


def positions(condition: str, order: torch.Tensor) -> torch.Tensor:
    if condition not in ("normal", "shuffled"):
        raise ValueError(f"condition must be 'normal' or 'shuffled', got {condition!r}")
    return order if condition == "shuffled" else torch.arange(40)


def train_contender(name: str, condition: str, lr: float, seed: int, data, order=None,
                    steps: int = STEPS):
    """Train the paper's ``name`` ("MLP" or "CNN") on ``data = (train, val)`` (``val`` may be
    None) with its positions
    as given (``condition="normal"``) or permuted by ``order``: Adam at ``lr``, ``steps`` steps of
    batches of 128. The final weights are kept, as the paper's fixed-length runs keep them. Score
    a run with :func:`final_val_accuracy`. Returns (model, History)."""
    if name not in CONTENDERS:
        raise ValueError(f"name must be one of {sorted(CONTENDERS)}, got {name!r}")
    if condition == "shuffled" and order is None:
        raise ValueError("a shuffled run needs the permutation: pass order=")
    keep = positions(condition, order if order is not None else torch.arange(40))
    torch.manual_seed(seed)  # the initial weights
    model = CONTENDERS[name]()
    train, val = [None if d is None else (d[0][:, keep], d[1]) for d in data]
    history = fit(model, train, val, steps=steps, batch_size=BATCH_SIZE, lr=lr, seed=seed,
                  eval_every=EVAL_EVERY if val is not None else steps, progress=False)
    return model, history


def refit_contender(name: str, condition: str, lr: float, seed: int, data, order=None,
                    steps: int = STEPS) -> nn.Module:
    """Once ``lr`` is chosen on validation: train on ``data = (train, val)`` joined (all 4,000
    training signals, as the paper does), same budget, final weights. Returns the model, for the
    test set."""
    (x_train, y_train), (x_val, y_val) = data
    both = (torch.cat([x_train, x_val]), torch.cat([y_train, y_val]))  # (4000, 40), (4000,)
    model, _ = train_contender(name, condition, lr, seed, (both, None), order, steps)
    return model


def final_val_accuracy(history) -> float:
    """The validation accuracy of the final weights (the score a learning rate is chosen by)."""
    return float(history.val_metric[-1])


def load_sweep() -> dict:
    """The committed results of ``tools/mnist1d_sweep.py`` (sha256-checked)."""
    with open(verified_path(SWEEP_FILE), encoding="utf-8") as f:
        return json.load(f)
