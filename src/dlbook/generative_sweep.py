"""Chapter 11's comparison of generative models at equal budgets (experiment harness).

Three contenders on two data sets, each scored by the same numbers:

- the ring of 8 Gaussians (std 0.05, radius 2): a plain GAN, a GAN with the R1 penalty and a
  DDPM, all :data:`RING_STEPS` optimiser steps on batches of :data:`RING_BATCH` drawn from one
  fixed training draw; scored by MMD^2 against a held-out draw, modes covered and the share of
  good samples (within 3 std of a centre);
- sklearn's 8x8 digits: a GAN with R1 and a DDPM, :data:`DIGIT_STEPS` steps on batches of
  :data:`DIGIT_BATCH`; scored against the held-out 20% by a Frechet distance in the features of
  a small classifier (FID's recipe, with an MLP in place of Inception), nearest-neighbour
  distances both ways (fidelity: sample to training digit; coverage: held-out digit to sample)
  and the classes a classifier sees.

Beside them the strongest simple baseline, a Gaussian mixture (``sklearn.mixture``): on the
ring its number of components is chosen on a validation split by log-likelihood
(:func:`choose_mixture`); on the digits its component count and variance floor are chosen by
the validation Frechet distance, as the deep models' rates are (``tools/ch11_sweep.py``).
``tools/ch11_sweep.py`` runs every contender for seeds 0, 1, 2 (on the digits at 6,000 steps
also 3, 4, 5) and writes ``data/ch11_generative_sweep.json``; chapter 11 loads it
(:func:`load_sweep`) and re-runs seed 0.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch
from scipy import linalg
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture
from sklearn.neural_network import MLPClassifier

from .data import validation_split, verified_path
from .diffusion import DDPM, Denoiser, DenoiserConfig, NoiseSchedule
from .gan import (GANConfig, mmd2, modes_covered, nearest_neighbour_distance, ring_centres,
                  ring_of_gaussians, train_gans)

SWEEP_FILE = "ch11_generative_sweep.json"
SEEDS = (0, 1, 2)
STD, BANDWIDTH, RING_SAMPLES = 0.05, 0.3, 2000
RING_STEPS, RING_BATCH = 2000, 256
DIGIT_STEPS, DIGIT_BATCH = 1500, 128
RING_GRID = (2, 4, 6, 8, 10, 12, 16)  # mixture components tried on the ring
DIGIT_GRID = (2, 4, 8, 16, 32)  # and on the digits
# Added to each mixture covariance's diagonal: sklearn's default on the ring; on the digits
# enough to keep the edge pixels, which never vary, from a zero variance.
RING_REG, DIGIT_REG = 1e-6, 0.01
# Budgets (optimiser steps) at which the digits' deep models are scored: does the ranking settle?
DIGIT_BUDGETS = (1500, 6000)  # the GAN: one run per budget
DIGIT_DDPM_STEPS = (1500, 3000, 4500, 6000)  # the DDPM: one run, scored along it
DIGIT_TUNE_STEPS = 3000  # learning rates are chosen on validation at this budget
DIGIT_GAN_LRS = (2e-3, 4e-3, 8e-3, 1.6e-2)
DIGIT_DDPM_LRS = (3e-4, 1e-3, 3e-3)
BANDWIDTHS = (0.05, 0.1, 0.3)  # MMD kernel widths: the mode's std, twice it, the default
DRAWS = 5  # sample draws (of 360) per model, for the spread of its Frechet distance


# --- the ring -----------------------------------------------------------------------------------

def ring(shape, generator: torch.Generator | None = None) -> torch.Tensor:
    return ring_of_gaussians(shape, generator, std=STD)


def ring_splits() -> dict[str, torch.Tensor]:
    """Fixed draws: training (20,000), validation, test and a second test-sized draw (2,000)."""
    return {name: ring(n, torch.Generator().manual_seed(seed))
            for name, n, seed in [("train", 20_000, 0), ("val", RING_SAMPLES, 1),
                                  ("test", RING_SAMPLES, 321), ("second", RING_SAMPLES, 123)]}


def ring_scores(samples: torch.Tensor, test: torch.Tensor,
                bandwidths=(BANDWIDTH,)) -> dict[str, float]:
    """MMD^2 at :data:`BANDWIDTH` (``"mmd2"``) and at any other of ``bandwidths``
    (``"mmd2@0.1"``), modes covered and the share of good samples."""
    modes, good = modes_covered(samples, ring_centres(), radius=3 * STD)
    out = {"mmd2": mmd2(samples, test, BANDWIDTH), "modes": modes, "good": good}
    return out | {f"mmd2@{bw}": mmd2(samples, test, bw) for bw in bandwidths if bw != BANDWIDTH}


def ring_gans(train: torch.Tensor, seeds=SEEDS, snapshot_every: int | None = None,
              steps: int = RING_STEPS, with_model: bool = False):
    """Plain and R1 GANs, one per seed, side by side; their final samples are the snapshot of
    the last step (fixed noise per seed). Returns ``{(name, seed): GANHistory}``, or with
    ``with_model`` the pair ``(gan, histories)``, the GAN's members in the order plain seeds
    then R1 seeds."""
    configs = {name: replace(c, batch_size=RING_BATCH)
               for name, c in [("plain", GANConfig.ring()), ("R1", GANConfig.ring_r1())]}
    gan, histories = train_gans(configs, train, steps, seeds=tuple(seeds),
                                snapshot_every=snapshot_every or steps,
                                snapshot_size=RING_SAMPLES)
    return (gan, histories) if with_model else histories


COLLAPSE_LR, COLLAPSE_EVERY = 1e-2, 250  # the plain GAN with its rate held large
COLLAPSE_LRS = (1e-2, 3e-2)  # the sweep also tries a rate three times larger
# The settled budget on the ring, and each ring model's rate grid (seed 0, validation draw)
RING_LONG_STEPS = 6000
RING_DDPM_CHECKPOINTS = (2000, 4000, 6000)  # constant rate: one run scored along the way
RING_GAN_LRS = (1e-3, 3e-3, 1e-2)
RING_GAN_EXTRA_LR = 3e-2  # added after R1's pick sat at 1e-2, the grid's top
RING_DDPM_LRS = (3e-4, 1e-3, 3e-3)


def mode_shares(samples: torch.Tensor) -> list[float]:
    """The share of samples nearest each of the 8 centres (wherever they lie): the mass per
    mode. Collapse empties modes (shares near 0); misplaced samples still count here."""
    if samples.ndim != 2 or samples.shape[1] != 2 or len(samples) == 0:
        raise ValueError(f"samples must be (n, 2) points, got {tuple(samples.shape)}")
    nearest = torch.cdist(samples, ring_centres()).argmin(dim=1)  # (n,)
    return (torch.bincount(nearest, minlength=8).float() / len(samples)).tolist()


def hot_gan(lr: float = COLLAPSE_LR) -> GANConfig:
    """The plain ring GAN with its rate held at ``lr`` (no decay)."""
    return replace(GANConfig.ring(), lr=lr, lr_schedule="constant", batch_size=RING_BATCH)


def ring_collapse_snapshots(train: torch.Tensor, seed: int, steps: int | None = None,
                            lr: float = COLLAPSE_LR) -> dict[int, torch.Tensor]:
    """The constant-rate plain GAN, one seed: its samples every COLLAPSE_EVERY steps (to
    RING_STEPS unless ``steps``). The rate is constant, so a shorter run is the start of a
    longer one."""
    steps = steps or RING_STEPS
    _, histories = train_gans({"plain": hot_gan(lr)}, train, steps, seeds=(seed,),
                              snapshot_every=COLLAPSE_EVERY, snapshot_size=RING_SAMPLES)
    return histories["plain", seed].snapshots


def ring_collapse(train: torch.Tensor, seed: int, steps: int | None = None,
                  lr: float = COLLAPSE_LR) -> list[int]:
    """:func:`ring_collapse_snapshots`' modes covered every COLLAPSE_EVERY steps."""
    return [modes_covered(x, ring_centres(), radius=3 * STD)[0]
            for step, x in ring_collapse_snapshots(train, seed, steps, lr).items() if step]


