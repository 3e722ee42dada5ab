"""dlbook.quantize: per-channel absmax int8 from scratch, against PyTorch's quantize_dynamic."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from dlbook.quantize import (
    QMAX,
    Int8Linear,
    dequantize,
    fake_quantize,
    model_bytes,
    quantize_model,
    quantize_weight,
    serialized_bytes,
    torch_dynamic_int8,
    torch_int8_weights,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 48), nn.GELU(), nn.Linear(48, 16, bias=False))


X = torch.randn(20, 64, generator=torch.Generator().manual_seed(1))


def test_round_trip_error_is_at_most_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(30, 50) * torch.logspace(-3, 1, 30)[:, None]  # rows of very different size
    w[3] = 0.0
    q, scale = quantize_weight(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (30,)
    assert q.abs().max() <= QMAX
    assert torch.all(q.abs().amax(1)[torch.arange(30) != 3] == QMAX), "each row reaches 127"
    assert torch.allclose(scale[torch.arange(30) != 3],
                          w.abs().amax(1)[torch.arange(30) != 3] / 127)
    error = (dequantize(q, scale) - w).abs()
    assert torch.all(error <= scale[:, None] / 2 * (1 + 1e-5) + 1e-12)
    assert torch.all(dequantize(q, scale)[3] == 0)


def test_int8_linear_is_the_dequantized_linear():
    model = _mlp()
    layer = Int8Linear.from_linear(model[0])
    expected = X @ dequantize(layer.qweight, layer.scale).T + model[0].bias
    assert torch.allclose(layer(X), expected, atol=1e-5)


def test_quantized_model_is_close_to_the_float_model_and_smaller():
    model = _mlp()
    quantized = quantize_model(copy.deepcopy(model))
    assert all(not isinstance(m, nn.Linear) for m in quantized.modules())
    reference = model(X)
    error = (quantized(X) - reference).abs().max()
    assert error < 0.02 * reference.abs().max()
    n_weights = 64 * 48 + 48 * 16
    assert model_bytes(model) == 4 * (n_weights + 48)
    assert model_bytes(quantized) == n_weights + 4 * (48 + 16) + 4 * 48
    assert serialized_bytes(quantized) < 0.6 * serialized_bytes(model)
    saved = io.BytesIO()
    torch.save(quantized.state_dict(), saved)
    assert serialized_bytes(quantized) == saved.getbuffer().nbytes
    skipped = quantize_model(copy.deepcopy(model), skip=("2",))
    assert isinstance(skipped[2], nn.Linear) and isinstance(skipped[0], Int8Linear)


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match="2-D"):
        quantize_weight(torch.randn(3))
    with pytest.raises(TypeError, match="floating-point"):
        quantize_weight(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="one scale per row"):
        dequantize(torch.zeros(3, 2, dtype=torch.int8), torch.ones(2))
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_model(nn.Sequential(nn.ReLU()))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_not_quantized(bad):
    # Unchecked, a NaN row got scale 1 and all-zero codes (finite and wrong), an inf row NaN.
    w = torch.randn(4, 6)
    w[2, 3] = bad
    for quantize in (quantize_weight, fake_quantize):
        with pytest.raises(ValueError, match=r"non-finite .* rows \[2\]"):
            quantize(w)
    linear = nn.Linear(6, 4)
    with torch.no_grad():
        linear.weight.copy_(w)
    with pytest.raises(ValueError, match="non-finite"):
        Int8Linear.from_linear(linear)


def test_agrees_with_torch_quantize_dynamic():
    model = _mlp()
    theirs = torch_dynamic_int8(model)
    if theirs is None:
        pytest.skip("this torch has no torch.ao.quantization.quantize_dynamic (deprecated)")
    assert type(model[0]) is nn.Linear and type(theirs[0]) is not nn.Linear  # a copy quantized
    ours = quantize_model(copy.deepcopy(model))
    for i in (0, 2):
        q_torch, s_torch = torch_int8_weights(theirs[i])
        # PyTorch's symmetric observer divides by (127 - (-128)) / 2 = 127.5, not 127
        assert torch.allclose(s_torch, ours[i].scale * 127 / 127.5, rtol=1e-6)
        assert (q_torch.int() - ours[i].qweight.int()).abs().max() <= 1
        # with its scale, our rounding gives its integers (up to float ties: it multiplies
        # by 1 / s rather than dividing by s)
        again = torch.round(model[i].weight / s_torch[:, None]).clamp(-128, 127)
        assert (again.to(torch.int8) != q_torch).float().mean() < 1e-2
        assert (again - q_torch.float()).abs().max() <= 1
    reference = model(X)
    # theirs also rounds the activations to uint8, so it sits a little further away
    assert (ours(X) - reference).abs().max() < 0.02 * reference.abs().max()
    assert (theirs(X) - reference).abs().max() < 0.05 * reference.abs().max()


def test_fake_quantize_grid_error_and_agreement_with_int8():
    from dlbook.quantize import dequantize, fake_quantize, quantize_weight

    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 40, generator=g) * torch.linspace(0.01, 3, 16)[:, None]  # rows differ
    assert torch.allclose(fake_quantize(w, 8), dequantize(*quantize_weight(w)))
    errors = {}
    for bits in (2, 4, 8):
        for per_channel in (True, False):
            fq = fake_quantize(w, bits, per_channel)
            s = (w.abs().amax(1, keepdim=True) if per_channel else w.abs().max()) / (
                2 ** (bits - 1) - 1)
            assert ((w - fq).abs() <= s / 2 + 1e-6).all()  # within half a step
            assert len(torch.unique(fq[0])) <= 2 ** bits - 1
            errors[bits, per_channel] = (w - fq).norm() / w.norm()
    assert errors[2, True] > errors[4, True] > errors[8, True]
    assert all(errors[b, True] < errors[b, False] for b in (4, 8))  # a scale per row helps
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(w, 1)
    with pytest.raises(ValueError, match="2-D"):
        fake_quantize(w[0], 8)


def test_block_quantize_levels_and_errors():
    from dlbook.quantize import NF4_LEVELS, block_quantize

    torch.manual_seed(0)
    w = torch.randn(8, 128)
    q = block_quantize(w, 64, levels="nf4")
    blocks, qb = w.reshape(8, 2, 64), q.reshape(8, 2, 64)
    scale = blocks.abs().amax(-1, keepdim=True)
    # every rounded weight is an NF4 level times its block's absmax, the nearest one
    codes = qb / scale
    assert ((codes[..., None] - NF4_LEVELS).abs().min(-1).values < 1e-6).all()
    nearest = NF4_LEVELS[((blocks / scale)[..., None] - NF4_LEVELS).abs().argmin(-1)]
    assert torch.allclose(codes, nearest, atol=1e-6)
    # a block per row of 128 with uniform levels is fake_quantize's per-row grid
    assert torch.allclose(block_quantize(w, 128, levels=4), fake_quantize(w, 4), atol=1e-6)
    # on normal weights NF4 rounds closer than the even 4-bit grid with the same blocks
    err = lambda x: (x - w).pow(2).mean()
    assert err(q) < err(block_quantize(w, 64, levels=4))
    with pytest.raises(ValueError):
        block_quantize(w, 60)
    with pytest.raises(ValueError):
        block_quantize(w, 64, levels="nf3")
    with pytest.raises(ValueError):
        block_quantize(torch.tensor([[float("nan")] * 64]), 64)


def test_compare_with_torch_on_a_small_model():
    from dlbook.quantize import compare_with_torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    ref = torch_dynamic_int8(model)
    if ref is None:
        pytest.skip("this torch has no torch.ao.quantization")
    int_diff, ratios = compare_with_torch(model, ref, skip=())
    assert int_diff <= 1 and len(ratios) == 2
    assert all(abs(r - 127.5 / 127) < 1e-4 for r in ratios)
    with pytest.raises(ValueError):
        compare_with_torch(model, model, skip=())
