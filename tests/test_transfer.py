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
