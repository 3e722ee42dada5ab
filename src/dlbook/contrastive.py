"""Contrastive learning: the InfoNCE / NT-Xent loss, SimCLR's two-view training, CLIP's
two-tower alignment, and the small image encoder both chapters' models use.

**InfoNCE** (van den Oord et al. 2018) scores one positive pair against many negatives. For a
batch of ``N`` anchors ``a_i`` and candidates ``b_j`` where ``b_i`` is ``a_i``'s positive,

    loss = mean_i  -log  exp(sim(a_i, b_i) / tau) / sum_j exp(sim(a_i, b_j) / tau)

with cosine similarity ``sim`` and a temperature ``tau``: cross-entropy over the rows of the
similarity matrix with the diagonal as the targets.

**NT-Xent** (SimCLR, Chen et al. 2020) is InfoNCE on ``2N`` views of ``N`` images: each view's
positive is the other view of the same image, and the other ``2N - 2`` views are its negatives
(a view is never compared with itself).

**CLIP** (Radford et al. 2021) uses InfoNCE in both directions between images and their
captions: ``(InfoNCE(img, txt) + InfoNCE(txt, img)) / 2``, with a learned temperature.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .training import adam
from .tuning import fit_side_by_side


# --- losses -------------------------------------------------------------------------------------
def _check_pair(a: torch.Tensor, b: torch.Tensor, temperature) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"need two (N, D) batches of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ValueError("a contrastive loss needs at least 2 pairs (one positive, >= 1 negative)")
    if not bool(torch.as_tensor(temperature) > 0):
        raise ValueError(f"temperature must be positive, got {float(temperature)}")


def info_nce(anchors: torch.Tensor, positives: torch.Tensor,
             temperature: float | torch.Tensor = 0.1) -> torch.Tensor:
    """InfoNCE of ``anchors`` ``(N, D)`` against ``positives`` ``(N, D)``: row ``i`` of
    ``positives`` is anchor ``i``'s positive, every other row a negative. Cosine similarity."""
    _check_pair(anchors, positives, temperature)
    a, b = F.normalize(anchors, dim=-1), F.normalize(positives, dim=-1)
    logits = a @ b.T / temperature  # (N, N): anchor i against every candidate j
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's loss on two views ``z1``, ``z2`` ``(N, D)`` of the same ``N`` images.

    The ``2N`` views are compared with one another; view ``k``'s positive is the other view of
    its image, its self-similarity is masked out (it would be the easiest "positive" of all), and
    the remaining ``2N - 2`` views are negatives. Mean over all ``2N`` views.
    """
    _check_pair(z1, z2, temperature)
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # (2N, D)
    logits = z @ z.T / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # never a candidate for itself
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
    return F.cross_entropy(logits, targets)


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: images pick their captions and captions their images.
    ``logit_scale`` is ``1 / temperature`` (CLIP learns its logarithm)."""
    scale = torch.as_tensor(logit_scale)
    if not scale > 0:
        raise ValueError(f"logit_scale must be positive, got {float(scale)}")
    temperature = 1 / scale  # a tensor: gradients reach a learned scale
    return 0.5 * (info_nce(image_emb, text_emb, temperature)
                  + info_nce(text_emb, image_emb, temperature))


