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


def test_evaluate_on_an_empty_set_says_so():
    x, y = _toy()
    model = torch.nn.Linear(4, 2).train()
    with pytest.raises(ValueError, match="non-empty data set.*got 0 inputs"):
        evaluate(model, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="got 64 inputs and 63 targets"):
        evaluate(model, (x, y[:-1]))
    assert model.training  # the failed call left the model's mode alone
    for bad, said in (([], "pair.*got list of length 0"), ((x, y, y), "tuple of length 3"),
                      (x, "got Tensor")):
        with pytest.raises(ValueError, match=said):
            evaluate(model, bad)


def test_accuracy_refuses_one_hot_targets():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one-hot"):
        accuracy(logits, torch.nn.functional.one_hot(torch.tensor([0, 2, 1]), 3))


def test_train_metric_counts_every_example_once():
    x, y = _toy(n=50)
    h = fit(torch.nn.Linear(4, 2), (x, y), epochs=2, batch_size=16)  # last batch has 2
    assert 0.0 <= h.train_metric[-1] <= 1.0


# --- step runs: language models, token streams, clipping, schedules -------------------------------
from dlbook.training import TokenStream, is_language_model, warmup_cosine  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyBigram(nn.Module):
    """The smallest language model in makemore's interface: a table of next-token logits."""

    def __init__(self, vocab=5):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)
        self.forward_calls = 0

    def forward(self, idx, targets=None):
        if self.training:
            self.forward_calls += 1
        logits = self.table(idx)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                     ignore_index=-1)
        return logits, loss


def markov_stream(n=4000, seed=0):
    """Token i is followed by (i + 1) % 5 with probability 0.9, else by a random token."""
    g = torch.Generator().manual_seed(seed)
    out = [0]
    for _ in range(n - 1):
        nxt = (out[-1] + 1) % 5 if torch.rand((), generator=g) < 0.9 else \
            int(torch.randint(5, (), generator=g))
        out.append(nxt)
    return torch.tensor(out)


