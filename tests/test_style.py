"""dlbook.style: the book's look, and text that reads at 12 px or more in the site's column."""
from __future__ import annotations

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from dlbook.notebook import figure_html  # noqa: E402
from dlbook.style import (COLUMN_PX, MAX_HEIGHT_GROWTH, MIN_TEXT_PX, BOOK_STYLE,  # noqa: E402
                          drawn_text, enlarge_small_text, legible, px_per_point, smallest_text_px)


@pytest.fixture(autouse=True)
def book_style():
    with matplotlib.rc_context(BOOK_STYLE):
        yield
    plt.close("all")


def wide_figure(width=13.0, height=3.6, size=10):
    """Three panels, every kind of text at ``size`` points: ticks, labels, titles, legend,
    an annotation, a colorbar and its label, a suptitle."""
    fig, axes = plt.subplots(1, 3, figsize=(width, height))
    for ax in axes[:2]:
        ax.plot(np.arange(10), np.arange(10) ** 2, label="train loss")
        ax.legend(fontsize=size)
        ax.set_title("panel", fontsize=size)
        ax.set_xlabel("step", fontsize=size)
        ax.set_ylabel("loss", fontsize=size)
        ax.tick_params(labelsize=size)
        ax.annotate("minimum", (0, 0), (3, 40), fontsize=size, arrowprops={"arrowstyle": "->"})
    image = axes[2].imshow(np.random.default_rng(0).random((8, 8)))
    axes[2].tick_params(labelsize=size)
    bar = fig.colorbar(image, ax=axes[2])
    bar.set_label("weight", fontsize=size)
    bar.ax.tick_params(labelsize=size)
    fig.suptitle("three panels", fontsize=size)
    return fig


def shown_px(fig, dpi):
    """Every text the figure draws, as screen pixels in the column."""
    fig.draw_without_rendering()
    return [t.get_fontsize() * px_per_point(fig, dpi) for t in drawn_text(fig)]


def test_the_column_shrinks_only_figures_wider_than_itself():
    fig = plt.figure(figsize=(13, 3))
    assert px_per_point(fig, 100) == pytest.approx(100 / 72 * COLUMN_PX / 1300)
    assert px_per_point(fig, 200) == pytest.approx(px_per_point(fig, 100))  # dpi cancels out
    narrow = plt.figure(figsize=(5, 3))
    assert px_per_point(narrow, 80) == pytest.approx(80 / 72)


def test_a_13_inch_figure_with_10_pt_text_reads_at_12_px():
    fig = wide_figure()
    before = shown_px(fig, 100)
    assert min(before) == pytest.approx(10 * 100 / 72 * COLUMN_PX / 1300)  # 7.4 px
    words = {t.get_text() for t in drawn_text(fig) if any(c.isalpha() for c in t.get_text())}
    assert {"panel", "step", "loss", "train loss", "minimum", "weight", "three panels"} <= words
    assert enlarge_small_text(fig, 100)
    after = shown_px(fig, 100)
    # every text is still there (larger tick labels may mean fewer ticks)
    assert {t.get_text() for t in drawn_text(fig) if any(c.isalpha() for c in t.get_text())} == words
    assert min(after) >= MIN_TEXT_PX
    assert min(after) < MIN_TEXT_PX + 0.1  # enlarged to what is needed, no more
    assert smallest_text_px(fig, 100) == pytest.approx(min(after))
    # the width is kept; the plots kept their room by a taller figure, within the cap
    assert fig.get_figwidth() == 13
    assert 3.6 < fig.get_figheight() <= 3.6 * MAX_HEIGHT_GROWTH
    # tick labels the axes make later (new limits) are large too
    fig.axes[0].set_xlim(0, 1000)
    assert min(shown_px(fig, 100)) >= MIN_TEXT_PX


def test_the_plots_keep_their_height():
    fig = wide_figure(size=10)
    fig.draw_without_rendering()
    heights = [ax.get_position().height * fig.get_figheight() for ax in fig.axes[:2]]
    enlarge_small_text(fig, 100)
    fig.draw_without_rendering()
    after = [ax.get_position().height * fig.get_figheight() for ax in fig.axes[:2]]
    assert after == pytest.approx(heights, rel=0.05)
    frozen = wide_figure(size=10)
    enlarge_small_text(frozen, 100, grow=False)
    assert frozen.get_figheight() == 3.6 and min(shown_px(frozen, 100)) >= MIN_TEXT_PX


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
def test_growth_is_capped():
    fig = wide_figure(width=26, height=2.0, size=6)  # text must grow ~4x
    enlarge_small_text(fig, 100)
    assert fig.get_figheight() <= 2.0 * MAX_HEIGHT_GROWTH + 1e-9


def test_a_figure_that_reads_already_is_left_alone():
    fig = wide_figure(width=6.4, height=3.6, size=10)  # 640 px: 10 pt is 13.9 px
    sizes = [t.get_fontsize() for t in drawn_text(fig)]
    assert not enlarge_small_text(fig, 100)
    assert [t.get_fontsize() for t in drawn_text(fig)] == sizes
    assert tuple(fig.get_size_inches()) == (6.4, 3.6)
    assert legible(fig, 100) == pytest.approx(10 * 100 / 72)


