"""fit(): the shared training loop, on tiny problems that run in a second."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbook.models import MLP, MLPConfig, count_parameters
from dlbook.training import History, accuracy, evaluate, fit, pick_device, seed_everything


def blobs(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    x = centers[y] + 0.6 * torch.randn(n, 2, generator=g)
    return x, y


def test_fit_learns_and_records_history():
    train, val = blobs(400, 0), blobs(200, 1)
    model = MLP(MLPConfig(sizes=(2, 16, 3)))
    hist = fit(model, train, val, epochs=15, batch_size=32, lr=1e-2, seed=0, progress=False)
    assert isinstance(hist, History) and hist.epoch == list(range(1, 16))
    assert len(hist.train_loss) == len(hist.val_loss) == len(hist.val_metric) == 15
    assert hist.train_loss[-1] < hist.train_loss[0] / 3
    assert hist.val_metric[-1] > 0.95
    assert not model.training, "fit leaves the model in eval mode"


def test_fit_is_reproducible_with_a_seed():
    train = blobs()
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the model's init is the caller's business
        model = MLP(MLPConfig(sizes=(2, 8, 3)))
        runs.append(fit(model, train, epochs=3, seed=7, progress=False).train_loss)
    assert runs[0] == runs[1]


def test_optimizer_factory_scheduler_and_transform_are_used():
    train = blobs()
    model = MLP(MLPConfig(sizes=(2, 8, 3)))
    seen = []

    def transform(x):
        seen.append(x.shape[0])
        return x + 0.01 * torch.randn_like(x)

    opt_holder = {}

    def make_opt(params):
        opt_holder["opt"] = torch.optim.SGD(params, lr=0.1)
        return opt_holder["opt"]

    fit(model, train, epochs=2, batch_size=100, optimizer=make_opt, transform=transform,
        scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5), progress=False)
    assert seen == [100] * 8
    assert abs(opt_holder["opt"].param_groups[0]["lr"] - 0.025) < 1e-12


def test_early_stopping_restores_the_best_weights():
    x, y = blobs(200, 0)
    y_noise = torch.randint(0, 3, y.shape, generator=torch.Generator().manual_seed(3))
    val = blobs(200, 1)
    model = MLP(MLPConfig(sizes=(2, 64, 3)))
    hist = fit(model, (x, y_noise), val, epochs=60, lr=3e-2, patience=3, progress=False)
    assert hist.stopped_early and len(hist.epoch) < 60
    best = min(hist.val_loss)
    assert abs(evaluate(model, val)[0] - best) < 1e-5
    assert hist.val_loss[hist.best_epoch - 1] == best


def test_helpers():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type in {"cpu", "cuda"}
    g = seed_everything(1)
    assert isinstance(g, torch.Generator)
    assert accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])) == 0.5
    assert count_parameters(nn.Linear(3, 2)) == 8


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def test_nan_loss_stops_at_once_naming_epoch_and_batch():
    # A learning rate far too large: least squares blows up within a few batches.
    x, _ = _toy()
    target = x.sum(1, keepdim=True)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+: .*learning rate 1e\+10"
                                                 r".*smaller learning rate"):
        fit(torch.nn.Linear(4, 1), (x, target), (x, target), epochs=50, batch_size=16,
            loss_fn=torch.nn.functional.mse_loss, metric=None, patience=2,
            optimizer=lambda p: torch.optim.SGD(p, lr=1e10))

    # The error names the first batch whose loss is not finite.
    calls = []

    def nan_on_sixth_call(out, y):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(out, y)
        return loss * float("nan") if len(calls) == 6 else loss

    with pytest.raises(FloatingPointError, match=r"nan at epoch 2, batch 2"):
        fit(torch.nn.Linear(4, 2), _toy(), epochs=3, batch_size=16, loss_fn=nan_on_sixth_call)
    # A NaN in the data is caught at the batch where it first enters the loss.
    x, y = _toy()
    x[40] = float("nan")
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d"):
        fit(torch.nn.Linear(4, 2), (x, y), epochs=1, batch_size=16)


@pytest.mark.parametrize("batch_size", [0, -64, 2.5, True])
def test_bad_batch_size_fails_up_front(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive whole number"):
        fit(torch.nn.Linear(4, 2), _toy(), epochs=1, batch_size=batch_size)


def test_empty_or_mismatched_data_fails_up_front():
    x, y = _toy()
    with pytest.raises(ValueError, match="train data is empty"):
        fit(torch.nn.Linear(4, 2), (x[:0], y[:0]), epochs=1)
    with pytest.raises(ValueError, match="val data is empty"):
        fit(torch.nn.Linear(4, 2), (x, y), (x[:0], y[:0]), epochs=1)
    with pytest.raises(ValueError, match="val inputs and targets differ in length: 64 vs 63"):
        fit(torch.nn.Linear(4, 2), (x, y), (x, y[:-1]), epochs=1)
    with pytest.raises(ValueError, match="patience"):
        fit(torch.nn.Linear(4, 2), (x, y), epochs=1, patience=2)


def test_accuracy_refuses_one_hot_targets():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one-hot"):
        accuracy(logits, torch.nn.functional.one_hot(torch.tensor([0, 2, 1]), 3))


def test_train_metric_counts_every_example_once():
    x, y = _toy(n=50)
    h = fit(torch.nn.Linear(4, 2), (x, y), epochs=2, batch_size=16)  # last batch has 2
    assert 0.0 <= h.train_metric[-1] <= 1.0
