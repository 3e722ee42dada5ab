"""Chapter 11's generative models against their budget, three seeds: writes
data/ch11_generative_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/ch11_sweep.py [--out data/ch11_generative_sweep.json]
                                                    [--only-collapse]

Ring of 8 Gaussians: plain GAN, GAN + R1 and DDPM, each dlbook.generative_sweep.RING_STEPS
optimiser steps on batches of RING_BATCH drawn from one fixed training draw; MMD^2 (bandwidth
BANDWIDTH), modes covered, share of good samples; beside them the Gaussian mixture.

8x8 digits: each deep model's learning rate is chosen on validation (models trained on the fit
part, Frechet distance to the validation part, seed 0, DIGIT_TUNE_STEPS steps) from a grid;
then, at that rate, the GAN + R1 at each of DIGIT_BUDGETS steps (the three seeds side by side)
and the DDPM at DIGIT_DDPM_STEPS along one run, for each seed, scored against the held-out
digits. Beside them a Gaussian mixture whose component count is chosen on validation (log-likelihood), per seed. Spreads: the
Frechet distance of ten random 360-digit real subsets (the floor), and of DRAWS sample draws of
360 from each model at the largest budget. The plain ring GAN at a constant large rate, each seed alone: the modes it covers
every 250 steps (mode collapse; ``--only-collapse`` re-runs just this part into the file).
Seeded: a rerun on the same versions gives the same
file; the chapter re-runs seed 0 (the digits: at the shortest budget) and checks that it agrees.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from dlbook import generative_sweep as gs

ROOT = Path(__file__).resolve().parents[1]


def rounded(scores: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()}


def timed(fn):
    start = time.process_time()
    out = fn()
    return out, round(time.process_time() - start, 1)


def ring_results() -> dict:
    d = gs.ring_splits()
    out = {"second draw": rounded(gs.ring_scores(d["second"], d["test"])), "seeds": {}}
    for seed in gs.SEEDS:
        # one seed's plain and R1 GANs side by side, as the chapter re-runs seed 0
        histories, gan_cpu = timed(lambda: gs.ring_gans(d["train"], seeds=(seed,)))
        row = {name: rounded(gs.ring_scores(histories[name, seed].snapshots[gs.RING_STEPS],
                                            d["test"])) | {"cpu_seconds_both": gan_cpu}
               for name in ("plain", "R1")}
        ddpm, cpu = timed(lambda: gs.ring_ddpm(d["train"], seed))
        samples = ddpm.sample(gs.RING_SAMPLES, torch.Generator().manual_seed(1000 + seed))
        row["DDPM"] = rounded(gs.ring_scores(samples, d["test"])) | {"cpu_seconds": cpu}
        (gmm, grid), cpu = timed(lambda: gs.choose_mixture(d["train"], d["val"], gs.RING_GRID,
                                                           seed, gs.RING_REG))
        samples = gs.mixture_samples(gmm, gs.RING_SAMPLES, seed)
        row["GMM"] = rounded(gs.ring_scores(samples, d["test"])) | {
            "components": gmm.n_components, "cpu_seconds": cpu,
            "val_loglik": {str(k): round(v, 4) for k, v in grid.items()}}
        out["seeds"][str(seed)] = row
        print("ring", seed, row, flush=True)
    return out


def collapse_results() -> dict:
    """The plain GAN at a constant large rate, each seed alone: modes covered along the run."""
    d = gs.ring_splits()
    out = {"lr": gs.COLLAPSE_LR, "every": gs.COLLAPSE_EVERY, "modes": {}}
    for seed in gs.SEEDS:
        modes, cpu = timed(lambda: gs.ring_collapse(d["train"], seed))
        out["modes"][str(seed)] = modes
        print("collapse", seed, modes, cpu, flush=True)
    return out


def tune(d) -> dict:
    """Each deep model's rate on validation: fit part, seed 0, Frechet to the validation part."""
    judge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    out = {"steps": gs.DIGIT_TUNE_STEPS, "GAN": {}, "DDPM": {}}
    for lr in gs.DIGIT_GAN_LRS:
        try:
            samples, cpu = timed(lambda: gs.digit_gan(d["fit"], 0, gs.DIGIT_TUNE_STEPS, lr))
        except FloatingPointError as error:  # a rate too large diverges: it loses
            out["GAN"][str(lr)] = {"frechet": float("inf"), "error": str(error)}
            continue
        out["GAN"][str(lr)] = rounded(judge.scores(samples)) | {"cpu_seconds": cpu}
        print("tune GAN", lr, out["GAN"][str(lr)], flush=True)
    for lr in gs.DIGIT_DDPM_LRS:
        try:
            along, cpu = timed(lambda: gs.digit_ddpm_along(d["fit"], 0, lr,
                                                           (gs.DIGIT_TUNE_STEPS,)))
        except FloatingPointError as error:
            out["DDPM"][str(lr)] = {"frechet": float("inf"), "error": str(error)}
            continue
        out["DDPM"][str(lr)] = rounded(judge.scores(along[gs.DIGIT_TUNE_STEPS])) | {
            "cpu_seconds": cpu}
        print("tune DDPM", lr, out["DDPM"][str(lr)], flush=True)
    for name in ("GAN", "DDPM"):
        out[name + " lr"] = float(min(out[name], key=lambda k: out[name][k]["frechet"]))
    return out


