"""Chapter 14's comparison of GPT-2's block with today's (Llama's), too long for the chapter:
writes data/ch14_block_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/llama_block_sweep.py [--out data/ch14_block_sweep.json]
        [--parts DIR]

The two contenders of dlbook.llama.comparison_models (equal depth, width, heads and parameters)
train on Moby-Dick's characters (dlbook.llama.comparison_streams: the first half of the
held-out tenth validates, the second half tests) with the chapter's recipe (the one of
dlbook.scaling.train_run): AdamW, betas (0.9, 0.99), weight decay 0.1, a linear warm-up over the
first tenth of the steps then cosine decay to a tenth of the peak, gradients clipped at norm 1;
batch 32 of 32 characters, STEPS steps.

Each contender's peak rate, by the rule of chapter 14's scaling sweep: its grid (one that
brackets the pick) is run on seed 0; every rate whose final validation loss is within SHORTLIST
nats of seed 0's best also runs seeds 1 and 2; the rate with the lowest mean validation loss
over the 3 seeds wins (seed 0 alone can be lucky: the Llama block at 8e-3 was best on seed 0
and broke down on seed 1). The test loss of the winner's 3 runs is what the chapter reads.
Seeded: a rerun on the same versions gives the same numbers. (An earlier version trained with
Adam at a constant rate and no warm-up, which GPT-2's block tolerates badly.)

``--parts DIR`` keeps each run's record (DIR/NAME_LR_SEED.json) and reuses it, so an
interrupted sweep resumes; each run is seeded on its own, so a record reused equals a rerun.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook.llama import (
    BLOCK_SWEEP_FILE,
    comparison_models,
    comparison_streams,
)
from dlbook.training import evaluate, fit, warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH, EVAL_EVERY, SEEDS, SHORTLIST = 600, 32, 50, (0, 1, 2), 0.05
# Each first grid, (2e-3, 4e-3, 8e-3) and (1e-3, 2e-3, 4e-3), had seed 0's best on its upper
# edge; the next rate up was added.
GRIDS = {"GPT-2 block": (2e-3, 4e-3, 8e-3, 1.6e-2),
         "Llama block": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)}
RECIPE = ("AdamW betas (0.9, 0.99), weight decay 0.1, warm-up STEPS // 10 then cosine to 0.1 "
          "of the peak, grad_clip 1.0 (dlbook.scaling.train_run's recipe)")


def train_one(name, make, streams, lr, seed) -> dict:
    """One seeded run of contender ``name`` at peak rate ``lr``: its validation curve and
    final test loss."""
    _, train, val, test = streams
    torch.manual_seed(seed)
    model = make()
    start = time.process_time()
    history = fit(
        model, train, val, steps=STEPS, batch_size=BATCH, seed=seed,
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.99), weight_decay=0.1),
        scheduler=warmup_cosine(STEPS // 10, STEPS), grad_clip=1.0,
        eval_every=EVAL_EVERY, progress=False)
    record = {"val": round(history.val_loss[-1], 5), "steps": history.step,
              "val_curve": [round(v, 5) for v in history.val_loss],
              "test": round(evaluate(model, test, metric=None)[0], 5),
              "cpu_seconds": round(time.process_time() - start)}
    print(" ", name, lr, seed, record["val"], flush=True)
    return record


def run(parts, name, make, streams, lr, seed) -> dict:
    path = parts / f"{name.replace(' ', '_')}_{lr:g}_{seed}.json" if parts else None
    if path and path.exists():
        return json.loads(path.read_text())
    record = train_one(name, make, streams, lr, seed)
    if path:
        path.write_text(json.dumps(record) + "\n")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / BLOCK_SWEEP_FILE))
    parser.add_argument("--parts", help="a folder keeping each run's record")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = Path(args.parts) if args.parts else None
    if parts:
        parts.mkdir(parents=True, exist_ok=True)
    streams = comparison_streams()
    results = {}
    for name, make in comparison_models(streams[0].vocab_size).items():
        grid = {lr: run(parts, name, make, streams, lr, SEEDS[0]) for lr in GRIDS[name]}
        best0 = min(r["val"] for r in grid.values())
        shortlist = [lr for lr, r in grid.items() if r["val"] <= best0 + SHORTLIST]
        runs = {lr: [grid[lr]] + [run(parts, name, make, streams, lr, s) for s in SEEDS[1:]]
                for lr in shortlist}
        means = {lr: sum(r["val"] for r in rs) / len(rs) for lr, rs in runs.items()}
        lr = min(shortlist, key=means.get)  # ties: the smaller rate
        runs[lr] = [r if "test" in r else train_one(name, make, streams, lr, s)
                    for r, s in zip(runs[lr], SEEDS)]  # a record kept without its test
        results[name] = {
            "params": make().num_params(),
            "grid": {f"{k:g}": r["val"] for k, r in grid.items()},
            "shortlist_mean_val": {f"{k:g}": round(m, 5) for k, m in means.items()},
            "shortlist_val": {f"{k:g}": [r["val"] for r in rs] for k, rs in runs.items()},
            "lr": lr, "seeds": list(SEEDS),
            "val": [r["val"] for r in runs[lr]],
            "test": [r["test"] for r in runs[lr]],
            "steps": runs[lr][0]["steps"],
            "val_curves": [r["val_curve"] for r in runs[lr]],
        }
        print(name, {k: v for k, v in results[name].items() if k != "val_curves"}, flush=True)
    out = {"command": "DLBOOK_CPU_THREADS=1 python tools/llama_block_sweep.py",
           "steps": STEPS, "batch_size": BATCH, "recipe": RECIPE, "shortlist": SHORTLIST,
           "grids": {k: list(v) for k, v in GRIDS.items()},
           "versions": {"torch": torch.__version__, "python": platform.python_version()},
           "results": results}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
