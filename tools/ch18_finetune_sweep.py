"""Chapter 18's fine-tuning runs, too long for the chapter: writes data/ch18_finetune.json and
data/ch18_sft.safetensors.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch18_finetune_sweep.py

Seeds 0, 1 and 2, every learning rate chosen on validation from a grid (dlbook.tuning's rule:
the grid with seed 0, the other seeds at the pick):

1. ``sft``: supervised fine-tuning of chapter 14's checkpoint (dlbook.gpt.load_checkpoint) on
   "Upper: whale\n" -> "WHALE\n" (dlbook.finetune), with the prompt masked out of the loss and
   without, SFT_STEPS steps of SFT_BATCH pairs; validation exact match every SFT_EVERY steps;
   test exact match and the loss on Moby-Dick's validation text (forgetting) at the end. Beside
   them, the checkpoint prompted with 0, 1 and 2 worked examples (few-shot, no training). The
   seed-0 masked model is saved as data/ch18_sft.safetensors.
2. ``scratch``: the masked SFT on the same GPT from random weights (the pretraining control).
3. ``mix``: the masked SFT with MIX_BATCH Moby-Dick windows in every step, loss
   L_SFT + MIX_WEIGHT * L_LM (against forgetting), at the masked run's learning rate (after
   ``sft``).
4. ``names``: chapter 15's former LoRA experiment on the names: LoRA, full fine-tuning and the
   same GPT trained from random weights, at 20 and 100 steps (NAMES_STEPS), beside a bigram
   count table whose smoothing is chosen on validation; each test loss on the 80 test windows
   the chapter reads live ("test") and on every test window ("test_all").
5. ``forget``: the masked SFT grid again with seed 0, each rate's test exact match beside its
   Moby-Dick loss (what choosing the rate on the task alone costs).
6. ``curves``: the contenders of ``names`` run to a plateau (CURVE_STEPS steps), the loss on
   every validation and test window every CURVE_EVERY steps, each rate chosen on the last
   validation loss from its own grid (CURVE_GRID), 3 seeds.
7. ``next``: what pretraining buys SFT. "Next: <up to 36 characters of Moby-Dick>" answered
   with the word that follows in the book (dlbook.finetune.next_word_pairs, passages of the
   checkpoint's training text, validation and test passages held out of SFT), masked SFT from
   the checkpoint and from random weights (NEXT_GRID), beside the checkpoint continuing the
   bare text, the most frequent answer and word n-gram tables of the same text.
8. ``multi``: does the model read its instruction? Three instructions over the same words
   (dlbook.finetune.INSTRUCTIONS), masked SFT from the checkpoint in the ``sft`` budget, the
   rate from MULTI_GRID; on the test words, which instruction's answer each prompt gets,
   beside the single-instruction model of ``sft`` (after ``sft``).
9. ``next_the``: the ``next`` part's SFT from random weights re-run, how often it answers the
   commonest word, beside the last-word table of the training pairs alone (after ``next``).
10. ``multi_long``: ``multi`` at its chosen rate run on to MULTI_LONG_STEPS steps, 3 seeds:
   its validation curve and its test table there (after ``multi``; not in the default list).
11. ``general``: is the checkpoint's next word general or memorised? The bare checkpoint's
   first word after GENERAL_N passages of its own training text and GENERAL_N of the held-out
   last 10% of the book (never trained on), beside always answering "the" on each (not in the
   default list; about 35 CPU seconds).

`python tools/ch18_finetune_sweep.py curves-lora curves-full ...` (one process each) runs the
contenders of ``curves`` in parallel and merges them into its entry.
`python tools/ch18_finetune_sweep.py sft` re-runs one part and keeps the others' results (parts
may run in separate processes: each reads the file just before writing its own entry).
The chapter re-runs seed 0 of the masked SFT (its first steps), re-measures the saved model
(also on the three instructions of ``multi``),
and re-runs the 20-step LoRA and from-scratch runs, and checks them against this file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import finetune as ft  # noqa: E402
from dlbook.data import load_moby_dick  # noqa: E402
from dlbook.gpt import GPT, load_checkpoint, moby_dick_streams, save_checkpoint  # noqa: E402
from dlbook.training import evaluate  # noqa: E402

OUT = ROOT / "data" / "ch18_finetune.json"
SFT_MODEL = ROOT / "data" / "ch18_sft.safetensors"  # seed 0, masked, after SFT_STEPS steps
SEEDS = [0, 1, 2]
SFT_STEPS, SFT_BATCH, SFT_EVERY = 600, 16, 20
SFT_GRID = [3e-4, 1e-3, 3e-3, 1e-2]
SCRATCH_GRID = [3e-5, 1e-4, 3e-4, 1e-3, 3e-3]  # from random weights: lower rates win
MIX_WEIGHT, MIX_BATCH = 1.0, 8  # SFT with MIX_BATCH Moby-Dick windows a step, L_SFT + w L_LM
MOBY_WINDOWS = 100  # the Moby-Dick validation windows (of 64 characters) the forgetting is read on
SHOWN = 4  # test prompts whose greedy answers the seed-0 runs record every SFT_EVERY steps
NAMES_STEPS = [20, 100]
NAMES_GRID = {"lora": [1e-3, 3e-3, 1e-2, 3e-2], "full": [3e-4, 1e-3, 3e-3, 1e-2],
              "scratch": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]}
SMOOTHING = [0.01, 0.1, 1.0, 10.0, 100.0]
CURVE_STEPS, CURVE_EVERY = 500, 100  # the names contenders run to a plateau
CURVE_GRID = {"lora": [1e-3, 3e-3, 1e-2], "full": [3e-4, 1e-3, 3e-3],
              "scratch": [1e-3, 3e-3, 1e-2]}  # a pick at an edge extends its grid
MULTI_GRID, MULTI_EVERY = [3e-4, 1e-3, 3e-3], 100  # three instructions over the same words
NEXT_STEPS, NEXT_EVERY = 300, 50  # "Next: <phrase>" -> the word after it in the book
NEXT_GRID = {"checkpoint": [1e-4, 3e-4, 1e-3, 3e-3],
             "random init": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}


def sft_setup(gpt):
    words = ft.task_words(load_moby_dick())
    pairs = {k: ft.upper_pairs(v) for k, v in words.items()}
    _, moby_train, moby_val = moby_dick_streams(gpt.config.block_size,
                                                max_eval_windows=MOBY_WINDOWS)
    return pairs, moby_train, moby_val


def sft_grid(gpt, tok, pairs, moby_val, grid, make_base, shown=(), **kw) -> tuple[dict, object]:
    """The grid with seed 0, the pick (best final validation exact match) with every seed.
    ``make_base(seed)`` gives the model SFT starts from. Returns the record and seed 0's model."""
    runs, cpu = {}, {}
    for lr in grid:
        t0 = time.process_time()
        model, h = ft.train_sft(make_base(SEEDS[0]), pairs["train"], tok, steps=SFT_STEPS, lr=lr,
                                batch_size=SFT_BATCH, seed=SEEDS[0], val_pairs=pairs["val"],
                                eval_every=SFT_EVERY, show_prompts=shown, **kw)
        runs[lr], cpu[lr] = (model, h), time.process_time() - t0
        print(" ", lr, [round(v, 2) for v in h.val_exact[::3]], flush=True)
    pick = max(grid, key=lambda lr: runs[lr][1].val_exact[-1])
    seeds = {}
    for seed in SEEDS:
        t0 = time.process_time()
        model, h = runs[pick] if seed == SEEDS[0] else ft.train_sft(
            make_base(seed), pairs["train"], tok, steps=SFT_STEPS, lr=pick,
            batch_size=SFT_BATCH, seed=seed, val_pairs=pairs["val"], eval_every=SFT_EVERY, **kw)
        seeds[str(seed)] = {
            "val_steps": h.steps, "val_exact": h.val_exact, "loss": h.loss[::10],
            "test_exact": ft.exact_match(model, pairs["test"], tok).float().mean().item(),
            "moby_val_loss": evaluate(model, moby_val, metric=None)[0],
            "cpu_seconds": time.process_time() - t0 + (cpu[pick] if seed == SEEDS[0] else 0)}
        if seed == SEEDS[0]:
            first = model
        print("  seed", seed, round(seeds[str(seed)]["test_exact"], 3),
              round(seeds[str(seed)]["moby_val_loss"], 3), flush=True)
    return {"choice": pick, "snapshots": runs[pick][1].snapshots,
            "grid_val_exact": {str(lr): runs[lr][1].val_exact[-1] for lr in grid},
            "seeds": seeds}, first


