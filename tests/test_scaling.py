"""dlbook.scaling: the recipe of chapter 14's scaling sweep and BPE comparison."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlbook import scaling
from dlbook.data import CHECKSUMS


def test_power_law_fit_recovers_a_known_exponent():
    n = np.geomspace(1e3, 1e6, 6)
    alpha, n_c, r2 = scaling.fit_power_law(n, (8.8e13 / n) ** 0.076)
    assert alpha == pytest.approx(0.076) and n_c == pytest.approx(8.8e13, rel=1e-6)
    assert r2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 3 points"):
        scaling.fit_power_law([1, 2], [3, 2])


def test_bits_per_char_and_flops():
    assert scaling.bits_per_char(math.log(2) * 3, 3.0) == pytest.approx(1.0)
    small, large = scaling.flops_per_token(83, 48), scaling.flops_per_token(1000, 48)
    assert large - small == pytest.approx(6 * (1000 - 83) * 48)  # only the head differs


def test_split_and_heads():
    train, val, test = scaling.split_text("x" * 1000)
    assert (len(train), len(val), len(test)) == (900, 50, 50)
    model = scaling.make_model(83, 48, seed=0)
    assert model.config.n_head == 3 and model.config.n_embd // model.config.n_head == 16
    with pytest.raises(ValueError, match="multiple of the head size"):
        scaling.make_model(83, 24, seed=0)


def test_the_sweep_file_holds_what_the_chapter_reads():
    assert scaling.SWEEP_FILE in CHECKSUMS
    sweep = scaling.load_sweep()
    sizes = sweep["scaling"]
    assert [int(w) for w in sizes] == list(scaling.WIDTHS)
    for r in sizes.values():
        grid = {float(k): v for k, v in r["grid"].items()}
        best = min(grid, key=grid.get)
        assert min(grid) < best < max(grid)  # the grid brackets seed 0's pick
        means = {float(k): v for k, v in r["shortlist_mean_val"].items()}
        assert r["lr"] == min(means, key=means.get)  # then the best 3-seed mean
        assert len(r["test"]) == len(r["val"]) == len(r["curve_val"]) == 3
        assert r["curve_step"][-1] == r["steps"]
        assert all(len(c) == len(r["curve_step"]) for c in r["curve_val"])
        assert [c[-1] for c in r["curve_val"]] == pytest.approx(r["val"], abs=1e-4)
    assert set(sweep["bpe"]) == {"characters", "BPE"}
    assert sweep["bpe"]["characters"]["chars_per_token"]["test"] == 1.0


def _toy_sweep():
    # two widths: the small one cheap per token, the large one better per token
    return {"recipe": {"batch": 2, "block": 5},
            "scaling": {"16": {"curve_step": [1, 2, 3, 4], "flops_per_token": 10.0,
                               "curve_val": [[3.0, 2.0, 1.6, 1.5], [3.2, 2.2, 1.6, 1.5]]},
                        "64": {"curve_step": [1, 2], "flops_per_token": 40.0,
                               "curve_val": [[2.5, 1.2], [2.5, 1.4]]}}}


def test_loss_against_compute_and_its_frontier():
    curves = scaling.loss_against_compute(_toy_sweep())
    small, large = curves["16"], curves["64"]
    assert list(small["D"]) == [10, 20, 30, 40] and list(small["C"]) == [100, 200, 300, 400]
    assert list(large["C"]) == [400, 800]
    assert small["loss"] == pytest.approx([3.1, 2.1, 1.6, 1.5])
    assert small["sd"][0] == pytest.approx(np.std([3.0, 3.2], ddof=1))
    front = scaling.compute_frontier(curves)
    # 100: 3.1 (16), 200: 2.1, 300: 1.6, 400: 1.5 (16 beats 64's 2.5 there), 800: 1.3 (64)
    assert list(front["C"]) == [100, 200, 300, 400, 800]
    assert list(front["width"]) == ["16"] * 4 + ["64"]
    assert front["loss"][-1] == pytest.approx(1.3) and front["D"][-1] == 20
    best = scaling.best_within(curves, 400)
    assert best["16"]["loss"] == pytest.approx(1.5) and best["64"]["loss"] == pytest.approx(2.5)
    assert set(scaling.best_within(curves, 300)) == {"16"}  # 64's first record costs 400


def test_loss_against_compute_needs_seeds():
    sweep = _toy_sweep()
    sweep["scaling"]["16"]["curve_val"] = [[3.0, 2.0, 1.6, 1.5]]
    with pytest.raises(ValueError, match="at least 2 seeds"):
        scaling.loss_against_compute(sweep)
