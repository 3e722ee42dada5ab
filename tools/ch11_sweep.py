"""Chapter 11's generative models against their budget: writes
data/ch11_generative_sweep.json.

    DLBOOK_CPU_THREADS=1 python tools/ch11_sweep.py [--out data/ch11_generative_sweep.json]
                                                    [--only ring-long,collapse,digit-alone]

Ring of 8 Gaussians: plain GAN, GAN + R1 and DDPM, each dlbook.generative_sweep.RING_STEPS
optimiser steps on batches of RING_BATCH drawn from one fixed training draw; MMD^2 (bandwidth
BANDWIDTH), modes covered, share of good samples, three seeds; beside them the Gaussian
mixture, its component count chosen by validation log-likelihood (the mixture's own
objective). The ring at the settled budget (RING_LONG_STEPS), each model's rate chosen on the
validation draw (``ring-long``), each GAN trained alone at its rate; seed 0's two GANs re-run
that way, with their samples stored (``ring-seed0-alone``: the first ring-long run took seed
0 from the tuning runs, where both GANs trained side by side at one rate). The plain ring GAN
at a constant large rate, each seed alone: the modes it covers every 250 steps, with the mass
per mode (``collapse``).

8x8 digits: each deep model's learning rate is chosen on validation (models trained on the fit
part, Frechet distance to the validation part, seed 0, DIGIT_TUNE_STEPS steps) from a grid;
then, at that rate, the GAN + R1 at each of DIGIT_BUDGETS steps (the seeds side by side) and
the DDPM at DIGIT_DDPM_STEPS along one run, for seeds 0-2, scored against the held-out digits;
seeds 3-5 of both at 6,000 steps (``digit-more``). Spreads: the Frechet distance of ten random
360-digit real subsets (the floor), and of DRAWS sample draws of 360 from each model at the
largest budget. The digit mixture: its variance floor and component count chosen on validation
Frechet, as the deep models' rates are: on one sample draw over 16, 32, 64 components
(``digit-gmm``), then on the mean of five draws over 16, 24, 32, 48, 64 (``digit-gmm5``, the
chapter's; floors 1e-6 and 3e-6 added by ``digit-gmm5-extend`` after the pick sat at the
grid's then lowest floor). The pick is the validation minimum (``digit-gmm5-argmin``), as for
the deep models' rates; it sits at the lowest floor, a boundary (floor 0 is singular), where
the validation curve has gone flat, which the part checks; refitted for seeds 0-5. The deep
models' rates scored on five validation draws too (``digit-tune5``; both grids extended by
one rate, ``digit-tune5-extend``, after both five-draw means sat at the grid's top). Both deep
models, seeds 0-5, at 6,000 steps at the five-draw pick as well (``digit-pick5-gan``,
``digit-pick5-ddpm``), so the verdicts can be read at both rates. The digit DDPM's seed 0
sampling 16 digits, x_t and its guess of x_0 along the chain (``digit-reverse``). (The
first digit mixture, in ``digits``, had its floor set by hand and its count chosen by
log-likelihood; the chapter quotes it as the untuned baseline.)
The digit GAN's seed 0 trained alone, as the chapter re-trains it (``digit-alone``); the digit
DDPM, each seed run on to 12,000 steps (``digit-ddpm-long``); the digit DDPM's seed 0 with the
GAN's half-cosine rate schedule in place of its constant rate (``digit-ddpm-cosine``).
Seeded: a rerun on the same versions gives the same file; the chapter re-runs seed 0 (the
digits: the GAN at the shortest budget, and the mixture) and checks that it agrees.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dlbook import generative_sweep as gs
from dlbook.diffusion import DDPM, Denoiser, DenoiserConfig
from dlbook.training import warmup_cosine

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
    for seed in gs.SEEDS:  # each GAN alone at its own rate (seed 0 too, as ring-seed0-alone)
        final, cpu = timed(lambda: gs.ring_gans_at(d["train"], seed,
                                                   {n: pick[n] for n in ("plain", "R1")}))
        row = {n: long_scores(x, d) | {"cpu_seconds": cpu} for n, x in final.items()}
        if seed == 0:
            along = test0["DDPM", pick["DDPM"]]
        else:
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


# --- round 8: more seeds, a five-draw mixture choice, stored ring samples, a schedule control ---
MORE_SEEDS = (3, 4, 5)  # added to gs.SEEDS for the digits' verdict at 6,000 steps
DIGIT_GMM5_KS = (16, 24, 32, 48, 64)  # components, bracketing the five-draw pick
VAL_DRAWS = 5  # mixture sample draws (of the validation part's size) per grid point


def digit_gmm_seed_scores(train, judge, k: int, reg: float) -> dict:
    """The digit mixture (k components, variance floor reg) refitted on every seed, SEEDS and
    MORE_SEEDS: the first draw's three scores and DRAWS draws' Frechet distances, by seed."""
    scores = {}
    for seed in gs.SEEDS + MORE_SEEDS:
        g = gs.GaussianMixture(k, reg_covar=reg, random_state=seed).fit(train)
        x = gs.mixture_samples(g, 360 * gs.DRAWS, seed).clamp(-1, 1)
        scores[str(seed)] = rounded(judge.scores(x[:360])) | {
            "draws frechet": [round(judge.frechet(s), 4) for s in x.split(360)]}
        print("digit GMM5", seed, scores[str(seed)], flush=True)
    return scores


def digit_gmm5_results() -> dict:
    """The digit mixture's floor and component count chosen on the mean validation Frechet of
    VAL_DRAWS sample draws (one draw moves the number by more than the grid's steps), over
    DIGIT_GMM_REGS x DIGIT_GMM5_KS; then refit on the training digits for every seed of
    SEEDS + MORE_SEEDS and scored on DRAWS draws of 360 against the held-out digits (the first
    draw's three scores beside)."""
    d = gs.digit_splits()
    vjudge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    nv, grid, draws = len(d["val"]), {}, {}
    for reg in DIGIT_GMM_REGS:
        for k in DIGIT_GMM5_KS:
            g = gs.GaussianMixture(k, reg_covar=reg, random_state=0).fit(d["fit"])
            x = gs.mixture_samples(g, nv * VAL_DRAWS, 0).clamp(-1, 1)
            draws[f"{reg} {k}"] = [round(vjudge.frechet(s), 4) for s in x.split(nv)]
            grid[f"{reg} {k}"] = round(float(np.mean(draws[f"{reg} {k}"])), 4)
            print("digit GMM val5", reg, k, grid[f"{reg} {k}"], flush=True)
    reg, k = min(grid, key=grid.get).split()
    reg, k = float(reg), int(k)
    out = {"regs": list(DIGIT_GMM_REGS), "components": list(DIGIT_GMM5_KS),
           "val draws": VAL_DRAWS, "val frechet": grid, "val frechet draws": draws,
           "pick": {"reg_covar": reg, "components": k}, "seeds": {}}
    out["seeds"] = digit_gmm_seed_scores(d["train"], judge, k, reg)
    return out


DIGIT_GMM5_EXTRA_REGS = (1e-6, 3e-6)  # added after the pick sat at 1e-5, the grid's edge


def digit_gmm5_extend() -> dict:
    """The five-draw grid extended by DIGIT_GMM5_EXTRA_REGS (every component count), added to
    digit-gmm5 in place; if the pick moves, the seeds are refitted at the new one."""
    d = gs.digit_splits()
    vjudge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    out = json.loads(Path(OUT).read_text(encoding="utf-8"))["digit_gmm5"]
    nv = len(d["val"])
    for reg in DIGIT_GMM5_EXTRA_REGS:
        for k in out["components"]:
            g = gs.GaussianMixture(k, reg_covar=reg, random_state=0).fit(d["fit"])
            x = gs.mixture_samples(g, nv * VAL_DRAWS, 0).clamp(-1, 1)
            out["val frechet draws"][f"{reg} {k}"] = [round(vjudge.frechet(s), 4)
                                                     for s in x.split(nv)]
            out["val frechet"][f"{reg} {k}"] = round(
                float(np.mean(out["val frechet draws"][f"{reg} {k}"])), 4)
            print("digit GMM val5 extend", reg, k, out["val frechet"][f"{reg} {k}"], flush=True)
    out["regs"] = sorted(set(out["regs"]) | set(DIGIT_GMM5_EXTRA_REGS))
    reg, k = min(out["val frechet"], key=out["val frechet"].get).split()
    reg, k = float(reg), int(k)
    print("pick", reg, k, "was", out["pick"], flush=True)
    if {"reg_covar": reg, "components": k} != out["pick"]:
        out["pick"] = {"reg_covar": reg, "components": k}
        out["seeds"] = digit_gmm_seed_scores(d["train"], judge, k, reg)
    return out


FLAT_DECADE = 0.01  # the validation mean may move by less than this over the decade above
# a pick at the grid's lowest floor (set after the held-out scores at that floor were known:
# it checks that the curve is flat where the pick sits, it did not choose the pick)


def digit_gmm5_argmin() -> dict:
    """The five-draw grid's pick: its validation minimum, as for the deep models' rates. The
    minimum sits at the lowest floor, which is a boundary (floor 0 is singular), not an untried
    region; checks that the curve is flat there (the mean moves by less than FLAT_DECADE over
    the decade of floors above the pick, and does not fall anywhere above it), and stores the
    paired differences of every floor from the pick (same sampling seed, draw by draw). Refits
    the six seeds at the pick."""
    d = gs.digit_splits()
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    out = json.loads(Path(OUT).read_text(encoding="utf-8"))["digit_gmm5"]
    for key in ("one se", "argmin"):
        out.pop(key, None)
    grid, draws = out["val frechet"], out["val frechet draws"]
    best = min(grid, key=grid.get)
    reg, k = float(best.split()[0]), int(best.split()[1])
    regs = sorted(out["regs"])
    above = [r for r in regs if r >= reg]
    decade = [grid[f"{r} {k}"] for r in above if r < 10.5 * reg]
    assert max(decade) - min(decade) < FLAT_DECADE, decade
    assert all(grid[f"{r} {k}"] >= grid[best] for r in above), "a floor above beats the pick"
    paired = {}
    for r in regs:
        diff = np.subtract(draws[f"{r} {k}"], draws[best])
        paired[str(r)] = {"mean": round(float(diff.mean()), 4),
                          "se": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4)}
    out["pick rule"] = "validation minimum (mean of five draws)"
    out["flat decade"] = FLAT_DECADE
    out["paired from pick"] = paired
    out["pick"] = {"reg_covar": reg, "components": k}
    print("argmin pick", out["pick"], paired, flush=True)
    out["seeds"] = digit_gmm_seed_scores(d["train"], judge, k, reg)
    return out


def digit_tune5_results() -> dict:
    """The deep models' rates scored as the mixture's floor is: each rate's seed-0 run on the
    fit part (DIGIT_TUNE_STEPS steps, as in tune) drawn VAL_DRAWS times (of the validation
    part's size), Frechet to the validation part per draw. The runs keep the stored rates
    (the seeds were trained at them); the part reports whether the five-draw mean agrees."""
    d = gs.digit_splits()
    vjudge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    nv, steps = len(d["val"]), gs.DIGIT_TUNE_STEPS
    out = {"steps": steps, "val draws": VAL_DRAWS, "GAN": {}, "DDPM": {}}
    for lr in gs.DIGIT_GAN_LRS:
        x, cpu = timed(lambda: gs.digit_gan(d["fit"], 0, steps, lr, nv * VAL_DRAWS))
        out["GAN"][str(lr)] = {"draws frechet": [round(vjudge.frechet(s), 4)
                                                 for s in x.clamp(-1, 1).split(nv)],
                               "cpu_seconds": cpu}
        print("tune5 GAN", lr, out["GAN"][str(lr)], flush=True)
    for lr in gs.DIGIT_DDPM_LRS:
        along, cpu = timed(lambda: gs.digit_ddpm_along(d["fit"], 0, lr, (steps,),
                                                       n=nv * VAL_DRAWS))
        out["DDPM"][str(lr)] = {"draws frechet": [round(vjudge.frechet(s), 4)
                                                  for s in along[steps].split(nv)],
                                "cpu_seconds": cpu}
        print("tune5 DDPM", lr, out["DDPM"][str(lr)], flush=True)
    for name in ("GAN", "DDPM"):
        means = {r: float(np.mean(v["draws frechet"])) for r, v in out[name].items()}
        out[name + " five-draw pick"] = float(min(means, key=means.get))
        out[name + " lr used"] = sweep["digits"]["tuning"][name + " lr"]
    return out


TUNE5_EXTRA_LRS = {"GAN": 3.2e-2, "DDPM": 1e-2}  # both five-draw means sat at the top rate


def digit_tune5_extend() -> dict:
    """digit-tune5's grids extended by TUNE5_EXTRA_LRS (a diverging run scores inf), added in
    place."""
    d = gs.digit_splits()
    vjudge = gs.DigitJudge(d["fit"], d["y_fit"], d["val"])
    out = json.loads(Path(OUT).read_text(encoding="utf-8"))["digit_tune5"]
    nv, steps = len(d["val"]), out["steps"]
    for name, lr in TUNE5_EXTRA_LRS.items():
        try:
            if name == "GAN":
                x, cpu = timed(lambda: gs.digit_gan(d["fit"], 0, steps, lr, nv * VAL_DRAWS))
            else:
                along, cpu = timed(lambda: gs.digit_ddpm_along(d["fit"], 0, lr, (steps,),
                                                               n=nv * VAL_DRAWS))
                x = along[steps]
            row = {"draws frechet": [round(vjudge.frechet(s), 4)
                                     for s in x.clamp(-1, 1).split(nv)], "cpu_seconds": cpu}
        except FloatingPointError as error:
            row = {"draws frechet": [1e9] * VAL_DRAWS, "error": str(error)}
        out[name][str(lr)] = row
        means = {r: float(np.mean(v["draws frechet"])) for r, v in out[name].items()}
        out[name + " five-draw pick"] = float(min(means, key=means.get))
        print("tune5 extend", name, lr, row, "pick", out[name + " five-draw pick"], flush=True)
    return out


REVERSE_KEEP = (200, 150, 100, 70, 50, 30, 20, 10, 5, 0)  # the digit reverse chain's frames


def digit_reverse_results() -> dict:
    """The digit DDPM's seed 0 (tuned constant rate, 6,000 steps, as in the main run) sampling
    16 digits: x_t at each of REVERSE_KEEP and the denoiser's guess of x_0 from it,
    x0_hat = (x_t - sqrt(1 - abar_t) eps(x_t, t)) / sqrt(abar_t), for the chapter's slider."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr, steps = sweep["digits"]["tuning"]["DDPM lr"], gs.DIGIT_BUDGETS[-1]
    ddpm, cpu = timed(lambda: gs.digit_ddpm(d["train"], 0, steps, lr))
    x0, kept = ddpm.sample(16, torch.Generator().manual_seed(1000), keep=REVERSE_KEEP)
    abars = ddpm.schedule.alpha_bars.tolist()
    out = {"seed": 0, "steps": steps, "lr": lr, "cpu_seconds_run": cpu, "x_t": {}, "x0_hat": {}}
    with torch.no_grad():
        for t, x in sorted(kept.items()):
            if t == 0:
                guess = x
            else:
                eps = ddpm.ema(x, torch.full((16,), t, dtype=torch.long))
                guess = (x - (1 - abars[t - 1]) ** 0.5 * eps) / abars[t - 1] ** 0.5
            out["x_t"][str(t)] = [[round(v, 3) for v in r] for r in x.tolist()]
            out["x0_hat"][str(t)] = [[round(v, 3) for v in r] for r in guess.tolist()]
    print("digit reverse", cpu, sorted(kept), flush=True)
    return out


def digit_more_results() -> dict:
    """Seeds MORE_SEEDS of the two digit deep models at 6,000 steps, trained as seeds 0-2 are:
    the GAN's three side by side (cosine rate, the tuned peak), the DDPM each alone (constant
    tuned rate); the first draw's three scores and DRAWS draws' Frechet distances."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr_gan, lr_ddpm = (sweep["digits"]["tuning"][n + " lr"] for n in ("GAN", "DDPM"))
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    steps, n = gs.DIGIT_BUDGETS[-1], 360 * gs.DRAWS
    out = {"steps": steps, "seeds": {}}
    gans, cpu = timed(lambda: gs.digit_gans(d["train"], MORE_SEEDS, steps, lr_gan, n))
    for seed in MORE_SEEDS:
        x = gans[seed]
        out["seeds"][str(seed)] = {"GAN": rounded(judge.scores(x[:360])) | {
            "cpu_seconds_all_seeds": cpu,
            "draws frechet": [round(judge.frechet(s), 4) for s in x.split(360)]}}
        print("digit GAN more", seed, out["seeds"][str(seed)]["GAN"], flush=True)
    for seed in MORE_SEEDS:
        along, cpu = timed(lambda: gs.digit_ddpm_along(d["train"], seed, lr_ddpm, (steps,),
                                                       n=n))
        x = along[steps]
        out["seeds"][str(seed)]["DDPM"] = rounded(judge.scores(x[:360])) | {
            "cpu_seconds_run": cpu,
            "draws frechet": [round(judge.frechet(s), 4) for s in x.split(360)]}
        print("digit DDPM more", seed, out["seeds"][str(seed)]["DDPM"], flush=True)
    return out


