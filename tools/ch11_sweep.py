"""Chapter 11's generative models against their budget, three seeds: writes
data/ch11_generative_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/ch11_sweep.py [--out data/ch11_generative_sweep.json]
                                                    [--only ring-long,collapse,digit-alone]

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
every 250 steps, with the mass per mode (``--only collapse`` re-runs just this part into the
file). The ring at the settled budget (RING_LONG_STEPS), each model's rate chosen on the
validation draw (``ring-long``); the digit GAN's seed 0 trained alone, as the chapter re-trains
it (``digit-alone``); the digit DDPM, each seed run on to 12,000 steps (``digit-ddpm-long``); the digit mixture's variance
floor and component count chosen on validation Frechet, as the deep models' rates are
(``digit-gmm``).
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
OUT = str(ROOT / "data" / gs.SWEEP_FILE)  # the file being written (--out)


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
    """The plain GAN at a constant large rate, each seed alone: modes covered and the mass per
    mode (share of samples nearest each centre) along the run; at COLLAPSE_LR and a larger
    rate."""
    d = gs.ring_splits()
    out = {"lr": gs.COLLAPSE_LR, "every": gs.COLLAPSE_EVERY, "modes": {}, "by_lr": {}}
    for lr in gs.COLLAPSE_LRS:
        row = out["by_lr"][str(lr)] = {}
        for seed in gs.SEEDS:
            snaps, cpu = timed(lambda: gs.ring_collapse_snapshots(d["train"], seed, lr=lr))
            row[str(seed)] = {
                "modes": [gs.modes_covered(x, gs.ring_centres(), 3 * gs.STD)[0]
                          for s, x in snaps.items() if s],
                "good": [round(gs.modes_covered(x, gs.ring_centres(), 3 * gs.STD)[1], 4)
                         for s, x in snaps.items() if s],
                "shares": [[round(v, 4) for v in gs.mode_shares(x)]
                           for s, x in snaps.items() if s], "cpu_seconds": cpu}
            if lr == gs.COLLAPSE_LR:
                out["modes"][str(seed)] = row[str(seed)]["modes"]
            print("collapse", lr, seed, row[str(seed)]["modes"],
                  [min(x) for x in row[str(seed)]["shares"]], cpu, flush=True)
    return out


def long_scores(samples, d) -> dict:
    return rounded(gs.ring_scores(samples, d["test"], gs.BANDWIDTHS)) | {
        "shares": [round(v, 4) for v in gs.mode_shares(samples)]}


def ring_long_results() -> dict:
    """The ring at the settled budget: each model's rate chosen on the validation draw (seed
    0, MMD^2 at h = 0.3, RING_LONG_STEPS steps), then three seeds at that rate, every
    bandwidth; the DDPM scored along its run (RING_DDPM_CHECKPOINTS)."""
    d = gs.ring_splits()
    steps = gs.RING_LONG_STEPS
    out = {"steps": steps, "ddpm_checkpoints": list(gs.RING_DDPM_CHECKPOINTS),
           "tuning": {"plain": {}, "R1": {}, "DDPM": {}}, "seeds": {}}
    tune, test0 = out["tuning"], {}
    for lr in gs.RING_GAN_LRS:
        final, cpu = timed(lambda: gs.ring_gans_at(d["train"], 0, {"plain": lr, "R1": lr}))
        for name, x in final.items():
            tune[name][str(lr)] = {"val_mmd2": round(gs.mmd2(x, d["val"], gs.BANDWIDTH), 6),
                                   "cpu_seconds_both": cpu}
            test0[name, lr] = long_scores(x, d)
        print("ring tune GANs", lr, {n: tune[n][str(lr)] for n in final}, flush=True)
    for lr in gs.RING_DDPM_LRS:
        along, cpu = timed(lambda: gs.ring_ddpm_along(d["train"], 0, lr))
        tune["DDPM"][str(lr)] = {"val_mmd2": round(gs.mmd2(along[steps], d["val"],
                                                           gs.BANDWIDTH), 6),
                                 "cpu_seconds": cpu}
        test0["DDPM", lr] = {c: long_scores(x, d) for c, x in along.items()}
        print("ring tune DDPM", lr, tune["DDPM"][str(lr)], flush=True)
    pick = {n: float(min(tune[n], key=lambda k: tune[n][k]["val_mmd2"])) for n in tune}
    out["lr"] = pick
    for seed in gs.SEEDS:
        if seed == 0:
            row = {n: test0[n, pick[n]] for n in ("plain", "R1")}
            along = test0["DDPM", pick["DDPM"]]
        else:
            final, cpu = timed(lambda: gs.ring_gans_at(d["train"], seed,
                                                       {n: pick[n] for n in ("plain", "R1")}))
            row = {n: long_scores(x, d) | {"cpu_seconds": cpu} for n, x in final.items()}
            runs, cpu = timed(lambda: gs.ring_ddpm_along(d["train"], seed, pick["DDPM"]))
            along = {c: long_scores(x, d) for c, x in runs.items()}
        row["DDPM"] = along[steps]
        row["DDPM along"] = {str(c): v for c, v in along.items()}
        out["seeds"][str(seed)] = row
        print("ring long", seed, row, flush=True)
    return out


def ring_long_extend() -> dict:
    """The GAN rate grid extended by RING_GAN_EXTRA_LR (seed 0, validation draw), added to
    the ring-long part in place: R1's pick sat at the grid's top. Fails loudly if a pick
    moves (the seeds would then need re-running at the new rate)."""
    d = gs.ring_splits()
    out = json.loads(Path(OUT).read_text(encoding="utf-8"))["ring_long"]
    lr = gs.RING_GAN_EXTRA_LR
    final, cpu = timed(lambda: gs.ring_gans_at(d["train"], 0, {"plain": lr, "R1": lr}))
    for name, x in final.items():
        out["tuning"][name][str(lr)] = {
            "val_mmd2": round(gs.mmd2(x, d["val"], gs.BANDWIDTH), 6),
            "cpu_seconds_both": cpu, "test": long_scores(x, d)}
        tune = out["tuning"][name]
        best = float(min(tune, key=lambda k: tune[k]["val_mmd2"]))
        print("ring extend", name, lr, tune[str(lr)], "pick", best, flush=True)
        if best != out["lr"][name]:
            raise SystemExit(f"{name}'s pick moved to {best}: re-run --only ring-long")
    return out


def ring_gmm_results() -> dict:
    """The ring's mixtures (as in ring_results) scored at every bandwidth, with the mass per
    mode, for every seed."""
    d = gs.ring_splits()
    out = {}
    for seed in gs.SEEDS:
        gmm, _ = gs.choose_mixture(d["train"], d["val"], gs.RING_GRID, seed, gs.RING_REG)
        out[str(seed)] = long_scores(gs.mixture_samples(gmm, gs.RING_SAMPLES, seed), d) | {
            "components": gmm.n_components}
        print("ring GMM", seed, out[str(seed)], flush=True)
    return out


def digit_alone_results() -> dict:
    """The digit GAN, seed 0 trained alone (not side by side with the other seeds, as the
    chapter re-trains it), at the tuned rate: 1,500 and 6,000 steps; 16 samples of the
    latter to show."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr = sweep["digits"]["tuning"]["GAN lr"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    out = {"lr": lr}
    for steps in gs.DIGIT_BUDGETS:
        samples, cpu = timed(lambda: gs.digit_gan(d["train"], 0, steps, lr, 360 * gs.DRAWS))
        out[str(steps)] = rounded(judge.scores(samples[:360])) | {
            "cpu_seconds": cpu,
            "draws frechet": [round(judge.frechet(x), 4) for x in samples.split(360)],
            "first_16": [[round(v, 3) for v in img] for img in samples[:16].tolist()]}
        print("digit GAN alone", steps, out[str(steps)]["frechet"], cpu, flush=True)
    return out


