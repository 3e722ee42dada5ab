"""dlbook.gnn: message passing, GCN and GAT layers against PyTorch Geometric (weights copied),
and the dense matrices they stand for."""

import networkx as nx
import numpy as np
import pytest
import torch

from dlbook import gnn


@pytest.fixture(scope="module")
def karate():
    graph = nx.karate_club_graph()
    return graph, gnn.edge_index_from_networkx(graph)


def random_graph(n=12, p=0.3, seed=0):
    graph = nx.gnp_random_graph(n, p, seed=seed)
    graph.add_edge(0, 1)
    return gnn.edge_index_from_networkx(graph)


def test_edge_index_lists_each_edge_both_ways(karate):
    graph, edge_index = karate
    assert edge_index.shape == (2, 2 * graph.number_of_edges())
    pairs = set(map(tuple, edge_index.T.tolist()))
    assert all((j, i) in pairs for i, j in pairs)
    with pytest.raises(ValueError, match="0..n-1"):
        gnn.edge_index_from_networkx(nx.relabel_nodes(graph, {0: "a"}))


def test_normalized_adjacency_is_symmetric_with_top_eigenvector_sqrt_degree(karate):
    graph, edge_index = karate
    a_hat = gnn.normalized_adjacency(edge_index, 34, dtype=torch.float64)
    adjacency = torch.tensor(nx.to_numpy_array(graph, weight=None))
    d = adjacency.sum(1) + 1
    expected = (adjacency + torch.eye(34)) / torch.sqrt(d[:, None] * d[None, :])
    torch.testing.assert_close(a_hat, expected)
    eig, vec = torch.linalg.eigh(a_hat)
    assert eig.max() == pytest.approx(1.0) and eig.min() > -1
    top = vec[:, -1] * torch.sign(vec[0, -1])
    torch.testing.assert_close(top, d.sqrt() / d.sqrt().norm())


def test_message_passing_equals_the_dense_product_and_aggregations():
    edge_index = random_graph()
    n = 12
    x = torch.randn(n, 3, dtype=torch.float64)
    edges, w = gnn.gcn_norm(edge_index, n, dtype=torch.float64)
    dense = gnn.normalized_adjacency(edge_index, n, dtype=torch.float64)
    torch.testing.assert_close(gnn.message_passing(x, edges, edge_weight=w), dense @ x)
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    adjacency[edge_index[1], edge_index[0]] = 1.0
    deg = adjacency.sum(1, keepdim=True)
    torch.testing.assert_close(gnn.message_passing(x, edge_index), adjacency @ x)
    mean = gnn.message_passing(x, edge_index, how="mean")
    torch.testing.assert_close(mean, torch.where(deg > 0, adjacency @ x / deg.clamp(min=1), 0.0))
    biggest = gnn.message_passing(x, edge_index, how="max")
    for i in range(n):
        neighbours = adjacency[i].nonzero().flatten()
        if len(neighbours):
            torch.testing.assert_close(biggest[i], x[neighbours].max(0).values)
    custom = gnn.message_passing(x, edge_index, message=lambda xi, xj: xj - xi)
    torch.testing.assert_close(custom, adjacency @ x - deg * x)


def test_bad_input_fails_up_front():
    edge_index = random_graph()
    with pytest.raises(ValueError, match="has 5 nodes"):
        gnn.message_passing(torch.randn(5, 2), edge_index)
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        gnn.gcn_norm(edge_index.T, 12)
    with pytest.raises(ValueError, match="aggregate"):
        gnn.aggregate(torch.randn(3, 2), torch.tensor([0, 1, 1]), 2, "median")
    with pytest.raises(ValueError, match="GCNLayer expects"):
        gnn.GCNLayer(4, 2)(torch.randn(12, 3), edge_index)
    with pytest.raises(TypeError, match="float64 node features for torch.float32 weights"):
        gnn.GCNLayer(4, 2)(torch.randn(12, 4, dtype=torch.float64), edge_index)
    layer64 = gnn.GCNLayer(4, 2).double()  # the fix the message names works
    assert layer64(torch.randn(12, 4, dtype=torch.float64), edge_index).dtype == torch.float64
    with pytest.raises(ValueError, match="layer must be"):
        gnn.GCN(layer="sage")
    with pytest.raises(ValueError, match="train_nodes is empty"):
        model = gnn.GCN(gnn.GCNConfig(sizes=(12, 2)))
        gnn.fit_nodes(model, torch.eye(12), edge_index, torch.zeros(12, dtype=torch.long),
                      torch.tensor([], dtype=torch.long))


