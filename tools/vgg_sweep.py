"""Chapter 07's VGG on the digits 0-4: its learning rate chosen on validation, 3 seeds.

    nice -n 5 .venv/bin/python tools/vgg_sweep.py   # one torch thread, about a CPU minute

Writes data/vgg_sweep.json (the kept epoch's validation loss and accuracy of every run, the
command and its CPU time); the chapter picks the setting of lowest mean validation loss, trains
it with seed 0 and asserts that it reproduces the stored run. After a rerun, update the file's
sha256 in dlbook.data.CHECKSUMS and data/README.md.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlbook.data import sha256_of
from dlbook.digit_vgg import BATCH_SIZE, digit_tasks, train_vgg

LRS, EPOCHS, SEEDS = [1e-3, 3e-3, 1e-2], [8], [0, 1, 2]
OUT = Path(__file__).resolve().parents[1] / "data" / "vgg_sweep.json"


def main():
    torch.set_num_threads(1)
    start = time.process_time()
    old, _, (mean, std) = digit_tasks()
    loss, acc = [], []
    for epochs in EPOCHS:
        loss.append([]), acc.append([])
        for lr in LRS:
            runs = []
            for seed in SEEDS:
                _, h = train_vgg(old, lr, epochs, seed, mean, std)
                best = int(np.argmin(h.val_loss))
                runs.append((round(h.val_loss[best], 6), round(h.val_metric[best], 6)))
            loss[-1].append([r[0] for r in runs])
            acc[-1].append([r[1] for r in runs])
            print(epochs, lr, runs, f"{time.process_time() - start:.0f} s", flush=True)
    out = {"command": "python tools/vgg_sweep.py", "lrs": LRS, "epochs": EPOCHS,
           "seeds": SEEDS, "batch_size": BATCH_SIZE, "torch": torch.__version__,
           "cpu_seconds": round(time.process_time() - start),
           "val_loss": loss, "val_acc": acc}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} (sha256 {sha256_of(OUT)})", file=sys.stderr)


if __name__ == "__main__":
    main()
