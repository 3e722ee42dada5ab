"""Generative adversarial networks (Goodfellow et al. 2014) and numbers for sample quality
(chapter 11).

- :class:`GAN`: a generator and a discriminator, both small MLPs.
- :func:`discriminator_loss`, :func:`generator_loss`: the two players' objectives.
- :class:`GANTrainer`: the two-player update, one discriminator step then one generator step;
  with ``r1`` > 0 the discriminator also pays Mescheder et al.'s R1 gradient penalty (2018) on
  real data, the cure for mode collapse that chapter 11 compares.
- :func:`train_gans`: a fixed number of steps, with snapshots of the generator's samples, for
  several seeds and variants at once (one ensemble of independent GANs,
  :class:`dlbook.ensemble.EnsembleLinear`);
  :func:`train_gan` for one.
- Sample quality: :func:`ring_of_gaussians` and :func:`modes_covered` (how many of 8 modes a
  generator reaches), :func:`mmd2` (kernel maximum mean discrepancy between two samples) and
  :func:`nearest_neighbour_distance` (for images). Chapter 11 uses them for the diffusion
  models too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .ensemble import mlp
from .training import adam, warmup_cosine


# --- models --------------------------------------------------------------------------------------

@dataclass
class GANConfig:
    """Generator ``noise_dim -> hidden x layers -> data_dim``, discriminator ``data_dim ->
    hidden x layers -> 1``, both trained with Adam. ``r1`` > 0 adds the R1 penalty
    (r1 / 2) E||grad_x D(x)||^2 on real data to the discriminator's loss.
    ``lr_schedule="cosine"`` lowers both players' rate along half a cosine to zero over the run
    (:func:`dlbook.training.warmup_cosine`), so the game settles instead of circling to the end."""

    data_dim: int = 2
    noise_dim: int = 2
    hidden: int = 64
    layers: int = 2
    output: str = "linear"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 128
    r1: float = 0.0
    lr_schedule: str = "constant"

    @classmethod
    def ring(cls) -> "GANConfig":
        """The plain GAN on the ring of 8 Gaussians: a large rate, decayed to zero."""
        return cls(lr=3e-3, lr_schedule="cosine")

    @classmethod
    def ring_r1(cls, r1: float = 1.0) -> "GANConfig":
        """The same GAN with the R1 penalty on its discriminator."""
        return replace(cls.ring(), r1=r1)

    @classmethod
    def digits(cls) -> "GANConfig":
        """sklearn's 8x8 digits scaled to [-1, 1]: 64 pixels, a tanh output."""
        return cls(data_dim=64, noise_dim=16, hidden=128, output="tanh", lr=2e-3, r1=1.0,
                   lr_schedule="cosine")

    @classmethod
    def tiny(cls) -> "GANConfig":
        return cls(hidden=8, batch_size=16)


