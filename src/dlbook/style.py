"""The book's figure style: one look for every chapter.

Colour-blind-safe (Okabe-Ito palette), large enough to read when projected, and drawn on an
opaque white background so that figures stay legible in the website's dark mode.
Nothing changes at import time: a chapter calls :func:`use_book_style` once.
"""
from __future__ import annotations

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
