"""Tests for dlbook.degradation: the stored sweep and one short run."""
import numpy as np
import pytest
import torch

from dlbook import degradation


def test_the_stored_sweep_has_every_run_and_shows_degradation():
    sweep = degradation.load_sweep()
    names = list(degradation.networks())
    assert list(sweep["curves"]) == names
    for curves in sweep["curves"].values():
        assert curves.shape == (len(sweep["lrs"]), len(sweep["seeds"]),
                                sweep["steps"] // sweep["eval_every"])
        assert np.isfinite(curves).all()
    shallow, deep, res = (sweep["curves"][n][:, :, -1] for n in names)
    assert (deep.min(axis=1) > 5 * shallow.max(axis=1)).all()
    assert (res.mean(axis=1) < deep.mean(axis=1) / 4).all()


def test_training_curve_is_seeded_and_checks_its_steps():
    data = degradation.small_digits(64)
    config = degradation.networks()["plain, 8 layers"]
    a = degradation.training_curve(config, 0.03, 0, data, steps=50)
    b = degradation.training_curve(config, 0.03, 0, data, steps=50)
    assert a.shape == (1,) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="multiple"):
        degradation.training_curve(config, 0.03, 0, data, steps=30)


def test_training_curve_can_return_its_trained_model():
    data = degradation.small_digits(64)
    config = degradation.networks()["ResNet, 20 layers"]
    curve, model = degradation.training_curve(config, 0.03, 0, data, steps=50,
                                              return_model=True)
    assert np.array_equal(curve, degradation.training_curve(config, 0.03, 0, data, steps=50))
    torch.manual_seed(0)
    fresh = type(model)(config)
    assert any(not torch.equal(a, b) for a, b in
               zip(model.state_dict().values(), fresh.state_dict().values()))
