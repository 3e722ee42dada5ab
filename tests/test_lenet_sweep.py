"""Chapter 06's LeNet-5 comparison: the contenders are what they claim to be, the shuffled
condition is one fixed permutation, a run is reproducible, and the committed sweep is sound."""
import pytest
import torch

from dlbook import lenet_sweep
from dlbook.models import MLP, LeNet, count_parameters


def test_the_mlps_match_lenet_in_parameters_and_in_multiply_adds():
    costs = lenet_sweep.layer_costs(LeNet())
    macs = sum(row[3] for row in costs)
    assert sum(row[2] for row in costs) == count_parameters(LeNet())
    assert costs[0] == ("Conv2d", (6, 28, 28), 156, 156 * 28 * 28 - 6 * 28 * 28)
    sizes = lenet_sweep.mlp_sizes()
    params = count_parameters(MLP(sizes=(784, sizes["MLP, equal params"], 10)))
    assert abs(params - count_parameters(LeNet())) < 0.01 * params
    assert abs(794 * sizes["MLP, equal mult-adds"] - macs) < 0.01 * macs


def test_shuffling_is_one_fixed_permutation_and_bad_input_is_refused():
    images = torch.arange(2 * 784, dtype=torch.float32).view(2, 1, 28, 28)
    shuffled = lenet_sweep.shuffle_pixels(images)
    assert torch.equal(shuffled, lenet_sweep.shuffle_pixels(images))
    assert torch.equal(shuffled.flatten(1).sort().values, images.flatten(1))
    assert not torch.equal(shuffled, images)
    with pytest.raises(ValueError, match="28, 28"):
        lenet_sweep.shuffle_pixels(torch.zeros(2, 784))
    with pytest.raises(ValueError, match="name must be one of"):
        lenet_sweep.prepare("ResNet", [])


def test_a_short_run_is_reproducible():
    train, val, _ = lenet_sweep.standardised_splits()
    data = ((train[0][:64], train[1][:64]), (val[0][:32], val[1][:32]))
    runs = [lenet_sweep.train_digits("LeNet-5, shuffled pixels", 2e-3, 0, data, epochs=1)
            for _ in range(2)]
    assert runs[0][1].val_metric == runs[1][1].val_metric


def test_the_committed_sweep_brackets_every_pick():
    sweep = lenet_sweep.load_sweep()
    assert list(sweep["results"]) == list(lenet_sweep.contenders())
    assert sweep["epochs"] == lenet_sweep.EPOCHS
    for name, r in sweep["results"].items():
        grid = [float(lr) for lr in r["grid"]]
        assert grid == lenet_sweep.contenders()[name][1]
        assert grid[0] < r["lr"] < grid[-1], (name, r["grid"])
        assert len(r["test"]) == len(r["val_curves"]) == 3
