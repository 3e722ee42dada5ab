"""Convolution and pooling written out, to be checked against ``torch.nn.functional`` (chapter 06).

Three ways to compute the same 2-D convolution (strictly, the cross-correlation deep learning
calls convolution), from the most explicit to the fastest:

- :func:`conv2d_loops`: a Python loop over output positions; each output pixel is the sum of a
  kernel times the input patch under it. Slow, and exactly the definition.
- :func:`conv2d_unfold`: *im2col*. :func:`im2col` copies every patch into a column once, and the
  convolution becomes one matrix product, the operation hardware is best at.
- ``torch.nn.functional.conv2d``: what PyTorch runs (on the CPU, a tuned im2col or Winograd/oneDNN
  kernel). The tests check that all three agree, outputs and gradients, for random shapes,
  strides, paddings, dilations and groups.

Pooling (:func:`max_pool2d`, :func:`avg_pool2d`) reuses the patches of :func:`im2col`.
:func:`conv_output_size` is the output-size formula and :func:`receptive_field` how far a stack
of layers sees. Every function is differentiable by autograd, so backward needs no extra code;
:func:`conv2d_input_grad` and :func:`conv2d_weight_grad` write that backward pass out anyway, to
show that it is two more convolutions (the tests check them against autograd).

Shapes follow PyTorch: images ``(B, C, H, W)``, kernels ``(C_out, C_in / groups, kH, kW)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as (height, width), checked to be whole numbers >= ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be a whole number or a pair of them, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """The length of a convolution's (or pooling's) output along one axis:

        floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1

    A dilated kernel spans ``dilation * (kernel_size - 1) + 1`` input pixels; padding adds
    ``padding`` on each side; the kernel fits at every ``stride``-th position that keeps it
    inside. Raises ValueError when the kernel does not fit at all.
    """
    for name, value, minimum in (("size", size, 1), ("kernel_size", kernel_size, 1),
                                 ("stride", stride, 1), ("padding", padding, 0),
                                 ("dilation", dilation, 1)):
        _pair(value, name, minimum)  # one scalar each: the same checks as the 2-D functions
        if not isinstance(value, int):
            raise ValueError(f"conv_output_size works on one axis: {name} must be an int")
    span = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"a kernel spanning {span} pixels does not fit in {size} pixels "
                         f"with padding {padding}: use more padding or a smaller kernel")
    return (size + 2 * padding - span) // stride + 1


def receptive_field(kernel_sizes: Sequence[int], strides: Sequence[int] | None = None,
                    dilations: Sequence[int] | None = None) -> int:
    """How many input pixels (along one axis) one output pixel of a stack of layers depends on.

    Layer ``l`` adds ``dilation_l * (kernel_l - 1)`` steps of the input grid as seen at its own
    resolution, which is the product of the strides before it:
    ``r = 1 + sum_l d_l (k_l - 1) prod_{m<l} s_m``. Two 3x3 convolutions see 5x5, three see 7x7.
    """
    n = len(kernel_sizes)
    strides = [1] * n if strides is None else list(strides)
    dilations = [1] * n if dilations is None else list(dilations)
    if not (len(strides) == len(dilations) == n):
        raise ValueError("kernel_sizes, strides and dilations need one entry per layer")
    r, jump = 1, 1
    for k, s, d in zip(kernel_sizes, strides, dilations):
        if min(k, s, d) < 1:
            raise ValueError(f"kernel sizes, strides and dilations are >= 1, got {k}, {s}, {d}")
        r += d * (k - 1) * jump
        jump *= s
    return r


def _check_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int):
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}"
                         "; add a batch axis with x.unsqueeze(0)")
    if weight.ndim != 4:
        raise ValueError(f"weight must be (C_out, C_in / groups, kH, kW), got {tuple(weight.shape)}")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive whole number, got {groups!r}")
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({c_in}) and "
                         f"the output channels ({c_out})")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"weight expects {weight.shape[1] * groups} input channels "
                         f"({weight.shape[1]} per group x {groups} groups), x has {c_in}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")


def _output_hw(x, kernel, stride, padding, dilation) -> tuple[int, int]:
    return tuple(conv_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
                 for a in range(2))


def conv2d_loops(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                 groups: int = 1) -> torch.Tensor:
    """2-D convolution by its definition: for each output position, multiply the kernel with the
    input patch under it and add everything up,

        out[b, o, i, j] = bias[o] + sum_{c, u, v} w[o, c, u, v] * x[b, c, i*s + u*d, j*s + v*d]

    (``x`` zero-padded first). The loops run over groups and output positions; the sum over
    channels and kernel offsets is one vectorised multiply-and-add per output pixel.
    """
    _check_conv(x, weight, bias, groups)
    kernel = weight.shape[2:]
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    h_out, w_out = _output_hw(x, kernel, stride, padding, dilation)
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))  # zeros around the image
    c_in_g, c_out_g = x.shape[1] // groups, weight.shape[0] // groups
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    out = []
    for g in range(groups):
        xg = x[:, g * c_in_g:(g + 1) * c_in_g]                    # (B, C_in/g, H+2p, W+2p)
        wg = weight[g * c_out_g:(g + 1) * c_out_g]                # (C_out/g, C_in/g, kH, kW)
        rows = []
        for i in range(h_out):
            top = i * stride[0]
            row = []
            for j in range(w_out):
                left = j * stride[1]
                patch = xg[:, :, top:top + span_h:dilation[0],
                           left:left + span_w:dilation[1]]        # (B, C_in/g, kH, kW)
                row.append((patch[:, None] * wg[None]).sum(dim=(2, 3, 4)))  # (B, C_out/g)
            rows.append(torch.stack(row, dim=-1))                 # (B, C_out/g, W_out)
        out.append(torch.stack(rows, dim=-2))                     # (B, C_out/g, H_out, W_out)
    out = torch.cat(out, dim=1)                                   # (B, C_out, H_out, W_out)
    if bias is not None:
        out = out + bias[:, None, None]
    return out


def im2col(x: torch.Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, pad_value: float = 0.0) -> torch.Tensor:
    """Every kernel-sized patch of ``x`` as a column: ``(B, C, H, W) -> (B, C*kH*kW, L)``, with
    ``L = H_out * W_out`` patches, in the order of ``torch.nn.functional.unfold``.

    One strided slice per kernel offset ``(u, v)`` picks that offset's pixel from every patch at
    once, so the loop has ``kH * kW`` steps, not one per output pixel. ``pad_value``: what the
    border is padded with (max pooling pads with -inf, so that padding never wins).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    h_out, w_out = _output_hw(x, kernel, stride, padding, dilation)
    b, c = x.shape[:2]
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=pad_value)
    columns = []
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            top, left = u * dilation[0], v * dilation[1]
            columns.append(x[:, :, top:top + stride[0] * (h_out - 1) + 1:stride[0],
                             left:left + stride[1] * (w_out - 1) + 1:stride[1]])  # (B, C, H_out, W_out)
    cols = torch.stack(columns, dim=2)                            # (B, C, kH*kW, H_out, W_out)
    return cols.reshape(b, c * kernel[0] * kernel[1], h_out * w_out)


