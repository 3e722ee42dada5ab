"""Autoencoders and the variational autoencoder (chapter 10), small enough to read in one sitting.

- :func:`pca` and :func:`pca_reconstruct`: the linear baseline, from one SVD.
- :class:`Autoencoder`: encoder, bottleneck of ``code_size`` numbers, decoder; ``linear=True``
  gives the linear autoencoder whose optimum spans the top principal components
  (:func:`principal_angles` measures how close a trained one gets).
- :func:`add_noise`: the corruption of a denoising autoencoder, as a ``fit(transform=...)``.
- :class:`VAE`: a Gaussian encoder ``q(z|x)``, a Bernoulli decoder ``p(x|z)`` and a standard
  normal prior, trained on the negative ELBO. Its ``forward(x, targets)`` returns
  ``(logits, loss)`` like the book's language models, so :func:`dlbook.training.fit` trains it.
- :func:`gaussian_kl`, :func:`reparameterize`, :func:`bernoulli_log_likelihood`: the three
  pieces of the ELBO, each a line or two, so the chapter can check them one by one.
- :func:`binarize`: black-and-white digits, on which the ELBO bounds a real log-likelihood.
- :func:`importance_weighted_bound` (Burda et al. 2016) and, for a latent space of one or two
  dimensions, :func:`grid_log_likelihood`: log p(x) itself, and the true posterior, on a grid.
- :func:`fit_bernoulli_mixture`: the simple generative baseline, a mixture of Bernoulli images
  fitted by EM, whose log-likelihood is exact.

Losses are in nats per image (summed over pixels), the unit papers report MNIST ELBOs in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


# --- PCA, the linear baseline -------------------------------------------------------------------

def pca(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean ``(D,)`` and the top-``k`` principal directions ``(k, D)`` (orthonormal rows) of
    the rows of ``x`` ``(N, D)``, from the SVD of the centred data."""
    _check_matrix(x, "x")
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must lie between 1 and {min(x.shape)} for data of shape "
                         f"{tuple(x.shape)}, got {k}")
    mean = x.mean(0)  # (D,)
    _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)  # vt: (min(N, D), D)
    return mean, vt[:k]


def pca_reconstruct(x: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """Project ``x`` ``(N, D)`` onto the principal subspace and back: ``(N, D)``."""
    codes = (x - mean) @ components.T  # (N, k)
    return codes @ components + mean  # (N, D)


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles in degrees, largest first, between the column spans of ``a`` ``(D, k)``
    and ``b`` ``(D, m)``: 0 for a shared direction, 90 for an orthogonal one.

    Two bases of one subspace can look nothing alike (any rotation inside it is as good), so
    comparing them entry by entry says nothing; the angles compare the subspaces themselves.
    """
    for name, m in (("a", a), ("b", b)):
        _check_matrix(m, name)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must live in the same space: {a.shape[0]} vs {b.shape[0]} rows")
    qa, _ = torch.linalg.qr(a.double())  # (D, k) orthonormal
    qb, _ = torch.linalg.qr(b.double())  # (D, m)
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0)  # (min(k, m),) descending
    return torch.rad2deg(torch.arccos(cosines)).flip(0)


def squared_error(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over pixels, averaged over images: PCA's objective, as a loss_fn."""
    return (reconstruction - x).pow(2).flatten(1).sum(1).mean()


# --- autoencoders --------------------------------------------------------------------------------

@dataclass
class AutoencoderConfig:
    """``input_size -> hidden... -> code_size -> ...hidden -> input_size``; ``linear`` drops the
    hidden layers and every non-linearity (then it can do no better than PCA)."""

    input_size: int = 784
    code_size: int = 16
    hidden: tuple[int, ...] = (256,)
    linear: bool = False

    @classmethod
    def linear_ae(cls, code_size: int = 16) -> "AutoencoderConfig":
        return cls(code_size=code_size, hidden=(), linear=True)

    @classmethod
    def deep(cls, code_size: int = 16) -> "AutoencoderConfig":
        return cls(code_size=code_size, hidden=(256,))

    @classmethod
    def tiny(cls) -> "AutoencoderConfig":
        return cls(input_size=16, code_size=2, hidden=(8,))


class Autoencoder(nn.Module):
    """An encoder to a ``code_size`` bottleneck and a decoder back; ``forward`` reconstructs."""

    def __init__(self, config: AutoencoderConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or AutoencoderConfig(), **overrides)
        if config.code_size < 1 or config.input_size < 1:
            raise ValueError(f"code_size and input_size must be positive, got {config}")
        if config.linear and config.hidden:
            raise ValueError("a linear autoencoder has no hidden layers: pass hidden=()")
        self.config = config
        sizes = [config.input_size, *config.hidden, config.code_size]
        self.encoder = _mlp(sizes, final_activation=False)
        self.decoder = _mlp(sizes[::-1], final_activation=False)
        if config.linear:
            # Start at a random orthonormal projection (decoder = encoder transposed). From small
            # random weights a linear net first sits near the saddle at zero for a long time
            # (Saxe et al. 2014); from here gradient descent only has to turn the subspace.
            with torch.no_grad():
                nn.init.orthogonal_(self.encoder[0].weight)
                self.decoder[0].weight.copy_(self.encoder[0].weight.T)
                self.encoder[0].bias.zero_()
                self.decoder[0].bias.zero_()

    def start_at_mean(self, mean: torch.Tensor) -> Autoencoder:
        """Set the decoder's output bias so that a zero code decodes to ``mean`` ``(input_size,)``,
        the image PCA starts from: the bias is the mean itself, or behind the sigmoid of a deep
        decoder its logit (pixels clipped to [0.001, 0.999], since 0 and 1 have no logit).
        Returns the model."""
        mean = mean.detach().flatten()
        if mean.shape != (self.config.input_size,):
            raise ValueError(f"mean must hold {self.config.input_size} pixels, got shape "
                             f"{tuple(mean.shape)}")
        bias = mean if self.config.linear else torch.logit(mean.clamp(1e-3, 1 - 1e-3))
        with torch.no_grad():
            self.decoder[-1].bias.copy_(bias)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_flat(x, self.config.input_size))  # (B, code_size)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        out = self.decoder(code)  # (B, input_size)
        return out if self.config.linear else torch.sigmoid(out)  # pixels in [0, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))  # (B, input_size)


