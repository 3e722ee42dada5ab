"""Chapter 12's depth study: deep GCNs on the karate club, measured layer by layer.

One run trains a GCN of width 4 (tanh, Adam at 0.01, 200 epochs, the two leaders labelled) and
records, before and after training, three views of every hidden layer's output ``H`` ``(34, 4)``:

- the relative Dirichlet energy ``E(H) / ||H||^2``: zero when every node carries the *same
  sqrt(d + 1)-scaled* vector, the limit of repeated averaging;
- the centred spread ``||H - mean(H)|| / ||H||``: zero when every node carries the *same* vector
  (what a layer whose input weights are zero hands on: its bias);
- a linear probe: the training accuracy of a logistic regression from ``H`` to the club, fit on
  all 34 members (can the club still be read off this layer by a straight cut?).

It also records the first layer's weight norm and, at initialisation, the size of the loss's
gradient on it beside the size of the L2 decay term ``weight_decay * W1``.
``tools/gnn_depth_sweep.py`` runs :data:`VARIANTS` for 10 seeds into
``data/ch12_depth_sweep.json``; the chapter re-runs a sample.
"""
from __future__ import annotations

import json

import networkx as nx
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from dlbook.data import verified_path
from dlbook.gnn import GCN, GCNConfig, dirichlet_energy, edge_index_from_networkx

SWEEP_FILE = "ch12_depth_sweep.json"
WEIGHT_DECAY = 5e-4
# name -> (depth, residual, weight decay, decoupled decay)
VARIANTS = {
    "plain 2": (2, False, WEIGHT_DECAY, False),
    "plain 8": (8, False, WEIGHT_DECAY, False),
    "plain 16": (16, False, WEIGHT_DECAY, False),
    "plain 16, AdamW": (16, False, WEIGHT_DECAY, True),
    "plain 16, no decay": (16, False, 0.0, False),
    "residual 16": (16, True, WEIGHT_DECAY, False),
}


def karate_task():
    """``X`` (34, 34) one-hot, ``edge_index``, ``y`` (34,) clubs, the labelled leaders, the rest."""
    graph = nx.karate_club_graph()
    y = torch.tensor([int(graph.nodes[i]["club"] != "Mr. Hi") for i in graph])
    return (torch.eye(34), edge_index_from_networkx(graph), y, torch.tensor([0, 33]),
            torch.arange(1, 33))


def centred_spread(h: torch.Tensor) -> float:
    """``||H - mean(H)|| / ||H||``: 0 when every node carries one vector."""
    return ((h - h.mean(0)).norm() / h.norm().clamp(min=1e-30)).item()


def probe_accuracy(h: torch.Tensor, y: torch.Tensor) -> float:
    """Training accuracy of a logistic regression from ``h`` to ``y`` (linear separability)."""
    if centred_spread(h) < 1e-6:  # every node alike: nothing to separate
        return float(torch.bincount(y).max() / len(y))
    probe = LogisticRegression(C=100.0, max_iter=2000).fit(h.numpy(), y.numpy())
    return float(probe.score(h.numpy(), y.numpy()))


def layer_profile(model, x, edge_index, y, probe: bool = True) -> dict:
    """Energy, spread and probe of every hidden layer's output (the last graph layer excluded:
    it is the 2-D embedding the classifier reads). ``probe=False`` skips the probes (the
    costly part), leaving an empty list."""
    outs = model.layer_outputs(x, edge_index)[:-1]
    energy = [(dirichlet_energy(h, edge_index) / h.pow(2).sum().clamp(min=1e-30)).item()
              for h in outs]
    return {"energy": energy, "spread": [centred_spread(h) for h in outs],
            "probe": [probe_accuracy(h, y) for h in outs] if probe else []}


def run(name: str, seed: int, epochs: int = 200, probe: bool = True) -> dict:
    """Train variant ``name`` with ``seed``; everything the chapter plots, as plain numbers
    (``probe=False``: without the linear probes, for a quicker re-run)."""
    depth, residual, decay, decoupled = VARIANTS[name]
    x, edge_index, y, labelled, others = karate_task()
    torch.manual_seed(seed)
    model = GCN(GCNConfig(sizes=(34,) + (4,) * (depth - 1) + (2,), residual=residual))
    w1 = model.layers[0].lin.weight
    loss = F.cross_entropy(model(x, edge_index)[labelled], y[labelled])
    (grad,) = torch.autograd.grad(loss, w1)
    start = {"w1": w1.norm().item(), "grad_w1": grad.norm().item(),
             "decay_w1": decay * w1.norm().item(), **layer_profile(model, x, edge_index, y, probe)}
    # fit_nodes's loop, written out to watch W1: the loss gradient on it against the L2 term
    make = torch.optim.AdamW if decoupled else torch.optim.Adam
    optimizer = make(model.parameters(), lr=0.01, weight_decay=decay)
    torch.manual_seed(seed)
    model.train()
    losses, grad_w1, w1_norm = [], [], []
    for _ in range(epochs):
        loss = F.cross_entropy(model(x, edge_index)[labelled], y[labelled])
        optimizer.zero_grad()
        loss.backward()
        grad_w1.append(w1.grad.norm().item())  # the loss's part only: Adam adds decay in step
        w1_norm.append(w1.norm().item())
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        predicted = model(x, edge_index).argmax(1)
    return {"name": name, "seed": seed, "start": start,
            "accuracy": (predicted[others] == y[others]).float().mean().item(),
            "loss": losses[-1], "w1": w1.norm().item(),
            "curve": {"loss": losses[::5], "grad_w1": grad_w1[::5], "w1": w1_norm[::5]},
            **layer_profile(model, x, edge_index, y, probe)}


def load_sweep() -> dict:
    """The committed results of ``tools/gnn_depth_sweep.py`` (sha256-checked)."""
    with open(verified_path(SWEEP_FILE), encoding="utf-8") as f:
        return json.load(f)