def paired_gcn_layers(pyg):
    """Our GCN layer and PyG's GCNConv with the same weights (a random bias, so it counts)."""
    torch.manual_seed(0)
    ours = gnn.GCNLayer(5, 3).double()
    ref = pyg.GCNConv(5, 3).double()
    with torch.no_grad():
        ours.bias.normal_()
        ref.lin.weight.copy_(ours.lin.weight)
        ref.bias.copy_(ours.bias)
    return ours, ref


def test_gcn_layer_matches_pyg_gcnconv_outputs_and_gradients(karate):
    pyg = pytest.importorskip("torch_geometric.nn")
    _, edge_index = karate
    ours, ref = paired_gcn_layers(pyg)
    x = torch.randn(34, 5, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, out_ref = ours(x, edge_index), ref(x_ref, edge_index)
    torch.testing.assert_close(out, out_ref)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (out_ref * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.lin.weight.grad, ref.lin.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


@pytest.mark.parametrize("heads,concat", [(1, True), (3, True), (2, False)])
def test_gat_layer_matches_pyg_gatconv(heads, concat):
    pyg = pytest.importorskip("torch_geometric.nn")
    edge_index = random_graph(seed=3)
    torch.manual_seed(1)
    ours = gnn.GATLayer(4, 5, heads=heads, concat=concat).double()
    ref = pyg.GATConv(4, 5, heads=heads, concat=concat).double()
    with torch.no_grad():
        ours.bias.normal_()
        for name in ("lin.weight", "att_src", "att_dst", "bias"):
            ref.get_parameter(name).copy_(ours.get_parameter(name))
    x = torch.randn(12, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, edges, alpha = ours(x, edge_index, return_attention=True)
    out_ref = ref(x_ref, edge_index)
    torch.testing.assert_close(out, out_ref)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.att_src.grad, ref.att_src.grad)
    sums = torch.zeros(12, heads, dtype=torch.float64).index_add_(0, edges[1], alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums))  # a softmax over each node's edges


def test_gcn_is_permutation_equivariant_and_its_cache_follows_the_graph():
    edge_index = random_graph(seed=5)
    torch.manual_seed(0)
    model = gnn.GCN(gnn.GCNConfig(sizes=(3, 8, 4), classes=2)).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    perm = torch.randperm(12)
    inverse = torch.argsort(perm)  # new id of each old node
    permuted_edges = inverse[edge_index]
    torch.testing.assert_close(model(x[perm], permuted_edges), model(x, edge_index)[perm])
    # the same model on another graph, and after an in-place edit, recomputes the normalisation
    before = model(x, edge_index)
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    assert not torch.allclose(model(x, no_edges), before)
    edited = edge_index.clone()
    model(x, edited)
    edited[:, :] = edited.flip(0)  # the same undirected graph: same answer
    torch.testing.assert_close(model(x, edited), before)
    edited[1, 0] = edited[0, 0]  # a different graph now
    assert not torch.allclose(model(x, edited), before)


def test_dirichlet_energy_is_the_normalised_laplacian_quadratic_form_and_decays(karate):
    _, edge_index = karate
    x = torch.randn(34, 4, dtype=torch.float64)
    a_hat = gnn.normalized_adjacency(edge_index, 34, dtype=torch.float64)
    laplacian = torch.eye(34, dtype=torch.float64) - a_hat
    energy = gnn.dirichlet_energy(x, edge_index)
    torch.testing.assert_close(energy, torch.trace(x.T @ laplacian @ x))
    energies = [gnn.dirichlet_energy(gnn.propagate(x, edge_index, k), edge_index) for k in (0, 4, 16)]
    assert energies[0] > energies[1] > energies[2] > 0
    torch.testing.assert_close(gnn.propagate(x, edge_index, 3), a_hat @ a_hat @ a_hat @ x)
    for bad in (-1, 2.0, True):  # a negative or fractional number of rounds is no graph operation
        with pytest.raises(ValueError, match="steps"):
            gnn.propagate(x, edge_index, bad)


def test_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(30, generator=gen) + 1, torch.randn(40, generator=gen).round()
    labels = np.r_[np.ones(30), np.zeros(40)]
    assert gnn.roc_auc(pos, neg) == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]))


