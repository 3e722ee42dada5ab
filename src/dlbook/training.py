"""One small training loop that every chapter shares: :func:`fit`.

It trains in one of two ways, with the same checks, records and progress bar:

- **by epochs** (``fit(model, (x, y), val, epochs=10)``): small data sets live in memory as
  tensors, so ``fit`` slices mini-batches straight out of them (a random permutation per epoch)
  instead of going through a per-sample ``DataLoader``. That is simpler, not much faster. On
  MNIST-5k, one CPU thread, it took 0.88 of a ``DataLoader`` loop's time and 1.14 of a
  hand-written loop's (which checks and records nothing): medians of 3 runs of
  ``python tools/bench_fit.py``, which measures all three on your machine.
- **by steps** (``fit(model, TokenStream(ids, block_size=16), val, steps=2000)``): a fixed number
  of optimizer steps, each on a random batch (for a token stream: ``B`` random windows of ``T``
  tokens), with an evaluation every ``eval_every`` steps. This is how language models are
  trained: there is no natural epoch, and a step count, unlike a wall-clock budget, reproduces
  on any machine.

A model either returns outputs that ``loss_fn`` scores (a classifier), or is a **language model**
in makemore's interface, ``forward(idx, targets=None) -> (logits, loss)``, which computes its own
loss; ``fit`` tells them apart by the ``targets`` parameter of ``forward``. Gradient clipping
(``grad_clip``) and a learning-rate schedule (``scheduler``, e.g. :func:`warmup_cosine`) serve
both ways.

``fit`` checks its input before the first step (empty data, lengths, batch size), and stops with an
error that names the epoch and batch (or the step) as soon as the loss is NaN or infinite.
Running sums stay on the device, so a GPU is synchronised once per epoch or evaluation, not once
per batch.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Tensors = tuple[torch.Tensor, torch.Tensor]


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when there is a GPU (Colab), else the CPU. ``prefer`` forces one (e.g. ``"cpu"``)."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def correct_count(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many rows' arg-max logit is the target class (a tensor on the logits' device)."""
    if targets.dtype.is_floating_point or targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"accuracy needs class indices of shape {tuple(logits.shape[:-1])} (integers), got "
            f"{targets.dtype} of shape {tuple(targets.shape)}; for one-hot targets pass "
            "targets.argmax(-1)")
    return (logits.argmax(dim=-1) == targets).sum()


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max logit is the target class."""
    return correct_count(logits, targets).item() / max(targets.numel(), 1)


@dataclass
class History:
    """What :func:`fit` records.

    An epoch run has one entry per epoch (``epoch`` counts from 1). A step run
    (``fit(..., steps=N)``) has one entry per evaluation, every ``eval_every`` steps: ``step``
    counts optimizer steps, and ``train_loss`` is the mean over the steps since the previous
    entry. ``lr`` is the learning rate at the entry, ``grad_norm`` the mean gradient norm before
    clipping and ``grad_norm_max`` the largest (recorded when ``grad_clip`` is set).
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    step: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    grad_norm_max: list[float] = field(default_factory=list)  # the largest norm, same interval
    best_step: int | None = None

    def last(self, key: str) -> float:
        return getattr(self, key)[-1]

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    @property
    def unit(self) -> str:
        """``"step"`` for a step run, ``"epoch"`` for an epoch run (the x-axis of its curves)."""
        return "step" if self.step else "epoch"

    @property
    def x(self) -> list[int]:
        """The steps, or the epochs, at which the entries were recorded."""
        return self.step if self.step else self.epoch