def digit_results() -> dict:
    d = gs.digit_splits()
    out = {"tuning": tune(d)}
    lr_gan, lr_ddpm = out["tuning"]["GAN lr"], out["tuning"]["DDPM lr"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    n = 360 * gs.DRAWS
    subsets = [d["train"][torch.randperm(len(d["train"]),
                                         generator=torch.Generator().manual_seed(s))[:360]]
               for s in range(10)]
    out |= {"real training digits": rounded(judge.scores(subsets[0])),
            "real subsets frechet": [round(judge.frechet(x), 4) for x in subsets],
            "held-out fidelity": round(gs.nearest_neighbour_distance(d["held"], d["train"]), 6),
            "gan_budgets": list(gs.DIGIT_BUDGETS), "ddpm_steps": list(gs.DIGIT_DDPM_STEPS),
            "by_steps": {}, "GMM": {}, "draws frechet": {}}
    by, draws = out["by_steps"], out["draws frechet"]
    for steps in gs.DIGIT_BUDGETS:  # the three seeds' GANs side by side
        samples, cpu = timed(lambda: gs.digit_gans(d["train"], gs.SEEDS, steps, lr_gan, n))
        for seed in gs.SEEDS:
            by.setdefault(str(steps), {}).setdefault(str(seed), {})["GAN"] = rounded(
                judge.scores(samples[seed][:360])) | {"cpu_seconds_all_seeds": cpu}
            draws.setdefault(str(seed), {})["GAN"] = [round(judge.frechet(x), 4)
                                                     for x in samples[seed].split(360)]
        print("digit GANs", steps, cpu, flush=True)
    for seed in gs.SEEDS:
        along, cpu = timed(lambda: gs.digit_ddpm_along(d["train"], seed, lr_ddpm, n_last=n))
        for steps, samples in along.items():
            row = by.setdefault(str(steps), {}).setdefault(str(seed), {})
            row["DDPM"] = rounded(judge.scores(samples[:360])) | {"cpu_seconds_run": cpu}
            if seed == 0 and steps == max(along):  # the chapter shows these
                row["DDPM"]["first_16"] = [[round(v, 3) for v in img]
                                           for img in samples[:16].tolist()]
        draws[str(seed)]["DDPM"] = [round(judge.frechet(x), 4)
                                   for x in along[max(along)].split(360)]
        (gmm, grid), gmm_cpu = timed(lambda: gs.choose_mixture(d["fit"], d["val"],
                                                               gs.DIGIT_GRID, seed,
                                                               gs.DIGIT_REG))
        gmm = gs.GaussianMixture(gmm.n_components, reg_covar=gs.DIGIT_REG,
                                 random_state=seed).fit(d["train"])  # refit on all training
        samples = gs.mixture_samples(gmm, n, seed).clamp(-1, 1)
        out["GMM"][str(seed)] = rounded(judge.scores(samples[:360])) | {
            "components": gmm.n_components, "cpu_seconds": gmm_cpu,
            "val_loglik": {str(k): round(v, 4) for k, v in grid.items()}}
        draws[str(seed)]["GMM"] = [round(judge.frechet(x), 4) for x in samples.split(360)]
        print("digits", seed, {s: {k: v["frechet"] for k, v in by[s][str(seed)].items()}
                               for s in by}, out["GMM"][str(seed)]["frechet"], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / gs.SWEEP_FILE))
    parser.add_argument("--only-collapse", action="store_true",
                        help="re-run only the constant-rate collapse runs, into the existing file "
                             "(every part is seeded and independent of the others)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.process_time()
    if args.only_collapse:
        out = json.loads(Path(args.out).read_text(encoding="utf-8"))
        earlier = out["cpu_seconds"] - out.get("collapse", {}).get("cpu_seconds", 0)
    else:
        out = {
            "command": "DLBOOK_CPU_THREADS=1 python tools/ch11_sweep.py",
            "ring": {"steps": gs.RING_STEPS, "batch_size": gs.RING_BATCH} | ring_results(),
            "digits": {"batch_size": gs.DIGIT_BATCH} | digit_results(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }
        earlier = round(time.process_time() - start)
    collapse, cpu = timed(collapse_results)
    out["collapse"] = collapse | {"cpu_seconds": round(cpu)}
    out["cpu_seconds"] = earlier + out["collapse"]["cpu_seconds"]
    text = json.dumps(out, indent=1) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({out['cpu_seconds']} CPU s), sha256 "
          f"{hashlib.sha256(text.encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