DIGIT_DDPM_LONG = (6000, 9000, 12000)  # the digit DDPM, still improving at 6,000, run on


def digit_ddpm_long_results() -> dict:
    """The digit DDPM at its tuned constant rate, each seed run to 12,000 steps: the Frechet
    distance of DRAWS draws of 360 at each of DIGIT_DDPM_LONG (6,000 repeats the main run)."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr = sweep["digits"]["tuning"]["DDPM lr"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    out = {"lr": lr, "checkpoints": list(DIGIT_DDPM_LONG), "seeds": {}}
    for seed in gs.SEEDS:
        along, cpu = timed(lambda: gs.digit_ddpm_along(d["train"], seed, lr, DIGIT_DDPM_LONG,
                                                       n=360 * gs.DRAWS))
        out["seeds"][str(seed)] = {
            "cpu_seconds_run": cpu,
            "draws frechet": {str(c): [round(judge.frechet(x), 4) for x in along[c].split(360)]
                              for c in DIGIT_DDPM_LONG}}
        print("digit DDPM long", seed, out["seeds"][str(seed)], flush=True)
    return out


def collapse_frames_results() -> dict:
    """Seed 0 of the constant-rate plain GAN at each rate: the first FRAME_POINTS samples of
    every snapshot, for the chapter's slider (re-running them there costs 8 CPU seconds)."""
    d = gs.ring_splits()
    out = {}
    for lr in gs.COLLAPSE_LRS:
        snaps = gs.ring_collapse_snapshots(d["train"], 0, lr=lr)
        out[str(lr)] = {str(s): [[round(v, 2) for v in p] for p in x[:FRAME_POINTS].tolist()]
                        for s, x in snaps.items() if s % FRAME_EVERY == 0}
    return out