@dataclass(frozen=True)
class TokenStream:
    """A long 1-D tensor of token ids, read as ``(B, T)`` windows of ``T = block_size`` tokens.

    Training samples windows at random offsets (:meth:`sample`); the targets are the same window
    shifted by one token, so every position predicts the next token. Evaluation reads the
    stream as consecutive windows (:meth:`windows`), so every token but the first is a target
    exactly once and the validation loss is the same on every call. ``max_eval_windows`` keeps
    that many windows, evenly spaced, for a long stream whose full evaluation would be slow.
    """

    tokens: torch.Tensor  # (N,) integer token ids
    block_size: int  # T, the window length
    max_eval_windows: int | None = None

    def __post_init__(self):
        t = self.tokens
        if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.dtype.is_floating_point:
            raise ValueError("TokenStream needs a 1-D integer tensor of token ids, got "
                             + (f"{t.dtype} of shape {tuple(t.shape)}"
                                if isinstance(t, torch.Tensor) else type(t).__name__))
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, (int, np.integer)) \
                or self.block_size < 1:
            raise ValueError(f"block_size must be a positive whole number, got {self.block_size!r}")
        if len(t) < self.block_size + 1:
            raise ValueError(f"a stream of {len(t)} tokens is too short for windows of "
                             f"{self.block_size} tokens plus one target: use a smaller block_size")
        if self.max_eval_windows is not None and self.max_eval_windows < 1:
            raise ValueError(f"max_eval_windows must be positive or None, got {self.max_eval_windows}")

    def __len__(self) -> int:
        return len(self.tokens)

    def to(self, device) -> "TokenStream":
        return TokenStream(self.tokens.to(device), self.block_size, self.max_eval_windows)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Tensors:
        """``batch_size`` windows at random offsets: inputs ``(B, T)`` and targets ``(B, T)``."""
        T = self.block_size
        start = torch.randint(len(self.tokens) - T, (batch_size,), generator=generator)  # (B,)
        offsets = (start[:, None] + torch.arange(T)).to(self.tokens.device)  # (B, T)
        return self.tokens[offsets], self.tokens[offsets + 1]  # (B, T), (B, T)

    def windows(self) -> Tensors:
        """Consecutive, non-overlapping windows: inputs ``(W, T)`` and targets ``(W, T)``."""
        T = self.block_size
        n = (len(self.tokens) - 1) // T  # W windows whose targets stay inside the stream
        x = self.tokens[:n * T].view(n, T)  # (W, T)
        y = self.tokens[1:n * T + 1].view(n, T)  # (W, T)
        if self.max_eval_windows is not None and n > self.max_eval_windows:
            keep = torch.linspace(0, n - 1, self.max_eval_windows).round().long().to(x.device)
            x, y = x[keep], y[keep]
        return x, y


def is_language_model(model: nn.Module) -> bool:
    """True for makemore's interface, ``forward(idx, targets=None) -> (logits, loss)``: the model
    scores itself when given targets (``fit`` and :func:`evaluate` then use its loss)."""
    try:
        return "targets" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _lm_forward(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor):
    out = model(xb, yb)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], torch.Tensor)):
        raise TypeError(f"{type(model).__name__}.forward(idx, targets) must return (logits, loss), "
                        f"the loss a scalar tensor; got {type(out).__name__}")
    return out


def _n_targets(y: torch.Tensor) -> torch.Tensor | int:
    """How many targets a language model's loss averages over: negative ids (-1, as makemore
    uses with ``ignore_index=-1``) mark positions that are not scored."""
    return (y >= 0).sum() if not y.dtype.is_floating_point else y.numel()


def _lm_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((logits.argmax(-1) == y) & (y >= 0)).sum()


def _progress_enabled(progress: bool | None, total: int) -> bool:
    if progress is not None:
        return progress
    # Builds and tests set DLBOOK_PROGRESS=0: a progress widget is noise on a static page.
    return os.environ.get("DLBOOK_PROGRESS", "1") != "0" and total >= 20


