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


def test_mean_band_median_centre():
    fig, ax = plt.subplots()
    plots.mean_band(ax, [1, 2], [[0, 0], [1, 1], [8, 8]], centre="median")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1, 1])  # mean 3
    with pytest.raises(ValueError, match="centre"):
        plots.mean_band(ax, [1, 2], [[0, 0]], centre="mode")
    plt.close(fig)


def test_mean_band_leaves_out_runs_not_made():
    fig, ax = plt.subplots()
    nan = float("nan")
    plots.mean_band(ax, [1, 2, 3], [[1, 2, 3], [3, nan, 5], [5, nan, nan]])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [3, 2, 4])
    band = ax.collections[0].get_paths()[0].vertices
    assert np.isfinite(band).all() and band[:, 1].max() == 5 and band[:, 1].min() == 1
    with pytest.raises(ValueError, match="at least one run"):
        plots.mean_band(ax, [1, 2], [[1, nan], [2, nan]])
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


def test_decision_boundary_keeps_class_colours_when_one_class_is_predicted():
    X, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([-1, 1])
    colours = []
    for predict in (lambda p: np.where(p.sum(1) > 1, 1, -1), lambda p: -np.ones(len(p))):
        fig, ax = plt.subplots()
        plots.decision_boundary(ax, predict, X, y, lim=(0, 1), resolution=20)
        regions = ax.collections[0]
        colours.append(regions.get_facecolor()[0].round(3).tolist())  # the lowest band: class -1
        assert list(regions.levels) == [-1.5, -0.5, 0.5, 1.5]
        plt.close(fig)
    assert colours[0] == colours[1], "class -1 is drawn in the same colour in both frames"


def test_linear_boundary_lies_on_the_line_and_skips_zero_weights():
    fig, ax = plt.subplots()
    for w, b in [((1.0, 2.0), -0.5), ((3.0, 0.1), 1.0), ((1.0, 0.0), -0.25)]:
        plots.linear_boundary(ax, w, b, lim=(-1, 1), color="black")
        x, y = ax.get_lines()[-1].get_data()
        np.testing.assert_allclose(w[0] * np.asarray(x) + w[1] * np.asarray(y) + b, 0, atol=1e-12)
    n = len(ax.get_lines())
    plots.linear_boundary(ax, (0.0, 0.0), 1.0, lim=(-1, 1))
    assert len(ax.get_lines()) == n
    with pytest.raises(ValueError, match="2 entries"):
        plots.linear_boundary(ax, (1.0, 2.0, 3.0), 0.0, lim=(-1, 1))
    plt.close(fig)


def test_graph_draws_every_edge_and_node_and_checks_its_input():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    edges = np.array([[0, 1], [1, 2]])
    fig, ax = plt.subplots()
    plots.graph(ax, pos, edges, classes=[0, 1, 1], class_names=["a", "b"], ring=[0])
    lines = ax.collections[0]
    assert len(lines.get_segments()) == 2
    assert sum(len(c.get_offsets()) for c in ax.collections[1:3]) == 3  # one scatter a class
    assert [t.get_text() for t in ax.legend().get_texts()] == ["a", "b"]
    plots.graph(ax, pos, np.array([[0, 1, 1], [1, 0, 2]]), values=[-1.0, 0.0, 1.0])  # edge_index
    with pytest.raises(ValueError, match="node indices"):
        plots.graph(ax, pos, np.array([[0, 5]]))
    plt.close(fig)


def test_annotated_grid_writes_every_number_and_outlines_boxes():
    fig, ax = plt.subplots()
    plots.annotated_grid(ax, np.arange(6).reshape(2, 3), highlight=[(0, 0, 2, 2)])
    assert [t.get_text() for t in ax.texts] == ["0", "1", "2", "3", "4", "5"]
    assert len(ax.patches) == 1 and ax.patches[0].get_width() == 2
    with pytest.raises(ValueError, match="2-D array"):
        plots.annotated_grid(ax, np.zeros(3))
    plt.close(fig)


def test_token_heatmap_painter_pastes_the_matrix_into_labelled_axes():
    from matplotlib.figure import Figure

    from dlbook.plots import token_heatmap_painter

    paint = token_heatmap_painter(["[CLS]", "a", "cat", "[SEP]"], figsize=(3, 3), dpi=50)
    fig = Figure(figsize=(3, 3), dpi=50)
    eye = paint(fig, np.eye(4), title="layer 1, head 1")
    zeros = paint(Figure(figsize=(3, 3), dpi=50), np.zeros((4, 4)))
    assert eye.shape == (150, 150, 3) and not np.array_equal(eye, zeros)
    assert np.array_equal(eye[:5], zeros[:5]), "only the cells change, not the labels above"
    assert fig.texts and fig.images
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        paint(fig, np.eye(3))


def test_token_heatmap_labels_are_legible_on_the_site():
    """The painter bakes its labels into a picture that no later check sees, so it sizes them
    for the site itself: at 50 dpi an 8-pt label would show at 5.6 px."""
    from matplotlib.figure import Figure

    from dlbook.plots import token_heatmap_painter
    from dlbook.style import MIN_TEXT_PX, smallest_text_px

    paint = token_heatmap_painter(["[CLS]", "a", "cat", "[SEP]"], figsize=(3, 3), dpi=50, fontsize=8)
    fig = Figure(figsize=(3, 3), dpi=50)
    paint(fig, np.eye(4), title="layer 1, head 1")
    fig.draw_without_rendering()
    assert smallest_text_px(fig, 50) >= MIN_TEXT_PX  # the title, sized like the baked labels
