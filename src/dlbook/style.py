"""The book's figure style: one look for every chapter.

Colour-blind-safe (Okabe-Ito palette), large enough to read when projected, and drawn on an
opaque white background so that figures stay legible in the website's dark mode.
Nothing changes at import time: a chapter calls :func:`use_book_style` once.
"""
from __future__ import annotations

import math

from cycler import cycler

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = OKABE_ITO
# Diverging and sequential colour maps that are perceptually uniform and colour-blind-safe.
DIVERGING_CMAP = "RdBu_r"
SEQUENTIAL_CMAP = "viridis"

BOOK_STYLE = {
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 2.0,
    "image.cmap": SEQUENTIAL_CMAP,
    "figure.constrained_layout.use": True,
}


def use_book_style() -> None:
    """Apply the book style to matplotlib's global settings (call once, in a chapter's imports cell)."""
    import matplotlib as mpl

    mpl.rcParams.update(BOOK_STYLE)


# --- legible text at the page's width ----------------------------------------------------------
# The site's content column at 1280x800 (the theme's article width): a figure wider than this is
# scaled down to it, and its text with it. A 13-inch figure drawn at 100 dpi (1,300 px) shows its
# 10-pt legend at 10 / 72 * 100 * 688 / 1300 = 7 px. Text a reader sees is at least MIN_TEXT_PX.
# Measured in Chromium: the column is 688 px at 1280 px wide, 790 from 1440 up, 730-895 from 992
# to 1199 (one sidebar); it is narrower only from 1200 to 1279 (624-687 px, both sidebars).
COLUMN_PX = 688
MIN_TEXT_PX = 12.0
MAX_HEIGHT_GROWTH = 1.5  # enlarge_small_text() makes a figure at most this much taller


def px_per_point(fig, dpi: float, column_px: float = COLUMN_PX) -> float:
    """Screen pixels one point of text takes when ``fig``, saved at ``dpi``, is shown in a column
    ``column_px`` wide (shrunk to fit when wider, never enlarged): dpi / 72 times the shrink."""
    width_px = fig.get_figwidth() * dpi
    return dpi / 72 * min(1.0, column_px / width_px)


def _axes_text(fig) -> tuple[dict, set]:
    """Each axis of each Axes, mapped to its Axes; and the ids of every Text an axis owns (its
    label, offset text and tick labels: drawn only when the axis is)."""
    axes, owned = {}, set()
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis, getattr(ax, "zaxis", None)):
            if axis is None:
                continue
            axes[axis] = ax
            owned |= {id(t) for t in (axis.label, axis.offsetText)}
            owned |= {id(label) for tick in axis.majorTicks + axis.minorTicks
                      for label in (tick.label1, tick.label2)}
    return axes, owned


def _shown(text) -> bool:
    return text.get_visible() and bool(text.get_text().strip())


def drawn_text(fig) -> list:
    """The Text artists of ``fig`` that a draw shows: visible and non-empty, tick labels only of
    the ticks in view, an axis's texts only when its Axes draws its axes (not ``axis('off')``).
    Call after a draw (the ticks in view are known then)."""
    from matplotlib.text import Text

    axes, owned = _axes_text(fig)
    texts = [t for t in fig.findobj(Text, include_self=False) if id(t) not in owned and _shown(t)]
    for axis, ax in axes.items():
        if not (ax.get_visible() and ax.axison and axis.get_visible()):
            continue
        texts += [t for t in (axis.label, axis.offsetText) if _shown(t)]
        texts += [t for t in axis.get_ticklabels(which="both") if _shown(t)]
    return texts


def smallest_text_px(fig, dpi: float, column_px: float = COLUMN_PX) -> float:
    """The size, in screen pixels, of the smallest text ``fig`` shows (saved at ``dpi``, shown in
    a column ``column_px`` wide); infinity for a figure without text. Call after a draw."""
    sizes = [t.get_fontsize() for t in drawn_text(fig)]
    return min(sizes) * px_per_point(fig, dpi, column_px) if sizes else float("inf")


def _axes_heights(fig) -> list[float]:
    """The drawn height, in inches, of every visible Axes (after layout and aspect)."""
    fig.draw_without_rendering()
    return [ax.get_position().height * fig.get_figheight() for ax in fig.get_axes()
            if ax.get_visible()]


