"""Tests for dlbook.degradation: the stored sweep and one short run."""
import numpy as np
import pytest
import torch

from dlbook import degradation


def test_the_stored_sweep_has_every_run_and_shows_degradation():
    sweep = degradation.load_sweep()
    names = list(degradation.networks())
    for key in ("lrs", "train_loss", "val_error"):
        assert list(sweep[key]) == names
    for name in names:
        shape = (len(sweep["lrs"][name]), len(sweep["seeds"]),
                 sweep["steps"] // sweep["eval_every"])
        assert sweep["train_loss"][name].shape == sweep["val_error"][name].shape == shape
    loss = {n: np.nan_to_num(sweep["train_loss"][n][:, :, -1], nan=np.inf) for n in names}
    best = {n: l.mean(axis=1).min() for n, l in loss.items()}
    assert best["plain, 20 layers"] > 2 * best["plain, 8 layers"]
    assert best["ResNet, 20 layers"] < best["plain, 20 layers"]


def test_small_digits_are_7x7_standardised_and_held_out():
    (x, y), (xv, yv) = degradation.small_digits()
    assert x.shape == (3200, 1, 7, 7) and xv.shape == (800, 1, 7, 7)
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-4
    with pytest.raises(ValueError, match="positive"):
        degradation.small_digits(0)


def test_training_curve_is_seeded_and_checks_its_steps():
    data = degradation.small_digits(128)
    config = degradation.networks()["plain, 8 layers"]
    a = degradation.training_curve(config, 0.03, 0, data, steps=200)
    b = degradation.training_curve(config, 0.03, 0, data, steps=200)
    assert a["train_loss"].shape == a["val_error"].shape == (2,)
    assert np.array_equal(a["train_loss"], b["train_loss"])
    assert np.array_equal(a["val_error"], b["val_error"])
    prefix = degradation.training_curve(config, 0.03, 0, data, steps=200, stop=100)
    assert prefix["train_loss"][0] == a["train_loss"][0]  # the same schedule's first steps
    with pytest.raises(ValueError, match="multiple"):
        degradation.training_curve(config, 0.03, 0, data, steps=130)
    with pytest.raises(ValueError, match="stop"):
        degradation.training_curve(config, 0.03, 0, data, steps=100, stop=200)
    with pytest.raises(ValueError, match="positive"):
        degradation.training_curve(config, 0.0, 0, data, steps=100)


def test_a_diverging_run_records_nan_instead_of_failing():
    data = degradation.small_digits(128)
    config = degradation.networks()["plain, 8 layers"]
    curves = degradation.training_curve(config, 1e6, 0, data, steps=200)
    assert np.isnan(curves["train_loss"][-1]) and np.isnan(curves["val_error"][-1])


def test_training_curve_can_return_its_trained_model():
    data = degradation.small_digits(128)
    config = degradation.networks()["ResNet, 20 layers"]
    curve, model = degradation.training_curve(config, 0.03, 0, data, steps=100,
                                              return_model=True)
    again = degradation.training_curve(config, 0.03, 0, data, steps=100)
    assert np.array_equal(curve["train_loss"], again["train_loss"])
    torch.manual_seed(0)
    fresh = type(model)(config)
    assert any(not torch.equal(a, b) for a, b in
               zip(model.state_dict().values(), fresh.state_dict().values()))


def test_the_long_runs_have_every_seed_and_the_plain_20_is_slower():
    long = degradation.load_long()
    names = list(degradation.networks())
    assert list(long["train_loss"]) == list(long["val_error"]) == names
    records = long["steps"] // long["eval_every"]
    for name in names:
        assert long["train_loss"][name].shape == (len(long["lrs"]), len(long["seeds"]), records)
    final = {n: long["train_loss"][n][:, :, -1] for n in names}  # (lr, seed)
    assert (final["plain, 20 layers"].min(1) > final["plain, 8 layers"].max(1)).all()


def test_shortcut_survival_counts_the_entries_every_identity_block_keeps():
    from dlbook.models import ResNet
    torch.manual_seed(0)
    config = degradation.networks()["ResNet, 20 layers"]
    model = ResNet(config)
    x = torch.randn(16, 1, 7, 7)
    shares = degradation.shortcut_survival(model, x)
    assert shares.shape == (3,) and ((0 <= shares) & (shares <= 1)).all()
    # by hand for stage 1: its three blocks are identity blocks
    h = model.stem(x)
    live, kept = h > 0, torch.ones_like(h, dtype=torch.bool)
    with torch.no_grad():
        for block in model.stages[0]:
            h = block(h)
            kept &= h > 0
    assert shares[0] == pytest.approx(((live & kept).sum() / live.sum()).item())
    with torch.no_grad():  # a huge bias after every sum keeps every entry live
        for b in model.modules():
            if hasattr(b, "bn2"):
                b.bn2.bias.fill_(1e3)
    assert np.allclose(degradation.shortcut_survival(model, x), 1.0)
    with pytest.raises(ValueError, match="shortcuts"):
        degradation.shortcut_survival(ResNet(config.plain()), x)


def test_the_stored_survival_has_three_stages_per_run():
    stored = degradation.load_survival()
    assert list(stored["survival"]) == ["100 of 600", "600 of 600", "3000 of 3000"]
    for share in stored["survival"].values():
        assert share.shape == (3,) and ((0 <= share) & (share <= 1)).all()
