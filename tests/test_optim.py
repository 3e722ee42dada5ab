"""Parity of dlbook.optim with torch.optim, step by step, and the 2-D trajectory helper."""

import numpy as np
import pytest
import torch

from dlbook import optim

STEPS = 100
BATCH = 16


def make_model(seed=0):
    """A small float64 MLP with identical weights for a given seed (both copies of a parity run)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1)).double()
    torch.random.set_rng_state(generator_state)  # leave the global RNG as we found it
    return model


def make_batches(seed=1, n=96, steps=STEPS):
    """Fixed regression data and a fixed sequence of mini-batch indices, shared by both runs."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=gen, dtype=torch.float64)  # (N, 5)
    y = torch.sin(X @ torch.randn(5, 1, generator=gen, dtype=torch.float64))  # (N, 1)
    indices = [torch.randint(0, n, (BATCH,), generator=gen) for _ in range(steps)]
    return [(X[i], y[i]) for i in indices]  # steps x ((B, 5), (B, 1))


def train_in_lockstep(ours_factory, torch_factory, schedule=None):
    """Train two copies of one model, one per optimizer, and return the largest parameter gap seen.

    Both see the same batches; after every step all parameters are compared. Also returns how far the
    parameters moved, so that a run in which nothing moves cannot pass as "matching".
    """
    model_ours, model_ref = make_model(), make_model()
    start = [p.detach().clone() for p in model_ref.parameters()]
    opt_ours, opt_ref = ours_factory(model_ours.parameters()), torch_factory(model_ref.parameters())
    sched_ours = schedule(opt_ours) if schedule else None
    sched_ref = schedule(opt_ref) if schedule else None
    worst_gap = 0.0
    for X, y in make_batches():
        for model, opt in ((model_ours, opt_ours), (model_ref, opt_ref)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
        if schedule:
            sched_ours.step()
            sched_ref.step()
            assert opt_ours.param_groups[0]["lr"] == pytest.approx(opt_ref.param_groups[0]["lr"], abs=1e-15)
        for p, q in zip(model_ours.parameters(), model_ref.parameters()):
            worst_gap = max(worst_gap, (p - q).abs().max().item())
    moved = max((p - s).abs().max().item() for p, s in zip(model_ref.parameters(), start))
    return worst_gap, moved


CASES = [
    # (our class, torch class, keyword arguments given to both)
    (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, weight_decay=0.05)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)),
    (optim.RMSProp, torch.optim.RMSprop, dict(lr=1e-2)),
    (optim.RMSProp, torch.optim.RMSprop, dict(lr=5e-3, alpha=0.9, weight_decay=0.05)),
    (optim.RMSProp, torch.optim.RMSprop, dict(lr=5e-3, momentum=0.9)),
    (optim.RMSProp, torch.optim.RMSprop, dict(lr=5e-3, centered=True)),
    (optim.RMSProp, torch.optim.RMSprop, dict(lr=2e-3, centered=True, momentum=0.5, weight_decay=0.01, eps=1e-6)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    (optim.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=0.05, eps=1e-6)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.5)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2, betas=(0.85, 0.98), weight_decay=0.2, amsgrad=True)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.0)),
]


def case_id(case):
    ours, _, kwargs = case
    return ours.__name__ + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parametrize("ours, reference, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_matches_torch_optim_at_every_step(ours, reference, kwargs):
    gap, moved = train_in_lockstep(lambda ps: ours(ps, **kwargs), lambda ps: reference(ps, **kwargs))
    assert moved > 1e-2, "the reference run barely moved, so matching it would prove nothing"
    assert gap <= 1e-6, f"parameters drifted {gap:.2e} away from torch.optim's over {STEPS} steps"


def test_defaults_match_torch_defaults():
    """Same defaults as torch.optim (SGD has no default lr in ours; the book always sets it)."""
    p = [torch.zeros(1, requires_grad=True)]
    pairs = [(optim.RMSProp(p), torch.optim.RMSprop(p)), (optim.Adam(p), torch.optim.Adam(p)),
             (optim.AdamW(p), torch.optim.AdamW(p))]
    for ours, ref in pairs:
        for key, value in ours.defaults.items():
            assert ref.defaults[key] == value, f"{type(ours).__name__}: default {key}={value} vs {ref.defaults[key]}"


SCHEDULES = {
    "step": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=25, gamma=0.3),
    "cosine": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=1e-4),
}


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=SCHEDULES.keys())
@pytest.mark.parametrize("ours, reference, kwargs", [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=2e-2, weight_decay=0.1)),
], ids=["SGD-nesterov", "AdamW"])
def test_lr_schedulers_drive_ours_like_torch(schedule, ours, reference, kwargs):
    gap, moved = train_in_lockstep(lambda ps: ours(ps, **kwargs), lambda ps: reference(ps, **kwargs), schedule)
    assert moved > 1e-2
    assert gap <= 1e-6