# --- augmentation -------------------------------------------------------------------------------
def per_image(transform: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Apply a ``torchvision.transforms.v2`` transform to each image on its own.

    A v2 transform draws its random parameters once per call, so calling it on a batch moves
    every image alike; contrastive learning needs two *different* random views of every image,
    hence one call per image. ``images`` ``(N, C, H, W)``.
    """
    if images.dim() != 4:
        raise ValueError(f"per_image expects a batch (N, C, H, W), got {tuple(images.shape)}")
    return torch.stack([transform(img) for img in images])  # (N, C, H', W')


def view_bank(transform: Callable, images: torch.Tensor, views: int, seed: int = 0) -> torch.Tensor:
    """``views`` random views of every image, drawn once: ``(views, N, C, H', W')``.

    Why a bank: a v2 transform costs a fraction of a millisecond per image on a CPU, far more
    than a small encoder's step, so drawing fresh views at every step would dominate training.
    Drawn once and sampled from (two different views per image per step), the same random
    transforms serve every step and every seed.
    """
    if views < 2:
        raise ValueError(f"a contrastive bank needs at least 2 views per image, got {views}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.stack([per_image(transform, images) for _ in range(views)])


def jitter(images: torch.Tensor, generator: torch.Generator | None = None, *,
           contrast: tuple[float, float] = (0.5, 1.5), noise: float = 0.1,
           erase: int = 5) -> torch.Tensor:
    """Cheap pixel-level augmentations, drawn per image, applied to a batch in one go: scale the
    ink by a random contrast factor, add Gaussian noise, and blank a random ``erase x erase``
    square (cutout). Without them two crops of one digit share their ink statistics, and the
    encoder can match views by those instead of by shape."""
    n, _, h, w = images.shape  # (B, 1, H, W)
    factor = torch.empty(n, 1, 1, 1).uniform_(*contrast, generator=generator)
    out = images * factor + noise * torch.randn(images.shape, generator=generator)
    if erase:
        top = torch.randint(0, h - erase + 1, (n, 1, 1, 1), generator=generator)
        left = torch.randint(0, w - erase + 1, (n, 1, 1, 1), generator=generator)
        rows = torch.arange(h).view(1, 1, h, 1)
        cols = torch.arange(w).view(1, 1, 1, w)
        inside = (rows >= top) & (rows < top + erase) & (cols >= left) & (cols < left + erase)
        out = out.masked_fill(inside, 0.0)
    return out.clamp(0, 1)


def two_views(bank: torch.Tensor, index: torch.Tensor, generator: torch.Generator | None = None):
    """Two *different* views, chosen at random from the bank, of each image in ``index``."""
    v = bank.shape[0]
    first = torch.randint(0, v, (len(index),), generator=generator)
    second = (first + torch.randint(1, v, (len(index),), generator=generator)) % v  # != first
    return bank[first, index], bank[second, index]  # (B, C, H, W) each


# --- models -------------------------------------------------------------------------------------
@dataclass
class EncoderConfig:
    """A small encoder for ``side x side`` one-channel images: an MLP ``side^2 -> hidden ->
    features`` (the representation); SimCLR adds a projection head ``features -> projection``.

    An MLP, not a CNN, because chapter 16 trains it many times over on one CPU thread: on
    14 x 14 digits it costs a third of a small CNN's step and, with the augmentations, learns
    the invariances the CNN would have built in."""

    side: int = 14
    hidden: int = 128
    features: int = 64
    projection: int = 32

    @classmethod
    def tiny(cls) -> EncoderConfig:
        return cls(hidden=64, features=32, projection=16)


class Encoder(nn.Module):
    """``(B, 1, side, side) -> (B, features)``: the image encoder every model of chapter 16
    shares (SimCLR's, the supervised baseline's, CLIP's image tower)."""

    def __init__(self, config: EncoderConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or EncoderConfig(), **overrides)
        self.config = config
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, side * side)
            nn.Linear(config.side ** 2, config.hidden), nn.ReLU(),  # (B, hidden)
            nn.Linear(config.hidden, config.features), nn.ReLU(),  # (B, features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = self.config.side
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, side, side):
            raise ValueError(f"Encoder expects (B, 1, {side}, {side}) images, got {tuple(x.shape)}")
        return self.net(x)


def classifier(config: EncoderConfig | None = None, classes: int = 10) -> nn.Sequential:
    """The supervised baseline: the same encoder with a linear layer on top, trained end to end."""
    config = config or EncoderConfig()
    return nn.Sequential(Encoder(config), nn.Linear(config.features, classes))


class SimCLR(nn.Module):
    """Encoder ``f`` and projection head ``g``: the loss sees ``g(f(x))``, a probe uses ``f(x)``.
    Chen et al. found the representation before the head transfers better: the head is free to
    discard what the augmentations vary (position, scale), which a later task may need."""

    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        config = config or EncoderConfig()
        self.encoder = Encoder(config)
        self.head = nn.Sequential(nn.Linear(config.features, config.features), nn.ReLU(),
                                  nn.Linear(config.features, config.projection))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))  # (B, projection)


@dataclass
class ContrastiveHistory:
    loss: list
    steps: list
    snapshots: list  # (step, features of the probe images) every ``snapshot_every`` steps


