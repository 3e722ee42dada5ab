"""Tests for dlbook.autograd: parity with torch.autograd on random graphs, plus targeted cases."""

import math
import random
import sys
from collections import Counter

import pytest
import torch

from dlbook.autograd import MLP, Layer, Neuron, Value, topological_order

N_GRAPHS = 250
REL_TOL, ABS_TOL = 1e-6, 1e-9
UNARY_OPS = ["exp", "log", "tanh", "relu", "sigmoid"]
BINARY_OPS = ["add", "sub", "mul", "div"]
EXPONENTS = [2, 3, -1, -2, 0.5, 1.5, -0.5]


def _apply(op, a, b=None, exponent=None):
    """Apply `op` to either Values or torch tensors: both support the same spelling."""
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        return a / b
    if op == "pow":
        return a**exponent
    if isinstance(a, Value):
        return getattr(a, op)()
    return {"exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "relu": torch.relu,
            "sigmoid": torch.sigmoid}[op](a)


def _is_safe(op, a, b, exponent):
    """Keep every operation inside its real domain and every value of moderate size."""
    if op == "log":
        return a > 0.1
    if op == "exp":
        return a < 3.0
    if op == "div":
        return abs(b) > 0.2
    if op == "pow":
        if exponent < 0 and abs(a) < 0.2:
            return False
        if not float(exponent).is_integer() and a < 0.1:
            return False
    return True


def random_graph(seed, n_leaves=3, n_ops=12):
    """Build one random expression DAG twice, as Values and as float64 torch tensors.

    Operands are drawn from *all* earlier nodes, so nodes (leaves included) are often reused and
    gradients must be summed over several paths.
    """
    rng = random.Random(seed)
    leaf_data = [rng.uniform(-2.0, 2.0) for _ in range(n_leaves)]
    leaves = [Value(x, label=f"x{i}") for i, x in enumerate(leaf_data)]
    torch_leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in leaf_data]
    nodes, torch_nodes = list(leaves), list(torch_leaves)
    uses, ops = Counter(), []
    while len(ops) < n_ops:
        op = rng.choice(UNARY_OPS + BINARY_OPS + ["pow"])
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        exponent = rng.choice(EXPONENTS)
        b = nodes[j].data if op in BINARY_OPS else None
        if not _is_safe(op, nodes[i].data, b, exponent):
            continue
        other, torch_other = (nodes[j], torch_nodes[j]) if op in BINARY_OPS else (None, None)
        out = _apply(op, nodes[i], other, exponent)
        if abs(out.data) > 50.0:  # keep magnitudes tame so that tolerances mean the same everywhere
            continue
        nodes.append(out)
        torch_nodes.append(_apply(op, torch_nodes[i], torch_other, exponent))
        uses[i] += 1
        uses[j] += op in BINARY_OPS
        ops.append(op)
    # Summing the last three nodes gives an output that depends on most of the graph.
    output = nodes[-1] + nodes[-2] + nodes[-3]
    torch_output = torch_nodes[-1] + torch_nodes[-2] + torch_nodes[-3]
    reused = any(count > 1 for count in uses.values())
    return leaves, torch_leaves, output, torch_output, ops, reused


@pytest.mark.parametrize("seed", range(N_GRAPHS))
def test_random_graph_matches_torch(seed):
    leaves, torch_leaves, output, torch_output, ops, _ = random_graph(seed)
    output.backward()
    torch_output.backward()
    assert math.isclose(output.data, torch_output.item(), rel_tol=REL_TOL, abs_tol=ABS_TOL), ops
    for leaf, torch_leaf in zip(leaves, torch_leaves):
        expected = 0.0 if torch_leaf.grad is None else torch_leaf.grad.item()
        assert math.isclose(leaf.grad, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL), (leaf, expected, ops)


def test_random_graphs_cover_every_op_and_fan_out():
    """Guards the parity test above against a generator that silently stops exercising something."""
    op_counts, n_reused, n_leaves_with_gradient = Counter(), 0, 0
    for seed in range(N_GRAPHS):
        leaves, _, output, _, ops, reused = random_graph(seed)
        output.backward()
        op_counts.update(ops)
        n_reused += reused
        n_leaves_with_gradient += sum(leaf.grad != 0.0 for leaf in leaves)
    assert set(op_counts) == set(UNARY_OPS + BINARY_OPS + ["pow"])
    assert min(op_counts.values()) >= 50, op_counts
    assert n_reused >= N_GRAPHS // 2, n_reused
    assert n_leaves_with_gradient >= N_GRAPHS * 3 // 2, n_leaves_with_gradient  # 3 leaves per graph


