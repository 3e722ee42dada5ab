"""Optimizers written from their update equations (chapter 04, Optimization).

Each class is a `torch.optim.Optimizer`: it keeps `param_groups` and per-parameter `state`, inherits
`zero_grad()`, and works with the schedulers in `torch.optim.lr_scheduler`. The only code a class adds
is `_update`, the few lines that turn one gradient g into one parameter step. Those lines follow the
equations in the class docstring, and the tests check that they match `torch.optim` to 1e-6.

Notation: theta is a parameter, g its gradient, lr the learning rate, t = 1, 2, ... the step count,
and every product or power of tensors is element-wise.

There are also two 2-D test functions and `trajectory`, which records the path an optimizer takes on
such a function (the chapter's contour plots).
"""

import numpy as np
import torch


class _FromScratchOptimizer(torch.optim.Optimizer):
    """Shared bookkeeping: the closure, the loop over parameters, and skipping those without a gradient."""

    def __init__(self, params, **defaults):
        for name in ("lr", "eps", "weight_decay", "momentum"):
            if name in defaults and defaults[name] < 0:
                raise ValueError(f"{name} must be >= 0, got {defaults[name]}; pass a non-negative value.")
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient. Returns closure() if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():  # the closure must build a graph and call backward()
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:  # frozen or unused in this forward pass: leave it and its state alone
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not handle sparse gradients; use dense ones.")
                self._update(p, p.grad, self.state[p], group)
        return loss

    def _update(self, p, g, state, group):
        raise NotImplementedError


