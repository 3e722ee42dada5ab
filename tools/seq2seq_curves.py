"""Learning curves of chapter 09's seq2seq bottleneck: data/seq2seq_curves.json.

    python tools/seq2seq_curves.py            (about 5 minutes on one CPU thread a model;
                                              --models attention, fixed context in two processes)

Reversing strings of 2 to 10 digits (dlbook.attention.digit_reversal: 8,000 training strings,
seed 0; 1,000 validation, seed 1; 1,000 test, seed 2) with dlbook.attention.EncoderDecoder,
32 units, with and without attention: each at Adam learning rates 0.01 and 0.03, seeds
0, 1 and 2, batches of 64, gradients clipped at norm 1, for STEPS steps. Every RECORD steps the
validation accuracy per output digit is recorded for each source length. The learning rate of
each model is the one with the best validation accuracy averaged over the whole curve (all
lengths, all records, all seeds: the fastest learner, which is what the chapter compares);
only for it is the test set scored, once, at the end. The chapter retrains a sample and checks it against this
file. Seeded and deterministic on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlbook.attention import EncoderDecoder, accuracy_by_length, digit_reversal, fit_curve

STEPS, RECORD, LRS, SEEDS, MAX_LEN, VOCAB = 2000, 100, (0.01, 0.03), (0, 1, 2), 10, 12
MODELS = {"fixed context": (False, 32), "attention": (True, 32)}  # (attention, hidden units)


def reversal_splits():
    """The digit-reversal splits both seq2seq sweeps train, choose and score on."""
    return (digit_reversal(8000, seed=0)[:2], digit_reversal(1000, seed=1),
            digit_reversal(1000, seed=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / "seq2seq_curves.json")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, val, test = reversal_splits()
    record_at = list(range(RECORD, STEPS + 1, RECORD))
    result = {"steps": STEPS, "record_at": record_at, "lrs": list(LRS), "seeds": list(SEEDS),
              "models": {}}
    if args.out.exists():  # models run in parallel processes (--models) share one file
        old = json.loads(args.out.read_text())
        if all(old.get(k) == result[k] for k in ("steps", "record_at", "lrs", "seeds")):
            result["models"] = old["models"]
    for name in args.models.split(","):
        attention, hidden = MODELS[name]
        runs = {}
        for lr in LRS:
            for seed in SEEDS:
                start = time.time()
                torch.manual_seed(seed)
                model = EncoderDecoder(VOCAB, hidden=hidden, attention=attention, out_len=MAX_LEN)
                curve = fit_curve(model, train, steps=STEPS, record_at=record_at,
                                  evaluate=lambda m: accuracy_by_length(m, *val), lr=lr,
                                  seed=seed, device="cpu")
                runs[(lr, seed)] = (model, curve)
                print(f"{name} lr {lr} seed {seed}: val {sum(curve[-1]) / 9:.3f} "
                      f"({time.time() - start:.0f} s)", flush=True)
        final = {lr: sum(sum(runs[lr, s][1][-1]) / 9 for s in SEEDS) / len(SEEDS) for lr in LRS}
        area = {lr: sum(sum(sum(r) / 9 for r in runs[lr, s][1]) / len(record_at) for s in SEEDS)
                / len(SEEDS) for lr in LRS}  # mean validation accuracy over the curve
        best = max(LRS, key=area.get)
        result["models"][name] = {
            "hidden": hidden,
            "parameters": sum(p.numel() for p in runs[best, 0][0].parameters()),
            "best_lr": best,
            "val_final_by_lr": {str(lr): final[lr] for lr in LRS},
            "val_area_by_lr": {str(lr): area[lr] for lr in LRS},
            "val_curves": {str(lr): {str(s): runs[lr, s][1] for s in SEEDS} for lr in LRS},
            "test_by_length": {str(s): accuracy_by_length(runs[best, s][0], *test) for s in SEEDS},
        }
        if args.out.exists():  # another process may have written its model meanwhile
            old = json.loads(args.out.read_text())
            if all(old.get(k) == result[k] for k in ("steps", "record_at", "lrs", "seeds")):
                result["models"] = {**old["models"], name: result["models"][name]}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
