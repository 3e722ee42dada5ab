"""Drawing that several chapters share, so that a chapter's visible code is the idea it teaches.

Each function draws on a matplotlib ``Axes`` (or ``Figure``) it is given and returns it, so the
same call serves a static figure (``fig, ax = plt.subplots()``) and an interactive plot's
``draw(fig, ...)``. Colours come from the book style (:mod:`dlbook.style`).

- :func:`learning_curves`: loss or metric against epoch for one or several runs.
- :func:`mean_band`: the mean of several seeds' curves with a min-max band.
- :func:`decision_boundary`: a classifier's regions on a 2-D grid, with the data on top.
- :func:`linear_boundary`: the line ``w . x + b = 0`` of a linear unit, across a square.
- :func:`image_grid`: a grid of small images (digits, filters, feature maps).
- :func:`contour_trajectories`: a 2-D function's contours with optimizer paths on them.
- :func:`graph`: a graph's nodes at given 2-D positions, coloured by class or by a value.
- :func:`annotated_grid`: a small matrix as coloured cells with its numbers (kernels, patches).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .style import DIVERGING_CMAP, OKABE_ITO, drawn_text, enlarge_small_text


def _colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def learning_curves(ax, histories, keys: Sequence[str] = ("train_loss", "val_loss"),
                    *, ylabel: str | None = None, logy: bool = False, title: str | None = None):
    """Curves of ``keys`` against epoch for each :class:`~dlbook.training.History`.

    ``histories``: one History, or a ``{label: History}`` mapping (one colour a run). Training
    curves are dashed and validation curves solid, so a gap between them reads at a glance.
    """
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    if not histories:
        raise ValueError("learning_curves needs at least one History")
    for i, (label, history) in enumerate(histories.items()):
        for key in keys:
            values = getattr(history, key, None)
            if values is None:
                raise ValueError(f"History has no {key!r}; it records {list(history.as_dict())}")
            if not values:
                continue
            x = getattr(history, "epoch", None) or range(1, len(values) + 1)
            if getattr(history, "step", None):
                x = history.step if len(history.step) == len(values) else x
            split = key.split("_")[0]
            name = " ".join(filter(None, [label, split]))
            ax.plot(x[:len(values)], values, color=_colour(i), ls="--" if split == "train" else "-",
                    label=name)
    if logy:
        ax.set_yscale("log")
    unit = "step" if any(getattr(h, "step", None) for h in histories.values()) else "epoch"
    ax.set(xlabel=unit, ylabel=ylabel or keys[-1].split("_", 1)[-1], title=title)
    ax.legend()
    return ax


def mean_band(ax, x, runs, *, label: str | None = None, color: str | None = None, ls: str = "-",
              centre: str = "mean"):
    """The mean over seeds of ``runs`` (shape ``(n_seeds, len(x))``) with a min-max band.
    NaN marks a run not made (some points may have more seeds than others); it is left out.
    ``centre="median"`` draws the median instead of the mean (when the text quotes medians)."""
    if centre not in ("mean", "median"):
        raise ValueError(f"centre must be 'mean' or 'median', got {centre!r}")
    runs = np.asarray(runs, dtype=float)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(f"runs must have shape (n_seeds, {len(x)}), got {runs.shape}")
    if np.isnan(runs).all(0).any():
        raise ValueError("every x needs at least one run that is not NaN")
    middle = np.nanmedian(runs, 0) if centre == "median" else np.nanmean(runs, 0)
    line, = ax.plot(x, middle, label=label, color=color, ls=ls)
    ax.fill_between(x, np.nanmin(runs, 0), np.nanmax(runs, 0), color=line.get_color(),
                    alpha=0.2, lw=0)
    return ax


def decision_boundary(ax, predict: Callable[[np.ndarray], np.ndarray], X, y, *,
                      lim: tuple[float, float] | None = None, resolution: int = 200,
                      probability: bool = False, cmap: str = DIVERGING_CMAP, size: float = 25):
    """Shade the regions a classifier assigns on a grid; draw the points coloured by label.

    ``predict`` maps an ``(n, 2)`` array to labels, or to probabilities of class 1 when
    ``probability=True`` (then the 0.5 contour is drawn too). ``lim``: the square's bounds
    (default: the data's range with a margin).
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary draws 2-D inputs; X has shape {X.shape}")
    if lim is None:
        lo, hi = X.min(), X.max()
        pad = 0.1 * (hi - lo)
        lim = (lo - pad, hi + pad)
    t = np.linspace(*lim, resolution)
    gx, gy = np.meshgrid(t, t)
    z = np.asarray(predict(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape)
    if probability:
        ax.contourf(gx, gy, z, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.35)
        ax.contour(gx, gy, z, levels=[0.5], colors="black", linewidths=1.5)
    else:
        # The levels span the data's labels too, so that a class keeps its colour in a frame
        # where the classifier predicts one class only.
        lo, hi = min(z.min(), y.min()), max(z.max(), y.max())
        ax.contourf(gx, gy, z, levels=np.arange(lo, hi + 2) - 0.5, cmap=cmap, alpha=0.3)
    classes = np.unique(y)
    for i, c in enumerate(classes):
        ax.scatter(*X[y == c].T, s=size, color=_colour(i), edgecolor="black", lw=0.4,
                   label=str(c), zorder=3)
    ax.set(xlim=lim, ylim=lim, aspect="equal")
    return ax



def linear_boundary(ax, w, b: float, lim: tuple[float, float], **line_kwargs):
    """The line ``w . x + b = 0`` across the square ``lim``: a linear unit's decision boundary.

    Drawn along whichever axis keeps it finite, so a vertical line works too; nothing is drawn
    when ``w`` is zero (there is no line). Keyword arguments go to ``ax.plot``.
    """
    w = np.asarray(w, dtype=float)
    if w.shape != (2,):
        raise ValueError(f"linear_boundary draws a line in the plane: w needs 2 entries, got shape {w.shape}")
    if not np.any(w):
        return ax
    t = np.linspace(*lim, 2)
    if abs(w[1]) >= abs(w[0]):
        ax.plot(t, -(w[0] * t + b) / w[1], **line_kwargs)
    else:
        ax.plot(-(w[1] * t + b) / w[0], t, **line_kwargs)
    return ax


def image_grid(fig, images, *, titles: Sequence[str] | None = None, ncols: int = 10,
               cmap: str = "gray_r", symmetric: bool = False, suptitle: str | None = None):
    """Draw ``images`` (``(n, H, W)``, or ``(n, H*W)`` for square images) in a grid on ``fig``.

    ``symmetric=True`` centres a diverging colour map on zero (weights, filters, saliency).
    Returns the array of axes.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"rows of length {images.shape[1]} are not square images: reshape them")
        images = images.reshape(len(images), side, side)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"image_grid needs images of shape (n, H, W), got {images.shape}")
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        if symmetric:
            v = np.abs(images[i]).max() or 1.0
            ax.imshow(images[i], cmap=DIVERGING_CMAP, vmin=-v, vmax=v)
        else:
            ax.imshow(images[i], cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return axes


def contour_trajectories(ax, f: Callable[[np.ndarray, np.ndarray], np.ndarray],
                         paths: Mapping[str, np.ndarray], *, xlim, ylim, levels=30,
                         log_levels: bool = False, minimum: Sequence[float] | None = None):
    """Contours of ``f(x, y)`` with one optimizer path (``(steps, 2)`` array) per label."""
    x, y = np.linspace(*xlim, 300), np.linspace(*ylim, 300)
    gx, gy = np.meshgrid(x, y)
    z = f(gx, gy)
    if log_levels:
        levels = np.geomspace(max(z.min(), 1e-3), z.max(), levels if isinstance(levels, int) else 30)
    ax.contour(gx, gy, z, levels=levels, colors="gray", linewidths=0.6, alpha=0.7)
    for i, (label, path) in enumerate(paths.items()):
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "-o", ms=2.5, lw=1.4, color=_colour(i), label=label)
    if minimum is not None:
        ax.plot(*minimum, marker="*", ms=14, color="black", ls="none", label="minimum")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$")
    ax.legend(loc="upper left")
    return ax


def graph(ax, positions, edges, *, classes=None, values=None, ring=None, labels=None,
          class_names: Sequence[str] | None = None, cmap: str = DIVERGING_CMAP, vlim=None,
          size: float = 110, edge_alpha: float = 0.25):
    """Draw a graph: ``positions`` ``(n, 2)``, ``edges`` ``(m, 2)`` (or an edge_index ``(2, E)``).

    Colour the nodes by ``classes`` (integers, one book colour each, legend from
    ``class_names``) or by ``values`` (a diverging colour map, symmetric ``vlim`` by default).
    ``ring``: indices of nodes to circle in black (e.g. the labelled ones); ``labels``: a
    ``{node: text}`` mapping written beside nodes.
    """
    from matplotlib.collections import LineCollection

    pos = np.asarray(positions, dtype=float)
    e = np.asarray(edges)
    if e.ndim == 2 and e.shape[0] == 2 and e.shape[1] != 2:
        e = e.T
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (n, 2), got {pos.shape}")
    if e.size and (e.ndim != 2 or e.shape[1] != 2 or e.max() >= len(pos)):
        raise ValueError(f"edges must be (m, 2) pairs of node indices < {len(pos)}, got {e.shape}")
    if e.size:
        ax.add_collection(LineCollection(pos[e], colors="gray", alpha=edge_alpha, lw=0.8,
                                         zorder=1))
    if classes is not None:
        classes = np.asarray(classes)
        for c in np.unique(classes):
            name = class_names[c] if class_names is not None else str(c)
            ax.scatter(*pos[classes == c].T, s=size, color=_colour(int(c)), edgecolor="white",
                       lw=0.8, zorder=2, label=name)
    else:
        v = np.zeros(len(pos)) if values is None else np.asarray(values, dtype=float)
        lim = vlim if vlim is not None else (np.abs(v).max() or 1.0)
        ax.scatter(*pos.T, s=size, c=v, cmap=cmap, vmin=-lim, vmax=lim, edgecolor="gray",
                   lw=0.6, zorder=2)
    if ring is not None:
        ring = np.atleast_1d(np.asarray(ring))
        ax.scatter(*pos[ring].T, s=size * 2.2, facecolor="none", edgecolor="black", lw=1.8,
                   zorder=3)
    for node, text in (labels or {}).items():
        ax.annotate(text, pos[node], xytext=(4, 4), textcoords="offset points", fontsize=8,
                    zorder=4)
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    ax.spines[:].set_visible(False)
    ax.autoscale_view()
    return ax


def annotated_grid(ax, values, *, cmap: str = "Greys", fmt: str = "{:g}", vmin=None, vmax=None,
                   highlight: Sequence[tuple[int, int, int, int]] = (), fontsize: float = 9):
    """A small matrix drawn as coloured cells with its numbers written in them (an input patch,
    a kernel, a feature map). ``highlight``: ``(row, col, height, width)`` boxes outlined in the
    book's colours, one colour a box (e.g. the window a kernel covers)."""
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"annotated_grid draws a 2-D array, got shape {values.shape}")
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    lo, hi = image.get_clim()
    for (r, c), v in np.ndenumerate(values):
        dark = (v - lo) / ((hi - lo) or 1.0)
        light_text = dark > 0.6 if cmap in ("Greys", "gray_r") else abs(dark - 0.5) > 0.35
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                color="white" if light_text else "black")
    for i, (r, c, h, w) in enumerate(highlight):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, lw=3,
                               edgecolor=_colour(i)))
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    return ax


