"""Chapter 10's VAEs trained to convergence, too long for the chapter: writes data/ch10_vae.json
and data/ch10_vae2d.safetensors. One command makes both:

    DLBOOK_CPU_THREADS=1 nice -n 19 python tools/vae_sweep.py

It runs in parts, each written to PARTS (_build/ch10_vae_parts/, not committed) the moment it is
done: one JSON per training run or evaluation, and each 2-D VAE's weights. Started again, it
skips the parts already on disk, so an interruption loses at most the part under way. When every
part is there it merges them (``--merge`` does the merge alone: it only reads written parts and
fails, naming them, if any is missing). Nothing in the data file is typed by hand.

On MNIST-5k binarised at 0.5 (dlbook.vae.binarize; train 3,200 / validation 800 / test 1,000):

1. The 2-D VAE (VAEConfig.mnist2d): Adam on batches of 128 at each step size of LR_GRID with
   seed 0, up to MAX_EPOCHS epochs with early stopping (PATIENCE epochs without a better
   validation -ELBO; the best epoch's weights kept); the step size whose kept weights have the
   lowest validation -ELBO (10 draws per digit) chosen, then seeds 1 and 2 at it. Per run: the
   validation curve and the best epoch; per seed at the chosen step size, on the test digits,
   the ELBO (10 draws per image), the importance-weighted bound (K = 1,000) and log p(x) on a
   201 x 201 grid of codes (and on 401 x 401, to check the grid). The chosen seed-0 model's
   weights go to the safetensors file.
2. Beta and posterior collapse: a 16-D VAE (VAEConfig.mnist) at each beta of BETAS, seed 0, at
   the step size BETA_LR fixed in advance, trained the same way on its own objective; per beta
   the validation reconstruction term, KL, KL per latent dimension and active units, and at
   beta 1 the test ELBO and importance-weighted bound (K = 200).
3. The simple baseline: a mixture of Bernoulli images (dlbook.vae.fit_bernoulli_mixture, 100 EM
   iterations) with K components for each K of COMPONENTS, seed 0; K chosen on validation
   log-likelihood, then seeds 1 and 2; exact test log-likelihoods.
Seeded, one CPU thread: a rerun on the same versions gives the same files. ``cpu_seconds`` in
the file is the sum of the parts' own CPU times. ``--smoke`` runs every code path in a minute,
into /tmp/ch10_vae_smoke/.

``--vae16`` writes data/ch10_vae16.safetensors, the weights of part 2's 16-D VAE at beta 1: it
retrains that run (same seed, step size and data: about half a minute) and refuses to write
unless its validation curve matches the committed ch10_vae.json's to 10^-3 nats, so the weights
are those of the run the data file describes.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dlbook.data import mnist5k_splits, sha256_of
from dlbook.training import fit
from dlbook.vae import (VAE, VAEConfig, bernoulli_log_likelihood,
                        bernoulli_mixture_log_likelihood, binarize, fit_bernoulli_mixture,
                        grid_log_likelihood, importance_weighted_bound, reparameterize)

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "_build" / "ch10_vae_parts"
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3)
MAX_EPOCHS, PATIENCE, BATCH = 500, 20, 128
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
BETA_LR = 1e-3  # the 16-D VAEs' step size, fixed in advance (not tuned per beta)
COMPONENTS = (10, 25, 50, 100, 200)
EM_ITERATIONS = 100
SEEDS = (0, 1, 2)


def splits():
    (x_train, _), (x_val, _), (x_test, _) = mnist5k_splits()
    return binarize(x_train), binarize(x_val), binarize(x_test)


def part(folder, name, make):
    """The part ``name`` from disk, or ``make()`` written to disk first (atomically) with the
    CPU seconds it took."""
    path = folder / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    start = time.process_time()
    row = make()
    row["cpu_seconds"] = round(time.process_time() - start, 1)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row), encoding="utf-8")
    os.replace(tmp, path)
    print(f"{name}: written ({row['cpu_seconds']} s of CPU)", flush=True)
    return row


def read(folder, name):
    path = folder / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"part {name} is missing: run the sweep (it resumes) first")
    return json.loads(path.read_text(encoding="utf-8"))


def train_vae(config, lr, seed, train, val):
    torch.manual_seed(seed)
    model = VAE(config)
    history = fit(model, (train, train), (val, val), epochs=MAX_EPOCHS, batch_size=BATCH,
                  optimizer=lambda p: torch.optim.Adam(p, lr=lr), metric=None,
                  patience=PATIENCE, seed=seed, progress=False)
    return model, history


@torch.no_grad()
def mean_elbo(model, x, draws=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([model.elbo(x, torch.randn(len(x), model.config.latent, generator=g))
                        for _ in range(draws)]).mean().item()


@torch.no_grad()
def terms(model, x, seed=1):
    """Reconstruction term, KL and KL per dimension (means over images), one draw each."""
    mu, logvar = model.encode(x)
    g = torch.Generator().manual_seed(seed)
    z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=g))
    recon = bernoulli_log_likelihood(model.decode(z), x).mean().item()
    kl_dims = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)  # (latent,)
    active = int((mu.var(0) > 0.01).sum())  # Burda et al.'s activity threshold
    return recon, kl_dims.sum().item(), [round(v, 4) for v in kl_dims.tolist()], active


def weights_path(folder, lr, seed):
    return folder / f"vae2d_lr{lr:g}_seed{seed}.safetensors"


def vae2d_run(folder, lr, seed, train, val):
    """One 2-D VAE training run; its weights are saved beside its JSON part."""
    def make():
        model, h = train_vae(VAEConfig.mnist2d(), lr, seed, train, val)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(weights_path(folder, lr, seed)))
        return {"lr": lr, "seed": seed, "val": [round(v, 4) for v in h.val_loss],
                "best_epoch": h.best_epoch,
                # the choice: the kept weights' validation ELBO over 10 draws of z per digit,
                # steadier than the one-draw curve that early stopping watched
                "val_elbo_10_draws": round(-mean_elbo(model, val), 4)}
    return part(folder, f"vae2d_lr{lr:g}_seed{seed}", make)


def load_vae2d(folder, lr, seed):
    model = VAE(VAEConfig.mnist2d())
    model.load_state_dict(load_file(str(weights_path(folder, lr, seed))))
    return model.eval()


def vae2d_test(folder, lr, seed, test):
    def make():
        model = load_vae2d(folder, lr, seed)
        log_px, *_ = grid_log_likelihood(model, test, points=201)
        fine, *_ = grid_log_likelihood(model, test, points=401)
        iwae = importance_weighted_bound(model, test, 1000, torch.Generator().manual_seed(2))
        with torch.no_grad():
            sd_min = model.encode(test)[1].mul(0.5).exp().min().item()
        return {"seed": seed, "elbo": round(mean_elbo(model, test), 4),
                "iwae_1000": round(iwae.mean().item(), 4),
                "log_px_grid201": round(log_px.mean().item(), 4),
                "log_px_grid401": round(fine.mean().item(), 4),
                "smallest_posterior_sd": round(sd_min, 4)}
    return part(folder, f"vae2d_test_seed{seed}", make)


def chosen_lr(grid_rows):
    return min(LR_GRID, key=lambda lr: grid_rows[lr]["val_elbo_10_draws"])


def beta_run(folder, beta, train, val, test):
    def make():
        model, h = train_vae(replace(VAEConfig.mnist(), beta=beta), BETA_LR, 0, train, val)
        recon, kl, kl_dims, active = terms(model, val)
        row = {"val_objective": [round(v, 4) for v in h.val_loss], "best_epoch": h.best_epoch,
               "val_recon": round(recon, 4), "val_kl": round(kl, 4), "val_kl_dims": kl_dims,
               "active_units": active, "val_elbo": round(mean_elbo(model, val), 4)}
        if beta == 1.0:
            row["test_elbo"] = round(mean_elbo(model, test), 4)
            row["test_iwae_200"] = round(importance_weighted_bound(
                model, test, 200, torch.Generator().manual_seed(2)).mean().item(), 4)
        return row
    return part(folder, f"beta{beta:g}", make)


def mixture_grid(folder, k, train, val):
    def make():
        lw, p, _ = fit_bernoulli_mixture(train, k, EM_ITERATIONS,
                                         torch.Generator().manual_seed(0))
        return {"val": round(bernoulli_mixture_log_likelihood(val, lw, p).mean().item(), 4)}
    return part(folder, f"mixture_k{k}", make)


def mixture_seed(folder, k, seed, train, val, test):
    def make():
        lw, p, hist = fit_bernoulli_mixture(train, k, EM_ITERATIONS,
                                            torch.Generator().manual_seed(seed))
        return {"components": k,
                "val": round(bernoulli_mixture_log_likelihood(val, lw, p).mean().item(), 4),
                "test": round(bernoulli_mixture_log_likelihood(test, lw, p).mean().item(), 4),
                "train_curve": [round(v, 3) for v in hist]}
    return part(folder, f"mixture_k{k}_seed{seed}", make)


def run_all(folder):
    """Every part, in order, skipping those already written."""
    train, val, test = splits()
    grid = {lr: vae2d_run(folder, lr, 0, train, val) for lr in LR_GRID}
    lr = chosen_lr(grid)
    for seed in SEEDS[1:]:
        vae2d_run(folder, lr, seed, train, val)
    for seed in SEEDS:
        vae2d_test(folder, lr, seed, test)
    for beta in BETAS:
        beta_run(folder, beta, train, val, test)
    mix = {k: mixture_grid(folder, k, train, val) for k in COMPONENTS}
    k = max(COMPONENTS, key=lambda c: mix[c]["val"])
    for seed in SEEDS:
        mixture_seed(folder, k, seed, train, val, test)


def merge(folder, out_folder):
    """The data file from the written parts alone (fails if one is missing)."""
    cpu = 0.0
    grid = {lr: read(folder, f"vae2d_lr{lr:g}_seed0") for lr in LR_GRID}
    lr = chosen_lr(grid)
    runs = {f"{lr:g}:{seed}": read(folder, f"vae2d_lr{lr:g}_seed{seed}") for seed in SEEDS[1:]}
    runs.update({f"{r:g}:0": row for r, row in grid.items()})
    tests = [read(folder, f"vae2d_test_seed{seed}") for seed in SEEDS]
    cpu += sum(r["cpu_seconds"] for r in list(runs.values()) + tests)
    vae2d = {"grid": {f"{r:g}": row["val_elbo_10_draws"] for r, row in grid.items()},
             "grid_one_draw": {f"{r:g}": min(row["val"]) for r, row in grid.items()},
             "lr": lr,
             "runs": {key: {"val": row["val"], "best_epoch": row["best_epoch"],
                            "cpu_seconds": row["cpu_seconds"]} for key, row in runs.items()},
             "test": [{k: v for k, v in t.items() if k != "cpu_seconds"} for t in tests]}
    beta = {f"{b:g}": read(folder, f"beta{b:g}") for b in BETAS}
    cpu += sum(r["cpu_seconds"] for r in beta.values())
    mix_grid = {k: read(folder, f"mixture_k{k}") for k in COMPONENTS}
    k = max(COMPONENTS, key=lambda c: mix_grid[c]["val"])
    seeds = {str(s): read(folder, f"mixture_k{k}_seed{s}") for s in SEEDS}
    cpu += sum(r["cpu_seconds"] for r in list(mix_grid.values()) + list(seeds.values()))
    mixture = {"grid": {str(c): row["val"] for c, row in mix_grid.items()}, "components": k,
               "seeds": {s: {key: row[key] for key in ("val", "test", "train_curve")}
                         for s, row in seeds.items()}}
    results = {"vae2d": vae2d, "beta": beta, "mixture": mixture}
    out = {"command": "DLBOOK_CPU_THREADS=1 nice -n 19 python tools/vae_sweep.py",
           "binarize_threshold": 0.5, "batch_size": BATCH, "max_epochs": MAX_EPOCHS,
           "patience": PATIENCE, "lr_grid": list(LR_GRID), "betas": list(BETAS),
           "components": list(COMPONENTS), "em_iterations": EM_ITERATIONS,
           "versions": {"python": platform.python_version(), "torch": torch.__version__},
           "beta_lr": BETA_LR, "cpu_seconds": round(cpu), "results": results}
    out_folder.mkdir(parents=True, exist_ok=True)
    (out_folder / "ch10_vae.json").write_text(json.dumps(out, indent=1) + "\n",
                                              encoding="utf-8")
    shutil.copyfile(weights_path(folder, lr, 0), out_folder / "ch10_vae2d.safetensors")
    print(f"merged: {round(cpu)} s of CPU in the parts; data files in {out_folder}", flush=True)
    for name in ("ch10_vae.json", "ch10_vae2d.safetensors"):  # for dlbook.data.CHECKSUMS
        path = out_folder / name
        print(f"{name}: {path.stat().st_size:,} bytes, sha256 {sha256_of(path)}")


def vae16_weights(out_folder):
    """The beta = 1 16-D VAE's weights, checked against the committed curve (see ``--vae16``)."""
    train, val, _ = splits()
    committed = json.loads((out_folder / "ch10_vae.json").read_text(encoding="utf-8"))
    curve = committed["results"]["beta"]["1"]["val_objective"]
    model, h = train_vae(replace(VAEConfig.mnist(), beta=1.0), BETA_LR, 0, train, val)
    worst = max(abs(a - b) for a, b in zip(h.val_loss, curve))
    if len(h.val_loss) != len(curve) or worst > 1e-3:
        raise SystemExit(f"the retrained 16-D VAE does not reproduce the committed curve "
                         f"({len(h.val_loss)} against {len(curve)} epochs, largest difference "
                         f"{worst:.3g}): rerun the whole sweep instead")
    path = out_folder / "ch10_vae16.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    print(f"{path.name}: {path.stat().st_size:,} bytes, sha256 {sha256_of(path)}; "
          f"curve reproduced to {worst:.2g} nats over {len(curve)} epochs")


def main() -> int:
    global LR_GRID, MAX_EPOCHS, BETAS, COMPONENTS, EM_ITERATIONS
    torch.set_num_threads(1)
    folder, out_folder = PARTS, ROOT / "data"
    if "--smoke" in sys.argv:  # every code path in a minute, written to /tmp
        LR_GRID, MAX_EPOCHS, BETAS, COMPONENTS, EM_ITERATIONS = (
            (1e-3, 3e-3, 1e-2), 2, (1.0, 2.0), (10, 25, 50), 3)
        folder = out_folder = Path("/tmp/ch10_vae_smoke")
    if "--vae16" in sys.argv:
        vae16_weights(out_folder)
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    if "--merge" not in sys.argv:
        run_all(folder)
    merge(folder, out_folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
