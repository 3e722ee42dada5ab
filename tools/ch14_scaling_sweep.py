"""Chapter 14's scaling sweep and BPE comparison, too long for the chapter: data/ch14_scaling_sweep.json.

    DLBOOK_CPU_THREADS=1 nice -n 5 python tools/ch14_scaling_sweep.py [--parts /tmp/ch14_parts]

The recipe is dlbook.scaling's (2 layers, heads of 16, AdamW with warm-up and cosine decay on
32 windows of 64 tokens of Moby-Dick's first 90%). The **validation** text (the first half of
the last 10%) chooses; the **test** text (the second half, scored whole) chooses nothing.

1. rates: for each width of dlbook.scaling.WIDTHS, a factor-2 grid of rates at 400 steps with
   seed 0, widened until its best validation rate is not at an edge; every rate within
   SHORTLIST nats of that best is run with seeds 1 and 2, and the rate with the lowest mean
   validation loss over the 3 seeds is the width's rate.
2. compute: each width at its rate for STEPS_BY_WIDTH steps (smaller models longer, so the
   runs' compute C = 6 N D overlaps), 3 seeds, the validation loss recorded every
   dlbook.scaling.CURVE_EVERY steps: the loss against compute and its lower envelope.
3. BPE against characters at equal training FLOPs (dlbook.scaling.flops_per_token): chapter
   13's BPE (1,000 tokens) for 400 steps, characters for as many steps as give the same FLOPs,
   both 48 wide, the rate picked on seed 0's validation loss; losses converted to bits per
   character with the characters per token counted on the scored targets.

Each finished run is written to its own file under --parts, so an interrupted sweep resumes where
it stopped. Seeded and deterministic on one thread; the chapter re-trains one run and compares.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook import scaling

ROOT = Path(__file__).resolve().parents[1]
START_GRID = (4e-3, 8e-3, 16e-3)
SEEDS = (0, 1, 2)
SHORTLIST = 0.05  # nats of seed-0 validation loss (about 3 seeds' spread): rates this close
#                   to the best get seeds 1 and 2
STEPS_BY_WIDTH = {16: 1600, 32: 1200, 48: 800, 64: 600, 96: 400}


def cached_run(parts: Path, key, streams, width, lr, seed, steps, curve=False, plain_ok=False):
    """One run, read back from --parts when done before (a run with a curve also serves a call
    without one: recording does not change the run; ``plain_ok``: a run done before without a
    curve serves a call that only needs its losses)."""
    name = f"{key}_w{width}_lr{lr:g}_s{seed}_n{steps}"
    for path in (parts / f"{name}_curve.json",) + (
            (parts / f"{name}.json",) if plain_ok or not curve else ()):
        if path.exists():
            return json.loads(path.read_text())
    start = time.process_time()
    _, val, test, (steps_at, losses) = scaling.train_run(
        streams, width, lr, seed, steps, scaling.CURVE_EVERY if curve else None)
    out = {"val": round(val, 6), "test": round(test, 6),
           "cpu_seconds": round(time.process_time() - start, 1)}
    if curve:
        out["curve"] = {"step": steps_at, "val": [round(v, 5) for v in losses]}
    (parts / f"{name}{'_curve' if curve else ''}.json").write_text(json.dumps(out))
    print(f"{name}: val {out['val']} test {out['test']} ({out['cpu_seconds']} s)", flush=True)
    return out


def seed0_grid(parts, key, streams, width, steps) -> dict:
    """Widen a factor-2 grid until the best validation rate (seed 0) is inside it."""
    grid = {lr: cached_run(parts, key, streams, width, lr, 0, steps)["val"] for lr in START_GRID}
    while True:
        rates = sorted(grid)
        best = min(rates, key=grid.get)
        if best not in (rates[0], rates[-1]):
            return {r: grid[r] for r in rates}
        new = best / 2 if best == rates[0] else best * 2
        grid[new] = cached_run(parts, key, streams, width, new, 0, steps)["val"]


def choose_rate(parts, streams, width) -> dict:
    grid = seed0_grid(parts, "char", streams, width, scaling.STEPS)
    best = min(grid.values())
    means = {}
    for lr in (r for r, v in grid.items() if v <= best + SHORTLIST):
        curve = STEPS_BY_WIDTH[width] == scaling.STEPS  # then phase 2 reuses these runs
        means[lr] = sum(cached_run(parts, "char", streams, width, lr, s, scaling.STEPS,
                                   curve=curve and s > 0, plain_ok=True)["val"]
                        for s in SEEDS) / len(SEEDS)
    return {"grid": {f"{r:g}": v for r, v in grid.items()},
            "shortlist_mean_val": {f"{r:g}": round(m, 6) for r, m in means.items()},
            "lr": min(means, key=means.get)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / scaling.SWEEP_FILE))
    parser.add_argument("--parts", default="/tmp/ch14_parts")
    parser.add_argument("--only", choices=("scaling", "bpe"), default=None,
                        help="run one of the experiments (the file then holds only it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = Path(args.parts)
    parts.mkdir(parents=True, exist_ok=True)
    chars = scaling.char_streams()
    results = {"recipe": {"n_layer": scaling.N_LAYER, "head_size": scaling.HEAD_SIZE,
                          "block": scaling.BLOCK, "batch": scaling.BATCH,
                          "rate_steps": scaling.STEPS, "eval_windows": scaling.EVAL_WINDOWS,
                          "curve_every": scaling.CURVE_EVERY, "start_grid": list(START_GRID),
                          "shortlist": SHORTLIST},
               "scaling": {}, "bpe": {}}
    results["provenance"] = {"script": "tools/ch14_scaling_sweep.py", "seeds": list(SEEDS),
                             "threads": 1, "python": platform.python_version(),
                             "torch": torch.__version__}
    for width in scaling.WIDTHS if args.only != "bpe" else ():
        r = choose_rate(parts, chars, width)
        steps = STEPS_BY_WIDTH[width]
        runs = [cached_run(parts, "char", chars, width, r["lr"], s, steps, curve=True)
                for s in SEEDS]
        model = scaling.make_model(chars.vocab_size, width, 0)
        r.update(steps=steps, seeds=list(SEEDS), val=[x["val"] for x in runs],
                 test=[x["test"] for x in runs], curve_step=runs[0]["curve"]["step"],
                 curve_val=[x["curve"]["val"] for x in runs],
                 run_cpu_seconds=[x["cpu_seconds"] for x in runs],
                 n_params=model.num_params(non_embedding=True),
                 n_params_total=model.num_params(),
                 flops_per_token=scaling.flops_per_token(chars.vocab_size, width))
        results["scaling"][str(width)] = r
        print(f"width {width}: lr {r['lr']:g}, test {r['test']}", flush=True)

    if args.only != "scaling":
        start = time.process_time()
        bpe = scaling.bpe_streams()
        results["bpe_tokenizer_cpu_seconds"] = round(time.process_time() - start, 1)
        width = scaling.BPE_WIDTH
        flops = {name: scaling.flops_per_token(s.vocab_size, width)
                 for name, s in (("characters", chars), ("BPE", bpe))}
        steps = {"BPE": scaling.STEPS,
                 "characters": round(scaling.STEPS * flops["BPE"] / flops["characters"])}
        for name, streams in (("characters", chars), ("BPE", bpe)):
            grid = seed0_grid(parts, name, streams, width, steps[name])
            lr = min(grid, key=grid.get)
            runs = [cached_run(parts, name + "-whole", streams, width, lr, s, steps[name])
                    for s in SEEDS]
            cpt = streams.chars_per_token
            results["bpe"][name] = {
                "grid": {f"{r:g}": v for r, v in grid.items()}, "lr": lr, "seeds": list(SEEDS),
                "val": [x["val"] for x in runs], "test": [x["test"] for x in runs],
                "steps": steps[name], "vocab_size": streams.vocab_size,
                "flops_per_token": flops[name], "chars_per_token": cpt,
                "test_windows": len(streams.test.windows()[1]),
                "tokens_seen": steps[name] * scaling.BATCH * scaling.BLOCK,
                "val_bpc": [scaling.bits_per_char(x["val"], cpt["val"]) for x in runs],
                "test_bpc": [scaling.bits_per_char(x["test"], cpt["test"]) for x in runs]}
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
