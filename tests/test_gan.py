"""dlbook.gan: the two players' losses against PyTorch's, the training step, R1, and the
sample-quality numbers (modes covered, MMD against a direct computation, nearest neighbours)."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from dlbook.gan import (GAN, GANConfig, GANTrainer, discriminator_loss, generator_loss, mmd2,
                        modes_covered, nearest_neighbour_distance, ring_centres,
                        ring_of_gaussians, train_gan, train_gans)


def test_losses_match_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(32, generator=g), torch.randn(32, generator=g)
    ref = (F.binary_cross_entropy_with_logits(real, torch.ones(32))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros(32)))
    assert torch.isclose(discriminator_loss(real, fake), ref, atol=1e-6)
    assert torch.isclose(generator_loss(fake),
                         F.binary_cross_entropy_with_logits(fake, torch.ones(32)), atol=1e-6)


def test_gan_shapes_and_errors():
    gan = GAN(GANConfig.tiny())
    assert gan.generate(5, torch.Generator().manual_seed(0)).shape == (5, 2)
    assert gan.discriminate(torch.zeros(7, 2)).shape == (7,)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        gan.discriminate(torch.zeros(7, 3))
    with pytest.raises(ValueError):
        GAN(hidden=0)
    with pytest.raises(ValueError, match="output"):
        GAN(output="sigmoid")
    with pytest.raises(ValueError):
        train_gan(GANConfig.tiny(), ring_of_gaussians, steps=0)


def test_step_updates_both_players_and_r1_changes_only_the_discriminator():
    torch.manual_seed(0)
    plain, penalised = GAN(GANConfig.tiny()), GAN(GANConfig.tiny(), r1=10.0)
    penalised.load_state_dict(plain.state_dict())
    real = ring_of_gaussians(16, torch.Generator().manual_seed(1))
    before = [p.clone() for p in plain.parameters()]
    d_plain, g_plain = GANTrainer(plain).step(real, torch.Generator().manual_seed(2))
    d_pen, g_pen = GANTrainer(penalised).step(real, torch.Generator().manual_seed(2))
    assert all(not torch.equal(a, b) for a, b in zip(before, plain.parameters()))
    assert d_plain == pytest.approx(d_pen)  # the recorded loss is the game's, without penalty
    d_diff = [not torch.allclose(a, b) for a, b in zip(plain.discriminator.parameters(),
                                                        penalised.discriminator.parameters())]
    assert any(d_diff)


def test_r1_penalty_is_the_squared_input_gradient():
    torch.manual_seed(0)
    gan = GAN(GANConfig.tiny())
    x = torch.randn(8, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(gan.discriminate(x).sum(), x)
    # By finite differences on the first example.
    h, fd = 1e-3, []
    for j in range(2):
        e = torch.zeros(8, 2)
        e[0, j] = h
        with torch.no_grad():
            fd.append((gan.discriminate(x + e)[0] - gan.discriminate(x - e)[0]) / (2 * h))
    assert torch.allclose(grad[0], torch.stack(fd), atol=1e-3)


def test_train_gan_is_reproducible_and_takes_tensor_data():
    a, ha = train_gan(GANConfig.tiny(), ring_of_gaussians, steps=5, seed=3, snapshot_every=2)
    b, hb = train_gan(GANConfig.tiny(), ring_of_gaussians, steps=5, seed=3, snapshot_every=2)
    assert ha.d_loss == hb.d_loss and sorted(ha.snapshots) == [0, 2, 4, 5]
    assert torch.equal(ha.snapshots[5], hb.snapshots[5])
    data = torch.rand(50, 4) * 2 - 1
    gan, h = train_gan(GANConfig(data_dim=4, hidden=8, batch_size=8), data, steps=3)
    assert len(h.g_loss) == 3 and gan.generate(2).shape == (2, 4)


def test_ring_and_modes_covered():
    g = torch.Generator().manual_seed(0)
    x = ring_of_gaussians(4000, g, std=0.05)
    assert x.shape == (4000, 2) and ring_of_gaussians((3, 5), g).shape == (3, 5, 2)
    assert modes_covered(x, ring_centres(), 0.15)[0] == 8
    assert modes_covered(x, ring_centres(), 0.15)[1] > 0.95
    one_mode = ring_centres()[0] + 0.05 * torch.randn(500, 2, generator=g)
    assert modes_covered(one_mode, ring_centres(), 0.15)[0] == 1
    with pytest.raises(ValueError):
        modes_covered(torch.zeros(5, 3), ring_centres(), 0.1)


def direct_mmd2(x, y, bw):
    k = lambda a, b: torch.exp(-((a - b) ** 2).sum() / (2 * bw ** 2)).item()  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_a_direct_computation_and_separates_distributions():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g).double(), torch.randn(15, 3, generator=g).double() + 0.5
    assert mmd2(x, y, 0.7) == pytest.approx(direct_mmd2(x, y, 0.7), abs=1e-10)
    same = [mmd2(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g), 1.0)
            for _ in range(20)]
    assert abs(sum(same) / len(same)) < 0.005  # unbiased: zero on average
    shifted = mmd2(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1, 1.0)
    assert shifted > 10 * max(abs(v) for v in same)
    with pytest.raises(ValueError):
        mmd2(x, y[:, :2], 1.0)
    with pytest.raises(ValueError):
        mmd2(x, y, 0.0)


def test_nearest_neighbour_distance():
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert nearest_neighbour_distance(torch.tensor([[0.0, 1.0], [3.0, 4.0]]), ref) == 0.5
    assert nearest_neighbour_distance(ref, ref) == 0.0
    with pytest.raises(ValueError):
        nearest_neighbour_distance(torch.zeros(2, 3), ref)


def test_an_ensemble_step_equals_separate_steps():
    torch.manual_seed(0)
    pair = GAN(GANConfig.tiny(), members=2)
    trainer = GANTrainer(pair, r1=[0.0, 5.0])
    singles = []
    for m, r1 in enumerate((0.0, 5.0)):
        one = GAN(GANConfig.tiny(), r1=r1)
        with torch.no_grad():
            for p, q in zip(one.parameters(), pair.parameters()):
                p.copy_(q[m])
        singles.append(one)
    g = torch.Generator().manual_seed(1)
    real, noise = torch.randn(2, 16, 2, generator=g), torch.randn(2, 16, 2, generator=g)
    for _ in range(3):
        trainer.step(real, noise=noise)
    for m, one in enumerate(singles):
        t = GANTrainer(one)
        for _ in range(3):
            t.step(real[m], noise=noise[m:m + 1])
        for p, q in zip(one.parameters(), pair.parameters()):
            assert torch.allclose(p, q[m], atol=1e-6)


def test_train_gans_pairs_variants_by_seed():
    gan, hs = train_gans({"a": GANConfig.tiny(), "b": GANConfig.tiny()}, ring_of_gaussians,
                         steps=4, seeds=(0, 1), snapshot_every=2)
    assert sorted(hs) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)] and gan.members == 4
    assert torch.equal(hs["a", 1].snapshots[4], hs["b", 1].snapshots[4])  # same seed, same r1
    assert not torch.equal(hs["a", 0].snapshots[4], hs["a", 1].snapshots[4])
    with pytest.raises(ValueError, match="only in r1"):
        train_gans({"a": GANConfig.tiny(), "b": GANConfig(hidden=4)}, ring_of_gaussians, 2)


def test_a_non_finite_loss_stops_the_step_before_any_weight_changes():
    torch.manual_seed(0)
    gan = GAN(GANConfig.tiny())
    with torch.no_grad():
        gan.generator[-1].bias.fill_(float("inf"))  # fakes at infinity: D's loss is NaN
    before = [p.clone() for p in gan.discriminator.parameters()]
    with pytest.raises(FloatingPointError, match="before any step"):
        GANTrainer(gan).step(ring_of_gaussians(16, torch.Generator().manual_seed(1)))
    assert all(torch.equal(a, b) for a, b in zip(before, gan.discriminator.parameters()))


def test_non_finite_real_data_is_named():
    real = ring_of_gaussians(16, torch.Generator().manual_seed(1))
    real[2, 0] = float("nan")
    with pytest.raises(ValueError, match="real batch holds NaN"):
        GANTrainer(GAN(GANConfig.tiny())).step(real)


def test_an_overflowing_r1_penalty_stops_the_step_before_any_weight_changes():
    torch.manual_seed(0)
    gan = GAN(GANConfig.tiny())
    with torch.no_grad():
        for p in gan.discriminator.parameters():
            p.mul_(10.0)  # a steep D: |grad D|^2 in the hundreds, its losses still finite
    before = [p.clone() for p in gan.discriminator.parameters()]
    with pytest.raises(FloatingPointError, match="R1-penalised"):  # overflows float32
        GANTrainer(gan, r1=[3e38]).step(ring_of_gaussians(16, torch.Generator().manual_seed(1)))
    assert all(torch.equal(a, b) for a, b in zip(before, gan.discriminator.parameters()))