def test_schedule_changes_the_trajectory():
    """Guards the scheduler test: the optimizer must really read group['lr'] on every step."""
    def run(schedule):
        model = make_model()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = schedule(opt) if schedule else None
        for X, y in make_batches():
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
            if sched:
                sched.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (run(None) - run(SCHEDULES["step"])).abs().max() > 1e-3


def test_step_with_closure_returns_loss_and_skips_params_without_grad():
    used = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    opt = optim.Adam([used, unused], lr=0.1, weight_decay=0.1)

    def closure():
        opt.zero_grad()
        loss = (used**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert not torch.equal(used.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))
    assert unused.item() == 3.0 and len(opt.state[unused]) == 0


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1, nesterov=True),
    lambda p: optim.SGD(p, lr=-0.1),
    lambda p: optim.RMSProp(p, alpha=1.5),
    lambda p: optim.Adam(p, betas=(0.9, 1.0)),
    lambda p: optim.AdamW(p, eps=-1.0),
])
def test_bad_hyper_parameters_are_rejected(make):
    with pytest.raises(ValueError):
        make([torch.zeros(2, requires_grad=True)])


def test_trajectory_of_gradient_descent_on_quadratic_is_the_closed_form():
    """GD on (x^2 + c y^2)/2 multiplies x by (1 - lr) and y by (1 - lr c) each step."""
    lr, condition, steps = 0.05, 10.0, 200
    path = optim.trajectory(lambda ps: optim.SGD(ps, lr=lr),
                            lambda xy: optim.quadratic(xy, condition=condition), (1.5, 1.0), steps)
    assert path.shape == (steps + 1, 2)
    k = np.arange(steps + 1)
    expected = np.stack([1.5 * (1 - lr) ** k, 1.0 * (1 - lr * condition) ** k], axis=1)
    np.testing.assert_allclose(path, expected, rtol=1e-10, atol=1e-12)
    assert np.linalg.norm(path[-1]) < 1e-3  # converged toward the minimum at the origin


def test_trajectory_diverges_beyond_the_stability_limit():
    """lr > 2 / condition makes the steep direction blow up: the picture chapter 04 explains."""
    path = optim.trajectory(lambda ps: optim.SGD(ps, lr=0.25), optim.quadratic, (1.0, 1.0), 30)
    assert abs(path[-1, 1]) > 1e3 * abs(path[0, 1])


def test_momentum_gets_further_along_rosenbrock_valley_than_plain_gd():
    start, steps = (-1.5, 2.0), 300
    plain = optim.trajectory(lambda ps: optim.SGD(ps, lr=1e-4), optim.rosenbrock, start, steps)
    heavy = optim.trajectory(lambda ps: optim.SGD(ps, lr=1e-4, momentum=0.9), optim.rosenbrock, start, steps)
    f = lambda point: optim.rosenbrock(torch.tensor(point)).item()  # noqa: E731
    assert f(heavy[-1]) < f(plain[-1]) < f(plain[0])


def test_test_functions_have_their_minima_where_documented():
    for fn, minimum in ((optim.rosenbrock, (1.0, 1.0)), (optim.quadratic, (0.0, 0.0))):
        xy = torch.tensor(minimum, dtype=torch.float64, requires_grad=True)
        value = fn(xy)
        value.backward()
        assert value.item() == 0.0 and torch.equal(xy.grad, torch.zeros(2, dtype=torch.float64))
        assert fn(torch.tensor(minimum, dtype=torch.float64) + 0.1).item() > 0.0


def test_trajectory_rejects_bad_input():
    with pytest.raises(ValueError, match="2 numbers"):
        optim.trajectory(lambda ps: optim.SGD(ps, lr=0.1), optim.quadratic, (1.0, 2.0, 3.0), 5)
    with pytest.raises(ValueError, match="scalar"):
        optim.trajectory(lambda ps: optim.SGD(ps, lr=0.1), lambda xy: xy**2, (1.0, 2.0), 5)