def add_noise(sigma: float | tuple[float, float], generator: torch.Generator | None = None):
    """A ``fit(transform=...)`` for a denoising autoencoder: Gaussian noise of standard deviation
    ``sigma`` on each training image, clipped to the pixel range [0, 1]. ``fit`` corrupts only the
    inputs, so the model learns to map a noisy digit to the clean one it was made from.

    ``sigma=(low, high)``: each image draws its own level uniformly from that range, so one model
    learns every level in it, the clean digit (``low=0``) included."""
    low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
    if not 0 <= low <= high:
        raise ValueError(f"sigma must be a non-negative level or a range (low, high) with "
                         f"0 <= low <= high, got {sigma}")

    def corrupt(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        shape = (len(x),) + (1,) * (x.ndim - 1)  # one level per image
        level = low + (high - low) * torch.rand(shape, generator=generator).to(x)
        return (x + level * noise).clamp(0.0, 1.0)

    return corrupt


def binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Black-and-white pixels, 1 where ``x > threshold``: data a Bernoulli decoder can assign a
    probability to, so that an ELBO on them bounds a log-likelihood (on grey pixels it is only a
    cross-entropy). A fixed threshold keeps the data the same on every run."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return (x > threshold).to(x.dtype)


# --- the VAE -------------------------------------------------------------------------------------

def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per row, in nats: ``(B,)``.

    Closed form: 1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2).
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have one shape, got {tuple(mu.shape)} and "
                         f"{tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                   eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that is a differentiable
    function of (mu, logvar), so the gradient of E_q[f(z)] flows back into the encoder."""
    if eps is None:
        eps = torch.randn_like(mu)
    if eps.shape[eps.ndim - mu.ndim:] != mu.shape:  # eps may carry leading sample axes
        raise ValueError(f"eps has shape {tuple(eps.shape)}; it must end in mu's "
                         f"{tuple(mu.shape)}")
    return mu + torch.exp(0.5 * logvar) * eps  # (..., B, latent)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per image for independent Bernoulli pixels with these logits: ``(B,)``.

    log p = sum(x * logit - log(1 + e^logit)). Grey pixels in [0, 1] enter as soft targets, as
    is usual for MNIST: strictly it is then a cross-entropy, a log-probability only for
    black-and-white pixels."""
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and images {tuple(x.shape)} differ")
    return (x * logits - F.softplus(logits)).flatten(1).sum(1)


@dataclass
class VAEConfig:
    """A fully connected VAE: ``input -> hidden -> (mu, logvar)`` and ``latent -> hidden -> input``."""

    input_size: int = 784
    hidden: int = 256
    latent: int = 2
    beta: float = 1.0  # the KL's weight in the loss: 1 is the ELBO, more is a beta-VAE

    @classmethod
    def mnist2d(cls) -> "VAEConfig":
        """Two latent numbers: the whole latent space fits on one page."""
        return cls(latent=2)

    @classmethod
    def mnist(cls) -> "VAEConfig":
        return cls(latent=16)

    @classmethod
    def tiny(cls) -> "VAEConfig":
        return cls(input_size=16, hidden=8, latent=2)