def fit_simclr(model: SimCLR, bank: torch.Tensor, *, steps: int = 300, batch_size: int = 256,
               lr: float = 2e-3, temperature: float = 0.5, seed: int = 0,
               transform: Callable | None = jitter, snapshot: torch.Tensor | None = None,
               snapshot_every: int = 0, snapshot_steps: Sequence[int] = (),
               loss_fn: Callable[..., torch.Tensor] = nt_xent) -> ContrastiveHistory:
    """SimCLR for a fixed number of steps: each step takes ``batch_size`` images, two different
    views of each from ``bank`` (``(V, N, 1, H, W)``), passes each view batch through
    ``transform(x, generator)`` (default :func:`jitter`; None: the bank's views as they are),
    and minimises ``loss_fn(z1, z2, temperature)`` (:func:`nt_xent`). No labels. Adam with
    ``lr``.

    ``snapshot`` (images) and ``snapshot_every`` (or a list of ``snapshot_steps``, 0 the
    untrained encoder): record the encoder's features of those images along the way, to watch
    the representation form."""
    n = bank.shape[1]
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is more than the {n} images in the bank")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    optimizer = adam(model.parameters(), lr)
    history = ContrastiveHistory(loss=[], steps=[], snapshots=[])

    wanted = set(snapshot_steps)

    def due(step):
        return step in wanted or bool(snapshot_every) and step % snapshot_every == 0

    def record(step):
        if snapshot is not None and due(step):
            model.eval()
            with torch.no_grad():
                history.snapshots.append((step, model.encoder(snapshot)))
            model.train()

    model.train()
    record(0)
    for step in range(1, steps + 1):
        index = torch.randperm(n, generator=gen)[:batch_size]
        x1, x2 = two_views(bank, index, gen)  # (B, 1, H, W) each
        if transform is not None:
            x1, x2 = transform(x1, gen), transform(x2, gen)
        loss = loss_fn(model(x1), model(x2), temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        history.steps.append(step)
        record(step)
    model.eval()
    return history


@torch.no_grad()
def features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The frozen encoder's representation of ``images``, in eval mode, without gradients."""
    was = encoder.training
    encoder.eval()
    out = torch.cat([encoder(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    encoder.train(was)
    return out


class CLIP(nn.Module):
    """Two towers into one space: an image :class:`Encoder` plus a linear projection, and a linear
    projection of *frozen* sentence vectors (from a pretrained text encoder), with CLIP's
    learned temperature ``logit_scale = exp(t)``, started at 1/0.07 as in the paper."""

    def __init__(self, text_dim: int, config: EncoderConfig | None = None, dim: int = 64):
        super().__init__()
        config = config or EncoderConfig()
        self.image_encoder = Encoder(config)
        self.image_proj = nn.Linear(config.features, dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image_encoder(images)), dim=-1)  # (B, dim)

    def encode_text(self, text_vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(text_vectors), dim=-1)  # (B, dim)

    def forward(self, images: torch.Tensor, text_vectors: torch.Tensor) -> torch.Tensor:
        """The CLIP loss of a batch of matching (image, caption) pairs."""
        scale = self.log_scale.clamp(max=math.log(100)).exp()  # CLIP caps the scale at 100
        return clip_loss(self.encode_image(images), self.encode_text(text_vectors), scale)

    @torch.no_grad()
    def classify(self, images: torch.Tensor, class_text_vectors: torch.Tensor) -> torch.Tensor:
        """Zero-shot: each image's class is the prompt (one per class) its embedding is most
        similar to. ``class_text_vectors`` ``(K, text_dim)``; returns ``(B,)`` class indices."""
        was = self.training
        self.eval()
        sims = self.encode_image(images) @ self.encode_text(class_text_vectors).T  # (B, K)
        self.train(was)
        return sims.argmax(1)


# --- evaluation ---------------------------------------------------------------------------------
class LinearProbe:
    """Multinomial logistic regression on frozen features, the standard test of a
    self-supervised representation: if a linear layer on top classifies well, the classes are
    already (almost) linearly separable in the representation.

    Features are standardised with the training rows' statistics; the weights are fitted
    full-batch with L-BFGS, with an L2 penalty ``weight_decay`` (chosen on validation by
    :meth:`fit_tuned`).
    """

    def __init__(self, weight_decay: float = 1e-3, steps: int = 50):
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        if steps < 1:
            raise ValueError(f"steps (L-BFGS iterations) must be >= 1, got {steps}")
        self.weight_decay, self.steps = weight_decay, steps

    def fit(self, x: torch.Tensor, y: torch.Tensor, classes: int = 10,
            unlabelled: torch.Tensor | None = None) -> LinearProbe:
        """Fit on ``(x, y)``. The features are standardised with the statistics of
        ``unlabelled`` when given (every training image's features, labelled or not: with ten
        labelled rows a feature's spread is mostly noise), else of ``x``."""
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"need as many labels as feature rows (>= 1), got {len(x)}, {len(y)}")
        for name, t in (("features", x), ("unlabelled features", unlabelled)):
            if t is not None and not bool(torch.isfinite(t).all()):
                raise ValueError(f"the {name} contain NaN or inf (rows "
                                 f"{torch.nonzero(~torch.isfinite(t).all(1)).flatten()[:5].tolist()}"
                                 "...): a probe needs finite features")
        if int(y.min()) < 0 or int(y.max()) >= classes:
            raise ValueError(f"labels must lie in 0..{classes - 1}, got {int(y.min())}..{int(y.max())}")
        stats = x if unlabelled is None else unlabelled
        self.mean, self.std = stats.mean(0), stats.std(0, unbiased=False) + 1e-6
        z = (x - self.mean) / self.std  # (N, D)
        self.linear = nn.Linear(z.shape[1], classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.steps,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self.linear(z), y) + self.weight_decay * self.linear.weight.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std).argmax(1)  # (N,)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return (self.predict(x) == y).float().mean().item()

    @torch.no_grad()
    def loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Mean cross-entropy of the probe's predicted probabilities on ``(x, y)``."""
        return F.cross_entropy(self.linear((x - self.mean) / self.std), y).item()

    @classmethod
    def fit_tuned(cls, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                  weight_decays=(1e-3, 1e-2, 1e-1), unlabelled: torch.Tensor | None = None
                  ) -> LinearProbe:
        """The probe whose ``weight_decay`` has the lowest validation cross-entropy on ``val``.

        Cross-entropy, not accuracy: on a small validation set accuracy ties across much of a
        grid and jumps with a single digit, while the loss, a proper score, still tells a
        too-strong penalty (probabilities near uniform) from a too-weak one (overconfident).
        The probe keeps ``val_accuracy``, ``val_loss`` and ``grid`` (wd -> (accuracy, loss))."""
        if not len(weight_decays):
            raise ValueError("the grid of weight decays is empty")
        missing = sorted(set(train[1].tolist()) - set(val[1].tolist()))
        if missing:
            raise ValueError(f"the validation set has no example of class(es) {missing}: it "
                             "cannot tell how well the probe does on them")
        grid, probes = {}, {}
        for wd in weight_decays:
            probes[wd] = cls(wd).fit(*train, unlabelled=unlabelled)
            grid[wd] = (probes[wd].accuracy(*val), probes[wd].loss(*val))
        best_wd = min(grid, key=lambda wd: grid[wd][1])
        best = probes[best_wd]
        best.val_accuracy, best.val_loss = grid[best_wd]
        best.grid = grid
        return best


# --- few labels: probes on frozen features against a network trained from scratch ------------
def labelled_subset(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Indices of ``k`` examples of every class in ``labels``, drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    classes = int(labels.max()) + 1
    members = [torch.nonzero(labels == c).flatten() for c in range(classes)]
    smallest = min(len(m) for m in members)
    if not 1 <= k <= smallest:
        raise ValueError(f"k must be between 1 and {smallest} (the smallest class), got {k}")
    return torch.cat([m[torch.randperm(len(m), generator=gen)[:k]] for m in members])


@dataclass
class FewLabels:
    """What :func:`few_label_curves` measured. ``accuracy[name]`` and ``chosen[name]`` are
    ``(runs, draws, label counts)`` arrays (NaN where no draw was made): test accuracy, and the
    hyper-parameter chosen on validation (a probe's L2 strength, the network's learning rate)."""

    counts: list
    accuracy: dict
    chosen: dict
    grids: dict
    val_sizes: list  # validation digits each choice was made on, per label count
    stopped: np.ndarray | None = None  # the network's early-stopping step, like ``accuracy``

    def per_run(self, name: str) -> np.ndarray:
        """``(runs, label counts)``: each run's accuracy, averaged over its draws of labels.
        The runs are the independent replicates; draws within a run share its encoder."""
        return np.nanmean(self.accuracy[name], axis=1)

    def at_edge(self, name: str) -> np.ndarray:
        """``(label counts,)``: how many choices sat at an edge of the grid."""
        grid = self.grids[name]
        c = self.chosen[name]
        return ((c == min(grid)) | (c == max(grid))).sum((0, 1))


def few_label_curves(runs: list[dict], images: tuple, labels: tuple, counts: Sequence[int], *,
                     draws: Callable[[int], int], weight_decays: Sequence[float],
                     lrs: Sequence[float], steps: int, batch_size: int = 64,
                     eval_every: int = 50, val_per_class: int | None = None,
                     network: Callable[[], nn.Module] = classifier) -> FewLabels:
    """With only ``k`` labels per class, for each ``k`` in ``counts``: linear probes on frozen
    features against ``network()`` trained from scratch on the same labelled images.

    ``runs``: one dict per independent run, ``name -> (f_train, f_val, f_test)`` features
    (e.g. that run's SimCLR encoder, its untrained encoder, raw pixels). ``images`` and
    ``labels``: ``(train, val, test)`` tensors. Run ``r``'s draw ``d`` labels the training
    images ``labelled_subset(y_train, k, r + R * d)`` (``R = len(runs)``); every contender of
    the draw sees the same digits, and the network starts from ``torch.manual_seed`` of that
    seed. ``draws(k)``: draws per run at ``k`` labels per class.

    Each probe standardises its features with the statistics of all training images (labelled
    or not). Choices are made on validation, by cross-entropy: each probe's L2 strength from
    ``weight_decays`` (:meth:`LinearProbe.fit_tuned`), and the network's Adam rate from
    ``lrs`` with early stopping (the best of its checkpoints every ``eval_every`` of ``steps``
    steps, :func:`~dlbook.tuning.fit_side_by_side`). ``val_per_class=None``: the validation set
    is as labelled as the training set, ``k`` per class (at most the smallest class), drawn
    anew per draw; an int: that many per class; 0: the whole validation split. The test set
    scores each chosen model once."""
    (x_train, x_val, x_test), (y_train, y_val, y_test) = images, labels
    names = list(runs[0]) if runs else []
    if not runs or any(list(r) != names for r in runs):
        raise ValueError("every run needs the same contenders (the same dict keys, in order)")
    if "network" in names:
        raise ValueError("'network' names the model trained from scratch; rename the contender")
    n_runs, counts = len(runs), list(counts)
    most = max(draws(k) for k in counts)
    shape = (n_runs, most, len(counts))
    out = FewLabels(counts, {n: np.full(shape, np.nan) for n in [*names, "network"]},
                    {n: np.full(shape, np.nan) for n in [*names, "network"]},
                    {**{n: list(weight_decays) for n in names}, "network": list(lrs)}, [],
                    np.full(shape, np.nan))
    smallest_val = int(torch.bincount(y_val).min())
    for j, k in enumerate(counts):
        per_class = (min(k, smallest_val) if val_per_class is None else val_per_class)
        members, train_sets, vals, seeds, where = [], [], [], [], []
        for r, run in enumerate(runs):
            for d in range(draws(k)):
                seed = r + n_runs * d
                idx = labelled_subset(y_train, k, seed)
                v = (torch.arange(len(y_val)) if per_class == 0
                     else labelled_subset(y_val, per_class, 10_000 + seed))
                for name, (f_train, f_val, f_test) in run.items():
                    probe = LinearProbe.fit_tuned((f_train[idx], y_train[idx]),
                                                  (f_val[v], y_val[v]), weight_decays,
                                                  unlabelled=f_train)
                    out.accuracy[name][r, d, j] = probe.accuracy(f_test, y_test)
                    out.chosen[name][r, d, j] = probe.weight_decay
                for lr in lrs:  # every rate starts from the same weights
                    torch.manual_seed(seed)
                    members.append(network())
                    train_sets.append((x_train[idx], y_train[idx]))
                    vals.append((x_val[v], y_val[v]))
                    seeds.append(seed)
                where.append((r, d))
        out.val_sizes.append(len(vals[0][1]))
        histories = fit_side_by_side(members, train_sets, None, member_vals=vals,
                                     lrs=list(lrs) * len(where), seeds=seeds, steps=steps,
                                     batch_size=batch_size, eval_every=eval_every)
        for p, (r, d) in enumerate(where):
            grid = range(p * len(lrs), (p + 1) * len(lrs))
            best = min(grid, key=lambda m: min(histories[m].val_loss))
            model = members[best]
            with torch.no_grad():
                pred = torch.cat([model(x_test[i:i + 1024]).argmax(1)
                                  for i in range(0, len(x_test), 1024)])
            out.accuracy["network"][r, d, j] = (pred == y_test).float().mean().item()
            out.chosen["network"][r, d, j] = lrs[best % len(lrs)]
            out.stopped[r, d, j] = histories[best].best_step
    return out


# --- CLIP training ------------------------------------------------------------------------------
def fit_clip(model: CLIP, bank: torch.Tensor, labels: torch.Tensor, captions: torch.Tensor, *,
             steps: int = 300, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
             classes: Sequence[int] | None = None,
             on_step: Callable[[int, CLIP], None] | None = None) -> list[float]:
    """Train ``model`` on images from ``bank`` (``(V, N, 1, H, W)``, a random view of each,
    jittered) paired with caption vectors: ``captions`` ``(T, K, D)`` holds ``T`` templates'
    sentence vectors for the ``K`` classes, and each image gets a random template of its class
    ``labels[i]``. ``classes``: train only on images of these classes (hold the others out of
    both images and captions). Adam with ``lr``; returns the loss per step. ``on_step(step,
    model)``, when given, is called after every step (to score the model on the way; it must
    not train it). It draws no random numbers of training's, so the run is the same with it."""
    pool = torch.arange(bank.shape[1])
    if classes is not None:
        pool = pool[torch.isin(labels, torch.as_tensor(list(classes)))]
    if batch_size > len(pool):
        raise ValueError(f"batch_size {batch_size} is more than the {len(pool)} training images")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    optimizer = adam(model.parameters(), lr)
    losses = []
    model.train()
    for step in range(1, steps + 1):
        idx = pool[torch.randperm(len(pool), generator=gen)[:batch_size]]
        view = torch.randint(0, bank.shape[0], (batch_size,), generator=gen)
        images = jitter(bank[view, idx], gen)  # (B, 1, H, W)
        template = torch.randint(0, captions.shape[0], (batch_size,), generator=gen)
        loss = model(images, captions[template, labels[idx]])  # captions: (B, D)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, model)
            model.train()
    model.eval()
    return losses


@torch.no_grad()
def prompt_rank(model: CLIP, images: torch.Tensor, prompts: torch.Tensor, target: int) -> float:
    """Mean rank (1 = the most similar, ``K`` = the least) of prompt ``target`` among the ``K``
    ``prompts`` ``(K, text_dim)``, over ``images``. Top-1 accuracy only asks whether the rank is
    1; the mean rank also sees a prompt that comes second or third (uniform guessing: (K+1)/2)."""
    was = model.training
    model.eval()
    sims = model.encode_image(images) @ model.encode_text(prompts).T  # (B, K)
    model.train(was)
    return ((sims > sims[:, target:target + 1]).sum(1).float() + 1).mean().item()


# --- chapter 16's few-label comparison, shared by the chapter and tools/ch16_few_labels.py ----
FEW_LABELS_FILE = "ch16_few_labels.json"
SIMCLR_FILE = "ch16_simclr.json"  # tools/ch16_simclr.py: temperature, budget, jitter ablation
SIMCLR_RECIPE = {"steps": 3000, "batch_size": 128, "lr": 3e-3, "temperature": 0.2}
SETTLING_STEPS = [0, 100, 250, 500, 1000, 2000, 3000]  # where the tool probes a run on the way
NETWORK_STEPS, NETWORK_EVAL_EVERY = 1000, 100  # the supervised network's budget
LABELS_PER_CLASS = [1, 4, 16, 64, 320]
PROBE_L2_GRID = [10.0 ** (e / 2) for e in range(-10, 2)]  # 10^-5 ... 10^0.5, half decades
NETWORK_LR_GRID = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]


def shrink(images: torch.Tensor, side: int = 14) -> torch.Tensor:
    """``(N, 1, 28, 28) -> (N, 1, side, side)``: smaller digits keep every model cheap."""
    return F.interpolate(images, size=side, mode="bilinear", antialias=True)


def simclr_crop(side: int = 14):
    """SimCLR's main augmentation here: a random crop of 70-100 % of the digit, aspect ratio
    0.8-1.25, resized to ``side x side``."""
    from torchvision.transforms import v2

    return v2.RandomResizedCrop(side, scale=(0.7, 1.0), ratio=(0.8, 1.25), antialias=True)


def shrunk_splits(views: int = 3) -> tuple[tuple, tuple, torch.Tensor]:
    """The set-up chapter 16's tools share: MNIST-5k's ``(train, val, test)`` digits shrunk to
    14 x 14, their labels, and the training digits' view bank of ``views`` random crops
    ``(views, 3200, 1, 14, 14)``."""
    from .data import mnist5k_splits

    train, val, test = mnist5k_splits(flatten=False)
    images = tuple(shrink(x) for x, _ in (train, val, test))
    labels = (train[1], val[1], test[1])
    return images, labels, view_bank(simclr_crop(), train[0], views=views)


def supervised_run(bank: torch.Tensor, images: tuple, labels: tuple, k: int, seed: int,
                   lr: float, *, augment: bool, steps: int = 1000, eval_every: int = 100,
                   batch_size: int = 64) -> tuple[float, float, int]:
    """The network from scratch (``classifier()``, Adam at ``lr``) on ``k`` labels per class
    (``labelled_subset(y_train, k, seed)``), trained on the plain digits or, with ``augment``,
    on a random bank view of each, jittered (SimCLR's and CLIP's views). Every ``eval_every``
    steps it is scored by cross-entropy on ``k`` validation digits per class; returns that
    best validation loss, the test accuracy of that checkpoint and its step."""
    (x_train, x_val, x_test), (y_train, y_val, y_test) = images, labels
    fewest = int(torch.bincount(y_train).min())
    if not 1 <= k <= fewest:
        raise ValueError(f"k = {k} labels per class; the training set has {fewest} of its rarest")
    if lr <= 0 or min(steps, eval_every, batch_size) < 1:
        raise ValueError(f"need lr > 0 and steps, eval_every, batch_size >= 1; got lr = {lr}, "
                         f"steps = {steps}, eval_every = {eval_every}, batch_size = {batch_size}")
    idx = labelled_subset(y_train, k, seed)
    v = labelled_subset(y_val, min(k, int(torch.bincount(y_val).min())), 10_000 + seed)
    torch.manual_seed(seed)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr)
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), float("nan"), 0)
    for step in range(1, steps + 1):
        b = idx[torch.randint(0, len(idx), (batch_size,), generator=gen)]
        if augment:
            pick = torch.randint(0, bank.shape[0], (batch_size,), generator=gen)
            x = jitter(bank[pick, b], gen)
        else:
            x = x_train[b]
        loss = F.cross_entropy(net(x), y_train[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0:
            with torch.no_grad():
                val_loss = F.cross_entropy(net(x_val[v]), y_val[v]).item()
                if val_loss < best[0]:
                    acc = (net(x_test).argmax(1) == y_test).float().mean().item()
                    best = (val_loss, acc, step)
    return best


def validation_probe(features_: tuple, labels: tuple, seed: int, k: int) -> tuple[float, float]:
    """A probe with ``k`` labels per class on ``features_`` ``(train, val, test)``: labelled
    digits ``labelled_subset(y_train, k, seed)``, L2 strength chosen by cross-entropy on ``k``
    validation digits per class (``labelled_subset(y_val, k, 10_000 + seed)``), as in the
    comparison. Returns its accuracy on the *other* validation digits (for choices about
    SimCLR's recipe) and on the test digits."""
    (f_train, f_val, f_test), (y_train, y_val, y_test) = features_, labels
    idx = labelled_subset(y_train, k, seed)
    tune = labelled_subset(y_val, k, 10_000 + seed)
    rest = torch.ones(len(y_val), dtype=torch.bool)
    rest[tune] = False
    probe = LinearProbe.fit_tuned((f_train[idx], y_train[idx]), (f_val[tune], y_val[tune]),
                                  PROBE_L2_GRID, unlabelled=f_train)
    return (round(probe.accuracy(f_val[rest], y_val[rest]), 6),
            round(probe.accuracy(f_test, y_test), 6))


def few_label_runs(models: Sequence[SimCLR], images: tuple) -> list[dict]:
    """For :func:`few_label_curves`: per SimCLR run ``r`` (``models[r]``, trained with seed
    ``r``), the features of its encoder, of the untrained encoder it started from (seed ``r``),
    and the raw pixels, each as ``(train, val, test)``."""
    pixels = tuple(x.flatten(1) for x in images)  # (N, side^2)
    runs = []
    for seed, model in enumerate(models):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            untrained = SimCLR(model.encoder.config).encoder
        runs.append({"SimCLR": tuple(features(model.encoder, x) for x in images),
                     "untrained encoder": tuple(features(untrained, x) for x in images),
                     "raw pixels": pixels})
    return runs


def few_labels_to_json(result: FewLabels) -> dict:
    def nested(a):
        return [[[None if np.isnan(v) else round(float(v), 6) for v in row] for row in block]
                for block in a]
    return {"counts": result.counts, "grids": result.grids, "val_sizes": result.val_sizes,
            "accuracy": {n: nested(a) for n, a in result.accuracy.items()},
            "chosen": {n: nested(a) for n, a in result.chosen.items()},
            "stopped": nested(result.stopped)}


def few_labels_from_json(data: dict) -> FewLabels:
    def array(a):
        return np.array([[[np.nan if v is None else v for v in row] for row in block]
                         for block in a], dtype=float)
    return FewLabels(list(data["counts"]), {n: array(a) for n, a in data["accuracy"].items()},
                     {n: array(a) for n, a in data["chosen"].items()}, data["grids"],
                     list(data["val_sizes"]), array(data["stopped"]))


def load_few_labels() -> tuple[FewLabels, dict]:
    """The committed results of ``tools/ch16_few_labels.py`` (sha256-checked): the comparison
    and the file's whole dict (command, seeds, CPU time)."""
    import json

    from .data import verified_path

    with open(verified_path(FEW_LABELS_FILE), encoding="utf-8") as f:
        data = json.load(f)
    return few_labels_from_json(data["results"]), data


# --- chapter 16's CLIP runs, shared by the chapter and tools/ch16_clip.py ----------------------
CLIP_FILE = "ch16_clip.json"
CLIP_CHECKPOINTS = [100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000]
CLIP_LIVE_STEPS = 1000  # the chapter's own CLIPs: one checkpoint of the tool's curve
CLIP_SETTLED = 0.005  # the budget: the first checkpoint this close to the best on validation
HELD_OUT = 7  # the digit held out of training in the held-out test (picked before any run)
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CLIP_SEEN = [  # the training captions' templates
    "a handwritten digit {}", "a picture of the number {}", "the digit {}",
    "an image of a handwritten {}", "the number {} written by hand", "a drawing of the numeral {}",
]
CLIP_UNSEEN = [  # phrasings no training caption used
    "a scanned {}", "this is a {}", "someone wrote a {}", "a black and white {}",
    "the figure {}", "a {} on a white background",
]
DECOY = "banana"  # names no digit: the held-out test's control word


def clip_prompts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MiniLM's vectors of the seen and unseen templates filled with the ten class words, each
    ``(6, 10, 384)``, and of the unseen templates filled with :data:`DECOY`, ``(6, 384)``."""
    from .pretrained import MINILM_DIM, embed

    sentences = ([t.format(w) for t in CLIP_SEEN for w in WORDS]
                 + [t.format(w) for t in CLIP_UNSEEN for w in WORDS]
                 + [t.format(DECOY) for t in CLIP_UNSEEN])
    vectors = embed(sentences)
    seen = vectors[:60].view(len(CLIP_SEEN), 10, MINILM_DIM)
    unseen = vectors[60:120].view(len(CLIP_UNSEEN), 10, MINILM_DIM)
    return seen, unseen, vectors[120:]


def with_word(prompts: torch.Tensor, index: int, vector: torch.Tensor) -> torch.Tensor:
    """``prompts`` ``(K, D)`` with prompt ``index`` replaced by ``vector`` (e.g. a decoy word)."""
    prompts = prompts.clone()
    prompts[index] = vector
    return prompts


NUMBER_CONTROLS = ("ten", "eleven")  # number words that name no class here: the rank control


def number_word_vectors(words: Sequence[str] = NUMBER_CONTROLS) -> dict[str, torch.Tensor]:
    """MiniLM's vectors of the unseen templates filled with each of ``words``, ``(6, 384)``
    each: the held-out test's number-word controls, embedded once."""
    from .pretrained import embed

    vectors = embed([t.format(w) for w in words for t in CLIP_UNSEEN])
    return {w: vectors[i * len(CLIP_UNSEEN):(i + 1) * len(CLIP_UNSEEN)]
            for i, w in enumerate(words)}


def held_out_scores(model: CLIP, images: torch.Tensor, labels: torch.Tensor,
                    prompt_sets: Sequence[torch.Tensor], decoys: torch.Tensor,
                    held: int = HELD_OUT,
                    controls: dict[str, torch.Tensor] | None = None) -> dict:
    """How a CLIP trained without class ``held`` treats it, each a mean over the ``prompt_sets``
    (``(10, D)`` each; ``decoys[t]`` replaces set ``t``'s prompt ``held``): ``recall``, the share
    of the class's images whose most similar prompt is theirs; ``rank``, that prompt's mean rank
    among the ten (:func:`prompt_rank`), and ``decoy_rank``, the decoy's in its place;
    ``accuracy_others``, accuracy on the other classes; ``cos_seven``, the cosine of the
    projected held-out word (mean over the sets) with each projected class word;
    ``rank_by_class``, the held-out prompt's mean rank for the images of each true class (its
    entry ``held`` is ``rank``); and, with ``controls`` (word -> ``(len(prompt_sets), D)``, as
    :func:`number_word_vectors`), ``control_rank``: each word's rank in the held-out prompt's
    place for the class's images."""
    if len(decoys) != len(prompt_sets):
        raise ValueError(f"{len(decoys)} decoys for {len(prompt_sets)} prompt sets")
    controls = controls or {}
    was = model.training
    model.eval()
    with torch.no_grad():
        feats = model.encode_image(images)  # once: the prompts change, the images do not

        def ranks(prompts, c=held):  # the mean rank of prompt held over class c's images
            sims = feats[labels == c] @ model.encode_text(prompts).T
            return ((sims > sims[:, held:held + 1]).sum(1).float() + 1).mean().item()

        members, rest = labels == held, labels != held
        recall, rank, decoy_rank, others = [], [], [], []
        by_class = np.zeros((len(prompt_sets), int(labels.max()) + 1))
        control = {w: [] for w in controls}
        for t, prompts in enumerate(prompt_sets):
            pred = (feats @ model.encode_text(prompts).T).argmax(1)
            recall.append((pred[members] == held).float().mean().item())
            others.append((pred[rest] == labels[rest]).float().mean().item())
            rank.append(ranks(prompts))
            decoy_rank.append(ranks(with_word(prompts, held, decoys[t])))
            by_class[t] = [ranks(prompts, c) for c in range(by_class.shape[1])]
            for w, vecs in controls.items():
                control[w].append(ranks(with_word(prompts, held, vecs[t])))
        words = model.encode_text(torch.stack(list(prompt_sets)).mean(0))  # (10, dim)
    model.train(was)
    cos = (words @ words[held]).tolist()
    out = {"recall": float(np.mean(recall)), "rank": float(np.mean(rank)),
           "decoy_rank": float(np.mean(decoy_rank)), "accuracy_others": float(np.mean(others)),
           "cos_seven": [round(c, 4) for c in cos],
           "rank_by_class": [round(float(r), 4) for r in by_class.mean(0)]}
    if controls:
        out["control_rank"] = {w: round(float(np.mean(r)), 4) for w, r in control.items()}
    return out


def load_clip_runs() -> dict:
    """The committed results of ``tools/ch16_clip.py`` (sha256-checked)."""
    import json

    from .data import verified_path

    with open(verified_path(CLIP_FILE), encoding="utf-8") as f:
        return json.load(f)


def load_recipe_runs() -> dict:
    """The committed results of ``tools/ch16_simclr.py`` (sha256-checked): SimCLR's temperature
    grid and budget on validation, the jitter ablation and the network's augmentation check."""
    import json

    from .data import verified_path

    with open(verified_path(SIMCLR_FILE), encoding="utf-8") as f:
        return json.load(f)
