"""Chapter 06's MNIST-1D comparison in full, too long for the chapter: writes data/mnist1d_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/mnist1d_sweep.py [--out data/mnist1d_sweep.json]

For each contender (the paper's MLP and CNN) and each condition (normal and shuffled positions),
the book's rule (dlbook.tuning.tune_then_repeat): one run per learning rate of
dlbook.mnist1d.LRS with seed 0, the rate of the best validation accuracy kept, then seeds 1 and
2 at that rate; every run 3,000 Adam steps. The CNN on shuffled signals, still rising at 3,000
steps, is then followed for 12,000 (seed 0). Recorded per run: the validation curve, the
validation accuracy of its final weights (which chose), and their test accuracy (the test set chose
nothing). Then, per seed, the chosen rate re-trained on train and validation together (4,000
signals, the paper's training set; same budget, final weights) and scored on test: "test_refit".
Seeded: a rerun on the same versions gives the same file; the chapter re-measures a sample and
checks it against this file.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook import mnist1d
from dlbook.training import evaluate
from dlbook.tuning import tune_then_repeat

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / mnist1d.SWEEP_FILE))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, val, test, order = mnist1d.splits()
    start = time.process_time()
    results = {}
    for name in mnist1d.CONTENDERS:
        for condition in ("normal", "shuffled"):
            r = tune_then_repeat(
                lambda lr, seed, name=name, condition=condition: mnist1d.train_contender(
                    name, condition, lr, seed, (train, val), order), mnist1d.LRS,
                score=mnist1d.final_val_accuracy)
            keep = mnist1d.positions(condition, order)
            test_acc = [evaluate(m, (test[0][:, keep], test[1]))[1] for m in r.models]
            # the chosen rate re-trained on all 4,000 training signals (the paper's), per seed
            refits = [mnist1d.refit_contender(name, condition, r.choice, seed, (train, val), order)
                      for seed in r.seeds]
            refit_acc = [evaluate(m, (test[0][:, keep], test[1]))[1] for m in refits]
            results[f"{name} {condition}"] = {
                "grid": {f"{lr:g}": round(s, 6) for lr, s in r.grid_scores.items()},
                "lr": r.choice, "seeds": r.seeds,
                "val": [round(s, 6) for s in r.scores],
                "test": [round(float(a), 6) for a in test_acc],
                "test_refit": [round(float(a), 6) for a in refit_acc],
                "val_curve_steps": r.histories[0].step,
                "val_curves": [[round(v, 4) for v in h.val_metric] for h in r.histories],
            }
            print(f"{name} {condition}: lr {r.choice:g}, grid {results[f'{name} {condition}']['grid']}, "
                  f"test {test_acc}, re-fitted on train + val {refit_acc}", flush=True)
    # the one curve still rising at 3,000 steps, followed four times as long (seed 0)
    long = {}
    for key in ("CNN shuffled",):
        name, condition = key.split()
        model, history = mnist1d.train_contender(name, condition, results[key]["lr"], 0,
                                                 (train, val), order, steps=mnist1d.LONG_STEPS)
        keep = mnist1d.positions(condition, order)
        long[key] = {"steps": mnist1d.LONG_STEPS, "lr": results[key]["lr"], "seed": 0,
                     "test": round(float(evaluate(model, (test[0][:, keep], test[1]))[1]), 6),
                     "val_curve_steps": history.step,
                     "val_curve": [round(v, 4) for v in history.val_metric]}
        print(f"{key}, {mnist1d.LONG_STEPS} steps: val {history.val_metric[-1]:.3f}, "
              f"test {long[key]['test']:.3f}", flush=True)
    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/mnist1d_sweep.py",
        "steps": mnist1d.STEPS, "batch_size": mnist1d.BATCH_SIZE, "lrs": list(mnist1d.LRS),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cpu_seconds": round(time.process_time() - start),
        "results": results,
        "long": long,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
