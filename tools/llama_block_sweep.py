"""Chapter 14's comparison of GPT-2's block with today's (Llama's), too long for the chapter:
writes data/ch14_block_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/llama_block_sweep.py [--out data/ch14_block_sweep.json]

The two contenders of dlbook.llama.comparison_models (equal depth, width, heads and parameters)
train on Moby-Dick's characters (dlbook.llama.comparison_streams: the first half of the
held-out tenth validates, the second half tests) with the chapter's recipe (the one of
dlbook.scaling.train_run): AdamW, betas (0.9, 0.99), weight decay 0.1, a linear warm-up over the
first tenth of the steps then cosine decay to a tenth of the peak, gradients clipped at norm 1;
batch 32 of 32 characters, STEPS steps. The book's rule (dlbook.tuning.tune_then_repeat): each
contender's peak rate chosen on its own grid (one that brackets the pick) by the final
validation loss of seed 0, then seeds 1 and 2 at that rate; the test loss of every final model
measured once. Seeded: a rerun on the same versions gives the same numbers. (An earlier version
trained with Adam at a constant rate and no warm-up, which GPT-2's block tolerates badly.)

If the best rate falls on a grid's edge, ``--widen NAME LR`` adds seed 0 at LR to the file's
grid (it refuses when LR beats the pick: then put LR in GRIDS and rerun).

To use two cores: run ``--only NAME --out part.json`` once per contender, in parallel, then
``--merge part1.json part2.json --out data/ch14_block_sweep.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook.llama import (
    BLOCK_SWEEP_FILE,
    comparison_models,
    comparison_streams,
)
from dlbook.training import evaluate, fit, warmup_cosine
from dlbook.tuning import tune_then_repeat

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH, EVAL_EVERY = 600, 32, 50
# GPT-2's grid was (2e-3, 4e-3, 8e-3) until 8e-3 came out best at its edge; 1.6e-2 was then
# added with --widen (the same seeded run a fresh sweep with this grid makes).
GRIDS = {"GPT-2 block": (2e-3, 4e-3, 8e-3, 1.6e-2), "Llama block": (1e-3, 2e-3, 4e-3)}
RECIPE = ("AdamW betas (0.9, 0.99), weight decay 0.1, warm-up STEPS // 10 then cosine to 0.1 "
          "of the peak, grad_clip 1.0 (dlbook.scaling.train_run's recipe)")


def train_one(name, make, train, val, lr, seed):
    """One seeded run of contender ``name`` at peak rate ``lr``: ``(model, history)``."""
    torch.manual_seed(seed)
    model = make()
    history = fit(
        model, train, val, steps=STEPS, batch_size=BATCH, seed=seed,
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.99), weight_decay=0.1),
        scheduler=warmup_cosine(STEPS // 10, STEPS), grad_clip=1.0,
        eval_every=EVAL_EVERY, progress=False)
    print(" ", name, lr, seed, round(history.val_loss[-1], 5), flush=True)
    return model, history


def widen(path: Path, name: str, lr: float) -> None:
    """Add seed 0 at ``lr`` to ``name``'s grid in an existing file, as a rerun with ``lr`` in
    GRIDS would have it (each run is seeded on its own); refuse if it beats the recorded pick,
    which would change the seeds 1-2 runs: then rerun the whole sweep."""
    out = json.loads(path.read_text())
    r = out["results"][name]
    tokenizer, train, val, _ = comparison_streams()
    start = time.process_time()
    _, history = train_one(name, comparison_models(tokenizer.vocab_size)[name], train, val,
                           lr, 0)
    score = round(history.val_loss[-1], 5)
    if score < r["val"][0]:
        raise SystemExit(f"{lr:g} ({score}) beats the pick {r['lr']:g}: rerun with it in GRIDS")
    r["grid"] = dict(sorted({**r["grid"], f"{lr:g}": score}.items(), key=lambda kv: float(kv[0])))
    r["cpu_seconds"] += round(time.process_time() - start)
    out["grids"][name] = sorted(set(out["grids"][name]) | {lr})
    path.write_text(json.dumps(out, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / BLOCK_SWEEP_FILE))
    parser.add_argument("--only", help="one contender's name")
    parser.add_argument("--merge", nargs="+", help="part files written with --only")
    parser.add_argument("--widen", nargs=2, metavar=("NAME", "LR"),
                        help="add seed 0 at LR to NAME's grid in the file --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.widen:
        widen(Path(args.out), args.widen[0], float(args.widen[1]))
        return 0
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        out = {**parts[0], "results": {k: v for p in parts for k, v in p["results"].items()}}
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    tokenizer, train, val, test = comparison_streams()
    results = {}
    for name, make in comparison_models(tokenizer.vocab_size).items():
        if args.only and name != args.only:
            continue
        start = time.process_time()

        r = tune_then_repeat(
            lambda lr, seed, name=name, make=make: train_one(name, make, train, val, lr, seed),
            GRIDS[name], score=lambda h: -h.val_loss[-1])
        results[name] = {
            "params": r.models[0].num_params(),
            "grid": {f"{lr:g}": round(-s, 5) for lr, s in r.grid_scores.items()},
            "lr": r.choice, "seeds": r.seeds,
            "val": [round(-s, 5) for s in r.scores],
            "test": [round(evaluate(m, test, metric=None)[0], 5) for m in r.models],
            "steps": r.histories[0].step,
            "val_curves": [[round(v, 5) for v in h.val_loss] for h in r.histories],
            "cpu_seconds": round(time.process_time() - start),
        }
        print(name, {k: v for k, v in results[name].items() if k != "val_curves"}, flush=True)
    out = {"command": "DLBOOK_CPU_THREADS=1 python tools/llama_block_sweep.py",
           "steps": STEPS, "batch_size": BATCH, "recipe": RECIPE,
           "grids": {k: list(v) for k, v in GRIDS.items()},
           "versions": {"torch": torch.__version__, "python": platform.python_version()},
           "results": results}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