# the digit mixture's variance floors and component counts, chosen on validation Frechet
DIGIT_GMM_REGS = (0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01)
DIGIT_GMM_KS = (16, 32, 64)


def digit_gmm_results() -> dict:
    """The digit mixture tuned as the deep models are: (reg_covar, components) chosen by the
    Frechet distance to the validation part (fit on the fit part, seed 0) from a grid that
    must bracket the pick; then refit on the training digits per seed and scored on DRAWS
    draws of 360 against the held-out digits (the first draw's three scores beside)."""
    d = gs.digit_splits()
    vjudge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    grid = {}
    for reg in DIGIT_GMM_REGS:
        for k in DIGIT_GMM_KS:
            g = gs.GaussianMixture(k, reg_covar=reg, random_state=0).fit(d["fit"])
            x = gs.mixture_samples(g, len(d["val"]), 0).clamp(-1, 1)
            grid[f"{reg} {k}"] = round(vjudge.frechet(x), 4)
            print("digit GMM val", reg, k, grid[f"{reg} {k}"], flush=True)
    reg, k = min(grid, key=grid.get).split()
    reg, k = float(reg), int(k)
    out = {"regs": list(DIGIT_GMM_REGS), "components": list(DIGIT_GMM_KS),
           "val frechet": grid, "pick": {"reg_covar": reg, "components": k}, "seeds": {}}
    for seed in gs.SEEDS:
        g = gs.GaussianMixture(k, reg_covar=reg, random_state=seed).fit(d["train"])
        x = gs.mixture_samples(g, 360 * gs.DRAWS, seed).clamp(-1, 1)
        out["seeds"][str(seed)] = rounded(judge.scores(x[:360])) | {
            "draws frechet": [round(judge.frechet(s), 4) for s in x.split(360)]}
        print("digit GMM tuned", seed, out["seeds"][str(seed)], flush=True)
    return out


FRAME_POINTS, FRAME_EVERY = 800, 500  # the slider's points and steps
PARTS = {"ring-long": ("ring_long", ring_long_results),
         "collapse": ("collapse", collapse_results),
         "digit-alone": ("digit_alone", digit_alone_results),
         "ring-long-extend": ("ring_long", ring_long_extend),
         "ring-gmm": ("ring_gmm", ring_gmm_results),
         "collapse-frames": ("collapse_frames", collapse_frames_results),
         "digit-ddpm-long": ("digit_ddpm_long", digit_ddpm_long_results),
         "digit-gmm": ("digit_gmm", digit_gmm_results)}


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
    parser.add_argument("--only", default="",
                        help="comma-separated parts to re-run into the existing file, each "
                             "written when done (every part is seeded and independent): "
                             + ", ".join(PARTS))
    args = parser.parse_args()
    global OUT
    OUT = args.out
    torch.set_num_threads(1)
    start = time.process_time()
    if args.only:
        for part in args.only.split(","):
            key, fn = PARTS[part]
            result, cpu = timed(fn)
            out = json.loads(Path(args.out).read_text(encoding="utf-8"))
            cpu = round(cpu) + result.pop("cpu_seconds", 0)  # an extension adds to its part
            out["cpu_seconds"] += cpu - out.get(key, {}).get("cpu_seconds", 0)
            out[key] = result | {"cpu_seconds": cpu}
            write(out, args.out)
        return 0
    else:
        out = {
            "command": "DLBOOK_CPU_THREADS=1 python tools/ch11_sweep.py",
            "ring": {"steps": gs.RING_STEPS, "batch_size": gs.RING_BATCH} | ring_results(),
            "digits": {"batch_size": gs.DIGIT_BATCH} | digit_results(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }
        earlier = round(time.process_time() - start)
    out["cpu_seconds"] = earlier
    write(out, args.out)  # digit-alone reads the tuned rate from it
    for key, fn in PARTS.values():
        result, cpu = timed(fn)
        cpu = round(cpu) + result.pop("cpu_seconds", 0)
        out["cpu_seconds"] += cpu - out.get(key, {}).get("cpu_seconds", 0)
        out[key] = result | {"cpu_seconds": cpu}
        write(out, args.out)
    return 0


def write(out: dict, path: str) -> None:
    text = json.dumps(out, indent=1) + "\n"
    Path(path).write_text(text, encoding="utf-8")
    print(f"wrote {path} ({out['cpu_seconds']} CPU s), sha256 "
          f"{hashlib.sha256(text.encode()).hexdigest()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