def test_token_stream_windows_and_samples():
    tokens = torch.arange(23)
    stream = TokenStream(tokens, block_size=5)
    x, y = stream.sample(7, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (7, 5)
    assert torch.equal(y, x + 1), "targets are the inputs shifted by one token"
    assert x.min() >= 0 and y.max() <= 22
    wx, wy = stream.windows()
    assert wx.shape == (4, 5) and torch.equal(wx.flatten(), tokens[:20])
    assert torch.equal(wy.flatten(), tokens[1:21]), "every target once, in order"
    capped = TokenStream(torch.arange(1001), 10, max_eval_windows=7).windows()[0]
    assert capped.shape == (7, 10) and capped[0, 0] == 0 and capped[-1, 0] == 990
    with pytest.raises(ValueError, match="1-D integer tensor"):
        TokenStream(torch.rand(10), 3)
    with pytest.raises(ValueError, match="too short"):
        TokenStream(torch.arange(4), 4)
    with pytest.raises(ValueError, match="block_size"):
        TokenStream(torch.arange(40), 0)


def test_is_language_model():
    assert is_language_model(TinyBigram())
    assert not is_language_model(nn.Linear(2, 2))
    assert not is_language_model(MLP(MLPConfig(sizes=(2, 4, 2))))


def test_step_run_trains_a_language_model_for_exactly_the_steps_asked():
    train, val = TokenStream(markov_stream(4000, 0), 8), TokenStream(markov_stream(1000, 1), 8)
    model = TinyBigram()
    hist = fit(model, train, val, steps=230, eval_every=50, batch_size=16, lr=0.1,
               progress=False)
    assert model.forward_calls == 230
    assert hist.step == [50, 100, 150, 200, 230] and hist.epoch == [] and hist.unit == "step"
    assert hist.x == hist.step
    assert len(hist.train_loss) == len(hist.val_loss) == len(hist.lr) == len(hist.seconds) == 5
    # Entropy of the chain: 0.9 + 0.1/5 on the likely token, 0.1/5 on each of the other four.
    p = torch.tensor([0.92, 0.02, 0.02, 0.02, 0.02])
    entropy = -(p * p.log()).sum().item()
    assert hist.val_loss[0] > hist.val_loss[-1]
    assert abs(hist.val_loss[-1] - entropy) < 0.08, (hist.val_loss, entropy)
    assert hist.val_metric[-1] > 0.85, "next-token accuracy of the learned table"
    assert hist.best_step == hist.step[int(torch.tensor(hist.val_loss).argmin())]
    assert not model.training
    # The same seed gives the same run.
    again = fit(TinyBigram(), train, val, steps=230, eval_every=50, batch_size=16, lr=0.1,
                progress=False)
    torch.manual_seed(0)
    m1 = TinyBigram()
    torch.manual_seed(0)
    m2 = TinyBigram()
    r1 = fit(m1, train, steps=40, progress=False, seed=3).train_loss
    r2 = fit(m2, train, steps=40, progress=False, seed=3).train_loss
    assert r1 == r2 and len(again.step) == 5


def test_step_run_on_pairs_with_ignored_targets_and_a_classifier():
    # A language model on (x, y) pairs whose first two targets are ignored (-1).
    x = torch.randint(5, (64, 6), generator=torch.Generator().manual_seed(0))
    y = (x + 1) % 5
    y[:, :2] = -1
    model = TinyBigram()
    hist = fit(model, (x, y), (x, y), steps=120, batch_size=16, lr=0.2, progress=False)
    assert hist.step == list(range(12, 121, 12))
    assert hist.val_metric[-1] == 1.0, "accuracy counts only the scored positions"
    loss, acc = evaluate(model, (x, y))
    assert acc == 1.0 and loss == pytest.approx(hist.val_loss[-1])
    # An ordinary classifier, trained by steps on full mini-batches.
    train, val = blobs(400, 0), blobs(200, 1)
    hist = fit(MLP(MLPConfig(sizes=(2, 16, 3))), train, val, steps=150, eval_every=30,
               batch_size=32, lr=1e-2, progress=False)
    assert hist.step == [30, 60, 90, 120, 150] and hist.val_metric[-1] > 0.95


def test_gradient_clipping_caps_the_norm_and_records_it():
    seen = []

    class Watching(torch.optim.SGD):
        def step(self, closure=None):
            norm = torch.sqrt(sum((p.grad ** 2).sum() for g in self.param_groups
                                  for p in g["params"] if p.grad is not None))
            seen.append(norm.item())
            return super().step(closure)

    x, _ = _toy()
    target = 100 * x.sum(1, keepdim=True)  # large errors: large gradients
    hist = fit(nn.Linear(4, 1), (x, target), steps=20, eval_every=10, batch_size=16,
               loss_fn=torch.nn.functional.mse_loss, metric=None, grad_clip=1.0,
               optimizer=lambda p: Watching(p, lr=1e-3), progress=False)
    assert len(seen) == 20 and max(seen) <= 1.0 + 1e-5
    assert len(hist.grad_norm) == 2 and min(hist.grad_norm) > 10, "norms before clipping"
    assert all(m >= g for m, g in zip(hist.grad_norm_max, hist.grad_norm)), "max >= mean"
    # Clipping works in an epoch run too.
    seen.clear()
    fit(nn.Linear(4, 1), (x, target), epochs=2, batch_size=16, loss_fn=torch.nn.functional.mse_loss,
        metric=None, grad_clip=0.5, optimizer=lambda p: Watching(p, lr=1e-3), progress=False)
    assert len(seen) == 8 and max(seen) <= 0.5 + 1e-5


def test_warmup_cosine_schedule_in_a_step_run():
    schedule = warmup_cosine(10, 100, final_fraction=0.1)
    f = schedule.factor
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.55)
    assert f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))
    hist = fit(TinyBigram(), TokenStream(markov_stream(500), 4), steps=100, eval_every=5,
               lr=0.5, scheduler=schedule, progress=False)
    # The rate recorded after step s is the one the next step will use: factor(s).
    assert hist.lr == pytest.approx([0.5 * f(s) for s in hist.step])
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        warmup_cosine(200, 100)


