"""Chapter 16's few-label comparison in full, too long for the chapter: writes
data/ch16_few_labels.json.

    DLBOOK_CPU_THREADS=1 python tools/ch16_few_labels.py [--runs 5] [--out data/ch16_few_labels.json]

Five SimCLR runs (seeds 0-4, dlbook.contrastive.SIMCLR_RECIPE, the chapter's view bank). On the
way (dlbook.contrastive.SETTLING_STEPS), each run's encoder is probed with 4 and 16 labels per
class (the run's first draw of labels): does the probe still improve at the budget? Then, at 1,
4, 16, 64 and 320 labels per class, three draws of labelled digits per run. For each draw, with
the same labelled digits: a linear probe on the run's SimCLR features, on its untrained
encoder's features and on the raw 14 x 14 pixels (L2 strength chosen on validation from
PROBE_L2_GRID), and the same encoder trained from scratch with a linear layer (Adam rate chosen
from NETWORK_LR_GRID, NETWORK_STEPS steps of 64 with early stopping), all tuned on a validation
set as labelled as the training set (k digits per class). dlbook.contrastive.few_label_curves
does the work; the test set scores each chosen model once. Seeded: a rerun on the same versions
gives the same file; the chapter re-measures run 0's first draw.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook import contrastive as C
from dlbook.data import sha256_of

ROOT = Path(__file__).resolve().parents[1]
DRAWS = 3
SETTLING_LABELS = [4, 16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / C.FEW_LABELS_FILE))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.process_time()
    images, labels, bank = C.shrunk_splits()
    sizes = [len(x) for x in images]
    models, settling = [], []
    for seed in range(args.runs):
        torch.manual_seed(seed)
        model = C.SimCLR()
        history = C.fit_simclr(model, bank, seed=seed, **C.SIMCLR_RECIPE,
                               snapshot=torch.cat(images), snapshot_steps=C.SETTLING_STEPS)
        models.append(model)
        row = []
        for step, feats in history.snapshots:  # every digit's features at that step
            f_train, f_val, f_test = feats.split(sizes)
            scores = []
            for k in SETTLING_LABELS:
                idx = C.labelled_subset(labels[0], k, seed)
                v = C.labelled_subset(labels[1], k, 10_000 + seed)
                probe = C.LinearProbe.fit_tuned((f_train[idx], labels[0][idx]),
                                                (f_val[v], labels[1][v]), C.PROBE_L2_GRID,
                                                unlabelled=f_train)
                scores.append(round(probe.accuracy(f_test, labels[2]), 6))
            row.append(scores)
        settling.append(row)
        print(f"SimCLR run {seed}: loss {sum(history.loss[-50:]) / 50:.3f}, probe on the way "
              f"{row}", flush=True)
    result = C.few_label_curves(
        C.few_label_runs(models, images), images, labels, C.LABELS_PER_CLASS,
        draws=lambda k: DRAWS, weight_decays=C.PROBE_L2_GRID, lrs=C.NETWORK_LR_GRID,
        steps=C.NETWORK_STEPS, batch_size=64, eval_every=C.NETWORK_EVAL_EVERY)
    for name in result.accuracy:
        runs = result.per_run(name)
        print(f"{name:18s}", " ".join(f"{m:.3f}" for m in runs.mean(0)),
              "edges", result.at_edge(name).tolist())
    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/ch16_few_labels.py",
        "runs": args.runs, "draws": DRAWS, "simclr": C.SIMCLR_RECIPE,
        "network": {"steps": C.NETWORK_STEPS, "batch_size": 64,
                    "eval_every": C.NETWORK_EVAL_EVERY},
        "validation": "k digits per class (at most the smallest class), drawn per draw",
        "settling": {"steps": C.SETTLING_STEPS, "labels_per_class": SETTLING_LABELS,
                     "accuracy": settling},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cpu_seconds": round(time.process_time() - start),
        "results": C.few_labels_to_json(result),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s), sha256 {sha256_of(Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
