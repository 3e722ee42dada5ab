"""Chapter 07's shortcut-survival measure after a short and after full training runs.

    nice -n 5 .venv/bin/python tools/shortcut_survival.py   # one torch thread, ~1 CPU minute

The chapter measures dlbook.degradation.shortcut_survival on a ResNet-20 after the first 100
steps of its run (rate 0.03, seed 0), to stay within its budget. This script measures it after
those 100 steps, after the whole 600-step run, and after the whole 3,000-step run at the same
rate, on the same 800 training digits, and writes data/shortcut_survival.json; the chapter
checks its live 100-step value against the stored one and compares it with the longer runs.
After a rerun, update the file's sha256 in dlbook.data.CHECKSUMS and data/README.md.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlbook import degradation
from dlbook.data import sha256_of

LR, SEED, N_DIGITS = 0.03, 0, 800
RUNS = [(600, 100), (600, 600), (3000, 3000)]  # (schedule's steps, steps taken)
OUT = Path(__file__).resolve().parents[1] / "data" / "shortcut_survival.json"


def main():
    torch.set_num_threads(1)
    start = time.process_time()
    digits7 = degradation.small_digits()
    config = degradation.networks()["ResNet, 20 layers"]
    shares = {}
    for steps, stop in RUNS:
        _, model = degradation.training_curve(config, LR, SEED, digits7, steps=steps, stop=stop,
                                              return_model=True)
        torch.manual_seed(0)  # as the chapter's cell
        share = degradation.shortcut_survival(model, digits7[0][0][:N_DIGITS])
        shares[f"{stop} of {steps}"] = np.round(share, 6).tolist()
        print(stop, steps, share.round(3), f"{time.process_time() - start:.0f} s", flush=True)
    out = {"command": "python tools/shortcut_survival.py", "lr": LR, "seed": SEED,
           "digits": N_DIGITS, "torch": torch.__version__,
           "cpu_seconds": round(time.process_time() - start), "survival": shares}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} (sha256 {sha256_of(OUT)})", file=sys.stderr)


if __name__ == "__main__":
    main()