def token_heatmap_painter(tokens: Sequence[str], *, figsize=(4.2, 4.2), dpi: int = 70,
                          cmap: str = "viridis", vmin: float = 0.0, vmax: float = 1.0,
                          fontsize: int = 8):
    """Draw many token-by-token heat maps (attention maps) with the same labels, fast.

    An interactive plot over layers and heads needs one frame per combination (6 x 12 = 72 for
    MiniLM), and laying out 2T tick labels per frame is what makes matplotlib slow. So the
    labelled, empty axes are drawn once; each frame pastes its matrix's colours into that
    picture. Returns ``paint(fig, matrix, title)`` for a draw function of
    :func:`dlbook.interactive.interactive_plot` called with the same ``figsize`` and ``dpi``.
    Rows are queries (labelled on the left), columns keys (labelled on top).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tokens = [str(t) for t in tokens]
    n = len(tokens)
    if n == 0:
        raise ValueError("token_heatmap_painter needs at least one token")
    fig = Figure(figsize=figsize, dpi=dpi, layout="none")  # axes placed by hand
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.26, 0.02, 0.6, 0.6])
    bar = fig.add_axes([0.9, 0.02, 0.03, 0.6])
    ax.imshow(np.zeros((n, n)), cmap="Greys", vmin=0, vmax=1)
    ax.set_xticks(range(n), tokens, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), tokens, fontsize=fontsize)
    ax.xaxis.tick_top()
    ax.grid(False)
    fig.colorbar(matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(vmin, vmax), cmap),
                 cax=bar)
    bar.tick_params(labelsize=fontsize)
    # The labels are baked into the picture, where no later check sees them: they are made
    # legible on the site here (dlbook.style.enlarge_small_text), as every figure's text is.
    enlarge_small_text(fig, dpi, grow=False)
    title_pt = max(fontsize + 2, min(t.get_fontsize() for t in drawn_text(fig)))
    # Grow the square map into the room its labels leave: the tick labels just below the
    # title line, on the left edge, and clear of the colour bar.
    fig.canvas.draw()
    width, height = fig.bbox.width, fig.bbox.height
    title_room = 1.6 * title_pt * dpi / 72  # pixels
    box, labelled = ax.get_window_extent(), ax.get_tightbbox()
    above, beside = labelled.y1 - box.y1, box.x0 - labelled.x0  # label extents
    side = min(height - title_room - above - 0.02 * height,
               0.86 * width - beside - 0.02 * width)  # pixels
    ax.set_position([(beside + 0.02 * width) / width, 0.02, side / width, side / height])
    bar.set_position([((beside + 0.04 * width) + side) / width, 0.02, 0.03, side / height])
    fig.canvas.draw()
    template = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)
    box = ax.get_window_extent()  # pixels, origin at the bottom left
    top, bottom = template.shape[0] - int(round(box.y1)), template.shape[0] - int(round(box.y0))
    left, right = int(round(box.x0)), int(round(box.x1))
    rows = np.linspace(0, n, bottom - top, endpoint=False).astype(int)  # pixel row -> cell
    cols = np.linspace(0, n, right - left, endpoint=False).astype(int)
    colour_map = matplotlib.colormaps[cmap]

    def paint(target, matrix, title: str = ""):
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (n, n):
            raise ValueError(f"matrix must be ({n}, {n}) for {n} tokens, got {matrix.shape}")
        scaled = np.clip((matrix - vmin) / (vmax - vmin), 0, 1)
        colours = (colour_map(scaled)[..., :3] * 255).astype(np.uint8)  # (n, n, 3)
        image = template.copy()
        image[top:bottom, left:right] = colours[rows][:, cols]
        target.set_layout_engine("none")
        target.figimage(image, 0, 0)
        if title:
            target.text(0.01, 0.99, title, fontsize=title_pt, va="top")
        return image

    return paint