def conv2d_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                  groups: int = 1) -> torch.Tensor:
    """2-D convolution as one matrix product (im2col): the kernels, flattened to rows
    ``(C_out, C_in*kH*kW)``, times the patches, flattened to columns ``(C_in*kH*kW, L)``.

    With groups, channels split into ``groups`` independent convolutions, each a matrix product
    of its own kernels and its own channels' patches (``groups = C_in`` is a depthwise
    convolution). Uses ``kH*kW`` times the input's memory for the columns: the price of speed.
    """
    _check_conv(x, weight, bias, groups)
    kernel = tuple(weight.shape[2:])
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    h_out, w_out = _output_hw(x, kernel, stride, padding, dilation)
    b, c_out = x.shape[0], weight.shape[0]
    cols = im2col(x, kernel, stride, padding, dilation)           # (B, C_in*kH*kW, L)
    # the patch length spelled out: with B = 0 a -1 would be ambiguous to view
    cols = cols.view(b, groups, cols.shape[1] // groups, h_out * w_out)  # (B, G, C_in/G*kH*kW, L)
    rows = weight.reshape(groups, c_out // groups, -1)            # (G, C_out/G, C_in/G*kH*kW)
    out = rows @ cols                                             # (B, G, C_out/G, L)
    out = out.reshape(b, c_out, h_out, w_out)                     # (B, C_out, H_out, W_out)
    if bias is not None:
        out = out + bias[:, None, None]
    return out


def _pool_args(x, kernel_size, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}")
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding {padding} must be at most half the kernel {kernel} "
                         "(as in PyTorch): otherwise a window could hold only padding")
    return kernel, stride, padding


def max_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, dilation: IntPair = 1) -> torch.Tensor:
    """The largest value in every window (``stride`` defaults to the window size, so windows do
    not overlap). The gradient flows only to each window's largest entry."""
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding)
    dilation = _pair(dilation, "dilation", 1)
    b, c = x.shape[:2]
    h_out, w_out = _output_hw(x, kernel, stride, padding, dilation)
    cols = im2col(x, kernel, stride, padding, dilation, pad_value=float("-inf"))
    cols = cols.view(b, c, kernel[0] * kernel[1], h_out, w_out)   # (B, C, kH*kW, H_out, W_out)
    return cols.max(dim=2).values                                 # (B, C, H_out, W_out)


def avg_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0, count_include_pad: bool = True) -> torch.Tensor:
    """The mean of every window. With padding, ``count_include_pad=True`` (PyTorch's default)
    divides by the full window size; ``False`` divides by the number of real pixels in it."""
    kernel, stride, padding = _pool_args(x, kernel_size, stride, padding)
    b, c = x.shape[:2]
    h_out, w_out = _output_hw(x, kernel, stride, padding, (1, 1))
    cols = im2col(x, kernel, stride, padding)                     # (B, C*kH*kW, L)
    sums = cols.view(b, c, kernel[0] * kernel[1], h_out, w_out).sum(dim=2)  # (B, C, H_out, W_out)
    if count_include_pad or padding == (0, 0):
        return sums / (kernel[0] * kernel[1])
    ones = x.new_ones(1, 1, *x.shape[2:])                          # (1, 1, H, W), even for B = 0
    counts = im2col(ones, kernel, stride, padding).sum(dim=1)     # (1, L): real pixels a window
    return sums / counts.view(1, 1, h_out, w_out)


