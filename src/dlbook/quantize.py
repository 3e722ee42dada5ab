"""int8 weight quantization from scratch: per-output-channel absmax.

Each row of a weight matrix (one output channel) gets its own scale, so that its largest entry
lands on +-127:

    s_i = max_j |W_ij| / 127          q_ij = round(W_ij / s_i)  in [-127, 127]  (int8)
    W_ij ~ s_i q_ij                   |W_ij - s_i q_ij| <= s_i / 2

A weight takes 1 byte instead of 4 (plus one float scale per row). Because the scale belongs to
the output row, it factors out of the matrix product:

    y_i = sum_j W_ij x_j + b_i ~ s_i * sum_j q_ij x_j + b_i

which is what :class:`Int8Linear` computes. Only the weights are quantized ("weight-only");
activations stay in floating point. PyTorch's ``quantize_dynamic`` also quantizes the
activations, on the fly, to uint8 per tensor.

    >>> q, scale = quantize_weight(linear.weight)       # int8 (out, in), float (out,)
    >>> quantize_model(model, skip=("lm_head",))         # Linear -> Int8Linear, in place
    >>> model_bytes(model)                                # parameters + buffers, each once
"""
from __future__ import annotations

import copy

import io
import warnings

import torch
from torch import nn

QMAX = 127  # symmetric int8: -127..127 (-128 is never used, so +-x map to +-q)


def _check_finite(w: torch.Tensor, caller: str) -> None:
    """A NaN or infinite weight has no absmax grid: it would quantize to a finite, wrong row
    (NaN: scale 1, all-zero codes) or dequantize to NaN (inf). Refuse it up front."""
    bad = ~torch.isfinite(w)
    if bad.any():
        rows = bad.any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"{caller}: the weight has {int(bad.sum())} non-finite entries (NaN or "
                         f"inf) in rows {rows[:5]}{'...' if len(rows) > 5 else ''}; quantize a "
                         "trained, finite weight (check the model for a diverged layer)")


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: int8 ``q`` of ``weight``'s shape ``(out, in)`` and one float scale per
    row, ``scale = max|row| / 127`` (a row of zeros gets scale 1, not a division by zero)."""
    if weight.dim() != 2:
        raise ValueError(f"quantize_weight takes a 2-D (out, in) weight, got shape "
                         f"{tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"quantize_weight takes a floating-point weight, got {weight.dtype}")
    w = weight.detach().float()
    _check_finite(w, "quantize_weight")
    absmax = w.abs().amax(dim=1)  # (out,)
    scale = torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))  # (out,)
    q = torch.round(w / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8)  # (out, in)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float weight that ``(q, scale)`` stands for: ``scale_i * q_ij``."""
    if q.dim() != 2 or scale.shape != q.shape[:1]:
        raise ValueError(f"q {tuple(q.shape)} needs one scale per row, got {tuple(scale.shape)}")
    return q.float() * scale[:, None]  # (out, in)


def fake_quantize(weight: torch.Tensor, bits: int = 8, per_channel: bool = True) -> torch.Tensor:
    """``weight`` rounded to a symmetric ``bits``-bit absmax grid and mapped back to floats: the
    weight a ``bits``-bit model computes with. ``per_channel``: one scale per row (as
    :func:`quantize_weight`, which this equals at 8 bits); else one scale for the whole tensor.
    ``qmax = 2^(bits-1) - 1`` levels on each side of zero (1 bit would leave only zero)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be a whole number from 2 to 16, got {bits!r}")
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"fake_quantize takes a 2-D floating-point (out, in) weight, got "
                         f"{weight.dtype} of shape {tuple(weight.shape)}")
    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    _check_finite(w, "fake_quantize")
    absmax = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().amax().reshape(1, 1)
    scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))  # (out, 1) or (1, 1)
    return (torch.round(w / scale).clamp(-qmax, qmax) * scale).to(weight.dtype)  # (out, in)


class Int8Linear(nn.Module):
    """A linear layer stored as int8 weights and per-row scales: ``y = s * (x q^T) + b``."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        if q.dtype != torch.int8:
            raise TypeError(f"q must be int8, got {q.dtype}")
        self.out_features, self.in_features = q.shape
        self.register_buffer("qweight", q)  # (out, in) int8
        self.register_buffer("scale", scale.float())  # (out,)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scale = quantize_weight(linear.weight)
        return cls(q, scale, linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The float weight the int8 one stands for (for layers that read ``.weight`` instead
        of calling the module, as dlbook.attention's in_proj)."""
        return dequantize(self.qweight, self.scale)  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., in)
        y = (x @ self.qweight.to(x.dtype).T) * self.scale.to(x.dtype)  # (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_model(model: nn.Module, skip=()) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (except those whose name contains one of
    ``skip``) by an :class:`Int8Linear`, in place. Returns the model."""
    if isinstance(skip, str):
        skip = (skip,)
    chosen = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.Linear) and not any(s in n for s in skip)]
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to quantize "
                         f"(skip={tuple(skip)!r})")
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear.from_linear(linear))
    return model


def model_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers, each tensor once (tied weights share)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: a size that also counts the packed weights
    of PyTorch's own quantized modules, which are neither parameters nor buffers."""
    sink = _ByteCounter()  # counts what torch.save writes, without holding a copy of it
    torch.save(model.state_dict(), sink)
    return sink.count