@torch.no_grad()
def evaluate(model: nn.Module, data: "Tensors | TokenStream", loss_fn: Callable = F.cross_entropy,
             metric: Callable | None = accuracy, batch_size: int = 2048) -> tuple[float, float | None]:
    """Mean loss (and metric) of ``model`` on ``data`` in eval mode; restores the previous mode.

    ``data``: ``(inputs, targets)``, or a :class:`TokenStream` (read as consecutive windows).
    A language model (``forward(idx, targets)``) is scored by its own loss, averaged over all
    targets; ``metric`` then sees one batch at a time and is averaged the same way
    (:func:`accuracy` is next-token accuracy).
    """
    if not isinstance(data, TokenStream) and not (isinstance(data, (tuple, list))
                                                  and len(data) == 2):
        raise ValueError("evaluate needs a TokenStream or a pair (inputs, targets), got "
                         f"{type(data).__name__}"
                         + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else ""))
    x, y = data.windows() if isinstance(data, TokenStream) else data
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"evaluate needs a non-empty data set with one target per input, got "
                         f"{len(x)} inputs and {len(y)} targets: check the split or slice "
                         "that made it")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if not is_language_model(model):
        outputs = []
        for i in range(0, len(x), batch_size):
            outputs.append(model(x[i:i + batch_size].to(device)))
        out = torch.cat(outputs)
        y = y.to(device)
        loss = loss_fn(out, y).item()
        value = metric(out, y) if metric is not None else None
    else:
        # Batches of at most 64k target positions: (B, T, vocab) logits stay small.
        per_row = max(1, y[0].numel()) if len(y) else 1
        batch_size = max(1, min(batch_size, 2 ** 16 // per_row))
        total_loss = torch.zeros((), device=device)
        total_metric = torch.zeros((), device=device)
        count = torch.zeros((), device=device)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            logits, batch_loss = _lm_forward(model, xb, yb)
            n = _n_targets(yb)
            total_loss += batch_loss.detach() * n
            count += n
            if metric is accuracy:
                total_metric += _lm_correct(logits, yb)
            elif metric is not None:
                total_metric += torch.as_tensor(metric(logits, yb), device=device) * n
        n = max(count.item(), 1)
        loss = total_loss.item() / n
        value = total_metric.item() / n if metric is not None else None
    model.train(was_training)
    return loss, value


def warmup_cosine(warmup_steps: int, total_steps: int, final_fraction: float = 0.1):
    """A learning-rate schedule for ``fit(..., scheduler=warmup_cosine(100, steps))``.

    The rate climbs linearly to its peak (the optimizer's ``lr``) over ``warmup_steps``, then
    follows half a cosine down to ``final_fraction`` of the peak at ``total_steps`` and stays
    there (nanoGPT's schedule). Warm-up lets Adam's moment estimates settle before the steps get
    large: early gradients are big and their second-moment estimates poor. Returns a factory
    ``optimizer -> LambdaLR``; ``fit`` steps it once per step (once per epoch in an epoch run).
    """
    if not (isinstance(warmup_steps, (int, np.integer)) and isinstance(total_steps, (int, np.integer))):
        raise ValueError("warmup_steps and total_steps are whole numbers of steps")
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                         f"{warmup_steps} and {total_steps}")
    if not 0 <= final_fraction <= 1:
        raise ValueError(f"final_fraction must lie in [0, 1], got {final_fraction}")

    def factor(step: int) -> float:  # step: how many optimizer steps are done (0 at the start)
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    def make(optimizer: torch.optim.Optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    make.factor = factor  # the multiplier itself, e.g. to draw the schedule
    return make


def _whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _check_fit_arguments(train, val, epochs, steps, batch_size, patience, eval_every,
                         grad_clip) -> None:
    """Bad input fails here, before any training, with a message that says what to change."""
    if not _whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
    if epochs is not None and steps is not None:
        raise ValueError("pass epochs or steps, not both: a run counts one or the other")
    if epochs is not None and (not _whole(epochs) or epochs < 1):
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    if steps is not None and (not _whole(steps) or steps < 1):
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    if eval_every is not None:
        if steps is None:
            raise ValueError("eval_every counts steps: pass steps=... (an epoch run evaluates "
                             "after every epoch)")
        if not _whole(eval_every) or eval_every < 1:
            raise ValueError(f"eval_every must be a positive whole number, got {eval_every!r}")
    if isinstance(train, TokenStream) and steps is None:
        raise ValueError("a token stream has no epochs: train for a fixed number of steps, "
                         "fit(..., steps=...)")
    if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
        raise ValueError(f"grad_clip is the largest gradient norm allowed, a positive number; "
                         f"got {grad_clip!r}")
    if patience is not None and (not _whole(patience) or patience < 1):
        raise ValueError(f"patience must be a positive whole number or None, got {patience!r}")
    if patience is not None and val is None:
        raise ValueError("early stopping (patience) watches the validation loss: pass val=(x, y)")
    for name, data in (("train", train), ("val", val)):
        if data is None or isinstance(data, TokenStream):
            continue
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"{name} must be a pair (inputs, targets) of tensors, or a "
                             "TokenStream of token ids")
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"{name} inputs and targets differ in length: {len(x)} vs {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{name} data is empty: there is nothing to "
                             + ("train on" if name == "train" else "validate on"))


