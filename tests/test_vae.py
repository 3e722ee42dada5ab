"""dlbook.vae: PCA, principal angles, autoencoders and the VAE's pieces, checked against
scipy, scikit-learn, torch.distributions, Monte Carlo and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlbook.training import fit
from dlbook.vae import (VAE, Autoencoder, AutoencoderConfig, VAEConfig, add_noise, binarize,
                        bernoulli_mixture_log_likelihood, fit_bernoulli_mixture,
                        grid_log_likelihood, importance_weighted_bound, log_joint,
                        bernoulli_log_likelihood, gaussian_kl, gaussian_log_density, pca,
                        pca_reconstruct, principal_angles, reparameterize, squared_error)


def low_rank_data(n=400, d=12, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, k, generator=g))[0]  # (d, k)
    scales = torch.tensor([3.0, 2.0, 1.5])[:k]
    codes = torch.randn(n, k, generator=g) * scales
    return codes @ basis.T + 0.05 * torch.randn(n, d, generator=g) + 0.5, basis


def test_pca_matches_sklearn():
    from sklearn.decomposition import PCA

    x, _ = low_rank_data()
    mean, comps = pca(x, 3)
    ref = PCA(3).fit(x.numpy())
    assert torch.allclose(mean, torch.from_numpy(ref.mean_).float(), atol=1e-5)
    # Components agree up to sign.
    dots = (comps.double() @ torch.from_numpy(ref.components_).double().T).abs().diagonal()
    assert torch.allclose(dots, torch.ones(3, dtype=torch.float64), atol=1e-4)
    recon = pca_reconstruct(x, mean, comps)
    ref_recon = ref.inverse_transform(ref.transform(x.numpy()))
    assert np.allclose(recon.numpy(), ref_recon, atol=1e-4)


def test_principal_angles_match_scipy_and_ignore_the_basis():
    from scipy.linalg import subspace_angles

    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(10, 3, generator=g), torch.randn(10, 2, generator=g)
    ours = principal_angles(a, b)
    ref = np.degrees(subspace_angles(a.numpy(), b.numpy()))
    assert np.allclose(ours.numpy(), ref, atol=1e-6)
    mix = torch.randn(3, 3, generator=g)  # another basis of the same span
    assert principal_angles(a, a @ mix).max() < 1e-3
    e = torch.eye(4)
    assert torch.allclose(principal_angles(e[:, :1], e[:, 1:2]), torch.tensor([90.0], dtype=torch.float64))


def test_principal_angles_bad_input():
    with pytest.raises(ValueError, match="same space"):
        principal_angles(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="2-D"):
        principal_angles(torch.randn(5), torch.randn(5, 2))


def test_linear_autoencoder_finds_the_principal_subspace():
    x, basis = low_rank_data()
    model = Autoencoder(AutoencoderConfig.linear_ae(3), input_size=12)
    fit(model, (x, x), epochs=60, batch_size=50, loss_fn=squared_error, metric=None,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), progress=False)
    _, comps = pca(x, 3)
    assert principal_angles(model.decoder[0].weight.detach(), comps.T).max() < 2.0
    assert principal_angles(comps.T, basis).max() < 3.0


def test_autoencoder_shapes_and_errors():
    deep = Autoencoder(AutoencoderConfig.tiny())
    x = torch.rand(5, 16)
    assert deep.encode(x).shape == (5, 2) and deep(x).shape == (5, 16)
    assert ((deep(x) >= 0) & (deep(x) <= 1)).all()  # sigmoid pixels
    assert Autoencoder(AutoencoderConfig.deep(4)).encode(torch.rand(3, 1, 28, 28)).shape == (3, 4)
    with pytest.raises(ValueError, match="pixels"):
        deep(torch.rand(5, 15))
    with pytest.raises(ValueError, match="no hidden layers"):
        Autoencoder(linear=True, hidden=(8,))
    with pytest.raises(TypeError):
        Autoencoder(code=3)


def test_add_noise_corrupts_inputs_only_within_pixel_range():
    x = torch.full((100, 16), 0.5)
    noisy = add_noise(0.2, torch.Generator().manual_seed(0))(x)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert abs(noisy.std().item() - 0.2) < 0.02
    assert torch.equal(add_noise(0.0)(x), x)
    with pytest.raises(ValueError):
        add_noise(-1.0)


def test_gaussian_kl_closed_form_matches_torch_and_monte_carlo():
    from torch.distributions import Normal, kl_divergence

    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    ours = gaussian_kl(mu, logvar)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(ours, ref, atol=1e-5)
    # Monte Carlo: E_q[log q(z) - log p(z)].
    eps = torch.randn(200_000, 4, 3, generator=g)
    z = reparameterize(mu, logvar, eps)  # (S, 4, 3)
    zeros = torch.zeros_like(z)
    mc = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, zeros, zeros)).mean(0)
    assert torch.allclose(mc, ours, rtol=0.02, atol=0.02)
    with pytest.raises(ValueError, match="one shape"):
        gaussian_kl(mu, logvar[:, :2])


def test_bernoulli_log_likelihood_matches_torch():
    from torch.distributions import Bernoulli

    g = torch.Generator().manual_seed(3)
    logits, x = torch.randn(6, 10, generator=g), (torch.rand(6, 10, generator=g) > 0.5).float()
    ref = Bernoulli(logits=logits).log_prob(x).sum(1)
    assert torch.allclose(bernoulli_log_likelihood(logits, x), ref, atol=1e-5)
    soft = torch.rand(6, 10, generator=g)
    bce = F.binary_cross_entropy_with_logits(logits, soft, reduction="none").sum(1)
    assert torch.allclose(bernoulli_log_likelihood(logits, soft), -bce, atol=1e-5)


def test_reparameterized_gradient_matches_finite_difference():
    """For fixed eps the sample is a smooth function of (mu, logvar): autograd's gradient of the
    ELBO equals the central difference, so the reparameterized estimator is exact per sample."""
    torch.manual_seed(0)
    model = VAE(VAEConfig.tiny()).double()
    x = torch.rand(4, 16, dtype=torch.float64)
    eps = torch.randn(4, 2, dtype=torch.float64)
    loss = -model.elbo(x, eps).sum()
    loss.backward()
    weight = model.encoder[0].weight
    h = 1e-6
    for idx in [(0, 0), (3, 5), (7, 15)]:
        with torch.no_grad():
            weight[idx] += h
            up = -model.elbo(x, eps).sum()
            weight[idx] -= 2 * h
            down = -model.elbo(x, eps).sum()
            weight[idx] += h
        assert torch.isclose(weight.grad[idx], (up - down) / (2 * h), rtol=1e-5, atol=1e-7)


def test_reparameterize_shapes_and_errors():
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    assert torch.equal(reparameterize(mu, logvar, torch.ones(3, 2)), torch.ones(3, 2))
    with pytest.raises(ValueError, match="eps"):
        reparameterize(mu, logvar, torch.ones(3, 3))


def test_vae_interface_shapes_and_errors():
    torch.manual_seed(0)
    model = VAE(VAEConfig.tiny())
    x = torch.rand(5, 16)
    logits, loss = model(x, x)
    assert logits.shape == (5, 16) and loss.ndim == 0
    assert model(x)[1] is None
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 2)
    assert model.elbo(x).shape == (5,)
    assert model.sample(7, torch.Generator().manual_seed(0)).shape == (7, 16)
    # The loss is the negative ELBO: reconstruction plus KL, at least the KL.
    assert loss.item() > 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(x, x * 255)
    with pytest.raises(ValueError, match="shape"):
        model.decode(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="targets"):
        model(x, x[:3])
    # NaN < 0 and NaN > 1 are both False: a range check alone lets NaN images through.
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad, bad)
    with pytest.raises(ValueError, match="NaN"):
        model.elbo(bad)


def test_vae_trains_with_fit_and_its_elbo_rises():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(256, 16, generator=g) < torch.linspace(0.1, 0.9, 16)).float()
    model = VAE(VAEConfig.tiny())
    before = -model.elbo(x).mean().item()
    history = fit(model, (x, x), (x[:64], x[:64]), epochs=30, batch_size=32, lr=1e-2,
                  metric=None, progress=False)
    after = -model.elbo(x).mean().item()
    assert after < before and history.val_loss[-1] < history.val_loss[0]
    # An ELBO is a lower bound: the negative ELBO is at least the entropy of independent pixels.
    p = torch.linspace(0.1, 0.9, 16)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum().item()
    assert after > entropy - 1.0


def test_start_at_mean_decodes_a_zero_code_to_the_mean():
    g = torch.Generator().manual_seed(4)
    mean = torch.rand(16, generator=g) * 0.8 + 0.1
    linear = Autoencoder(AutoencoderConfig.linear_ae(3), input_size=16).start_at_mean(mean)
    deep = Autoencoder(AutoencoderConfig.tiny()).start_at_mean(mean)
    with torch.no_grad():
        assert torch.allclose(linear.decode(torch.zeros(1, 3)), mean[None], atol=1e-6)
        # Behind the sigmoid the bias is the logit: decoded exactly when the hidden layer is zero.
        assert torch.allclose(torch.sigmoid(deep.decoder[-1].bias), mean, atol=1e-6)
    # Pixels at 0 or 1 have no logit: clipped, so the bias stays finite.
    edge = Autoencoder(AutoencoderConfig.tiny()).start_at_mean(torch.tensor([0.0, 1.0] * 8))
    assert torch.isfinite(edge.decoder[-1].bias).all()
    with pytest.raises(ValueError, match="16 pixels"):
        deep.start_at_mean(torch.rand(15))


def test_add_noise_range_draws_one_level_per_image():
    x = torch.full((400, 64), 0.5)
    noisy = add_noise((0.0, 0.4), torch.Generator().manual_seed(0))(x)
    levels = (noisy - x).std(1)  # (400,) each image's own level
    assert levels.min() < 0.05 and 0.3 < levels.max() < 0.45
    assert abs(levels.mean().item() - 0.2) < 0.03
    assert torch.equal(add_noise((0.0, 0.0))(x), x)
    with pytest.raises(ValueError, match="range"):
        add_noise((0.4, 0.1))


def test_binarize():
    x = torch.tensor([[0.0, 0.5, 0.51, 1.0]])
    assert torch.equal(binarize(x), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="threshold"):
        binarize(x, 1.0)


def test_beta_weighs_the_kl_in_the_loss():
    torch.manual_seed(0)
    x = (torch.rand(8, 16) > 0.5).float()
    model = VAE(VAEConfig.tiny())
    losses = {}
    for beta in (0.0, 1.0, 3.0):
        model.config.beta = beta
        torch.manual_seed(1)
        losses[beta] = model(x, x)[1]
    mu, logvar = model.encode(x)
    kl = gaussian_kl(mu, logvar).mean()
    assert torch.isclose(losses[3.0] - losses[1.0], 2 * kl, atol=1e-4)
    assert torch.isclose(losses[1.0] - losses[0.0], kl, atol=1e-4)
    with pytest.raises(ValueError, match="beta"):
        VAE(VAEConfig.tiny(), beta=-1.0)


def exact_log_likelihood_1d(model, x):
    """log p(x) for a 1-D latent space by scipy's adaptive quadrature: the ground truth."""
    from scipy.integrate import quad

    def density(z, row):
        with torch.no_grad():
            zt = torch.tensor([[z]], dtype=torch.float64)
            return log_joint(model, row[None], zt[None]).exp().item()

    return torch.tensor([np.log(quad(density, -12, 12, args=(row,), limit=200)[0])
                         for row in x], dtype=torch.float64)


