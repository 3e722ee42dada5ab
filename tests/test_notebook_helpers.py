"""dlbook.notebook: chapter set-up, figures with alt text, glue records, shown source."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook.notebook import GLUE_PREFIX, FigureWithAlt, glue, setup_chapter, show_source  # noqa: E402


def test_figure_with_alt_text():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    bundle = FigureWithAlt(fig, alt='a falling "line"')._repr_mimebundle_()
    assert 'alt="a falling &quot;line&quot;"' in bundle["text/html"]
    assert bundle["text/html"].startswith('<img src="data:image/png;base64,')
    with pytest.raises(ValueError, match="alt text"):
        FigureWithAlt(fig, alt=" ")
    plt.close(fig)


def test_glue_records_what_myst_nb_reads(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, **kw: shown.append((data, kw)))
    assert glue("acc", 0.93) == 0.93
    (data, kw), = shown
    assert data == {GLUE_PREFIX + "text/plain": "0.93"}
    assert kw["raw"] is True and kw["metadata"]["scrapbook"] == {"name": "acc", "mime_prefix": GLUE_PREFIX}


def test_setup_chapter_and_show_source():
    threads = torch.get_num_threads()
    try:
        device = setup_chapter(seed=3)
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
    md = show_source(setup_chapter, glue).data
    assert md.startswith("```python\ndef setup_chapter(") and "def glue(" in md and md.endswith("```")