def sft_part(gpt, tok) -> dict:
    """Masked and unmasked SFT from the checkpoint; few-shot prompting beside them."""
    pairs, _, moby_val = sft_setup(gpt)
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
           "grid": SFT_GRID, "shots": shots, "few_shot": few_shot, "shown": shown,
           "checkpoint_moby_val_loss": evaluate(gpt, moby_val, metric=None)[0],
           "moby_windows": MOBY_WINDOWS, "runs": {}}
    for mode, mask in (("masked", True), ("unmasked", False)):
        print(mode, flush=True)
        out["runs"][mode], model = sft_grid(gpt, tok, pairs, moby_val, SFT_GRID,
                                            lambda seed: gpt, shown=shown, mask_prompt=mask)
        if mode == "masked":
            save_checkpoint(model, tok, SFT_MODEL, made_by="tools/ch18_finetune_sweep.py",
                            what=f"chapter 14's GPT after {SFT_STEPS} steps of masked SFT "
                                 f"(seed 0, lr {out['runs'][mode]['choice']:g})")
    return out


def scratch_part(gpt, tok) -> dict:
    """The pretraining control: the same masked SFT from random weights, its own lr grid."""
    pairs, _, moby_val = sft_setup(gpt)

    def fresh(seed):
        torch.manual_seed(seed)
        return GPT(gpt.config)

    return sft_grid(gpt, tok, pairs, moby_val, SCRATCH_GRID, fresh, mask_prompt=True)[0]


