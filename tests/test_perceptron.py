"""dlbook.perceptron: threshold units, Rosenblatt's rule against scikit-learn and PyTorch, and the
convergence theorem."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Perceptron as SklearnPerceptron

from dlbook.perceptron import McCullochPittsUnit, Perceptron, mistake_bound, truth_table


def separable(n, margin, seed, d=2):
    """n points in [-1, 1]^d at distance > margin from a random hyperplane, labelled by its side."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    b = rng.uniform(-0.3, 0.3)
    X = rng.uniform(-1, 1, size=(50 * n, d))
    X = X[np.abs(X @ w + b) > margin][:n]
    assert len(X) == n, "margin too large for this many points"
    return X, np.where(X @ w + b > 0, 1, -1), w, b


def overlapping(n, seed, d=5):
    """Two Gaussian classes that overlap: not linearly separable."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, 1, -1)
    return rng.normal(size=(n, d)) + 0.5 * y[:, None], y


def test_mcculloch_pitts_gates():
    inputs, out = truth_table(McCullochPittsUnit(threshold=2), 2)
    assert inputs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert out.tolist() == [0, 0, 0, 1]  # AND
    assert truth_table(McCullochPittsUnit(threshold=1), 2)[1].tolist() == [0, 1, 1, 1]  # OR
    assert truth_table(McCullochPittsUnit(threshold=0, inhibitory=(0,)), 1)[1].tolist() == [1, 0]  # NOT
    # x1 AND NOT x2: one excitatory input, one inhibitory input that vetoes.
    assert truth_table(McCullochPittsUnit(threshold=1, inhibitory=(1,)), 2)[1].tolist() == [0, 0, 1, 0]


def test_mcculloch_pitts_rejects_non_binary_inputs():
    with pytest.raises(ValueError, match="binary"):
        McCullochPittsUnit(threshold=1)([[0.5, 1]])


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_sklearn_on_separable_data(seed, fit_intercept):
    X, y, w, b = separable(200, 0.05, seed, d=3)
    if not fit_intercept:
        b = 0.0
        y = np.where(X @ w > 0, 1, -1)
    ours = Perceptron(fit_intercept=fit_intercept).fit(X, y, epochs=1000)
    assert ours.converged_
    epochs = len(ours.history_.mistakes_per_epoch)
    theirs = SklearnPerceptron(eta0=1.0, penalty=None, shuffle=False, tol=None, max_iter=epochs,
                               fit_intercept=fit_intercept).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_[0], atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_[0], atol=1e-9)
    X_new = np.random.default_rng(seed + 10).uniform(-1, 1, size=(500, 3))
    assert (ours.predict(X_new) == theirs.predict(X_new)).all()


def test_matches_sklearn_on_non_separable_data_with_zero_one_labels():
    X, y = overlapping(150, seed=3)
    y01 = (y + 1) // 2
    ours = Perceptron().fit(X, y01, epochs=7)
    assert not ours.converged_ and len(ours.history_.mistakes_per_epoch) == 7
    theirs = SklearnPerceptron(eta0=1.0, penalty=None, shuffle=False, tol=None, max_iter=7).fit(X, y01)
    np.testing.assert_allclose(ours.coef_, theirs.coef_[0], atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_[0], atol=1e-9)
    assert ((ours.predict(X) + 1) // 2 == theirs.predict(X)).all()


def test_matches_torch_gradient_steps_on_the_perceptron_criterion():
    X, y, _, _ = separable(60, 0.05, seed=4)
    model = Perceptron(lr=0.5).fit(X, y)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.5)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).double()
    trajectory = [w.detach().clone()]
    for _ in range(len(model.history_.mistakes_per_epoch)):
        for i in range(len(X)):
            score = yt[i] * (Xt[i] @ w + b)  # (1,)
            if score.item() <= 0:
                opt.zero_grad()
                (-score).sum().backward()  # perceptron criterion on one misclassified example
                opt.step()
                trajectory.append(w.detach().clone())
    assert torch.allclose(torch.stack(trajectory), torch.from_numpy(model.history_.weights))
    assert torch.allclose(b.detach(), torch.tensor([model.intercept_], dtype=torch.float64))


def test_history_replays_the_updates():
    X, y, _, _ = separable(80, 0.05, seed=5)
    model = Perceptron(lr=0.3).fit(X, y)
    h = model.history_
    assert h.weights.shape == (h.n_updates + 1, 2) and h.bias.shape == (h.n_updates + 1,)
    assert not h.weights[0].any() and h.bias[0] == 0
    assert h.n_updates == sum(h.mistakes_per_epoch) and h.epoch.max() <= len(h.mistakes_per_epoch)
    for k in range(1, h.n_updates + 1):
        i = h.index[k - 1]
        assert y[i] * (X[i] @ h.weights[k - 1] + h.bias[k - 1]) <= 0  # it really was a mistake
        np.testing.assert_allclose(h.weights[k] - h.weights[k - 1], 0.3 * y[i] * X[i])
        assert np.isclose(h.bias[k] - h.bias[k - 1], 0.3 * y[i])
    np.testing.assert_array_equal(h.weights[-1], model.coef_)


@pytest.mark.parametrize("seed", range(3))
def test_converges_on_separable_data(seed):
    X, y, _, _ = separable(300, 0.02, seed, d=4)
    model = Perceptron().fit(X, y, epochs=10_000)
    assert model.converged_ and model.history_.mistakes_per_epoch[-1] == 0
    assert (model.predict(X) == y).all()
    assert min(model.history_.mistakes_per_epoch[:-1]) > 0  # it stopped at the first clean epoch


def test_mistake_bound_holds_for_every_margin_and_order():
    for seed, margin in enumerate(np.geomspace(0.01, 0.4, 12)):
        X, y, w, b = separable(120, margin, seed=20 + seed, d=2 + seed % 3)
        radius, gamma, bound = mistake_bound(X, y, w, b)
        assert gamma >= margin / np.sqrt(1 + b**2) - 1e-12 and radius <= np.sqrt(X.shape[1] + 1)
        for order_seed in range(3):
            order = np.random.default_rng(order_seed).permutation(len(X))
            model = Perceptron().fit(X[order], y[order], epochs=100_000)
            assert model.converged_ and model.history_.n_updates <= bound, (margin, bound)


def test_mistake_bound_without_intercept_and_rejects_non_separating_lines():
    X, y, w, _ = separable(100, 0.1, seed=6)
    y = np.where(X @ w > 0, 1, -1)
    _, _, bound = mistake_bound(X, y, w, fit_intercept=False)
    assert Perceptron(fit_intercept=False).fit(X, y).history_.n_updates <= bound
    with pytest.raises(ValueError, match="does not separate"):
        mistake_bound(X, -y, w, fit_intercept=False)


def test_xor_never_converges_and_cycles():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([-1, 1, 1, -1])
    model = Perceptron().fit(X, y, epochs=500)
    assert not model.converged_ and min(model.history_.mistakes_per_epoch) >= 1
    assert (model.predict(X) != y).any()


def test_labels_must_be_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        Perceptron().fit(np.zeros((3, 2)), [0, 1, 2])


def test_separable_data_keeps_its_margin_and_labels_by_side():
    from dlbook.perceptron import separable_data

    X, y, w, b = separable_data(200, 0.1, seed=4)
    assert X.shape == (200, 2) and set(np.unique(y)) <= {-1, 1}
    assert np.isclose(np.linalg.norm(w), 1.0)
    assert np.all(np.abs(X @ w + b) > 0.1) and np.all(y * (X @ w + b) > 0)
    again = separable_data(200, 0.1, seed=4)
    assert np.array_equal(X, again[0]) and np.array_equal(y, again[1])
    X, y, w, b = separable_data(30, 0.15, seed=3, w=[0.8, 0.6], b=-1.5, low=-0.5, high=3.0)
    assert X.min() >= -0.5 and X.max() <= 3.0 and np.all(np.abs(X @ w + b) > 0.15)


def test_separable_data_bad_input_says_what_to_do():
    from dlbook.perceptron import separable_data

    with pytest.raises(ValueError, match="positive integer"):
        separable_data(0, 0.1, seed=0)
    with pytest.raises(ValueError, match="both w and b"):
        separable_data(10, 0.1, seed=0, w=[1.0, 0.0])
    with pytest.raises(ValueError, match="smaller margin"):
        separable_data(10, 5.0, seed=0)