def ring_gans_at(train: torch.Tensor, seed: int, lrs: dict[str, float],
                 steps: int | None = None) -> dict[str, torch.Tensor]:
    """Plain and R1 GANs, one seed, each at its own rate (side by side when the rates
    agree), RING_LONG_STEPS unless ``steps``: ``{name: final samples}``."""
    steps = steps or RING_LONG_STEPS
    base = {"plain": GANConfig.ring(), "R1": GANConfig.ring_r1()}
    out = {}
    for lr in sorted(set(lrs.values())):
        names = [n for n in lrs if lrs[n] == lr]
        configs = {n: replace(base[n], batch_size=RING_BATCH, lr=lr) for n in names}
        _, h = train_gans(configs, train, steps, seeds=(seed,), snapshot_every=steps,
                          snapshot_size=RING_SAMPLES)
        out |= {n: h[n, seed].snapshots[steps] for n in names}
    return out


def ring_ddpm_along(train: torch.Tensor, seed: int, lr: float = 1e-3,
                    checkpoints=None) -> dict[int, torch.Tensor]:
    """The ring DDPM (constant rate) sampled at each checkpoint of one run (by default
    RING_DDPM_CHECKPOINTS), with the sampling seed of :func:`ring_ddpm`'s stored runs: at
    2,000 steps it is that run."""
    checkpoints = checkpoints or RING_DDPM_CHECKPOINTS
    torch.manual_seed(seed)
    ddpm = DDPM(Denoiser(DenoiserConfig.toy2d()), ring_schedule(), lr=lr)
    return ddpm_along(ddpm, train, checkpoints, RING_BATCH, seed, RING_SAMPLES, 1000 + seed)


