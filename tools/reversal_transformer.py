"""Chapter 09's reversing transformer at every learning rate and seed: data/reversal_sweep.json.

    python tools/reversal_transformer.py            (a few minutes on one CPU thread)

A decoder-only dlbook.attention.Transformer (2 layers of 2 heads, 32 wide, learned positions)
learns to reverse 8 random digits (dlbook.attention.reversal_lm_task: 20,000 training strings,
seed 10; 1,000 validation, seed 11; 2,000 test, seed 12), with dlbook.training.fit (Adam,
batches of 64) for STEPS steps, at each learning rate of LRS and each seed of SEEDS. Recorded:
the validation loss and exact-string accuracy of every run; the learning rate with the lowest
mean validation loss is the pick, and only its runs are scored on the test set, once.
Seeded and deterministic on one CPU thread; the chapter retrains seed 0 at the pick and checks
it against this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlbook.attention import (Transformer, TransformerConfig, exact_reversal_accuracy,
                              reversal_lm_task)
from dlbook.training import fit

STEPS, LRS, SEEDS = 300, (0.001, 0.003, 0.01, 0.03), (0, 1, 2)
CONFIG = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / "reversal_sweep.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, val, test = (reversal_lm_task(n, s) for n, s in [(20000, 10), (1000, 11), (2000, 12)])
    runs, models = [], {}
    for lr in LRS:
        for seed in SEEDS:
            start = time.time()
            torch.manual_seed(seed)
            model = Transformer(TransformerConfig(**CONFIG))
            fit(model, train[:2], steps=STEPS, batch_size=64, lr=lr, metric=None, seed=seed,
                device="cpu", progress=False)
            with torch.no_grad():
                val_loss = model(val[0], val[1])[1].item()
            models[lr, seed] = model
            runs.append({"lr": lr, "seed": seed, "val_loss": val_loss,
                         "val_exact": exact_reversal_accuracy(model, val)})
            print(runs[-1], f"({time.time() - start:.0f} s)", flush=True)
    mean_loss = {lr: sum(r["val_loss"] for r in runs if r["lr"] == lr) / len(SEEDS) for lr in LRS}
    best = min(LRS, key=mean_loss.get)
    result = {"steps": STEPS, "lrs": list(LRS), "seeds": list(SEEDS), "config": CONFIG,
              "best_lr": best, "runs": runs,
              "test_exact": {str(s): exact_reversal_accuracy(models[best, s], test)
                             for s in SEEDS}}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
