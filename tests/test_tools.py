"""The notebook formatter (make format) and the bench's headline reader."""
from __future__ import annotations

import sys
from pathlib import Path

import json
import re

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402
import nbformat_chapters as fmt  # noqa: E402


def test_formatter_sets_slides_strips_outputs_and_writes_the_setup_cell():
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(1)")
    code.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    code.execution_count = 3
    solution = nbformat.v4.new_code_cell("assert 1 + 1 == 2", metadata={"tags": ["hide-input", "solution"]})
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\nopening"),
        nbformat.v4.new_code_cell("# placeholder"),
        nbformat.v4.new_markdown_cell("## A section"),
        nbformat.v4.new_markdown_cell("### A sub-section"),
        nbformat.v4.new_markdown_cell("word " * 200),
        code,
        nbformat.v4.new_code_cell("show(fig, alt='x')"),
        nbformat.v4.new_code_cell("assert True", metadata={"tags": ["remove-cell"]}),
        solution,
        nbformat.v4.new_code_cell('say(f"accuracy {acc:.3f}")'),
        nbformat.v4.new_code_cell("# draws the curves\nplot(x)", metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_markdown_cell("word " * 200 + "\n$$ a = b $$"),  # long, but maths: a slide
    ]
    nb.metadata["widgets"] = {"state": {}}
    out = fmt.normalise(nbformat.from_dict(nb), "https://github.com/o/r")
    slides = [c.metadata["slideshow"]["slide_type"] for c in out.cells]
    # The deck's arc (build_slides.slide_arc), flat: headings start slides; long prose is notes;
    # short code joins its slide, a figure after it starts the next; a drawing cell with no
    # figure call is for the speaker; maths after a figure starts a slide.
    assert slides == ["slide", "skip", "slide", "slide", "notes", "-", "slide", "skip", "skip",
                      "-", "notes", "slide"]
    assert out.cells[1].source == fmt.setup_cell_source("https://github.com/o/r")
    assert out.cells[5].outputs == [] and out.cells[5].execution_count is None
    # A solution: code and answer behind one toggle on the site, both collapsed in Jupyter.
    assert out.cells[8].metadata["tags"] == ["hide-cell", "solution"]
    assert out.cells[8].metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    # A sentence with computed numbers: its code removed on the site, collapsed in Jupyter.
    assert out.cells[9].metadata["tags"] == ["prose", "remove-input"]
    assert out.cells[9].metadata["jupyter"] == {"source_hidden": True}
    assert out.cells[10].metadata["jupyter"] == {"source_hidden": True}
    assert "jupyter" not in out.cells[5].metadata
    assert "widgets" not in out.metadata


def test_formatter_gives_a_copied_cell_id_an_id_of_its_own():
    nb = nbformat.v4.new_notebook()
    first, second, third = (nbformat.v4.new_markdown_cell(t) for t in ("# T\na", "b", "c"))
    second["id"] = first["id"]  # a cell split in two by hand keeps its id twice
    nb.cells = [first, nbformat.v4.new_code_cell("# placeholder"), second, third]
    out = fmt.normalise(json.loads(json.dumps(nb)), "https://github.com/o/r")
    ids = [c["id"] for c in out["cells"]]
    assert len(set(ids)) == 4 and ids[0] == first["id"] and ids[3] == third["id"], ids
    nbformat.validate(nbformat.from_dict(out))  # ids unique and well formed


def test_prose_cells_are_only_say_calls():
    assert fmt.is_prose_cell('say(f"a {x}")\nsay("b", acc=1)')
    assert not fmt.is_prose_cell('acc = 1\nsay(f"a {acc}")')
    assert not fmt.is_prose_cell("print(1)") and not fmt.is_prose_cell("say(")


def test_bench_reads_the_recorded_headline(monkeypatch):
    from dlbook.notebook import say

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, **kw: shown.append((data, kw)))
    say("accuracy 0.930", acc=0.93)
    (markdown, kw), = shown
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('say("accuracy 0.930", acc=0.93)')
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": markdown.data},
                                           metadata=kw["metadata"])]
    nb.cells = [cell]
    assert bench.recorded(nb, "acc") == 0.93
    assert bench.recorded(nb, "missing") is None


def test_readme_sections_are_replaced_between_their_markers(tmp_path):
    import pytest
    from readme_section import replace_section

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- t:start -->\nold\n<!-- t:end -->\nrest\n")
    replace_section("t", "| a |\n| 1 |", readme)
    assert readme.read_text() == "intro\n<!-- t:start -->\n| a |\n| 1 |\n<!-- t:end -->\nrest\n"
    with pytest.raises(SystemExit, match="no <!-- other:start -->"):
        replace_section("other", "x", readme)


