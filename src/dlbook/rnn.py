"""Recurrent cells and layers written from their equations: the Elman RNN, the LSTM and the GRU.

Each cell maps an input ``x_t`` and the previous state to the next state; a layer runs its cell
along the time axis (batch first: ``(B, T, I)``) and stacks ``num_layers`` of them. The
parameters have the names, shapes, gate order and initialisation of PyTorch's ``nn.RNN``,
``nn.LSTM`` and ``nn.GRU``, so that :meth:`RecurrentLayer.from_torch` can copy a torch module's
weights across and ``tests/test_rnn.py`` can check outputs, final states and gradients against
torch's fused kernels. Those kernels are faster; these are the equations, readable.

    Elman RNN  h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    LSTM       i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
               c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)
    GRU        r, z = sigma(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
               n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn)) ;  h_t = (1 - z) * n + z * h_{t-1}
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

CELL_KINDS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # how many H-row blocks W_ih and W_hh hold


class _Cell(nn.Module):
    """Parameters shared by the three cells: W_ih (gates*H, I), W_hh (gates*H, H) and biases."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"sizes must be positive, got input {input_size}, hidden {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's init: U(-1/sqrt(H), 1/sqrt(H)) for all
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check(self, x: torch.Tensor, *states: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__} takes x of shape (B, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        # Another dtype fails deep inside torch's matmul ("expected m1 and m2 to have the same
        # dtype"); say which tensor is wrong, and that integers are no input at all.
        dtype = self.weight_ih.dtype
        for name, t in (("x", x), *zip(("h", "c"), states)):
            if isinstance(t, torch.Tensor) and not t.is_floating_point():
                raise TypeError(f"{type(self).__name__}: {name} must be floating point, got "
                                f"{t.dtype}; convert it, e.g. {name}.float()")
            if isinstance(t, torch.Tensor) and t.dtype != dtype:
                raise TypeError(f"{type(self).__name__} has {dtype} weights and got {name} of "
                                f"{t.dtype}: convert one, e.g. {name}.to({dtype}) or "
                                f"cell.to({t.dtype})")
        # A state of the wrong shape would broadcast silently (a (1, H) state for every row of
        # the batch); torch's cells refuse it, and so do these.
        for name, s in zip(("h", "c"), states):
            if not isinstance(s, torch.Tensor) or s.shape != (x.shape[0], self.hidden_size):
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise ValueError(f"{type(self).__name__} takes {name} of shape (B, H) = "
                                 f"({x.shape[0]}, {self.hidden_size}) for x of shape "
                                 f"{tuple(x.shape)}, got {got}")


class RNNCell(_Cell):
    """Elman (1990) cell: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__(input_size, hidden_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity is 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self._check(x, h)
        a = (x @ self.weight_ih.T + self.bias_ih
             + h @ self.weight_hh.T + self.bias_hh)  # (B, H)
        if self.nonlinearity == "tanh":
            return torch.tanh(a)  # (B, H)
        return torch.relu(a)


class LSTMCell(_Cell):
    """Hochreiter & Schmidhuber (1997) cell, with the forget gate of Gers et al. (2000).

    The cell state ``c`` is updated additively, ``c_t = f * c_{t-1} + i * g``: when the forget
    gate is near 1 the gradient flows back through ``c`` almost unchanged, which is what lets an
    LSTM carry information (and gradient) across many steps.
    """

    gates = 4

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(
                "LSTMCell takes its state as a pair (h, c), each (B, H)")
        h, c = state  # (B, H), (B, H)
        self._check(x, h, c)
        a = (x @ self.weight_ih.T + self.bias_ih
             + h @ self.weight_hh.T + self.bias_hh)  # (B, 4H)
        i, f, g, o = a.chunk(4, dim=1)  # 4 x (B, H), PyTorch's gate order
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        g = torch.tanh(g)
        c = f * c + i * g  # (B, H) forget some of the old memory, write some new
        h = o * torch.tanh(c)  # (B, H) show part of the memory
        return h, c


class GRUCell(_Cell):
    """Cho et al. (2014) gated recurrent unit: an update gate ``z`` interpolates between the
    old state and a candidate ``n``, whose recurrent part a reset gate ``r`` can switch off."""

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self._check(x, h)
        gi = x @ self.weight_ih.T + self.bias_ih  # (B, 3H)
        gh = h @ self.weight_hh.T + self.bias_hh  # (B, 3H)
        i_r, i_z, i_n = gi.chunk(3, dim=1)  # 3 x (B, H)
        h_r, h_z, h_n = gh.chunk(3, dim=1)  # 3 x (B, H)
        r = torch.sigmoid(i_r + h_r)  # (B, H) reset gate
        z = torch.sigmoid(i_z + h_z)  # (B, H) update gate
        n = torch.tanh(i_n + r * h_n)  # (B, H) candidate state
        return (1 - z) * n + z * h  # (B, H)


CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


class RecurrentLayer(nn.Module):
    """``num_layers`` stacked cells of one kind run over a ``(B, T, I)`` sequence (batch first).

    ``forward(x, state=None) -> (output, state)`` as in PyTorch: ``output`` (B, T, H) holds the
    last layer's hidden state at every step; ``state`` is the final hidden state ``h`` of every
    layer, (L, B, H), or ``(h, c)`` for an LSTM. The loop over time is plain Python: this is
    backpropagation through time written out, and autograd unrolls it.
    """

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **cell_kwargs):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        cell = CELLS[self.kind]
        self.cells = nn.ModuleList(
            cell(input_size if layer == 0 else hidden_size, hidden_size, **cell_kwargs)
            for layer in range(num_layers))

    def initial_state(self, batch_size: int, like: torch.Tensor):
        h = like.new_zeros(self.num_layers, batch_size, self.hidden_size)  # (L, B, H)
        return (h, h.clone()) if self.kind == "lstm" else h

    def forward(self, x: torch.Tensor, state=None):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__} takes x of shape (B, T, {self.input_size}) "
                             f"(batch first), got {tuple(x.shape)}")
        B, T, _ = x.shape
        dtype = self.cells[0].weight_ih.dtype
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__}: x must be floating point, got {x.dtype}; "
                            f"convert it, e.g. x.to({dtype})")
        if x.dtype != dtype:
            raise TypeError(f"{type(self).__name__} has {dtype} weights and got x of {x.dtype}: "
                            f"convert one, e.g. x.to({dtype}) or layer.to({x.dtype})")
        if T == 0:
            raise ValueError(f"{type(self).__name__} got an empty sequence (T = 0) of shape "
                             f"{tuple(x.shape)}: give it at least one step")
        lstm = self.kind == "lstm"
        if state is None:
            state = self.initial_state(B, x)
        else:
            self._check_state(state, B)
        finals_h, finals_c = [], []
        layer_input = x  # (B, T, I)
        for layer, cell in enumerate(self.cells):
            h = state[0][layer] if lstm else state[layer]  # (B, H)
            c = state[1][layer] if lstm else None  # (B, H)
            outputs = []
            for t in range(T):
                if lstm:
                    h, c = cell(layer_input[:, t], (h, c))  # (B, H), (B, H)
                else:
                    h = cell(layer_input[:, t], h)  # (B, H)
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            finals_h.append(h)
            finals_c.append(c)
        h_n = torch.stack(finals_h)  # (L, B, H)
        return layer_input, ((h_n, torch.stack(finals_c)) if lstm else h_n)

    def _check_state(self, state, batch_size: int) -> None:
        """The initial state must be (L, B, H) (a pair of them for an LSTM), exactly: torch's
        layers refuse anything else, and a broadcast state would give silently wrong outputs."""
        want = (self.num_layers, batch_size, self.hidden_size)
        if self.kind == "lstm":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError(f"LSTM takes its initial state as a pair (h0, c0), each of "
                                 f"shape (L, B, H) = {want}")
            named = zip(("h0", "c0"), state)
        else:
            named = [("h0", state)]
        for name, s in named:
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != want:
                raise ValueError(f"{type(self).__name__} takes {name} of shape (L, B, H) = "
                                 f"{want} (L layers, a batch of {batch_size}), got {got}")
            dtype = self.cells[0].weight_ih.dtype
            if s.dtype != dtype:
                raise TypeError(f"{type(self).__name__} has {dtype} weights and got {name} of "
                                f"{s.dtype}: convert it, e.g. {name}.to({dtype})")

    @classmethod
    def from_torch(cls, module: nn.Module) -> "RecurrentLayer":
        """A layer with the weights of a torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (batch_first,
        unidirectional, with biases), copied: the two then compute the same function."""
        expected = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cls.kind]
        if type(module) is not expected:
            raise TypeError(f"{cls.__name__}.from_torch takes an nn.{expected.__name__}, "
                            f"got {type(module).__name__}")
        if module.bidirectional or not module.bias or not module.batch_first \
                or getattr(module, "proj_size", 0):
            raise ValueError("from_torch copies batch_first, unidirectional modules with biases "
                             "and no projection")
        kwargs = {"nonlinearity": module.nonlinearity} if cls.kind == "rnn" else {}
        first = next(module.parameters())
        layer = cls(module.input_size, module.hidden_size, module.num_layers, **kwargs)
        # Cast before copying: copying float64 weights into float32 ones would round them.
        layer = layer.to(device=first.device, dtype=first.dtype)
        with torch.no_grad():
            for k, cell in enumerate(layer.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(module, f"{name}_l{k}"))
        return layer


class RNN(RecurrentLayer):
    """Stacked Elman RNN cells (``nonlinearity`` "tanh" or "relu"), like ``nn.RNN``."""

    kind = "rnn"


class LSTM(RecurrentLayer):
    """Stacked LSTM cells, like ``nn.LSTM``; the state is a pair ``(h, c)``."""

    kind = "lstm"


class GRU(RecurrentLayer):
    """Stacked GRU cells, like ``nn.GRU``."""

    kind = "gru"


LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def hidden_gradient_norms(cell: RNNCell, xs: torch.Tensor, h0: torch.Tensor | None = None):
    """How far back a gradient reaches: ``||dh_T / dh_t||`` for ``t = 0 .. T-1``.

    Runs ``cell`` over ``xs`` (B, T, I) from ``h_0`` (zeros by default), keeps every state, and
    backpropagates the sum of the final state ``h_T`` (an all-ones upstream gradient) to each
    earlier one. Returns a ``(T,)`` tensor, averaged over the batch: entry ``t`` is the norm at
    distance ``T - t`` steps. With ``h_t = tanh(W_hh h_{t-1} + ...)`` each step back multiplies
    the gradient by ``W_hh^T diag(1 - h_t^2)``. Where the tanh stays linear the norm shrinks or
    grows geometrically at a rate set by the spectral radius of ``W_hh``; where it saturates, the
    factors ``1 - h_t^2`` change the rate, which is why it is measured. The cell's own gradients
    are left untouched.
    """
    B, T, _ = xs.shape
    if T == 0:
        raise ValueError(f"hidden_gradient_norms needs at least one step, got xs of shape "
                         f"{tuple(xs.shape)}")
    if not xs.is_floating_point():
        raise TypeError(f"hidden_gradient_norms: x must be floating point, got {xs.dtype}; "
                        f"convert it, e.g. xs.to({cell.weight_ih.dtype})")
    h = h0 if h0 is not None else xs.new_zeros(B, cell.hidden_size)  # (B, H)
    h = h.detach().requires_grad_(True)
    states = []
    for t in range(T):
        states.append(h)  # h_t
        h = cell(xs[:, t], h)  # (B, H): h_{t+1}
    grads = torch.autograd.grad(h.sum(), states)  # T x (B, H)
    return torch.stack([g.norm(dim=1).mean() for g in grads])  # (T,)


def adding_problem(batch_size: int, length: int, generator: torch.Generator | None = None):
    """Hochreiter & Schmidhuber's (1997) adding problem: ``length`` steps of two numbers each, a
    value drawn from U(0, 1) and a marker that is 1 at two steps, one in each half. The target is
    the sum of the two marked values, read after the last step, so the network must carry the
    first one for up to ``length`` steps. Predicting the mean, 1, scores an MSE of 1/6.
    Returns inputs (B, T, 2) and targets (B,)."""
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    values = torch.rand(batch_size, length, generator=generator)  # (B, T)
    first = torch.randint(0, length // 2, (batch_size,), generator=generator)
    second = torch.randint(length // 2, length, (batch_size,), generator=generator)
    markers = torch.zeros(batch_size, length)
    rows = torch.arange(batch_size)
    markers[rows, first], markers[rows, second] = 1.0, 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(1)


def adding_curve(kind: str, length: int, seed: int, steps: int = 6000, lr: float = 3e-3,
                 every: int = 500, hidden: int = 32, batch_size: int = 64,
                 at: Sequence[int] | None = None, return_layer: bool = False):
    """Train torch's ``kind`` ("rnn", "lstm" or "gru") layer with a linear readout on the adding
    problem (Adam, gradients clipped at 1); every ``every`` steps (or at the steps listed in
    ``at``, e.g. log-spaced), its MSE on 1,000 validation sequences (fixed seed 998) and 1,000
    test sequences (seed 999), and always after the last step.
    Returns ``{"step": [...], "val": [...], "test": [...]}``, and the trained layer and its
    linear readout too, ``(curve, layer, head)``, when ``return_layer``."""
    if kind not in ("rnn", "lstm", "gru"):
        raise ValueError(f"kind must be 'rnn', 'lstm' or 'gru', got {kind!r}")
    if steps < 1 or every < 1:
        raise ValueError(f"steps and every must be positive, got {steps} and {every}")
    if at is not None and (not at or min(at) < 1 or max(at) > steps):
        raise ValueError(f"at must list steps between 1 and steps = {steps}, got {at}")
    record = set(at) if at is not None else set(range(every, steps + 1, every))
    torch.manual_seed(seed)
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](2, hidden, batch_first=True)
    head = nn.Linear(hidden, 1)
    params = [*layer.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)

    def predict(x):  # (B, T, 2) -> (B,): read out after the last step
        return head(layer(x)[0][:, -1]).squeeze(-1)

    held_out = {split: adding_problem(1000, length, torch.Generator().manual_seed(g))
                for split, g in (("val", 998), ("test", 999))}
    data = torch.Generator().manual_seed(1000 + seed)
    curve = {"step": [], "val": [], "test": []}
    for step in range(1, steps + 1):
        x, y = adding_problem(batch_size, length, data)
        loss = ((predict(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step in record or step == steps:
            curve["step"].append(step)
            with torch.no_grad():
                for split, (xh, yh) in held_out.items():
                    curve[split].append(((predict(xh) - yh) ** 2).mean().item())
    return (curve, layer, head) if return_layer else curve


def train_adding(kind: str, length: int, seed: int, steps: int = 1500, lr: float = 3e-3,
                 hidden: int = 32, batch_size: int = 64) -> float:
    """:func:`adding_curve`'s test MSE after ``steps`` steps."""
    return adding_curve(kind, length, seed, steps, lr, every=steps, hidden=hidden,
                        batch_size=batch_size)["test"][-1]