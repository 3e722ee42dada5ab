"""Feedback on a student's answer to an exercise (the student editions, `student/`).

A student edition replaces each exercise's solution by a stub that sets the names the solution
defines to ``...``, followed by the solution's own checks inside ``check``::

    from dlbook.exercises import check
    with check("Exercise 1: XOR from threshold units", uses=["xor_out"]):
        assert (xor_out == [0, 1, 1, 0]).all()

``check`` never raises: it prints whether the answer passes, and if not, why, in one sentence
(a name still ``...``, the assertion that failed, or the error the answer led to), so a student
can run the notebook on and come back. The verdict is kept in ``results`` by exercise name.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field

PASSED, NOT_YET = "correct", "not yet"

results: dict[str, str] = {}


@dataclass
class check:
    """Run an exercise's checks on the student's answer and print a verdict (a context manager)."""

    exercise: str
    uses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.exercise, str) or not self.exercise.strip():
            raise ValueError("check needs the exercise's name, e.g. check('Exercise 1', uses=['x'])")
        if isinstance(self.uses, str):
            raise ValueError(f"uses is a list of names, e.g. uses=[{self.uses!r}], not a string")
        self.uses = list(self.uses)

    def __enter__(self) -> "check":
        self._globals = sys._getframe(1).f_globals
        return self

    def unanswered(self) -> list[str]:
        return [name for name in self.uses
                if name not in self._globals or self._globals[name] is Ellipsis]

    def __exit__(self, kind, error, tb) -> bool:
        if kind is not None and not issubclass(kind, Exception):
            return False  # KeyboardInterrupt and the like go through
        missing = self.unanswered()
        if missing:
            names = ", ".join(f"`{name}`" for name in missing)
            still = "they are" if len(missing) > 1 else "it is"
            verdict = f"not yet: give {names} your answer; {still} still `...`."
        elif kind is None:
            verdict = "correct: your answer passes every check."
        elif issubclass(kind, AssertionError):
            verdict = f"not yet: {_failed_assertion(error, tb)}"
        else:
            line = _failing_line(tb)
            where = f" at `{line}`" if line else ""
            verdict = f"not yet: the check stopped{where} with {kind.__name__}: {error}"
        results[self.exercise] = PASSED if verdict.startswith("correct") else NOT_YET
        mark = "\u2713" if results[self.exercise] == PASSED else "\u2717"
        print(f"{mark} {self.exercise}: {verdict}")
        return True


def _failing_line(tb) -> str | None:
    """The source line the check stopped at (Jupyter keeps each cell's source), if known."""
    frames = traceback.extract_tb(tb)
    return ((frames[-1].line or "").strip() or None) if frames else None


def _failed_assertion(error: BaseException, tb) -> str:
    message, line = str(error).strip(), _failing_line(tb)
    where = f"the check `{line}`" if line else "a check"
    if message:
        return f"{message} ({where} failed)."
    return f"{where} is false for your answer."
