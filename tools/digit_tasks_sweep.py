"""Chapter 09's digit tasks, transformer against MLP and a linear map, every rate and seed,
with exact-string accuracy against steps: data/digit_tasks_sweep.json.

    python tools/digit_tasks_sweep.py            (about 20 minutes on one CPU thread)

Two tasks on 8 random digits (dlbook.attention: 20,000 training strings, seed 10; 1,000
validation, seed 11; 2,000 test, seed 12): reversal_lm_task, a fixed permutation, and
sorting_lm_task, where the input digit each answer position needs depends on the digits.
Three contenders, each at every learning rate of its grid (GRIDS, widened by one rate, a factor of
about 3, while the pick is on an edge), with dlbook.training.fit (Adam,
batches of 64) for STEPS[task] steps: a decoder-only dlbook.attention.Transformer (2 layers of
2 heads, 32 wide, learned positions) that writes the answer one digit at a time, and the simple
baseline dlbook.attention.DigitsMLP (hidden width MLP_HIDDEN: about as many parameters) that
reads the 8 digits flattened and writes all 8 at once, and the simplest baseline
dlbook.attention.DigitsLinear, one linear map from the 80 one-hot inputs to the 80 outputs.
Recorded: the validation loss and exact-string accuracy of every run, and its validation
exact-string accuracy every RECORD_EVERY steps (a probe in fit's batch transform that decodes the
validation strings without touching the weights, the batches or the random state, so the run is
the same as a plain fit), to show where each run has settled. For each task and contender
the learning rate with the lowest validation loss on seed 0 is the pick; seeds 1 and 2 run at it, and only those three runs
are scored on the test set, once.
Seeded and deterministic on one CPU thread; the chapter retrains a sample and checks it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlbook.attention import (DigitsLinear, DigitsMLP, Transformer, TransformerConfig, exact_answer_accuracy,
                              reversal_lm_task, sorting_lm_task)
from dlbook.training import fit

STEPS, RECORD_EVERY = {"reverse": 1500, "sort": 3000}, 250
SEEDS, MLP_HIDDEN = (0, 1, 2), 96
GRIDS = {"transformer": (0.003, 0.01, 0.03), "MLP": (0.001, 0.003, 0.01),
         "linear": (0.003, 0.01, 0.03)}
CONFIG = dict(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=32)
TASKS = {"reverse": reversal_lm_task, "sort": sorting_lm_task}
MODELS = {"transformer": lambda: Transformer(TransformerConfig(**CONFIG)),
          "MLP": lambda: DigitsMLP(hidden=MLP_HIDDEN), "linear": DigitsLinear}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data"
                        / "digit_tasks_sweep.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"steps": STEPS, "record_every": RECORD_EVERY, "seeds": list(SEEDS), "config": CONFIG,
              "mlp_hidden": MLP_HIDDEN, "results": {}}
    for task_name, make_task in TASKS.items():
        train_set, val, test = (make_task(n, s) for n, s in [(20000, 10), (1000, 11), (2000, 12)])
        for model_name, make_model in MODELS.items():
            runs, models, lrs = [], {}, list(GRIDS[model_name])

            def train(lr, seed):
                start = time.time()
                torch.manual_seed(seed)
                model = make_model()
                curve, calls = [], [0]

                def probe(xb):  # before each step: after every RECORD_EVERY steps, score
                    if calls[0] and calls[0] % RECORD_EVERY == 0:
                        curve.append([calls[0], exact_answer_accuracy(model, val)])
                        model.train()
                    calls[0] += 1
                    return xb

                fit(model, train_set[:2], steps=STEPS[task_name], batch_size=64, lr=lr,
                    metric=None, seed=seed, device="cpu", progress=False, transform=probe)
                with torch.no_grad():
                    val_loss = model(val[0], val[1])[1].item()
                models[lr, seed] = model
                runs.append({"lr": lr, "seed": seed, "val_loss": val_loss,
                             "val_exact": exact_answer_accuracy(model, val)})
                runs[-1]["curve"] = curve + [[STEPS[task_name], runs[-1]["val_exact"]]]
                print(task_name, model_name, runs[-1], f"({time.time() - start:.0f} s)",
                      flush=True)

            while True:  # the rate, on seed 0
                for lr in lrs:
                    if (lr, SEEDS[0]) not in models:
                        train(lr, SEEDS[0])
                loss = {r["lr"]: r["val_loss"] for r in runs}
                best = min(lrs, key=loss.get)
                if best == lrs[0]:
                    lrs.insert(0, float(f"{lrs[0] / 3.3:.1g}"))
                elif best == lrs[-1]:
                    lrs.append(float(f"{lrs[-1] * 3.3:.1g}"))
                else:
                    break
            for seed in SEEDS[1:]:
                train(best, seed)
            result["results"][f"{task_name}/{model_name}"] = {
                "parameters": sum(p.numel() for p in models[best, 0].parameters()),
                "lrs": lrs, "best_lr": best, "runs": runs,
                "test_exact": {str(s): exact_answer_accuracy(models[best, s], test)
                               for s in SEEDS}}
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
