"""Chapter 07's transfer learning: each contender's learning rate, chosen on validation.

    nice -n 5 .venv/bin/python tools/transfer_tuning.py   # one torch thread, ~10 CPU seconds

Trains chapter 07's network on the digits 0-4 as the chapter does (the rate and epochs that
data/vgg_sweep.json picks, seed 0), then, for every contender of dlbook.transfer (fine-tuned,
from scratch, linear probe), every rate of LRS and every tuning seed, trains on 15 digits 5-9
and scores the validation loss on another 15 (dlbook.transfer.validation_losses). Writes
data/transfer_tuning.json; the chapter picks each contender's rate from it, re-measures one
entry, and trains the picks on its 16 test seeds live. After a rerun, update the file's sha256
in dlbook.data.CHECKSUMS and data/README.md.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlbook import digit_vgg, transfer
from dlbook.data import sha256_of
from dlbook.notebook import setup_chapter

LRS, TUNE_SEEDS = [3e-4, 1e-3, 3e-3], [0, 1, 2, 3]
OUT = Path(__file__).resolve().parents[1] / "data" / transfer.TUNING_FILE


def main():
    setup_chapter(seed=0)  # as the chapter: one thread, the same seeding
    torch.set_num_threads(1)
    start = time.process_time()
    old, new, (mean, std) = digit_vgg.digit_tasks()
    grid = digit_vgg.load_sweep()
    loss = np.array(grid["val_loss"]).mean(axis=2)
    e, k = np.unravel_index(loss.argmin(), loss.shape)
    base, _ = digit_vgg.train_vgg(old, grid["lrs"][k], grid["epochs"][e], 0, mean, std)
    val_loss = {}
    for how in transfer.CONTENDERS:
        v = transfer.validation_losses(how, base, new, LRS, TUNE_SEEDS, mean, std)
        val_loss[how] = np.round(v, 6).tolist()
        print(how, v.mean(axis=1).round(4), f"{time.process_time() - start:.0f} s", flush=True)
    out = {"command": "python tools/transfer_tuning.py", "lrs": LRS, "tune_seeds": TUNE_SEEDS,
           "per_class": 3, "epochs": transfer.EPOCHS, "batch_size": transfer.BATCH_SIZE,
           "torch": torch.__version__, "cpu_seconds": round(time.process_time() - start),
           "val_loss": val_loss}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} (sha256 {sha256_of(OUT)})", file=sys.stderr)


if __name__ == "__main__":
    main()
