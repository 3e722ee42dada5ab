"""Learning curves of chapter 09's seq2seq bottleneck: data/seq2seq_curves.json.

    nice -n 5 python tools/seq2seq_curves.py   (about 75 CPU seconds on one thread)

Reversing strings of 2 to 10 digits (dlbook.attention.digit_reversal: 8,000 training strings,
seed 0; 1,000 validation, seed 1; 1,000 test, seed 2) with dlbook.attention.EncoderDecoder,
32 units, with and without attention, each at its own Adam learning rate: the one
tools/seq2seq_sizes.py picked for it on validation from a grid that brackets the pick (read
from data/seq2seq_sizes.json, which must exist). Seeds 0, 1 and 2, batches of 64, gradients
clipped at norm 1, STEPS steps. Every RECORD steps the accuracy per output digit is recorded
for each source length, on the validation strings and on the first TRAIN_PROBE training
strings (the strings the model was fitted to: memorising shows as a gap between the two).
The test set is scored once, at the end. The chapter retrains a sample and checks it against
this file. Seeded and deterministic on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlbook.attention import EncoderDecoder, accuracy_by_length, digit_reversal, fit_curve

STEPS, RECORD, SEEDS, MAX_LEN, VOCAB, TRAIN_PROBE = 2000, 100, (0, 1, 2), 10, 12, 2000
MODELS = {"fixed context": (False, 32), "attention": (True, 32)}  # (attention, hidden units)


def reversal_splits():
    """The digit-reversal splits both seq2seq sweeps train, choose and score on."""
    return (digit_reversal(8000, seed=0)[:2], digit_reversal(1000, seed=1),
            digit_reversal(1000, seed=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = Path(__file__).resolve().parents[1] / "data"
    parser.add_argument("--out", type=Path, default=data / "seq2seq_curves.json")
    parser.add_argument("--sizes", type=Path, default=data / "seq2seq_sizes.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start_all = time.process_time()
    train, val, test = reversal_splits()
    probe = (train[0][:TRAIN_PROBE], train[1][:TRAIN_PROBE],
             (train[0][:TRAIN_PROBE] != 0).sum(1))  # digits are ids >= 2
    sizes = {(r["model"], r["hidden"]): r for r in json.loads(args.sizes.read_text())["runs"]}
    record_at = list(range(RECORD, STEPS + 1, RECORD))
    result = {"steps": STEPS, "record_at": record_at, "seeds": list(SEEDS),
              "train_probe": TRAIN_PROBE, "models": {}}
    for name, (attention, hidden) in MODELS.items():
        picked = sizes[name, hidden]
        lr, grid = picked["best_lr"], sorted(map(float, picked["val_final_by_lr"]))
        assert grid[0] < lr < grid[-1], (name, lr, grid)  # the pick is bracketed
        runs = {}
        for seed in SEEDS:
            start = time.process_time()
            torch.manual_seed(seed)
            model = EncoderDecoder(VOCAB, hidden=hidden, attention=attention, out_len=MAX_LEN)
            curve = fit_curve(model, train, steps=STEPS, record_at=record_at,
                              evaluate=lambda m: (accuracy_by_length(m, *val),
                                                  accuracy_by_length(m, *probe)),
                              lr=lr, seed=seed, device="cpu")
            runs[seed] = (model, curve)
            print(f"{name} lr {lr} seed {seed}: val {sum(curve[-1][0]) / 9:.3f} train "
                  f"{sum(curve[-1][1]) / 9:.3f} ({time.process_time() - start:.0f} s)", flush=True)
        result["models"][name] = {
            "hidden": hidden,
            "parameters": sum(p.numel() for p in runs[0][0].parameters()),
            "best_lr": lr,
            "lr_grid": grid,  # seq2seq_sizes.json's, seed 0
            "val_curves": {str(s): [c[0] for c in runs[s][1]] for s in SEEDS},
            "train_curves": {str(s): [c[1] for c in runs[s][1]] for s in SEEDS},
            "test_by_length": {str(s): accuracy_by_length(runs[s][0], *test) for s in SEEDS},
        }
    result["cpu_seconds"] = round(time.process_time() - start_all)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