def mix_part(gpt, tok) -> dict:
    """Masked SFT with MIX_BATCH windows of Moby-Dick's training text in every step (loss
    L_SFT + MIX_WEIGHT * L_LM), against forgetting, at the masked run's learning rate (the
    ``sft`` part must have run): the same recipe with one term added."""
    pairs, moby_train, moby_val = sft_setup(gpt)
    lr = json.loads(OUT.read_text())["sft"]["runs"]["masked"]["choice"]
    out = sft_grid(gpt, tok, pairs, moby_val, [lr], lambda seed: gpt, mask_prompt=True,
                   lm_stream=moby_train, lm_weight=MIX_WEIGHT, lm_batch_size=MIX_BATCH)[0]
    return {"weight": MIX_WEIGHT, "lm_batch_size": MIX_BATCH, **out}


def forget_part(gpt, tok) -> dict:
    """The masked SFT grid again with seed 0, each rate read on both sides of the trade-off:
    test exact match (the task) and the loss on Moby-Dick's validation text (forgetting). The
    ``sft`` part picks its rate on validation exact match alone; this shows what that costs."""
    pairs, _, moby_val = sft_setup(gpt)
    out = {"seed": SEEDS[0], "rates": {}}
    for lr in SFT_GRID:
        model, h = ft.train_sft(gpt, pairs["train"], tok, steps=SFT_STEPS, lr=lr,
                                batch_size=SFT_BATCH, seed=SEEDS[0], mask_prompt=True,
                                val_pairs=pairs["val"], eval_every=SFT_EVERY)
        out["rates"][str(lr)] = {
            "val_exact": h.val_exact[-1],
            "test_exact": ft.exact_match(model, pairs["test"], tok).float().mean().item(),
            "moby_val_loss": evaluate(model, moby_val, metric=None)[0]}
        print(" ", lr, out["rates"][str(lr)], flush=True)
    return out


MULTI_LONG_STEPS, MULTI_LONG_EVERY = 1500, 100  # multi_long: run on past SFT_STEPS


