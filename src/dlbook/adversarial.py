"""Adversarial examples by the fast gradient sign method (Goodfellow, Shlens and Szegedy, 2015).

A classifier's loss, as a function of the input, is close to linear over small distances. One
step in the direction of the sign of its gradient then raises it as much as any step of the same
largest-pixel size ``epsilon`` can (for a linear loss, exactly):

    x_adv = clip(x + epsilon * sign(grad_x loss(f(x), y)), lo, hi)

Each pixel changes by at most ``epsilon``, often invisibly, yet the prediction flips.

Projected gradient descent (PGD, Madry et al., 2018) takes many such steps, each of size
``step_size``, from a random start inside the box, and projects back onto the box
``|x_adv - x| <= epsilon`` (and the valid pixel range) after each: it finds what one linear step
misses where the loss is not linear, and is the standard attack to measure robustness against.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
         clamp: tuple[float, float] | None = (0.0, 1.0), loss_fn=F.cross_entropy) -> torch.Tensor:
    """FGSM adversarial versions of the inputs ``x`` with labels ``y`` (untargeted: it raises the
    loss of the true label). ``clamp``: the valid pixel range (None: no clipping). The model is
    evaluated in eval mode and its parameter gradients are not touched."""
    if epsilon < 0:
        raise ValueError(f"epsilon is a perturbation size, >= 0; got {epsilon}")
    if len(x) != len(y):
        raise ValueError(f"one label per input: {len(x)} inputs, {len(y)} labels")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = x.detach().to(device).requires_grad_(True)
        loss = loss_fn(model(x), y.to(device))
        (grad,) = torch.autograd.grad(loss, x)
    finally:
        model.train(was_training)
    x_adv = x.detach() + epsilon * grad.sign()
    if clamp is not None:
        x_adv = x_adv.clamp(*clamp)
    return x_adv


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = True, seed: int = 0,
        clamp: tuple[float, float] | None = (0.0, 1.0), loss_fn=F.cross_entropy) -> torch.Tensor:
    """PGD adversarial versions of ``x`` (untargeted, L-infinity box of size ``epsilon``):
    ``steps`` FGSM steps of ``step_size`` (default ``2.5 * epsilon / steps``, Madry et al.'s
    choice), each followed by the projection onto the box and ``clamp``. ``random_start``: begin
    at a uniform random point of the box (seeded by ``seed``), as Madry et al. do."""
    if epsilon < 0:
        raise ValueError(f"epsilon is a perturbation size, >= 0; got {epsilon}")
    if steps < 1:
        raise ValueError(f"PGD needs at least one step, got steps={steps}")
    if len(x) != len(y):
        raise ValueError(f"one label per input: {len(x)} inputs, {len(y)} labels")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    if step_size < 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    x = x.detach()
    adv = x.clone()
    if random_start and epsilon > 0:
        gen = torch.Generator().manual_seed(seed)
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * epsilon
        adv = x + noise.to(x.device)
        if clamp is not None:
            adv = adv.clamp(*clamp)
    for _ in range(steps):
        adv = fgsm(model, adv, y, step_size, clamp=None, loss_fn=loss_fn)
        adv = x + (adv - x).clamp(-epsilon, epsilon)                  # back into the box
        if clamp is not None:
            adv = adv.clamp(*clamp)
    return adv


def accuracy_under_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                          batch_size: int = 500, attack: str = "fgsm", **attack_kwargs) -> float:
    """Accuracy of ``model`` on adversarial versions of ``(x, y)`` at ``epsilon`` (0: clean
    data); ``attack``: ``"fgsm"`` or ``"pgd"``, its options in ``attack_kwargs``."""
    attacks = {"fgsm": fgsm, "pgd": pgd}
    if attack not in attacks:
        raise ValueError(f"attack must be one of {sorted(attacks)}, got {attack!r}")
    if len(x) != len(y):
        raise ValueError(f"one label per input: {len(x)} inputs, {len(y)} labels")
    correct = 0
    was_training = model.training
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attacks[attack](model, xb, yb, epsilon, **attack_kwargs) if epsilon > 0 else xb
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            correct += (model(x_adv.to(device)).argmax(1) == yb.to(device)).sum().item()
    model.train(was_training)
    return correct / len(x)
