"""dlbook.diffusion: the schedule's properties, q(x_t | x_0) in closed form against iterating
the chain, the denoiser's shapes, the training step, sampling, and the EMA against PyTorch's."""
from __future__ import annotations

import pytest
import torch

from dlbook.diffusion import (DDPM, Denoiser, DenoiserConfig, NoiseSchedule,
                              SinusoidalEmbedding, chain_moments, ema_update, forward_chain,
                              q_sample)


def test_linear_schedule_properties():
    s = NoiseSchedule.linear(200, 1e-4, 0.1)
    assert s.T == 200 and s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.1)
    ab = s.alpha_bars
    assert (ab[1:] < ab[:-1]).all() and 0 < ab[-1] < 1e-4 and ab[0] < 1
    assert (s.snr()[1:] < s.snr()[:-1]).all()
    assert torch.allclose(ab, torch.cumprod(1 - s.betas.double(), 0).float())


def test_schedule_bad_input():
    with pytest.raises(ValueError):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError):
        NoiseSchedule.linear(10, 0.2, 0.1)
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor([0.1, 1.0]))


def test_recursion_equals_closed_form():
    s = NoiseSchedule.linear(50, 1e-3, 0.2)
    m, v = chain_moments(s)
    ab = s.alpha_bars.double()
    assert torch.allclose(m, ab.sqrt(), atol=1e-6) and torch.allclose(v, 1 - ab, atol=1e-6)


def test_closed_form_matches_iterating_the_chain():
    s = NoiseSchedule.linear(30, 1e-3, 0.2)
    x0 = torch.tensor([[1.5, -0.5]]).repeat(40_000, 1)
    chain = forward_chain(x0, s, torch.Generator().manual_seed(0))  # (T+1, N, 2)
    assert chain.shape == (31, 40_000, 2) and torch.equal(chain[0], x0)
    for t in (1, 10, 30):
        direct = q_sample(x0, t, s, torch.randn(x0.shape, generator=torch.Generator().manual_seed(t)))
        ab = s.alpha_bars[t - 1]
        for sample in (chain[t], direct):
            assert torch.allclose(sample.mean(0), ab.sqrt() * x0[0], atol=0.02)
            assert torch.allclose(sample.var(0), (1 - ab).expand(2), atol=0.02)


