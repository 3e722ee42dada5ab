"""Graph neural networks from their equations: message passing, the GCN layer, a GAT layer.

A graph with ``n`` nodes is given, as in PyTorch Geometric, by an ``edge_index`` of shape
``(2, E)``: column ``k`` is a directed edge from node ``edge_index[0, k]`` (the source ``j``) to
node ``edge_index[1, k]`` (the target ``i``). An undirected graph lists each edge in both
directions. Node features are a tensor ``x`` of shape ``(n, F)``.

One layer of **message passing** updates every node from its neighbours:

    m_ij  = message(x_i, x_j, w_ij)                 for every edge j -> i
    a_i   = AGGREGATE_{j in N(i)} m_ij             (sum, mean or max: order does not matter)
    x_i'  = update(x_i, a_i)

The **GCN** layer (Kipf & Welling 2017) is the special case with ``message = w_ij x_j W``,
``w_ij = 1 / sqrt(d_i d_j)`` (degrees counted with a self-loop on every node) and a sum:
``X' = D^-1/2 (A + I) D^-1/2 X W + b``. The **GAT** layer (Velickovic et al. 2018) learns the
weights instead: a softmax over each node's neighbours of a score of the two endpoints.

Everything is written with ``index_add_`` / ``scatter_reduce`` over the edge list, so it runs on
graphs of any size in O(E) memory; :func:`normalized_adjacency` builds the dense matrix for small
graphs, to look at and to check the sparse code against.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

AGGREGATIONS = ("sum", "mean", "max")


# --- graphs as edge lists ------------------------------------------------------------------------
def check_node_ids(ids: torch.Tensor, num_nodes: int, name: str) -> None:
    """Fail early, with a message, on node ids that are not integers in ``0..num_nodes-1``."""
    if ids.dtype in (torch.bool, torch.uint8) or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"{name} must hold integer node ids, got dtype {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= num_nodes):
        raise ValueError(f"{name} must hold node ids in 0..{num_nodes - 1} (the graph has "
                         f"{num_nodes} nodes), got ids from {ids.min().item()} to "
                         f"{ids.max().item()}")


def check_edge_index(edge_index: torch.Tensor, num_nodes: int) -> None:
    """Fail early, with a message, on an edge list that would index out of range later."""
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(f"edge_index must be a (2, E) tensor of node ids, got a "
                        f"{type(edge_index).__name__}: convert it with torch.as_tensor(edge_index)")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be a (2, E) tensor of node ids, got "
                         f"{tuple(edge_index.shape)}")
    check_node_ids(edge_index, num_nodes, "edge_index")


def edge_index_from_networkx(graph) -> torch.Tensor:
    """The edges of a networkx graph (nodes numbered 0..n-1) as a ``(2, 2m)`` edge_index, each
    undirected edge listed in both directions."""
    nodes = list(graph.nodes)
    if nodes != list(range(len(nodes))):
        raise ValueError("number the nodes 0..n-1 first: networkx.convert_node_labels_to_integers(g)")
    pairs = torch.tensor(list(graph.edges), dtype=torch.int64).reshape(-1, 2).T  # (2, m)
    return torch.cat([pairs, pairs.flip(0)], dim=1)  # (2, 2m)


def add_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Exactly one edge i -> i for every node (so a node's own features enter its update): the
    self-loops already in the list are dropped first, as PyG's ``add_remaining_self_loops``
    does, so a graph that has some does not count them twice."""
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]  # (2, E'): no loops
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)  # (2, n)
    return torch.cat([edge_index, loops], dim=1)  # (2, E' + n)