def test_gcn_learns_the_karate_club_from_two_labels(karate):
    graph, edge_index = karate
    y = torch.tensor([int(graph.nodes[i]["club"] != "Mr. Hi") for i in graph])
    model = gnn.GCN(gnn.GCNConfig.karate())
    history = gnn.fit_nodes(model, torch.eye(34), edge_index, y, torch.tensor([0, 33]),
                            epochs=100, record_every=50)
    rest = torch.arange(1, 33)
    assert (model(torch.eye(34), edge_index).argmax(1)[rest] == y[rest]).float().mean() >= 0.9
    assert history.epochs == [0, 50, 100] and history.embeddings[0].shape == (34, 2)
    assert history.loss[-1] < history.loss[0]


def test_link_predictor_beats_chance_and_keeps_its_best_weights():
    graph = nx.connected_caveman_graph(4, 6)
    edges = torch.tensor(list(graph.edges))
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(edges), generator=gen)
    val_pos, train = edges[order[:8]], edges[order[8:]]
    val_neg = torch.tensor([[0, 13], [1, 20], [2, 8], [7, 19], [3, 15], [9, 22], [4, 17], [11, 23]])
    encoder = gnn.GCN(gnn.GCNConfig(sizes=(24, 16, 8), classes=0, activation="relu"))
    history = gnn.fit_link_predictor(encoder, torch.eye(24), train, (val_pos, val_neg), epochs=60)
    assert max(history.val_auc) == history.val_auc[history.eval_epochs.index(history.best_epoch)]
    assert max(history.val_auc) > 0.8
    # one embedding per evaluation (they change with training); the kept weights give the
    # best evaluation's embedding
    assert len(history.embeddings) == len(history.eval_epochs) == 6
    train_index = torch.cat([train.T, train.T.flip(0)], dim=1)
    with torch.no_grad():
        z = encoder(torch.eye(24), train_index)
    best = history.embeddings[history.eval_epochs.index(history.best_epoch)]
    assert torch.allclose(z, best)
    assert not torch.allclose(history.embeddings[0], history.embeddings[-1])


def test_edge_index_given_as_a_list_fails_with_a_clear_message(karate):
    _, edge_index = karate
    as_list = edge_index.tolist()
    x = torch.randn(34, 3)
    for run in (lambda: gnn.GCNLayer(3, 2)(x, as_list),
                lambda: gnn.GATLayer(3, 2)(x, as_list),
                lambda: gnn.GINLayer(3, 2)(x, as_list),
                lambda: gnn.message_passing(x, as_list)):
        with pytest.raises(TypeError, match="torch.as_tensor"):
            run()


def test_gcn_layer_keeps_one_self_loop_on_graphs_that_have_some(karate):
    """GCNConv adds only the self-loops a graph lacks; so must GCNLayer (weights copy across)."""
    pyg = pytest.importorskip("torch_geometric.nn")
    _, edge_index = karate
    loops = torch.tensor([[0, 5, 5, 17], [0, 5, 5, 17]])  # node 5 twice
    with_loops = torch.cat([edge_index, loops], dim=1)
    ours, ref = paired_gcn_layers(pyg)
    x = torch.randn(34, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x, with_loops), ref(x, with_loops))
    torch.testing.assert_close(ours(x, with_loops), ours(x, edge_index))
    dense = gnn.normalized_adjacency(with_loops, 34, dtype=torch.float64)
    torch.testing.assert_close(dense, gnn.normalized_adjacency(edge_index, 34, dtype=torch.float64))


def test_gin_layer_and_sum_readout_match_pyg():
    pyg = pytest.importorskip("torch_geometric.nn")
    graphs = [random_graph(seed=s) for s in (0, 1, 2)]
    edge_index, batch = gnn.batch_graphs(graphs, [12, 12, 12])
    assert edge_index.shape[1] == sum(g.shape[1] for g in graphs) and batch.tolist()[12] == 1
    torch.manual_seed(0)
    ours = gnn.GINLayer(4, 6, hidden=8, eps=0.3).double()
    ref = pyg.GINConv(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                          torch.nn.Linear(8, 6)), eps=0.3).double()
    ref.nn.load_state_dict(ours.nn.state_dict())
    x = torch.randn(36, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, out_ref = ours(x, edge_index), ref(x_ref, edge_index)
    torch.testing.assert_close(out, out_ref)
    out.tanh().sum().backward()
    out_ref.tanh().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.nn[0].weight.grad, ref.nn[0].weight.grad)
    pooled = gnn.readout(out, batch, 3)
    torch.testing.assert_close(pooled, pyg.global_add_pool(out, batch))
    torch.testing.assert_close(gnn.readout(out, batch, 3, "mean"), pyg.global_mean_pool(out, batch))
    with pytest.raises(ValueError, match="one size per graph"):
        gnn.batch_graphs(graphs, [12, 12])
    with pytest.raises(ValueError, match="one graph id per node"):
        gnn.readout(out, batch[:-1], 3)


