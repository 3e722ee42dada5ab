"""Chapter 16's CLIP runs, too long for the chapter: writes data/ch16_clip.json.

    DLBOOK_CPU_THREADS=1 python tools/ch16_clip.py [--out data/ch16_clip.json] [--update]

1. How long to train. Three CLIPs (seeds 0-2) on all ten digits, captions from the six seen
   templates (dlbook.contrastive.CLIP_SEEN), scored every so often (CLIP_CHECKPOINTS) on the 800
   validation digits with the six unseen templates. The budget is the first checkpoint whose
   mean validation accuracy is within CLIP_SETTLED of the best checkpoint's: where the curve has
   settled. The test digits score each run at every checkpoint (reported at the budget only).
2. The held-out sevens. Three CLIPs (seeds 0-2) trained on the other nine digits, for the
   chapter's CLIP_LIVE_STEPS and for the budget,
   per seed, mean over the six unseen templates: the share of test sevens whose most
   similar prompt is the seven prompt (top-1 recall), and the seven prompt's mean rank among the
   ten (1 = top) for the test sevens, against the same with "banana" in place of "seven", and
   with the number words "ten" and "eleven" (C.NUMBER_CONTROLS) in its place; and the seven
   prompt's rank for the test digits of each class (does "seven" point to sevens at all?).
3. The network from scratch at CLIP's budget (dlbook.contrastive.supervised_run): the same
   320 labels a class, the same number of steps, plain digits or CLIP's views (a random bank
   view, jittered), CLIP's batch of 128 (NET_BATCH): as many images as CLIP saw, seeds 0-2,
   Adam rate from NET_LRS by validation cross-entropy, checkpoint of lowest validation
   cross-entropy every 100 steps: CLIP against a network given as much.
4. Where the failure lies. (a) Image side: the same held-out CLIPs with their image tower
   started from a SimCLR encoder (seed 0, dlbook.contrastive.SIMCLR_RECIPE) that saw the sevens
   unlabelled, fine-tuned or frozen (CLIP_LIVE_STEPS). (b) Text side: the cosine of the
   projected "seven" with the nine projected class words it was never trained beside.
Seeded: a rerun on the same versions gives the same file; the chapter re-measures seed 0.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlbook import contrastive as C
from dlbook.data import sha256_of
from dlbook.pretrained import MINILM_DIM

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]
NET_LRS = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
NET_BATCH = 128  # CLIP's batch: as many images as CLIP saw


def accuracy(model, x, y, prompt_sets):
    return float(np.mean([(model.classify(x, p) == y).float().mean().item() for p in prompt_sets]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / C.CLIP_FILE))
    parser.add_argument("--update", action="store_true",
                        help="re-run part 3 (and part 2 unless the file's has the controls), "
                             "keeping the file's part 1 and 4 (seeded: as a full run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.process_time()
    images, labels, bank = C.shrunk_splits()
    (_, x_val, x_test), (y_train, y_val, y_test) = images, labels
    seen, unseen, decoys = C.clip_prompts()
    unseen_list = list(unseen)
    controls = C.number_word_vectors()
    old = json.loads(Path(args.out).read_text(encoding="utf-8")) if args.update else None

    curves, test_curves = [], []
    for seed in SEEDS if old is None else []:
        val_acc, test_acc = [], []

        def score(step, model, val_acc=val_acc, test_acc=test_acc):
            if step in C.CLIP_CHECKPOINTS:
                val_acc.append(round(accuracy(model, x_val, y_val, unseen_list), 6))
                test_acc.append(round(accuracy(model, x_test, y_test, unseen_list), 6))

        torch.manual_seed(seed)
        C.fit_clip(C.CLIP(text_dim=MINILM_DIM), bank, y_train, seen,
                   steps=max(C.CLIP_CHECKPOINTS), seed=seed, on_step=score)
        curves.append(val_acc)
        test_curves.append(test_acc)
        print(f"CLIP seed {seed}: validation {val_acc}", flush=True)
    if old is not None:
        curves, test_curves = old["validation_accuracy"], old["test_accuracy"]
    mean_curve = np.mean(curves, 0)
    budget = next(s for s, a in zip(C.CLIP_CHECKPOINTS, mean_curve)
                  if a >= mean_curve.max() - C.CLIP_SETTLED)
    print(f"budget {budget} steps", flush=True)

    nine = [c for c in range(10) if c != C.HELD_OUT]
    held = {}
    if old is not None and "control_rank" in old["held_out_runs"][str(budget)][0]:
        held = old["held_out_runs"]
    for steps in (C.CLIP_LIVE_STEPS, budget) if not held else ():
        held[str(steps)] = []
        for seed in SEEDS:
            torch.manual_seed(seed)
            model = C.CLIP(text_dim=MINILM_DIM)
            C.fit_clip(model, bank, y_train, seen, steps=steps, seed=seed, classes=nine)
            held[str(steps)].append(C.held_out_scores(model, x_test, y_test, unseen_list, decoys,
                                                       controls=controls))
            print(f"held out, {steps} steps, seed {seed}: {held[str(steps)][-1]}", flush=True)

    nets = {}
    for augment in (False, True):
        rows = []
        for seed in SEEDS:
            fits = [(lr, *C.supervised_run(bank, images, labels, 320, seed, lr, augment=augment,
                                           steps=budget, batch_size=NET_BATCH))
                    for lr in NET_LRS]
            lr, _, acc, stop = min(fits, key=lambda r: r[1])
            rows.append({"lr": lr, "test": round(acc, 6), "best_step": stop,
                         "val_loss": {str(f[0]): round(f[1], 4) for f in fits}})
            print(f"network at {budget} steps, augment {augment}, seed {seed}: {rows[-1]}",
                  flush=True)
        nets["augmented" if augment else "plain"] = rows

    from_simclr = old["held_out_from_simclr"] if old is not None else {}
    if old is None:
        torch.manual_seed(0)
        simclr = C.SimCLR()
        C.fit_simclr(simclr, bank, seed=0, **C.SIMCLR_RECIPE)
    for mode in ("fine-tuned", "frozen") if old is None else ():
        rows = []
        for seed in SEEDS:
            torch.manual_seed(seed)
            model = C.CLIP(text_dim=MINILM_DIM)
            model.image_encoder.load_state_dict(simclr.encoder.state_dict())
            model.image_encoder.requires_grad_(mode == "fine-tuned")
            C.fit_clip(model, bank, y_train, seen, steps=C.CLIP_LIVE_STEPS, seed=seed,
                       classes=nine)
            rows.append(C.held_out_scores(model, x_test, y_test, unseen_list, decoys))
            print(f"from SimCLR, {mode}, seed {seed}: {rows[-1]}", flush=True)
        from_simclr[mode] = rows

    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/ch16_clip.py",
        "seeds": SEEDS, "checkpoints": C.CLIP_CHECKPOINTS, "settled_within": C.CLIP_SETTLED,
        "batch_size": 128, "lr": 3e-3, "held_out": C.HELD_OUT,
        "validation_accuracy": curves, "test_accuracy": test_curves, "budget": budget,
        "held_out_runs": held, "held_out_from_simclr": from_simclr,
        "network_at_budget": {"labels_per_class": 320, "steps": budget, "lrs": NET_LRS,
                              "batch_size": NET_BATCH,
                              "eval_every": 100, "runs": nets},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cpu_seconds": round(time.process_time() - start) + (old["cpu_seconds"] if old else 0),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s), sha256 {sha256_of(Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
