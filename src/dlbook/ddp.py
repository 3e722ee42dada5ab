"""Data-parallel training with ``torch.distributed``, small enough to run inside a chapter.

Each of ``world_size`` processes holds a full copy of the model and sees its own slice of every
batch. ``DistributedDataParallel`` averages the gradients across processes (an all-reduce)
during ``backward``, so every copy takes the same step and the copies never drift apart. With
the mean loss, the average of the half-batch gradients is the full-batch gradient:

    g = (1/N) sum_n grad l_n = (1/2) [ (2/N) sum_{n in half 1} grad l_n + (2/N) sum_{n in half 2} ... ]

The worker lives in this module, not in a notebook cell: ``mp.spawn`` starts fresh Python
processes that import the worker by name, and a function defined in ``__main__`` of a notebook
cannot be found there (``Can't get attribute ... on <module '__main__'>``).

How the processes start (``DDPConfig.start_method``): ``"spawn"`` starts fresh interpreters, as
``torchrun`` does and as macOS and Windows must; each imports torch again, and building
``DistributedDataParallel`` imports ``torch._dynamo`` (together 5-15 s on a 2-core machine).
``"fork"`` copies the running process, imports and all, and starts in well under a second; it
exists only on Linux (Colab included). The default, ``"auto"``, is fork on Linux and spawn
elsewhere. Each worker runs on one thread, so a forked child never enters the parent's OpenMP
thread pool.

    >>> result = run_ddp(DDPConfig(steps=50))       # 2 processes, gloo, 127.0.0.1
    >>> result.weights[0], result.weights[1]         # each rank's final state_dict
    >>> single = train_single(DDPConfig(steps=50))   # one process, the full batch
    >>> accumulated = train_single(DDPConfig(steps=50), micro_batches=2)  # one process, halves

The task is one the network can learn exactly: the targets are the outputs of a *teacher*, a
network of the student's own shape with other random weights, so the loss falls by orders of
magnitude and a wrong gradient shows. Gradient accumulation is the one-device version of the
same sum: ``micro_batches`` backward passes on slices, each loss divided by their number, add up
the same full-batch gradient before a single step.
"""
from __future__ import annotations

import importlib
import os
import socket
import sys
from dataclasses import dataclass

import torch
from torch import nn

# fork copies the parent, imports and all, so a worker starts in milliseconds; it is safe on
# Linux only (macOS's system libraries are not fork-safe, Windows has no fork)
FORK_IS_SAFE = sys.platform.startswith("linux")


@dataclass(frozen=True)
class DDPConfig:
    steps: int = 50
    world_size: int = 2
    batch_size: int = 64  # the global batch; each rank takes batch_size / world_size
    n_in: int = 8
    hidden: int = 32
    lr: float = 0.2
    seed: int = 0
    start_method: str = "auto"  # "fork", "spawn", or "auto": fork on Linux, spawn elsewhere

    def __post_init__(self):
        if self.start_method not in ("auto", "fork", "spawn"):
            raise ValueError(f"start_method is 'auto', 'fork' or 'spawn', got {self.start_method!r}")
        if self.start_method == "fork" and not FORK_IS_SAFE:
            raise ValueError(f"start_method='fork' is for Linux only (this is {sys.platform}): "
                             "use 'spawn' or 'auto'")
        if self.world_size < 1 or self.batch_size % self.world_size:
            raise ValueError(f"batch_size {self.batch_size} must split evenly over "
                             f"world_size {self.world_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")


PRESETS = {"tiny": DDPConfig(steps=10), "chapter": DDPConfig(steps=50)}


@dataclass
class DDPResult:
    weights: list[dict]  # one state_dict per rank, on the CPU
    losses: list[float]  # rank 0's loss per step (on its half of the batch)
    rank_losses: list[list[float]] | None = None  # every rank's loss per step, rank order


def make_model(config: DDPConfig) -> nn.Module:
    torch.manual_seed(config.seed)  # every rank builds the same initial weights
    return nn.Sequential(nn.Linear(config.n_in, config.hidden), nn.Tanh(),
                         nn.Linear(config.hidden, 1))


