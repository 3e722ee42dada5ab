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
    assert photo.startswith('<img class="dlbook-figure dlbook-photo"')
    with pytest.raises(ValueError, match="alt text"):
        FigureWithAlt(fig, alt=" ")
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


def test_times_ten_writes_powers_as_a_person_does():
    from dlbook.notebook import times_ten

    assert times_ten(2.3e-6) == "2 × 10⁻⁶"
    assert times_ten(4.56e-16, digits=2) == "4.6 × 10⁻¹⁶"
    assert times_ten(1e9) == "10⁹"
    assert times_ten(0.0) == "0"
