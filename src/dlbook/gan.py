"""Generative adversarial networks (Goodfellow et al. 2014) and numbers for sample quality
(chapter 11).

- :class:`GAN`: a generator and a discriminator, both small MLPs.
- :func:`discriminator_loss`, :func:`generator_loss`: the two players' objectives.
- :class:`GANTrainer`: the two-player update, one discriminator step then one generator step;
  with ``r1`` > 0 the discriminator also pays Mescheder et al.'s R1 gradient penalty (2018) on
  real data, the cure for mode collapse that chapter 11 compares.
- :func:`train_gan`: a fixed number of steps, with snapshots of the generator's samples.
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

from .training import adam


# --- models --------------------------------------------------------------------------------------

def mlp(sizes: tuple[int, ...], output: str = "linear") -> nn.Sequential:
    """Linear-ReLU-...-Linear over ``sizes``; ``output="tanh"`` squashes the last layer into
    [-1, 1] (for images scaled to that range)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if output == "tanh":
        layers.append(nn.Tanh())
    elif output != "linear":
        raise ValueError(f"output must be 'linear' or 'tanh', got {output!r}")
    return nn.Sequential(*layers)


@dataclass
class GANConfig:
    """Generator ``noise_dim -> hidden x layers -> data_dim``, discriminator ``data_dim ->
    hidden x layers -> 1``, both trained with Adam. ``r1`` > 0 adds the R1 penalty
    (r1 / 2) E||grad_x D(x)||^2 on real data to the discriminator's loss."""

    data_dim: int = 2
    noise_dim: int = 2
    hidden: int = 64
    layers: int = 2
    output: str = "linear"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 128
    r1: float = 0.0

    @classmethod
    def ring(cls) -> "GANConfig":
        """The plain GAN on the ring of 8 Gaussians."""
        return cls()

    @classmethod
    def ring_r1(cls, r1: float = 1.0) -> "GANConfig":
        """The same GAN with the R1 penalty on its discriminator."""
        return cls(r1=r1)

    @classmethod
    def digits(cls) -> "GANConfig":
        """sklearn's 8x8 digits scaled to [-1, 1]: 64 pixels, a tanh output."""
        return cls(data_dim=64, noise_dim=16, hidden=128, output="tanh", lr=5e-4, r1=1.0)

    @classmethod
    def tiny(cls) -> "GANConfig":
        return cls(hidden=8, batch_size=16)


class GAN(nn.Module):
    """``generate(n)`` gives ``(n, data_dim)`` samples; ``discriminate`` maps ``(B, data_dim)``
    to logits ``(B,)`` (high means "real")."""

    def __init__(self, config: GANConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or GANConfig(), **overrides)
        if min(config.data_dim, config.noise_dim, config.hidden, config.layers,
               config.batch_size) < 1 or config.lr <= 0 or config.r1 < 0:
            raise ValueError(f"sizes, batch_size and lr must be positive, r1 >= 0; got {config}")
        self.config = c = config
        self.generator = mlp((c.noise_dim, *[c.hidden] * c.layers, c.data_dim), c.output)
        self.discriminator = mlp((c.data_dim, *[c.hidden] * c.layers, 1))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=generator).to(self._device)

    def generate(self, n: int | None = None, generator: torch.Generator | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        z = self.noise(n, generator) if noise is None else noise  # (n, noise_dim)
        return self.generator(z)  # (n, data_dim)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(f"expected (B, {self.config.data_dim}) inputs, got {tuple(x.shape)}")
        return self.discriminator(x).squeeze(-1)  # (B,)

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))] averaged over the batch.

    With D = sigmoid(logit): -log D = softplus(-logit) and -log(1 - D) = softplus(logit)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z)). (Minimising log(1 - D(G(z))), the
    minimax game's own term, gives almost no gradient while D still wins easily.)"""
    return F.softplus(-fake_logits).mean()


class GANTrainer:
    """Adam for each player and the two-player update, :meth:`step`."""

    def __init__(self, gan: GAN):
        c = gan.config
        self.gan = gan
        self.opt_d = adam(gan.discriminator.parameters(), c.lr, betas=c.betas)
        self.opt_g = adam(gan.generator.parameters(), c.lr, betas=c.betas)

    def step(self, real: torch.Tensor, generator: torch.Generator | None = None):
        """One discriminator step on ``real`` ``(B, data_dim)`` and a fresh fake batch, then one
        generator step against the updated discriminator. Returns both losses (floats)."""
        gan, r1 = self.gan, self.gan.config.r1
        fake = gan.generate(len(real), generator)  # (B, data_dim)
        real = real.detach().requires_grad_(r1 > 0)
        real_logits = gan.discriminate(real)  # (B,)
        d_loss = discriminator_loss(real_logits, gan.discriminate(fake.detach()))
        total = d_loss
        if r1 > 0:  # R1: keep D flat on the data, so its gradient cannot fling fakes off a mode
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            total = d_loss + r1 / 2 * grad.pow(2).sum(-1).mean()
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        self.opt_d.step()

        g_loss = generator_loss(gan.discriminate(fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        d, g = d_loss.item(), g_loss.item()
        if not (math.isfinite(d) and math.isfinite(g)):
            raise FloatingPointError(f"a GAN loss is not finite (D {d}, G {g}): lower the lr")
        return d, g


@dataclass
class GANHistory:
    """Losses per step and generator samples on fixed noise at some steps."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (n, data_dim)


def train_gan(config: GANConfig, sample_real, steps: int, seed: int = 0,
              snapshot_every: int | None = None, snapshot_size: int = 1000):
    """Train a GAN for ``steps`` steps; ``sample_real(n, generator)`` returns ``n`` real rows
    ``(n, data_dim)`` (a function, or a tensor of data to draw batches from). Returns the GAN
    and a :class:`GANHistory` whose snapshots all use one fixed noise batch."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if isinstance(sample_real, torch.Tensor):
        data = sample_real

        def sample_real(n, generator):
            return data[torch.randint(0, len(data), (n,), generator=generator)]

    torch.manual_seed(seed)
    gan = GAN(config)
    trainer = GANTrainer(gan)
    gen = torch.Generator().manual_seed(seed)
    fixed = gan.noise(snapshot_size, torch.Generator().manual_seed(seed + 10_000))
    history = GANHistory()

    def snapshot(step):
        with torch.no_grad():
            history.snapshots[step] = gan.generate(noise=fixed).cpu()

    if snapshot_every:
        snapshot(0)
    for step in range(1, steps + 1):
        real = sample_real(config.batch_size, gen).to(gan._device)
        d_loss, g_loss = trainer.step(real, gen)
        history.d_loss.append(d_loss)
        history.g_loss.append(g_loss)
        if snapshot_every and (step % snapshot_every == 0 or step == steps):
            snapshot(step)
    gan.eval()
    return gan, history


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
