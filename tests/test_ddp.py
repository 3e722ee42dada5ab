"""dlbook.ddp: two gloo processes on 127.0.0.1 train like one process on the full batch."""
from __future__ import annotations

import sys

import pytest
import torch

from dlbook.ddp import (
    DDPConfig,
    max_difference,
    resolved_start_method,
    run_ddp,
    train_single,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["fork", "spawn"])
def config_and_result(request):
    if request.param == "fork" and not sys.platform.startswith("linux"):
        pytest.skip("fork is Linux only")
    config = DDPConfig(steps=20, start_method=request.param)
    return config, run_ddp(config)


def test_both_ranks_end_identical(config_and_result):
    _, result = config_and_result
    assert len(result.weights) == 2
    assert max_difference(result.weights[0], result.weights[1]) == 0.0
    assert len(result.losses) == 20 and result.losses[-1] < result.losses[0]


def test_ddp_on_half_batches_equals_single_process_full_batch(config_and_result):
    config, result = config_and_result
    single = train_single(config)
    for k, v in single.items():
        assert torch.allclose(result.weights[0][k], v, atol=1e-6), k
    # and the training did move the weights: the test could fail
    from dlbook.ddp import make_model
    start = make_model(config).state_dict()
    assert max_difference(start, single) > 1e-2


def test_bad_config_fails_clearly():
    with pytest.raises(ValueError, match="split evenly"):
        DDPConfig(batch_size=63)
    with pytest.raises(ValueError, match="steps must be positive"):
        DDPConfig(steps=0)
    with pytest.raises(ValueError, match="start_method is 'auto', 'fork' or 'spawn'"):
        DDPConfig(start_method="threads")


def test_auto_start_method_forks_on_linux_only():
    expected = "fork" if sys.platform.startswith("linux") else "spawn"
    assert resolved_start_method(DDPConfig()) == expected
    assert resolved_start_method(DDPConfig(start_method="spawn")) == "spawn"


def test_the_task_is_learnt_and_ranks_average_to_the_full_batch_loss(config_and_result):
    config, result = config_and_result
    single_losses = []
    train_single(config, losses=single_losses)
    assert len(result.rank_losses) == 2
    mean_of_ranks = torch.tensor(result.rank_losses).mean(0)  # equal halves: the full-batch loss
    assert torch.allclose(mean_of_ranks, torch.tensor(single_losses), atol=1e-6)
    assert single_losses[-1] < 0.1 * single_losses[0]  # the student learns the teacher


def test_gradient_accumulation_is_the_same_sum():
    config = DDPConfig(steps=20)
    full, accumulated = train_single(config), train_single(config, micro_batches=4)
    assert max_difference(full, accumulated) < 1e-6
    with pytest.raises(ValueError, match="micro_batches"):
        train_single(config, micro_batches=5)
