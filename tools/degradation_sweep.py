"""Chapter 07's degradation sweep: 3 networks x 4 learning rates x 3 seeds, 600 SGD steps each.

    nice -n 5 .venv/bin/python tools/degradation_sweep.py   # one torch thread, ~5 CPU minutes

Each network gets its own grid of four learning rates, a factor of about 3 apart, placed so that
its best rate is inside it (the grids overlap at 0.01, 0.03 and 0.1). Writes
data/degradation_sweep.json (training-loss and held-out-error curves, the command and its CPU
time); the chapter re-runs a sample of it and asserts agreement. After a rerun, update the
file's sha256 in dlbook.data.CHECKSUMS and data/README.md.

On a busy machine the networks can run in parallel processes and be merged; the result is the
same file (every run is seeded and uses one thread):

    python tools/degradation_sweep.py --net 0 --part /tmp/deg0.json   # and 1, 2
    python tools/degradation_sweep.py --merge /tmp/deg0.json /tmp/deg1.json /tmp/deg2.json

Does the gap stay when the budget grows? ``--long`` trains the three networks for 3,000 steps
(five times as long) at two of the rates the three grids share, 0.01 and 0.03, seeds 0, 1 and
2, and writes data/degradation_long.json (~11 CPU minutes). One rate at a time, merged:

    python tools/degradation_sweep.py --long
    python tools/degradation_sweep.py --long --rate 0.01 --part /tmp/long001.json  # and 0.03
    python tools/degradation_sweep.py --merge-long /tmp/long001.json /tmp/long003.json
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from dlbook.data import sha256_of
from dlbook.degradation import (BATCH_SIZE, EVAL_EVERY, N_PROBE, STEPS, networks,
                                small_digits, training_curve)

LRS = {"plain, 8 layers": [0.01, 0.03, 0.1, 0.3],
       "plain, 20 layers": [0.003, 0.01, 0.03, 0.1],
       "ResNet, 20 layers": [0.01, 0.03, 0.1, 0.3]}
SEEDS = [0, 1, 2]
OUT = Path(__file__).resolve().parents[1] / "data" / "degradation_sweep.json"
LONG_OUT, LONG_STEPS, LONG_LRS = OUT.with_name("degradation_long.json"), 3000, [0.01, 0.03]


def rounded(a):
    return [None if v != v else round(float(v), 6) for v in a]  # nan -> null


def run(names):
    torch.set_num_threads(1)
    start, data = time.process_time(), small_digits()
    out = {"lrs": {}, "train_loss": {}, "val_error": {}}
    for name in names:
        config = networks()[name]
        out["lrs"][name], out["train_loss"][name], out["val_error"][name] = LRS[name], [], []
        for lr in LRS[name]:
            runs = [training_curve(config, lr, seed, data) for seed in SEEDS]
            out["train_loss"][name].append([rounded(r["train_loss"]) for r in runs])
            out["val_error"][name].append([rounded(r["val_error"]) for r in runs])
            print(name, lr, [round(float(r["train_loss"][-1]), 4) for r in runs],
                  [round(float(r["val_error"][-1]), 4) for r in runs],
                  f"{time.process_time() - start:.0f} s", flush=True)
    out["cpu_seconds"] = time.process_time() - start
    out["n_train"], out["n_val"] = len(data[0][0]), len(data[1][0])
    return out


def write(parts):
    names = list(networks())
    merged = {"command": "python tools/degradation_sweep.py", "seeds": SEEDS, "steps": STEPS,
              "eval_every": EVAL_EVERY, "batch_size": BATCH_SIZE,
              "n_train": parts[0]["n_train"], "n_val": parts[0]["n_val"], "n_probe": N_PROBE,
              "torch": torch.__version__,
              "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts))}
    for key in ("lrs", "train_loss", "val_error"):
        found = {k: v for p in parts for k, v in p[key].items()}
        merged[key] = {name: found[name] for name in names}
    OUT.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"wrote {OUT} (sha256 {sha256_of(OUT)})", file=sys.stderr)


def run_long(lr):
    """The 3,000-step runs of the three networks at one rate: a part for :func:`write_long`."""
    torch.set_num_threads(1)
    start, data = time.process_time(), small_digits()
    out = {"lr": lr, "train_loss": {}, "val_error": {}}
    for name, config in networks().items():
        runs = [training_curve(config, lr, seed, data, steps=LONG_STEPS) for seed in SEEDS]
        out["train_loss"][name] = [rounded(r["train_loss"]) for r in runs]
        out["val_error"][name] = [rounded(r["val_error"]) for r in runs]
        print(lr, name, [round(float(r["train_loss"][-1]), 5) for r in runs],
              f"{time.process_time() - start:.0f} s", flush=True)
    out["cpu_seconds"] = time.process_time() - start
    return out


def write_long(parts):
    """Merge one part per rate into data/degradation_long.json: curves indexed (lr, seed, record)."""
    parts = sorted(parts, key=lambda p: p["lr"])
    if [p["lr"] for p in parts] != LONG_LRS:
        raise SystemExit(f"need one part per rate {LONG_LRS}, got {[p['lr'] for p in parts]}")
    out = {"command": "python tools/degradation_sweep.py --long", "seeds": SEEDS,
           "steps": LONG_STEPS, "lrs": LONG_LRS, "eval_every": EVAL_EVERY,
           "batch_size": BATCH_SIZE, "torch": torch.__version__,
           "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts))}
    for key in ("train_loss", "val_error"):
        out[key] = {name: [p[key][name] for p in parts] for name in networks()}
    LONG_OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {LONG_OUT} (sha256 {sha256_of(LONG_OUT)})", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", type=int, help="run only this network (0, 1 or 2)")
    parser.add_argument("--part", help="with --net: where to write its part")
    parser.add_argument("--merge", nargs="+", help="merge the parts into the data file")
    parser.add_argument("--long", action="store_true",
                        help="the 3,000-step runs at rates 0.01 and 0.03 "
                             "(data/degradation_long.json)")
    parser.add_argument("--rate", type=float, help="with --long and --part: only this rate")
    parser.add_argument("--merge-long", nargs="+", help="merge --long parts into the data file")
    args = parser.parse_args()
    if args.long and args.rate is not None:
        if not args.part or args.rate not in LONG_LRS:
            parser.error(f"--rate needs --part and one of {LONG_LRS}")
        Path(args.part).write_text(json.dumps(run_long(args.rate)))
    elif args.long:
        write_long([run_long(lr) for lr in LONG_LRS])
    elif args.merge_long:
        write_long([json.loads(Path(p).read_text()) for p in args.merge_long])
    elif args.merge:
        write([json.loads(Path(p).read_text()) for p in args.merge])
    elif args.net is not None:
        if not args.part:
            parser.error("--net needs --part")
        Path(args.part).write_text(json.dumps(run([list(networks())[args.net]])))
    else:
        write([run(list(networks()))])


if __name__ == "__main__":
    main()