def multi_part(gpt, tok) -> dict:
    """Three instructions over the same words (dlbook.finetune.INSTRUCTIONS: "Upper: whale" ->
    "WHALE", "Reverse: whale" -> "elahw", "First: whale" -> "w"), every training word under
    all three, masked SFT from the checkpoint, SFT_STEPS steps of SFT_BATCH pairs (the
    single-instruction budget), the rate chosen on validation exact match from MULTI_GRID
    (extended past an edge pick). For each seed, on the test words: which instruction's answer
    each prompt gets (dlbook.finetune.instruction_confusion). Beside them, the same table for
    the single-instruction model of ``sft`` (data/ch18_sft.safetensors) and the checkpoint."""
    words = ft.task_words(load_moby_dick())
    pairs = {k: ft.instruction_pairs(v) for k, v in words.items()}

    def run(lr, seed=SEEDS[0]):
        t0 = time.process_time()
        model, h = ft.train_sft(gpt, pairs["train"], tok, steps=SFT_STEPS, lr=lr,
                                batch_size=SFT_BATCH, seed=seed, val_pairs=pairs["val"],
                                eval_every=MULTI_EVERY)
        print(" ", lr, seed, [round(v, 3) for v in h.val_exact], flush=True)
        return model, h, time.process_time() - t0

    pick, grid = bracketed(run, MULTI_GRID, lambda a, b: a[1].val_exact[-1] > b[1].val_exact[-1])
    seeds = {}
    for seed in SEEDS:
        model, h, cpu = grid[pick] if seed == SEEDS[0] else run(pick, seed)
        seeds[str(seed)] = {
            "val_steps": h.steps, "val_exact": h.val_exact, "loss": h.loss[::10],
            "val_by_instruction": {i: ft.exact_match(model, ft.instruction_pairs(
                words["val"], (i,)), tok).float().mean().item() for i in ft.INSTRUCTIONS},
            "test": ft.instruction_confusion(model, words["test"], tok),
            "answers": {p: ft.greedy_answer(model, p, tok)
                        for p, _ in pairs["test"][:len(ft.INSTRUCTIONS)]},
            "cpu_seconds": cpu}
        print("  seed", seed, seeds[str(seed)]["test"], flush=True)
    single = ft.load_sft_model()
    return {"instructions": list(ft.INSTRUCTIONS), "steps": SFT_STEPS, "batch_size": SFT_BATCH,
            "eval_every": MULTI_EVERY, "train_pairs": len(pairs["train"]), "choice": pick,
            "grid_val_exact": {str(lr): r[1].val_exact[-1] for lr, r in sorted(grid.items())},
            "seeds": seeds,
            "single": {"test": ft.instruction_confusion(single, words["test"], tok),
                       "answers": {p: ft.greedy_answer(single, p, tok)
                                   for p, _ in pairs["test"][:len(ft.INSTRUCTIONS)]}},
            "checkpoint": {"test": ft.instruction_confusion(gpt, words["test"], tok)}}


def multi_long_part(gpt, tok) -> dict:
    """``multi`` run on, at its chosen rate (chosen at SFT_STEPS), for MULTI_LONG_STEPS steps:
    is the three-instruction model settled at SFT_STEPS? Per seed: the validation curve every
    MULTI_LONG_EVERY steps and the test confusion table at the last step."""
    words = ft.task_words(load_moby_dick())
    pairs = {k: ft.instruction_pairs(v) for k, v in words.items()}
    lr = json.loads(OUT.read_text())["multi"]["choice"]
    seeds = {}
    for seed in SEEDS:
        t0 = time.process_time()
        model, h = ft.train_sft(gpt, pairs["train"], tok, steps=MULTI_LONG_STEPS, lr=lr,
                                batch_size=SFT_BATCH, seed=seed, val_pairs=pairs["val"],
                                eval_every=MULTI_LONG_EVERY)
        seeds[str(seed)] = {"val_steps": h.steps, "val_exact": h.val_exact,
                            "test": ft.instruction_confusion(model, words["test"], tok),
                            "cpu_seconds": time.process_time() - t0}
        print("  seed", seed, [round(v, 3) for v in h.val_exact], seeds[str(seed)]["test"],
              flush=True)
    return {"steps": MULTI_LONG_STEPS, "eval_every": MULTI_LONG_EVERY, "lr": lr,
            "seeds": seeds}


def names_part(gpt, tok) -> dict:
    streams = ft.names_streams(tok)
    whole = ft.names_streams(tok, max_eval_windows=None)["test"]  # every test window
    V = gpt.config.vocab_size
    bigram_val = {str(s): evaluate(ft.bigram_baseline(streams["train"].tokens, V, s),
                                   streams["val"], metric=None)[0] for s in SMOOTHING}
    pick = min(SMOOTHING, key=lambda s: bigram_val[str(s)])
    bigram = ft.bigram_baseline(streams["train"].tokens, V, pick)
    out = {"grid": NAMES_GRID, "checkpoint": {**{k: evaluate(gpt, streams[k], metric=None)[0]
                                                 for k in ("val", "test")},
                                              "test_all": evaluate(gpt, whole, metric=None)[0]},
           "bigram": {"grid_val": bigram_val, "choice": pick,
                      "test": evaluate(bigram, streams["test"], metric=None)[0],
                      "test_all": evaluate(bigram, whole, metric=None)[0]},
           "test_windows": {"test": len(streams["test"].windows()[0]),
                            "test_all": len(whole.windows()[0])},
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
                                    "test": evaluate(model, streams["test"], metric=None)[0],
                                    "test_all": evaluate(model, whole, metric=None)[0]}
            out["runs"][f"{mode} {steps}"] = {
                "choice": pick, "grid_val": {str(lr): grid[lr][1].val_loss[-1] for lr in grid},
                "seeds": seeds}
            print(mode, steps, pick, [round(s["test"], 3) for s in seeds.values()], flush=True)
    return out