def enlarge_small_text(fig, dpi: float, *, column_px: float = COLUMN_PX,
                       min_px: float = MIN_TEXT_PX, grow: bool = True) -> bool:
    """Enlarge every text of ``fig`` that the site would show under ``min_px`` screen pixels
    (saved at ``dpi``, shrunk to a column ``column_px`` wide when wider) to exactly that size;
    texts already large enough keep theirs. Returns whether any text changed.

    Tick labels, axis labels, offset texts, titles, suptitles, legends, annotations and colorbar
    labels: every Text of the figure. Constrained layout re-lays the figure at its next draw.
    ``grow=True`` (a static figure): what the larger text crowds is laid out again: titles and
    axis labels longer than their Axes wrap, a log axis's minor labels that run into one another
    go, a legend that now covers the data moves below its Axes; and the text takes its room from
    the figure's height rather than from the plots, which keep their height (the figure grows by
    at most MAX_HEIGHT_GROWTH). This costs a few draws, and only for a figure whose text changed.
    The frames of an interactive plot pass ``grow=False``: each keeps the plot's size and layout,
    and costs no extra draw.
    """
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    if not isinstance(fig, Figure):
        raise TypeError(f"needs a matplotlib Figure, got {type(fig).__name__}")
    for name, value in [("dpi", dpi), ("column_px", column_px), ("min_px", min_px)]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    # The smallest font size, in points, that reads at min_px, rounded up to a tenth of a point:
    # the browser's column is a fraction of a pixel narrower than column_px at some zooms.
    need = math.ceil(min_px / px_per_point(fig, dpi, column_px) * 10 - 1e-6) / 10
    axes, owned = _axes_text(fig)
    small_ticks = [(axis, which) for axis in axes
                   for which, ticks in (("major", axis.get_major_ticks(1)),
                                        ("minor", axis.get_minor_ticks(1)))
                   if ticks and ticks[0].label1.get_fontsize() < need]
    small = [t for t in fig.findobj(Text, include_self=False)
             if id(t) not in owned and t.get_fontsize() < need]
    small += [t for axis in axes for t in (axis.label, axis.offsetText) if t.get_fontsize() < need]
    if not (small or small_ticks):
        return False
    before = _axes_heights(fig) if grow else None
    for axis, which in small_ticks:
        axis.set_tick_params(which=which, labelsize=need)
    for text in small:
        text.set_fontsize(need)
    if grow:
        # One draw lays the figure out with the larger text; the fixes read that layout (and
        # draw nothing); a draw after them only if they changed something. A large figure's
        # draw costs a good part of a second, so every draw saved counts.
        after = _axes_heights(fig)
        if _drop_crowded_minor_labels(fig) | _wrap_long_labels(fig) | _move_crowded_legends(fig):
            after = _axes_heights(fig)
        _grow_for_text(fig, before, after)
    return True


def _split_outside_maths(text: str) -> list[str]:
    """The words of ``text``, split at spaces outside ``$...$`` (a formula stays whole)."""
    words, word, maths = [], "", False
    for char in text:
        if char == "$":
            maths = not maths
        if char == " " and not maths:
            words.append(word)
            word = ""
        else:
            word += char
    return [w for w in words + [word] if w]


def _wrap(text, room: float) -> bool:
    """Break ``text`` (a matplotlib Text) into lines no longer than ``room`` display pixels,
    as far as its words allow, by the width of its characters on average."""
    import textwrap

    words = _split_outside_maths(text.get_text())
    extent = text.get_window_extent()
    length = extent.height if text.get_rotation() % 180 else extent.width
    if len(words) < 2 or length <= room:
        return False
    chars = max(1, int(len(text.get_text()) * room / length))
    # textwrap breaks at spaces only: glue each formula's inner spaces first
    glued = [w.replace(" ", "\0") for w in words]
    lines = textwrap.wrap(" ".join(glued), chars, break_long_words=False, break_on_hyphens=False)
    text.set_text("\n".join(line.replace("\0", " ") for line in lines))
    return len(lines) > 1


def _wrap_long_labels(fig) -> bool:
    """Titles and axis labels that the enlarged text made longer than their Axes (an x label or
    title wider, a y label taller) are broken into lines; a suptitle into the figure's width.
    Call after a draw; returns whether it changed anything."""
    changed = False
    for ax in fig.get_axes():
        if not ax.get_visible():
            continue
        box = ax.get_window_extent()
        # (the left and right titles have no public handle)
        titles = [ax.title] + [getattr(ax, name, None) for name in ("_left_title", "_right_title")]
        for text in [t for t in titles if t is not None] + [ax.xaxis.label]:
            if _shown(text):
                changed |= _wrap(text, box.width * 1.08)
        if _shown(ax.yaxis.label):
            changed |= _wrap(ax.yaxis.label, box.height)
    for text in [t for t in (getattr(fig, "_suptitle", None), getattr(fig, "_supxlabel", None))
                 if t is not None and _shown(t)]:
        changed |= _wrap(text, fig.bbox.width * 0.96)
    return changed


