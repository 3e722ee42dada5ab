"""Small models that several chapters share.

Every model here is an ordinary ``nn.Module``; chapters build on them and compare them in one loop.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
               "identity": nn.Identity}


@dataclass
class MLPConfig:
    """A multi-layer perceptron: ``sizes = [in, hidden..., out]``."""

    sizes: Sequence[int] = (784, 128, 10)
    activation: str = "relu"
    dropout: float = 0.0        # applied after each hidden activation
    batchnorm: bool = False     # BatchNorm1d before each hidden activation

    @classmethod
    def tiny(cls) -> "MLPConfig":
        return cls(sizes=(784, 32, 10))

    @classmethod
    def mnist(cls) -> "MLPConfig":
        return cls(sizes=(784, 256, 128, 10))


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout], repeated; the last layer is linear (logits)."""

    def __init__(self, config: MLPConfig | None = None, **overrides):
        super().__init__()
        config = config or MLPConfig()
        unknown = set(overrides) - set(config.__dataclass_fields__)
        if unknown:
            raise TypeError(f"MLPConfig has no field(s) {sorted(unknown)}; fields: {list(config.__dataclass_fields__)}")
        config = replace(config, **overrides)  # never mutate the caller's config
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}; choose from {sorted(ACTIVATIONS)}")
        if len(config.sizes) < 2:
            raise ValueError(f"sizes needs at least [in, out], got {list(config.sizes)}")
        self.config = config
        layers: list[nn.Module] = []
        pairs = list(zip(config.sizes[:-1], config.sizes[1:]))
        for i, (n_in, n_out) in enumerate(pairs):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(pairs) - 1:
                if config.batchnorm:
                    layers.append(nn.BatchNorm1d(n_out))
                layers.append(ACTIVATIONS[config.activation]())
                if config.dropout > 0:
                    layers.append(nn.Dropout(config.dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # (B, ...) -> (B, in) -> (B, out)

    def hidden(self, x: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """The activations after hidden layer ``layer`` (0 = first), e.g. to show learned features."""
        h = x.flatten(1)
        seen = -1
        for module in self.net:
            h = module(h)
            if isinstance(module, tuple(ACTIVATIONS.values())):
                seen += 1
                if seen == layer:
                    return h
        raise IndexError(f"the model has {seen + 1} hidden layers; asked for layer {layer}")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