def adam(params: Iterable, lr: float, **kwargs) -> torch.optim.Adam:
    """Adam fused into one kernel for all parameters where this PyTorch can (2.4 and later, on CPU
    and GPU). For small models a step is mostly per-tensor bookkeeping, which fusing removes (about
    4x faster on a CPU); the arithmetic is the same as the default Adam's."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older PyTorch: fused Adam only on CUDA
        return torch.optim.Adam(params, lr=lr, **kwargs)


def _raise_not_finite(value: float, where: str, optimizer) -> None:
    lrs = sorted({group.get("lr") for group in optimizer.param_groups if "lr" in group})
    lr = f" (learning rate {lrs[0]:g})" if len(lrs) == 1 and lrs[0] is not None else ""
    raise FloatingPointError(
        f"the training loss is {value} at {where}: training has diverged"
        f"{lr}. Try a smaller learning rate (or gradient clipping); check the data for NaNs.")


def batch_orders(n: int, batch_size: int, generator: torch.Generator | None = None, device=None):
    """Endless index batches of ``min(batch_size, n)`` rows of ``range(n)`` for a run of steps:
    a fresh permutation whenever one runs out (its last, short batch is dropped). ``fit`` draws
    its step-run batches this way, and :func:`dlbook.tuning.fit_side_by_side` one stream per
    member, so both see the same rows for the same seed."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need at least one row and a positive batch size, got n={n}, "
                         f"batch_size={batch_size}")
    b = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(0, n - b + 1, b):
            yield order[i:i + b]


def _pair_batches(x, y, batch_size, generator, device):
    """Endless full mini-batches for a step run: a fresh permutation whenever one runs out."""
    for idx in batch_orders(len(x), batch_size, generator, device):
        yield x.index_select(0, idx), y.index_select(0, idx)  # 5x faster than x[idx]


def _stream_batches(stream: TokenStream, batch_size, generator):
    while True:
        yield stream.sample(batch_size, generator)


