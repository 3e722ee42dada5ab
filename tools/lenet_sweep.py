"""Chapter 06's LeNet-5 comparison in full, too long for the chapter: writes data/lenet_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/lenet_sweep.py [--out data/lenet_sweep.json]

For each contender of dlbook.lenet_sweep.contenders() (LeNet-5, an MLP of its parameters, an
MLP of its multiply-adds, LeNet-5 on pixels shuffled by one fixed permutation), the book's rule
(dlbook.tuning.tune_then_repeat): one run per learning rate of its grid with seed 0, the rate of
the best validation accuracy kept, then seeds 1 and 2 at that rate; every run 12 epochs
(dlbook.lenet_sweep.EPOCHS), the lowest-validation-loss epoch's weights kept. Recorded per run:
the validation curve, the score that chose, and the test accuracy (the test set chose nothing).
Seeded: a rerun on the same versions gives the same file; the chapter re-measures a sample.

To use two cores: run ``--only NAME --out part.json`` once per contender, in parallel, then
``--merge part1.json part2.json ... --out data/lenet_sweep.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook import lenet_sweep
from dlbook.training import evaluate
from dlbook.tuning import tune_then_repeat

ROOT = Path(__file__).resolve().parents[1]


def run(names) -> dict:
    train, val, test = lenet_sweep.standardised_splits()
    results = {}
    for name in names:
        grid = lenet_sweep.contenders()[name][1]
        start = time.process_time()
        r = tune_then_repeat(
            lambda lr, seed, name=name: lenet_sweep.train_digits(name, lr, seed, (train, val)),
            grid)
        (test_seen,) = lenet_sweep.prepare(name, [test])
        test_acc = [evaluate(m, test_seen)[1] for m in r.models]
        results[name] = {
            "grid": {f"{lr:g}": round(s, 6) for lr, s in r.grid_scores.items()},
            "lr": r.choice, "seeds": r.seeds,
            "val": [round(s, 6) for s in r.scores],
            "test": [round(float(a), 6) for a in test_acc],
            "val_curves": [[round(v, 4) for v in h.val_metric] for h in r.histories],
            "cpu_seconds": round(time.process_time() - start),
        }
        print(f"{name}: lr {r.choice:g}, grid {results[name]['grid']}, test {test_acc}",
              flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / lenet_sweep.SWEEP_FILE))
    parser.add_argument("--only", action="append", help="a contender's name (repeatable)")
    parser.add_argument("--merge", nargs="+", help="part files to join, in contender order")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = list(lenet_sweep.contenders())
    if args.merge:
        results = {}
        for part in args.merge:
            results.update(json.loads(Path(part).read_text(encoding="utf-8"))["results"])
        if sorted(results) != sorted(names):
            raise SystemExit(f"the parts hold {sorted(results)}, not every contender {names}")
        results = {name: results[name] for name in names}
    else:
        unknown = set(args.only or []) - set(names)
        if unknown:
            raise SystemExit(f"unknown contender(s) {sorted(unknown)}; choose from {names}")
        results = run(args.only or names)
    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/lenet_sweep.py",
        "epochs": lenet_sweep.EPOCHS, "batch_size": lenet_sweep.BATCH_SIZE,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cpu_seconds": sum(r["cpu_seconds"] for r in results.values()),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