def _drop_crowded_minor_labels(fig) -> bool:
    """A log axis labels some minor ticks (2 x 10^-1, 3 x 10^-1, ...) by how many decades it
    spans, not by the size of the labels: enlarged, they run into one another. Where any two
    labels of an axis overlap, its minor ticks lose their labels (the ticks stay). Call after
    a draw; returns whether it changed anything."""
    from matplotlib.ticker import NullFormatter

    renderer, changed = fig.canvas.get_renderer(), False
    for ax in fig.get_axes():
        for axis, side in ((ax.xaxis, 0), (ax.yaxis, 1)):
            minor = [t for t in axis.get_minorticklabels() if _shown(t)]
            if not minor:
                continue
            labels = minor + [t for t in axis.get_majorticklabels() if _shown(t)]
            spans = sorted((e.intervalx if side == 0 else e.intervaly).tolist()
                           for e in (t.get_window_extent(renderer) for t in labels))
            if any(b[0] < a[1] for a, b in zip(spans, spans[1:])):
                axis.set_minor_formatter(NullFormatter())
                changed = True
    return changed


def _move_crowded_legends(fig) -> bool:
    """A legend inside an Axes that its enlarged text has put over the data (a plotted line or a
    point under it; wherever it was placed, by "best" or by hand) moves below the Axes, under
    its x label, in as many columns as fit the Axes' width; constrained layout makes room for
    it. Call after a draw; returns whether it moved any."""
    from matplotlib.collections import PathCollection

    renderer, moved = fig.canvas.get_renderer(), False
    for ax in fig.get_axes():
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        if not ax.bbox.contains((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2):
            continue  # beside the plot (placed there by hand): it covers no data
        over = any(line.get_visible() and line.get_transform().transform_path(
                       line.get_path()).intersects_bbox(box, filled=False)
                   for line in ax.lines)
        over = over or any(
            c.get_visible() and box.count_contains(c.get_offset_transform().transform(c.get_offsets()))
            for c in ax.collections if isinstance(c, PathCollection))
        if not over:
            continue
        # Below the x label: the pad, in the legend's font size, is the height of what is drawn
        # under the Axes (tick labels, x label), which does not change as the figure grows. A
        # legend lays out its columns when it is made, so it is made again, in as many columns
        # as fit under the Axes, from the same entries and look.
        under = (ax.bbox.y0 - ax.get_tightbbox(renderer).y0) * 72 / fig.dpi  # points
        texts = legend.get_texts()
        size = texts[0].get_fontsize() if texts else legend.prop.get_size_in_points()
        title = legend.get_title()
        look = dict(loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=ax.transAxes,
                    borderaxespad=under / size + 0.3, fontsize=size,
                    frameon=legend.get_frame_on(), framealpha=legend.get_frame().get_alpha(),
                    title=title.get_text() or None, title_fontsize=title.get_fontsize())
        handles, labels = legend.legend_handles, [t.get_text() for t in texts]
        for columns in range(len(labels), 0, -1):
            legend = ax.legend(handles, labels, ncols=columns, **look)
            if legend.get_window_extent(renderer).width <= ax.bbox.width * 1.1:
                break
        moved = True
    return moved


def legible(fig, dpi: float, *, column_px: float = COLUMN_PX, min_px: float = MIN_TEXT_PX,
            grow: bool = True) -> float:
    """:func:`enlarge_small_text`, then a draw; returns :func:`smallest_text_px`, the size in
    screen pixels of the smallest text the figure shows (at least ``min_px``)."""
    enlarge_small_text(fig, dpi, column_px=column_px, min_px=min_px, grow=grow)
    fig.draw_without_rendering()
    return smallest_text_px(fig, dpi, column_px)


def _grow_for_text(fig, before: list[float], after: list[float], tries: int = 2) -> None:
    """Make ``fig`` taller until its Axes are again as tall as ``before`` (their heights, in
    inches, before its text grew; ``after``: now), by at most MAX_HEIGHT_GROWTH in all."""
    start = fig.get_figheight()
    rows = max((ax.get_subplotspec().get_gridspec().nrows for ax in fig.get_axes()
                if ax.get_subplotspec() is not None), default=1)
    for attempt in range(tries):
        if attempt:
            after = _axes_heights(fig)
        if len(after) != len(before):
            return
        lost = max((b - a for b, a in zip(before, after)), default=0.0)  # inches
        if lost < 0.02 * max(before, default=1.0):
            return
        # every row of plots lost about that much to its taller labels
        height = min(fig.get_figheight() + rows * lost, start * MAX_HEIGHT_GROWTH)
        if height <= fig.get_figheight() * 1.005:
            return
        fig.set_figheight(height)