def fit(model: nn.Module, train: "Tensors | TokenStream", val: "Tensors | TokenStream | None" = None,
        *, epochs: int | None = None, steps: int | None = None, batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | Callable[[Iterable], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
        loss_fn: Callable = F.cross_entropy, metric: Callable | None = accuracy,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        patience: int | None = None, seed: int = 0, device: str | torch.device | None = None,
        progress: bool | None = None, eval_every: int | None = None,
        grad_clip: float | None = None, train_eval: bool = False) -> History:
    """Train ``model`` with mini-batch gradient descent and return its :class:`History`.

    - ``train``/``val``: ``(inputs, targets)`` tensors kept in memory, or a :class:`TokenStream`
      (``train`` then needs ``steps``).
    - ``epochs`` (default 10) or ``steps``: an epoch run visits every example once per epoch and
      evaluates after each; a step run takes exactly ``steps`` optimizer steps on random batches
      and evaluates every ``eval_every`` steps (default: ten times in all) and after the last.
    - A model whose ``forward`` takes ``targets`` is a language model,
      ``forward(idx, targets=None) -> (logits, loss)``: ``fit`` calls ``model(x, y)`` and
      minimises the loss it returns (``loss_fn`` is not used).
    - ``optimizer``: an optimizer, or a factory ``params -> optimizer`` (default: Adam with ``lr``).
    - ``scheduler``: a factory ``optimizer -> lr scheduler`` (e.g. :func:`warmup_cosine`), stepped
      once per epoch in an epoch run and once per step in a step run.
    - ``grad_clip``: rescale the gradient whenever its norm exceeds this (``clip_grad_norm_``);
      the mean norm before clipping is recorded in ``History.grad_norm``.
    - ``transform``: applied to each training batch (data augmentation), never to validation.
    - ``train_eval``: record ``train_loss``/``train_metric`` as validation is recorded, on the
      whole training set in eval mode and un-augmented (one extra pass per record). By default
      they average the training batches as they went by: free, but in train mode (dropout on,
      augmented batches) and with weights that changed during the epoch.
    - ``patience``: early stopping: stop after this many evaluations (epochs, in an epoch run)
      without a better validation loss and restore the best weights.
    - ``seed``: the batch order (and anything random inside the model) is reproducible.
    - ``progress``: a ``tqdm.auto`` bar at a live kernel (default: on, unless the environment sets
      ``DLBOOK_PROGRESS=0`` or the run is tiny).
    The model is moved to ``device`` (CUDA when available) and left in eval mode.
    """
    _check_fit_arguments(train, val, epochs, steps, batch_size, patience, eval_every, grad_clip)
    if steps is None and epochs is None:
        epochs = 10
    device = pick_device(device) if not isinstance(device, torch.device) else device
    seed_everything(seed)
    batch_gen = torch.Generator().manual_seed(seed)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer(model.parameters())
    sched = scheduler(optimizer) if scheduler is not None else None
    language_model = is_language_model(model)
    history = History()
    best = {"loss": float("inf"), "state": None, "bad": 0}
    start = time.perf_counter()

    def zeros():
        return torch.zeros((), device=device)

    # loss * weight summed (weight: examples, or a language model's targets), metric summed
    # over `count` targets, pre-clipping gradient norms over `steps` steps.
    sums = {"loss": zeros(), "weight": zeros(), "metric": zeros(), "count": zeros(),
            "grad": zeros(), "grad_max": zeros(), "steps": 0}
    batch_losses: list[torch.Tensor] = []

    def train_step(xb, yb, where: Callable[[], str]) -> None:
        """One optimizer step; the running sums stay on the device (no host sync)."""
        if transform is not None:
            xb = transform(xb)
        if language_model:
            out, loss = _lm_forward(model, xb, yb)
            weight = _n_targets(yb)
        else:
            out = model(xb)
            loss = loss_fn(out, yb)
            weight = len(xb)
        if device.type == "cpu" and not torch.isfinite(loss):  # free on the CPU: check now
            _raise_not_finite(loss.item(), where(), optimizer)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            sums["grad"] += norm
            sums["grad_max"] = torch.maximum(sums["grad_max"], norm)
        optimizer.step()
        if steps is not None and sched is not None:
            sched.step()
        batch_losses.append(loss.detach())
        sums["loss"] += loss.detach() * weight
        sums["weight"] += weight
        sums["steps"] += 1
        if metric is accuracy:
            if language_model:
                sums["metric"] += _lm_correct(out.detach(), yb)
                sums["count"] += weight
            else:
                sums["metric"] += correct_count(out.detach(), yb)
                sums["count"] += yb.numel()
        elif metric is not None:
            sums["metric"] += torch.as_tensor(metric(out.detach(), yb), device=device) * weight
            sums["count"] += weight

    def check_finite(where_of: Callable[[int], str]) -> None:
        if device.type != "cpu" and batch_losses:  # one sync per record: find the first bad batch
            finite = torch.isfinite(torch.stack(batch_losses))
            if not finite.all():
                first = int((~finite).nonzero()[0])
                _raise_not_finite(batch_losses[first].item(), where_of(first), optimizer)
        batch_losses.clear()

    def record(at: int) -> bool:
        """Close an epoch or an evaluation interval; True when early stopping says stop."""
        if train_eval:  # eval mode, no transform: the same measurement as validation
            tl, tm = evaluate(model, train, loss_fn, metric)
            history.train_loss.append(tl)
            history.train_metric.append(tm if tm is not None else float("nan"))
        else:
            history.train_loss.append(sums["loss"].item() / max(sums["weight"].item(), 1))
            history.train_metric.append(sums["metric"].item() / max(sums["count"].item(), 1)
                                        if metric is not None else float("nan"))
        history.lr.append(optimizer.param_groups[0].get("lr", float("nan")))
        if grad_clip is not None:
            history.grad_norm.append(sums["grad"].item() / max(sums["steps"], 1))
            history.grad_norm_max.append(sums["grad_max"].item())
        for key in ("loss", "weight", "metric", "count", "grad", "grad_max"):
            sums[key] = zeros()
        sums["steps"] = 0
        stop = False
        if val is not None:
            vl, vm = evaluate(model, val, loss_fn, metric)
            if not np.isfinite(vl):
                raise FloatingPointError(
                    f"the validation loss is {vl} after {history.unit} {at}: the weights have "
                    "diverged. Try a smaller learning rate (or gradient clipping).")
            history.val_loss.append(vl)
            history.val_metric.append(vm if vm is not None else float("nan"))
            if vl < best["loss"]:
                best.update(loss=vl, bad=0)
                if steps is None:
                    history.best_epoch = at
                else:
                    history.best_step = at
                if patience is not None:
                    best["state"] = copy.deepcopy(model.state_dict())
            else:
                best["bad"] += 1
            stop = patience is not None and best["bad"] >= patience
        history.seconds.append(time.perf_counter() - start)
        return stop

    bar = None
    try:
        if steps is None:
            x_train, y_train = train
            x_train, y_train = x_train.to(device), y_train.to(device)
            n = len(x_train)
            epoch_iter: Iterable[int] = range(1, epochs + 1)
            if _progress_enabled(progress, epochs * max(1, n // batch_size)):
                from tqdm.auto import tqdm

                epoch_iter = bar = tqdm(epoch_iter, desc="epochs", leave=False)
            for epoch in epoch_iter:
                model.train()
                order = torch.randperm(n, generator=batch_gen).to(device)
                for batch, i in enumerate(range(0, n, batch_size), start=1):
                    idx = order[i:i + batch_size]
                    # index_select: the same rows as x_train[idx], several times faster on a CPU
                    train_step(x_train.index_select(0, idx), y_train.index_select(0, idx),
                               lambda e=epoch, b=batch: f"epoch {e}, batch {b}")
                check_finite(lambda first, e=epoch: f"epoch {e}, batch {first + 1}")
                if sched is not None:
                    sched.step()
                history.epoch.append(epoch)
                stop = record(epoch)
                if bar is not None:
                    bar.set_postfix(loss=f"{history.train_loss[-1]:.4f}")
                if stop:
                    history.stopped_early = True
                    break
        else:
            eval_every = eval_every or max(1, steps // 10)
            if isinstance(train, TokenStream):
                batches = _stream_batches(train.to(device), batch_size, batch_gen)
            else:
                batches = _pair_batches(train[0].to(device), train[1].to(device), batch_size,
                                        batch_gen, device)
            if _progress_enabled(progress, steps):
                from tqdm.auto import tqdm

                bar = tqdm(total=steps, desc="steps", leave=False, mininterval=0.5)
            model.train()
            last = 0
            for step in range(1, steps + 1):
                xb, yb = next(batches)
                train_step(xb, yb, lambda s=step: f"step {s}")
                if bar is not None:
                    bar.update(1)
                if step % eval_every == 0 or step == steps:
                    check_finite(lambda first, s0=last: f"step {s0 + first + 1}")
                    history.step.append(step)
                    stop = record(step)
                    model.train()
                    last = step
                    if bar is not None:
                        shown = {"loss": f"{history.train_loss[-1]:.4f}"}
                        if history.val_loss:
                            shown["val"] = f"{history.val_loss[-1]:.4f}"
                        bar.set_postfix(shown)
                    if stop:
                        history.stopped_early = True
                        break
    finally:
        if bar is not None:
            bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    return history