def degree(edge_index: torch.Tensor, num_nodes: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    """In-degree of every node (the number, or total weight, of edges that arrive at it)."""
    target = edge_index[1]
    w = torch.ones(target.shape[0], device=edge_index.device) if weight is None else weight
    return torch.zeros(num_nodes, dtype=w.dtype, device=w.device).index_add_(0, target, w)  # (n,)


def gcn_norm(edge_index: torch.Tensor, num_nodes: int, self_loops: bool = True,
             dtype: torch.dtype | None = None):
    """The GCN's edge weights ``w_ij = 1/sqrt(d_i d_j)``, with degrees of ``A + I``.

    Returns ``(edge_index, weight)``; with ``self_loops`` the edge list has exactly one ``i -> i``
    for every node (loops already there are not doubled, as in PyG's ``GCNConv``); ``dtype``: the weights' float type (default torch's). Why symmetric: it keeps the propagation matrix's eigenvalues in (-1, 1], so stacking
    layers neither blows features up nor (for a while) shrinks them, and high-degree nodes do not
    dominate their neighbours' sums.
    """
    check_edge_index(edge_index, num_nodes)
    if self_loops:
        edge_index = add_self_loops(edge_index, num_nodes)
    ones = torch.ones(edge_index.shape[1], dtype=dtype or torch.get_default_dtype(),
                      device=edge_index.device)
    deg = degree(edge_index, num_nodes, ones)  # (n,)
    inv_sqrt = deg.pow(-0.5).masked_fill(deg == 0, 0.0)  # isolated nodes get weight 0, not inf
    source, target = edge_index
    return edge_index, inv_sqrt[source] * inv_sqrt[target]  # (2, E'), (E',)


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int, self_loops: bool = True,
                         dtype: torch.dtype | None = None) -> torch.Tensor:
    """The dense ``D^-1/2 (A + I) D^-1/2`` (``(n, n)``), for small graphs: entry ``[i, j]`` is the
    weight of the message from ``j`` to ``i``."""
    edge_index, weight = gcn_norm(edge_index, num_nodes, self_loops, dtype)
    dense = torch.zeros(num_nodes, num_nodes, dtype=weight.dtype, device=weight.device)
    return dense.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)  # (n, n)


