"""Weight initialization and what it does to signals in a deep network (chapter 04, Optimization).

A layer computes z = W h + b and passes a = f(z) on. If the entries of W are independent with
variance s^2 and h has n_in entries, then Var(z) = n_in * s^2 * E[h^2]: every layer multiplies the
scale of the signal by a factor that depends on s, on the width and on the activation f. The same
happens to the gradient on its way back, with n_out in place of n_in and f'(z) in place of f. Over
20 layers a factor of 0.5 becomes 1e-6 and a factor of 2 becomes 1e6: vanishing and exploding
signals. An initialization scheme picks s so that the factor is about 1:

    scheme   std of W                      keeps steady
    small    0.01                          nothing (the signal shrinks; a common naive choice)
    normal   1                             nothing (the signal grows; the other naive choice)
    xavier   sqrt(2 / (n_in + n_out))      forward and backward variance of tanh-like units
                                           (Glorot & Bengio, 2010)
    he       sqrt(2 / n_in)                forward variance of ReLU units, which zero half
                                           their inputs (He et al., 2015)

`deep_mlp` builds a plain multi-layer perceptron with one of these schemes, and `layer_statistics`
runs one batch forward and backward through it and reports, layer by layer, how large the
activations and the weight gradients are (the chapter's depth experiment).

    >>> model = deep_mlp(depth=20, activation="tanh", init="xavier", seed=0)
    >>> stats = layer_statistics(model, x, y)      # x: (B, 784) inputs, y: (B,) class labels
    >>> stats.grad_norm[0], stats.grad_norm[-1]    # first and last hidden layer
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import ACTIVATIONS, MLP

INIT_SCHEMES = ("small", "normal", "xavier", "he")


def init_std(scheme: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation of a weight matrix's entries under ``scheme`` (see the module table)."""
    if scheme == "small":
        return 0.01
    if scheme == "normal":
        return 1.0
    if scheme == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "he":
        return math.sqrt(2.0 / fan_in)
    raise ValueError(f"unknown init scheme {scheme!r}; choose one of {INIT_SCHEMES}")


@torch.no_grad()
def initialize_(model: nn.Module, scheme: str, generator: torch.Generator | None = None) -> nn.Module:
    """Re-draw every ``nn.Linear`` weight of ``model`` from N(0, init_std^2) and zero the biases.

    Works in place and returns ``model``. Pass a seeded ``generator`` to get the same weights every
    time without touching the global random state.
    """
    init_std(scheme, 1, 1)  # fail early, with the list of schemes, on a typo
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("initialize_ found no nn.Linear layer in the model")
    for layer in linears:
        fan_out, fan_in = layer.weight.shape  # nn.Linear stores W as (out, in)
        nn.init.normal_(layer.weight, 0.0, init_std(scheme, fan_in, fan_out), generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()
    return model


def deep_mlp(depth: int = 20, width: int = 256, activation: str = "tanh", init: str = "xavier",
             in_features: int = 784, out_features: int = 10, seed: int = 0) -> MLP:
    """An MLP with ``depth`` hidden layers of ``width`` units, initialized with ``init``.

    Layout: Linear(in, width) -> f -> [Linear(width, width) -> f] x (depth - 1) -> Linear(width, out),
    the book's :class:`dlbook.models.MLP`, so ``depth`` counts the hidden layers (the nonlinearities).
    """
    if depth < 1:
        raise ValueError(f"depth counts hidden layers and must be >= 1, got {depth}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    model = MLP(sizes=(in_features, *[width] * depth, out_features), activation=activation)
    return initialize_(model, init, torch.Generator().manual_seed(seed))


@dataclass
class LayerStats:
    """One forward and backward pass, seen layer by layer (index 0 = the first hidden layer)."""

    activation_std: np.ndarray  # (depth,) std over batch and units of each hidden layer's output f(z)
    grad_norm: np.ndarray       # (depth,) Frobenius norm of dLoss/dW of each hidden layer's weight
    output_grad_norm: float     # the same for the output layer's weight
    loss: float


def layer_statistics(model: MLP, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy) -> LayerStats:
    """Run ``model`` on one batch, backpropagate ``loss_fn``, and measure every hidden layer.

    The model's gradients are overwritten (and left in place); its weights are not changed.
    """
    activation_types = tuple(ACTIVATIONS.values())
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _inp, out: outputs.append(out.detach()))
             for m in model.modules() if isinstance(m, activation_types)]
    try:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    grad_norms = [layer.weight.grad.norm().item() for layer in linears]
    return LayerStats(
        activation_std=np.array([out.float().std().item() for out in outputs]),
        grad_norm=np.array(grad_norms[:-1]),
        output_grad_norm=grad_norms[-1],
        loss=loss.item(),
    )
