"""Chapter 12's depth study: deep GCNs on the karate club, measured layer by layer.

One run trains a GCN of width 4 (tanh, Adam at 0.01, 200 epochs, the two leaders labelled) and
records, before and after training, three views of every hidden layer's output ``H`` ``(34, 4)``:

- the relative Dirichlet energy ``E(H) / ||H||^2``: zero when every node carries the *same
  sqrt(d + 1)-scaled* vector, the limit of repeated averaging;
- the centred spread ``||H - mean(H)|| / ||H||``: zero when every node carries the *same* vector
  (what a layer whose input weights are zero hands on: its bias);
- a linear probe: the training accuracy of a logistic regression from ``H`` to the club, fit on
  all 34 members (can the club still be read off this layer by a straight cut?).

It also records every layer's weight norm and the size of the loss's gradient on it (before
training and every 10 epochs), to set beside the size of the L2 decay term ``weight_decay * W``.
Two controls move the decay between layers: L2 on every parameter but the first layer's
weights, and L2 on those weights only.
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
# name -> (depth, between layers: "plain", "residual" or "pairnorm", weight decay, decoupled
# decay, which weights decay: "all", "not W1" (every parameter but the first layer's weights)
# or "W1 only")
VARIANTS = {
    "plain 2": (2, "plain", WEIGHT_DECAY, False, "all"),
    "plain 8": (8, "plain", WEIGHT_DECAY, False, "all"),
    "plain 16": (16, "plain", WEIGHT_DECAY, False, "all"),
    "plain 16, AdamW": (16, "plain", WEIGHT_DECAY, True, "all"),
    # AdamW at 0.5: eta * lambda = 5e-3 of each weight per step, enough to shrink weights
    "plain 16, AdamW 0.5": (16, "plain", 0.5, True, "all"),
    "plain 16, no decay": (16, "plain", 0.0, False, "all"),
    "plain 16, W1 undecayed": (16, "plain", WEIGHT_DECAY, False, "not W1"),
    "plain 16, W1 only decayed": (16, "plain", WEIGHT_DECAY, False, "W1 only"),
    "residual 16": (16, "residual", WEIGHT_DECAY, False, "all"),
    "PairNorm 16": (16, "pairnorm", WEIGHT_DECAY, False, "all"),
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
    depth, between, decay, decoupled, decayed = VARIANTS[name]
    x, edge_index, y, labelled, others = karate_task()
    torch.manual_seed(seed)
    model = GCN(GCNConfig(sizes=(34,) + (4,) * (depth - 1) + (2,),
                          residual=between == "residual",
                          norm="pairnorm" if between == "pairnorm" else "none"))
    weights = [layer.lin.weight for layer in model.layers]
    w1 = weights[0]
    loss = F.cross_entropy(model(x, edge_index)[labelled], y[labelled])
    grads = torch.autograd.grad(loss, weights)
    start = {"w1": w1.norm().item(), "grad_w1": grads[0].norm().item(),
             "decay_w1": decay * w1.norm().item(),
             "layer_w": [w.norm().item() for w in weights],
             "layer_grad": [g.norm().item() for g in grads],
             **layer_profile(model, x, edge_index, y, probe)}
    # fit_nodes's loop, written out to watch the weights: the loss gradient against the L2 term
    rest = [p for p in model.parameters() if p is not w1]
    first_decay = 0.0 if decayed == "not W1" else decay
    rest_decay = 0.0 if decayed == "W1 only" else decay
    make = torch.optim.AdamW if decoupled else torch.optim.Adam
    optimizer = make([{"params": [w1], "weight_decay": first_decay},
                      {"params": rest, "weight_decay": rest_decay}], lr=0.01)
    torch.manual_seed(seed)
    model.train()
    losses, grad_w1, w1_norm, layer_w, layer_grad = [], [], [], [], []
    for epoch in range(epochs):
        loss = F.cross_entropy(model(x, edge_index)[labelled], y[labelled])
        optimizer.zero_grad()
        loss.backward()
        grad_w1.append(w1.grad.norm().item())  # the loss's part only: Adam adds decay in step
        w1_norm.append(w1.norm().item())
        if epoch % 10 == 0:  # every layer: weight norm, the loss's gradient norm
            layer_w.append([w.norm().item() for w in weights])
            layer_grad.append([w.grad.norm().item() for w in weights])
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        predicted = model(x, edge_index).argmax(1)
        first = model.layers[0](x, edge_index)  # (34, 4): layer 1 before its tanh
        mixed = first - model.layers[0].bias  # A-hat X W, the part that differs by node
    # layer 1's bias, as the norm of the (34, 4) matrix it adds, beside ||A-hat X W||: a large
    # bias lowers the spread of layer 1 though the nodes' own parts still differ
    layer1 = {"mixed": mixed.norm().item(),
              "bias": model.layers[0].bias.norm().item() * len(x) ** 0.5,
              "spread_mixed": centred_spread(mixed), "spread": centred_spread(first)}
    return {"name": name, "seed": seed, "start": start,
            "accuracy": (predicted[others] == y[others]).float().mean().item(),
            "loss": losses[-1], "w1": w1.norm().item(),
            "layer_w": [w.norm().item() for w in weights], "layer1": layer1,
            "curve": {"loss": losses[::5], "grad_w1": grad_w1[::5], "w1": w1_norm[::5],
                      "layer_w": layer_w, "layer_grad": layer_grad},
            **layer_profile(model, x, edge_index, y, probe)}


def load_sweep() -> dict:
    """The committed results of ``tools/gnn_depth_sweep.py`` (sha256-checked)."""
    with open(verified_path(SWEEP_FILE), encoding="utf-8") as f:
        return json.load(f)