# --- message passing ----------------------------------------------------------------------------
def aggregate(messages: torch.Tensor, target: torch.Tensor, num_nodes: int, how: str = "sum") -> torch.Tensor:
    """Combine the messages ``(E, F)`` arriving at each node (``target`` ``(E,)``) into ``(n, F)``.

    Sum, mean and max do not depend on the order of a node's neighbours, which is what makes a
    GNN's output independent of how the nodes happen to be numbered. A node without incoming
    messages gets zeros.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {how!r}")
    out = messages.new_zeros((num_nodes, *messages.shape[1:]))  # (n, F)
    if how == "max":
        index = target.view(-1, *([1] * (messages.dim() - 1))).expand_as(messages)
        return out.scatter_reduce(0, index, messages, reduce="amax", include_self=False)
    out = out.index_add(0, target, messages)  # (n, F): sum over incoming edges
    if how == "mean":
        count = torch.zeros(num_nodes, device=messages.device).index_add_(
            0, target, torch.ones_like(target, dtype=torch.float))
        out = out / count.clamp(min=1).view(-1, *([1] * (messages.dim() - 1)))
    return out


def message_passing(x: torch.Tensor, edge_index: torch.Tensor,
                    message: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    how: str = "sum", edge_weight: torch.Tensor | None = None,
                    validate: bool = True) -> torch.Tensor:
    """One round of message passing: every node gathers ``message(x_i, x_j)`` from each edge
    ``j -> i`` and aggregates them (``how``). Default message: the neighbour's features ``x_j``,
    times ``edge_weight`` when given. Returns the aggregated messages ``(n, F')``.
    ``validate=False`` skips the edge-list check (for callers that checked it already)."""
    num_nodes = x.shape[0]
    if validate:
        check_edge_index(edge_index, num_nodes)
    source, target = edge_index
    x_i, x_j = x[target], x[source]  # (E, F) each: the receiving and the sending node
    messages = x_j if message is None else message(x_i, x_j)  # (E, F')
    if edge_weight is not None:
        if edge_weight.shape != source.shape:
            raise ValueError(f"edge_weight must have one entry per edge {tuple(source.shape)}, "
                             f"got {tuple(edge_weight.shape)}")
        messages = messages * edge_weight.view(-1, *([1] * (messages.dim() - 1)))
    return aggregate(messages, target, num_nodes, how)


# --- layers -------------------------------------------------------------------------------------
class GCNLayer(nn.Module):
    """Kipf & Welling's graph convolution: ``X' = D^-1/2 (A + I) D^-1/2 X W + b``.

    Written as message passing: transform every node (``X W``), send ``w_ij x_j W`` along each
    edge, sum at the target, add the bias. ``lin.weight`` has PyTorch's ``(out, in)`` layout, so
    weights copy straight to and from ``torch_geometric.nn.GCNConv`` (``lin.weight``, ``bias``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.xavier_uniform_(self.lin.weight)  # Glorot, as in the paper
        self._cache = None

    def _normalised(self, edge_index, num_nodes, dtype):
        """:func:`gcn_norm`, computed once per graph: training on one graph calls the layer
        with the same ``edge_index`` every epoch. The cache holds the tensor itself and its
        version counter, so another graph, or an in-place edit, recomputes it."""
        check_edge_index(edge_index, num_nodes)  # before ._version: a list has none
        key = (num_nodes, dtype, edge_index._version)
        if self._cache is None or self._cache[0] is not edge_index or self._cache[1] != key:
            self._cache = (edge_index, key, gcn_norm(edge_index, num_nodes, dtype=dtype))
        return self._cache[2]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.lin.in_features:
            raise ValueError(f"GCNLayer expects node features (n, {self.lin.in_features}), "
                             f"got {tuple(x.shape)}")
        if x.dtype != self.lin.weight.dtype:
            raise TypeError(f"GCNLayer got {x.dtype} node features for {self.lin.weight.dtype} "
                            f"weights: convert one, e.g. x.to({self.lin.weight.dtype}) or "
                            f"layer.to({x.dtype})")
        edges, weight = self._normalised(edge_index, x.shape[0], x.dtype)  # (2, E+n), (E+n,)
        h = self.lin(x)  # (n, out)
        out = message_passing(h, edges, edge_weight=weight, validate=False)  # (n, out)
        return out + self.bias if self.bias is not None else out


class GATLayer(nn.Module):
    """A graph attention layer (Velickovic et al. 2018): each node weighs its neighbours itself.

        h_i = W x_i                                  (per head)
        e_ij = LeakyReLU(a_dst . h_i + a_src . h_j)  (= a . [h_i || h_j], split in two halves)
        alpha_ij = softmax_j e_ij                    (over i's neighbours, i itself included)
        x_i' = sum_j alpha_ij h_j  (+ b);  heads concatenated (or averaged with ``concat=False``)

    Parameter names and shapes follow ``torch_geometric.nn.GATConv`` (``lin.weight``,
    ``att_src``, ``att_dst``, ``bias``) so weights copy across. ``forward(..., return_attention=
    True)`` also returns the edges (self-loops added) and their weights ``alpha`` ``(E, heads)``.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, bias: bool = True):
        super().__init__()
        self.heads, self.out_features, self.concat = heads, out_features, concat
        self.negative_slope = negative_slope
        self.lin = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_features))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_features))
        width = heads * out_features if concat else out_features
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        for p in (self.lin.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, return_attention: bool = False):
        n, H, C = x.shape[0], self.heads, self.out_features
        if x.dim() != 2 or x.shape[1] != self.lin.in_features:
            raise ValueError(f"GATLayer expects node features (n, {self.lin.in_features}), "
                             f"got {tuple(x.shape)}")
        check_edge_index(edge_index, n)
        edges = add_self_loops(edge_index, n)  # (2, E): one self-loop per node
        source, target = edges
        h = self.lin(x).view(n, H, C)  # (n, H, C)
        score_src = (h * self.att_src).sum(-1)  # (n, H)
        score_dst = (h * self.att_dst).sum(-1)  # (n, H)
        e = F.leaky_relu(score_dst[target] + score_src[source], self.negative_slope)  # (E, H)
        # softmax over the edges arriving at each node; subtract the node's max for stability
        e_max = aggregate(e, target, n, "max")  # (n, H)
        weights = (e - e_max[target]).exp()  # (E, H)
        alpha = weights / aggregate(weights, target, n, "sum")[target]  # (E, H)
        out = aggregate(alpha.unsqueeze(-1) * h[source], target, n, "sum")  # (n, H, C)
        out = out.reshape(n, H * C) if self.concat else out.mean(1)  # (n, H*C) or (n, C)
        if self.bias is not None:
            out = out + self.bias
        return (out, edges, alpha) if return_attention else out


# --- a small model ------------------------------------------------------------------------------
@dataclass
class GCNConfig:
    """A stack of graph layers: ``sizes = [in, hidden..., embedding]``, then a linear classifier
    from the embedding to ``classes`` (``classes=0``: no classifier, the embedding is the output)."""

    sizes: Sequence[int] = (34, 16, 2)
    classes: int = 2
    layer: str = "gcn"          # "gcn" or "gat"
    activation: str = "tanh"
    dropout: float = 0.0        # on each layer's input features, as in Kipf & Welling
    residual: bool = False      # h <- h + layer(h) wherever a layer keeps the width
    norm: str = "none"          # "pairnorm": PairNorm (Zhao & Akoglu 2020) after each layer

    @classmethod
    def karate(cls) -> GCNConfig:
        """34 one-hot node features -> 4 -> 4 -> 2-D embedding -> 2 clubs (PyG's karate demo)."""
        return cls(sizes=(34, 4, 4, 2), classes=2)

    @classmethod
    def kipf(cls, in_features: int, classes: int) -> GCNConfig:
        """The paper's two-layer model: 16 hidden units, ReLU, dropout 0.5."""
        return cls(sizes=(in_features, 16, classes), classes=0, activation="relu", dropout=0.5)


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda t: t}


class GCN(nn.Module):
    """Graph layers with an activation after each (but the last when there is no classifier).

    ``forward(x, edge_index) -> logits`` (or the embedding when ``classes=0``);
    :meth:`embed` returns the last graph layer's output, the nodes' learned coordinates.
    """

    def __init__(self, config: GCNConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or GCNConfig(), **overrides)
        if config.layer not in ("gcn", "gat"):
            raise ValueError(f"layer must be 'gcn' or 'gat', got {config.layer!r}")
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {config.activation!r}")
        if len(config.sizes) < 2:
            raise ValueError(f"sizes needs at least [in, out], got {list(config.sizes)}")
        if config.norm not in ("none", "pairnorm"):
            raise ValueError(f"norm must be 'none' or 'pairnorm', got {config.norm!r}")
        self.config = config
        make = GCNLayer if config.layer == "gcn" else GATLayer
        self.layers = nn.ModuleList(make(a, b) for a, b in zip(config.sizes[:-1], config.sizes[1:]))
        self.classifier = nn.Linear(config.sizes[-1], config.classes) if config.classes else None

    def _layers(self, x, edge_index, dropout: float):
        """Yield every graph layer's output: dropout, layer, activation (not after the last
        layer when there is no classifier), then the residual sum and PairNorm if configured."""
        act, config = ACTIVATIONS[self.config.activation], self.config
        for k, layer in enumerate(self.layers):
            h = layer(F.dropout(x, dropout, self.training), edge_index)  # (n, sizes[k + 1])
            if self.classifier is not None or k < len(self.layers) - 1:
                h = act(h)
            if config.residual and h.shape == x.shape:
                h = x + h  # the layer learns a change to its input
            if config.norm == "pairnorm":
                h = pair_norm(h)
            x = h
            yield x

    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        *_, last = self._layers(x, edge_index, self.config.dropout)
        return last

    @torch.no_grad()
    def layer_outputs(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[torch.Tensor]:
        """Every graph layer's output (after its activation, residual and norm), without
        dropout: what each depth hands on (to watch node features grow alike with depth)."""
        return list(self._layers(x, edge_index, 0.0))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.embed(x, edge_index)  # (n, sizes[-1])
        return self.classifier(h) if self.classifier is not None else h


def pair_norm(x: torch.Tensor, scale: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """PairNorm (Zhao & Akoglu 2020): centre the node features, then rescale them so that the
    mean squared norm of a node is ``scale**2``. The total spread of the nodes is fixed, so
    stacked layers cannot shrink it to nothing (the same formula as PyG's ``PairNorm``)."""
    x = x - x.mean(0, keepdim=True)  # (n, F)
    return scale * x / (eps + x.pow(2).sum(-1).mean()).sqrt()


# --- measuring over-smoothing -------------------------------------------------------------------
def dirichlet_energy(x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """``1/2 sum_{(i,j) in E} || x_i/sqrt(1+d_i) - x_j/sqrt(1+d_j) ||^2``: how much the node
    features still differ across edges, in the GCN's own normalisation (degrees with self-loops).
    Zero means every node carries the same (degree-scaled) vector: the features are
    over-smoothed and say nothing about where in the graph a node sits."""
    n = x.shape[0]
    check_edge_index(edge_index, n)
    deg = degree(edge_index, n).to(x.dtype)  # (n,)
    scaled = x / (deg + 1).sqrt().unsqueeze(1)  # (n, F)
    source, target = edge_index
    return 0.5 * (scaled[source] - scaled[target]).pow(2).sum()


def propagate(x: torch.Tensor, edge_index: torch.Tensor, steps: int) -> torch.Tensor:
    """``(D^-1/2 (A + I) D^-1/2)^steps x``: the GCN's propagation without weights or
    nonlinearities (as in SGC, Wu et al. 2019)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number of rounds, 0 or more, got {steps!r}")
    edges, weight = gcn_norm(edge_index, x.shape[0], dtype=x.dtype)
    for _ in range(steps):
        x = message_passing(x, edges, edge_weight=weight)  # (n, F)
    return x


# --- training on one graph ----------------------------------------------------------------------
@dataclass
class NodeHistory:
    """What :func:`fit_nodes` records: the loss at every epoch and, every ``record_every`` epochs,
    the nodes' embeddings (``(n, d)`` tensors, epoch 0 = before training)."""

    loss: list = None
    epochs: list = None
    embeddings: list = None


def fit_nodes(model: nn.Module, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor,
              train_nodes: torch.Tensor, *, epochs: int = 200, lr: float = 0.01,
              weight_decay: float = 5e-4, decoupled_decay: bool = False, record_every: int = 0,
              seed: int = 0) -> NodeHistory:
    """Semi-supervised node classification on one graph (transductive, full batch).

    Every epoch runs the model on the *whole* graph, but the loss counts only the labelled
    ``train_nodes``: the other nodes' labels are never seen; they take part only as neighbours,
    through their features and edges. Adam with weight decay, as in Kipf & Welling: the decay
    is added to the gradient (L2), so Adam rescales it with the loss gradient. With
    ``decoupled_decay=True`` it is AdamW's instead (Loshchilov & Hutter 2019): the weights shrink
    by ``lr * weight_decay`` per step whatever the gradient's size.
    """
    train_nodes = torch.as_tensor(train_nodes)
    n = x.shape[0]
    if len(train_nodes) == 0:
        raise ValueError("train_nodes is empty: label at least one node")
    check_node_ids(train_nodes, n, "train_nodes")
    if y.shape[0] != n:
        raise ValueError(f"y needs one label per node ({n}), got {y.shape[0]}")
    torch.manual_seed(seed)
    make = torch.optim.AdamW if decoupled_decay else torch.optim.Adam
    optimizer = make(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = NodeHistory(loss=[], epochs=[], embeddings=[])

    def record(epoch):
        model.eval()
        with torch.no_grad():
            history.epochs.append(epoch)
            history.embeddings.append(model.embed(x, edge_index).clone())
        model.train()

    model.train()
    for epoch in range(1, epochs + 1):
        if record_every and (epoch - 1) % record_every == 0:
            record(epoch - 1)
        logits = model(x, edge_index)  # (n, classes): every node
        loss = F.cross_entropy(logits[train_nodes], y[train_nodes])  # the labelled ones only
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
    if record_every:
        record(epochs)
    model.eval()
    return history


# --- link prediction without labels -------------------------------------------------------------
def edge_scores(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """The graph autoencoder's decoder: the logit of an edge between ``pairs[:, 0]`` and
    ``pairs[:, 1]`` is the dot product of their embeddings ``z`` ``(n, d)``."""
    pairs = torch.as_tensor(pairs)
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must be (P, 2) node pairs, got {tuple(pairs.shape)}")
    check_node_ids(pairs, z.shape[0], "pairs")
    return (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(-1)  # (P,)


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """The probability that a random true edge scores above a random non-edge (ties count half):
    the area under the ROC curve, computed directly from its definition."""
    if positive.numel() == 0 or negative.numel() == 0:
        raise ValueError(f"roc_auc needs at least one positive and one negative score, got "
                         f"{positive.numel()} and {negative.numel()}: the AUC of an empty set is "
                         "undefined")
    diff = positive.reshape(-1, 1) - negative.reshape(1, -1)  # (P, N)
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean().item()


@dataclass
class LinkHistory:
    """What :func:`fit_link_predictor` records: the loss per epoch, the validation AUC and the
    embeddings ``(n, d)`` every ``eval_every`` epochs, and the epoch whose weights were kept
    (best validation AUC). The embeddings let a caller choose one epoch for many splits (on
    their pooled validation AUC) without training again."""

    loss: list = None
    eval_epochs: list = None
    val_auc: list = None
    best_epoch: int = 0
    embeddings: list = None


def fit_link_predictor(encoder: nn.Module, x: torch.Tensor, train_edges: torch.Tensor,
                       val: tuple[torch.Tensor, torch.Tensor], *, epochs: int = 200,
                       lr: float = 0.01, eval_every: int = 10, seed: int = 0) -> LinkHistory:
    """Train a graph autoencoder (Kipf & Welling 2016): no labels, only the graph itself.

    ``train_edges`` ``(m, 2)``: the edges the encoder may see (message passing runs on them
    only, both directions). Each epoch, the true edges should score high and as many random
    node pairs (negative samples, mostly non-edges) low: binary cross-entropy on
    :func:`edge_scores`. ``val``: held-out ``(positive, negative)`` pairs; the weights of the
    evaluation with the best validation AUC are kept (early stopping on a validation split).
    """
    n = x.shape[0]
    if train_edges.dim() != 2 or train_edges.shape[1] != 2:
        raise ValueError(f"train_edges must be (m, 2) node pairs, got {tuple(train_edges.shape)}")
    edge_index = torch.cat([train_edges.T, train_edges.T.flip(0)], dim=1)  # (2, 2m)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    history = LinkHistory(loss=[], eval_epochs=[], val_auc=[], embeddings=[])
    best, best_state = -1.0, None
    for epoch in range(1, epochs + 1):
        encoder.train()
        z = encoder(x, edge_index)  # (n, d)
        negative = torch.randint(0, n, train_edges.shape, generator=gen)  # (m, 2)
        logits = torch.cat([edge_scores(z, train_edges), edge_scores(z, negative)])  # (2m,)
        targets = torch.cat([torch.ones(len(train_edges)), torch.zeros(len(negative))])
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.loss.append(loss.item())
        if epoch % eval_every == 0 or epoch == epochs:
            encoder.eval()
            with torch.no_grad():
                z = encoder(x, edge_index)
                auc = roc_auc(edge_scores(z, val[0]), edge_scores(z, val[1]))
            history.eval_epochs.append(epoch)
            history.val_auc.append(auc)
            history.embeddings.append(z)
            if auc > best:
                best, history.best_epoch = auc, epoch
                best_state = {k: v.clone() for k, v in encoder.state_dict().items()}
    encoder.load_state_dict(best_state)
    encoder.eval()
    return history


# --- whole graphs: readout and GIN --------------------------------------------------------------
def batch_graphs(graphs: Sequence[torch.Tensor], sizes: Sequence[int]):
    """Many graphs as one: a block-diagonal graph with no edges between them, as PyG batches.

    ``graphs``: an edge_index per graph; ``sizes``: each graph's number of nodes. Returns the
    joint ``edge_index`` (node ids shifted past the graphs before) and ``batch`` ``(N,)``, the
    graph each node belongs to, which :func:`readout` pools over."""
    if len(graphs) != len(sizes):
        raise ValueError(f"one size per graph: {len(graphs)} graphs, {len(sizes)} sizes")
    offsets = torch.tensor([0, *sizes]).cumsum(0)  # (G + 1,)
    for edges, n in zip(graphs, sizes):
        check_edge_index(edges, n)
    edge_index = torch.cat([e + o for e, o in zip(graphs, offsets)], dim=1)  # (2, sum E)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes))  # (N,)
    return edge_index, batch


def check_batch(batch: torch.Tensor, num_nodes: int, num_graphs: int) -> None:
    """Raise a clear error unless ``batch`` gives each of ``num_nodes`` nodes a graph id in
    ``0..num_graphs - 1`` (the ids :func:`batch_graphs` returns)."""
    if not isinstance(batch, torch.Tensor) or batch.dtype != torch.long:
        raise TypeError("batch must be a torch.long tensor of graph ids, got "
                        f"{getattr(batch, 'dtype', type(batch).__name__)}")
    if batch.shape != (num_nodes,):
        raise ValueError(f"batch needs one graph id per node ({num_nodes}), got {tuple(batch.shape)}")
    if batch.numel() and (batch.min() < 0 or batch.max() >= num_graphs):
        raise ValueError(f"batch holds graph ids from {batch.min().item()} to {batch.max().item()}"
                         f", but num_graphs is {num_graphs}: ids must lie in 0..{num_graphs - 1}")


def readout(x: torch.Tensor, batch: torch.Tensor, num_graphs: int, how: str = "sum") -> torch.Tensor:
    """One vector per graph from its nodes' vectors ``x`` ``(N, F)``: the aggregation of message
    passing, with the graph as the only receiver. Sum keeps the graph's size; mean forgets it."""
    check_batch(batch, x.shape[0], num_graphs)
    return aggregate(x, batch, num_graphs, how)  # (G, F)


class GINLayer(nn.Module):
    """The graph isomorphism network's layer (Xu et al. 2019):
    ``h_i' = MLP((1 + eps) h_i + sum_{j in N(i)} h_j)``.

    A *sum* of the neighbours (not a mean or max, which forget how many there are) and an MLP
    (injective enough on those sums) make it as discriminating as one round of the
    Weisfeiler-Lehman test, the most a message-passing layer can be. Names follow PyG's
    ``GINConv(nn=Sequential(Linear, ReLU, Linear))`` (``nn.0``, ``nn.2``, ``eps``).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int | None = None,
                 eps: float = 0.0, train_eps: bool = False):
        super().__init__()
        hidden = hidden or out_features
        self.nn = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                nn.Linear(hidden, out_features))
        eps = torch.tensor([float(eps)])
        if train_eps:
            self.eps = nn.Parameter(eps)
        else:
            self.register_buffer("eps", eps)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.nn[0].in_features:
            raise ValueError(f"GINLayer expects node features (n, {self.nn[0].in_features}), "
                             f"got {tuple(x.shape)}")
        neighbours = message_passing(x, edge_index)  # (n, F): the plain sum
        return self.nn((1 + self.eps) * x + neighbours)  # (n, out)


@dataclass
class GINConfig:
    """GIN for graph classification: ``layers`` GIN layers of width ``hidden`` (ReLU between),
    a sum readout of every layer's output (Xu et al.'s jumping-knowledge readout), concatenated,
    then a linear classifier."""

    in_features: int = 1
    hidden: int = 32
    layers: int = 3
    classes: int = 2


class GIN(nn.Module):
    """``forward(x, edge_index, batch, num_graphs) -> (G, classes)`` logits, one row a graph."""

    def __init__(self, config: GINConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or GINConfig(), **overrides)
        if config.layers < 1:
            raise ValueError(f"layers must be at least 1, got {config.layers}")
        self.config = config
        widths = [config.in_features] + [config.hidden] * config.layers
        self.layers = nn.ModuleList(GINLayer(a, b) for a, b in pairwise(widths))
        self.classifier = nn.Linear(config.hidden * config.layers, config.classes)

    def embed_graphs(self, x, edge_index, batch, num_graphs) -> torch.Tensor:
        check_batch(batch, x.shape[0], num_graphs)  # before any layer runs
        pooled = []
        for layer in self.layers:
            x = torch.relu(layer(x, edge_index))  # (N, hidden)
            pooled.append(readout(x, batch, num_graphs, "sum"))  # (G, hidden)
        return torch.cat(pooled, dim=1)  # (G, hidden * layers)

    def forward(self, x, edge_index, batch, num_graphs) -> torch.Tensor:
        return self.classifier(self.embed_graphs(x, edge_index, batch, num_graphs))
