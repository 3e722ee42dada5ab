"""Make the student edition of each chapter (``make format``; published on the site and in the README).

    python tools/student_edition.py chapters/*.ipynb          # write student/NN_*.ipynb
    python tools/student_edition.py --check chapters/*.ipynb  # only report stale editions

A student edition is the chapter with each exercise's solution (a cell tagged ``solution``)
replaced by two cells:
- a stub: the names the solution defines and its checks use, set to ``...``, for the student to
  answer;
- a check: the solution's own checks (its statements from the first one that asserts), run inside
  ``dlbook.exercises.check``, which prints whether the answer passes and, if not, why.

So a check is the book's own assert, phrased as feedback, and the book's solution passes it (make
test runs the solutions; tests/test_student_edition.py runs both editions of a chapter).
"""
from __future__ import annotations

import ast
import copy
import json
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "student"
# how chapters name an exercise: "### Exercise 2: title", "2. **Title.**" or "**2. Title.**"
EXERCISE = re.compile(r"^(?:### Exercise (\d+): (.+)|(\d+)\. \*\*(.+?)\*\*|\*\*(\d+)\. (.+?)\*\*)",
                      re.M)


@dataclass
class Split:
    """A solution cut in two: what the student writes, and the checks that judge it."""

    answer: str
    check: str
    uses: list[str]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _defines(tree: ast.AST) -> set[str]:
    """The names an answer computes (what it imports is not the answer)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _asserts(node: ast.stmt) -> bool:
    """A statement that checks: it asserts, outside any function it defines."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def split_solution(src: str) -> Split:
    """Cut a solution at its first top-level assert (else its first statement that asserts)."""
    tree = ast.parse(src)
    first = next((s for s in tree.body if isinstance(s, ast.Assert)), None)
    first = first or next((s for s in tree.body if _asserts(s)), None)
    if first is None:
        raise ValueError("a solution must end in checks (assert statements), found none in:\n"
                         + textwrap.indent(src, "    "))
    lines = src.splitlines()
    start = first.lineno - 1
    # comments just above the first check belong to it
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    answer, check = "\n".join(lines[:start]).rstrip(), "\n".join(lines[start:])
    # what the check reads of the answer (a name the check assigns itself is its own)
    defined = _defines(ast.parse(answer)) - _defines(ast.parse(check))
    uses = []
    for node in ast.walk(ast.parse(check)):
        if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                and node.id in defined and node.id not in uses):
            uses.append(node.id)
    if not uses:
        raise ValueError("the checks of this solution use nothing its answer defines, so they "
                         "cannot judge a student's answer:\n" + textwrap.indent(src, "    "))
    return Split(answer, check, uses)


def stub_source(title: str, split: Split) -> str:
    names = ", ".join(f"`{name}`" for name in split.uses)
    lines = [f"# {title}: your answer. The check below uses {names}."]
    lines += [f"{name} = ..." for name in split.uses]
    return "\n".join(lines)


def check_source(title: str, split: Split) -> str:
    return (f"from dlbook.exercises import check\n\n"
            f"with check({title!r}, uses={split.uses!r}):\n"
            + textwrap.indent(split.check, "    ", lambda line: True))


def _cell(kind: str, text: str, tags: list[str], cell_id: str) -> dict:
    cell = {"cell_type": kind, "id": cell_id, "metadata": {"tags": tags}, "source": text}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def exercise_title(markdown: str) -> str | None:
    """'Exercise 2: title' from the last exercise a markdown cell names, else None."""
    found = list(EXERCISE.finditer(markdown))
    if not found:
        return None
    number, name = [g for g in found[-1].groups() if g is not None]
    return f"Exercise {number}: {name.strip().rstrip('.').replace('`', '')}"


def notice(chapter: str, repository: str) -> str:
    return (f"```{{note}}\n**Student edition.** Each exercise's solution is replaced by a cell for "
            f"your answer (its names set to `...`) and a check cell under it that tells you whether "
            f"your answer is right and, if not, why. The full chapter, solutions included, is "
            f"[chapters/{chapter}.ipynb]({repository}/blob/main/chapters/{chapter}.ipynb).\n```")


def student_edition(nb: dict, chapter: str, repository: str) -> dict:
    """The student edition of an executed-or-not, formatted chapter notebook."""
    nb = copy.deepcopy(nb)
    cells, title = [], None
    for index, cell in enumerate(nb["cells"]):
        text = source(cell)
        if cell["cell_type"] == "markdown":
            title = exercise_title(text) or title
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" not in tags:
            cells.append(cell)
            if index == 0:
                cells.append(_cell("markdown", notice(chapter, repository), ["student-notice"],
                                   "student-notice"))
            continue
        if title is None:
            raise ValueError(f"{chapter}: the solution in cell {index} follows no exercise "
                             "('### Exercise N: title', 'N. **Title.**' or '**N. Title.**')")
        split = split_solution(text)
        cell_id = cell.get("id", str(index))
        cells.append(_cell("code", stub_source(title, split), ["exercise-answer"],
                           f"{cell_id}-answer"))
        cells.append(_cell("code", check_source(title, split), ["exercise-check"],
                           f"{cell_id}-check"))
    nb["cells"] = cells
    nb["metadata"].pop("rise", None)
    for cell in cells:
        cell.get("metadata", {}).pop("slideshow", None)
    return nb


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"]
    if not paths:
        print(__doc__)
        return 2
    OUT.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT / "tools"))
    from nbformat_chapters import repository_url

    repository, stale = repository_url(), []
    for path in paths:
        nb = json.loads(path.read_text())
        target = OUT / path.name
        text = render(student_edition(nb, path.stem, repository))
        if not target.exists() or target.read_text() != text:
            stale.append(target)
            if not check:
                target.write_text(text)
    for target in stale:
        print(("stale: " if check else "wrote ") + str(target.relative_to(ROOT)))
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
