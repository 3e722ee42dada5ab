"""Chapter 06's LeNet-5 comparison: LeNet-5 beside two MLPs of its size, and beside itself on
pixels shuffled by one fixed permutation, on MNIST-5k; the runs that chapter 06 and its sweep
(``tools/lenet_sweep.py``) both use.

Every contender trains for :data:`EPOCHS` epochs of Adam with a cosine schedule on batches of
32, keeps the weights of its lowest-validation-loss epoch, and gets its own learning rate,
chosen on validation from its grid in :func:`contenders` (``dlbook.tuning.tune_then_repeat``),
then two more seeds. Twelve epochs is where the validation curves have flattened; that is
minutes of CPU, so the sweep runs it once and commits ``data/lenet_sweep.json``, which
:func:`load_sweep` reads (sha256-checked) and the chapter re-measures a sample of.

    >>> train, val, test = standardised_splits()
    >>> model, history = train_digits("LeNet-5", lr=2e-3, seed=0, data=(train, val))
"""
from __future__ import annotations

import json

import torch
from torch import nn

from .data import mnist5k_splits, verified_path
from .models import MLP, LeNet, count_parameters
from .training import fit

EPOCHS = 12
BATCH_SIZE = 32
SWEEP_FILE = "lenet_sweep.json"
PERMUTATION_SEED = 0  # the one fixed pixel order of "LeNet-5, shuffled pixels"


def layer_costs(model: LeNet) -> list[tuple[str, tuple, int, int]]:
    """Per layer of a LeNet on one 28x28 digit: (layer type, output shape, parameters,
    multiply-adds). A convolution's weight is used once per output position, a dense layer's
    once; pooling and activations multiply nothing."""
    h, rows = torch.zeros(1, 1, 28, 28), []
    with torch.no_grad():
        for layer in [*model.features, *model.classifier]:
            h = layer(h)  # (1, C, H, W) or (1, features)
            uses = h.shape[-2] * h.shape[-1] if isinstance(layer, nn.Conv2d) else 1
            macs = layer.weight.numel() * uses if hasattr(layer, "weight") else 0
            rows.append((type(layer).__name__, tuple(h.shape[1:]), count_parameters(layer), macs))
    return rows


def mlp_sizes() -> dict[str, int]:
    """Hidden units of a 784-h-10 MLP with LeNet-5's parameters, and with its multiply-adds."""
    lenet = LeNet()
    n_params = count_parameters(lenet)
    macs = sum(row[3] for row in layer_costs(lenet))
    # 784 -> h -> 10: (784 + 1 + 10) h + 10 parameters, (784 + 10) h multiply-adds
    return {"MLP, equal params": round((n_params - 10) / 795),
            "MLP, equal mult-adds": round(macs / 794)}


def contenders() -> dict[str, tuple]:
    """name -> (model factory, learning-rate grid, pixels shuffled?)."""
    sizes = mlp_sizes()
    lenet_grid = [1e-3, 2e-3, 4e-3, 8e-3]
    mlp_grid = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    return {
        "LeNet-5": (LeNet, lenet_grid, False),
        "MLP, equal params": (lambda: MLP(sizes=(784, sizes["MLP, equal params"], 10)),
                              mlp_grid, False),
        "MLP, equal mult-adds": (lambda: MLP(sizes=(784, sizes["MLP, equal mult-adds"], 10)),
                                 mlp_grid, False),
        "LeNet-5, shuffled pixels": (LeNet, lenet_grid, True),
    }


def standardised_splits():
    """MNIST-5k's 3,200 / 800 / 1,000 digits as (B, 1, 28, 28), standardised with the training
    set's mean and spread."""
    train, val, test = mnist5k_splits(flatten=False)
    mean, std = train[0].mean(), train[0].std()
    return [((x - mean) / std, y) for x, y in (train, val, test)]


def permutation() -> torch.Tensor:
    """The fixed order of the 784 pixels for the shuffled condition."""
    return torch.randperm(784, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


def shuffle_pixels(images: torch.Tensor) -> torch.Tensor:
    """Every image's pixels put in the same fixed order (:func:`permutation`)."""
    if images.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected digits of shape (B, 1, 28, 28), got {tuple(images.shape)}")
    return images.flatten(1)[:, permutation()].view_as(images)  # (B, 1, 28, 28)


def prepare(name: str, data):
    """``data`` as contender ``name`` sees it (pixels shuffled for the shuffled condition)."""
    if name not in contenders():
        raise ValueError(f"name must be one of {sorted(contenders())}, got {name!r}")
    if not contenders()[name][2]:
        return data
    return [(shuffle_pixels(x), y) for x, y in data]


def train_digits(name: str, lr: float, seed: int, data, epochs: int = EPOCHS):
    """Train contender ``name`` on ``data = (train, val)`` (unshuffled: shuffling is done here)
    at ``lr``: Adam, cosine schedule over ``epochs``, batches of 32, the weights of the
    lowest-validation-loss epoch kept. Returns (model, History)."""
    make_model = contenders()[name][0] if name in contenders() else None
    train, val = prepare(name, data)
    torch.manual_seed(seed)  # the initial weights
    model = make_model()
    history = fit(model, train, val, epochs=epochs, batch_size=BATCH_SIZE, lr=lr, seed=seed,
                  scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
                  patience=epochs, progress=False)  # patience = epochs: keep the best epoch
    return model, history


def load_sweep() -> dict:
    """The committed results of ``tools/lenet_sweep.py`` (sha256-checked)."""
    with open(verified_path(SWEEP_FILE), encoding="utf-8") as f:
        return json.load(f)
