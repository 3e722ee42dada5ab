"""Several small networks trained side by side, as one batched model (book machinery).

A small network's training step is mostly per-operation overhead, not arithmetic. ``M``
independent members whose weights are stacked into ``(M, ...)`` tensors and applied with one
batched matmul therefore cost about what one member does. Chapter 11 trains seeds and variants
of a GAN this way (:mod:`dlbook.gan`), and :func:`dlbook.tuning.fit_side_by_side` a grid of
learning rates and seeds.

- :class:`EnsembleLinear`: ``M`` independent linear layers, ``(M, B, n_in) -> (M, B, n_out)``;
  :meth:`EnsembleLinear.from_linears` stacks existing ``nn.Linear`` layers and
  :meth:`EnsembleLinear.copy_into` writes each member back.
- :func:`mlp`: Linear-ReLU-...-Linear built from them.

The members share no weights, so the sum of their losses gives each exactly its own gradient.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers run as one batched matmul: ``(M, B, n_in) ->
    (M, B, n_out)``. Each member starts as ``nn.Linear`` would, from its own generator when one
    is given. The weight is stored ``(M, n_in, n_out)``, so the matmul reads it without a
    transpose."""

    def __init__(self, members: int, n_in: int, n_out: int,
                 generators: list[torch.Generator] | None = None):
        super().__init__()
        if min(members, n_in, n_out) < 1:
            raise ValueError(f"members, n_in and n_out must be positive, got {members}, {n_in}, "
                             f"{n_out}")
        if generators is not None and len(generators) != members:
            raise ValueError(f"need one generator per member: {len(generators)} for {members}")
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out))
        bound = 1 / math.sqrt(n_in)  # nn.Linear's default: U(-1/sqrt(n_in), 1/sqrt(n_in))
        with torch.no_grad():
            for m in range(members):
                gen = generators[m] if generators is not None else None
                self.weight[m].copy_(torch.rand(n_in, n_out, generator=gen) * 2 * bound - bound)
                self.bias[m].copy_(torch.rand(1, n_out, generator=gen) * 2 * bound - bound)

    @classmethod
    def from_linears(cls, linears: Sequence[nn.Linear]) -> "EnsembleLinear":
        """One member per ``nn.Linear`` (all of one shape, with biases), starting at its weights."""
        shapes = {(tuple(layer.weight.shape), layer.bias is not None) for layer in linears}
        if len(shapes) != 1 or not next(iter(shapes))[1]:
            raise ValueError("from_linears needs at least one nn.Linear, all of one shape and "
                             f"with biases; got shapes {sorted(shapes)}")
        n_out, n_in = linears[0].weight.shape
        layer = cls(len(linears), n_in, n_out)
        with torch.no_grad():
            layer.weight.copy_(torch.stack([lin.weight.detach().T for lin in linears]))
            layer.bias.copy_(torch.stack([lin.bias.detach()[None] for lin in linears]))
        return layer

    def copy_into(self, linears: Sequence[nn.Linear], weight: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None) -> None:
        """Write member ``m`` into ``linears[m]``: this layer's weights, or the ``weight`` and
        ``bias`` given (tensors of this layer's shapes, such as a kept best copy)."""
        weight = self.weight if weight is None else weight  # (M, n_in, n_out)
        bias = self.bias if bias is None else bias  # (M, 1, n_out)
        if len(linears) != weight.shape[0]:
            raise ValueError(f"need one nn.Linear per member: {len(linears)} for "
                             f"{weight.shape[0]}")
        with torch.no_grad():
            for m, lin in enumerate(linears):
                lin.weight.copy_(weight[m].T)
                lin.bias.copy_(bias[m, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n_in, _ = self.weight.shape
        if x.ndim != 3 or x.shape[0] != m or x.shape[2] != n_in:
            hint = " (add a leading members axis: x.unsqueeze(0))" if x.ndim == 2 else ""
            raise ValueError(f"EnsembleLinear takes (members={m}, B, n_in={n_in}) inputs, got "
                             f"{tuple(x.shape)}{hint}")
        return torch.baddbmm(self.bias, x, self.weight)  # (M, B, n_out)


def mlp(sizes: tuple[int, ...], output: str = "linear", members: int = 1,
        generators: list[torch.Generator] | None = None) -> nn.Sequential:
    """Linear-ReLU-...-Linear over ``sizes``, ``members`` independent copies side by side;
    ``output="tanh"`` squashes the last layer into [-1, 1] (for images scaled to that range)."""
    if output not in ("linear", "tanh"):
        raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(EnsembleLinear(members, n_in, n_out, generators))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if output == "tanh":
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)
