"""Interactive plots that work live in Jupyter/Colab *and* on the static website.

One call, :func:`interactive_plot`, turns a drawing function and a few controls into an output
whose MIME bundle carries two views of the same plot:

* ``application/vnd.jupyter.widget-view+json``: an ipywidgets control panel. In Jupyter and Colab,
  moving a slider calls the drawing function again with the new value (any value in its range).
* ``text/html``: a self-contained "frame scrubber". Every combination of the controls' grid values
  is drawn once, when the notebook is executed, into a small PNG; a few lines of plain JavaScript
  inside the output swap the frames as the reader moves the controls. No kernel, no require.js,
  no CDN: it works on the static website, offline.

The book's ``_config.yml`` tells myst-nb to prefer ``text/html`` for the html builder, so the site
shows the scrubber, while a live frontend that knows widgets shows the live view.

Example::

    def draw(fig, w, activation):
        ax = fig.subplots()
        ax.plot(x, act[activation](w * x))

    interactive_plot(draw, [Slider("w", np.linspace(-3, 3, 13)),
                            Dropdown("activation", ["tanh", "relu"])],
                     alt="The activation function scaled by the weight w.")
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .notebook import keeps_colours, min_text_attribute
from .style import BOOK_STYLE, enlarge_small_text, smallest_text_px

MAX_FRAMES = 160  # beyond this the page gets heavy: use a coarser grid
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Slider:
    """A numeric control. ``values`` is the grid the static site offers; live, the slider moves
    in ``live_step`` steps between the grid's ends (default: the grid itself, refined 4x).
    ``snap=True``: the live slider, too, offers only the grid values, for a ``draw`` that picks
    precomputed results (a live control must show the value that is drawn)."""

    name: str
    values: Sequence[float]
    label: str | None = None
    live_step: float | None = None
    fmt: str = "{:.3g}"
    snap: bool = False  # live too, only the grid values (when draw can show nothing in between)

    def __post_init__(self):
        values = [v.item() if hasattr(v, "item") else v for v in self.values]
        if len(values) < 2:
            raise ValueError(f"Slider {self.name!r} needs at least 2 grid values, got {values}")
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"Slider {self.name!r}: grid values must increase strictly, got {values}")
        object.__setattr__(self, "values", tuple(values))

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, (int, np.integer)) for v in self.values)

    def labels(self) -> list[str]:
        return [self.fmt.format(v) for v in self.values]


@dataclass(frozen=True)
class Dropdown:
    """A choice among named options; ``options`` is a list of names or a {name: value} mapping."""

    name: str
    options: Sequence[str] | Mapping[str, Any]
    label: str | None = None
    _pairs: tuple = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self):
        pairs = tuple(self.options.items()) if isinstance(self.options, Mapping) else tuple(
            (str(o), o) for o in self.options)
        if not pairs:
            raise ValueError(f"Dropdown {self.name!r} needs at least one option")
        object.__setattr__(self, "_pairs", pairs)

    @property
    def values(self) -> tuple:
        return tuple(v for _, v in self._pairs)

    def labels(self) -> list[str]:
        return [k for k, _ in self._pairs]


Control = Slider | Dropdown


def render_png(draw: Callable, values: Mapping[str, Any], *, figsize, dpi, colors: int | None = 128,
               inspect: Callable[[Any], None] | None = None) -> bytes:
    """Draw one frame off-screen and return it as a PNG, palette-compressed to ``colors``
    colours (None: full RGB). ``inspect(fig)`` is called on the drawn figure. Text the site
    would show under 12 px is enlarged (:func:`dlbook.style.enlarge_small_text`; the frame keeps
    its size, as every frame of a plot must)."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    with rc_context(BOOK_STYLE):
        fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        canvas = FigureCanvasAgg(fig)
        try:
            draw(fig, **values)
        except Exception as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise RuntimeError(f"the plot's draw function failed at {shown}: "
                               f"{type(err).__name__}: {err}") from err
        enlarge_small_text(fig, dpi, grow=False)
        # One draw, read straight from the canvas: savefig would lay the figure out in a draw of
        # its own first and then encode a PNG only for it to be decoded here (same pixels, ~20%
        # slower per frame).
        canvas.draw()
        if inspect is not None:
            inspect(fig)
        width, height = canvas.get_width_height()
        img = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        img = img.convert("RGB")  # the figure's face is opaque
    if colors is not None:
        # A 128-colour palette keeps plots visually identical and makes the frames ~3x smaller.
        img = img.quantize(colors=colors, method=Image.Quantize.FASTOCTREE,
                           dither=Image.Dither.NONE)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