def test_grid_and_importance_weighted_bound_reach_the_exact_likelihood():
    torch.manual_seed(0)
    model = VAE(VAEConfig.tiny(), latent=1).double()
    x = (torch.rand(6, 16, dtype=torch.float64) > 0.5).double()
    exact = exact_log_likelihood_1d(model, x)
    log_px, log_post, grid, cell = grid_log_likelihood(model, x, limit=10.0, points=2001)
    assert torch.allclose(log_px, exact, atol=1e-3)
    # The grid posterior is a density: it integrates to one.
    assert torch.allclose((log_post.exp() * cell).sum(1), torch.ones(6, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    bounds = {k: torch.stack([importance_weighted_bound(model, x, k, g) for _ in range(50)]).mean(0)
              for k in (1, 10, 1000)}
    elbo = torch.stack([model.elbo(x).detach() for _ in range(2000)]).mean(0)
    # In expectation: ELBO <= bound_1 (MC KL has the same mean) <= bound_10 <= bound_1000 <= log p.
    assert torch.allclose(bounds[1], elbo, atol=0.1)
    assert (bounds[1] <= bounds[10] + 0.02).all() and (bounds[10] <= bounds[1000] + 0.01).all()
    assert (bounds[1000] <= exact + 0.01).all()
    assert (exact - bounds[1000]).abs().max() < 0.05
    # The gap of the ELBO is KL(q || posterior), integrated on the grid.
    mu, logvar = model.encode(x)
    log_q = gaussian_log_density(grid[None], mu[:, None], logvar[:, None])  # (B, G)
    kl_q_post = (log_q.exp() * (log_q - log_post) * cell).sum(1)
    assert torch.allclose(elbo + kl_q_post.detach(), exact, atol=0.1)


def test_grid_in_two_dimensions_matches_a_finer_grid():
    torch.manual_seed(1)
    model = VAE(VAEConfig.tiny()).double()
    x = (torch.rand(4, 16, dtype=torch.float64) > 0.5).double()
    coarse = grid_log_likelihood(model, x, limit=8.0, points=161)[0]
    fine = grid_log_likelihood(model, x, limit=10.0, points=401)[0]
    assert torch.allclose(coarse, fine, atol=1e-4)


def test_likelihood_bad_input():
    model = VAE(VAEConfig.tiny(), latent=3)
    x = (torch.rand(2, 16) > 0.5).float()
    with pytest.raises(ValueError, match="importance_weighted_bound"):
        grid_log_likelihood(model, x)
    with pytest.raises(ValueError, match="at least 1"):
        importance_weighted_bound(model, x, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        importance_weighted_bound(model, x * 255, 5)


def test_bernoulli_mixture_em_climbs_and_matches_torch_distributions():
    from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily

    g = torch.Generator().manual_seed(0)
    prototypes = (torch.rand(3, 20, generator=g) > 0.5).float() * 0.8 + 0.1  # (3, 20)
    labels = torch.randint(0, 3, (300,), generator=g)
    x = (torch.rand(300, 20, generator=g) < prototypes[labels]).float()
    log_w, probs, history = fit_bernoulli_mixture(x, 3, 40, torch.Generator().manual_seed(1),
                                                  smoothing=0.0)
    assert all(b >= a - 1e-4 for a, b in zip(history, history[1:]))  # EM never goes down
    ref = MixtureSameFamily(Categorical(logits=log_w), Independent(Bernoulli(probs=probs), 1))
    ours = bernoulli_mixture_log_likelihood(x, log_w, probs)
    assert torch.allclose(ours, ref.log_prob(x), atol=1e-4)
    # Three components fit three prototypes far better than one does.
    one = bernoulli_mixture_log_likelihood(x, *fit_bernoulli_mixture(x, 1, 5)[:2]).mean()
    assert ours.mean() > one + 3
    with pytest.raises(ValueError, match="components"):
        fit_bernoulli_mixture(x, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_bernoulli_mixture(x * 2, 3)