def ring_ddpm(train: torch.Tensor, seed: int) -> DDPM:
    torch.manual_seed(seed)  # the denoiser's initial weights
    ddpm = DDPM(Denoiser(DenoiserConfig.toy2d()), ring_schedule(), lr=1e-3)
    return ddpm.train(train, steps=RING_STEPS, batch_size=RING_BATCH, seed=seed)


def ddpm_along(ddpm: DDPM, data: torch.Tensor, checkpoints, batch_size: int, seed: int,
               n: int, sample_seed: int, n_last: int | None = None) -> dict[int, torch.Tensor]:
    """Train ``ddpm`` as :meth:`DDPM.train` would for ``max(checkpoints)`` steps (same batches),
    drawing ``n`` samples (sampling seed ``sample_seed``) at each checkpoint: with a constant
    rate the model at step s of a long run is the model of a run of s steps. ``n_last``, if
    given, replaces ``n`` at the last checkpoint."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for step in range(1, max(checkpoints) + 1):
        ddpm.model.train()
        ddpm.step(data[torch.randint(0, len(data), (batch_size,), generator=gen)], gen)
        if step in checkpoints:
            ddpm.model.eval()
            size = n_last if n_last and step == max(checkpoints) else n
            out[step] = ddpm.sample(size, torch.Generator().manual_seed(sample_seed))
    ddpm.model.eval()
    return out


def ring_schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T=100, beta_start=1e-4, beta_end=0.1)


def choose_mixture(train, val, grid, seed: int, reg_covar: float, tolerance: float = 1e-3):
    """Fit a full-covariance mixture for each component count of ``grid`` on ``train`` and keep
    the smallest whose mean validation log-likelihood is within ``tolerance`` of the best (past
    the true count, extra components only duplicate others). Returns the model and the grid's
    scores."""
    models = {k: GaussianMixture(k, reg_covar=reg_covar, random_state=seed).fit(train)
              for k in grid}
    scores = {k: float(m.score(val)) for k, m in models.items()}
    best = max(scores.values())
    return models[min(k for k in grid if scores[k] >= best - tolerance)], scores


def mixture_samples(gmm: GaussianMixture, n: int, seed: int) -> torch.Tensor:
    """``n`` draws in random order (sklearn returns them grouped by component)."""
    gmm.random_state = seed
    x, _ = gmm.sample(n)
    order = np.random.default_rng(seed).permutation(n)
    return torch.tensor(x[order], dtype=torch.float32)


# --- the digits ---------------------------------------------------------------------------------

def digit_splits() -> dict[str, torch.Tensor]:
    """sklearn's 1,797 digits in [-1, 1]: 80% train, 20% held out (the chapter's split), and a
    validation part of the training digits for the mixture's choice."""
    x, y = load_digits(return_X_y=True)
    pixels = torch.tensor(x / 8.0 - 1.0, dtype=torch.float32)  # (1797, 64)
    (train, y_train), (held, y_held) = validation_split(pixels, torch.tensor(y), 0.2, seed=0)
    (fit, _), (val, _) = validation_split(train, y_train, 0.2, seed=1)
    (_, y_fit), _ = validation_split(train, y_train, 0.2, seed=1)
    return {"train": train, "y_train": y_train, "held": held, "y_held": y_held, "fit": fit,
            "y_fit": y_fit, "val": val}


