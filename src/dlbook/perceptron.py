"""The first artificial neurons: McCulloch-Pitts threshold units (1943) and Rosenblatt's perceptron (1958).

A McCulloch-Pitts unit has fixed, hand-set connections: it adds its binary excitatory inputs and
fires when the sum reaches a threshold; any active inhibitory input vetoes firing. Rosenblatt's
perceptron keeps the threshold but *learns* real-valued weights from labelled examples:

    predict  y_hat = sign(w . x + b)                labels y in {-1, +1}
    on a mistake (y (w . x + b) <= 0):  w <- w + lr * y * x,   b <- b + lr * y

Nothing changes when an example is already on the right side. :meth:`Perceptron.fit` records every
update (the weights after it and the example that caused it) so that training can be replayed.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class McCullochPittsUnit:
    """A 1943 threshold neuron on binary inputs: fire (1) iff no inhibitory input is active and
    the number of active excitatory inputs is at least ``threshold``.

    AND of two inputs: ``McCullochPittsUnit(threshold=2)``; OR: ``threshold=1``;
    NOT: ``McCullochPittsUnit(threshold=0, inhibitory=(0,))``.
    """

    threshold: int
    inhibitory: tuple[int, ...] = ()  # indices of the inputs that veto firing

    def __call__(self, inputs) -> np.ndarray:
        x = np.atleast_2d(np.asarray(inputs))  # (N, n_inputs), entries 0 or 1
        if not np.isin(x, (0, 1)).all():
            raise ValueError("McCulloch-Pitts units take binary inputs (0 or 1); got other values")
        is_inhibitory = np.isin(np.arange(x.shape[1]), self.inhibitory)
        excitation = x[:, ~is_inhibitory].sum(axis=1)  # (N,)
        vetoed = x[:, is_inhibitory].any(axis=1)  # (N,)
        return ((excitation >= self.threshold) & ~vetoed).astype(int)  # (N,)


def truth_table(unit, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """All 2**n_inputs binary input rows (in counting order) and the unit's output for each."""
    inputs = np.array(list(itertools.product((0, 1), repeat=n_inputs)))  # (2**n, n)
    return inputs, unit(inputs)


@dataclass
class History:
    """What :meth:`Perceptron.fit` did. Update k (k = 1..K) was caused by example ``index[k-1]``
    in epoch ``epoch[k-1]``; ``weights[k]``, ``bias[k]`` are the parameters after it
    (``weights[0]``, ``bias[0]`` are the zeros training starts from)."""

    weights: np.ndarray  # (K + 1, d)
    bias: np.ndarray  # (K + 1,)
    index: np.ndarray  # (K,) the misclassified example that triggered each update
    epoch: np.ndarray  # (K,) counting from 1
    mistakes_per_epoch: list[int] = field(default_factory=list)

    @property
    def n_updates(self) -> int:
        return len(self.index)


def as_signed_labels(y) -> np.ndarray:
    """Labels as -1/+1; accepts {-1, +1} or {0, 1} (0 becomes -1)."""
    y = np.asarray(y)
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        return 2 * y.astype(int) - 1
    if values <= {-1, 1}:
        return y.astype(int)
    raise ValueError(f"the perceptron separates two classes labelled -1/+1 or 0/1; got labels {sorted(values)}")