def test_figure_html_records_the_smallest_text():
    fig = wide_figure()
    tag = figure_html(fig, "three panels")
    px = float(re.search(r'data-min-text-px="([\d.]+)"', tag).group(1))
    assert MIN_TEXT_PX <= px < MIN_TEXT_PX + 0.15
    png = base64.b64decode(re.search(r'base64,([^"]+)"', tag).group(1))
    assert Image.open(io.BytesIO(png)).width == 1300  # drawn at its size: the site shrinks it
    blank = plt.figure(figsize=(3, 2))
    assert 'data-min-text-px="none"' in figure_html(blank, "nothing written")


def test_low_dpi_text_is_enlarged_too():
    # an interactive plot's frames are drawn at 80 dpi: a 10-pt legend there is 11.1 px
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([0, 1], label="a")
    ax.legend()
    assert enlarge_small_text(fig, 80)
    assert legible(fig, 80) >= MIN_TEXT_PX


@pytest.mark.parametrize("call, error", [
    (lambda: enlarge_small_text("a figure", 100), TypeError),
    (lambda: enlarge_small_text(plt.figure(), 0), ValueError),
    (lambda: enlarge_small_text(plt.figure(), 100, column_px=-688), ValueError),
    (lambda: enlarge_small_text(plt.figure(), 100, min_px=float("nan")), ValueError),
    (lambda: enlarge_small_text(plt.figure(), True), ValueError),
])
def test_bad_input_is_refused(call, error):
    with pytest.raises(error):
        call()


def test_formulas_are_not_split_when_a_label_wraps():
    from dlbook.style import _split_outside_maths

    assert _split_outside_maths("steps to reduce $10^6 \\times$ the loss") == [
        "steps", "to", "reduce", "$10^6 \\times$", "the", "loss"]


def overlaps(boxes) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_what_the_larger_text_crowds_is_laid_out_again():
    """A long title wider than its panel and a y label taller than its Axes wrap; a legend that
    now sits on the lines moves below its Axes; a log axis's minor labels that run into one
    another go. Nothing overlaps, and the plots keep their height."""
    x = np.arange(1, 7)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k in range(4):
        axes[0].step(x, 1 - 0.15 * k * x / 6, label=f"schedule number {k}")
        axes[1].semilogy(x, np.exp(-x / (6 + k)))
    axes[0].legend(fontsize=7)
    axes[1].set_ylabel("training loss (mean over the epoch)", fontsize=8)
    axes[2].set_title("Rosenbrock, 400 steps (X: where each ended)", fontsize=9)
    for ax in axes:
        ax.tick_params(labelsize=8, which="both")
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    assert any(t.get_text() for t in axes[1].yaxis.get_minorticklabels())  # under a decade
    enlarge_small_text(fig, 100)
    fig.draw_without_rendering()
    assert min(shown_px(fig, 100)) >= MIN_TEXT_PX
    title, ylabel = axes[2].title, axes[1].yaxis.label
    assert "\n" in title.get_text() and "\n" in ylabel.get_text()
    assert title.get_window_extent(renderer).width <= axes[2].get_window_extent().width * 1.1
    assert ylabel.get_window_extent(renderer).height <= axes[1].get_window_extent().height
    legend = axes[0].get_legend().get_window_extent(renderer)
    assert legend.y1 < axes[0].get_window_extent().y0  # below the plot, clear of its lines
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels(which="both") if t.get_text()]
            assert not overlaps([t.get_window_extent(renderer) for t in labels])
    assert fig.get_figheight() > 3.6  # the room came from a taller figure


def test_a_legend_clear_of_the_data_stays_where_it_is():
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([0, 1], [0, 0.2], label="low line")
    axes[0].set_ylim(0, 1)
    axes[0].legend(loc="upper left", fontsize=8)
    enlarge_small_text(fig, 100)
    fig.draw_without_rendering()
    legend = axes[0].get_legend().get_window_extent(fig.canvas.get_renderer())
    assert axes[0].get_window_extent().contains(legend.x0 + 1, legend.y0 + 1)


def test_a_legend_placed_by_hand_moves_too_when_it_covers_the_data():
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k in range(3):
        axes[0].plot([0, 1], [k / 3, k / 3 + 0.3], label=f"line {k}")
    axes[0].legend(fontsize=7, loc="center right", bbox_to_anchor=(1, 0.58))
    axes[1].plot([0, 1], [0, 1], label="beside")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)  # out of the plot
    enlarge_small_text(fig, 100)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    moved, beside = (ax.get_legend().get_window_extent(renderer) for ax in axes[:2])
    assert moved.y1 < axes[0].get_window_extent().y0
    # in more than one column, as many as fit under the plot
    widest = max(t.get_window_extent(renderer).width for t in axes[0].get_legend().get_texts())
    assert moved.width > 2 * widest
    assert moved.width <= axes[0].get_window_extent().width * 1.1
    assert beside.x0 >= axes[1].get_window_extent().x1 - 1