def make_batches(config: DDPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(steps, B, n_in)`` inputs and ``(steps, B, 1)`` targets: a teacher network's outputs,
    which a student of the same shape can learn exactly."""
    g = torch.Generator().manual_seed(config.seed + 1)
    x = torch.randn(config.steps, config.batch_size, config.n_in, generator=g)
    teacher = make_model(DDPConfig(n_in=config.n_in, hidden=config.hidden,
                                   seed=config.seed + 1000))
    with torch.no_grad():
        y = 3 * teacher(x)  # (steps, B, 1), scaled up: targets of spread about 1
    return x, y


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float,
           micro_batches: int = 1) -> list[float]:
    # Plain SGD written out: torch.optim's first step imports torch._dynamo (about 2.5 s), which
    # every freshly spawned worker would pay again.
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for xb, yb in zip(x, y):  # (B, n_in), (B, 1)
        for p in params:
            p.grad = None
        total = 0.0
        for xm, ym in zip(xb.chunk(micro_batches), yb.chunk(micro_batches)):
            loss = nn.functional.mse_loss(model(xm), ym) / micro_batches
            loss.backward()  # adds into .grad; under DDP also all-reduced (averaged) here
            total += loss.item()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        losses.append(total)
    return losses


def worker(rank: int, config: DDPConfig, port: int, queue) -> None:
    """One process of the group: train on this rank's slice of every batch, report weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=config.world_size)
    try:
        model = DistributedDataParallel(make_model(config))
        x, y = make_batches(config)
        per_rank = config.batch_size // config.world_size
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        losses = _train(model, x[:, mine], y[:, mine], config.lr)
        # numpy arrays travel by plain pickling; torch tensors would go through shared memory
        # that disappears when this process exits, before the parent reads them
        weights = {k: v.detach().numpy().copy() for k, v in model.module.state_dict().items()}
        queue.put((rank, weights, losses))
    finally:
        dist.destroy_process_group()


def resolved_start_method(config: DDPConfig) -> str:
    """The start method ``run_ddp`` uses for ``config``: ``"fork"`` or ``"spawn"``."""
    if config.start_method != "auto":
        return config.start_method
    return "fork" if FORK_IS_SAFE else "spawn"


def run_ddp(config: DDPConfig = DDPConfig()) -> DDPResult:
    """Train with ``config.world_size`` processes (gloo on 127.0.0.1, a free port) and return
    every rank's final weights."""
    import torch.multiprocessing as mp

    method = resolved_start_method(config)
    if method == "fork":  # DistributedDataParallel imports it: once here, not in every child
        importlib.import_module("torch._dynamo")
    queue = mp.get_context(method).SimpleQueue()
    mp.start_processes(worker, args=(config, free_port(), queue), nprocs=config.world_size,
                       join=True, start_method=method)
    results = sorted((queue.get() for _ in range(config.world_size)), key=lambda r: r[0])
    weights = [{k: torch.from_numpy(v) for k, v in r[1].items()} for r in results]
    return DDPResult(weights=weights, losses=results[0][2], rank_losses=[r[2] for r in results])


def train_single(config: DDPConfig = DDPConfig(), micro_batches: int = 1,
                 losses: list | None = None) -> dict:
    """The same training in one process on the full batch: its final state_dict.

    ``micro_batches > 1``: gradient accumulation, each batch's gradient summed over that many
    slices before the step. ``losses``: a list that receives the full-batch loss of each step.
    """
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) \
            or micro_batches < 1 or config.batch_size % micro_batches:
        raise ValueError(f"micro_batches must be a whole number >= 1 that divides the batch of "
                         f"{config.batch_size}, got {micro_batches!r}")
    model = make_model(config)
    x, y = make_batches(config)
    curve = _train(model, x, y, config.lr, micro_batches)
    if losses is not None:
        losses.extend(curve)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_difference(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        raise ValueError(f"the state_dicts hold different tensors: {sorted(a)} vs {sorted(b)}")
    return max((a[k] - b[k]).abs().max().item() for k in a)
