"""Denoising diffusion (DDPM, Ho et al. 2020) in one small file (chapter 11).

- :class:`NoiseSchedule`: the betas and the products ``alpha_bar_t`` that give the closed form
  ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``.
- :func:`q_sample` (that closed form) and :func:`forward_chain` (the chain itself, one small
  noise step at a time), so the chapter can check that they agree.
- :class:`Denoiser`: an MLP that predicts the noise in ``x_t``, told ``t`` through a sinusoidal
  embedding, with residual LayerNorm blocks.
- :func:`posterior`: q(x_{t-1} | x_t, x_0) in closed form, the target the reverse step learns.
- :class:`DDPM`: the training step (noise a batch at random times, regress the noise) with an
  exponential moving average of the weights, and ancestral sampling from pure noise (T
  denoiser passes); :func:`ddim_sample` reuses the trained model with fewer passes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .training import adam


@dataclass(frozen=True)
class NoiseSchedule:
    """``betas[t-1]`` is the variance of the noise added at step ``t = 1..T``."""

    betas: torch.Tensor  # (T,)

    def __post_init__(self):
        b = self.betas
        if b.ndim != 1 or len(b) == 0 or not bool(((b > 0) & (b < 1)).all()):
            raise ValueError("betas must be a non-empty 1-D tensor with every value in (0, 1)")

    @classmethod
    def linear(cls, T: int = 200, beta_start: float = 1e-4, beta_end: float = 0.1) -> "NoiseSchedule":
        """Betas evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. use T = 1000,
        1e-4 to 0.02; a short chain needs larger steps to reach pure noise)."""
        if T < 1 or not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need T >= 1 and 0 < beta_start <= beta_end < 1, got T={T}, "
                             f"{beta_start}, {beta_end}")
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64).float())

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas  # (T,)

    @property
    def alpha_bars(self) -> torch.Tensor:
        """alpha_bar_t = prod_{s <= t} (1 - beta_s): the share of the signal's variance left."""
        return torch.cumprod(self.alphas.double(), 0).float()  # (T,)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at t = 1..T, falling with t."""
        ab = self.alpha_bars
        return ab / (1 - ab)


def _check_t(t: torch.Tensor, schedule: NoiseSchedule, n: int) -> torch.Tensor:
    t = torch.as_tensor(t)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,) or t.dtype.is_floating_point:
        raise ValueError(f"t must be whole numbers of shape ({n},), got {t.dtype} {tuple(t.shape)}")
    if len(t) and (t.min() < 1 or t.max() > schedule.T):
        raise ValueError(f"timesteps run from 1 to T = {schedule.T}; got {t.min().item()} to "
                         f"{t.max().item()}")
    return t


def q_sample(x0: torch.Tensor, t, schedule: NoiseSchedule,
             noise: torch.Tensor | None = None) -> torch.Tensor:
    """A draw of x_t ~ q(x_t | x_0) in one step: sqrt(ab_t) x_0 + sqrt(1 - ab_t) noise.

    ``x0`` ``(B, D)``; ``t`` an int or ``(B,)`` timesteps in 1..T."""
    t = _check_t(t, schedule, len(x0))
    if noise is None:
        noise = torch.randn_like(x0)
    elif noise.shape != x0.shape:  # (D,) would broadcast: every row the same noise
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got "
                         f"{tuple(noise.shape)}: one independent draw per entry")
    ab = _per_row(schedule.alpha_bars.to(x0.device)[t - 1], x0)  # (B, 1, ...)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # (B, ...)


