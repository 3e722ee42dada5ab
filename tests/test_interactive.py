"""The interactive-plot helper: one output with a live widget view and a static HTML scrubber."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from dlbook.interactive import WIDGET_MIME, Dropdown, Slider, interactive_plot

X = np.linspace(-3, 3, 100)


def draw(fig, w, fn):
    ax = fig.subplots()
    ax.plot(X, {"tanh": np.tanh, "sin": np.sin}[fn](w * X))
    ax.set_ylim(-1.1, 1.1)


def make(**kw):
    return interactive_plot(draw, [Slider("w", np.linspace(0.5, 3.0, 6)), Dropdown("fn", ["tanh", "sin"])],
                            alt="tanh or sine of w times x", **kw)


def frames_of(html: str) -> list[str]:
    return json.loads(re.search(r'<script type="application/json">(.*?)</script>', html, re.S).group(1))


def pixels(data_uri: str) -> np.ndarray:
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), dtype=np.int16)


def test_bundle_has_widget_view_and_static_html():
    plot = make()
    bundle = plot._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    assert bundle[WIDGET_MIME]["model_id"] == plot.widget().model_id
    assert bundle[WIDGET_MIME]["version_major"] == 2
    html = bundle["text/html"]
    # self-contained: no external scripts, no require.js, no CDN
    assert "require" not in html and "src=\"http" not in html and "<script src" not in html
    assert 'alt="tanh or sine of w times x"' in html
    assert html.count('type="range"') == 1 and html.count("<select") == 1


def test_static_frames_cover_the_grid_and_differ():
    plot = make()
    frames = frames_of(plot.to_html())
    assert len(frames) == 6 * 2 == plot.n_frames
    # last control varies fastest: frame 0 = (w=0.5, tanh), frame 1 = (0.5, sin), frame 2 = (1.0, tanh)
    a, b, c = (pixels(f) for f in frames[:3])
    assert a.shape == b.shape == c.shape
    assert np.abs(a - b).sum() > 0 and np.abs(a - c).sum() > 0
    # the same values give the same frame (deterministic rendering)
    assert plot.frame(w=0.5, fn="tanh") == plot.frames()[0]


def test_initial_frame_matches_initial_values():
    plot = make(initial={"w": 2.0, "fn": "sin"})
    html = plot.to_html()
    index = int(re.search(r'data-frame="(\d+)"', html).group(1))
    assert plot.initial_values() == {"w": 2.0, "fn": "sin"}
    assert index == 3 * 2 + 1
    assert frames_of(html)[index] in html.split("<script")[0]  # the visible <img> shows that frame
    # the live widget starts on the same frame, reused from the static view, not drawn again
    assert plot.initial_frame() == plot.frame(w=2.0, fn="sin") == plot.frames()[index]
    assert plot.widget().children[-1].value == plot.frames()[index]
    assert make(initial={"w": 2.0, "fn": "sin"}).initial_frame() == plot.frames()[index]


def test_live_widget_redraws_on_slider_move():
    plot = make()
    box = plot.widget()
    slider, dropdown, image = box.children
    before = image.value
    slider.value = 2.7  # any value in range, not only grid points
    assert image.value != before
    after_slider = image.value
    dropdown.value = "sin"
    assert image.value != after_slider
    assert slider.min == 0.5 and slider.max == 3.0


def test_static_only_mode_drops_the_widget(monkeypatch):
    monkeypatch.setenv("DLBOOK_STATIC_ONLY", "1")
    bundle = make()._repr_mimebundle_()
    assert WIDGET_MIME not in bundle and "text/html" in bundle


def test_page_weight_is_modest():
    html = make().to_html()
    assert len(html) < 12 * 40_000, f"{len(html)} bytes for 12 frames"


@pytest.mark.parametrize("kwargs, message", [
    (dict(controls=[Slider("w", [1.0, 2.0])], alt=""), "alt text"),
    (dict(controls=[Slider("w", [1.0, 2.0]), Slider("w", [1.0, 3.0])], alt="x"), "distinct names"),
    (dict(controls=[Slider("w", np.arange(20)), Slider("v", np.arange(20))], alt="x"), "coarser grids"),
])
def test_bad_arguments_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        interactive_plot(draw, **kwargs)


def test_slider_grid_must_increase():
    with pytest.raises(ValueError, match="increase"):
        Slider("w", [2.0, 1.0])


def test_check_live_moves_every_control_off_grid_and_restores_it():
    plot = make()
    slider, dropdown, _ = plot.widget().children
    seen = []
    slider.observe(lambda change: seen.append(change["new"]), names="value")
    moves = plot.check_live()
    off_grid = [v for v in seen if min(abs(v - g) for g in plot.controls[0].values) > 1e-9]
    assert off_grid, f"the slider never left the static grid: {seen}"
    assert moves == len(seen) + 2  # the dropdown: to "sin" and back
    assert (slider.value, dropdown.value) == (plot.initial_values()["w"], "tanh")

    def grid_only(fig, w, fn):  # a drawing function that breaks between grid points
        if round(w * 2) != w * 2:
            raise KeyError(w)
        draw(fig, w, fn)

    broken = interactive_plot(grid_only, [Slider("w", np.linspace(0.5, 3.0, 6)), Dropdown("fn", ["tanh"])],
                              alt="x")
    with pytest.raises(Exception):
        broken.check_live()


def test_a_failing_draw_names_the_control_values():
    def draw(fig, w, kind):
        if w > 1:
            raise ZeroDivisionError("boom")
        fig.subplots().plot([0, w])

    plot = interactive_plot(draw, [Slider("w", [0, 1, 2]), Dropdown("kind", ["a", "b"])],
                            alt="a line")
    with pytest.raises(RuntimeError, match=r"failed at w=2, kind='a': ZeroDivisionError: boom"):
        plot.frames()


def test_dropdown_initial_must_be_an_option():
    with pytest.raises(ValueError, match=r"initial value 'c' for Dropdown 'kind' is not one of"):
        interactive_plot(lambda fig, kind: None, [Dropdown("kind", ["a", "b"])], alt="x",
                         initial={"kind": "c"})


def test_static_view_speaks_the_value_shown_and_keeps_its_keys():
    plot = interactive_plot(lambda fig, g: fig.subplots().plot([0, g]),
                            [Slider("g", [0.1, 0.2, 0.3], fmt="γ = {:.2f}")],
                            alt=lambda g: f"a line rising to {g:.1f}")
    page = plot.to_html()
    assert 'aria-valuetext="γ = 0.20"' in page
    assert "setAttribute('aria-valuetext'" in page and "stopPropagation" in page
    assert plot.alt == "a line rising to 0.2" and 'alt="a line rising to 0.2"' in page
    assert plot.frame_alts() == ["a line rising to 0.1", "a line rising to 0.2",
                                 "a line rising to 0.3"]
    with pytest.raises(ValueError, match="alt function"):
        interactive_plot(lambda fig, g: None, [Slider("g", [0, 1])], alt=lambda g: "")


def test_a_snapped_slider_offers_only_the_grid_live():
    drawn = []

    def draw(fig, gap):
        drawn.append(gap)
        fig.subplots().plot([0, gap])

    plot = interactive_plot(draw, [Slider("gap", [0.1, 0.2, 0.4], snap=True)], alt="a line")
    slider = plot.widget().children[0]
    assert list(slider.options) == [("0.1", 0.1), ("0.2", 0.2), ("0.4", 0.4)]
    assert plot.check_live() == 3
    assert set(drawn) <= {0.1, 0.2, 0.4}


def test_check_live_on_a_two_value_integer_slider_moves_once_and_back():
    # Fractions of a one-step range round to the same integer: each move must change the value.
    plot = interactive_plot(lambda fig, k: fig.subplots().plot([0, k]), [Slider("k", [1, 2])],
                            alt="a line", initial={"k": 1})
    assert plot.check_live() == 2
    assert plot.widget().children[0].value == 1


def test_a_colour_coded_plot_keeps_its_colours_in_dark_mode():
    assert '<img class="dlbook-figure" ' in make().to_html()  # a line plot: inverted

    def heatmap(fig, w):
        fig.subplots().imshow(np.outer(X, X) * w, cmap="viridis")

    plot = interactive_plot(heatmap, [Slider("w", [1.0, 2.0])], alt="a heatmap")
    assert '<img class="dlbook-figure dlbook-colour" ' in plot.to_html()


def test_every_frame_reads_at_12_px_and_keeps_its_size():
    """Frames are drawn at 80 dpi (a 10-pt legend is 11 px there) and may be wider than the
    site's column: their text is enlarged, each frame keeps the plot's size, and the static
    view records the smallest text of any frame."""
    def legend_draw(fig, w, fn):
        draw(fig, w, fn)
        fig.axes[0].legend([fn], fontsize=8)
        fig.axes[0].set_title(f"w = {w}", fontsize=9)

    plot = interactive_plot(legend_draw, [Slider("w", [1.0, 2.0]), Dropdown("fn", ["tanh", "sin"])],
                            alt="tanh or sine", figsize=(11, 3), dpi=80)
    html = plot.to_html()
    px = float(re.search(r'data-min-text-px="([\d.]+)"', html).group(1))
    assert 12 <= px < 12.2
    assert {pixels(f).shape for f in frames_of(html)} == {(240, 880, 3)}
