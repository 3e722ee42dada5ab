"""dlbook.initialization: the schemes match torch.nn.init, and the depth experiment measures what it says."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from dlbook.initialization import INIT_SCHEMES, LayerStats, deep_mlp, init_std, initialize_, layer_statistics


def gaussian_batch(n=64, features=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen, dtype=torch.float64)  # (n, features)
    y = torch.randint(0, 10, (n,), generator=gen)  # (n,)
    return x, y


def test_init_std_formulas():
    assert init_std("small", 100, 50) == 0.01
    assert init_std("normal", 100, 50) == 1.0
    assert init_std("xavier", 100, 50) == pytest.approx(math.sqrt(2 / 150))
    assert init_std("he", 100, 50) == pytest.approx(math.sqrt(2 / 100))
    with pytest.raises(ValueError, match="xavier"):
        init_std("glorot", 10, 10)


@pytest.mark.parametrize("scheme, torch_init", [
    ("xavier", lambda w, g: nn.init.xavier_normal_(w, generator=g)),
    ("he", lambda w, g: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=g)),
])
def test_schemes_match_torch_nn_init_exactly(scheme, torch_init):
    """Same generator seed, same draws: our weights equal torch.nn.init's, value for value."""
    ours, reference = nn.Linear(300, 200), nn.Linear(300, 200)
    initialize_(ours, scheme, torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch_init(reference.weight, torch.Generator().manual_seed(3))
    assert torch.equal(ours.weight, reference.weight)
    assert torch.count_nonzero(ours.bias) == 0


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_initialize_draws_the_advertised_std_reproducibly(scheme):
    layer = nn.Linear(400, 300)
    state = torch.random.get_rng_state()
    initialize_(layer, scheme, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state), "a given generator leaves the global RNG alone"
    expected = init_std(scheme, 400, 300)
    assert layer.weight.std().item() == pytest.approx(expected, rel=0.02)
    assert abs(layer.weight.mean().item()) < 0.01 * expected
    first = layer.weight.detach().clone()
    initialize_(layer, scheme, torch.Generator().manual_seed(0))
    assert torch.equal(first, layer.weight)


def test_initialize_rejects_models_without_linear_layers():
    with pytest.raises(ValueError, match="nn.Linear"):
        initialize_(nn.Sequential(nn.ReLU()), "he")


def test_deep_mlp_layout():
    model = deep_mlp(depth=7, width=16, activation="tanh", init="xavier", in_features=5, out_features=3)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 16)] + [(16, 16)] * 6 + [(16, 3)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 7
    assert model(torch.zeros(2, 5)).shape == (2, 3)
    # The same seed gives the same network; another seed does not.
    again, other = (deep_mlp(7, 16, "tanh", "xavier", 5, 3, seed=s) for s in (0, 1))
    assert torch.equal(linears[0].weight, next(again.parameters()))  # the first Linear's weight
    assert not torch.equal(linears[0].weight, next(other.parameters()))
    with pytest.raises(ValueError, match="depth"):
        deep_mlp(depth=0)
    with pytest.raises(ValueError, match="activation"):
        deep_mlp(depth=2, activation="swish")


def test_layer_statistics_match_a_manual_pass():
    x, y = gaussian_batch()
    model = deep_mlp(depth=4, width=24, activation="tanh", init="xavier", in_features=32).double()
    before = [p.detach().clone() for p in model.parameters()]
    stats = layer_statistics(model, x, y)
    assert isinstance(stats, LayerStats) and len(stats.activation_std) == len(stats.grad_norm) == 4
    # Recompute by hand: outputs of every tanh, and weight-gradient norms from autograd.
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    h, stds = x, []
    for layer in linears[:-1]:
        h = torch.tanh(layer(h))
        stds.append(h.std().item())
    logits = linears[-1](h)
    loss = nn.functional.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, [m.weight for m in linears])
    assert np.allclose(stats.activation_std, stds)
    assert np.allclose(stats.grad_norm, [g.norm().item() for g in grads[:-1]])
    assert stats.output_grad_norm == pytest.approx(grads[-1].norm().item())
    assert stats.loss == pytest.approx(loss.item())
    # Weights untouched, and no forward hook left behind.
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(not m._forward_hooks for m in model.modules())


def test_the_depth_experiment_shows_vanishing_and_exploding_gradients():
    """The chapter's claims, on random Gaussian inputs instead of digits (20 layers, float64)."""
    x, y = gaussian_batch(n=64, features=32)

    def stats(activation, init):
        model = deep_mlp(20, width=64, activation=activation, init=init, in_features=32).double()
        return layer_statistics(model, x, y)

    relu_he, sigmoid_small = stats("relu", "he"), stats("sigmoid", "small")
    relu_normal, sigmoid_xavier = stats("relu", "normal"), stats("sigmoid", "xavier")
    # Vanishing: many orders of magnitude between the first layers' gradients.
    assert sigmoid_small.grad_norm[0] < 1e-20 * relu_he.grad_norm[0]
    # Sigmoid gradients shrink towards the input even with Xavier init.
    assert sigmoid_xavier.grad_norm[0] < 1e-6 * sigmoid_xavier.grad_norm[-1]
    # Exploding: N(0, 1) weights with ReLU blow the activations and gradients up.
    assert relu_normal.activation_std[-1] > 1e10 and relu_normal.grad_norm[0] > 1e10
    # He keeps ReLU activations steady within a small factor over all 20 layers.
    assert relu_he.activation_std.max() / relu_he.activation_std.min() < 3
