"""Transfer learning with few labels (chapter 07): a network trained on the digits 0-4
(:mod:`dlbook.digit_vgg`) carried over to the digits 5-9, three labelled examples a class.

Three contenders, one budget (20 epochs in batches of 5 on the same 15 digits):

- ``"fine-tuned"``: the 0-4 network with a new last layer, every weight trained;
- ``"from scratch"``: the same architecture, freshly initialised;
- ``"linear probe"``: the 0-4 network frozen, only a new last layer trained on its features.

:func:`tune_and_test` picks each one's learning rate on a grid by the loss on other draws of
15 validation digits (as few as the task has labels), then scores it on the test digits for
many draws of the 15 training labels, so that two contenders can be compared seed by seed.
"""
from __future__ import annotations

import copy
import json
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .data import verified_path
from .digit_vgg import make_vgg
from .training import evaluate, fit

CONTENDERS = ("fine-tuned", "from scratch", "linear probe")
EPOCHS, BATCH_SIZE = 20, 5
TUNING_FILE = "transfer_tuning.json"


def few_labels(data, seed: int, per_class: int = 3, n_classes: int = 5):
    """``per_class`` examples of each class of ``data = (x, y)``, drawn with ``seed``:
    ``(x, y)``, ``n_classes * per_class`` of them, class by class."""
    x, y = data
    counts = [int((y == c).sum()) for c in range(n_classes)]
    if min(counts) < per_class:
        raise ValueError(f"need {per_class} examples of each class, the fewest is "
                         f"{min(counts)} (classes 0..{n_classes - 1})")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(y == c)[:, 0][torch.randperm(n, generator=gen)[:per_class]]
                     for c, n in enumerate(counts)])
    return x[idx], y[idx]


def frozen_features(base: nn.Sequential):
    """The function ``x -> base's last feature maps, flattened`` (no gradient): what a linear
    probe on :func:`~dlbook.digit_vgg.make_vgg`'s network sees."""
    device = next(base.parameters()).device

    @torch.no_grad()
    def features(x):
        was = base.training
        base.eval()
        out = base[1].features(base[0](x.to(device))).flatten(1).cpu()  # (B, C*h*w)
        base.train(was)
        return out
    return features


def train_new_task(how: str, base: nn.Sequential, train, lr: float, seed: int,
                   mean: float, std: float, epochs: int = EPOCHS):
    """One contender (``how``, one of :data:`CONTENDERS`) trained on ``train = (x, y)`` from the
    0-4 network ``base`` (left untouched): returns ``(model, prepare)``, where ``model(prepare(x))``
    gives the logits of the new classes."""
    if how not in CONTENDERS:
        raise ValueError(f"how must be one of {CONTENDERS}, got {how!r}")
    torch.manual_seed(seed)
    head = base[1].classifier[-1]
    n_classes = int(train[1].max()) + 1
    if how == "linear probe":
        model, prepare = nn.Linear(head.in_features, n_classes), frozen_features(base)
    else:
        fresh = make_vgg(mean, std)  # drawn for both: their new last layers start alike
        model = copy.deepcopy(base) if how == "fine-tuned" else fresh
        model[1].classifier[-1] = nn.Linear(head.in_features, n_classes)  # a new last layer
        prepare = nn.Identity()
    fit(model, (prepare(train[0]), train[1]), epochs=epochs, batch_size=BATCH_SIZE, seed=seed,
        progress=False, optimizer=lambda p: torch.optim.Adam(p, lr=lr, foreach=True))
    return model, prepare


def validation_losses(how: str, base: nn.Sequential, new, lrs: Iterable[float],
                      tune_seeds: Iterable[int], mean: float, std: float,
                      per_class: int = 3) -> np.ndarray:
    """``how``'s validation loss at every rate of ``lrs`` and tuning seed, ``(lr, seed)``: each
    seed trains on ``per_class`` digits a class of ``new``'s train split and is scored on as many
    of its validation split (as few as the task has labels)."""
    lrs, tune_seeds = list(lrs), list(tune_seeds)
    if not lrs or not tune_seeds:
        raise ValueError("need at least one learning rate and one tuning seed")
    out = np.zeros((len(lrs), len(tune_seeds)))
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(tune_seeds):
            model, prepare = train_new_task(how, base, few_labels(new[0], seed, per_class), lr,
                                            seed, mean, std)
            x, y = few_labels(new[1], seed, per_class)
            out[i, j] = evaluate(model, (prepare(x), y))[0]
    return out


def test_accuracies(how: str, base: nn.Sequential, new, lr: float, test_seeds: Iterable[int],
                    mean: float, std: float, per_class: int = 3) -> np.ndarray:
    """``how`` trained at ``lr`` on each test seed's draw of ``per_class`` digits a class, scored
    once on the whole test split of ``new``: ``(test seed,)`` accuracies."""
    test_seeds = list(test_seeds)
    if not test_seeds:
        raise ValueError("need at least one test seed")
    x_test, y_test = new[2]
    features = frozen_features(base)(x_test) if how == "linear probe" else None  # same each seed
    acc = []
    for seed in test_seeds:
        model, prepare = train_new_task(how, base, few_labels(new[0], seed, per_class), lr, seed,
                                        mean, std)
        acc.append(evaluate(model, (prepare(x_test) if features is None else features,
                                    y_test))[1])
    return np.array(acc)


def tune_and_test(how: str, base: nn.Sequential, new, lrs: Iterable[float],
                  tune_seeds: Iterable[int], test_seeds: Iterable[int], mean: float, std: float,
                  per_class: int = 3, val_loss: np.ndarray | None = None) -> dict:
    """Pick ``how``'s learning rate on the grid ``lrs`` by its mean validation loss over
    ``tune_seeds`` (:func:`validation_losses`; or pass those losses, ``(lr, seed)``, as
    ``val_loss``, e.g. stored by ``tools/transfer_tuning.py``), then train it at that rate for
    every test seed and score it on the whole test split once (:func:`test_accuracies`):
    ``{"val_loss": (lr,), "lr": the pick, "test_acc": (test seed,)}``."""
    lrs, tune_seeds, test_seeds = list(lrs), list(tune_seeds), list(test_seeds)
    if not lrs or not tune_seeds or not test_seeds:
        raise ValueError("need at least one learning rate, tuning seed and test seed")
    if val_loss is None:
        val_loss = validation_losses(how, base, new, lrs, tune_seeds, mean, std, per_class)
    val_loss = np.asarray(val_loss, dtype=float)
    if val_loss.shape != (len(lrs), len(tune_seeds)):
        raise ValueError(f"val_loss must be (lr, tuning seed) = {(len(lrs), len(tune_seeds))}, "
                         f"got {val_loss.shape}")
    mean_loss = val_loss.mean(axis=1)
    lr = lrs[int(mean_loss.argmin())]
    return {"val_loss": mean_loss, "lr": lr,
            "test_acc": test_accuracies(how, base, new, lr, test_seeds, mean, std, per_class)}


def load_tuning() -> dict:
    """``data/transfer_tuning.json`` (by ``tools/transfer_tuning.py``): ``{"lrs", "tune_seeds",
    "val_loss": {contender: (lr, seed) nested lists}, ...}``, the validation losses that pick
    each contender's learning rate in chapter 07."""
    with open(verified_path(TUNING_FILE)) as f:
        return json.load(f)