def test_step_run_early_stopping_restores_the_best_weights():
    x, y = blobs(200, 0)
    y_noise = torch.randint(0, 3, y.shape, generator=torch.Generator().manual_seed(3))
    val = blobs(200, 1)
    model = MLP(MLPConfig(sizes=(2, 64, 3)))
    hist = fit(model, (x, y_noise), val, steps=3000, eval_every=10, lr=3e-2, patience=3,
               progress=False)
    assert hist.stopped_early and hist.step[-1] < 3000
    assert abs(evaluate(model, val)[0] - min(hist.val_loss)) < 1e-5
    assert hist.best_step is not None and hist.best_epoch is None


def test_step_run_nan_names_the_step():
    model = TinyBigram()
    with torch.no_grad():
        model.table.weight[2, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step \d+: .*smaller learning rate"):
        fit(model, TokenStream(markov_stream(500), 4), steps=50, progress=False)


def test_step_run_arguments_fail_up_front():
    stream = TokenStream(markov_stream(200), 4)
    with pytest.raises(ValueError, match="epochs or steps, not both"):
        fit(TinyBigram(), stream, epochs=2, steps=10)
    with pytest.raises(ValueError, match="token stream has no epochs"):
        fit(TinyBigram(), stream, epochs=2)
    with pytest.raises(ValueError, match="eval_every counts steps"):
        fit(torch.nn.Linear(4, 2), _toy(), epochs=1, eval_every=5)
    with pytest.raises(ValueError, match="steps must be a positive whole number"):
        fit(TinyBigram(), stream, steps=0)
    with pytest.raises(ValueError, match="grad_clip"):
        fit(TinyBigram(), stream, steps=5, grad_clip=-1.0)

    class NoLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(5, 5)

        def forward(self, idx, targets=None):
            return self.table(idx)

    with pytest.raises(TypeError, match=r"must return \(logits, loss\)"):
        fit(NoLoss(), stream, steps=5, progress=False)


def test_progress_bar_follows_the_environment(monkeypatch, capsys):
    from dlbook.training import _progress_enabled

    monkeypatch.setenv("DLBOOK_PROGRESS", "0")
    assert not _progress_enabled(None, 1000)
    monkeypatch.setenv("DLBOOK_PROGRESS", "1")
    assert _progress_enabled(None, 1000) and not _progress_enabled(None, 5)
    assert _progress_enabled(True, 5)
    hist = fit(TinyBigram(), TokenStream(markov_stream(300), 4), steps=30, progress=True)
    assert hist.step[-1] == 30
    assert "steps" in capsys.readouterr().err, "a tqdm bar on stderr outside a notebook"


def test_epoch_runs_still_record_epochs_only():
    hist = fit(torch.nn.Linear(4, 2), _toy(), epochs=3, batch_size=16, progress=False)
    assert hist.epoch == [1, 2, 3] and hist.step == [] and hist.unit == "epoch"
    assert hist.x == [1, 2, 3] and len(hist.lr) == 3 and hist.grad_norm == []


def test_train_eval_measures_the_training_set_in_eval_mode_without_changing_training():
    train, val = blobs(300, 0), blobs(100, 1)
    runs = {}
    for train_eval in (False, True):
        torch.manual_seed(0)
        model = MLP(MLPConfig(sizes=(2, 32, 3), dropout=0.5))
        hist = fit(model, train, val, epochs=4, batch_size=50, lr=1e-2, seed=1,
                   transform=lambda x: x + torch.randn_like(x), train_eval=train_eval,
                   progress=False)
        runs[train_eval] = (model, hist)
    (_, batches), (model, measured) = runs[False], runs[True]
    # The extra pass draws no random numbers: the same training, step for step.
    assert measured.val_loss == batches.val_loss
    # Recorded as evaluate() measures: eval mode (no dropout), no transform, after the epoch.
    loss, acc = evaluate(model, train)
    assert measured.train_loss[-1] == pytest.approx(loss)
    assert measured.train_metric[-1] == pytest.approx(acc)
    # The default averages noisy train-mode batches, which is a different number.
    assert batches.train_loss[-1] != pytest.approx(loss)