# --- the backward pass, itself a convolution --------------------------------------------------------
def _check_grad_args(grad_out, weight, stride, padding, dilation):
    if grad_out.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"grad_out must be (B, C_out, H_out, W_out) and weight (C_out, C_in, kH, "
                         f"kW); got {tuple(grad_out.shape)} and {tuple(weight.shape)}")
    if grad_out.shape[1] != weight.shape[0]:
        raise ValueError(f"grad_out has {grad_out.shape[1]} channels, the weight "
                         f"{weight.shape[0]} output channels: they must be equal")
    return (_pair(stride, "stride", 1), _pair(padding, "padding", 0),
            _pair(dilation, "dilation", 1))


def conv2d_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, input_hw: tuple[int, int],
                      stride: IntPair = 1, padding: IntPair = 0,
                      dilation: IntPair = 1) -> torch.Tensor:
    """The gradient of a loss with respect to a convolution's input (``groups=1``), as another
    convolution: spread ``grad_out`` back onto the stride's grid (``stride - 1`` zeros between
    its pixels), pad it by ``dilation * (k - 1) - padding`` on each side, and convolve it with
    the kernel flipped in both spatial axes and with its input and output channels swapped,

        dx = conv(zero-stuffed, padded grad_out, flip(w).transpose(C_out, C_in), dilation)

    (what ``F.conv_transpose2d`` computes). ``input_hw``: the input's height and width, which
    a strided convolution cannot recover from its output alone. Returns ``(B, C_in, H, W)``.
    """
    stride, padding, dilation = _check_grad_args(grad_out, weight, stride, padding, dilation)
    b, c_out, h_out, w_out = grad_out.shape
    kernel = weight.shape[2:]
    fits = tuple(conv_output_size(input_hw[a], kernel[a], stride[a], padding[a], dilation[a])
                 for a in (0, 1))
    if fits != (h_out, w_out):
        raise ValueError(f"an input of {tuple(input_hw)} pixels gives a {fits} output with this "
                         f"kernel, stride, padding and dilation, not grad_out's {(h_out, w_out)}: "
                         "pass the height and width of the input the convolution saw")
    stuffed = grad_out.new_zeros(b, c_out, (h_out - 1) * stride[0] + 1,
                                 (w_out - 1) * stride[1] + 1)
    stuffed[:, :, ::stride[0], ::stride[1]] = grad_out           # (B, C_out, H', W')
    pads = []
    for a in (1, 0):  # F.pad lists the last axis first
        edge = dilation[a] * (kernel[a] - 1) - padding[a]
        # rows the forward pass never reached (the stride did not fit) get zero gradient
        extra = input_hw[a] - ((stuffed.shape[2 + a] - 1) + dilation[a] * (kernel[a] - 1)
                               + 1 - 2 * padding[a])
        pads += [edge, edge + extra]
    stuffed = F.pad(stuffed, pads)  # a negative pad crops: padding wider than the kernel
    flipped = weight.flip(2, 3).transpose(0, 1)                   # (C_in, C_out, kH, kW)
    return conv2d_unfold(stuffed, flipped, dilation=dilation)     # (B, C_in, H, W)


def conv2d_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_hw: tuple[int, int],
                       stride: IntPair = 1, padding: IntPair = 0,
                       dilation: IntPair = 1) -> torch.Tensor:
    """The gradient of a loss with respect to a convolution's kernel (``groups=1``), as another
    convolution: the (padded) input convolved with ``grad_out`` as the kernel, summed over the
    batch, with the forward pass's stride as the dilation and its dilation as the stride,

        dw[o, c, u, v] = sum_{b, i, j} grad_out[b, o, i, j] * x[b, c, i*s + u*d, j*s + v*d].

    The batch plays the role of the channels being summed over. Returns ``(C_out, C_in, kH, kW)``.
    """
    if x.ndim != 4 or grad_out.ndim != 4 or len(x) != len(grad_out):
        raise ValueError(f"x must be (B, C_in, H, W) and grad_out (B, C_out, H_out, W_out) with "
                         f"one batch; got {tuple(x.shape)} and {tuple(grad_out.shape)}")
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    grad = conv2d_unfold(x.transpose(0, 1), grad_out.transpose(0, 1),  # (C_in, B, ...) * (C_out, B, ...)
                         stride=dilation, dilation=stride)         # (C_in, C_out, >=kH, >=kW)
    return grad[:, :, :kernel_hw[0], :kernel_hw[1]].transpose(0, 1)  # (C_out, C_in, kH, kW)
