"""Chapter 16's checks of the SimCLR recipe and of the supervised baseline, too long for the
chapter: writes data/ch16_simclr.json.

    DLBOOK_CPU_THREADS=1 python tools/ch16_simclr.py [--out data/ch16_simclr.json] [--network-only]

1. Temperature and budget, on validation. SimCLR (dlbook.contrastive.SIMCLR_RECIPE but for the
   temperature) at tau in TAUS, seeds 0-2; at each of STEPS the encoder is probed with 4 and 16
   labels per class (run r's draw: labelled_subset(seed r), L2 strength chosen by cross-entropy
   on k validation digits per class, as in the comparison) and scored on the other validation
   digits. The recipe's tau = 0.2 runs go on to 6,000 steps; the others stop at the recipe's.
2. Jitter ablation. The recipe with and without the per-step pixel jitter (transform=None: the
   bank's crops only), seeds 0-2, 3,000 steps: the probe's test accuracy at 4 and 16 labels per
   class, beside the probe on raw pixels with the same labelled digits.
3. The supervised network with or without the augmentations (a random bank view, jittered),
   seeds 0-2, 4 / 16 / 320 labels per class, the comparison's protocol (Adam rate from LRS,
   1,000 steps of 64, the checkpoint of lowest validation cross-entropy every 100 steps).
Seeded; a rerun on the same versions gives the same file; the chapter re-measures seed 0's
tau = 0.2 run at 3,000 steps.
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
SEEDS = [0, 1, 2]
TAUS = [0.1, 0.2, 0.5, 1.0]
STEPS = [0, 250, 500, 1000, 2000, 3000, 4000, 6000]
LABELS = [4, 16]
NET_LABELS = [4, 16, 320]
LRS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]  # the comparison's grid


def network(bank, images, labels, k, seed, lr, augment, steps=1000):
    """The comparison's network on k labels per class (dlbook.contrastive.supervised_run)."""
    steps = 100 if len(LRS) < 3 else steps  # --smoke
    return C.supervised_run(bank, images, labels, k, seed, lr, augment=augment, steps=steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / C.SIMCLR_FILE))
    parser.add_argument("--smoke", action="store_true", help="a tiny run to test the code path")
    parser.add_argument("--add-taus", type=float, nargs="+", metavar="TAU",
                        help="run part 1 at these temperatures only and add them to the file "
                             "(the runs are seeded one by one: the same as a full rerun)")
    parser.add_argument("--network-only", action="store_true",
                        help="re-run part 3 only and replace it in the file (seeded: the same "
                             "as a full rerun)")
    args = parser.parse_args()
    global SEEDS, STEPS, LRS
    if args.smoke:
        SEEDS, STEPS, LRS = [0], [0, 20, 40], [1e-3, 3e-3]
        C.SIMCLR_RECIPE = {**C.SIMCLR_RECIPE, "steps": 20}
    torch.set_num_threads(1)
    start = time.process_time()
    images, labels, bank = C.shrunk_splits()
    sizes = [len(x) for x in images]

    def run(seed, tau, steps, transform=C.jitter):
        torch.manual_seed(seed)
        model = C.SimCLR()
        wanted = [s for s in STEPS if s <= steps]
        recipe = {**C.SIMCLR_RECIPE, "temperature": tau, "steps": steps}
        history = C.fit_simclr(model, bank, seed=seed, **recipe, transform=transform,
                               snapshot=torch.cat(images), snapshot_steps=wanted)
        rows = [[C.validation_probe(tuple(feats.split(sizes)), labels, seed, k) for k in LABELS]
                for _, feats in history.snapshots]  # (steps, labels, [val, test])
        return rows

    if args.add_taus:
        out = json.loads(Path(args.out).read_text(encoding="utf-8"))
        for tau in args.add_taus:
            out["settling"][str(tau)] = [run(seed, tau, C.SIMCLR_RECIPE["steps"]) for seed in SEEDS]
            print(f"tau {tau}: {out['settling'][str(tau)]}", flush=True)
        out["taus"] = sorted(float(t) for t in out["settling"])
        out["cpu_seconds"] += round(time.process_time() - start)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}, sha256 {sha256_of(Path(args.out))}")
        return 0

    def networks():
        nets = {}
        for augment in (False, True):
            rows = []
            for seed in SEEDS:
                row = []
                for k in NET_LABELS:
                    fits = [(lr, *network(bank, images, labels, k, seed, lr, augment))
                            for lr in LRS]
                    lr, _, acc, stop = min(fits, key=lambda r: r[1])
                    row.append({"lr": lr, "test": round(acc, 6), "best_step": stop})
                rows.append(row)
                print(f"network, augment {augment}, seed {seed}: {row}", flush=True)
            nets["augmented" if augment else "plain"] = rows
        return {"labels_per_class": NET_LABELS, "lrs": LRS, "steps": 1000, "eval_every": 100,
                "runs": nets}

    if args.network_only:
        out = json.loads(Path(args.out).read_text(encoding="utf-8"))
        out["network"] = networks()
        out["cpu_seconds"] += round(time.process_time() - start)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}, sha256 {sha256_of(Path(args.out))}")
        return 0

    settling = {}
    for tau in TAUS:
        settling[str(tau)] = []
        for seed in SEEDS:
            steps = max(STEPS) if tau == C.SIMCLR_RECIPE["temperature"] else C.SIMCLR_RECIPE["steps"]
            settling[str(tau)].append(run(seed, tau, steps))
            print(f"tau {tau} seed {seed}: {settling[str(tau)][-1]}", flush=True)
    no_jitter = []
    for seed in SEEDS:
        no_jitter.append(run(seed, C.SIMCLR_RECIPE["temperature"], C.SIMCLR_RECIPE["steps"],
                             transform=None)[-1])
        print(f"no jitter seed {seed}: {no_jitter[-1]}", flush=True)
    pixels = [[C.validation_probe(tuple(x.flatten(1) for x in images), labels, seed, k) for k in LABELS]
              for seed in SEEDS]
    print(f"pixels: {pixels}", flush=True)

    nets = networks()

    out = {
        "command": "DLBOOK_CPU_THREADS=1 python tools/ch16_simclr.py",
        "seeds": SEEDS, "taus": TAUS, "steps": STEPS, "labels_per_class": LABELS,
        "recipe": C.SIMCLR_RECIPE,
        "settling": settling,  # tau -> (seeds, steps, labels, [validation, test])
        "no_jitter": no_jitter,  # (seeds, labels, [validation, test]) at 3,000 steps
        "pixels": pixels,  # (seeds, labels, [validation, test])
        "network": nets,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "cpu_seconds": round(time.process_time() - start),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s), sha256 {sha256_of(Path(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