def digit_ddpm_cosine_results() -> dict:
    """The schedule control: the digit DDPM, seed 0, 6,000 steps with the GAN's schedule (its
    tuned rate falling along half a cosine to zero, no warm-up) in place of a constant one;
    DRAWS draws of 360, scored as the constant-rate run is."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr = sweep["digits"]["tuning"]["DDPM lr"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    steps = gs.DIGIT_BUDGETS[-1]
    torch.manual_seed(0)
    ddpm = DDPM(Denoiser(DenoiserConfig.digits()), gs.digit_schedule(), lr=lr, ema_decay=0.99)
    decay = warmup_cosine(0, steps, final_fraction=0.0)(ddpm.optimizer)
    plain_step = ddpm.step

    def step(x0, generator=None):  # a DDPM step, then the rate's
        loss = plain_step(x0, generator)
        decay.step()
        return loss

    ddpm.step = step
    (x,), cpu = timed(lambda: list(gs.ddpm_along(ddpm, d["train"], (steps,), gs.DIGIT_BATCH, 0,
                                                 360 * gs.DRAWS, 1000).values()))
    x = x.clamp(-1, 1)
    out = {"seed": 0, "steps": steps, "lr": lr, "schedule": "half cosine to 0",
           "scores": rounded(judge.scores(x[:360])),
           "draws frechet": [round(judge.frechet(s), 4) for s in x.split(360)],
           "cpu_seconds_run": cpu}
    print("digit DDPM cosine", out, flush=True)
    return out


def ring_seed0_alone_results() -> dict:
    """Seed 0 of the two ring GANs at RING_LONG_STEPS, each alone at its tuned rate, as seeds
    1 and 2 are (the stored ring_long seed 0 came from the tuning runs, where plain and R1
    trained side by side at one rate): their scores, which replace seed 0's in ring_long, and
    their samples, rounded to 4 decimals, for the chapter's widths and offsets."""
    d = gs.ring_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    pick = sweep["ring_long"]["lr"]
    out = {"steps": gs.RING_LONG_STEPS, "lr": {n: pick[n] for n in ("plain", "R1")}}
    for name in ("plain", "R1"):  # one at a time, each alone
        final, cpu = timed(lambda: gs.ring_gans_at(d["train"], 0, {name: pick[name]}))
        x = final[name]
        out[name] = long_scores(x, d) | {
            "cpu_seconds": cpu, "samples": [[round(v, 4) for v in p] for p in x.tolist()]}
        print("ring seed 0 alone", name, {k: v for k, v in out[name].items()
                                          if k != "samples"}, flush=True)
    seed0 = sweep["ring_long"]["seeds"]["0"]  # seed 0's row now comes from these runs
    for name in ("plain", "R1"):
        seed0.setdefault(name + " (tuning run, side by side)", seed0[name])
        seed0[name] = {k: v for k, v in out[name].items() if k != "samples"}
    write(sweep, OUT)
    return out