class _ByteCounter(io.RawIOBase):
    def __init__(self):
        super().__init__()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        self.count += size
        return size


def torch_dynamic_int8(model: nn.Module, per_channel: bool = True,
                       names=None) -> nn.Module | None:
    """PyTorch's own ``torch.ao.quantization.quantize_dynamic`` (int8 weights, per output
    channel when ``per_channel``; activations quantized on the fly), on a CPU copy's Linear
    layers (``model`` itself is left as it was, on its device).

    ``torch.ao.quantization`` is deprecated (its successor is the separate ``torchao``
    package): its warnings are silenced here, and None is returned if this torch no longer has
    it, so that callers can say so rather than fail.
    """
    try:
        from torch.ao.quantization import (
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )
    except ImportError:
        return None
    qconfig = {nn.Linear: per_channel_dynamic_qconfig} if per_channel else {nn.Linear}
    if names is not None:  # only these submodules (by name)
        from torch.ao.quantization import default_dynamic_qconfig

        qconfig = {n: per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
                   for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one copy, on the CPU (the only device quantize_dynamic supports), quantized in place
        return quantize_dynamic(copy.deepcopy(model).cpu(), qconfig, dtype=torch.qint8,
                                inplace=True)


def torch_int8_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(int8 weight, per-row scales)`` of one of PyTorch's dynamic quantized Linear layers."""
    w = module.weight()
    if w.qscheme() in (torch.per_channel_symmetric, torch.per_channel_affine):
        scales = w.q_per_channel_scales().float()
    else:
        scales = torch.full((w.shape[0],), float(w.q_scale()))
    return w.int_repr(), scales


def compare_with_torch(model: nn.Module, torch_model: nn.Module, skip=("head",)):
    """Our int8 codes and scales against those of ``torch_model`` (``model`` after
    :func:`torch_dynamic_int8`), for every Linear of ``model`` whose name is not in ``skip``
    and that PyTorch quantized: ``(largest integer difference, [mean scale ratio ours/theirs
    per layer])``."""
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    ours = {n: m for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and n not in skip}
    int_diff, ratios = 0, []
    for name, module in torch_model.named_modules():
        if name in ours and hasattr(module, "weight") and callable(module.weight):
            q_ref, s_ref = torch_int8_weights(module)
            q, s = quantize_weight(ours[name].weight.detach().cpu())
            int_diff = max(int_diff, (q.int() - q_ref.int()).abs().max().item())
            ratios.append((s / s_ref).mean().item())
    if not ratios:
        raise ValueError("no Linear layer of model was quantized in torch_model")
    return int_diff, ratios


# --- 4 bits: a scale per block, and a grid shaped like the weights (QLoRA's NF4) -----------

# NormalFloat4 (Dettmers et al., 2023, QLoRA): the 16 levels in [-1, 1] that split a standard
# normal distribution into equally likely pieces (one side of zero with 8 levels, the other with
# 7, and zero itself), so that normally distributed weights use every level equally often.
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0])


def block_quantize(weight: torch.Tensor, block: int = 64, levels: str | int = "nf4"):
    """``weight`` rounded blockwise (as floats): every ``block`` consecutive weights of a row
    share one absmax scale, and each is rounded to the nearest of ``levels`` times that scale:
    ``"nf4"`` the 16 :data:`NF4_LEVELS`, or an int ``b`` for the uniform symmetric b-bit grid
    (``2^(b-1) - 1`` steps each side of zero, as :func:`fake_quantize`). The row length must
    be a multiple of ``block``."""
    _check_finite(weight, "block_quantize")
    if weight.ndim != 2:
        raise ValueError(f"block_quantize takes a (out, in) weight, got {tuple(weight.shape)}")
    if not isinstance(block, int) or block < 1 or weight.shape[1] % block:
        raise ValueError(f"block ({block!r}) must be a whole number that divides the row "
                         f"length {weight.shape[1]}")
    w = weight.detach().float().reshape(weight.shape[0], -1, block)  # (out, in/block, block)
    scale = w.abs().amax(-1, keepdim=True).clamp_min(1e-12)  # (out, in/block, 1)
    x = w / scale  # in [-1, 1]
    if levels == "nf4":
        grid = NF4_LEVELS.to(x.device)
        midpoints = (grid[1:] + grid[:-1]) / 2  # nearest level = how many midpoints lie below
        q = grid[torch.bucketize(x, midpoints)]
    elif isinstance(levels, int) and 2 <= levels <= 16:
        steps = 2 ** (levels - 1) - 1
        q = torch.round(x * steps) / steps
    else:
        raise ValueError(f"levels must be 'nf4' or a bit width in [2, 16], got {levels!r}")
    return (q * scale).reshape(weight.shape).to(weight.dtype)
