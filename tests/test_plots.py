"""dlbook.plots: each shared drawing draws what it is given, and refuses bad input clearly."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlbook import plots  # noqa: E402
from dlbook.training import History  # noqa: E402


def history(scale=1.0):
    return History(epoch=[1, 2, 3], train_loss=[3 * scale, 2 * scale, 1 * scale],
                   val_loss=[3.5, 2.5, 2.0])


def test_learning_curves_one_line_per_run_and_split():
    fig, ax = plt.subplots()
    plots.learning_curves(ax, {"a": history(), "b": history(0.5)})
    assert [ln.get_label() for ln in ax.get_lines()] == ["a train", "a val", "b train", "b val"]
    assert ax.get_lines()[0].get_linestyle() == "--"
    with pytest.raises(ValueError, match="no 'val_acc'"):
        plots.learning_curves(ax, history(), keys=("val_acc",))
    plt.close(fig)


def test_mean_band_checks_shapes():
    fig, ax = plt.subplots()
    plots.mean_band(ax, [1, 2, 3], [[1, 2, 3], [3, 4, 5]], label="runs")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2, 3, 4])
    with pytest.raises(ValueError, match="shape"):
        plots.mean_band(ax, [1, 2], [[1, 2, 3]])
    plt.close(fig)


def test_decision_boundary_and_image_grid():
    fig, ax = plt.subplots()
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    plots.decision_boundary(ax, lambda p: (p.sum(1) > 1).astype(int), X, np.array([0, 1, 0]))
    assert len(ax.collections) >= 3  # the regions and one scatter per class
    with pytest.raises(ValueError, match="2-D inputs"):
        plots.decision_boundary(ax, lambda p: p, np.zeros((3, 3)), np.zeros(3))
    plt.close(fig)
    fig = plt.figure()
    axes = plots.image_grid(fig, np.random.rand(7, 64), titles=list("abcdefg"), ncols=4)
    assert len(axes) == 8 and axes[0].get_title() == "a"
    with pytest.raises(ValueError, match="not square"):
        plots.image_grid(fig, np.zeros((2, 10)))
    plt.close(fig)


def test_contour_trajectories():
    fig, ax = plt.subplots()
    path = np.array([[1.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    plots.contour_trajectories(ax, lambda x, y: x**2 + y**2, {"gd": path}, xlim=(-1, 1),
                               ylim=(-1, 1), minimum=(0, 0))
    assert [ln.get_label() for ln in ax.get_lines()] == ["gd", "minimum"]
    plt.close(fig)
