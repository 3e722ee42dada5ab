"""dlbook.generative_sweep: the mixture's choice on validation, its samples, and the Frechet
distance of chapter 11's digit judge."""
from __future__ import annotations

import torch

from dlbook import generative_sweep as gs


def test_the_mixture_choice_finds_the_eight_modes_inside_its_grid():
    train = gs.ring(4000, torch.Generator().manual_seed(0))
    val = gs.ring(1000, torch.Generator().manual_seed(1))
    gmm, scores = gs.choose_mixture(train, val, (2, 4, 8, 12), seed=0, reg_covar=gs.RING_REG)
    assert gmm.n_components == 8 and sorted(scores) == [2, 4, 8, 12]
    x = gs.mixture_samples(gmm, 500, seed=0)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert gs.ring_scores(x, val)["modes"] == 8


def test_frechet_distance_is_near_zero_for_one_set_and_grows_with_a_shift():
    d = gs.digit_splits()
    assert len(d["train"]) + len(d["held"]) == 1797 and len(d["fit"]) + len(d["val"]) == len(
        d["train"])
    judge = gs.DigitJudge(d["train"], d["y_train"], d["held"])
    assert abs(judge.frechet(d["held"])) < 1e-3
    real = judge.frechet(d["train"][:360])
    shifted = judge.frechet((d["train"][:360] + 0.5).clamp(-1, 1))
    assert 0 < real < shifted
    scores = judge.scores(d["train"][:360])
    assert scores["fidelity"] == 0.0 and sum(scores["classes"]) == 360


def test_scoring_along_one_run_equals_separate_runs_of_each_length():
    from dlbook.diffusion import DDPM, Denoiser, DenoiserConfig, NoiseSchedule

    data = gs.ring(64, torch.Generator().manual_seed(0))

    def fresh():
        torch.manual_seed(0)
        return DDPM(Denoiser(DenoiserConfig.toy2d()), NoiseSchedule.linear(T=10), lr=1e-3)

    along = gs.ddpm_along(fresh(), data, (3, 5), batch_size=8, seed=2, n=6, sample_seed=9)
    for steps in (3, 5):
        alone = fresh().train(data, steps=steps, batch_size=8, seed=2)
        assert torch.allclose(along[steps], alone.sample(6, torch.Generator().manual_seed(9)))
    assert not torch.allclose(along[3], along[5])  # the control: the model moved


def test_ring_scores_report_every_bandwidth():
    data = gs.ring(300, torch.Generator().manual_seed(0))
    scores = gs.ring_scores(data, gs.ring(300, torch.Generator().manual_seed(1)), gs.BANDWIDTHS)
    assert {f"mmd2@{bw}" for bw in gs.BANDWIDTHS if bw != gs.BANDWIDTH} <= set(scores)
    assert scores["modes"] == 8 and scores["good"] > 0.95


def test_a_shorter_collapse_run_is_the_start_of_a_longer_one():
    """The chapter re-runs the constant-rate GAN only up to its collapse: at a constant rate the
    modes along a shorter run must be the first entries of a longer run's."""
    data = gs.ring(2000, torch.Generator().manual_seed(0))
    short = gs.ring_collapse(data, seed=1, steps=2 * gs.COLLAPSE_EVERY)
    long = gs.ring_collapse(data, seed=1, steps=3 * gs.COLLAPSE_EVERY)
    assert len(short) == 2 and len(long) == 3 and long[:2] == short


def test_mass_per_mode_is_a_fair_share_on_the_ring_and_one_on_a_collapse():
    import pytest

    shares = gs.mode_shares(gs.ring(8000, torch.Generator().manual_seed(0)))
    assert len(shares) == 8 and abs(sum(shares) - 1) < 1e-6
    assert all(abs(s - 1 / 8) < 0.02 for s in shares)
    # every sample beside the first centre, off the 3-std radius: still its mass
    beside = gs.ring_centres()[0] + torch.tensor([0.4, 0.0]).expand(50, 2)
    assert gs.mode_shares(beside) == [1.0] + [0.0] * 7
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        gs.mode_shares(torch.zeros(5, 3))


def test_ring_gans_with_model_returns_the_trained_pair_in_member_order():
    train = gs.ring(512, torch.Generator().manual_seed(0))
    gan, histories = gs.ring_gans(train, seeds=(0,), steps=3, with_model=True)
    alone = gs.ring_gans(train, seeds=(0,), steps=3)
    assert list(histories) == [("plain", 0), ("R1", 0)] == list(alone)
    for key in histories:  # the same seeded runs either way
        assert torch.equal(histories[key].snapshots[3], alone[key].snapshots[3])
    x = train[:5].expand(2, -1, -1)
    assert gan.discriminate(x).shape == (2, 5)
