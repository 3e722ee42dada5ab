"""Chapter 06 generates MNIST-1D in memory: the call it uses must touch neither the network nor
the file system (``mnist1d.data.get_dataset`` would download a pickle, or write one)."""
import builtins
import socket

import numpy as np
import pytest


def test_make_dataset_needs_no_network_and_writes_no_file(monkeypatch):
    from mnist1d.data import get_dataset_args, make_dataset

    def no_network(*args, **kwargs):
        raise AssertionError("make_dataset tried to open a network connection")

    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise AssertionError(f"make_dataset tried to write {file}")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(builtins, "open", read_only_open)
    data = make_dataset(get_dataset_args())
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)
    assert sorted(np.unique(data["y"])) == list(range(10))
    again = make_dataset(get_dataset_args())
    assert np.array_equal(data["x"], again["x"]), "seeded: the same signals every run"


def test_contenders_are_the_papers_and_bad_input_is_refused():
    import pytest
    import torch

    from dlbook import mnist1d

    assert mnist1d.cnn()(torch.zeros(3, 40)).shape == (3, 10)
    assert mnist1d.mlp()(torch.zeros(3, 40)).shape == (3, 10)
    data = ((torch.zeros(8, 40), torch.zeros(8, dtype=torch.long)),) * 2
    with pytest.raises(ValueError, match="name must be one of"):
        mnist1d.train_contender("RNN", "normal", 1e-3, 0, data)
    with pytest.raises(ValueError, match="needs the permutation"):
        mnist1d.train_contender("MLP", "shuffled", 1e-3, 0, data)
    with pytest.raises(ValueError, match="condition"):
        mnist1d.positions("sorted", torch.arange(40))


def test_a_run_is_reproducible_and_shuffling_permutes_the_inputs():
    import torch

    from dlbook import mnist1d

    train, val, test, order = mnist1d.splits()
    assert len(train[0]) == 3200 and len(val[0]) == 800 and len(test[0]) == 1000
    assert sorted(order.tolist()) == list(range(40))
    runs = [mnist1d.train_contender("MLP", "shuffled", 1e-2, 0, (train, val), order, steps=100)
            for _ in range(2)]
    assert runs[0][1].val_metric == runs[1][1].val_metric
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0].parameters(),
                                                 runs[1][0].parameters()))


def test_a_refit_trains_on_train_and_validation_together():
    import torch

    from dlbook import mnist1d

    train, val, _, _ = mnist1d.splits()
    model = mnist1d.refit_contender("MLP", "normal", 1e-2, 0, (train, val), steps=20)
    alone = mnist1d.train_contender("MLP", "normal", 1e-2, 0, (train, None), steps=20)[0]
    # the same seed and steps on 4,000 signals instead of 3,200: other batches, other weights
    weights = [torch.cat([p.flatten() for p in m.parameters()]) for m in (model, alone)]
    assert weights[0].shape == weights[1].shape and not torch.equal(*weights)
    with pytest.raises(ValueError):
        mnist1d.refit_contender("RNN", "normal", 1e-2, 0, (train, val))


def test_the_committed_sweep_tuned_every_contender_inside_its_grid():
    from dlbook import mnist1d

    sweep = mnist1d.load_sweep()  # sha256-checked
    assert sweep["steps"] == mnist1d.STEPS and sweep["lrs"] == list(mnist1d.LRS)
    assert set(sweep["results"]) == {"MLP normal", "MLP shuffled", "CNN normal", "CNN shuffled"}
    for key, r in sweep["results"].items():
        grid = list(r["grid"].values())
        assert r["lr"] not in (mnist1d.LRS[0], mnist1d.LRS[-1]), key
        assert r["grid"][f"{r['lr']:g}"] == max(grid), key  # the best on validation
        assert r["val"][0] == r["grid"][f"{r['lr']:g}"]  # seed 0's run is the grid's run
        assert len(r["val_curves"]) == 3 and len(r["val_curves"][0]) == len(r["val_curve_steps"])
        assert len(r["test_refit"]) == 3  # the chosen rate re-trained on train + val, per seed
    long = sweep["long"]["CNN shuffled"]
    assert long["steps"] == mnist1d.LONG_STEPS and long["lr"] == sweep["results"]["CNN shuffled"]["lr"]
    assert long["val_curve_steps"][-1] == mnist1d.LONG_STEPS