def digit_gan(train: torch.Tensor, seed: int, steps: int = DIGIT_STEPS, lr: float | None = None,
              n: int = 360) -> torch.Tensor:
    """The GAN's ``n`` samples (one fixed noise batch) after ``steps`` steps; ``lr`` replaces
    :meth:`GANConfig.digits`' rate."""
    config = replace(GANConfig.digits(), batch_size=DIGIT_BATCH)
    config = replace(config, lr=lr) if lr is not None else config
    _, histories = train_gans({"gan": config}, train, steps, seeds=(seed,),
                              snapshot_every=steps, snapshot_size=n)
    return histories["gan", seed].snapshots[steps]  # (n, 64)


def digit_gans(train: torch.Tensor, seeds, steps: int, lr: float, n: int = 360):
    """:func:`digit_gan` for several seeds side by side (one ensemble): ``{seed: (n, 64)}``."""
    config = replace(GANConfig.digits(), batch_size=DIGIT_BATCH, lr=lr)
    _, histories = train_gans({"gan": config}, train, steps, seeds=tuple(seeds),
                              snapshot_every=steps, snapshot_size=n)
    return {seed: histories["gan", seed].snapshots[steps] for seed in seeds}


def digit_ddpm(train: torch.Tensor, seed: int, steps: int = DIGIT_STEPS,
               lr: float = 1e-3) -> DDPM:
    torch.manual_seed(seed)
    ddpm = DDPM(Denoiser(DenoiserConfig.digits()), digit_schedule(), lr=lr, ema_decay=0.99)
    return ddpm.train(train, steps=steps, batch_size=DIGIT_BATCH, seed=seed)


def digit_ddpm_along(train: torch.Tensor, seed: int, lr: float, checkpoints=DIGIT_DDPM_STEPS,
                     n: int = 360, n_last: int | None = None) -> dict[int, torch.Tensor]:
    """The DDPM's ``n`` samples (``n_last`` at the last checkpoint; clamped to [-1, 1]) at
    each checkpoint of one run."""
    torch.manual_seed(seed)
    ddpm = DDPM(Denoiser(DenoiserConfig.digits()), digit_schedule(), lr=lr, ema_decay=0.99)
    out = ddpm_along(ddpm, train, checkpoints, DIGIT_BATCH, seed, n, 1000 + seed, n_last)
    return {k: v.clamp(-1, 1) for k, v in out.items()}


def digit_schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T=200, beta_start=1e-4, beta_end=0.1)


class DigitJudge:
    """FID's recipe on 8x8 digits: a classifier trained on the training digits (an MLP with one
    hidden layer of 64 ReLUs, standing in for Inception), its hidden features, and the Frechet
    distance between Gaussians fitted to the features of two image sets."""

    def __init__(self, train: torch.Tensor, labels: torch.Tensor, held: torch.Tensor):
        self.train, self.held = train, held
        self.classifier = MLPClassifier((64,), max_iter=600, random_state=0).fit(
            train.numpy(), labels.numpy())
        self.held_features = self.features(held)

    def features(self, images: torch.Tensor) -> np.ndarray:
        w, b = self.classifier.coefs_[0], self.classifier.intercepts_[0]
        return np.maximum(images.double().numpy() @ w + b, 0.0)  # (n, 64)

    def frechet(self, images: torch.Tensor) -> float:
        """|mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) against the held-out digits."""
        a, b = self.features(images), self.held_features
        mu = [f.mean(0) for f in (a, b)]
        # a dead ReLU has zero variance: a small ridge keeps the product's square root defined
        cov = [np.cov(f, rowvar=False) + 1e-6 * np.eye(f.shape[1]) for f in (a, b)]
        root = linalg.sqrtm(cov[0] @ cov[1]).real
        return float(((mu[0] - mu[1]) ** 2).sum() + np.trace(cov[0] + cov[1] - 2 * root))

    def scores(self, images: torch.Tensor) -> dict:
        classes = np.bincount(self.classifier.predict(images.numpy()), minlength=10)
        return {"frechet": self.frechet(images),
                "fidelity": nearest_neighbour_distance(images, self.train),
                "coverage": nearest_neighbour_distance(self.held, images),
                "classes": classes.tolist()}


def load_sweep() -> dict:
    """The stored results (see ``tools/ch11_sweep.py`` and ``data/README.md``)."""
    with open(verified_path(SWEEP_FILE)) as f:
        return json.load(f)
