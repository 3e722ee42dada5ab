"""Chapter 18's fine-tuning runs, too long for the chapter: writes data/ch18_finetune.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch18_finetune_sweep.py

Two experiments on chapter 14's checkpoint (dlbook.gpt.load_checkpoint), seeds 0, 1 and 2, every
learning rate chosen on validation from a grid (dlbook.tuning's rule: the grid with seed 0, the
other seeds at the pick):

1. Supervised fine-tuning on "Upper: whale\\n" -> "WHALE\\n" (dlbook.finetune), with the prompt
   masked out of the loss and without, SFT_STEPS steps of SFT_BATCH pairs; validation
   exact-match every SFT_EVERY steps; test exact-match once at the end. Beside them, the
   checkpoint prompted with 0, 1 and 2 worked examples (few-shot, no training).
2. Chapter 15's former LoRA experiment on the names: LoRA, full fine-tuning and the same GPT
   trained from random weights, at 20 and 100 steps, beside a bigram count table whose
   smoothing is chosen on validation.

`python tools/ch18_finetune_sweep.py sft` re-runs one part and keeps the other's results.
The chapter re-runs seed 0 of the masked SFT (its first steps) and of the 20-step LoRA and
from-scratch runs, and checks them against this file.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import finetune as ft  # noqa: E402
from dlbook.data import load_moby_dick  # noqa: E402
from dlbook.gpt import load_checkpoint  # noqa: E402
from dlbook.training import evaluate  # noqa: E402

OUT = ROOT / "data" / "ch18_finetune.json"
SEEDS = [0, 1, 2]
SFT_STEPS, SFT_BATCH, SFT_EVERY = 300, 16, 20
SFT_GRID = [3e-4, 1e-3, 3e-3, 1e-2]
SHOWN = 4  # test prompts whose greedy answers the seed-0 runs record every SFT_EVERY steps
NAMES_STEPS = [20, 100]
NAMES_GRID = {"lora": [1e-3, 3e-3, 1e-2, 3e-2], "full": [3e-4, 1e-3, 3e-3, 1e-2],
              "scratch": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
SMOOTHING = [0.01, 0.1, 1.0, 10.0, 100.0]


def sft_part(gpt, tok) -> dict:
    words = ft.task_words(load_moby_dick())
    pairs = {k: ft.upper_pairs(v) for k, v in words.items()}
    shots = [p for p in pairs["train"] if len(p[1]) <= 4][:2]  # short words: two fit the context
    few_shot = {}
    for k in (0, 1, 2):
        prefix = "".join(p + a for p, a in shots[:k])
        few_shot[str(k)] = {split: ft.exact_match(gpt, [(prefix + p, a) for p, a in pairs[split]],
                                                  tok).float().mean().item()
                            for split in ("val", "test")}
    print("few-shot", few_shot, flush=True)
    shown = [p for p, _ in pairs["test"][:SHOWN]]  # greedy answers recorded for these
    out = {"steps": SFT_STEPS, "batch_size": SFT_BATCH, "eval_every": SFT_EVERY,
           "grid": SFT_GRID, "shots": shots, "few_shot": few_shot, "shown": shown, "runs": {}}
    for mode, mask in (("masked", True), ("unmasked", False)):
        runs = {}
        for lr in SFT_GRID:
            t0 = time.process_time()
            model, h = ft.train_sft(gpt, pairs["train"], tok, steps=SFT_STEPS, lr=lr,
                                    batch_size=SFT_BATCH, seed=SEEDS[0], mask_prompt=mask,
                                    val_pairs=pairs["val"], eval_every=SFT_EVERY,
                                    show_prompts=shown)
            runs[lr] = (model, h, time.process_time() - t0)
            print(mode, lr, [round(v, 3) for v in h.val_exact[::4]], flush=True)
        pick = max(SFT_GRID, key=lambda lr: runs[lr][1].val_exact[-1])
        seeds = {}
        for seed in SEEDS:
            if seed == SEEDS[0]:
                model, h, cpu = runs[pick]
            else:
                t0 = time.process_time()
                model, h = ft.train_sft(gpt, pairs["train"], tok, steps=SFT_STEPS, lr=pick,
                                        batch_size=SFT_BATCH, seed=seed, mask_prompt=mask,
                                        val_pairs=pairs["val"], eval_every=SFT_EVERY)
                cpu = time.process_time() - t0
            seeds[str(seed)] = {
                "val_steps": h.steps, "val_exact": h.val_exact,
                "loss": h.loss, "cpu_seconds": cpu,
                "test_exact": ft.exact_match(model, pairs["test"], tok).float().mean().item()}
            print(mode, "seed", seed, seeds[str(seed)]["test_exact"], flush=True)
        out["runs"][mode] = {"choice": pick, "snapshots": runs[pick][1].snapshots,
                             "grid_val_exact": {str(lr): runs[lr][1].val_exact[-1]
                                                for lr in SFT_GRID},
                             "seeds": seeds}
    return out


def names_part(gpt, tok) -> dict:
    streams = ft.names_streams(tok)
    V = gpt.config.vocab_size
    bigram_val = {str(s): evaluate(ft.bigram_baseline(streams["train"].tokens, V, s),
                                   streams["val"], metric=None)[0] for s in SMOOTHING}
    pick = min(SMOOTHING, key=lambda s: bigram_val[str(s)])
    bigram = ft.bigram_baseline(streams["train"].tokens, V, pick)
    out = {"grid": NAMES_GRID, "checkpoint": {k: evaluate(gpt, streams[k], metric=None)[0]
                                              for k in ("val", "test")},
           "bigram": {"grid_val": bigram_val, "choice": pick,
                      "test": evaluate(bigram, streams["test"], metric=None)[0]},
           "runs": {}}
    print("bigram", out["bigram"], flush=True)
    for steps in NAMES_STEPS:
        for mode in ft.MODES:
            grid = {}
            for lr in NAMES_GRID[mode]:
                model, h = ft.fine_tune_names(gpt, mode, lr, SEEDS[0], streams, steps=steps)
                grid[lr] = (model, h)
            pick = min(grid, key=lambda lr: grid[lr][1].val_loss[-1])
            seeds = {}
            for seed in SEEDS:
                model, h = grid[pick] if seed == SEEDS[0] else ft.fine_tune_names(
                    gpt, mode, pick, seed, streams, steps=steps)
                seeds[str(seed)] = {"val_loss": h.val_loss, "steps": h.x,
                                    "test": evaluate(model, streams["test"], metric=None)[0]}
            out["runs"][f"{mode} {steps}"] = {
                "choice": pick, "grid_val": {str(lr): grid[lr][1].val_loss[-1] for lr in grid},
                "seeds": seeds}
            print(mode, steps, pick, [round(s["test"], 3) for s in seeds.values()], flush=True)
    return out


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    gpt, tok, _ = load_checkpoint(device="cpu")
    parts = sys.argv[1:] or ["names", "sft"]  # re-run one part: keeps the other's results
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.update({"command": "DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python "
                            "tools/ch18_finetune_sweep.py",
                 "seeds": SEEDS, "versions": {"torch": torch.__version__}})
    for part in parts:
        t0 = time.process_time()
        data[part] = {"names": names_part, "sft": sft_part}[part](gpt, tok)
        data[part]["cpu_seconds"] = time.process_time() - t0
        OUT.write_text(json.dumps(data, indent=1) + "\n")  # after each part
    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
