"""Chapter 07's degradation sweep: 3 networks x 3 learning rates x 3 seeds, 600 SGD steps each.

    nice -n 5 .venv/bin/python tools/degradation_sweep.py   # one torch thread, a few CPU minutes

Writes data/degradation_sweep.json (the training-loss curves, the command and its CPU time); the
chapter re-runs one seed of it and asserts agreement. After a rerun, update the file's sha256 in
dlbook.data.CHECKSUMS and data/README.md.
"""
import json
import sys
import time
from pathlib import Path

import torch

from dlbook.data import sha256_of
from dlbook.degradation import EVAL_EVERY, STEPS, networks, small_digits, training_curve

LRS, SEEDS = [0.01, 0.03, 0.1], [0, 1, 2]
OUT = Path(__file__).resolve().parents[1] / "data" / "degradation_sweep.json"


def main():
    torch.set_num_threads(1)
    start, data = time.process_time(), small_digits()
    curves = {}
    for name, config in networks().items():
        curves[name] = [[training_curve(config, lr, seed, data).round(6).tolist()
                         for seed in SEEDS] for lr in LRS]
        print(name, [[c[-1] for c in row] for row in curves[name]], flush=True)
    out = {"command": "python tools/degradation_sweep.py", "lrs": LRS, "seeds": SEEDS,
           "steps": STEPS, "eval_every": EVAL_EVERY, "torch": torch.__version__,
           "cpu_seconds": round(time.process_time() - start), "curves": curves}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} (sha256 {sha256_of(OUT)})", file=sys.stderr)


if __name__ == "__main__":
    main()