def bracketed(run, grid, better):
    """Runs ``run(lr)`` on every rate of ``grid`` and, while the best (``better`` of two
    scores) is at an edge, one more rate a factor of about 3 beyond it. Returns
    ``(pick, {lr: result})`` with the pick inside the grid tried."""
    results = {lr: run(lr) for lr in grid}
    while True:
        lrs = sorted(results)
        pick = lrs[0]
        for lr in lrs[1:]:
            pick = lr if better(results[lr], results[pick]) else pick
        if pick not in (lrs[0], lrs[-1]):
            return pick, results
        new = float(f"{pick * (3.0 if pick == lrs[-1] else 1 / 3):.1g}")
        if pick == lrs[0] and pick == lrs[-1]:
            raise ValueError("a grid needs at least two rates")
        print("  edge: also", new, flush=True)
        results[new] = run(new)


def curves_part(gpt, tok, modes=ft.MODES) -> dict:
    """LoRA, full fine-tuning and from scratch on the names, CURVE_STEPS steps each, the loss
    on every test window every CURVE_EVERY steps; each rate chosen on the loss on every
    validation window at the last step, from CURVE_GRID with seed 0 (extended past an edge
    pick), then every seed at the pick."""
    streams = ft.names_streams(tok)
    whole = ft.names_streams(tok, max_eval_windows=None)

    def run(mode, lr, seed):
        t0 = time.process_time()
        model, curve = ft.names_curve(gpt, mode, lr, seed, streams["train"],
                                      {"test": whole["test"]}, steps=CURVE_STEPS,
                                      eval_every=CURVE_EVERY)
        curve["val_last"] = evaluate(model, whole["val"], metric=None)[0]
        curve["cpu_seconds"] = time.process_time() - t0
        print(mode, lr, seed, round(curve["val_last"], 4),
              [round(v, 3) for v in curve["test"]], flush=True)
        return curve

    out = {"steps": CURVE_STEPS, "eval_every": CURVE_EVERY, "grid": CURVE_GRID, "runs": {}}
    for mode in modes:
        pick, grid = bracketed(lambda lr: run(mode, lr, SEEDS[0]), CURVE_GRID[mode],
                               lambda a, b: a["val_last"] < b["val_last"])
        seeds = {str(SEEDS[0]): grid[pick]}
        for seed in SEEDS[1:]:
            seeds[str(seed)] = run(mode, pick, seed)
        out["runs"][mode] = {"choice": pick,
                             "grid_val": {str(lr): c["val_last"] for lr, c in grid.items()},
                             "seeds": seeds}
    return out


def word_table(text: str, pairs, order: int) -> float:
    """Exact match of a word n-gram count table of ``text`` (lower-cased words): the most
    frequent word after the prompt's last ``order - 1`` words, backing off to fewer words,
    down to the most frequent word of all."""
    from collections import Counter, defaultdict
    import re

    words = re.findall(r"[a-z]+", text.lower())
    after = defaultdict(Counter)
    for c in range(order):
        for i in range(c, len(words)):
            after[tuple(words[i - c:i])][words[i]] += 1
    hits = 0
    for prompt, answer in pairs:
        ctx = re.findall(r"[a-z]+", prompt[len("Next: "):].lower())
        for c in range(min(order - 1, len(ctx)), -1, -1):
            key = tuple(ctx[len(ctx) - c:])
            if key in after:
                hits += after[key].most_common(1)[0][0] == answer.strip()
                break
    return hits / len(pairs)


def bare_next_word(gpt, tok, pairs) -> float:
    """The share of "Next:" ``pairs`` whose answer is the first word the bare checkpoint writes
    when it continues the passage itself (without "Next: ")."""
    bare = [ft.greedy_answer(gpt, p[len("Next: "):-1] + " ", tok, max_new_tokens=14,
                             stop=" ") for p, _ in pairs]
    return sum(re.match(r"[a-z]*", b).group() == a.strip()
               for b, (_, a) in zip(bare, pairs)) / len(pairs)


def next_baselines(gpt, tok, pretrain, pairs) -> dict:
    """Test exact match without SFT: the checkpoint continuing the bare passage (the first
    word it writes), the most frequent training answer, word n-gram tables of ``pretrain``."""
    answers = [a for _, a in pairs["train"]]
    top = max(set(answers), key=answers.count)
    return {"checkpoint_bare": bare_next_word(gpt, tok, pairs["test"]),
            "most_frequent": {"word": top.strip(), "test": sum(
                a == top for _, a in pairs["test"]) / len(pairs["test"])},
            **{f"word_{n}gram": word_table(pretrain, pairs["test"], n) for n in (2, 3, 4)}}


