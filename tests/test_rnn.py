"""dlbook.rnn: cells and layers from their equations agree with nn.RNN, nn.LSTM and nn.GRU."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbook.rnn import (GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell, hidden_gradient_norms)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
OURS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}




def _pair(kind, layers, seed=0, **kw):
    torch.manual_seed(seed)
    reference = TORCH[kind](5, 7, num_layers=layers, batch_first=True, **kw).double()
    return reference, OURS[kind].from_torch(reference).double()


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_torch_outputs_states_and_gradients(kind, layers, with_state):
    reference, ours = _pair(kind, layers)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    state = None
    if with_state:
        h0 = torch.randn(layers, 3, 7, generator=g, dtype=torch.float64)
        state = (h0, torch.randn(layers, 3, 7, generator=g, dtype=torch.float64)) \
            if kind == "lstm" else h0
    x_ref, x_ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_ref, state_ref = reference(x_ref, state)
    out_ours, state_ours = ours(x_ours, state)
    assert out_ours.shape == out_ref.shape == (3, 6, 7)
    assert torch.allclose(out_ours, out_ref, atol=1e-10)
    finals_ref = state_ref if kind == "lstm" else (state_ref,)
    finals_ours = state_ours if kind == "lstm" else (state_ours,)
    for a, b in zip(finals_ours, finals_ref):
        assert a.shape == (layers, 3, 7) and torch.allclose(a, b, atol=1e-10)
    # Gradients of a loss that uses every output and the final states.
    w = torch.randn(3, 6, 7, generator=g, dtype=torch.float64)

    def loss(out, finals):
        return (out * w).sum() + sum((f ** 2).sum() for f in finals)

    loss(out_ref, finals_ref).backward()
    loss(out_ours, finals_ours).backward()
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-10)
    for k, cell in enumerate(ours.cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            ref_grad = getattr(reference, f"{name}_l{k}").grad
            assert torch.allclose(getattr(cell, name).grad, ref_grad, atol=1e-10), (kind, k, name)


def test_relu_rnn_and_float32_agree_too():
    torch.manual_seed(0)
    reference = nn.RNN(4, 6, nonlinearity="relu", batch_first=True)
    ours = RNN.from_torch(reference)
    assert ours.cells[0].nonlinearity == "relu"
    x = torch.randn(2, 9, 4)
    assert torch.allclose(ours(x)[0], reference(x)[0], atol=1e-6)


@pytest.mark.parametrize("cell_cls, torch_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell),
                                                 (GRUCell, nn.GRUCell)])
def test_cells_match_torch_cells(cell_cls, torch_cls):
    torch.manual_seed(0)
    reference = torch_cls(3, 4)
    cell = cell_cls(3, 4)
    assert {n: p.shape for n, p in cell.named_parameters()} == \
        {n: p.shape for n, p in reference.named_parameters()}, "same names and shapes as torch"
    cell.load_state_dict(reference.state_dict())
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    if cell_cls is LSTMCell:
        for a, b in zip(cell(x, (h, c)), reference(x, (h, c))):
            assert torch.allclose(a, b, atol=1e-6)
    else:
        assert torch.allclose(cell(x, h), reference(x, h), atol=1e-6)


def test_initialisation_matches_torch_range():
    cell = LSTMCell(10, 16)
    bound = 1 / 16 ** 0.5
    for p in cell.parameters():
        assert p.abs().max() <= bound and p.std() > bound / 3


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match=r"\(B, T, 5\)"):
        RNN(5, 7)(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        GRUCell(5, 7)(torch.randn(3, 4), torch.zeros(3, 7))
    with pytest.raises(TypeError, match="nn.LSTM"):
        LSTM.from_torch(nn.GRU(3, 4, batch_first=True))
    with pytest.raises(ValueError, match="batch_first"):
        GRU.from_torch(nn.GRU(3, 4))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")


def test_gradient_norms_vanish_or_explode_with_the_spectral_radius():
    torch.manual_seed(0)
    H = 32
    xs = torch.randn(4, 40, 1) * 0.0  # no input: only the recurrence carries the gradient
    norms = {}
    for radius in (0.5, 1.5):
        cell = RNNCell(1, H, nonlinearity="tanh")
        q, _ = torch.linalg.qr(torch.randn(H, H))
        with torch.no_grad():
            cell.weight_hh.copy_(radius * q)  # orthogonal times radius: every |eigenvalue| = radius
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()
        h0 = 1e-9 * torch.randn(4, H)  # near 0, where tanh is linear: gradient ~ radius^distance
        norms[radius] = hidden_gradient_norms(cell, xs, h0)
    small, large = norms[0.5], norms[1.5]
    assert small.shape == (40,)
    assert small[0] < 1e-9 * small[-1], "0.5^40: the gradient vanishes"
    assert large[0] > 1e5 * large[-1], "1.5^40: the gradient explodes (while tanh stays linear)"
    ratio = (small[-2] / small[-1]).item()
    assert ratio == pytest.approx(0.5, rel=1e-3)
    assert cell.weight_hh.grad is None, "the cell's own gradients are left alone"


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_from_torch_keeps_float64(kind):
    torch.manual_seed(0)
    reference = TORCH[kind](3, 4, batch_first=True).double()
    ours = OURS[kind].from_torch(reference)
    for k, cell in enumerate(ours.cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            mine, theirs = getattr(cell, name), getattr(reference, f"{name}_l{k}")
            assert mine.dtype == torch.float64
            assert torch.equal(mine, theirs), "copied bit for bit, not rounded through float32"
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert torch.allclose(ours(x)[0], reference(x)[0], atol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", [(3, 4), (1, 1, 4), (2, 3, 4), (1, 2, 4), (1, 3, 5)])
def test_wrongly_shaped_initial_state_is_refused(kind, shape):
    # B = 3, H = 4, one layer: (3, 4), (1, 1, 4) and (2, 3, 4) all broadcast in the arithmetic,
    # and would give silently wrong outputs; torch refuses each, and so do we.
    torch.manual_seed(0)
    ours = OURS[kind](2, 4)
    x = torch.randn(3, 5, 2)
    good = torch.zeros(1, 3, 4)
    bad = torch.zeros(shape)
    with pytest.raises(RuntimeError):
        TORCH[kind](2, 4, batch_first=True)(x, (bad, good) if kind == "lstm" else bad)
    with pytest.raises(ValueError, match=r"h0 of shape \(L, B, H\) = \(1, 3, 4\)"):
        ours(x, (bad, good) if kind == "lstm" else bad)
    if kind == "lstm":
        with pytest.raises(ValueError, match=r"c0 of shape \(L, B, H\) = \(1, 3, 4\)"):
            ours(x, (good, bad))
        with pytest.raises(ValueError, match=r"pair \(h0, c0\)"):
            ours(x, good)
    ours(x, (good, good) if kind == "lstm" else good)  # the right shape still works


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_initial_state_or_input_of_another_dtype_is_refused_up_front(kind):
    # float64 into a float32 layer: torch fails deep inside the matmul ("expected m1 and m2 to
    # have the same dtype"); we say which tensor is wrong before any arithmetic.
    ours = OURS[kind](2, 4)
    x, good = torch.randn(3, 5, 2), torch.zeros(1, 3, 4)
    bad = good.double()
    with pytest.raises(TypeError, match=r"h0 of torch.float64"):
        ours(x, (bad, good) if kind == "lstm" else bad)
    if kind == "lstm":
        with pytest.raises(TypeError, match=r"c0 of torch.float64"):
            ours(x, (good, bad))
    with pytest.raises(TypeError, match=r"x of torch.float64"):
        ours(x.double())
    assert ours.double()(x.double(), tuple(s.double() for s in (good, good))
                         if kind == "lstm" else bad)[0].dtype == torch.float64


@pytest.mark.parametrize("cell_cls", [RNNCell, LSTMCell, GRUCell])
def test_cells_refuse_integer_or_mismatched_dtypes_up_front(cell_cls):
    cell = cell_cls(2, 4)
    x, h = torch.randn(3, 2), torch.zeros(3, 4)
    state = (h, h) if cell_cls is LSTMCell else h
    with pytest.raises(TypeError, match="x must be floating point"):
        cell(torch.ones(3, 2, dtype=torch.int64), state)
    with pytest.raises(TypeError, match="x of torch.float64"):
        cell(x.double(), state)
    with pytest.raises(TypeError, match="h of torch.float64"):
        cell(x, (h.double(), h) if cell_cls is LSTMCell else h.double())
    cell(x, state)  # the right dtypes still work


def test_layers_and_gradient_norms_refuse_integer_input():
    with pytest.raises(TypeError, match="x must be floating point"):
        LSTM(2, 4)(torch.ones(3, 5, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be floating point"):
        hidden_gradient_norms(RNNCell(2, 4), torch.ones(3, 5, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="x of torch.float64"):
        hidden_gradient_norms(RNNCell(2, 4), torch.randn(3, 5, 2, dtype=torch.float64))


@pytest.mark.parametrize("cell_cls", [RNNCell, LSTMCell, GRUCell])
def test_cells_refuse_a_state_that_would_broadcast(cell_cls):
    cell = cell_cls(2, 4)
    x, good, bad = torch.randn(3, 2), torch.zeros(3, 4), torch.zeros(1, 4)
    with pytest.raises(ValueError, match=r"h of shape \(B, H\) = \(3, 4\)"):
        cell(x, (bad, good) if cell_cls is LSTMCell else bad)
    if cell_cls is LSTMCell:
        with pytest.raises(ValueError, match=r"c of shape \(B, H\) = \(3, 4\)"):
            cell(x, (good, bad))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_empty_sequence_is_refused_up_front(kind):
    with pytest.raises(ValueError, match=r"empty sequence \(T = 0\)"):
        OURS[kind](2, 4)(torch.zeros(3, 0, 2))
    with pytest.raises(ValueError, match="at least one step"):
        hidden_gradient_norms(RNNCell(2, 4), torch.zeros(3, 0, 2))


def test_adding_problem_targets_the_two_marked_values():
    from dlbook.rnn import adding_problem
    x, y = adding_problem(50, 12, torch.Generator().manual_seed(0))
    assert x.shape == (50, 12, 2) and y.shape == (50,)
    markers = x[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :6].sum(1) == 1).all() and (markers[:, 6:].sum(1) == 1).all()
    assert torch.allclose(y, (x[..., 0] * markers).sum(1))
    with pytest.raises(ValueError, match="length"):
        adding_problem(4, 1)


def test_adding_curve_records_every_checkpoint_and_refuses_bad_input():
    from dlbook.rnn import adding_curve, train_adding

    curve = adding_curve("lstm", 6, seed=0, steps=25, lr=0.01, every=10)
    assert curve["step"] == [10, 20, 25]
    assert len(curve["val"]) == len(curve["test"]) == 3
    assert train_adding("lstm", 6, 0, steps=25, lr=0.01) == pytest.approx(curve["test"][-1])
    # A prefix of a run is the same run: evaluation draws no training randomness.
    assert adding_curve("lstm", 6, 0, steps=10, lr=0.01, every=10)["val"] == curve["val"][:1]
    with pytest.raises(ValueError, match="kind"):
        adding_curve("transformer", 6, 0)
    with pytest.raises(ValueError, match="positive"):
        adding_curve("rnn", 6, 0, steps=0)


def test_adding_curve_at_listed_steps_is_the_same_run():
    from dlbook.rnn import adding_curve, adding_problem

    every = adding_curve("gru", 6, seed=0, steps=20, lr=0.01, every=5)
    listed, layer, head = adding_curve("gru", 6, seed=0, steps=20, lr=0.01, at=[5, 15],
                                       return_layer=True)
    assert listed["step"] == [5, 15, 20]  # the last step always
    assert listed["val"] == [every["val"][i] for i in (0, 2, 3)]
    assert isinstance(layer, torch.nn.GRU)
    x, y = adding_problem(1000, 6, torch.Generator().manual_seed(999))
    with torch.no_grad():  # layer and head are the model the curve scored
        mse = ((head(layer(x)[0][:, -1]).squeeze(-1) - y) ** 2).mean().item()
    assert abs(mse - listed["test"][-1]) < 1e-6
    with pytest.raises(ValueError, match="at must list"):
        adding_curve("gru", 6, 0, steps=20, at=[0, 5])
    with pytest.raises(ValueError, match="at must list"):
        adding_curve("gru", 6, 0, steps=20, at=[25])
