"""Adversarial examples by the fast gradient sign method (Goodfellow, Shlens and Szegedy, 2015).

A classifier's loss, as a function of the input, is close to linear over small distances. One
step in the direction of the sign of its gradient then raises it as much as any step of the same
largest-pixel size ``epsilon`` can (for a linear loss, exactly):

    x_adv = clip(x + epsilon * sign(grad_x loss(f(x), y)), lo, hi)

Each pixel changes by at most ``epsilon``, often invisibly, yet the prediction flips.
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


def accuracy_under_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                          batch_size: int = 500, **fgsm_kwargs) -> float:
    """Accuracy of ``model`` on the FGSM versions of ``(x, y)`` at ``epsilon`` (0: clean data)."""
    correct = 0
    was_training = model.training
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = fgsm(model, xb, yb, epsilon, **fgsm_kwargs) if epsilon > 0 else xb
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            correct += (model(x_adv.to(device)).argmax(1) == yb.to(device)).sum().item()
    model.train(was_training)
    return correct / len(x)