def next_part(gpt, tok, inits=("checkpoint", "random init")) -> dict:
    """What pretraining buys SFT: "Next: <up to 36 characters of Moby-Dick>" -> the word that
    follows there, on passages of the checkpoint's own training text (held-out passages for
    validation and test). Masked SFT from the checkpoint and from random weights, each its own
    rate from NEXT_GRID; beside them the checkpoint continuing the bare text, the most frequent
    answer and word n-gram count tables of the same training text."""
    text = load_moby_dick()
    pretrain = text[:int(round(0.9 * len(text)))]  # the checkpoint's training split
    pairs = ft.next_word_pairs(pretrain)
    out = {"steps": NEXT_STEPS, "eval_every": NEXT_EVERY, "batch_size": SFT_BATCH,
           "grid": NEXT_GRID, "sizes": {k: len(v) for k, v in pairs.items()},
           "examples": pairs["test"][:4], "runs": {}}
    if "checkpoint" in inits:  # the baselines once, with the checkpoint's runs
        out["baselines"] = next_baselines(gpt, tok, pretrain, pairs)
        print(out["baselines"], flush=True)

    def fresh(seed):
        torch.manual_seed(seed)
        return GPT(gpt.config)

    for init, make in (("checkpoint", lambda seed: gpt), ("random init", fresh)):
        if init not in inits:
            continue
        def run(lr):
            r = ft.train_sft(make(SEEDS[0]), pairs["train"], tok, steps=NEXT_STEPS, lr=lr,
                             batch_size=SFT_BATCH, seed=SEEDS[0], val_pairs=pairs["val"],
                             eval_every=NEXT_EVERY)
            print(init, lr, [round(v, 3) for v in r[1].val_exact], flush=True)
            return r

        pick, runs = bracketed(run, NEXT_GRID[init],
                               lambda a, b: a[1].val_exact[-1] > b[1].val_exact[-1])
        seeds = {}
        for seed in SEEDS:
            model, h = runs[pick] if seed == SEEDS[0] else ft.train_sft(
                make(seed), pairs["train"], tok, steps=NEXT_STEPS, lr=pick,
                batch_size=SFT_BATCH, seed=seed, val_pairs=pairs["val"], eval_every=NEXT_EVERY)
            hit = ft.exact_match(model, pairs["test"], tok)
            seeds[str(seed)] = {"val_steps": h.steps, "val_exact": h.val_exact,
                                "test_exact": hit.float().mean().item(),
                                "train_exact": ft.exact_match(model, pairs["train"][:1000],
                                                              tok).float().mean().item(),
                                "answers": [ft.greedy_answer(model, p, tok)
                                            for p, _ in pairs["test"][:4]]}
            print(init, "seed", seed, round(seeds[str(seed)]["test_exact"], 3), flush=True)
        out["runs"][init] = {"choice": pick, "seeds": seeds,
                             "grid_val_exact": {str(lr): r[1].val_exact[-1]
                                                for lr, r in runs.items()}}
    return out


GENERAL_N, GENERAL_SEED = 600, 1  # passages per text for the ``general`` part


def general_part(gpt, tok) -> dict:
    """The bare checkpoint's next-word hit rate (its first word after the passage, as in
    next_baselines) on GENERAL_N passages of its training text and GENERAL_N of the held-out
    last 10% of the book, beside the share of answers that are "the" (always guessing it)."""
    text = load_moby_dick()
    cut = int(round(0.9 * len(text)))  # the checkpoint's training split, as in next_part
    out = {"n": GENERAL_N, "seed": GENERAL_SEED}
    for name, part in (("pretrain", text[:cut]), ("held_out", text[cut:])):
        pairs = ft.next_word_pairs(part, n_val=10, n_test=GENERAL_N, n_train=10,
                                   seed=GENERAL_SEED)["test"]
        out[name] = {"checkpoint_bare": bare_next_word(gpt, tok, pairs),
                     "always_the": sum(a == "the\n" for _, a in pairs) / len(pairs)}
        print(name, out[name], flush=True)
    return out


def pairs_table(pairs) -> tuple[dict, str]:
    """The last-word table of the training pairs alone: for each last word of a passage, the
    answer that most often follows it in ``pairs["train"]`` (ties: the commonest answer
    overall first), backing off to the commonest answer. Returns ``(table, commonest)``."""
    from collections import Counter, defaultdict

    overall = Counter(a for _, a in pairs["train"])
    after = defaultdict(Counter)
    for p, a in pairs["train"]:
        last = re.findall(r"[a-z]+", p[len("Next: "):].lower())
        after[last[-1] if last else ""][a] += 1
    table = {k: max(c, key=lambda a: (c[a], overall[a])) for k, c in after.items()}
    return table, overall.most_common(1)[0][0]


