"""dlbook.transfer: few labels, the three contenders, and the tuning harness."""
import numpy as np
import pytest
import torch

from dlbook import digit_vgg, transfer


@pytest.fixture(scope="module")
def tasks():
    return digit_vgg.digit_tasks()


def test_few_labels_draws_per_class_seeded(tasks):
    _, new, _ = tasks
    x, y = transfer.few_labels(new[0], seed=3)
    assert x.shape == (15, 1, 28, 28) and y.tolist() == [c for c in range(5) for _ in range(3)]
    again, _ = transfer.few_labels(new[0], seed=3)
    other, _ = transfer.few_labels(new[0], seed=4)
    assert torch.equal(x, again) and not torch.equal(x, other)
    with pytest.raises(ValueError, match="examples of each class"):
        transfer.few_labels((new[0][0][:4], new[0][1][:4]), seed=0)


def test_the_contenders_train_what_they_say(tasks):
    old, new, (mean, std) = tasks
    torch.manual_seed(0)
    base = digit_vgg.make_vgg(mean, std).eval()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    train = transfer.few_labels(new[0], seed=0)
    probe, prepare = transfer.train_new_task("linear probe", base, train, 1e-2, 0, mean, std,
                                             epochs=2)
    feats = prepare(train[0])
    assert feats.shape == (15, 16 * 7 * 7) and probe(feats).shape == (15, 5)
    assert torch.allclose(feats, base[1].features(base[0](train[0])).flatten(1))
    tuned, prep = transfer.train_new_task("fine-tuned", base, train, 1e-2, 0, mean, std,
                                          epochs=2)
    assert tuned(prep(train[0])).shape == (15, 5) and tuned is not base
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())  # untouched
    assert not torch.equal(tuned[1].features[0][0].weight, base[1].features[0][0].weight)
    with pytest.raises(ValueError, match="how must be"):
        transfer.train_new_task("frozen", base, train, 1e-2, 0, mean, std)


def test_tune_and_test_picks_on_validation_and_scores_every_seed(tasks):
    _, new, (mean, std) = tasks
    torch.manual_seed(0)
    base = digit_vgg.make_vgg(mean, std).eval()
    small = [new[0], new[1], (new[2][0][:50], new[2][1][:50])]
    out = transfer.tune_and_test("linear probe", base, small, [1e-3, 1e-2], [0], [5, 6],
                                 mean, std)
    assert out["val_loss"].shape == (2,) and out["test_acc"].shape == (2,)
    assert out["lr"] == [1e-3, 1e-2][int(np.argmin(out["val_loss"]))]
    assert ((0 <= out["test_acc"]) & (out["test_acc"] <= 1)).all()
    with pytest.raises(ValueError, match="at least one"):
        transfer.tune_and_test("linear probe", base, small, [], [0], [1], mean, std)


def test_stored_losses_pick_the_same_rate_and_the_probe_cache_changes_nothing(tasks):
    _, new, (mean, std) = tasks
    torch.manual_seed(0)
    base = digit_vgg.make_vgg(mean, std).eval()
    small = [new[0], new[1], (new[2][0][:50], new[2][1][:50])]
    lrs = [1e-3, 1e-2]
    val = transfer.validation_losses("linear probe", base, small, lrs, [0, 1], mean, std)
    assert val.shape == (2, 2) and np.isfinite(val).all()
    live = transfer.tune_and_test("linear probe", base, small, lrs, [0, 1], [5], mean, std)
    stored = transfer.tune_and_test("linear probe", base, small, lrs, [0, 1], [5], mean, std,
                                    val_loss=val)
    assert live["lr"] == stored["lr"] and np.allclose(live["val_loss"], stored["val_loss"])
    # the probe's cached test features give what computing them per seed gives
    model, prepare = transfer.train_new_task("linear probe", base, transfer.few_labels(
        small[0], 5), live["lr"], 5, mean, std)
    per_seed = (model(prepare(small[2][0])).argmax(1) == small[2][1]).float().mean().item()
    assert live["test_acc"][0] == pytest.approx(per_seed)
    with pytest.raises(ValueError, match="val_loss must be"):
        transfer.tune_and_test("linear probe", base, small, lrs, [0], [5], mean, std,
                               val_loss=val)
    with pytest.raises(ValueError, match="at least one"):
        transfer.validation_losses("linear probe", base, small, lrs, [], mean, std)


def test_stored_tuning_file_has_one_loss_per_contender_rate_and_seed():
    t = transfer.load_tuning()
    assert set(t["val_loss"]) == set(transfer.CONTENDERS)
    for v in t["val_loss"].values():
        assert np.array(v).shape == (len(t["lrs"]), len(t["tune_seeds"]))