class VAE(nn.Module):
    """Kingma and Welling's variational autoencoder (2014), with a Bernoulli decoder.

    ``forward(x, targets)`` returns ``(logits, loss)``: the decoder's logits ``(B, input)`` for
    one reparameterized sample per image, and the negative ELBO averaged over the batch, in nats
    (``targets``: the images to reconstruct, normally ``x`` itself). The book's ``fit`` trains
    any model with that interface. With ``config.beta != 1`` the loss weighs the KL by beta
    (Higgins et al. 2017) and is no longer the negative ELBO.
    """

    def __init__(self, config: VAEConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or VAEConfig(), **overrides)
        if min(config.input_size, config.hidden, config.latent) < 1:
            raise ValueError(f"sizes must be positive, got {config}")
        if not config.beta >= 0:
            raise ValueError(f"beta must be non-negative, got {config.beta}")
        self.config = config
        self.encoder = nn.Sequential(nn.Linear(config.input_size, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, 2 * config.latent))
        self.decoder = nn.Sequential(nn.Linear(config.latent, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, config.input_size))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance of q(z|x), each ``(B, latent)``."""
        mu, logvar = self.encoder(_flat(x, self.config.input_size)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x|z) ``(B, input)``; ``torch.sigmoid`` of them is the mean image."""
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"z must have shape (B, {self.config.latent}), got {tuple(z.shape)}")
        return self.decoder(z)

    def elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The evidence lower bound per image ``(B,)``, in nats, from one sample of q(z|x):
        E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x)."""
        x = _check_images(x, self.config.input_size)
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)  # (B, latent)
        return bernoulli_log_likelihood(self.decode(z), x) - gaussian_kl(mu, logvar)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        x = _flat(x, self.config.input_size)
        mu, logvar = self.encode(x)
        logits = self.decode(reparameterize(mu, logvar))  # (B, input)
        if targets is None:
            return logits, None
        targets = _check_images(targets, self.config.input_size)
        if len(targets) != len(x):
            raise ValueError(f"{len(x)} inputs but {len(targets)} targets")
        kl = gaussian_kl(mu, logvar)  # (B,)
        objective = bernoulli_log_likelihood(logits, targets) - self.config.beta * kl  # (B,)
        return logits, -objective.mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images ``(n, input)``: z from the prior N(0, I), decoded to mean pixels."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent, generator=generator).to(device)
        return torch.sigmoid(self.decode(z))


# --- helpers -------------------------------------------------------------------------------------

def _mlp(sizes, final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _flat(x: torch.Tensor, size: int) -> torch.Tensor:
    x = x.flatten(1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[1] != size:
        raise ValueError(f"expected images of {size} pixels, shape (B, {size}) or (B, ...), got "
                         f"{tuple(x.shape)}")
    return x


def _check_images(x: torch.Tensor, size: int) -> torch.Tensor:
    x = _flat(x, size)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the images hold NaN or infinite pixels: clean the data first")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("a Bernoulli decoder models pixels in [0, 1]; got values in "
                         f"[{x.min().item():.3g}, {x.max().item():.3g}]: divide by 255?")
    return x


def _check_matrix(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty 2-D tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis: what a Monte-Carlo estimate of
    the KL averages, log q(z) - log p(z)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


# --- the likelihood itself: importance sampling and, in two dimensions, a grid -----------------

def log_joint(model: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x, z) = log p(x|z) + log p(z) for images ``x`` ``(B, input)`` and codes ``z``
    ``(S, B, latent)``, one code set per image: ``(S, B)``."""
    s, b, latent = z.shape
    logits = model.decode(z.reshape(s * b, latent)).reshape(s, b, -1)  # (S, B, input)
    log_px_z = (x * logits - F.softplus(logits)).sum(-1)  # (S, B)
    return log_px_z - 0.5 * (LOG_2PI + z.pow(2)).sum(-1)


