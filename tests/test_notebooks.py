"""Notebook hygiene: what every chapter must be before it lands (fast, static checks; no execution).

nbval re-executes the chapters (make nbtest); this file checks their shape: listed in the table of
contents, committed without outputs, opening with the Colab setup cell that names the repository
of _config.yml, slide metadata for RISE, alt text, hidden tested solutions, hidden asserts.
"""
from __future__ import annotations

import json
import re
import sys
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
        assert source(first_code) == nbformat_chapters.setup_cell_source(url), (
            "the first code cell must be the Colab setup cell for " + url + ": run `make format`")
        assert 'if "google.colab" in sys.modules' in source(first_code)

    def test_formatted(self, path):
        nb = load(path)
        again = nbformat_chapters.normalise(json.loads(json.dumps(nb)),
                                            nbformat_chapters.repository_url())
        assert again == nb, "notebook is not normalised: run `make format`"

    def test_every_cell_has_slide_metadata_and_headings_start_slides(self, path):
        for i, cell in enumerate(load(path)["cells"]):
            slide = cell["metadata"].get("slideshow", {}).get("slide_type")
            assert slide in {"slide", "subslide", "fragment", "-", "skip", "notes"}, f"cell {i}"
            if cell["cell_type"] == "markdown" and source(cell).lstrip().startswith("## "):
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
            assert "hide-input" in tags(cell), "a solution is hidden on the site behind a toggle"
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

    def test_glued_numbers_exist(self, path):
        nb = load(path)
        md = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        code = "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "code")
        used = set(re.findall(r"\{glue:\w+\}`([\w-]+)", md))
        for name in used:
            assert re.search(rf"glue\(\s*[\"']{name}[\"']", code), f"glue name {name!r} is never glued"
        headline = nb["metadata"].get("dlbook", {}).get("headline", {})
        assert headline.get("glue") and headline.get("label"), (
            "notebook metadata dlbook.headline {glue, label} names the chapter's headline number")
        assert re.search(rf"glue\(\s*[\"']{headline['glue']}[\"']", code)


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
