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
        rates = sorted(float(k) for k in r["grid"])
        assert rates[0] < r["lr"] < rates[-1]  # the grid brackets its pick
        assert len(r["test"]) == len(r["val"]) == 3
    assert set(sweep["bpe"]) == {"characters", "BPE"}