class Perceptron:
    """Rosenblatt's learning rule, one example at a time, in the order given (no shuffling).

    ``lr`` scales every update; starting from zero weights it only rescales w and b, so it never
    changes a prediction. ``fit_intercept=False`` keeps the boundary through the origin.
    """

    def __init__(self, lr: float = 1.0, fit_intercept: bool = True):
        self.lr, self.fit_intercept = lr, fit_intercept

    def fit(self, X, y, epochs: int = 100) -> "Perceptron":
        """Sweep the data up to ``epochs`` times; stop after the first sweep without a mistake
        (then ``converged_`` is True: every training example is classified correctly)."""
        X = np.asarray(X, dtype=np.float64)  # (N, d)
        y = as_signed_labels(y)  # (N,)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (N, d) with one label per row; got X {X.shape}, y {y.shape}")
        w, b = np.zeros(X.shape[1]), 0.0
        weights, biases, index, epoch_of = [w.copy()], [b], [], []
        mistakes_per_epoch = []
        for epoch in range(1, epochs + 1):
            mistakes = 0
            for i in range(len(X)):
                if y[i] * (X[i] @ w + b) <= 0:  # wrong side, or on the boundary: a mistake
                    w = w + self.lr * y[i] * X[i]
                    if self.fit_intercept:
                        b = b + self.lr * y[i]
                    mistakes += 1
                    weights.append(w.copy())
                    biases.append(b)
                    index.append(i)
                    epoch_of.append(epoch)
            mistakes_per_epoch.append(mistakes)
            if mistakes == 0:
                break
        self.coef_, self.intercept_ = w, b
        self.converged_ = mistakes_per_epoch[-1] == 0
        self.history_ = History(np.array(weights), np.array(biases), np.array(index, dtype=int),
                                np.array(epoch_of, dtype=int), mistakes_per_epoch)
        return self

    def decision_function(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_  # (N,)

    def predict(self, X) -> np.ndarray:
        """-1 or +1 for each row (a point exactly on the boundary counts as -1)."""
        return np.where(self.decision_function(X) > 0, 1, -1)


def mistake_bound(X, y, w, b: float = 0.0, fit_intercept: bool = True) -> tuple[float, float, float]:
    """Novikoff's (1962) bound on the perceptron's total number of mistakes, ``(R / gamma)**2``,
    for data that ``(w, b)`` separates. Returns ``(R, gamma, bound)``.

    With ``fit_intercept`` the bias is folded into the weights by giving every x a constant
    feature 1, which is exactly what the perceptron then learns: R is the largest norm of (x, 1)
    and gamma the smallest y (w.x + b) / ||(w, b)||. Any separating (w, b) gives a valid bound;
    the best one comes from the (w, b) with the largest margin.
    """
    X, w, y = np.asarray(X, dtype=np.float64), np.asarray(w, dtype=np.float64), as_signed_labels(y)
    if fit_intercept:
        X = np.hstack([X, np.ones((len(X), 1))])  # (N, d + 1)
        w = np.append(w, b)  # (d + 1,)
    elif b != 0:
        raise ValueError("without an intercept the boundary passes through the origin: pass b=0")
    gamma = float(np.min(y * (X @ w)) / np.linalg.norm(w))
    if gamma <= 0:
        raise ValueError(f"(w, b) does not separate the data (smallest margin {gamma:.3g}): "
                         "the bound needs a separating hyperplane")
    radius = float(np.max(np.linalg.norm(X, axis=1)))
    return radius, gamma, (radius / gamma) ** 2


def separable_data(n: int, margin: float, seed: int = 0, w=None, b: float | None = None,
                   low: float = -1.0, high: float = 1.0):
    """``n`` points, uniform in the square [low, high]^2 but never closer than ``margin`` to the
    line w.x + b = 0, labelled +1/-1 by their side of it: data the perceptron must learn (its
    margin is at least ``margin`` / ||w||). ``w`` a unit vector, ``b`` its offset; a random line
    when not given. Returns ``(X (n, 2), y (n,), w, b)``."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not margin >= 0 or not low < high:
        raise ValueError(f"need margin >= 0 and low < high, got {margin=}, {low=}, {high=}")
    if (w is None) != (b is None):
        raise ValueError("give the line as both w and b, or neither (a random line)")
    rng = np.random.default_rng(seed)
    if w is None:
        angle = rng.uniform(0, 2 * np.pi)
        w = np.array([np.cos(angle), np.sin(angle)])
        b = rng.uniform(-0.3, 0.3)
    points, barren = np.empty((0, 2)), 0
    while len(points) < n:
        candidates = rng.uniform(low, high, size=(4 * n, 2))  # (4n, 2)
        far = np.abs(candidates @ w + b) > margin
        points = np.vstack([points, candidates[far]])
        barren = 0 if far.any() else barren + 1
        if barren == 100:
            raise ValueError(f"no point of the square lies {margin} away from the line: "
                             "use a smaller margin or a larger square")
    X = points[:n]  # (n, 2)
    return X, np.where(X @ w + b > 0, 1, -1), np.asarray(w), b
