"""LoRA (Hu et al., 2021) from its equations.

A frozen linear layer ``y = W x + b`` gains a low-rank update that is trained instead of W:

    y = W x + b + (alpha / r) * B A x        A: (r, in), B: (out, r), r << min(in, out)

A starts random (Kaiming-uniform, as the paper's reference code does) and B starts at zero, so
the adapted model computes exactly what the base model computed until the first step. Only A and
B are trained: ``r * (in + out)`` numbers per layer instead of ``in * out``. After training,
:meth:`LoRALinear.merge` folds the update into the weight, ``W <- W + (alpha / r) B A``, so the
served model has no extra cost at all.

    >>> lora_model = add_lora(model, rank=8, alpha=16, targets=("attn", "mlp"))
    >>> count_parameters(lora_model)        # ParameterCount(trainable=..., total=...)
    >>> merge_lora(lora_model)              # back to plain nn.Linear layers
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def check_rank_alpha(rank, alpha) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"LoRA alpha must be a positive number, got {alpha!r}")


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] | None = None  # substrings of module names; None: every nn.Linear

    def __post_init__(self):
        check_rank_alpha(self.rank, self.alpha)


PRESETS = {"tiny": LoRAConfig(rank=2, alpha=4.0), "small": LoRAConfig(rank=8, alpha=16.0)}


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) B A``."""

    def __init__(self, base: nn.Linear, rank: int = 8, alpha: float = 16.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        check_rank_alpha(rank, alpha)
        if rank > min(base.in_features, base.out_features):
            raise ValueError(f"rank {rank} exceeds min(in, out) = "
                             f"{min(base.in_features, base.out_features)}: not low-rank")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha = rank, float(alpha)
        self.scale = self.alpha / rank
        w = base.weight
        self.A = nn.Parameter(torch.empty(rank, base.in_features, dtype=w.dtype, device=w.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear (and the LoRA code)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        return self.scale * (self.B @ self.A)  # (out, r) @ (r, in) -> (out, in)

    # Some layers read a Linear's weight instead of calling it (dlbook.attention's
    # MultiHeadAttention splits in_proj.weight into W_q, W_k, W_v): they get the adapted
    # weight W + (alpha / r) B A, through which the gradient still reaches A and B.
    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight + self.delta_weight()  # (out, in)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., in)
        y = self.base(x)  # (..., out)
        if self.merged:
            return y
        return y + self.scale * ((x @ self.A.T) @ self.B.T)  # (..., r) -> (..., out)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain nn.Linear with ``W + (alpha / r) B A``: the same function, no adapter."""
        merged = nn.Linear(self.base.in_features, self.base.out_features,
                           bias=self.base.bias is not None, device=self.base.weight.device,
                           dtype=self.base.weight.dtype)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def _matches(name: str, targets) -> bool:
    return targets is None or any(t in name for t in targets)


def add_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, targets=None) -> nn.Module:
    """Wrap the ``nn.Linear`` layers of ``model`` whose names contain one of ``targets`` (all of
    them when None) in :class:`LoRALinear`, in place, and freeze every other parameter.

    Returns the model. Raises if no layer matches (a typo in ``targets`` would otherwise train
    nothing at all).
    """
    check_rank_alpha(rank, alpha)
    if isinstance(targets, str):
        targets = (targets,)
    chosen = [(name, mod) for name, mod in model.named_modules()
              if isinstance(mod, nn.Linear) and not isinstance(mod, LoRALinear)
              and _matches(name, targets)]
    if not chosen:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no nn.Linear layer of {type(model).__name__} matches targets="
                         f"{targets!r}; its Linear layers are {linear[:12]}"
                         + (" ..." if len(linear) > 12 else ""))
    for p in model.parameters():
        p.requires_grad_(False)
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(linear, rank, alpha))
    return model


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` of ``model`` by its merged ``nn.Linear``, in place."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers to merge (call add_lora first)")
    for name, layer in layers:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.merge())
    return model


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameters (shared tensors, e.g. tied embeddings, counted once)."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return ParameterCount(trainable, total)


def lora_parameter_count(shapes, rank: int) -> int:
    """What LoRA trains on layers of the given ``(in, out)`` shapes: ``sum r (in + out)``."""
    return sum(rank * (i + o) for i, o in shapes)
