"""A scalar reverse-mode automatic differentiation engine, small enough to read in one sitting.

Every number in a computation is wrapped in a `Value`. Each arithmetic operation creates a new
`Value` that remembers its inputs (its *children* in the computational graph) and a tiny closure,
`_backward`, which knows the local derivative of that one operation. Calling `backward()` on the
final result walks the graph from the output towards the inputs and applies the chain rule:

    d(output)/d(input) = sum over every path of the product of local derivatives along the path.

The "sum over paths" is why gradients are *accumulated* with `+=`: a value used twice (say `a * a`)
receives one contribution per use. The same engine then carries a tiny neural-network library
(`Neuron`, `Layer`, `MLP`) that is trained by plain gradient descent.
"""

import math
import random

__all__ = ["Value", "topological_order", "Module", "Neuron", "Layer", "MLP"]


class Value:
    """A scalar that records how it was computed, so that gradients can flow back through it."""

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = float(data)
        self.grad = 0.0  # d(output)/d(self), filled in by backward()
        self._prev = tuple(_children)  # the inputs this value was computed from
        self._op = _op  # the operation that produced it, for printing and drawing
        self.label = label
        self._backward = lambda: None  # leaves have nothing to pass further back

    def __repr__(self):
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.4g}, grad={self.grad:.4g})"

    # ---- binary operations: each one states its local derivatives ------------------------------
    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # d(a+b)/da = 1, d(a+b)/db = 1: addition routes the gradient unchanged
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():  # d(ab)/da = b, d(ab)/db = a: each factor is scaled by the other one
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data / other.data, (self, other), "/")

        def _backward():  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            self.grad += out.grad / other.data
            other.grad += -self.data / other.data**2 * out.grad
        out._backward = _backward
        return out

    def __pow__(self, exponent):
        if not isinstance(exponent, (int, float)):
            raise TypeError(
                f"Value ** exponent needs a plain int or float exponent, got {type(exponent).__name__}; "
                "for a Value exponent write (exponent * base.log()).exp() instead."
            )
        if self.data < 0 and not float(exponent).is_integer():
            raise ValueError(
                f"{self.data!r} ** {exponent!r} is not a real number; "
                "only raise positive values to fractional powers."
            )
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():  # d(x^n)/dx = n x^(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad
        out._backward = _backward
        return out

    # The remaining operators are spelled with the ones above, so they need no derivative of their own.
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __radd__(self, other):  # other + self, when other is a plain number
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return Value(other) - self

    def __rtruediv__(self, other):
        return Value(other) / self

    # ---- elementary functions ------------------------------------------------------------------
    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():  # d(e^x)/dx = e^x, which we already computed as out.data
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        if self.data <= 0:
            raise ValueError(
                f"log needs a positive input, got {self.data!r}; "
                "shift or squash the argument first (for example log(x**2 + eps))."
            )
        out = Value(math.log(self.data), (self,), "log")

        def _backward():  # d(ln x)/dx = 1/x
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # d(tanh x)/dx = 1 - tanh(x)^2
            self.grad += (1.0 - out.data**2) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward():  # slope 1 where the input is positive, 0 elsewhere (PyTorch's choice at 0 too)
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        # Two algebraically equal forms, so that exp() never receives a large positive argument.
        if self.data >= 0:
            s = 1.0 / (1.0 + math.exp(-self.data))
        else:
            z = math.exp(self.data)
            s = z / (1.0 + z)
        out = Value(s, (self,), "sigmoid")

        def _backward():  # d(sigma(x))/dx = sigma(x) (1 - sigma(x))
            self.grad += s * (1.0 - s) * out.grad
        out._backward = _backward
        return out

    # ---- the backward pass ---------------------------------------------------------------------
    def backward(self):
        """Fill in `.grad` of every Value this one depends on with d(self)/d(that value).

        As in PyTorch, gradients *accumulate* (`+=`) in the leaves (the inputs and parameters):
        call `zero_grad()` (or reset their `.grad`) between two backward passes. Intermediate
        values are recomputed from scratch on every pass: their `.grad` is reset here, so a second
        pass does not add on top of the first one's partial sums.
        """
        order = topological_order(self)
        for node in order:
            if node._prev:  # not a leaf: its gradient is rebuilt from its users below
                node.grad = 0.0
        self.grad = 1.0  # d(self)/d(self)
        # Reversed topological order visits a node only after every node that uses it, so its
        # gradient is complete before it is pushed further back to its own inputs.
        for node in reversed(order):
            node._backward()


def topological_order(root):
    """Return every Value that `root` depends on, inputs first and `root` last.

    Depth-first search with an explicit stack instead of recursion, so that a graph thousands of
    operations deep does not hit Python's recursion limit. Each stack entry carries a flag:
    False means "visit this node's children", True means "its children are done, emit it".
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev if child not in visited)
    return order


# ---- a tiny neural-network library on top of Value ---------------------------------------------
def _as_rng(rng):
    """Accept a random.Random or an int seed; the global `random` state is never touched."""
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int):
        return random.Random(rng)
    raise TypeError(
        f"rng must be a random.Random or an int seed, got {rng!r}; "
        "pass e.g. rng=0 or rng=random.Random(0) so that the initialisation is reproducible."
    )


class Module:
    """Anything with trainable parameters: provides `parameters()` and `zero_grad()`."""

    def parameters(self):
        return []

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """Computes tanh(w . x + b), or just w . x + b when `nonlin=False`."""

    def __init__(self, n_in, nonlin=True, rng=None):
        rng = _as_rng(rng)
        # Dividing by sqrt(n_in) keeps the weighted sum of order 1 however many inputs there are,
        # so tanh starts in its sensitive middle range instead of saturating.
        scale = 1.0 / math.sqrt(n_in)
        self.w = [Value(rng.uniform(-1, 1) * scale) for _ in range(n_in)]
        self.b = Value(0.0)
        self.nonlin = nonlin

    def __call__(self, x):
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}; check the layer sizes.")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.tanh() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]


class Layer(Module):
    """`n_out` independent neurons reading the same `n_in` inputs."""

    def __init__(self, n_in, n_out, nonlin=True, rng=None):
        rng = _as_rng(rng)
        self.neurons = [Neuron(n_in, nonlin=nonlin, rng=rng) for _ in range(n_out)]

    def __call__(self, x):
        return [n(x) for n in self.neurons]  # always a list, even for a single neuron

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """A stack of layers: tanh hidden layers and a linear output layer, e.g. MLP(2, [4, 1], rng=0)."""

    def __init__(self, n_in, sizes, rng=None):
        rng = _as_rng(rng)
        self.dims = [n_in] + list(sizes)
        self.layers = [
            Layer(self.dims[i], self.dims[i + 1], nonlin=(i < len(sizes) - 1), rng=rng)
            for i in range(len(sizes))
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x  # a single output comes back as a Value, not a list

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP({' -> '.join(str(d) for d in self.dims)})"