def test_a_deck_has_a_title_slide_one_idea_a_slide_and_notes():
    """tools/build_slides.py on a small executed chapter: the title slide names book, chapter and
    objectives; imports, drawing code and checks stay off; code over 15 lines never shows; long
    prose goes to the notes; a figure gets a slide of its own, in one flat sequence."""
    import build_slides

    png = {"text/html": '<img class="dlbook-figure" src="data:image/png;base64,AAAA" alt="a curve">'}
    long_code = "\n".join(f"x{i} = {i}" for i in range(20))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 07 Modern networks\n\nAn opening paragraph."),
        nbformat.v4.new_markdown_cell("## Learning objectives\n\n- build a thing;\n- test it."),
        nbformat.v4.new_code_cell("# Colab setup", metadata={"tags": ["colab-setup"]}),
        nbformat.v4.new_code_cell("import torch\ndevice = setup_chapter(seed=0)"),
        nbformat.v4.new_markdown_cell("## The idea\n\n" + "Long prose goes on. " * 30
                                      + "\n\n$$ y = w x + b $$"),
        nbformat.v4.new_code_cell("w = 2\nprint(w)", outputs=[nbformat.v4.new_output(
            "stream", text="2\n")]),
        nbformat.v4.new_code_cell(long_code),
        nbformat.v4.new_code_cell("# draw\nshow(fig, alt='a curve')", metadata={"tags": ["hide-input"]},
                                  outputs=[nbformat.v4.new_output("display_data", data=png)]),
        nbformat.v4.new_code_cell("assert True", metadata={"tags": ["remove-cell"]}),
    ]
    slides = build_slides.build_deck(json.loads(nbformat.writes(nb)), "The Book")
    title = "".join(slides[0].body)
    assert "The Book" in title and "Chapter 07" in title and "build a thing" in title
    assert slides[0].heading == "Modern networks"
    shown = re.sub(r"<[^>]+>", "", " ".join(s.code + "".join(s.body) for s in slides))
    assert "w = 2" in shown and "import torch" not in shown and "x19" not in shown
    assert "# draw" not in shown and "assert True" not in shown and "Colab" not in shown
    notes = " ".join("".join(s.notes + s.code_notes) for s in slides)
    assert "x19 = 19" in notes, "code too long for a slide is in the speaker's notes"
    assert "# draw" not in notes and "import torch" not in notes
    idea = [s for s in slides if s.heading == "The idea"]
    assert any("Long prose goes on." * 1 in "".join(s.notes) for s in idea)
    assert any("y = w x + b" in "".join(s.body) for s in idea), "the key equation stays"
    figures = [s for s in slides if s.visual]
    assert len(figures) == 1 and not figures[0].code and "a curve" in "".join(figures[0].notes)
    html_deck = build_slides.deck_html("07", "Modern networks", slides, "../_static", "x.html")
    sections = re.findall(r"</?section", html_deck)
    assert sections == ["<section", "</section"] * len(slides), "one flat sequence, no stacks"


def test_slides_cut_no_sentence_and_leave_no_orphans():
    """The deck's text rules: a sentence ends at . ! or ?, not after "et al.", an initial, a
    number or inside maths or bold; a long bullet shows its first sentence or clause, never a
    word cut; set-up code that shows and defines nothing is for the speaker; a reading list is
    one slide; listings lose their docstrings; a section's lone last point does not sit alone."""
    import build_slides as bs

    assert bs.sentences("Bengio et al. (2003) did it. W. Pitts too. **1. A task.** Do it.") == [
        "Bengio et al. (2003) did it.", "W. Pitts too.", "**1. A task.** Do it."]
    assert bs.first_sentence("A rule: $$ y = x. $$ Then more.") == "A rule:"
    assert bs.first_sentence("Why this helps: the score moves. More.") == \
        "Why this helps: the score moves."
    point = "**A** swaps " + "word " * 30 + "for **B** ones; " + "and more " * 20
    shown = bs.short_point(point)
    assert shown.endswith("\u2026") and shown.count("**") % 2 == 0 and "for **B** ones" in shown
    assert bs.is_quiet_code("x = f(1)\ny = x + 1")
    assert not bs.is_quiet_code("x = f(1)\nprint(x)") and not bs.is_quiet_code("def f():\n    pass")
    assert not bs.is_quiet_code("x = 1\nx")
    listing = 'def f(x):\n    """Doc.\n\n    More doc."""\n    return x\n'
    assert bs.listing_chunks(listing) == ["def f(x):\n    return x"]

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 03 Things\n\nOpening."),
        nbformat.v4.new_code_cell("import torch"),
        nbformat.v4.new_markdown_cell("## Summary\n\n" + "".join(
            f"- Point {k} says " + "much " * 25 + "here.\n" for k in range(4))),
        nbformat.v4.new_code_cell("table = build(1)\nrows = table.rows"),
        nbformat.v4.new_markdown_cell("## Further reading\n\n" + "".join(
            f"- A. Author{k} (2020). A title of some length here. *Venue* {k}.\n"
            for k in range(30))),
    ]
    slides = bs.build_deck(json.loads(nbformat.writes(nb)), "The Book")
    shown = " ".join(s.code + "".join(s.body) for s in slides)
    assert "table = build" not in shown
    assert "table = build" in " ".join("".join(s.code_notes) for s in slides)
    reading = [s for s in slides if s.heading == "Further reading"]
    assert len(reading) == 1 and "Author29" in "".join(reading[0].notes)
    summary = [s for s in slides if s.heading == "Summary"]
    assert all(len(s.body) >= 2 for s in summary), "no slide holds one lone point"


