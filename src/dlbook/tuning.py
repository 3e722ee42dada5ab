"""The book's rule for comparisons, as one function: choose on validation, then repeat over seeds.

Every contender in a comparison gets the same budget and its own hyper-parameter, chosen on the
validation split; the claimed difference is then shown over several seeds (mean and spread).
:func:`tune_then_repeat` does exactly that for one contender:

1. train once per grid value with the first seed, and keep the value whose run scores best on
   validation;
2. train the remaining seeds with that value (the first seed's run is reused, not repeated).

The test set takes no part: score the returned models on it once, at the end.

:func:`fit_side_by_side` trains a grid (learning rates, seeds) of small MLPs at once, as one
batched model, each member as ``fit`` would train it alone: a grid for about the price of a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .ensemble import EnsembleLinear
from .training import History, adam, batch_orders


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


# --- a grid trained side by side ------------------------------------------------------------------
def _mlp_layers(model: nn.Module) -> list[nn.Module]:
    """The leaf modules of an MLP, in order; only Flatten (dropped), Linear and ReLU allowed."""
    layers = [m for m in model.modules() if not list(m.children())]
    unknown = {type(m).__name__ for m in layers} - {"Flatten", "Linear", "ReLU"}
    if unknown:
        raise ValueError(f"fit_side_by_side trains MLPs of Linear and ReLU layers only (a Flatten "
                         f"in front is fine); this model also has {sorted(unknown)}. Train it "
                         "with fit() instead.")
    return [m for m in layers if not isinstance(m, nn.Flatten)]


def fit_side_by_side(models: Sequence[nn.Module], train_sets: Sequence[tuple], val: tuple | None, *,
                     lrs: Sequence[float], seeds: Sequence[int], steps: int, batch_size: int = 64,
                     eval_every: int = 25, member_vals: Sequence[tuple] | None = None
                     ) -> list[History]:
    """Train ``M`` small MLP classifiers at once, as one batched model, each as
    ``fit(models[m], train_sets[m], val, steps=steps, batch_size=batch_size,
    eval_every=eval_every, patience=steps, seed=seeds[m], optimizer=Adam at lrs[m])`` would:
    its own training data (all of one length), its own learning rate, its own batch order, and
    at the end the weights of its best validation loss. ``member_vals`` (instead of ``val``):
    one validation set per member, all of one length, when each member is tuned and stopped
    on its own small validation set. Returns one
    :class:`~dlbook.training.History` per model (``step``, ``train_loss``, ``val_loss``,
    ``val_metric`` = accuracy, ``best_step``), so :func:`best_val_metric` scores it.

    Why: a small network's step is largely per-operation overhead, so ``M`` members in one
    batched matmul cost much less than ``M`` runs one after another, the more so the smaller the
    batches. Each member's loss is the mean over its own batch and the members' losses are
    summed, so each gets exactly its own gradient. Adam's step is its learning rate times a
    direction that does not depend on the rate, so the step is taken at rate 1 and each member
    keeps its own rate's share of it.
    """
    m_count = len(models)
    if not (m_count == len(train_sets) == len(lrs) == len(seeds)) or m_count == 0:
        raise ValueError(f"need one training set, learning rate and seed per model; got "
                         f"{m_count} models, {len(train_sets)} sets, {len(lrs)} rates, "
                         f"{len(seeds)} seeds")
    if len({len(x) for x, _ in train_sets}) != 1:
        raise ValueError("the members train side by side on batches of one size: give every "
                         "model a training set of the same length")
    if (val is None) == (member_vals is None):
        raise ValueError("give either val (one validation set for all) or member_vals (one per "
                         "model), not both or neither")
    if member_vals is not None and (len(member_vals) != m_count
                                    or len({len(xv) for xv, _ in member_vals}) != 1):
        raise ValueError(f"member_vals needs one validation set per model ({m_count}), all of "
                         "one length")
    if steps < 1 or eval_every < 1 or batch_size < 1:
        raise ValueError(f"steps, eval_every and batch_size must be positive, got {steps}, "
                         f"{eval_every}, {batch_size}")
    layers = [_mlp_layers(model) for model in models]
    shapes = {tuple(tuple(p.shape) for p in model.parameters()) for model in models}
    if len(shapes) != 1:
        raise ValueError("the models must share one architecture (the same layer sizes)")
    linears = [[layer for layer in member if isinstance(layer, nn.Linear)] for member in layers]
    # the members side by side: layer k of all M members as one EnsembleLinear
    ensembles = [EnsembleLinear.from_linears([member[k] for member in linears])
                 for k in range(len(linears[0]))]
    stack = iter(ensembles)
    net = nn.Sequential(*[nn.ReLU() if isinstance(layer, nn.ReLU) else next(stack)
                          for layer in layers[0]])  # (M, B, D) -> (M, B, classes)
    params = list(net.parameters())

    x = torch.stack([xs.flatten(1) for xs, _ in train_sets])  # (M, N, D)
    y = torch.stack([ys for _, ys in train_sets])  # (M, N)
    if member_vals is None:
        x_val = val[0].flatten(1).expand(m_count, -1, -1)  # (M, N_val, D)
        y_val = val[1].expand(m_count, -1)  # (M, N_val)
    else:
        x_val = torch.stack([xv.flatten(1) for xv, _ in member_vals])  # (M, N_val, D)
        y_val = torch.stack([yv for _, yv in member_vals])  # (M, N_val)
    n = x.shape[1]
    b = min(batch_size, n)
    # Adam's step is its learning rate times a direction that does not depend on the rate, and
    # its moments do not either: take the step at rate 1, then keep each member's share of it.
    optimizer = adam(params, 1.0)
    rates = torch.tensor([float(lr) for lr in lrs])  # (M,)
    streams = [batch_orders(n, b, torch.Generator().manual_seed(seed)) for seed in seeds]
    rows = torch.arange(m_count)[:, None]
    histories = [History() for _ in models]
    best_loss = torch.full((m_count,), float("inf"))
    best = [p.detach().clone() for p in params]
    running = torch.zeros(m_count)
    since = 0
    for step in range(1, steps + 1):
        idx = torch.stack([next(stream) for stream in streams])  # (M, b): fit's batch order
        logits = net(x[rows, idx])  # (M, b, classes)
        losses = F.cross_entropy(logits.flatten(0, 1), y[rows, idx].flatten(),
                                 reduction="none").view(m_count, b).mean(1)  # (M,)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        before = [p.detach().clone() for p in params]
        optimizer.step()
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(torch.lerp(old, p, rates.view(-1, *[1] * (p.dim() - 1))))
        running += losses.detach()
        since += 1
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                val_logits = net(x_val)  # (M, N_val, classes)
                val_losses = F.cross_entropy(val_logits.transpose(1, 2), y_val,
                                             reduction="none").mean(1)
                val_accs = (val_logits.argmax(-1) == y_val).float().mean(1)
                if not torch.isfinite(val_losses).all():
                    m = int((~torch.isfinite(val_losses)).nonzero()[0])
                    raise FloatingPointError(
                        f"member {m} (learning rate {lrs[m]:g}) diverged: validation loss "
                        f"{val_losses[m].item()} after step {step}. Use smaller learning rates.")
                improved = val_losses < best_loss  # (M,)
                best_loss = torch.where(improved, val_losses, best_loss)
                for kept, p in zip(best, params):
                    kept[improved] = p[improved]
            for m, (history, vl, va, tl, better) in enumerate(zip(
                    histories, val_losses.tolist(), val_accs.tolist(),
                    (running / since).tolist(), improved.tolist())):
                history.step.append(step)
                history.train_loss.append(tl)
                history.val_loss.append(vl)
                history.val_metric.append(va)
                history.lr.append(lrs[m])
                if better:
                    history.best_step = step
            running.zero_()
            since = 0
    kept = iter(best)  # each member's best weights back into its own modules
    for k, layer in enumerate(ensembles):
        layer.copy_into([member[k] for member in linears], weight=next(kept), bias=next(kept))
    for model in models:
        model.eval()
    return histories
