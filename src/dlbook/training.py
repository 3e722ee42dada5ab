"""One small training loop that every chapter shares.

Small data sets live in memory as tensors, so :func:`fit` slices mini-batches straight out of them
(a random permutation per epoch) instead of going through a per-sample ``DataLoader``. That is
simpler, not much faster. On MNIST-5k, one CPU thread, it took 0.88 of a ``DataLoader`` loop's
time and 1.14 of a hand-written loop's (which checks and records nothing): medians of 3 runs of
``python tools/bench_fit.py``, which measures all three on your machine.

``fit`` checks its input before the first step (empty data, lengths, batch size), and stops with an
error that names the epoch and batch as soon as the loss is NaN or infinite.
"""
from __future__ import annotations

import copy
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
    """What :func:`fit` records: one entry per epoch (``epoch`` counts from 1)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_metric: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def last(self, key: str) -> float:
        return getattr(self, key)[-1]

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def _progress_enabled(progress: bool | None, total: int) -> bool:
    if progress is not None:
        return progress
    # Builds and tests set DLBOOK_PROGRESS=0: a progress widget is noise on a static page.
    return os.environ.get("DLBOOK_PROGRESS", "1") != "0" and total >= 20


@torch.no_grad()
def evaluate(model: nn.Module, data: Tensors, loss_fn: Callable = F.cross_entropy,
             metric: Callable | None = accuracy, batch_size: int = 2048) -> tuple[float, float | None]:
    """Mean loss (and metric) of ``model`` on ``data`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    x, y = data
    device = next(model.parameters()).device
    outputs = []
    for i in range(0, len(x), batch_size):
        outputs.append(model(x[i:i + batch_size].to(device)))
    out = torch.cat(outputs)
    y = y.to(device)
    loss = loss_fn(out, y).item()
    value = metric(out, y) if metric is not None else None
    model.train(was_training)
    return loss, value


def _check_fit_arguments(train, val, epochs, batch_size, patience) -> None:
    """Bad input fails here, before any training, with a message that says what to change."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number, got {batch_size!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive whole number, got {epochs!r}")
    if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 1):
        raise ValueError(f"patience must be a positive whole number or None, got {patience!r}")
    if patience is not None and val is None:
        raise ValueError("early stopping (patience) watches the validation loss: pass val=(x, y)")
    for name, data in (("train", train), ("val", val)):
        if data is None:
            continue
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"{name} must be a pair (inputs, targets) of tensors")
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"{name} inputs and targets differ in length: {len(x)} vs {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{name} data is empty: there is nothing to "
                             + ("train on" if name == "train" else "validate on"))


def _raise_not_finite(value: float, epoch: int, batch: int, optimizer) -> None:
    lrs = sorted({group.get("lr") for group in optimizer.param_groups if "lr" in group})
    lr = f" (learning rate {lrs[0]:g})" if len(lrs) == 1 and lrs[0] is not None else ""
    raise FloatingPointError(
        f"the training loss is {value} at epoch {epoch}, batch {batch}: training has diverged"
        f"{lr}. Try a smaller learning rate (or gradient clipping); check the data for NaNs.")


def fit(model: nn.Module, train: Tensors, val: Tensors | None = None, *, epochs: int = 10,
        batch_size: int = 64, lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | Callable[[Iterable], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
        loss_fn: Callable = F.cross_entropy, metric: Callable | None = accuracy,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        patience: int | None = None, seed: int = 0, device: str | torch.device | None = None,
        progress: bool | None = None) -> History:
    """Train ``model`` with mini-batch gradient descent and return its :class:`History`.

    - ``train``/``val``: ``(inputs, targets)`` tensors, kept in memory.
    - ``optimizer``: an optimizer, or a factory ``params -> optimizer`` (default: Adam with ``lr``).
    - ``scheduler``: a factory ``optimizer -> lr scheduler``, stepped once per epoch.
    - ``transform``: applied to each training batch (data augmentation), never to validation.
    - ``patience``: early stopping: stop after this many epochs without a better validation loss
      and restore the best weights.
    - ``seed``: the batch order (and anything random inside the model) is reproducible.
    The model is moved to ``device`` (CUDA when available) and left in eval mode.
    """
    _check_fit_arguments(train, val, epochs, batch_size, patience)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    seed_everything(seed)
    batch_gen = torch.Generator().manual_seed(seed)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    elif not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer(model.parameters())
    sched = scheduler(optimizer) if scheduler is not None else None
    x_train, y_train = train
    x_train, y_train = x_train.to(device), y_train.to(device)
    n = len(x_train)
    history = History()
    best_loss, best_state, bad_epochs = float("inf"), None, 0

    epoch_iter: Iterable[int] = range(1, epochs + 1)
    if _progress_enabled(progress, epochs * max(1, n // batch_size)):
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc="epochs", leave=False)
    start = time.perf_counter()
    for epoch in epoch_iter:
        model.train()
        order = torch.randperm(n, generator=batch_gen).to(device)
        # Running sums stay on the device: no host sync per batch on a GPU.
        total_loss = torch.zeros((), device=device)
        total_metric = torch.zeros((), device=device)
        batch_losses = []
        for batch, i in enumerate(range(0, n, batch_size), start=1):
            idx = order[i:i + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if transform is not None:
                xb = transform(xb)
            out = model(xb)
            loss = loss_fn(out, yb)
            if device.type == "cpu" and not torch.isfinite(loss):  # free on the CPU: check now
                _raise_not_finite(loss.item(), epoch, batch, optimizer)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.detach())
            total_loss += loss.detach() * len(idx)
            if metric is accuracy:
                total_metric += correct_count(out.detach(), yb)
            elif metric is not None:
                total_metric += torch.as_tensor(metric(out.detach(), yb), device=device) * len(idx)
        if device.type != "cpu":  # one sync per epoch: find the first bad batch, if any
            finite = torch.isfinite(torch.stack(batch_losses))
            if not finite.all():
                first = int((~finite).nonzero()[0])
                _raise_not_finite(batch_losses[first].item(), epoch, first + 1, optimizer)
        if sched is not None:
            sched.step()
        history.epoch.append(epoch)
        history.train_loss.append(total_loss.item() / n)
        history.train_metric.append(total_metric.item() / n if metric is not None else float("nan"))
        if val is not None:
            vl, vm = evaluate(model, val, loss_fn, metric)
            if not np.isfinite(vl):
                raise FloatingPointError(
                    f"the validation loss is {vl} after epoch {epoch}: the weights have diverged. "
                    "Try a smaller learning rate.")
            history.val_loss.append(vl)
            history.val_metric.append(vm if vm is not None else float("nan"))
            if vl < best_loss:
                best_loss, bad_epochs, history.best_epoch = vl, 0, epoch
                if patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
        history.seconds.append(time.perf_counter() - start)
        if hasattr(epoch_iter, "set_postfix"):
            epoch_iter.set_postfix(loss=f"{history.train_loss[-1]:.4f}")
        if patience is not None and val is not None and bad_epochs >= patience:
            history.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