def test_a_displayed_table_reaches_the_slide_or_the_notes():
    """A DataFrame that a hidden cell tagged for a slide displays (text/html with a table) goes
    on the slide in a font that fits, without pandas' scoped style; a table too long for any
    slide, an untagged hidden cell's table (the arc's notes) and one the author sent to the
    notes go to the notes: none is lost."""
    import build_slides as bs

    def frame(rows: int, label: str) -> dict:
        body = "".join(f"<tr><th>{label}{k}</th><td>{k / 3:.2f}</td></tr>" for k in range(rows))
        page = ("<div><style scoped>.dataframe th {}</style><table border=\"1\" class=\"dataframe\">"
                f"<thead><tr><th></th><th>score</th></tr></thead><tbody>{body}</tbody></table></div>")
        return nbformat.v4.new_output("display_data", data={"text/html": page,
                                                            "text/plain": "a frame"})

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 05 Tables\n\nOpening."),
        nbformat.v4.new_code_cell("import pandas as pd"),
        nbformat.v4.new_markdown_cell("## Results\n\nThe scores:"),
        nbformat.v4.new_code_cell("# the table\npd.DataFrame(x)", outputs=[frame(6, "short")],
                                  metadata={"tags": ["hide-input", "slide-manual"],
                                            "slideshow": {"slide_type": "-"}}),
        nbformat.v4.new_code_cell("# the seeds\npd.DataFrame(w)", outputs=[frame(4, "seed")],
                                  metadata={"tags": ["hide-input"]}),
        nbformat.v4.new_markdown_cell("## Every run"),
        nbformat.v4.new_code_cell("# every run\npd.DataFrame(y)", outputs=[frame(60, "long")],
                                  metadata={"tags": ["hide-input", "slide-manual"],
                                            "slideshow": {"slide_type": "slide"}}),
        nbformat.v4.new_code_cell("# for the speaker\npd.DataFrame(z)", outputs=[frame(3, "aside")],
                                  metadata={"tags": ["hide-input", "slide-manual"],
                                            "slideshow": {"slide_type": "notes"}}),
    ]
    slides = bs.build_deck(json.loads(nbformat.writes(nb)), "The Book")
    results = next(s for s in slides if s.heading == "Results")
    table = "".join(results.body)
    assert "short5" in table and "<style" not in table and "dl-frame" in table
    size = int(re.search(r"font-size:(\d+)px", table).group(1))
    assert bs.MIN_OUTPUT_PX <= size <= 22 and results.height <= bs.BODY_HEIGHT
    shown = " ".join("".join(s.body) for s in slides)
    notes = " ".join("".join(s.notes) for s in slides)
    assert "long59" not in shown and "long59" in notes, "60 rows fit no slide: the notes"
    assert "aside2" not in shown and "aside2" in notes, "the author sent it to the notes"
    assert "seed3" not in shown and "seed3" in notes, "hidden code's output is the speaker's"
    assert bs.table_size(bs.output_table(frame(6, "short"))) == (7, len("short0") + 2 + 4 + 2)


def test_sft_batch_listing_shows_the_mask_on_one_slide():
    # Chapter 18's masking slide shows finetune.sft_batch: the listing must hold the line that
    # masks the prompt within one slide's code lines, or the deck cuts the point of the slide.
    import inspect
    import textwrap

    import build_slides

    from dlbook import finetune as ft

    listing = build_slides.without_docstrings(textwrap.dedent(inspect.getsource(ft.sft_batch)))
    lines = build_slides.code_lines(listing)
    assert len(lines) <= build_slides.CODE_LINES, len(lines)
    assert any("y[i, :len(p) - 1] = IGNORE" in line for line in lines)