def next_the_part(gpt, tok) -> dict:
    """What SFT from random weights learned on "Next:" (the ``next`` part must have run): its
    seeds re-run at the chosen rate, the share of test passages it answers with the commonest
    training answer, beside the last-word table of the training pairs alone (what the pairs
    could teach without pretraining)."""
    text = load_moby_dick()
    pairs = ft.next_word_pairs(text[:int(round(0.9 * len(text)))])
    stored = json.loads(OUT.read_text())["next"]["runs"]["random init"]
    table, top = pairs_table(pairs)

    def lookup(p):
        last = re.findall(r"[a-z]+", p[len("Next: "):].lower())
        return table.get(last[-1] if last else "", top)

    guess = [lookup(p) for p, _ in pairs["test"]]
    out = {"word": top.strip(), "pairs_table": {
        "test": sum(g == a for g, (_, a) in zip(guess, pairs["test"])) / len(guess),
        "share_top": sum(g == top for g in guess) / len(guess), "keys": len(table)},
        "seeds": {}}
    for seed in SEEDS:
        torch.manual_seed(seed)
        model, _ = ft.train_sft(GPT(gpt.config), pairs["train"], tok, steps=NEXT_STEPS,
                                lr=stored["choice"], batch_size=SFT_BATCH, seed=seed)
        out["seeds"][str(seed)] = {
            "test_exact": ft.exact_match(model, pairs["test"], tok).float().mean().item(),
            "stored_test_exact": stored["seeds"][str(seed)]["test_exact"],
            "share_top": ft.exact_match(model, [(p, top) for p, _ in pairs["test"]],
                                        tok).float().mean().item()}
        print("seed", seed, out["seeds"][str(seed)], flush=True)
    print(out["pairs_table"], flush=True)
    return out


# ----------------------------------------------------------------------------- one run a process
# The ``curves`` and ``next`` parts run one at a time in a process; on a busy machine they can
# also be cut into single runs, one per process, then put together:
#   ch18_finetune_sweep.py run:curves:lora:0.001:0 ... run:next:checkpoint:0.001:0 ... nextbase
#   ch18_finetune_sweep.py assemble
def run_piece(gpt, tok, spec: str) -> dict:
    """One run of ``curves`` (``run:curves:<mode>:<lr>:<seed>``) or ``next``
    (``run:next:<init>:<lr>:<seed>``, init ``checkpoint`` or ``random``), as those parts
    record it."""
    _, part, what, lr, seed = spec.split(":")
    lr, seed = float(lr), int(seed)
    t0 = time.process_time()
    if part == "curves":
        streams = ft.names_streams(tok)
        whole = ft.names_streams(tok, max_eval_windows=None)
        model, curve = ft.names_curve(gpt, what, lr, seed, streams["train"],
                                      {"test": whole["test"]}, steps=CURVE_STEPS,
                                      eval_every=CURVE_EVERY)
        curve["val_last"] = evaluate(model, whole["val"], metric=None)[0]
        curve["cpu_seconds"] = time.process_time() - t0
        return curve
    text = load_moby_dick()
    pairs = ft.next_word_pairs(text[:int(round(0.9 * len(text)))])
    if what == "checkpoint":
        base = gpt
    else:
        torch.manual_seed(seed)
        base = GPT(gpt.config)
    model, h = ft.train_sft(base, pairs["train"], tok, steps=NEXT_STEPS, lr=lr,
                            batch_size=SFT_BATCH, seed=seed, val_pairs=pairs["val"],
                            eval_every=NEXT_EVERY)
    return {"val_steps": h.steps, "val_exact": h.val_exact,
            "test_exact": ft.exact_match(model, pairs["test"], tok).float().mean().item(),
            "train_exact": ft.exact_match(model, pairs["train"][:1000],
                                          tok).float().mean().item(),
            "answers": [ft.greedy_answer(model, p, tok) for p, _ in pairs["test"][:4]],
            "cpu_seconds": time.process_time() - t0}