def digit_pick5_gan() -> dict:
    """The digit GAN at digit-tune5's five-draw pick instead of the one-draw pick the runs use:
    seeds 0-5 at 6,000 steps on the full training split, three side by side as the main runs,
    DRAWS draws of 360 scored against the held-out digits."""
    d = gs.digit_splits()
    sweep = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr = sweep["digit_tune5"]["GAN five-draw pick"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    steps, n = gs.DIGIT_BUDGETS[-1], 360 * gs.DRAWS
    out = {"steps": steps, "GAN lr": lr, "seeds": {}}
    for seeds in (gs.SEEDS, MORE_SEEDS):
        gans, cpu = timed(lambda: gs.digit_gans(d["train"], seeds, steps, lr, n))
        for seed in seeds:
            out["seeds"][str(seed)] = {"GAN": {"cpu_seconds_three_seeds": cpu, "draws frechet": [
                round(judge.frechet(s), 4) for s in gans[seed].split(360)]}}
            print("pick5 GAN", seed, out["seeds"][str(seed)], flush=True)
    return out


def digit_pick5_ddpm() -> dict:
    """The digit DDPM at digit-tune5's five-draw pick, each seed alone (constant rate, 6,000
    steps, as the main runs), added in place to digit-pick5-gan's part."""
    d = gs.digit_splits()
    out = json.loads(Path(OUT).read_text(encoding="utf-8"))
    lr, out = out["digit_tune5"]["DDPM five-draw pick"], out["digit_pick5"]
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    steps, n = out["steps"], 360 * gs.DRAWS
    out["DDPM lr"] = lr
    for seed in gs.SEEDS + MORE_SEEDS:
        along, cpu = timed(lambda: gs.digit_ddpm_along(d["train"], seed, lr, (steps,), n=n))
        out["seeds"][str(seed)]["DDPM"] = {"cpu_seconds_run": cpu, "draws frechet": [
            round(judge.frechet(s), 4) for s in along[steps].split(360)]}
        print("pick5 DDPM", seed, out["seeds"][str(seed)]["DDPM"], flush=True)
    return out


FRAME_POINTS, FRAME_EVERY = 800, 500  # the slider's points and steps
PARTS = {"ring-long": ("ring_long", ring_long_results),
         "collapse": ("collapse", collapse_results),
         "digit-alone": ("digit_alone", digit_alone_results),
         "ring-long-extend": ("ring_long", ring_long_extend),
         "ring-gmm": ("ring_gmm", ring_gmm_results),
         "collapse-frames": ("collapse_frames", collapse_frames_results),
         "digit-ddpm-long": ("digit_ddpm_long", digit_ddpm_long_results),
         "digit-gmm": ("digit_gmm", digit_gmm_results),
         "ring-seed0-alone": ("ring_seed0_alone", ring_seed0_alone_results),
         "digit-gmm5": ("digit_gmm5", digit_gmm5_results),
         "digit-gmm5-extend": ("digit_gmm5", digit_gmm5_extend),
         "digit-gmm5-argmin": ("digit_gmm5", digit_gmm5_argmin),
         "digit-tune5": ("digit_tune5", digit_tune5_results),
         "digit-tune5-extend": ("digit_tune5", digit_tune5_extend),
         "digit-reverse": ("digit_reverse", digit_reverse_results),
         "digit-more": ("digit_more", digit_more_results),
         "digit-ddpm-cosine": ("digit_ddpm_cosine", digit_ddpm_cosine_results),
         "digit-pick5-gan": ("digit_pick5", digit_pick5_gan),
         "digit-pick5-ddpm": ("digit_pick5", digit_pick5_ddpm)}


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
