"""Chapter 09's context-size sweep of the seq2seq bottleneck: data/seq2seq_sizes.json.

    python tools/seq2seq_sizes.py            (about 6 minutes on one CPU thread)

The task and models of tools/seq2seq_curves.py (reversing strings of 2 to 10 digits with
dlbook.attention.EncoderDecoder; 8,000 training strings, seed 0; 1,000 validation, seed 1;
1,000 test, seed 2), at several sizes: the fixed-context model with HIDDEN units (its context
is 2 x hidden numbers, the LSTM's h and c), and the attention model at ATTENTION_HIDDEN units.
Every run has the same budget: STEPS Adam steps on batches of 64, gradients clipped at norm 1.
For each model and size the learning rate is chosen on seed 0 from GRIDS (LRS by default; the
wider LSTMs start lower, as a first, stopped run found their pick at LRS's lowest rate) by the
final validation
accuracy over all lengths, to 0.1 point (ties, as when several rates reach 100%, go to the
higher mean accuracy over the whole curve: the faster learner); when the pick is the grid's lowest (highest) rate, the grid is
extended by the next rate below (above) it, a factor of about 3, until the pick is inside.
Seeds 1 and 2 then run at that rate, and only those three runs are scored on the test set,
once. A contender already in the output file (same steps, records and seeds) is kept, so the
script resumes where a stopped run left off; each contender is seeded on its own, so this
equals one uninterrupted run. The validation accuracy by length is recorded every RECORD steps.
Seeded and deterministic on one CPU thread; the chapter retrains a sample and checks it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dlbook.attention import EncoderDecoder, accuracy_by_length, fit_curve
from seq2seq_curves import reversal_splits  # the same splits as the curves (tools/ is on the path)

STEPS, RECORD, LRS, SEEDS, MAX_LEN, VOCAB = 2000, 250, (0.001, 0.003, 0.01, 0.03), (0, 1, 2), 10, 12
HIDDEN, ATTENTION_HIDDEN = (16, 32, 64), (32,)
GRIDS = {("fixed context", 64): (0.0003, 0.001, 0.003),
         ("attention", 32): (0.003, 0.01, 0.03)}


def run(attention: bool, hidden: int, lr: float, seed: int, train, val, record_at):
    torch.manual_seed(seed)
    model = EncoderDecoder(VOCAB, hidden=hidden, attention=attention, out_len=MAX_LEN)
    curve = fit_curve(model, train, steps=STEPS, record_at=record_at,
                      evaluate=lambda m: accuracy_by_length(m, *val), lr=lr, seed=seed,
                      device="cpu")
    return model, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / "seq2seq_sizes.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, val, test = reversal_splits()
    record_at = list(range(RECORD, STEPS + 1, RECORD))
    result = {"steps": STEPS, "record_at": record_at, "lrs": list(LRS), "seeds": list(SEEDS),
              "runs": []}
    contenders = [(True, h) for h in ATTENTION_HIDDEN] + [(False, h) for h in HIDDEN]
    if args.out.exists():
        old = json.loads(args.out.read_text())
        if all(old.get(k) == result[k] for k in ("steps", "record_at", "seeds")):
            result["runs"] = old["runs"]
    done = {(r["model"], r["hidden"]) for r in result["runs"]}
    for attention, hidden in contenders:
        name = "attention" if attention else "fixed context"
        if (name, hidden) in done:
            continue
        models, curves, lrs = {}, {}, list(GRIDS.get((name, hidden), LRS))
        while True:
            for lr in lrs:  # the rate, on seed 0
                if lr in models:
                    continue
                start = time.time()
                models[lr], curves[lr] = run(attention, hidden, lr, 0, train, val, record_at)
                print(f"{name} {hidden} lr {lr}: val {sum(curves[lr][-1]) / 9:.3f} "
                      f"({time.time() - start:.0f} s)", flush=True)
            final = {lr: sum(curves[lr][-1]) / 9 for lr in lrs}
            area = {lr: sum(sum(r) / 9 for r in curves[lr]) / len(record_at) for lr in lrs}
            best = max(lrs, key=lambda lr: (round(final[lr], 3), area[lr]))
            if best == lrs[0]:  # on the edge: one more rate beyond it
                lrs.insert(0, float(f"{lrs[0] / 3.3:.1g}"))
            elif best == lrs[-1]:
                lrs.append(float(f"{lrs[-1] * 3.3:.1g}"))
            else:
                break
        picked = {0: (models[best], curves[best])}
        for seed in SEEDS[1:]:
            picked[seed] = run(attention, hidden, best, seed, train, val, record_at)
            print(f"{name} {hidden} lr {best} seed {seed}: val "
                  f"{sum(picked[seed][1][-1]) / 9:.3f}", flush=True)
        result["runs"].append({
            "model": name, "hidden": hidden,
            "parameters": sum(p.numel() for p in models[best].parameters()),
            "best_lr": best,
            "val_final_by_lr": {str(lr): final[lr] for lr in lrs},  # seed 0
            "val_curves": {str(s): picked[s][1] for s in SEEDS},  # at best_lr
            "test_by_length": {str(s): accuracy_by_length(picked[s][0], *test) for s in SEEDS},
        })
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # progress survives a stop
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
