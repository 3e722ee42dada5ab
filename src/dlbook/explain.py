"""What a trained image classifier looks at (chapter 07, and later chapters that explain models).

- :func:`feature_maps`: the activations of chosen layers for one input, layer by layer.
- :func:`saliency`: the gradient of a class score with respect to the input pixels
  (Simonyan, Vedaldi and Zisserman, 2014): which pixels would change the score fastest.
- :func:`grad_cam`: a convolutional layer's maps weighted by the class score's mean gradient
  with respect to each, summed and rectified (Selvaraju et al., 2017): where in the image the
  evidence for the class sits, at that layer's resolution.
- :func:`occlude` and :func:`occlusion_map`: slide a grey square over the image and record how
  the probability of the class falls (Zeiler and Fergus, 2014): which regions the decision needs;
  :func:`occlusion_agreement` asks whether saliency ranks the squares as occlusion does.
- :func:`randomisation_check`: Adebayo et al.'s (2018) sanity check, an explanation compared
  with itself after the learned weights are re-initialised (:func:`randomized_from_top`).

The gradient answers a local question (an infinitesimal change of each pixel), occlusion a
global one (removing a whole patch); the two often disagree, which is why both are shown.
Every function leaves the model's mode (train or eval) and its gradients as it found them.
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch
from torch import nn


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (B, C, H, W), got shape {tuple(x.shape)}; "
                         "for one image use x.unsqueeze(0)")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def feature_maps(model: nn.Module, x: torch.Tensor,
                 kinds: tuple[type[nn.Module], ...] = (nn.ReLU,),
                 modules: Iterable[nn.Module] | None = None) -> dict[str, torch.Tensor]:
    """The outputs of ``model``'s layers of the given ``kinds`` (or the given ``modules``) when it
    reads ``x``, in the order they ran: ``{module name: (B, C, H, W) tensor}``.

    Recorded with forward hooks, so it works for any model without changing its code. Layers
    the forward pass calls as functions (``torch.relu(...)``) have no module to hook: pass the
    modules you want instead (a convolution, a block).
    """
    _check_images(x)
    names = {m: n for n, m in model.named_modules()}
    chosen = list(modules) if modules is not None else [
        m for m in model.modules() if isinstance(m, kinds)]
    if not chosen:
        raise ValueError(f"the model has no modules of kinds {[k.__name__ for k in kinds]}; "
                         "pass modules=[...] to choose layers")
    maps: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(
        lambda m, _inp, out: maps.setdefault(names.get(m, type(m).__name__), out.detach()))
        for m in chosen]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x.to(_device(model)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return maps


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Vanilla gradient saliency: ``|d score_target / d x|``, the largest over colour channels.

    ``target``: the class of each image whose logit is differentiated (default: the predicted
    class). Returns ``(B, H, W)``. The model's parameter gradients are left untouched.
    """
    _check_images(x)
    was_training = model.training
    model.eval()
    try:
        x = x.detach().to(_device(model)).requires_grad_(True)
        logits = model(x)                                            # (B, classes)
        if target is None:
            target = logits.argmax(dim=1)
        target = torch.as_tensor(target, device=logits.device).reshape(-1)
        if target.shape[0] != x.shape[0]:
            raise ValueError(f"one target per image: {x.shape[0]} images, {target.shape[0]} targets")
        score = logits.gather(1, target[:, None]).sum()              # independent per image
        (grad,) = torch.autograd.grad(score, x)                      # (B, C, H, W)
    finally:
        model.train(was_training)
    return grad.abs().amax(dim=1)                                    # (B, H, W)


