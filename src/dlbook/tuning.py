"""The book's rule for comparisons, as one function: choose on validation, then repeat over seeds.

Every contender in a comparison gets the same budget and its own hyper-parameter, chosen on the
validation split; the claimed difference is then shown over several seeds (mean and spread).
:func:`tune_then_repeat` does exactly that for one contender:

1. train once per grid value with the first seed, and keep the value whose run scores best on
   validation;
2. train the remaining seeds with that value (the first seed's run is reused, not repeated).

The test set takes no part: score the returned models on it once, at the end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


def best_val_metric(history) -> float:
    """The validation metric at the epoch with the lowest validation loss (the epoch whose weights
    ``fit(..., patience=...)`` restores)."""
    if not history.val_loss:
        raise ValueError("the run recorded no validation: pass val=(x, y) to fit")
    return history.val_metric[int(np.argmin(history.val_loss))]


@dataclass
class Repeated:
    """What :func:`tune_then_repeat` returns: the chosen value and one run per seed."""

    choice: Any
    grid_scores: dict = field(default_factory=dict)   # grid value -> validation score (first seed)
    seeds: list = field(default_factory=list)
    models: list = field(default_factory=list)
    histories: list = field(default_factory=list)     # what train_one returned second, per seed
    scores: list = field(default_factory=list)        # validation score per seed

    def mean(self) -> float:
        return float(np.mean(self.scores))

    def spread(self) -> float:
        """Standard deviation over seeds (ddof=1: a sample of seeds)."""
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0


def tune_then_repeat(train_one: Callable[[Any, int], tuple], grid: Sequence, seeds: Sequence[int] = (0, 1, 2),
                     score: Callable = best_val_metric) -> Repeated:
    """``train_one(value, seed) -> (model, result)``; ``grid``: the candidate values (e.g.
    learning rates); ``score(result)``: higher is better. By default ``result`` is the
    :class:`~dlbook.training.History` of ``fit`` and the score its validation accuracy at the
    best validation-loss epoch; a run that evaluates once at the end can return that accuracy
    and pass ``score=float``. Returns a :class:`Repeated`."""
    grid, seeds = list(grid), list(seeds)
    if not grid:
        raise ValueError("the grid of candidate values is empty")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    first = {}
    for value in grid:
        model, history = train_one(value, seeds[0])
        first[value] = (model, history, float(score(history)))
    choice = max(grid, key=lambda v: first[v][2])  # ties: the earlier grid value
    out = Repeated(choice=choice, grid_scores={v: first[v][2] for v in grid})
    for seed in seeds:
        model, history = (first[choice][:2] if seed == seeds[0] else train_one(choice, seed))
        out.seeds.append(seed)
        out.models.append(model)
        out.histories.append(history)
        out.scores.append(float(score(history)))
    return out