def assemble(data: dict) -> dict:
    """The ``curves`` and ``next`` entries from single runs (``pieces``): each rate the best of
    seed 0's grid on validation, which must lie inside the rates tried, every seed at it."""
    pieces = data["pieces"]
    text = load_moby_dick()
    pairs = ft.next_word_pairs(text[:int(round(0.9 * len(text)))])
    curves = {"steps": CURVE_STEPS, "eval_every": CURVE_EVERY, "grid": CURVE_GRID, "runs": {}}
    nxt = {"steps": NEXT_STEPS, "eval_every": NEXT_EVERY, "batch_size": SFT_BATCH,
           "grid": NEXT_GRID, "sizes": {k: len(v) for k, v in pairs.items()},
           "examples": pairs["test"][:4], "baselines": pieces.get("nextbase"), "runs": {}}
    done = {k.split(":")[1] for k in pieces if k.startswith("run:")}  # "curves", "next"
    for part, out, names, score in (
            ("curves", curves, {m: m for m in ft.MODES}, lambda r: -r["val_last"]),
            ("next", nxt, {"checkpoint": "checkpoint", "random": "random init"},
             lambda r: r["val_exact"][-1])):
        if part not in done:
            continue
        for key, name in names.items():
            grid = {float(k.split(":")[3]): v for k, v in pieces.items()
                    if k.startswith(f"run:{part}:{key}:") and k.endswith(f":{SEEDS[0]}")}
            pick = max(grid, key=lambda lr: score(grid[lr]))
            if pick in (min(grid), max(grid)):
                raise ValueError(f"{part} {key}: the pick {pick} is at the edge of {sorted(grid)}")
            seeds = {str(seed): pieces[f"run:{part}:{key}:{pick:g}:{seed}"] for seed in SEEDS}
            field = "grid_val" if part == "curves" else "grid_val_exact"
            out["runs"][name] = {"choice": pick, "seeds": seeds,
                                 field: {str(lr): (r["val_last"] if part == "curves"
                                                   else r["val_exact"][-1])
                                         for lr, r in sorted(grid.items())}}
        out["cpu_seconds"] = sum(v["cpu_seconds"] for k, v in pieces.items()
                                 if k.startswith(f"run:{part}:"))
    return {k: v for k, v in (("curves", curves), ("next", nxt)) if k in done}


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    gpt, tok, _ = load_checkpoint(device="cpu")
    parts = sys.argv[1:] or ["names", "sft", "scratch", "mix", "forget", "curves", "next",
                             "multi"]
    for part in parts:
        t0 = time.process_time()
        if part.startswith("run:") or part == "nextbase":  # one run: stored as a piece
            if part == "nextbase":
                text = load_moby_dick()
                pretrain = text[:int(round(0.9 * len(text)))]
                result = next_baselines(gpt, tok, pretrain, ft.next_word_pairs(pretrain))
            else:
                result = run_piece(gpt, tok, part)
            print(part, {k: v for k, v in result.items() if "exact" in k or "last" in k})
            with open(OUT.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = json.loads(OUT.read_text())
                data.setdefault("pieces", {})[part] = result
                OUT.write_text(json.dumps(data, indent=1) + "\n")
            continue
        if part == "assemble":
            with open(OUT.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = json.loads(OUT.read_text())
                data.update(assemble(data))
                data.pop("pieces")
                OUT.write_text(json.dumps(data, indent=1) + "\n")
            continue
        if part.startswith("curves-"):  # one contender's curves: "curves-lora" (parallel)
            result = curves_part(gpt, tok, modes=(part.split("-", 1)[1],))
        elif part.startswith("next-"):  # "next-checkpoint" or "next-random" (parallel)
            result = next_part(gpt, tok, inits=({"checkpoint": "checkpoint",
                                                 "random": "random init"}[part[5:]],))
        else:
            result = {"names": names_part, "sft": sft_part, "scratch": scratch_part,
                      "mix": mix_part, "forget": forget_part, "curves": curves_part,
                      "next": next_part, "multi": multi_part,
                      "multi_long": multi_long_part, "next_the": next_the_part,
                      "general": general_part}[part](gpt, tok)
        result["cpu_seconds"] = time.process_time() - t0
        with open(OUT.with_suffix(".lock"), "w") as lock:  # parts may run in parallel
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(OUT.read_text()) if OUT.exists() else {}  # read late
            if "-" in part:  # merge the contender into its part's entry
                part = part.split("-")[0]
                old = data.get(part, {})
                result = {**old, **result, "runs": {**old.get("runs", {}), **result["runs"]},
                          "cpu_seconds": old.get("cpu_seconds", 0.0) + result["cpu_seconds"]}
            data.update({"command": "DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python "
                                    "tools/ch18_finetune_sweep.py",
                         "seeds": SEEDS, "versions": {"torch": torch.__version__},
                         part: result})
            OUT.write_text(json.dumps(data, indent=1) + "\n")  # after each part
    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
