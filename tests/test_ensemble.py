"""dlbook.ensemble: M linear layers side by side equal M nn.Linear layers, outputs and gradients."""

import pytest
import torch
from torch import nn

from dlbook.ensemble import EnsembleLinear, mlp
from dlbook.training import batch_orders


def _linears(m=3, n_in=5, n_out=4):
    torch.manual_seed(0)
    return [nn.Linear(n_in, n_out) for _ in range(m)]


def test_from_linears_equals_each_linear_outputs_and_gradients():
    linears = _linears()
    layer = EnsembleLinear.from_linears(linears)
    x = torch.randn(3, 7, 5)  # (M, B, n_in)
    out = layer(x)  # (M, 7, 4)
    out.square().sum().backward()
    for m, lin in enumerate(linears):
        alone = lin(x[m])
        alone.square().sum().backward()
        torch.testing.assert_close(out[m], alone)
        torch.testing.assert_close(layer.weight.grad[m], lin.weight.grad.T)
        torch.testing.assert_close(layer.bias.grad[m, 0], lin.bias.grad)


def test_copy_into_writes_each_member_back():
    linears = _linears()
    layer = EnsembleLinear.from_linears(linears)
    with torch.no_grad():
        layer.weight.mul_(2)
        layer.bias.add_(1)
    targets = _linears()
    layer.copy_into(targets)
    for m, (lin, new) in enumerate(zip(linears, targets)):
        torch.testing.assert_close(new.weight, 2 * lin.weight)
        torch.testing.assert_close(new.bias, lin.bias + 1)
    with pytest.raises(ValueError, match="one nn.Linear per member"):
        layer.copy_into(targets[:2])


def test_members_start_like_nn_linear_from_their_own_generators():
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    layer = EnsembleLinear(2, 100, 50, gens)
    bound = 100 ** -0.5
    assert layer.weight.abs().max() <= bound and layer.weight.std() > 0.5 * bound
    assert not torch.equal(layer.weight[0], layer.weight[1])
    again = EnsembleLinear(2, 100, 50, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert torch.equal(layer.weight, again.weight)


def test_bad_input_is_refused_up_front():
    with pytest.raises(ValueError, match="one generator per member"):
        EnsembleLinear(3, 2, 2, [torch.Generator()])
    with pytest.raises(ValueError, match="positive"):
        EnsembleLinear(0, 2, 2)
    with pytest.raises(ValueError, match="all of one shape"):
        EnsembleLinear.from_linears([nn.Linear(2, 3), nn.Linear(3, 3)])
    with pytest.raises(ValueError, match="output"):
        mlp((2, 8, 1), output="sigmoid")


def test_batch_orders_draws_full_batches_and_reshuffles():
    gen = torch.Generator().manual_seed(0)
    stream = batch_orders(10, 4, gen)
    first_epoch = [next(stream) for _ in range(2)]  # 8 of 10 rows; the short batch is dropped
    assert all(len(idx) == 4 for idx in first_epoch)
    assert len(set(torch.cat(first_epoch).tolist())) == 8
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(first_epoch), expected[:8])
    assert len(next(stream)) == 4  # a fresh permutation
    assert len(next(batch_orders(3, 64))) == 3
    with pytest.raises(ValueError, match="at least one row"):
        next(batch_orders(0, 4))


def test_a_two_dimensional_input_gets_a_clear_message():
    layer = EnsembleLinear(3, 4, 2)
    with pytest.raises(ValueError, match=r"members=3, B, n_in=4.*unsqueeze"):
        layer(torch.randn(5, 4))
    with pytest.raises(ValueError, match="n_in=4"):
        layer(torch.randn(3, 5, 6))