def test_reverse_operators_with_plain_numbers_match_torch():
    a = Value(1.7)
    ta = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    out = 2 + a + (3 - a) * (2 * a) + 5 / a - a / 4 + (-a) ** 2 - 1.5
    t_out = 2 + ta + (3 - ta) * (2 * ta) + 5 / ta - ta / 4 + (-ta) ** 2 - 1.5
    out.backward()
    t_out.backward()
    assert math.isclose(out.data, t_out.item(), rel_tol=REL_TOL)
    assert math.isclose(a.grad, ta.grad.item(), rel_tol=REL_TOL)


def test_value_used_twice_accumulates_gradient():
    a = Value(3.0)
    (a * a).backward()
    assert a.grad == pytest.approx(6.0)  # d(a^2)/da = 2a, one `a` from each factor

    a, b = Value(2.0), Value(-4.0)
    (a * b + a).backward()
    assert a.grad == pytest.approx(b.data + 1.0)
    assert b.grad == pytest.approx(a.data)


def test_backward_on_deep_chain_does_not_recurse():
    depth = max(5000, 5 * sys.getrecursionlimit())
    x = Value(0.5)
    y = x
    for _ in range(depth):
        y = y + x
    y.backward()
    assert y.data == pytest.approx(0.5 * (depth + 1))
    assert x.grad == pytest.approx(depth + 1)
    assert len(topological_order(y)) == depth + 1


def test_topological_order_puts_inputs_before_users():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    assert len(order) == len(set(order)) == 5
    position = {node: k for k, node in enumerate(order)}
    for node in order:
        for child in node._prev:
            assert position[child] < position[node]
    assert order[-1] is e


def test_domain_errors_say_what_to_do():
    with pytest.raises(ValueError, match="positive"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="fractional"):
        Value(-2.0) ** 0.5
    with pytest.raises(TypeError, match="int or float"):
        Value(2.0) ** Value(3.0)


def test_sigmoid_is_stable_for_large_inputs():
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(1000.0).sigmoid().data == 1.0


def test_repr_is_short():
    text = repr(Value(1.23456789, label="w"))
    assert text == "Value(w: data=1.235, grad=0)"


def test_mlp_initialisation_is_seeded_and_leaves_global_random_alone():
    state = random.getstate()
    model_a, model_b = MLP(3, [4, 2], rng=7), MLP(3, [4, 2], rng=random.Random(7))
    assert random.getstate() == state
    assert [p.data for p in model_a.parameters()] == [p.data for p in model_b.parameters()]
    assert [p.data for p in MLP(3, [4, 2], rng=8).parameters()] != [p.data for p in model_a.parameters()]
    assert len(model_a.parameters()) == (3 + 1) * 4 + (4 + 1) * 2
    assert len(model_a([1.0, 2.0, 3.0])) == 2
    assert len(Layer(3, 1, rng=0)([1.0, 2.0, 3.0])) == 1
    with pytest.raises(ValueError, match="expects 2 inputs"):
        Neuron(2, rng=0)([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="reproducible"):
        MLP(3, [4, 2])  # no rng: refuse rather than silently draw unrepeatable weights


def test_zero_grad_resets_every_parameter():
    model = MLP(2, [3, 1], rng=0)
    model([1.0, -1.0]).backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_mlp_learns_xor():
    inputs = [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]
    targets = [-1.0, 1.0, 1.0, -1.0]
    model = MLP(2, [4, 1], rng=random.Random(0))
    learning_rate = 0.1

    def mean_squared_error():
        return sum((model(x) - y) ** 2 for x, y in zip(inputs, targets)) / len(inputs)

    initial_loss = mean_squared_error().data
    for _ in range(300):
        loss = mean_squared_error()
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= learning_rate * p.grad

    final_loss = mean_squared_error().data
    predictions = [model(x).data for x in inputs]
    assert final_loss < 0.05 < initial_loss, (initial_loss, final_loss)
    assert all(math.copysign(1.0, p) == y for p, y in zip(predictions, targets)), predictions


def test_second_backward_after_zero_grad_matches_torch():
    # Intermediate nodes used to keep their gradient from the first pass, so the second pass
    # added on top of it (12 instead of 6).
    x = Value(1.0)
    y = (x * 2) * 3
    y.backward()
    x.grad = 0.0
    y.backward()
    tx = torch.tensor(1.0, requires_grad=True)
    ty = (tx * 2) * 3
    ty.backward(retain_graph=True)
    tx.grad = None
    ty.backward()
    assert x.grad == tx.grad.item() == 6.0


def test_leaf_gradients_accumulate_over_two_passes_like_torch():
    x = Value(2.0)
    y = x * x + x
    y.backward()
    y.backward()
    tx = torch.tensor(2.0, requires_grad=True)
    ty = tx * tx + tx
    ty.backward(retain_graph=True)
    ty.backward()
    assert x.grad == tx.grad.item() == 10.0
