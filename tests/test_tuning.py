"""dlbook.tuning.fit_side_by_side: a grid trained as one batched model equals separate fit runs."""

import pytest
import torch

from dlbook.contrastive import EncoderConfig, classifier
from dlbook.training import fit
from dlbook.tuning import best_val_metric, fit_side_by_side


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 14, 14, generator=gen)
    y = torch.randint(0, 10, (300,), generator=gen)
    return x, y, x[200:], y[200:]


def _model(seed):
    torch.manual_seed(seed)
    return classifier(EncoderConfig.tiny())


def test_side_by_side_equals_separate_fit_runs():
    x, y, xv, yv = _data()
    sets = [(x[:100], y[:100]), (x[100:200], y[100:200]), (x[:100], y[:100])]
    lrs, seeds = [1e-3, 3e-3, 1e-2], [0, 1, 2]
    side = [_model(s) for s in seeds]
    histories = fit_side_by_side(side, sets, (xv, yv), lrs=lrs, seeds=seeds, steps=30,
                                 batch_size=32, eval_every=7)
    for m, seed in enumerate(seeds):
        alone = _model(seed)
        h = fit(alone, sets[m], (xv, yv), steps=30, batch_size=32, eval_every=7, patience=30,
                seed=seed, optimizer=lambda p, lr=lrs[m]: torch.optim.Adam(p, lr, fused=True),
                device="cpu", progress=False)
        ours = histories[m]
        assert ours.step == h.step == [7, 14, 21, 28, 30]
        assert ours.best_step == h.best_step
        assert ours.val_loss == pytest.approx(h.val_loss, abs=1e-5)
        assert ours.val_metric == pytest.approx(h.val_metric, abs=1e-6)
        assert ours.train_loss == pytest.approx(h.train_loss, abs=1e-5)
        assert best_val_metric(ours) == pytest.approx(best_val_metric(h), abs=1e-6)
        for p, q in zip(side[m].parameters(), alone.parameters()):  # the best weights, restored
            # Adam divides by sqrt(v): where a gradient is ~0, float rounding in the batched
            # matmul can move a weight by up to a step (lr); on average they agree to 1e-6
            torch.testing.assert_close(p, q, atol=2 * lrs[m], rtol=0)
            assert (p - q).abs().mean() < 1e-6
        assert not side[m].training


def test_side_by_side_rejects_what_it_cannot_batch():
    x, y, xv, yv = _data()
    with pytest.raises(ValueError, match="one training set"):
        fit_side_by_side([_model(0)], [], (xv, yv), lrs=[1e-3], seeds=[0], steps=2)
    with pytest.raises(ValueError, match="same length"):
        fit_side_by_side([_model(0), _model(1)], [(x[:10], y[:10]), (x[:20], y[:20])], (xv, yv),
                         lrs=[1e-3, 1e-3], seeds=[0, 1], steps=2)
    with pytest.raises(ValueError, match="one architecture"):
        fit_side_by_side([_model(0), classifier()], [(x[:10], y[:10])] * 2, (xv, yv),
                         lrs=[1e-3, 1e-3], seeds=[0, 1], steps=2)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                               torch.nn.Linear(288, 10))
    with pytest.raises(ValueError, match="Linear and ReLU"):
        fit_side_by_side([conv], [(x[:10], y[:10])], (xv, yv), lrs=[1e-3], seeds=[0], steps=2)


def test_each_member_can_stop_on_its_own_validation_set():
    x, y, xv, yv = _data()
    vals = [(xv[:20], yv[:20]), (xv[20:40], yv[20:40])]
    side = [_model(0), _model(0)]
    histories = fit_side_by_side(side, [(x[:100], y[:100])] * 2, None, lrs=[3e-3, 3e-3],
                                 seeds=[0, 0], steps=20, batch_size=32, eval_every=5,
                                 member_vals=vals)
    for m, val in enumerate(vals):
        alone = _model(0)
        h = fit_side_by_side([alone], [(x[:100], y[:100])], val, lrs=[3e-3], seeds=[0],
                             steps=20, batch_size=32, eval_every=5)[0]
        assert histories[m].val_loss == pytest.approx(h.val_loss, abs=1e-5)
    assert histories[0].val_loss != pytest.approx(histories[1].val_loss)
    with pytest.raises(ValueError, match="either val"):
        fit_side_by_side(side, [(x[:10], y[:10])] * 2, (xv, yv), lrs=[1e-3] * 2, seeds=[0, 1],
                         steps=2, member_vals=vals)
    with pytest.raises(ValueError, match="one length"):
        fit_side_by_side(side, [(x[:10], y[:10])] * 2, None, lrs=[1e-3] * 2, seeds=[0, 1],
                         steps=2, member_vals=[vals[0], (xv[:5], yv[:5])])