class InteractivePlot:
    """The object :func:`interactive_plot` returns; Jupyter displays it through its MIME bundle."""

    def __init__(self, draw, controls, *, alt, figsize=(6.4, 3.6), dpi=80, initial=None,
                 continuous_update=True, caption=None):
        self.alt_for = alt if callable(alt) else None
        if self.alt_for is not None:  # alt text that follows the frame: check it on the start frame
            alt = None
        if alt is not None and (not isinstance(alt, str) or not alt.strip()):
            raise ValueError("interactive_plot needs alt text that describes the figure for readers "
                             "who cannot see it")
        names = [c.name for c in controls]
        if len(set(names)) != len(names) or not controls:
            raise ValueError(f"controls need distinct names, got {names}")
        self.draw, self.controls, self.alt = draw, list(controls), alt
        self.figsize, self.dpi, self.caption = figsize, dpi, caption
        self.continuous_update = continuous_update
        n = self.n_frames
        if n > MAX_FRAMES:
            raise ValueError(f"{n} static frames (the product of the controls' grid sizes) is more "
                             f"than {MAX_FRAMES}: use coarser grids")
        initial = dict(initial or {})
        unknown = set(initial) - set(names)
        if unknown:
            raise ValueError(f"initial values for unknown controls {sorted(unknown)}; controls: {names}")
        # Start each control at the given value (snapped to its grid for the static view) or mid-grid.
        self.initial_index = {}
        for c in self.controls:
            vals = c.values
            if c.name in initial:
                v = initial[c.name]
                if isinstance(c, Slider):
                    idx = int(np.argmin([abs(x - v) for x in vals]))
                elif v in vals:
                    idx = vals.index(v)
                else:
                    raise ValueError(f"initial value {v!r} for Dropdown {c.name!r} is not one of "
                                     f"its options {list(vals)}")
            else:
                idx = len(vals) // 2 if isinstance(c, Slider) else 0
            self.initial_index[c.name] = idx
        self._widget = None
        self._frames = None
        self.keeps_colours = False  # set by the first frame that shows colour-coded data
        self.min_text_px = float("inf")  # the smallest text of any frame drawn, in screen px
        if self.alt_for is not None:
            self.alt = self.alt_for(**self.initial_values())
            if not isinstance(self.alt, str) or not self.alt.strip():
                raise ValueError("the alt function must return a description of each frame")

    @property
    def n_frames(self) -> int:
        return int(np.prod([len(c.values) for c in self.controls]))

    def initial_values(self) -> dict:
        return {c.name: c.values[self.initial_index[c.name]] for c in self.controls}

    def frame(self, **values) -> bytes:
        return render_png(self.draw, values, figsize=self.figsize, dpi=self.dpi,
                          inspect=self._note_frame)

    def _note_frame(self, fig) -> None:
        """Any frame with colour-coded data makes the static view keep its colours in dark mode;
        the smallest text of any frame is the static view's ``data-min-text-px``."""
        if not self.keeps_colours and keeps_colours(fig):
            self.keeps_colours = True
        self.min_text_px = min(self.min_text_px, smallest_text_px(fig, self.dpi))

    def initial_frame(self) -> bytes:
        """The frame at the initial values: taken from the static view's frames when they are
        drawn already (the initial values are always on its grid), else drawn."""
        if self._frames is None:
            return self.frame(**self.initial_values())
        index = 0
        for c in self.controls:  # row-major, the last control fastest, as frames() orders them
            index = index * len(c.values) + self.initial_index[c.name]
        return self._frames[index]

    # --- static view -----------------------------------------------------------------------------
    def frames(self) -> list[bytes]:
        """All frames, in row-major order of the controls (the last control varies fastest)."""
        if self._frames is None:
            grids = [c.values for c in self.controls]
            names = [c.name for c in self.controls]
            self._frames = [self.frame(**dict(zip(names, combo))) for combo in itertools.product(*grids)]
        return self._frames

    def frame_alts(self) -> list[str] | None:
        """Each frame's alt text, in the order of :meth:`frames`, when ``alt`` is a function."""
        if self.alt_for is None:
            return None
        names = [c.name for c in self.controls]
        return [self.alt_for(**dict(zip(names, combo)))
                for combo in itertools.product(*[c.values for c in self.controls])]

    def to_html(self) -> str:
        uid = "dlb-" + uuid.uuid4().hex[:10]
        frames = ["data:image/png;base64," + base64.b64encode(f).decode() for f in self.frames()]
        sizes = [len(c.values) for c in self.controls]
        start = [self.initial_index[c.name] for c in self.controls]
        rows = []
        for i, c in enumerate(self.controls):
            label = html.escape(c.label or c.name)
            if isinstance(c, Slider):
                texts = json.dumps(c.labels())
                rows.append(
                    f'<label style="display:flex;gap:.6em;align-items:center;margin:.15em 0">'
                    f'<span style="min-width:7em">{label}</span>'
                    f'<input type="range" data-control="{i}" min="0" max="{len(c.values) - 1}" step="1" '
                    f'value="{start[i]}" aria-label="{label}" '
                    f'aria-valuetext="{html.escape(c.labels()[start[i]])}" '
                    f'data-labels=\'{html.escape(texts)}\' '
                    f'style="flex:1;max-width:22em">'
                    f'<output style="min-width:4em;font-family:monospace">{html.escape(c.labels()[start[i]])}'
                    f'</output></label>')
            else:
                opts = "".join(f'<option value="{j}"{" selected" if j == start[i] else ""}>'
                               f'{html.escape(name)}</option>' for j, name in enumerate(c.labels()))
                rows.append(
                    f'<label style="display:flex;gap:.6em;align-items:center;margin:.15em 0">'
                    f'<span style="min-width:7em">{label}</span>'
                    f'<select data-control="{i}" aria-label="{label}">{opts}</select></label>')
        index = int(np.ravel_multi_index(start, sizes))
        caption = (f'<figcaption style="font-size:.9em">{html.escape(self.caption)}</figcaption>'
                   if self.caption else "")
        alts = self.frame_alts()
        # Plain JS, no libraries: the frame index is the controls' indices in mixed radix. Screen
        # readers hear the value shown (aria-valuetext) and, where it changes, the frame's alt
        # text. Arrow keys on a control stay with it (a slideshow would take them for its own).
        script = (
            "(function(){var root=document.getElementById('%s');"
            "var frames=JSON.parse(root.querySelector('script[type=\"application/json\"]').textContent);"
            "var alts=%s;var sizes=%s;var img=root.querySelector('img');"
            "var inputs=root.querySelectorAll('[data-control]');"
            "function update(){var idx=0;inputs.forEach(function(el,i){"
            "var v=parseInt(el.value,10);idx=idx*sizes[i]+v;"
            "if(el.type==='range'){var t=JSON.parse(el.dataset.labels)[v];"
            "el.nextElementSibling.textContent=t;el.setAttribute('aria-valuetext',t);}});"
            "img.src=frames[idx];if(alts){img.alt=alts[idx];}root.dataset.frame=idx;}"
            "inputs.forEach(function(el){el.addEventListener('input',update);"
            "el.addEventListener('change',update);"
            "el.addEventListener('keydown',function(e){e.stopPropagation();});});})();"
            % (uid, json.dumps(alts), json.dumps(sizes)))
        # No padding: the theme pads <figure> by 8 px a side, which would shrink a frame as wide
        # as the column (688 px) below the width its text was sized for (dlbook.style.COLUMN_PX).
        return (
            f'<figure class="dlbook-interactive" id="{uid}" data-frame="{index}" '
            f'style="margin:.5em 0;padding:0;max-width:100%">'
            f'<div class="dlbook-controls" style="font-size:.9em">{"".join(rows)}</div>'
            f'<img class="{"dlbook-figure dlbook-colour" if self.keeps_colours else "dlbook-figure"}" '
            f'src="{frames[index]}" alt="{html.escape(self.alt)}" '
            f'{min_text_attribute(self.min_text_px)} '
            f'style="max-width:100%;height:auto;background:white">{caption}'
            f'<script type="application/json">{json.dumps(frames)}</script>'
            f'<script>{script}</script></figure>')

    # --- live view -------------------------------------------------------------------------------
    def widget(self):
        """The ipywidgets view: controls that redraw the plot with any value in their range."""
        if self._widget is not None:
            return self._widget
        import ipywidgets as widgets

        def control(c: Control):
            desc = c.label or c.name
            style = {"description_width": "initial"}
            layout = widgets.Layout(width="28em")
            cu = self.continuous_update
            start = c.values[self.initial_index[c.name]]
            if isinstance(c, Dropdown):
                return widgets.Dropdown(options=list(c._pairs), value=start, description=desc, style=style)
            lo, hi = c.values[0], c.values[-1]
            if c.snap:
                return widgets.SelectionSlider(options=list(zip(c.labels(), c.values)), value=start,
                                               description=desc, continuous_update=cu,
                                               style=style, layout=layout)
            if c.is_int:
                step = int(c.live_step or 1)
                return widgets.IntSlider(min=lo, max=hi, step=step, value=start, description=desc,
                                         continuous_update=cu, style=style, layout=layout)
            step = c.live_step or min(np.diff(c.values)) / 4
            return widgets.FloatSlider(min=lo, max=hi, step=step, value=start, description=desc,
                                       continuous_update=cu, style=style, layout=layout,
                                       readout_format=".3g")

        ctrls = {c.name: control(c) for c in self.controls}
        image = widgets.Image(value=self.initial_frame(), format="png",
                              layout=widgets.Layout(max_width="100%"))
        image.add_class("dlbook-live-image")

        def redraw(_change=None):
            image.value = self.frame(**{name: w.value for name, w in ctrls.items()})

        for w in ctrls.values():
            w.observe(redraw, names="value")
        self._widget = widgets.VBox([*ctrls.values(), image])
        return self._widget

    def check_live(self, fractions=(0.13, 0.61, 0.97)) -> int:
        """Move every live control to values *between* the static grid points (where the live
        slider can go and the static frames never do), checking that each move redraws the plot:
        a drawing function that only works on its grid fails here. Restores the initial values and
        returns the number of moves. ``make nbtest`` sets ``DLBOOK_CHECK_LIVE=1``, so every
        interactive plot of every chapter gets this check while nbval runs the chapter."""
        *inputs, image = self.widget().children
        moves = 0
        for control, widget in zip(self.controls, inputs):
            if isinstance(control, Slider) and control.snap:
                targets = list(control.values)
            elif isinstance(control, Slider):
                span, step = widget.max - widget.min, widget.step
                targets = [type(widget.value)(min(widget.max, widget.min + round(f * span / step) * step))
                           for f in fractions]
            else:
                targets = list(control.values)
            start = widget.value
            # Each move must change the value (setting a widget to its own value draws nothing):
            # a narrow integer slider maps several fractions to one value.
            moved = list(dict.fromkeys(v for v in targets if v != start))
            for value in (moved + [start] if moved else []):
                image.value = b""
                widget.value = value
                if not bytes(image.value).startswith(b"\x89PNG"):
                    raise RuntimeError(f"moving live control {control.name!r} to {value!r} drew no plot")
                moves += 1
        return moves

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": f"<interactive plot: {self.alt}>",
                  "text/html": self.to_html()}
        if os.environ.get("DLBOOK_CHECK_LIVE") == "1":
            self.check_live()
        if os.environ.get("DLBOOK_STATIC_ONLY") != "1":
            try:
                widget = self.widget()
            except ImportError:  # no ipywidgets: the static view is all there is
                widget = None
            if widget is not None:
                # The same reference ipywidgets 7 and 8 display (Colab may still ship 7).
                bundle[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
        return bundle


def interactive_plot(draw: Callable, controls: Sequence[Control], *, alt: str | Callable[..., str], figsize=(6.4, 3.6),
                     dpi: int = 80, initial: Mapping[str, Any] | None = None,
                     continuous_update: bool = True, caption: str | None = None) -> InteractivePlot:
    """A plot with sliders and dropdowns that works live (ipywidgets) and on the static site.

    ``draw(fig, **values)`` draws on a fresh :class:`matplotlib.figure.Figure` (call
    ``fig.subplots()``); it is called once per frame, so keep it cheap and free of training.
    Precompute the expensive part (e.g. training curves for every setting) and let ``draw`` pick.
    ``alt`` describes the figure for screen readers: a string, or a function ``alt(**values)``
    where the figure's meaning changes from frame to frame. Static frames: one per combination of
    grid values.
    """
    return InteractivePlot(draw, controls, alt=alt, figsize=figsize, dpi=dpi, initial=initial,
                           continuous_update=continuous_update, caption=caption)