def test_q_sample_is_exact_for_given_noise_and_checks_t():
    s = NoiseSchedule.linear(10)
    x0, noise = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([1, 3, 5, 10])
    ab = s.alpha_bars[t - 1].unsqueeze(1)
    assert torch.allclose(q_sample(x0, t, s, noise), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    with pytest.raises(ValueError, match="1 to T"):
        q_sample(x0, torch.tensor([0, 1, 2, 3]), s)
    with pytest.raises(ValueError):
        q_sample(x0, torch.tensor([1.0, 2, 3, 4]), s)


def test_sinusoidal_embedding():
    emb = SinusoidalEmbedding(8)
    out = emb(torch.tensor([0, 1, 50]))
    assert out.shape == (3, 8)
    assert torch.allclose(out[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert torch.allclose(out.pow(2).sum(1), torch.full((3,), 4.0))
    with pytest.raises(ValueError):
        SinusoidalEmbedding(7)


def test_denoiser_shapes_and_errors():
    model = Denoiser(DenoiserConfig.tiny())
    assert model(torch.randn(5, 2), torch.randint(1, 10, (5,))).shape == (5, 2)
    digits = Denoiser(DenoiserConfig.digits())
    assert digits(torch.randn(3, 64), torch.tensor([1, 100, 200])).shape == (3, 64)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        model(torch.randn(5, 3), torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="t must"):
        model(torch.randn(5, 2), torch.ones(4, dtype=torch.long))


def test_training_lowers_the_loss_and_sampling_has_the_right_shape():
    torch.manual_seed(0)
    data = torch.randn(512, 2) * 0.1 + torch.tensor([1.0, -1.0])
    ddpm = DDPM(Denoiser(DenoiserConfig.tiny()), NoiseSchedule.linear(20, 1e-3, 0.3), lr=3e-3)
    ddpm.train(data, steps=300, batch_size=64)
    assert sum(ddpm.losses[-50:]) / 50 < sum(ddpm.losses[:50]) / 50
    x, kept = ddpm.sample(200, torch.Generator().manual_seed(0), keep=(20, 10, 0))
    assert x.shape == (200, 2) and sorted(kept) == [0, 10, 20] and torch.equal(kept[0], x)
    # The samples have moved from N(0, I) towards the data.
    assert (x.mean(0) - data.mean(0)).norm() < (kept[20].mean(0) - data.mean(0)).norm()
    with pytest.raises(ValueError):
        ddpm.train(data, steps=0)
    with pytest.raises(ValueError):
        DDPM(Denoiser(DenoiserConfig.tiny()), NoiseSchedule.linear(5), ema_decay=1.0)


def test_ema_matches_torch_averaged_model():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig.tiny())
    ours = Denoiser(DenoiserConfig.tiny())
    ours.load_state_dict(model.state_dict())
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    theirs.update_parameters(model)  # its first update copies the weights: both start equal
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema_update(ours, model, 0.9)
        theirs.update_parameters(model)
    for a, b in zip(ours.parameters(), theirs.module.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_q_sample_refuses_noise_of_another_shape():
    s = NoiseSchedule.linear(10)
    x0 = torch.randn(6, 3)
    with pytest.raises(ValueError, match="x0's shape"):
        q_sample(x0, 5, s, torch.randn(3))  # (D,) would give every row the same noise


def test_q_sample_on_image_shaped_data_is_the_closed_form_per_row():
    s = NoiseSchedule.linear(10)
    x0, noise = torch.randn(4, 5, 5), torch.randn(4, 5, 5)  # (N, H, W), H = W = N + 1
    t = torch.tensor([1, 3, 6, 10])
    got = q_sample(x0, t, s, noise)
    for i in range(4):
        ab = s.alpha_bars[t[i] - 1]
        assert torch.allclose(got[i], ab.sqrt() * x0[i] + (1 - ab).sqrt() * noise[i])


def test_nan_data_is_named_not_blamed_on_the_learning_rate():
    ddpm = DDPM(Denoiser(DenoiserConfig.tiny()), NoiseSchedule.linear(5))
    data = torch.randn(32, 2)
    data[3, 1] = float("nan")
    with pytest.raises(ValueError, match="data hold NaN"):
        ddpm.train(data, steps=2, batch_size=8)
    with pytest.raises(ValueError, match="data hold NaN"):
        ddpm.step(data[:8])


def test_posterior_is_bayes_rule_on_the_two_gaussians():
    from dlbook.diffusion import posterior

    s = NoiseSchedule.linear(20, 1e-3, 0.3)
    ab = torch.cat([torch.ones(1), s.alpha_bars]).double()  # ab[0] = 1
    g = torch.Generator().manual_seed(0)
    x0, xt = torch.randn(5, 2, generator=g).double(), torch.randn(5, 2, generator=g).double()
    for t in (1, 2, 10, 20):
        mean, var = posterior(x0, xt, t, s)
        beta = s.betas.double()[t - 1]
        # N(x_{t-1}; sqrt(ab_{t-1}) x0, 1 - ab_{t-1}) times N(x_t; sqrt(1 - beta) x_{t-1}, beta)
        prec = (1 / (1 - ab[t - 1]) if t > 1 else float("inf")) + (1 - beta) / beta
        want_var = 1 / prec
        want_mean = x0 if t == 1 else want_var * (ab[t - 1].sqrt() * x0 / (1 - ab[t - 1])
                                                  + (1 - beta).sqrt() * xt / beta)
        assert torch.allclose(var, torch.full((5,), float(want_var), dtype=var.dtype))
        assert torch.allclose(mean, want_mean, atol=1e-5)  # float32 schedule


class _ExactDenoiser(torch.nn.Module):
    """The exact noise predictor when all the data is one point c."""

    def __init__(self, c, schedule):
        super().__init__()
        self.c, self.ab = torch.nn.Parameter(c), schedule.alpha_bars
        self.config = DenoiserConfig(data_dim=len(c))

    def forward(self, x, t):
        ab = self.ab[t - 1].unsqueeze(-1)
        return (x - ab.sqrt() * self.c) / (1 - ab).sqrt()


def test_ddim_with_the_exact_noise_predictor_lands_on_the_data():
    from dlbook.diffusion import ddim_sample

    s = NoiseSchedule.linear(50, 1e-3, 0.2)
    c = torch.tensor([1.5, -0.5])
    for steps in (1, 5, 50):
        x = ddim_sample(_ExactDenoiser(c, s), s, 100, steps, torch.Generator().manual_seed(0))
        assert x.shape == (100, 2) and torch.allclose(x, c.expand(100, 2), atol=1e-4)
    with pytest.raises(ValueError, match="steps"):
        ddim_sample(_ExactDenoiser(c, s), s, 4, 0)
