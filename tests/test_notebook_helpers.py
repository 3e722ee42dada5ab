"""dlbook.notebook: chapter set-up, figures with alt text, said sentences, shown source."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook.notebook import FigureWithAlt, say, setup_chapter, show_source  # noqa: E402


def test_figure_with_alt_text():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    bundle = FigureWithAlt(fig, alt='a falling "line"')._repr_mimebundle_()
    assert 'alt="a falling &quot;line&quot;"' in bundle["text/html"]
    assert bundle["text/html"].startswith('<img class="dlbook-figure" src="data:image/png;base64,')
    photo = FigureWithAlt(fig, alt="a photo", photo=True)._repr_mimebundle_()["text/html"]
    assert photo.startswith('<img class="dlbook-figure dlbook-colour"')
    with pytest.raises(ValueError, match="alt text"):
        FigureWithAlt(fig, alt=" ")
    plt.close(fig)


@pytest.mark.parametrize("draw, colour", [
    (lambda ax: ax.plot([0, 1], [1, 0]), False),
    (lambda ax: ax.fill_between([0, 1], [0, 0], [1, 2], alpha=0.3), False),
    (lambda ax: ax.errorbar([0, 1], [1, 2], yerr=[0.1, 0.2]), False),
    (lambda ax: ax.scatter([0, 1], [1, 0], color="C0"), False),
    (lambda ax: ax.imshow([[0, 1], [1, 0]]), True),
    (lambda ax: ax.contourf([[0, 1], [1, 0]]), True),
    (lambda ax: ax.scatter([0, 1], [1, 0], c=[0.2, 0.9]), True),
    (lambda ax: ax.pcolormesh([[0, 1], [1, 0]]), True),
])
def test_dark_mode_keeps_the_colours_of_colour_coded_figures(draw, colour):
    from dlbook.notebook import figure_classes, keeps_colours

    fig, ax = plt.subplots()
    draw(ax)
    assert keeps_colours(fig) is colour
    assert ("dlbook-colour" in figure_classes(fig)) is colour
    plt.close(fig)


def test_say_displays_markdown_and_records_numbers(monkeypatch):
    import numpy as np

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, **kw: shown.append((data, kw)))
    acc = np.float64(0.9312)
    say(f"test accuracy {acc:.3f}", acc=acc)
    (markdown, kw), = shown
    assert markdown.data == "test accuracy 0.931"
    assert kw["metadata"] == {"dlbook": {"record": {"acc": 0.9312}}}
    assert type(kw["metadata"]["dlbook"]["record"]["acc"]) is float  # JSON-safe, not numpy
    with pytest.raises(ValueError, match="non-empty"):
        say("  ")
    with pytest.raises(TypeError, match="must be a number"):
        say("x", acc=[1, 2])


def test_setup_chapter_and_show_source():
    threads = torch.get_num_threads()
    try:
        device = setup_chapter(seed=3, cpu_threads=1)
        assert device.type in {"cpu", "cuda"}
        if device.type == "cpu":
            assert torch.get_num_threads() == 1
        a = torch.rand(3)
        setup_chapter(seed=3)
        assert torch.equal(a, torch.rand(3)), "the chapter seed makes random draws repeatable"
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == "#0072B2"
    finally:
        torch.set_num_threads(threads)
        matplotlib.rcdefaults()
    md = show_source(setup_chapter, say).data
    assert md.startswith("```python\ndef setup_chapter(") and "def say(" in md and md.endswith("```")


def test_threads_come_from_the_environment_and_default_to_all_cores(monkeypatch):
    threads = torch.get_num_threads()
    try:
        monkeypatch.setenv("DLBOOK_CPU_THREADS", "1")
        if setup_chapter().type == "cpu":
            assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.delenv("DLBOOK_CPU_THREADS")
        setup_chapter()
        assert torch.get_num_threads() == 2, "a reader's run keeps its cores"
        monkeypatch.setenv("DLBOOK_CPU_THREADS", "two")
        with pytest.raises(ValueError, match="DLBOOK_CPU_THREADS must be a whole number"):
            setup_chapter()
    finally:
        torch.set_num_threads(threads)
        matplotlib.rcdefaults()


@pytest.mark.parametrize("x, digits, text", [
    (0.016, 2, "0.016"), (0.0163, 2, "0.016"), (2.5, 2, "2.5"), (13308.4, 2, "13,308"),
    (6e-8, 1, "6 × 10⁻⁸"), (2.37e-16, 2, "2.4 × 10⁻¹⁶"), (1e9, 1, "10⁹"), (1.02e9, 2, "10⁹"),
    (423.7, 2, "424"), (99.97, 2, "100"), (42.37, 1, "42"), (0, 2, "0"), (-3.2e-5, 2, "-3.2 × 10⁻⁵"), (-1e-7, 1, "-10⁻⁷"), (1.5e-7, 2, "1.5 × 10⁻⁷"),
])
def test_numbers_read_as_a_person_writes_them(x, digits, text):
    from dlbook.notebook import readable

    assert readable(x, digits) == text
    assert "e-" not in readable(x, digits) and "e+" not in readable(x, digits)


def test_readable_numbers_in_latex():
    from dlbook.notebook import readable

    assert readable(6e-8, 1, latex=True) == r"$6 \times 10^{-8}$"
    assert readable(1e9, 1, latex=True) == r"$10^{9}$"
