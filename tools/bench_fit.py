"""How fast is dlbook's `fit` against the two usual ways to write a training loop? (make bench-fit)

The same model (MLP 784-128-10), data (the 4,000 MNIST-5k training digits), batch size, optimizer
and epochs, trained three ways, each repeated; prints the median seconds and the ratios:
- `fit`: batches sliced out of in-memory tensors with a random permutation;
- a `DataLoader` over a `TensorDataset` (shuffle=True), the textbook loop;
- a hand-written loop that slices tensors like `fit` but records nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlbook.data import mnist5k_tensors
from dlbook.models import MLP
from dlbook.training import fit


def run_fit(x, y, epochs, batch_size):
    model = MLP()
    fit(model, (x, y), epochs=epochs, batch_size=batch_size, lr=1e-3, progress=False)


def run_dataloader(x, y, epochs, batch_size):
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def run_by_hand(x, y, epochs, batch_size):
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = mnist5k_tensors("train")
    loops = {"fit": run_fit, "DataLoader loop": run_dataloader, "hand-written loop": run_by_hand}
    times = {name: [] for name in loops}
    for _ in range(args.repeats):  # interleaved, so a noisy moment hits every loop alike
        for name, loop in loops.items():
            torch.manual_seed(0)
            start = time.perf_counter()
            loop(x, y, args.epochs, args.batch_size)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["fit"])
    print(f"{args.epochs} epochs, batch {args.batch_size}, {args.threads} thread(s), "
          f"median of {args.repeats}:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:18s} {med:6.2f} s   fit is {med / base:4.2f}x as fast")


if __name__ == "__main__":
    main()