def test_gin_cannot_separate_what_weisfeiler_lehman_cannot():
    hexagon, triangles = nx.cycle_graph(6), nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    path = nx.path_graph(6)
    edges, batch = gnn.batch_graphs([gnn.edge_index_from_networkx(g)
                                     for g in (hexagon, triangles, path)], [6, 6, 6])
    torch.manual_seed(0)
    model = gnn.GIN(gnn.GINConfig(in_features=1, hidden=8, layers=3)).double()
    with torch.no_grad():
        h = model.embed_graphs(torch.ones(18, 1, dtype=torch.float64), edges, batch, 3)
    torch.testing.assert_close(h[0], h[1])
    assert (h[0] - h[2]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="layers must be"):
        gnn.GIN(layers=0)


def test_pair_norm_matches_pyg_and_residual_layers_add_to_their_input(karate):
    pyg = pytest.importorskip("torch_geometric.nn")
    x = torch.randn(34, 5, dtype=torch.float64)
    torch.testing.assert_close(gnn.pair_norm(x, scale=2.0), pyg.PairNorm(scale=2.0)(x))
    _, edge_index = karate
    model = gnn.GCN(gnn.GCNConfig(sizes=(34, 4, 4, 4, 2), classes=2, residual=True))
    with torch.no_grad():
        model.layers[1].lin.weight.zero_()
        model.layers[1].bias.zero_()
        out = model.layer_outputs(torch.eye(34), edge_index)
    torch.testing.assert_close(out[1], out[0])  # a zero layer passes its input on
    normed = gnn.GCN(gnn.GCNConfig(sizes=(34, 4, 4, 2), norm="pairnorm"))
    for h in normed.layer_outputs(torch.eye(34), edge_index):
        torch.testing.assert_close(h.mean(0), torch.zeros(h.shape[1]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="norm must be"):
        gnn.GCN(norm="batch")


def test_out_of_range_ids_fail_up_front_with_clear_messages(karate):
    _, edge_index = karate
    x = torch.ones(6, 1)
    batch = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="num_graphs is 2"):
        gnn.readout(x, batch, 2)
    with pytest.raises(TypeError, match="torch.long"):
        gnn.readout(x, batch.float(), 3)
    edges, batch = gnn.batch_graphs([gnn.edge_index_from_networkx(nx.cycle_graph(3))] * 2, [3, 3])
    model = gnn.GIN(gnn.GINConfig(in_features=1, hidden=4, layers=2))
    with pytest.raises(ValueError, match="num_graphs is 1"):
        model(torch.ones(6, 1), edges, batch, 1)
    gcn = gnn.GCN(gnn.GCNConfig.karate())
    y = torch.zeros(34, dtype=torch.long)
    with pytest.raises(ValueError, match="node ids in 0..33"):
        gnn.fit_nodes(gcn, torch.eye(34), edge_index, y, torch.tensor([0, 34]), epochs=1)
    with pytest.raises(TypeError, match="integer node ids"):
        gnn.fit_nodes(gcn, torch.eye(34), edge_index, y, torch.tensor([True, False]), epochs=1)
    z = torch.randn(5, 3)
    with pytest.raises(ValueError, match="node ids in 0..4"):
        gnn.edge_scores(z, torch.tensor([[0, 1], [2, 5]]))
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        gnn.edge_scores(z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty set"):
        gnn.roc_auc(torch.tensor([]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="empty set"):
        gnn.roc_auc(torch.tensor([0.5]), torch.tensor([]))


def test_decoupled_decay_is_adamw(karate):
    _, edge_index = karate
    y = torch.tensor([0] * 17 + [1] * 17)
    states = []
    for decoupled in (False, True):
        torch.manual_seed(0)
        model = gnn.GCN(gnn.GCNConfig.karate())
        gnn.fit_nodes(model, torch.eye(34), edge_index, y, torch.tensor([0, 33]), epochs=5,
                      weight_decay=0.1, decoupled_decay=decoupled)
        states.append(model.layers[0].lin.weight.detach().clone())
    torch.manual_seed(0)
    model = gnn.GCN(gnn.GCNConfig.karate())
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(torch.eye(34), edge_index)[[0, 33]],
                                                 y[[0, 33]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(states[1], model.layers[0].lin.weight.detach())
    assert (states[0] - states[1]).abs().max() > 1e-4