@torch.no_grad()
def importance_weighted_bound(model: VAE, x: torch.Tensor, samples: int,
                              generator: torch.Generator | None = None,
                              chunk: int = 100) -> torch.Tensor:
    """Burda et al.'s importance-weighted bound per image ``(B,)``, in nats:

    log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x),  K = ``samples``.

    Its expectation is at most log p(x), never below the ELBO (K = 1 is a one-sample ELBO), and
    rises to log p(x) as K grows. ``chunk`` samples are decoded at a time, to bound memory."""
    if samples < 1 or chunk < 1:
        raise ValueError(f"samples and chunk must be at least 1, got {samples} and {chunk}")
    x = _check_images(x, model.config.input_size)
    mu, logvar = model.encode(x)  # (B, latent)
    log_w = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        eps = torch.randn((k, *mu.shape), generator=generator).to(mu)  # (k, B, latent)
        z = reparameterize(mu, logvar, eps)
        log_w.append(log_joint(model, x, z) - gaussian_log_density(z, mu, logvar))  # (k, B)
    return torch.logsumexp(torch.cat(log_w), 0) - math.log(samples)


@torch.no_grad()
def grid_log_likelihood(model: VAE, x: torch.Tensor, limit: float = 5.0, points: int = 201):
    """log p(x) per image ``(B,)`` by summing p(x, z) over a square grid of codes: exact up to
    the grid's resolution, for a latent space of 1 or 2 dimensions, where a grid is cheap.

    Returns ``(log_px, log_posterior, grid, cell)``: the log-likelihoods ``(B,)``, the log
    density of the true posterior p(z|x) at each grid point ``(B, G)``, the grid ``(G, latent)``
    and the area (length, in 1-D) of one cell. The grid spans [-limit, limit] in each direction;
    a posterior narrower than a cell or outside the grid is not resolved."""
    latent = model.config.latent
    if latent not in (1, 2):
        raise ValueError(f"a grid is only cheap in 1 or 2 latent dimensions, not {latent}: "
                         "use importance_weighted_bound")
    if limit <= 0 or points < 3:
        raise ValueError(f"need limit > 0 and at least 3 points, got {limit} and {points}")
    x = _check_images(x, model.config.input_size)
    axis = torch.linspace(-limit, limit, points)
    grid = torch.cartesian_prod(*[axis] * latent).reshape(-1, latent)  # (G, latent)
    cell = (axis[1] - axis[0]).item() ** latent
    logits = model.decode(grid.to(x))  # (G, input)
    log_pz = -0.5 * (LOG_2PI + grid.to(x).pow(2)).sum(-1)  # (G,)
    joint = x @ logits.T - F.softplus(logits).sum(-1) + log_pz  # (B, G)
    log_px = torch.logsumexp(joint, 1) + math.log(cell)  # (B,)
    return log_px, joint - log_px[:, None], grid, cell


# --- the simple baseline: a mixture of Bernoulli images, fitted by EM ---------------------------

def fit_bernoulli_mixture(x: torch.Tensor, components: int, iterations: int = 50,
                          generator: torch.Generator | None = None, smoothing: float = 1.0):
    """A mixture of ``components`` images of independent Bernoulli pixels, fitted to binary
    ``x`` ``(N, D)`` by expectation-maximisation. Returns ``(log_weights (K,), probs (K, D),
    train_log_likelihood)`` with the last a list, per iteration, of the mean log p(x) in nats,
    which EM never lowers (up to the ``smoothing``: a Beta(1 + s, 1 + s) prior's pseudo-counts
    that keep every pixel probability off 0 and 1, so that a test pixel never costs infinity)."""
    _check_matrix(x, "x")
    x = _check_images(x, x.shape[1])
    if not 1 <= components <= len(x):
        raise ValueError(f"components must lie between 1 and {len(x)}, got {components}")
    start = torch.randperm(len(x), generator=generator)[:components]
    probs = (x[start] * 0.5 + 0.25)  # (K, D) start near random data points
    log_weights = torch.full((components,), -math.log(components))
    history = []
    for _ in range(iterations):
        joint = _mixture_joint(x, log_weights, probs)  # (N, K)
        log_px = torch.logsumexp(joint, 1)  # (N,)
        history.append(log_px.mean().item())
        resp = (joint - log_px[:, None]).exp()  # (N, K) E step
        counts = resp.sum(0)  # (K,) M step
        log_weights = (counts / len(x)).log()
        probs = (resp.T @ x + smoothing) / (counts[:, None] + 2 * smoothing)
    return log_weights, probs, history


def bernoulli_mixture_log_likelihood(x: torch.Tensor, log_weights: torch.Tensor,
                                     probs: torch.Tensor) -> torch.Tensor:
    """log p(x) per row of binary ``x`` ``(N, D)`` under the mixture: ``(N,)``, exact."""
    x = _check_images(x, probs.shape[1])
    return torch.logsumexp(_mixture_joint(x, log_weights, probs), 1)


def _mixture_joint(x, log_weights, probs):
    return x @ probs.log().T + (1 - x) @ (1 - probs).log().T + log_weights  # (N, K)