class SGD(_FromScratchOptimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

        g     <- g + weight_decay * theta
        v     <- g                                   (first step)
        v     <- momentum * v + (1 - dampening) * g  (later steps)
        d     <- g + momentum * v   if nesterov,  else  v      (d = g when momentum = 0)
        theta <- theta - lr * d

    Momentum accumulates past gradients, so steps grow along directions where gradients agree and
    cancel where they oscillate. Nesterov evaluates the step "one momentum step ahead".
    """

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0; change one of them.")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _update(self, p, g, state, group):
        momentum = group["momentum"]
        g = g + group["weight_decay"] * p
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(momentum).add_((1 - group["dampening"]) * g)
            v = state["momentum_buffer"]
            g = g + momentum * v if group["nesterov"] else v
        p.sub_(group["lr"] * g)


class RMSProp(_FromScratchOptimizer):
    """RMSProp: divide each gradient by a running root-mean-square of its recent values.

        g     <- g + weight_decay * theta
        s     <- alpha * s + (1 - alpha) * g^2           (s starts at 0)
        m     <- alpha * m + (1 - alpha) * g             (centered only; m starts at 0)
        r     <- sqrt(s - m^2) + eps   if centered,  else  sqrt(s) + eps
        b     <- momentum * b + g / r                    (b starts at 0)
        theta <- theta - lr * b          (theta <- theta - lr * g / r  when momentum = 0)

    Parameters whose gradients are large get small steps and vice versa, so one learning rate suits
    directions of very different curvature. `centered` divides by an estimate of the standard
    deviation of g rather than its root mean square. Matches torch.optim.RMSprop.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}; 0.9 or 0.99 are usual.")
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered)

    def _update(self, p, g, state, group):
        alpha = group["alpha"]
        if not state:
            state["square_avg"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
        g = g + group["weight_decay"] * p
        s = state["square_avg"]
        s.mul_(alpha).add_((1 - alpha) * g * g)
        if group["centered"]:
            m = state["grad_avg"]
            m.mul_(alpha).add_((1 - alpha) * g)
            r = (s - m * m).sqrt() + group["eps"]
        else:
            r = s.sqrt() + group["eps"]
        if group["momentum"] > 0:
            b = state["momentum_buffer"]
            b.mul_(group["momentum"]).add_(g / r)
            p.sub_(group["lr"] * b)
        else:
            p.sub_(group["lr"] * g / r)


class Adam(_FromScratchOptimizer):
    """Adam: momentum on g plus RMSProp's per-parameter scaling, both bias-corrected.

        g     <- g + weight_decay * theta                  (L2 penalty, added to the gradient)
        m     <- beta1 * m + (1 - beta1) * g               (m, v start at 0)
        v     <- beta2 * v + (1 - beta2) * g^2
        v_max <- max(v_max, v);  use v_max for v below     (amsgrad only)
        m_hat <- m / (1 - beta1^t),   v_hat <- v / (1 - beta2^t)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    Because m and v start at 0 they underestimate the averages early on; dividing by 1 - beta^t
    undoes that. With weight_decay > 0 the penalty also gets divided by sqrt(v_hat), so parameters
    with large gradients are barely decayed; AdamW fixes that. Matches torch.optim.Adam.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must both be in [0, 1), got {betas}; (0.9, 0.999) is usual.")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _update(self, p, g, state, group):
        g = g + group["weight_decay"] * p
        self._adam_step(p, g, state, group)

    @staticmethod
    def _adam_step(p, g, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_((1 - beta1) * g)
        v.mul_(beta2).add_((1 - beta2) * g * g)
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay.

        theta <- theta - lr * weight_decay * theta          (decay first, outside the gradient)
        m     <- beta1 * m + (1 - beta1) * g                (m, v start at 0)
        v     <- beta2 * v + (1 - beta2) * g^2
        v_max <- max(v_max, v);  use v_max for v below      (amsgrad only)
        m_hat <- m / (1 - beta1^t),   v_hat <- v / (1 - beta2^t)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    Every parameter shrinks by the same factor 1 - lr * weight_decay per step, whatever its gradient
    scale: weight decay, not an L2 penalty fed through Adam's scaling. Matches torch.optim.AdamW.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _update(self, p, g, state, group):
        p.mul_(1 - group["lr"] * group["weight_decay"])
        self._adam_step(p, g, state, group)


def rosenbrock(xy, a=1.0, b=100.0):
    """Rosenbrock's banana valley (a - x)^2 + b (y - x^2)^2, minimum 0 at (a, a^2).

    The valley floor is easy to reach and nearly flat along its curve, so plain gradient descent crawls.
    """
    x, y = xy[0], xy[1]
    return (a - x) ** 2 + b * (y - x**2) ** 2


def quadratic(xy, condition=10.0):
    """The bowl (x^2 + condition * y^2) / 2, minimum 0 at (0, 0).

    Its Hessian is diag(1, condition), so `condition` is its condition number: the larger it is, the
    narrower the valley and the more gradient descent zig-zags (stable only for lr < 2 / condition).
    """
    x, y = xy[0], xy[1]
    return 0.5 * (x**2 + condition * y**2)


def trajectory(optimizer_factory, loss_fn, start, steps):
    """Run an optimizer on a 2-D function and return the visited points, shape (steps + 1, 2).

    optimizer_factory: called with a list holding the one 2-D parameter, returns an optimizer,
        e.g. `lambda params: SGD(params, lr=1e-3, momentum=0.9)`.
    loss_fn: maps a length-2 tensor to a scalar tensor, e.g. `rosenbrock` or `quadratic`.
    Row 0 is `start`; row k is the point after k steps. Diverging runs keep going, so rows may be inf/nan.
    """
    xy = torch.tensor(start, dtype=torch.float64).flatten()
    if xy.shape != (2,):
        raise ValueError(f"start must hold 2 numbers (x, y), got shape {tuple(xy.shape)}.")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    xy.requires_grad_(True)
    optimizer = optimizer_factory([xy])
    points = np.empty((steps + 1, 2))
    points[0] = xy.detach().numpy()
    for k in range(1, steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(xy)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)}.")
        loss.backward()
        optimizer.step()
        points[k] = xy.detach().numpy()
    return points
