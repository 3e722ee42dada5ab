"""dlbook.digit_vgg: chapter 07's VGG on the digits 0-4, its tasks and its stored sweep."""
import numpy as np
import pytest
import torch

from dlbook import digit_vgg


def test_the_tasks_split_the_digits_and_relabel_them():
    old, new, (mean, std) = digit_vgg.digit_tasks()
    assert [len(y) for _, y in old] == [1600, 400, 500]
    assert [len(y) for _, y in new] == [1600, 400, 500]
    for x, y in old + new:
        assert x.shape[1:] == (1, 28, 28) and set(y.tolist()) == set(range(5))
    assert mean == pytest.approx(old[0][0].mean().item()) and std > 0


def test_the_vgg_standardises_its_inputs_and_trains_seeded():
    old, _, (mean, std) = digit_vgg.digit_tasks()
    small = [(x[:64], y[:64]) for x, y in old]
    a, ha = digit_vgg.train_vgg(small, 3e-3, 1, 0, mean, std)
    b, hb = digit_vgg.train_vgg(small, 3e-3, 1, 0, mean, std)
    assert ha.val_loss == hb.val_loss
    assert a(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert torch.allclose(a[0](torch.full((1, 1, 2, 2), mean)), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="epochs"):
        digit_vgg.train_vgg(small, 3e-3, 0, 0, mean, std)
    with pytest.raises(ValueError, match="lr"):
        digit_vgg.train_vgg(small, -1.0, 1, 0, mean, std)


def test_the_stored_sweep_has_every_run():
    sweep = digit_vgg.load_sweep()
    shape = (len(sweep["epochs"]), len(sweep["lrs"]), len(sweep["seeds"]))
    for key in ("val_loss", "val_acc"):
        values = np.array(sweep[key])
        assert values.shape == shape and np.isfinite(values).all()
    assert (np.array(sweep["val_acc"]) > 0.9).all()
