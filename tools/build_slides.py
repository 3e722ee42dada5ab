"""Build a static reveal.js slide deck of every chapter, into the built site (make book).

    python tools/build_slides.py      # after jupyter-book build

Each deck is made from the notebook the book build executed (`_build/executed/`), so its
numbers, figures and interactive plots are the page's own; the frame scrubbers work in the deck
as on the page. Nothing comes from a CDN: reveal.js (from the npm registry, installed once into
.venv/) and the site's own MathJax are served from `_build/html/_static/`. Drawing code, hidden
checks, the Colab cell and the exercise solutions stay off the slides; speaker notes open with
the `S` key. Decks land in `_build/html/slides/NN_topic.html`, linked from each chapter page.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
EXECUTED = ROOT / "_build" / "executed" / "chapters"
DECKS = SITE / "slides"
REVEAL_VERSION = "4.6.1"
NPM_PREFIX = ROOT / ".venv" / "npm-reveal"
TEMPLATES = Path(__file__).resolve().parent / "slides"

# Cells whose code (or the whole cell) a deck leaves out: an instructor shows ideas, not plumbing.
REMOVE_INPUT = {"hide-input", "remove-input", "hide-cell", "prose"}
REMOVE_CELL = {"remove-cell", "colab-setup", "solution", "remove-output"}


def chapters_in_toc() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    return [Path(m).name for m in re.findall(r"file:\s*(chapters/\S+)", toc)]


def reveal_dir() -> Path:
    """reveal.js from the npm registry, installed once into .venv/ (no CDN at reading time)."""
    package = NPM_PREFIX / "node_modules" / "reveal.js"
    if not (package / "dist" / "reveal.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is missing: install Node.js (Debian: apt-get install -y npm)")
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                        str(NPM_PREFIX), f"reveal.js@{REVEAL_VERSION}"], check=True)
    return package


def deck_slides(nb: dict) -> int:
    """How many slides (and sub-slides) the deck of an executed notebook has."""
    count = 0
    for cell in nb["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        kind = cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-")
        if kind in {"slide", "subslide"} and not tags & REMOVE_CELL:
            count += 1
    return count


def main() -> int:
    from nbconvert.exporters import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    import nbformat

    if not SITE.is_dir():
        print(f"{SITE} is missing: build the site first (make book)", file=sys.stderr)
        return 1
    reveal = reveal_dir()
    target = SITE / "_static" / "reveal.js"
    for part in ("dist", "plugin/notes"):
        shutil.copytree(reveal / part, target / part, dirs_exist_ok=True)
    shutil.copy2(TEMPLATES / "dlbook-slides.css", SITE / "_static" / "dlbook-slides.css")
    DECKS.mkdir(exist_ok=True)

    remove = TagRemovePreprocessor(remove_input_tags=REMOVE_INPUT, remove_cell_tags=REMOVE_CELL,
                                   remove_all_outputs_tags=set())
    exporter = SlidesExporter(template_name="dlbook_reveal", extra_template_basedirs=[str(TEMPLATES)],
                              reveal_url_prefix="../_static/reveal.js", reveal_theme="white",
                              reveal_scroll=True, exclude_input_prompt=True,
                              exclude_output_prompt=True)
    counts = {}
    for name in chapters_in_toc():
        source = EXECUTED / f"{name}.ipynb"
        if not source.exists():
            print(f"{source} is missing: the book build executes the chapters first", file=sys.stderr)
            return 1
        nb = nbformat.read(source, as_version=4)
        # Before the export: the exporter's own step that groups cells into slides must see
        # only the cells that stay, or a removed cell takes a slide's end with it.
        nb, _ = remove.preprocess(nb, {})
        resources = {"dlbook": {"static": "../_static", "page": f"../chapters/{name}.html"}}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        (DECKS / f"{name}.html").write_text(body, encoding="utf-8")
        counts[name] = deck_slides(json.loads(source.read_text()))
    (DECKS / "decks.json").write_text(json.dumps(counts, indent=1) + "\n")
    print(f"{len(counts)} slide decks in {DECKS}: "
          + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