class GAN(nn.Module):
    """A generator and a discriminator, or ``members`` independent pairs trained side by side.

    ``generate(n)`` gives ``(n, data_dim)`` samples (``(M, n, data_dim)`` for ``members`` M > 1);
    ``discriminate`` maps ``(B, data_dim)`` to logits ``(B,)`` (high means "real"), or
    ``(M, B, data_dim)`` to ``(M, B)``. ``generators``: one per member, for its initial weights.
    """

    def __init__(self, config: GANConfig | None = None, members: int = 1,
                 generators: list[torch.Generator] | None = None, **overrides):
        super().__init__()
        config = replace(config or GANConfig(), **overrides)
        if min(config.data_dim, config.noise_dim, config.hidden, config.layers,
               config.batch_size, members) < 1 or config.lr <= 0 or config.r1 < 0:
            raise ValueError(f"sizes, members, batch_size and lr must be positive, r1 >= 0; got "
                             f"{config}, members={members}")
        if config.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule is 'constant' or 'cosine', got {config.lr_schedule!r}")
        if generators is not None and len(generators) != members:
            raise ValueError(f"need one generator per member: {len(generators)} for {members}")
        self.config = c = config
        self.members = members
        self.generator = mlp((c.noise_dim, *[c.hidden] * c.layers, c.data_dim), c.output,
                             members, generators)
        self.discriminator = mlp((c.data_dim, *[c.hidden] * c.layers, 1), "linear", members,
                                 generators)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(M, n, noise_dim)`` standard normal noise, one batch per member."""
        return torch.randn(self.members, n, self.config.noise_dim,
                           generator=generator).to(self._device)

    def generate(self, n: int | None = None, generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        z = self.noise(n, generator) if noise is None else self._per_member(noise, "noise_dim")
        x = self.generator(z)  # (M, n, data_dim)
        return x[0] if self.members == 1 else x

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.discriminator(self._per_member(x, "data_dim")).squeeze(-1)  # (M, B)
        return logits[0] if self.members == 1 and x.ndim == 2 else logits

    def _per_member(self, x: torch.Tensor, size: str) -> torch.Tensor:
        """``(B, D)`` (one GAN) or ``(M, B, D)`` as ``(M, B, D)``, with a clear error otherwise."""
        d, m = getattr(self.config, size), self.members
        if x.ndim == 2 and m == 1 and x.shape[1] == d:
            return x.unsqueeze(0)
        if x.ndim == 3 and x.shape[0] == m and x.shape[2] == d:
            return x
        shapes = f"(B, {d})" + (f" or ({m}, B, {d})" if m > 1 else "")
        raise ValueError(f"expected {shapes} inputs, got {tuple(x.shape)}")

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))] averaged over the batch (the last axis; one value per
    member of an ensemble).

    With D = sigmoid(logit): -log D = softplus(-logit) and -log(1 - D) = softplus(logit)."""
    return F.softplus(-real_logits).mean(-1) + F.softplus(fake_logits).mean(-1)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z)). (Minimising log(1 - D(G(z))), the
    minimax game's own term, gives almost no gradient while D still wins easily.)"""
    return F.softplus(-fake_logits).mean(-1)


class GANTrainer:
    """Adam for each player and the two-player update, :meth:`step`. ``r1``: the penalty weight
    of each member (default: the config's, for all); ``steps``: the run's length, which a
    cosine ``lr_schedule`` needs."""

    def __init__(self, gan: GAN, r1: list[float] | None = None, steps: int | None = None):
        c = gan.config
        self.gan = gan
        r1 = [c.r1] * gan.members if r1 is None else list(r1)
        if len(r1) != gan.members or min(r1) < 0:
            raise ValueError(f"need one r1 >= 0 per member ({gan.members}), got {r1}")
        self.r1 = torch.tensor(r1, device=gan._device)  # (M,)
        self.opt_d = adam(gan.discriminator.parameters(), c.lr, betas=c.betas)
        self.opt_g = adam(gan.generator.parameters(), c.lr, betas=c.betas)
        self.schedulers = []
        if c.lr_schedule == "cosine":
            if not steps:
                raise ValueError("a cosine lr_schedule needs the run's length: pass steps")
            decay = warmup_cosine(0, steps, final_fraction=0.0)
            self.schedulers = [decay(self.opt_d), decay(self.opt_g)]

    def step(self, real: torch.Tensor, generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None):
        """One discriminator step on ``real`` ``(B, data_dim)`` (``(M, B, data_dim)`` for an
        ensemble) and a fresh fake batch (from ``noise`` when given), then one generator step
        against the updated discriminator. Returns both losses (floats, or lists of M)."""
        gan, r1 = self.gan, self.r1  # r1: (M,)
        real = gan._per_member(real, "data_dim")  # (M, B, data_dim)
        if not bool(torch.isfinite(real).all()):
            raise ValueError("the real batch holds NaN or infinite values: clean the data")
        if noise is None:
            noise = gan.noise(real.shape[1], generator)
        fake = gan.generate(noise=noise).view_as(real)  # (M, B, data_dim)
        real = real.detach().requires_grad_(bool((r1 > 0).any()))
        real_logits = gan.discriminate(real)  # (M, B)
        d_loss = discriminator_loss(real_logits, gan.discriminate(fake.detach()))  # (M,)
        _check_losses("discriminator", d_loss, "before any step: the weights are unchanged")
        total = d_loss
        if real.requires_grad:  # R1: keep D flat on the data, so it cannot fling fakes off a mode
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            total = d_loss + r1 / 2 * grad.pow(2).sum(-1).mean(-1)  # (M,)
            _check_losses("discriminator's R1-penalised", total,
                          "before any step: the weights are unchanged")
        self.opt_d.zero_grad(set_to_none=True)
        total.sum().backward()  # the members share no weights: each gets its own gradient
        self.opt_d.step()

        g_loss = generator_loss(gan.discriminate(fake))  # (M,)
        _check_losses("generator", g_loss, "after the discriminator's step, before the "
                      "generator's: the generator's weights are unchanged")
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        self.opt_g.step()
        for scheduler in self.schedulers:
            scheduler.step()
        d, g = d_loss.tolist(), g_loss.tolist()
        return (d[0], g[0]) if gan.members == 1 else (d, g)


def _check_losses(player: str, losses: torch.Tensor, when: str) -> None:
    if not bool(torch.isfinite(losses).all()):
        raise FloatingPointError(f"the {player}'s loss is not finite ({losses.tolist()}), "
                                 f"{when}; lower the lr")


@dataclass
class GANHistory:
    """Losses per step and generator samples on fixed noise at some steps."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (n, data_dim)


def train_gans(configs: dict[str, GANConfig], sample_real, steps: int,
               seeds: tuple[int, ...] = (0,), snapshot_every: int | None = None,
               snapshot_size: int = 1000):
    """Train one GAN per (name, seed) for ``steps`` steps, all side by side as one ensemble.

    ``configs`` may differ only in ``r1`` (variants of one GAN, such as plain and R1).
    ``sample_real(n, generator)`` returns ``n`` real rows ``(n, data_dim)`` (a function, or a
    tensor of data to draw batches from). Each seed fixes a member's initial weights, its real
    batches and its noise, the same for every variant: a paired comparison. Returns the ensemble
    GAN and ``{(name, seed): GANHistory}``, whose snapshots all use one fixed noise batch per
    seed."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not configs or not seeds:
        raise ValueError("need at least one config and one seed")
    config = next(iter(configs.values()))
    if any(replace(c, r1=0.0) != replace(config, r1=0.0) for c in configs.values()):
        raise ValueError("configs trained side by side may differ only in r1")
    if isinstance(sample_real, torch.Tensor):
        data = sample_real

        def sample_real(n, generator):
            return data[torch.randint(0, len(data), (n,), generator=generator)]

    keys = [(name, seed) for name in configs for seed in seeds]  # member order
    gan = GAN(config, members=len(keys),
              generators=[torch.Generator().manual_seed(seed) for _, seed in keys])
    trainer = GANTrainer(gan, r1=[configs[name].r1 for name, _ in keys], steps=steps)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    variants = len(configs)

    def per_member(rows):  # one (B, D) batch per seed -> (M, B, D), shared across variants
        return torch.stack(rows).repeat(variants, 1, 1).to(gan._device)

    fixed = per_member([torch.randn(snapshot_size, config.noise_dim,
                                    generator=torch.Generator().manual_seed(seed + 10_000))
                        for seed in seeds])  # (M, n, noise_dim)
    histories = {key: GANHistory() for key in keys}

    def snapshot(step):
        with torch.no_grad():
            samples = gan.generator(fixed).cpu()  # (M, n, data_dim)
        for key, x in zip(keys, samples):
            histories[key].snapshots[step] = x

    if snapshot_every:
        snapshot(0)
    b = config.batch_size
    for step in range(1, steps + 1):
        real = per_member([sample_real(b, g) for g in gens])  # (M, B, data_dim)
        noise = per_member([torch.randn(b, config.noise_dim, generator=g) for g in gens])
        d_loss, g_loss = trainer.step(real, noise=noise)
        d_loss, g_loss = ([d_loss], [g_loss]) if gan.members == 1 else (d_loss, g_loss)
        for key, d, g in zip(keys, d_loss, g_loss):
            histories[key].d_loss.append(d)
            histories[key].g_loss.append(g)
        if snapshot_every and (step % snapshot_every == 0 or step == steps):
            snapshot(step)
    gan.eval()
    return gan, histories


def train_gan(config: GANConfig, sample_real, steps: int, seed: int = 0,
              snapshot_every: int | None = None, snapshot_size: int = 1000):
    """Train one GAN (:func:`train_gans` with one config and one seed). Returns the GAN and its
    :class:`GANHistory`."""
    gan, histories = train_gans({"gan": config}, sample_real, steps, (seed,), snapshot_every,
                                snapshot_size)
    return gan, histories["gan", seed]


# --- data and sample quality ---------------------------------------------------------------------

def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(modes) * (2 * math.pi / modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=-1)  # (modes, 2)


def ring_of_gaussians(shape, generator: torch.Generator | None = None, modes: int = 8,
                      radius: float = 2.0, std: float = 0.05) -> torch.Tensor:
    """Points from ``modes`` equal Gaussians of standard deviation ``std`` evenly spaced on a
    circle: ``shape + (2,)`` (``shape`` an int or a tuple)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    which = torch.randint(0, modes, shape, generator=generator)
    return ring_centres(modes, radius)[which] + std * torch.randn(*shape, 2, generator=generator)


def modes_covered(samples: torch.Tensor, centres: torch.Tensor, radius: float,
                  min_share: float = 0.02) -> tuple[int, float]:
    """How many modes get at least ``min_share`` of the samples within ``radius`` of their
    centre, and the share of samples that lie within ``radius`` of some centre ("good" ones).

    A perfect generator gives every mode 1/8 = 12.5%; ``min_share`` = 2% counts a mode as
    covered even when it is thin, so a lower count is a mode the generator dropped."""
    if samples.ndim != 2 or samples.shape[1] != centres.shape[1] or len(samples) == 0:
        raise ValueError(f"samples must be (n, {centres.shape[1]}), got {tuple(samples.shape)}")
    dist, nearest = torch.cdist(samples, centres).min(dim=1)  # (n,), (n,)
    good = dist < radius
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return int((counts >= min_share * len(samples)).sum()), good.float().mean().item()


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased estimate of the squared maximum mean discrepancy between the distributions of
    the rows of ``x`` ``(n, D)`` and ``y`` ``(m, D)`` with a Gaussian kernel
    k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)) (Gretton et al. 2012).

    Zero in expectation exactly when the distributions agree; it can dip below zero for two
    samples of one distribution."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, D) and (m, D), got {tuple(x.shape)}, {tuple(y.shape)}")
    if len(x) < 2 or len(y) < 2 or bandwidth <= 0:
        raise ValueError("mmd2 needs at least two rows in each sample and a positive bandwidth")
    x, y = x.double(), y.double()

    def kernel(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth ** 2))

    n, m = len(x), len(y)
    kxx = (kernel(x, x).sum() - n) / (n * (n - 1))  # the diagonal k(a, a) = 1 left out
    kyy = (kernel(y, y).sum() - m) / (m * (m - 1))
    return (kxx + kyy - 2 * kernel(x, y).mean()).item()


def nearest_neighbour_distance(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean Euclidean distance from each sample to its nearest row of ``reference``.

    For images: small when samples look like real ones. It measures fidelity only (a copy of
    the training set scores 0), so read it beside a diversity check such as class coverage."""
    if samples.ndim != 2 or reference.ndim != 2 or samples.shape[1] != reference.shape[1]:
        raise ValueError(f"need (n, D) and (m, D), got {tuple(samples.shape)}, {tuple(reference.shape)}")
    return torch.cdist(samples.double(), reference.double()).min(dim=1).values.mean().item()
