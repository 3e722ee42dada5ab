"""The student editions (student/NN_*.ipynb, tools/student_edition.py) and their feedback.

Every chapter has a current student edition; each exercise's check is the solution's own checks,
cut from it without a line lost; on the stub it says "not yet" and why, and with the book's
solution pasted in it says "correct" (run for real on chapter 02, whose body is fast).
"""
from __future__ import annotations

import json
import linecache
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dlbook import exercises
from dlbook.exercises import check

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import student_edition  # noqa: E402
from nbformat_chapters import repository_url  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_current_student_edition(path):
    target = ROOT / "student" / path.name
    assert target.exists(), f"{target} is missing: run `make format`"
    made = student_edition.render(
        student_edition.student_edition(json.loads(path.read_text()), path.stem, repository_url()))
    assert target.read_text() == made, f"{target} is stale: run `make format`"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_check_is_the_solutions_own_and_judges_the_answer(path):
    nb = json.loads(path.read_text())
    solutions = [student_edition.source(c) for c in nb["cells"] if "solution" in tags(c)]
    assert solutions, f"{path.name} has no exercise solutions"
    edition = json.loads((ROOT / "student" / path.name).read_text())
    stubs = [c for c in edition["cells"] if "exercise-answer" in tags(c)]
    checks = [c for c in edition["cells"] if "exercise-check" in tags(c)]
    assert len(stubs) == len(checks) == len(solutions)
    assert not any("solution" in tags(c) for c in edition["cells"])
    for solution in solutions:
        split = student_edition.split_solution(solution)
        # nothing lost or added: the answer then the check is the solution
        assert split.answer.split() + split.check.split() == solution.split()
        assert split.uses and "assert" in split.check
    edited = [student_edition.source(c) for c in stubs + checks]
    compile("\n".join(edited), path.name, "exec")


def test_a_solution_without_checks_or_that_checks_nothing_of_its_answer_is_refused():
    with pytest.raises(ValueError, match="assert"):
        student_edition.split_solution("x = 1\nprint(x)")
    with pytest.raises(ValueError, match="use nothing"):
        student_edition.split_solution("x = 1\nassert 1 + 1 == 2")


def test_exercise_titles_in_the_three_styles_chapters_use():
    assert student_edition.exercise_title("## Exercises\n\n### Exercise 2: tune it\n\ntext") == \
        "Exercise 2: tune it"
    assert student_edition.exercise_title("3. **More latent dimensions.** Train") == \
        "Exercise 3: More latent dimensions"
    assert student_edition.exercise_title("**1. Vocabulary size.** Train") == \
        "Exercise 1: Vocabulary size"
    assert student_edition.exercise_title("Just prose.") is None


def run_check(body, namespace):
    """Run a check cell as Jupyter does, its source known to linecache (so tracebacks quote it)."""
    name = f"<cell-{abs(hash(body))}>"
    linecache.cache[name] = (len(body), None, body.splitlines(True), name)
    exec(compile(body, name, "exec"), namespace)


def test_check_says_what_is_missing_what_failed_and_when_it_is_right(capsys):
    ns = {"check": check, "answer": ...}
    run_check("with check('Exercise 1', uses=['answer']):\n    assert answer + 1 == 3", ns)
    assert "not yet: give `answer` your answer; it is still `...`" in capsys.readouterr().out
    assert exercises.results["Exercise 1"] == exercises.NOT_YET
    ns["answer"] = 1
    run_check("with check('Exercise 1', uses=['answer']):\n"
              "    assert answer + 1 == 3, 'answer + 1 should be 3'", ns)
    out = capsys.readouterr().out
    assert "not yet: answer + 1 should be 3" in out and "assert answer + 1 == 3" in out
    ns["answer"] = "1"
    run_check("with check('Exercise 1', uses=['answer']):\n    assert answer + 1 == 3", ns)
    assert "TypeError" in capsys.readouterr().out
    ns["answer"] = 2
    run_check("with check('Exercise 1', uses=['answer']):\n    assert answer + 1 == 3", ns)
    assert "correct" in capsys.readouterr().out
    assert exercises.results["Exercise 1"] == exercises.PASSED
    with pytest.raises(ValueError, match="list of names"):
        check("Exercise 1", uses="answer")


def test_chapter_02_student_edition_says_not_yet_on_stubs_and_correct_with_the_solutions(tmp_path):
    """Run the edition once, each stub then its check, then the book's answer then the check."""
    chapter = ROOT / "chapters" / "02_perceptron.ipynb"
    book = json.loads(chapter.read_text())
    answers = [student_edition.split_solution(student_edition.source(c)).answer
               for c in book["cells"] if "solution" in tags(c)]
    nb = nbformat.read(ROOT / "student" / chapter.name, as_version=4)
    cells, k = [], 0
    for cell in nb.cells:
        cells.append(cell)
        if "exercise-check" in tags(cell):
            cells.append(nbformat.v4.new_code_cell(answers[k]))  # the book's solution, pasted
            cells.append(nbformat.v4.new_code_cell(cell.source))
            k += 1
    nb.cells = cells[1:]  # not the Colab setup cell
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    on_stub = [v for c in nb.cells if "exercise-check" in tags(c)
               for v in [" ".join(o.get("text", "") for o in c.outputs)]]
    pasted = [" ".join(o.get("text", "") for o in c.outputs) for c in nb.cells
              if c.source.startswith("from dlbook.exercises") and "exercise-check" not in tags(c)]
    assert len(on_stub) == len(pasted) == len(answers) == 4
    for stub_out, solved_out in zip(on_stub, pasted):
        assert re.search(r"\u2717 Exercise \d: .*: not yet: give `", stub_out), stub_out
        assert re.search(r"\u2713 Exercise \d: .*: correct", solved_out), solved_out
