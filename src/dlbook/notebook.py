"""Small notebook helpers: chapter set-up, figures with alt text, numbers glued into the prose,
and library source shown to the reader.

Both write plain Jupyter display data, so they work the same in JupyterLab, Colab and the
book build; neither needs myst-nb at run time.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any

GLUE_PREFIX = "application/papermill.record/"  # the MIME prefix myst-nb's glue roles look for


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Record ``value`` under ``name`` so that the markdown can quote it with ``{glue:text}`name```.

    The prose then shows the number this run computed, never a number typed by hand. Returns
    ``value`` so a cell can glue and use a result in one line. ``display=True`` also shows it.
    """
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata = dict(metadata)
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
    return value


def figure_html(fig, alt: str, dpi: int = 100) -> str:
    """A matplotlib figure as an ``<img>`` tag with alt text (PNG inlined)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
            f'style="max-width:100%;height:auto;background:white">')


class FigureWithAlt:
    """A rendered figure with alt text: shows as HTML (with ``alt``) and, for plain viewers, PNG."""

    def __init__(self, fig, alt: str, dpi: int = 100):
        if not alt or not alt.strip():
            raise ValueError("show() needs alt text describing the figure for readers who cannot see it")
        self.alt = alt
        self.html = figure_html(fig, alt, dpi)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html, "text/plain": f"<figure: {self.alt}>"}


def show_source(*objects):
    """The source code of functions or classes as one highlighted Markdown block, for the reader."""
    import inspect
    import textwrap

    from IPython.display import Markdown

    code = "\n\n".join(textwrap.dedent(inspect.getsource(obj)).rstrip() for obj in objects)
    return Markdown(f"```python\n{code}\n```")


def setup_chapter(seed: int = 0, cpu_threads: int | None = 1):
    """What every chapter's imports cell does: the book's figure style, seeds, and the device.

    Returns the device to use: CUDA when there is a GPU (Colab), else the CPU. On the CPU the
    book's models are small, and one thread is faster than several that wait on each other
    (tests run two chapters side by side on two cores), so PyTorch and the BLAS libraries get
    ``cpu_threads`` threads; pass ``None`` to keep the defaults.
    """
    from .style import use_book_style
    from .training import pick_device, seed_everything

    use_book_style()
    seed_everything(seed)
    device = pick_device()
    if cpu_threads is not None and device.type == "cpu":
        import torch

        torch.set_num_threads(cpu_threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(cpu_threads)
        except ImportError:  # threadpoolctl comes with scikit-learn; without it, numpy keeps its default
            pass
    return device


def show(fig, alt: str, dpi: int = 100) -> None:
    """Display a matplotlib figure with alt text, then close it (so it is not shown twice)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(FigureWithAlt(fig, alt, dpi))
    plt.close(fig)