def _per_row(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` coefficients as ``(B, 1, ..., 1)``, to scale each row of ``x`` ``(B, ...)``
    whatever its shape (a trailing ``unsqueeze(-1)`` would broadcast images along a pixel
    axis)."""
    return coef.reshape(len(coef), *[1] * (x.ndim - 1))


def posterior(x0: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule):
    """The forward process's posterior q(x_{t-1} | x_t, x_0) = N(mean, var I) in closed form
    (Ho et al. 2020, eq. 6-7): mean = c0 x_0 + ct x_t with
    c0 = sqrt(ab_{t-1}) beta_t / (1 - ab_t), ct = sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t), and
    var = beta_t (1 - ab_{t-1}) / (1 - ab_t), where ab_0 = 1. Returns ``(mean, var)``: mean
    of x0's shape, var ``(B,)``."""
    if xt.shape != x0.shape:
        raise ValueError(f"x0 and xt must have one shape, got {tuple(x0.shape)}, "
                         f"{tuple(xt.shape)}")
    t = _check_t(t, schedule, len(x0))
    ab = torch.cumprod(1 - schedule.betas.double(), 0).to(x0.device)  # exact, not float32
    ab_t = ab[t - 1]  # (B,)
    ab_prev = torch.where(t > 1, ab[(t - 2).clamp(min=0)], torch.ones_like(ab_t))  # (B,)
    beta = schedule.betas.double().to(x0.device)[t - 1]  # (B,)
    c0 = ab_prev.sqrt() * beta / (1 - ab_t)
    ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t)
    mean = _per_row(c0, x0) * x0.double() + _per_row(ct, xt) * xt.double()
    return mean.to(x0.dtype), (beta * (1 - ab_prev) / (1 - ab_t)).to(x0.dtype)


def forward_chain(x0: torch.Tensor, schedule: NoiseSchedule,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Run the Markov chain x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps step by step.

    Returns every state, ``(T + 1, B, D)``, with ``x_0`` first."""
    xs = [x0]
    for beta in schedule.betas.tolist():
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        xs.append(math.sqrt(1 - beta) * xs[-1] + math.sqrt(beta) * eps)
    return torch.stack(xs)


def chain_moments(schedule: NoiseSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """The chain's mean coefficient m_t (x_t's mean is m_t x_0) and variance v_t, by the
    recursion m_t = sqrt(1 - beta_t) m_{t-1}, v_t = (1 - beta_t) v_{t-1} + beta_t, from
    m_0 = 1, v_0 = 0. The closed form says m_t = sqrt(ab_t) and v_t = 1 - ab_t."""
    m, v, ms, vs = 1.0, 0.0, [], []
    for beta in schedule.betas.double().tolist():
        m, v = math.sqrt(1 - beta) * m, (1 - beta) * v + beta
        ms.append(m)
        vs.append(v)
    return torch.tensor(ms, dtype=torch.float64), torch.tensor(vs, dtype=torch.float64)


class SinusoidalEmbedding(nn.Module):
    """A timestep t as sines and cosines of geometrically spaced frequencies (the transformer's
    positional encoding): nearby t get similar vectors, and every t a distinct one."""

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"the embedding size must be even and >= 2, got {dim}")
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", freqs)  # (dim/2,)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float().unsqueeze(-1) * self.freqs  # (B, dim/2)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, dim)


@dataclass
class DenoiserConfig:
    """An MLP noise predictor: ``[x_t, embed(t)] -> hidden -> blocks x (LN, Linear, SiLU,
    Linear) + skip -> LN -> data_dim``."""

    data_dim: int = 2
    hidden: int = 128
    blocks: int = 2
    time_dim: int = 32

    @classmethod
    def toy2d(cls) -> "DenoiserConfig":
        return cls(data_dim=2, hidden=128, blocks=2, time_dim=32)

    @classmethod
    def digits(cls) -> "DenoiserConfig":
        """sklearn's 8x8 digits: 64 pixels, hidden 256, three residual blocks."""
        return cls(data_dim=64, hidden=256, blocks=3, time_dim=64)

    @classmethod
    def tiny(cls) -> "DenoiserConfig":
        return cls(data_dim=2, hidden=16, blocks=1, time_dim=8)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)  # (B, width)


class Denoiser(nn.Module):
    """eps_theta(x_t, t): the noise the network thinks was added to reach ``x_t`` at step ``t``."""

    def __init__(self, config: DenoiserConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or DenoiserConfig(), **overrides)
        if min(config.data_dim, config.hidden, config.blocks) < 1:
            raise ValueError(f"sizes must be positive, got {config}")
        self.config = config
        self.embed = SinusoidalEmbedding(config.time_dim)
        self.inp = nn.Linear(config.data_dim + config.time_dim, config.hidden)
        self.blocks = nn.Sequential(*[ResidualBlock(config.hidden) for _ in range(config.blocks)])
        self.out = nn.Sequential(nn.LayerNorm(config.hidden), nn.Linear(config.hidden, config.data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(f"x must have shape (B, {self.config.data_dim}), got {tuple(x.shape)}")
        if t.shape != (len(x),):
            raise ValueError(f"t must have shape ({len(x)},), got {tuple(t.shape)}")
        h = self.inp(torch.cat([x, self.embed(t)], dim=-1))  # (B, hidden)
        return self.out(self.blocks(h))  # (B, data_dim)


class DDPM:
    """A denoiser, its noise schedule, an Adam optimizer and an EMA copy of the weights.

    ``step(x0)`` is one training step; ``sample(n)`` draws from the EMA model, whose averaged
    weights give smoother samples than the last noisy step's.
    """

    def __init__(self, model: Denoiser, schedule: NoiseSchedule, lr: float = 1e-3,
                 ema_decay: float = 0.99):
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
        self.model, self.schedule, self.ema_decay = model, schedule, ema_decay
        self.ema = copy.deepcopy(model).requires_grad_(False).eval()
        self.optimizer = adam(model.parameters(), lr)
        self.losses: list[float] = []

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ho et al.'s simple loss: noise each example to a random step, predict the noise."""
        t = torch.randint(1, self.schedule.T + 1, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        return F.mse_loss(self.model(q_sample(x0, t, self.schedule, noise), t), noise)

    def step(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> float:
        _check_finite(x0)
        loss = self.loss(x0, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the diffusion loss is {loss.item()} at step "
                                     f"{len(self.losses) + 1}: lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        ema_update(self.ema, self.model, self.ema_decay)
        self.losses.append(loss.item())
        return self.losses[-1]

    def train(self, data: torch.Tensor, steps: int, batch_size: int = 256, seed: int = 0) -> "DDPM":
        """``steps`` steps on random batches of ``data`` ``(N, D)`` (fixed count, seeded)."""
        if steps < 1 or batch_size < 1 or len(data) == 0:
            raise ValueError(f"need steps >= 1, batch_size >= 1 and data; got {steps}, "
                             f"{batch_size}, {len(data)} rows")
        _check_finite(data)
        gen = torch.Generator().manual_seed(seed)
        self.model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(data), (batch_size,), generator=gen)
            self.step(data[idx], gen)
        self.model.eval()
        return self

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, keep: tuple[int, ...] = (),
               model: nn.Module | None = None):
        """Ancestral sampling from x_T ~ N(0, I) down to x_0 (Ho et al.'s Algorithm 2, sigma_t^2 =
        beta_t). Returns x_0 ``(n, D)``, and with ``keep`` also ``{t: x_t}`` for those steps."""
        model = model if model is not None else self.ema
        s = self.schedule
        device = next(model.parameters()).device
        x = torch.randn(n, model.config.data_dim, generator=generator).to(device)  # x_T
        kept = {s.T: x.clone()} if s.T in keep else {}
        betas, alphas, abars = s.betas.tolist(), s.alphas.tolist(), s.alpha_bars.tolist()
        for t in range(s.T, 0, -1):
            eps = model(x, torch.full((n,), t, dtype=torch.long, device=device))  # (n, D)
            mean = (x - betas[t - 1] / math.sqrt(1 - abars[t - 1]) * eps) / math.sqrt(alphas[t - 1])
            noise = torch.randn(x.shape, generator=generator).to(x) if t > 1 else 0.0
            x = mean + math.sqrt(betas[t - 1]) * noise  # x_{t-1}
            if t - 1 in keep:
                kept[t - 1] = x.clone()
        return (x, kept) if keep else x


def _check_finite(data: torch.Tensor) -> None:
    if not bool(torch.isfinite(data).all()):
        bad = int((~torch.isfinite(data)).any(dim=tuple(range(1, data.ndim))).sum()) \
            if data.ndim > 1 else int((~torch.isfinite(data)).sum())
        raise ValueError(f"the training data hold NaN or infinite values ({bad} of {len(data)} "
                         "rows): clean or drop those rows before training")


@torch.no_grad()
def ddim_sample(model: nn.Module, schedule: NoiseSchedule, n: int, steps: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Song et al.'s deterministic DDIM sampler (2021, eta = 0) with ``steps`` denoiser passes
    on evenly spaced timesteps T = tau_K > ... > tau_1 >= 1, reusing a DDPM's trained
    eps-model: at each, x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t) and the next state is
    sqrt(ab_s) x0_hat + sqrt(1 - ab_s) eps (ab_0 = 1 at the last). Returns ``(n, D)``."""
    if not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must lie in 1..T = {schedule.T}, got {steps}")
    device = next(model.parameters()).device
    taus = torch.linspace(schedule.T, 1, steps).round().long().unique_consecutive().tolist()
    ab = [1.0] + schedule.alpha_bars.double().tolist()  # ab[0] = 1: no noise left
    x = torch.randn(n, model.config.data_dim, generator=generator).to(device)  # x_T
    for t, s in zip(taus, taus[1:] + [0]):
        eps = model(x, torch.full((n,), t, dtype=torch.long, device=device))  # (n, D)
        x0_hat = (x - math.sqrt(1 - ab[t]) * eps) / math.sqrt(ab[t])
        x = math.sqrt(ab[s]) * x0_hat + math.sqrt(1 - ab[s]) * eps  # x_s
    return x


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (buffers copied)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