def grad_cam(model: nn.Module, x: torch.Tensor, layer: nn.Module,
             target: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) of ``model`` at ``layer`` for the images ``x``.

    With ``A`` the layer's output ``(B, K, h, w)`` and ``s`` the target class's score, each map
    ``A_k`` gets the weight ``alpha_k = mean_ij ds/dA_kij``; the map is ``relu(sum_k alpha_k
    A_k)``, upsampled (bilinear) to the input's size. ``target``: the class per image (default:
    the predicted one). Returns ``(B, H, W)``; the model's mode and gradients are left as found.
    """
    _check_images(x)
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer must be one of the model's own modules (e.g. its last "
                         "convolution or the ReLU after it)")
    seen = {}
    hook = layer.register_forward_hook(lambda m, i, out: seen.__setitem__("a", out))
    was_training = model.training
    model.eval()
    try:
        logits = model(x.detach().to(_device(model)))                # (B, classes)
        if seen.get("a") is None or seen["a"].ndim != 4:
            raise ValueError("the layer must output feature maps (B, K, h, w), got "
                             f"{None if seen.get('a') is None else tuple(seen['a'].shape)}")
        if target is None:
            target = logits.argmax(dim=1)
        target = torch.as_tensor(target, device=logits.device).reshape(-1)
        if target.shape[0] != x.shape[0]:
            raise ValueError(f"one target per image: {x.shape[0]} images, {target.shape[0]} targets")
        acts = seen["a"]                                             # (B, K, h, w)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts)
    finally:
        hook.remove()
        model.train(was_training)
    alpha = grad.mean(dim=(2, 3), keepdim=True)                      # (B, K, 1, 1)
    cam = torch.relu((alpha * acts).sum(1, keepdim=True)).detach()   # (B, 1, h, w)
    cam = nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear",
                                    align_corners=False)
    return cam[:, 0].cpu()                                           # (B, H, W)


def occlude(x: torch.Tensor, row: int, col: int, size: int, fill: float = 0.0) -> torch.Tensor:
    """A copy of the images ``x`` (B, C, H, W) with a ``size`` x ``size`` square set to ``fill``,
    its top-left corner at (``row``, ``col``) (clipped at the border)."""
    _check_images(x)
    if size < 1:
        raise ValueError(f"the occluder's size must be at least 1 pixel, got {size}")
    out = x.clone()
    out[:, :, max(row, 0):row + size, max(col, 0):col + size] = fill
    return out


@torch.no_grad()
def occlusion_map(model: nn.Module, image: torch.Tensor, target: int, size: int = 8,
                  stride: int = 2, fill: float = 0.0, batch_size: int = 256) -> torch.Tensor:
    """The probability of class ``target`` with the occluder at each position:
    ``(n_rows, n_cols)``, entry ``[i, j]`` with the square's corner at ``(i*stride, j*stride)``.

    ``image``: one image ``(C, H, W)``. A low value means the covered region mattered. Every
    occluded copy is classified in batches, so a 28x28 digit costs one or two forward passes.
    """
    if image.ndim != 3:
        raise ValueError(f"image must be one image (C, H, W), got shape {tuple(image.shape)}")
    _, h, w = image.shape
    if size > min(h, w):
        raise ValueError(f"an occluder of {size} pixels does not fit in a {h}x{w} image")
    rows = range(0, h - size + 1, stride)
    cols = range(0, w - size + 1, stride)
    copies = torch.stack([occlude(image[None], r, c, size, fill)[0]
                          for r in rows for c in cols])          # (n_rows * n_cols, C, H, W)
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        probs = torch.cat([model(copies[i:i + batch_size].to(device)).softmax(dim=1)[:, target]
                           for i in range(0, len(copies), batch_size)])
    finally:
        model.train(was_training)
    return probs.view(len(rows), len(cols)).cpu()


# --- sanity checks for saliency maps (Adebayo et al., 2018) ------------------------------------
def rank_correlation(a: torch.Tensor, b: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Spearman rank correlation between maps ``a[i]`` and ``b[i]`` (``(B, H, W)`` each; ties
    get their average rank): 1 when the two order the pixels alike, near 0 when unrelated.
    Returns ``(B,)``.

    ``mask`` (``(B, H, W)`` booleans): rank only the pixels where it is true. Maps that share
    many exact zeros (any map multiplied by an image with a blank background) tie there, and
    the ties alone push the correlation of two unrelated maps towards 1; scoring them on the
    pixels that can differ (the ink) removes that."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"two batches of maps of one shape needed, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    from scipy.stats import rankdata

    if mask is not None:
        if mask.shape != a.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be booleans of the maps' shape {tuple(a.shape)}, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if (mask.reshape(len(mask), -1).sum(1) < 2).any():
            raise ValueError("every map needs at least 2 pixels in the mask to rank")
        return torch.cat([rank_correlation(x[m][None], y[m][None])
                          for x, y, m in zip(a, b, mask)])
    ranks = [torch.as_tensor(rankdata(m.detach().cpu().reshape(len(m), -1).numpy(), axis=1))
             for m in (a, b)]
    ra, rb = (r - r.mean(dim=1, keepdim=True) for r in ranks)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)


def weight_layers(model: nn.Module, only: tuple[type, ...] | None = None) -> list[str]:
    """The names of ``model``'s layers that :func:`randomized_from_top` re-initialises, from the
    input up: every leaf module with ``reset_parameters``, or (``only``) those of these types."""
    return [name for name, m in model.named_modules()
            if hasattr(m, "reset_parameters") and not list(m.children())
            and (only is None or isinstance(m, only))]


def randomized_from_top(model: nn.Module, n_layers: int, seed: int = 0,
                        only: tuple[type, ...] | None = None) -> nn.Module:
    """A copy of ``model`` with its top ``n_layers`` layers that hold weights (convolutions,
    linear layers, norms: every module with ``reset_parameters``; with ``only``, just the layers
    of those types, e.g. ``(nn.Conv2d, nn.Linear)`` to keep BatchNorm's learned statistics)
    re-initialised, starting from the output: the "cascading randomisation" of Adebayo et al.
    (2018). An explanation that explains the model must change as the learned weights are
    destroyed."""
    names = weight_layers(model, only)
    if not 0 <= n_layers <= len(names):
        raise ValueError(f"the model has {len(names)} layers with weights; n_layers="
                         f"{n_layers} is out of range")
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    top = [modules[name] for name in names][::-1][:n_layers]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in top:
            m.reset_parameters()  # a BatchNorm's running statistics too, unless ``only``
    return copy_


def randomisation_check(model: nn.Module, method, x: torch.Tensor, target: torch.Tensor,
                        draws: Iterable[int] = range(5), only: tuple[type, ...] | None = None,
                        cascade: bool = True, mask: torch.Tensor | None = None,
                        with_floor: bool = True):
    """Adebayo et al.'s (2018) sanity check of an explanation ``method(model, x, target) -> (B,
    H, W)``, one seed per draw of the random weights. Returns ``(agreement, floor)``:

    - ``agreement``: the mean rank correlation (over the images) of the trained model's maps
      with those of :func:`randomized_from_top` copies: ``(draw, layers randomised)``, the top
      1, 2, ... layers random (``cascade=True``), or ``(draw,)`` with every layer random;
    - ``floor``: the same between every pair of fully random copies, ``(pairs,)``: how well two
      random networks agree, the level to compare with.

    ``mask`` as in :func:`rank_correlation`; ``with_floor=False`` skips the floor (an empty
    array)."""
    draws = list(draws)
    if len(draws) < 2:
        raise ValueError(f"need at least 2 draws for the random-vs-random floor, got {draws}")
    n = len(weight_layers(model, only))
    ks = range(1, n + 1) if cascade else [n]

    def agree(m1, m2):
        return rank_correlation(m1, m2, mask).mean().item()

    trained = method(model, x, target)
    random_maps = {}
    rows = []
    for d in draws:
        row = []
        for k in ks:
            maps = method(randomized_from_top(model, k, seed=d, only=only), x, target)
            row.append(agree(trained, maps))
        random_maps[d] = maps  # the last: every layer random
        rows.append(row)
    floor = [agree(random_maps[a], random_maps[b])
             for i, a in enumerate(draws) for b in draws[i + 1:]] if with_floor else []
    agreement = np.array(rows) if cascade else np.array(rows)[:, 0]
    return agreement, np.array(floor)


def occlusion_agreement(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        size: int = 8, stride: int = 2) -> dict[str, torch.Tensor]:
    """Do saliency and occlusion point at the same places? Per image, the occluder's positions
    ranked by what covering each costs the right class's probability, against the mean
    saliency under the square, and against the mean ink under it (a control that needs no
    network): ``{"saliency": (B,), "ink": (B,), "cost": (B, n, n)}`` rank correlations and the
    costs. ``images`` (B, 1, H, W)."""
    _check_images(images)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = model(images.to(_device(model))).softmax(1).cpu()
    finally:
        model.train(was_training)
    p_clean = p[torch.arange(len(labels)), labels]                 # (B,)
    cost = p_clean[:, None, None] - torch.stack(
        [occlusion_map(model, x, int(y), size=size, stride=stride)
         for x, y in zip(images, labels)])                          # (B, n, n)

    def under_square(m):  # (B, H, W) -> mean under each square, (B, n, n)
        return nn.functional.avg_pool2d(m[:, None], size, stride)[:, 0]

    return {"saliency": rank_correlation(under_square(saliency(model, images, labels)), cost),
            "ink": rank_correlation(under_square(images[:, 0]), cost), "cost": cost}
