"""Chapter 07's small VGG on the digits 0-4 of MNIST-5k: the network its interpretation sections
(filters, feature maps, saliency, Grad-CAM, occlusion, adversarial examples) open up, and the
0-4 network its transfer section starts from.

It is trained with Adam on batches of 32, the learning rate decayed along a cosine over the run,
keeping the weights of the epoch with the lowest validation loss. The learning rate was
chosen on the validation digits by ``tools/vgg_sweep.py`` (three rates, 3 seeds each; the number
of epochs is fixed at its grid's one value, 8), which commits ``data/vgg_sweep.json``; :func:`load_sweep` reads it, and the chapter
trains the chosen setting and checks that it reproduces the stored run.

    >>> old, new, (mean, std) = digit_tasks()
    >>> model, history = train_vgg(old, lr=3e-3, epochs=6, seed=0, mean=mean, std=std)
"""
from __future__ import annotations

import json

import torch
from torch import nn
from torchvision.transforms import v2

from .data import mnist5k_splits, verified_path
from .models import VGG
from .training import fit

SWEEP_FILE = "vgg_sweep.json"
BATCH_SIZE = 32


def classes(data, first: int):
    """The digits ``first`` .. ``first + 4`` of a split ``(x, y)``, relabelled 0 .. 4."""
    x, y = data
    keep = (y >= first) & (y < first + 5)
    return x[keep], y[keep] - first


def digit_tasks():
    """``(old, new, (mean, std))``: the train/validation/test splits of the digits 0-4 (old) and
    5-9 (new), images (B, 1, 28, 28) in [0, 1], and the old training digits' mean and spread."""
    splits = mnist5k_splits(flatten=False)
    old = [classes(d, 0) for d in splits]
    new = [classes(d, 5) for d in splits]
    return old, new, (old[0][0].mean().item(), old[0][0].std().item())


def make_vgg(mean: float, std: float) -> nn.Sequential:
    """Standardise inside the network (inputs stay in [0, 1]), then two VGG blocks of two
    convolutions (8 and 16 channels) with BatchNorm, and a linear layer for 5 classes."""
    return nn.Sequential(
        v2.Normalize([mean], [std]),
        VGG(blocks=((2, 8), (2, 16)), n_classes=5, batchnorm=True),
    )


def train_vgg(old, lr: float, epochs: int, seed: int, mean: float, std: float):
    """A fresh :func:`make_vgg` (seeded) trained on ``old[0]``, validated on ``old[1]``:
    returns ``(model, history)``."""
    if not (lr > 0 and epochs >= 1):
        raise ValueError(f"need lr > 0 and epochs >= 1, got lr={lr}, epochs={epochs}")
    torch.manual_seed(seed)
    model = make_vgg(mean, std)
    history = fit(
        model, old[0], old[1], epochs=epochs, batch_size=BATCH_SIZE, seed=seed,
        optimizer=lambda p: torch.optim.Adam(p, lr=lr, foreach=True),
        scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
        patience=epochs)  # keeps the epoch of lowest validation loss
    return model, history


def load_sweep() -> dict:
    """The stored sweep: ``{"lrs", "epochs", "seeds", "val_loss", "val_acc"}``, the last two
    nested lists indexed [epochs][lr][seed] (the kept epoch's validation loss and accuracy)."""
    with open(verified_path(SWEEP_FILE)) as f:
        return json.load(f)
