"""Small notebook helpers: chapter set-up, figures with alt text, sentences that quote computed
numbers, and library source shown to the reader.

They write plain Jupyter display data, so they work the same in JupyterLab, Colab, RISE and the
book build; none needs myst-nb at run time.
"""
from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

RECORD_KEY = "dlbook"  # output metadata key under which say() keeps its named numbers


def say(markdown: str, **record: Any) -> None:
    """Display a sentence that quotes computed numbers, as Markdown.

    The chapter writes it as an f-string, so the text shows the numbers this run computed, never
    numbers typed by hand; and because it is an ordinary output, it reads the same in Jupyter,
    Colab, RISE and on the website (``make format`` collapses the cell's code in Jupyter and
    removes it on the site). Remember to double the braces of LaTeX inside an f-string:
    ``say(f"accuracy ${acc:.3f}$, $\\mathbf{{w}}$ ...")``.

    ``record``: named numbers kept in the output's metadata, for tools that read an executed
    chapter (``make bench`` takes the chapter's headline number from there).
    """
    from IPython.display import Markdown, display

    if not isinstance(markdown, str) or not markdown.strip():
        raise ValueError("say() needs the sentence to display, as a non-empty string")
    for name, value in record.items():
        if not isinstance(value, (int, float, str)) and not hasattr(value, "item"):
            raise TypeError(f"say(): recorded value {name}={value!r} must be a number or a string")
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    display(Markdown(markdown), metadata={RECORD_KEY: {"record": record}} if record else None)


def keeps_colours(fig) -> bool:
    """Whether ``fig`` shows colour-coded data: an image, a heatmap, filled contours, points
    coloured by value. The site's dark mode inverts line plots (so that they read on a dark page)
    but must leave these alone: inverted, a viridis map turns pink with its high values dark."""
    for ax in fig.axes:
        if ax.images:
            return True
        # Every matplotlib collection is a ScalarMappable; those drawn from data carry an array.
        if any(getattr(c, "get_array", lambda: None)() is not None for c in ax.collections):
            return True
    return False


def figure_classes(fig, photo: bool = False) -> str:
    """The ``<img>`` classes of a figure: ``dlbook-figure``, and ``dlbook-colour`` when its
    colours carry meaning (a photograph, or :func:`keeps_colours`), which dark mode keeps."""
    return "dlbook-figure dlbook-colour" if photo or keeps_colours(fig) else "dlbook-figure"


def min_text_attribute(px: float) -> str:
    """The ``data-min-text-px`` attribute of a figure's ``<img>``: the size, in screen pixels, of
    the smallest text it shows in the site's column ("none": it shows no text). ``make
    site-test`` checks it on every figure of every chapter page."""
    return f'data-min-text-px="{px:.1f}"' if math.isfinite(px) else 'data-min-text-px="none"'


def figure_html(fig, alt: str, dpi: int = 100, photo: bool = False) -> str:
    """A matplotlib figure as an ``<img>`` tag with alt text (PNG inlined).

    The class ``dlbook-figure`` lets the site's stylesheet treat figures (dark mode, phones);
    ``dlbook-colour`` (:func:`figure_classes`) marks a photograph or colour-coded data, which dark
    mode must not invert. Text the site would show under 12 px (a wide figure is shrunk to the
    page's column) is enlarged first (:func:`dlbook.style.enlarge_small_text`, which changes
    ``fig``); ``data-min-text-px`` records the smallest text shown.
    """
    from .style import enlarge_small_text, smallest_text_px

    enlarge_small_text(fig, dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode()
    classes = figure_classes(fig, photo)
    return (f'<img class="{classes}" src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
            f'{min_text_attribute(smallest_text_px(fig, dpi))} '
            f'style="max-width:100%;height:auto;background:white">')


class FigureWithAlt:
    """A rendered figure with alt text: shows as HTML (with ``alt``) and, for plain viewers, PNG."""

    def __init__(self, fig, alt: str, dpi: int = 100, photo: bool = False):
        if not alt or not alt.strip():
            raise ValueError("show() needs alt text describing the figure for readers who cannot see it")
        self.alt = alt
        self.html = figure_html(fig, alt, dpi, photo)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html, "text/plain": f"<figure: {self.alt}>"}


def show_source(*objects):
    """The source code of functions or classes as one highlighted Markdown block, for the reader."""
    import inspect
    import textwrap

    from IPython.display import Markdown

    code = "\n\n".join(textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects)
    return Markdown(f"```python\n{code}\n```")


THREADS_ENV = "DLBOOK_CPU_THREADS"  # the build and the tests pin one thread per worker


def setup_chapter(seed: int = 0, cpu_threads: int | None = None):
    """What every chapter's imports cell does: the book's figure style, seeds, and the device.

    Returns the device to use: CUDA when there is a GPU (Colab), else the CPU. A reader's machine
    keeps all its cores (PyTorch's default). The build and the tests run two chapters side by side
    on two cores, where two threads each would wait on one another, so they set the environment
    variable ``DLBOOK_CPU_THREADS=1``; ``cpu_threads`` overrides both.
    """
    import os

    from .style import use_book_style
    from .training import pick_device, seed_everything

    use_book_style()
    seed_everything(seed)
    device = pick_device()
    if cpu_threads is None and os.environ.get(THREADS_ENV):
        try:
            cpu_threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads, "
                             f"got {os.environ[THREADS_ENV]!r}") from None
    if cpu_threads is not None and cpu_threads < 1:
        raise ValueError(f"cpu_threads must be at least 1, got {cpu_threads}")
    if cpu_threads is not None and device.type == "cpu":
        import torch

        torch.set_num_threads(cpu_threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(cpu_threads)
        except ImportError:  # threadpoolctl comes with scikit-learn; without it, numpy keeps its default
            pass
    return device


def show(fig, alt: str, dpi: int = 100, photo: bool = False) -> None:
    """Display a matplotlib figure with alt text, then close it (so it is not shown twice).

    ``photo=True``: the figure is a photograph, which the site's dark mode leaves uninverted.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(FigureWithAlt(fig, alt, dpi, photo))
    plt.close(fig)


def readable(x: float, digits: int = 2, latex: bool = False) -> str:
    """A number as a person writes it: 0.016, 13,308, or 6 × 10⁻⁸ and 10⁹ for the very small and
    large (``latex=True``: ``$6 \\times 10^{-8}$``, for Markdown). ``digits``: significant digits."""
    x = float(x)  # a 0-d tensor or numpy scalar too
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        # %g writes 424 as 4.2e+02 at two digits: a whole number is written whole instead
        text = f"{x:,.{digits}g}"
        return f"{x:,.0f}" if abs(x) >= 1000 or "e" in text else text
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    sign, mantissa = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    if latex:
        power = f"10^{{{int(exponent)}}}"
        return f"${sign}{power}$" if float(mantissa) == 1 else rf"${sign}{mantissa} \times {power}$"
    power = "10" + str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{sign}{power}" if float(mantissa) == 1 else f"{sign}{mantissa} × {power}"
