"""Chapter 14's scaling sweep and BPE comparison, too long for the chapter: data/ch14_scaling_sweep.json.

    DLBOOK_CPU_THREADS=1 nice -n 5 python tools/ch14_scaling_sweep.py [--parts /tmp/ch14_parts]

The recipe is dlbook.scaling's (2 layers, heads of 16, 400 AdamW steps on 32 windows of 64
tokens of Moby-Dick's first 90%). Two experiments, each by the book's rule: for each contender,
one run per learning rate of a factor-2 grid with seed 0, the grid widened until its best rate
on the **validation** text (the first half of the last 10%) is not at an edge; then seeds 1 and
2 at that rate; the **test** text (the second half) is scored once per run and chooses nothing.

1. scaling: character-level GPTs of widths dlbook.scaling.WIDTHS (about 34x in parameters);
2. BPE against characters at equal training FLOPs (dlbook.scaling.flops_per_token): chapter
   13's BPE (1,000 tokens) for 400 steps, characters for as many steps as give the same FLOPs,
   both 64 wide; losses converted to bits per character with the measured characters per token.

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


def cached_run(parts: Path, key: str, streams, width, lr, seed, steps):
    path = parts / f"{key}_w{width}_lr{lr:g}_s{seed}_n{steps}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.process_time()
    _, val, test = scaling.train_run(streams, width, lr, seed, steps)
    out = {"val": round(val, 6), "test": round(test, 6),
           "cpu_seconds": round(time.process_time() - start, 1)}
    path.write_text(json.dumps(out))
    print(f"{key} width {width} lr {lr:g} seed {seed} steps {steps}: {out}", flush=True)
    return out


def tune_and_repeat(parts, key, streams, width, steps) -> dict:
    """Widen a factor-2 grid until the best validation rate is inside it, then repeat seeds."""
    grid = {lr: cached_run(parts, key, streams, width, lr, 0, steps) for lr in START_GRID}
    while True:
        rates = sorted(grid)
        best = min(rates, key=lambda r: grid[r]["val"])
        if best == rates[0]:
            new = best / 2
        elif best == rates[-1]:
            new = best * 2
        else:
            break
        grid[new] = cached_run(parts, key, streams, width, new, 0, steps)
    runs = [grid[best]] + [cached_run(parts, key, streams, width, best, s, steps)
                           for s in SEEDS[1:]]
    return {"grid": {f"{r:g}": grid[r]["val"] for r in sorted(grid)}, "lr": best,
            "seeds": list(SEEDS), "val": [r["val"] for r in runs],
            "test": [r["test"] for r in runs],
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in grid.values())
                                 + sum(r["cpu_seconds"] for r in runs[1:]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / scaling.SWEEP_FILE))
    parser.add_argument("--parts", default="/tmp/ch14_parts")
    parser.add_argument("--only", choices=("scaling", "bpe"), default=None,
                        help="run one of the two experiments (the file then holds only it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = Path(args.parts)
    parts.mkdir(parents=True, exist_ok=True)
    chars = scaling.char_streams()
    results = {"recipe": {"n_layer": scaling.N_LAYER, "head_size": scaling.HEAD_SIZE,
                          "block": scaling.BLOCK, "batch": scaling.BATCH,
                          "steps": scaling.STEPS, "eval_windows": scaling.EVAL_WINDOWS,
                          "start_grid": list(START_GRID)},
               "scaling": {}, "bpe": {}}
    results["provenance"] = {"script": "tools/ch14_scaling_sweep.py", "seeds": list(SEEDS),
                             "threads": 1, "python": platform.python_version(),
                             "torch": torch.__version__}
    for width in scaling.WIDTHS if args.only != "bpe" else ():
        r = tune_and_repeat(parts, "char", chars, width, scaling.STEPS)
        model = scaling.make_model(chars.vocab_size, width, 0)
        r["n_params"] = model.num_params(non_embedding=True)
        r["n_params_total"] = model.num_params()
        results["scaling"][str(width)] = r

    if args.only == "scaling":
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out} (scaling only)")
        return 0
    start = time.process_time()
    bpe = scaling.bpe_streams()
    bpe_seconds = round(time.process_time() - start, 1)
    width = scaling.BPE_WIDTH
    flops = {name: scaling.flops_per_token(s.vocab_size, width)
             for name, s in (("characters", chars), ("BPE", bpe))}
    steps = {"BPE": scaling.STEPS,
             "characters": round(scaling.STEPS * flops["BPE"] / flops["characters"])}
    for name, streams in (("characters", chars), ("BPE", bpe)):
        r = tune_and_repeat(parts, name, streams, width, steps[name])
        cpt = streams.chars_per_token
        r.update(steps=steps[name], vocab_size=streams.vocab_size,
                 flops_per_token=flops[name], chars_per_token=cpt,
                 tokens_seen=steps[name] * scaling.BATCH * scaling.BLOCK,
                 val_bpc=[scaling.bits_per_char(v, cpt["val"]) for v in r["val"]],
                 test_bpc=[scaling.bits_per_char(v, cpt["test"]) for v in r["test"]])
        results["bpe"][name] = r
    results["bpe_tokenizer_cpu_seconds"] = bpe_seconds
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
