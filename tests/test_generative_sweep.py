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
