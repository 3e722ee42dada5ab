"""Parity of dlbook.conv with torch.nn.functional: outputs and gradients, on random settings."""
import random

import pytest
import torch
import torch.nn.functional as F

from dlbook import conv


def random_conv_case(rng: random.Random):
    """A random convolution problem that torch accepts: shapes, stride, padding, dilation, groups."""
    groups = rng.choice([1, 1, 2, 3])
    c_in = groups * rng.randint(1, 3)
    c_out = groups * rng.randint(1, 3)
    kh, kw = rng.randint(1, 4), rng.randint(1, 4)
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    padding = (rng.randint(0, 2), rng.randint(0, 2))
    dilation = (rng.randint(1, 3), rng.randint(1, 3))
    min_h = dilation[0] * (kh - 1) + 1 - 2 * padding[0]
    min_w = dilation[1] * (kw - 1) + 1 - 2 * padding[1]
    h = rng.randint(max(min_h, 1), max(min_h, 1) + 7)
    w = rng.randint(max(min_w, 1), max(min_w, 1) + 7)
    return dict(b=rng.randint(1, 3), c_in=c_in, c_out=c_out, h=h, w=w, kernel=(kh, kw),
                stride=stride, padding=padding, dilation=dilation, groups=groups)


def tensors(case, seed, bias=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(case["b"], case["c_in"], case["h"], case["w"], generator=gen,
                    dtype=torch.float64)
    weight = torch.randn(case["c_out"], case["c_in"] // case["groups"], *case["kernel"],
                         generator=gen, dtype=torch.float64)
    b = torch.randn(case["c_out"], generator=gen, dtype=torch.float64) if bias else None
    return x, weight, b


def grads_of(fn, *inputs):
    """Output of fn and the gradients of a random linear function of it w.r.t. each input."""
    inputs = [t.detach().clone().requires_grad_(True) if t is not None else None for t in inputs]
    out = fn(*inputs)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(99), dtype=out.dtype)
    (out * probe).sum().backward()
    return out.detach(), [t.grad if t is not None else None for t in inputs]


CASES = [random_conv_case(random.Random(seed)) for seed in range(40)]


@pytest.mark.parametrize("impl", [conv.conv2d_loops, conv.conv2d_unfold],
                         ids=["loops", "unfold"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"case{i}" for i in range(len(CASES))])
def test_conv2d_matches_torch_forward_and_backward(impl, index):
    case = CASES[index]
    x, weight, bias = tensors(case, seed=index, bias=index % 3 != 0)
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
              groups=case["groups"])
    ours, our_grads = grads_of(lambda a, w, b: impl(a, w, b, **kw), x, weight, bias)
    ref, ref_grads = grads_of(lambda a, w, b: F.conv2d(a, w, b, **kw), x, weight, bias)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-10)
    for g, r in zip(our_grads, ref_grads):
        if r is not None:
            assert torch.allclose(g, r, atol=1e-10)


def test_the_cases_cover_every_option():
    assert {c["groups"] for c in CASES} >= {1, 2, 3}
    assert any(max(c["stride"]) > 1 for c in CASES)
    assert any(max(c["padding"]) > 0 for c in CASES)
    assert any(max(c["dilation"]) > 1 for c in CASES)


@pytest.mark.parametrize("case", CASES[:20], ids=[f"case{i}" for i in range(20)])
def test_im2col_matches_unfold(case):
    x, _, _ = tensors(case, seed=3)
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    ours = conv.im2col(x, case["kernel"], **kw)
    assert torch.equal(ours, F.unfold(x, case["kernel"], **kw))


def test_float32_and_depthwise_conv():
    x = torch.randn(2, 4, 11, 13)
    w = torch.randn(4, 1, 3, 3)
    ref = F.conv2d(x, w, padding=1, groups=4)
    assert torch.allclose(conv.conv2d_unfold(x, w, padding=1, groups=4), ref, atol=1e-5)
    assert torch.allclose(conv.conv2d_loops(x, w, padding=1, groups=4), ref, atol=1e-5)


def random_pool_case(rng: random.Random):
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride = rng.choice([None, (rng.randint(1, 3), rng.randint(1, 3))])
    padding = (rng.randint(0, kernel[0] // 2), rng.randint(0, kernel[1] // 2))
    dilation = (rng.randint(1, 2), rng.randint(1, 2))
    h = rng.randint(dilation[0] * (kernel[0] - 1) + 1, 10)
    w = rng.randint(dilation[1] * (kernel[1] - 1) + 1, 10)
    return dict(shape=(rng.randint(1, 3), rng.randint(1, 3), h, w), kernel=kernel, stride=stride,
                padding=padding, dilation=dilation)


POOL_CASES = [random_pool_case(random.Random(100 + seed)) for seed in range(30)]


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"case{i}" for i in range(len(POOL_CASES))])
def test_max_pool_matches_torch(case):
    x = torch.randn(case["shape"], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    ours, (g,) = grads_of(lambda a: conv.max_pool2d(a, case["kernel"], **kw), x)
    ref, (r,) = grads_of(lambda a: F.max_pool2d(a, case["kernel"], **kw), x)
    assert torch.allclose(ours, ref) and torch.allclose(g, r)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"case{i}" for i in range(len(POOL_CASES))])
def test_avg_pool_matches_torch(case, count_include_pad):
    x = torch.randn(case["shape"], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kw = dict(stride=case["stride"], padding=case["padding"], count_include_pad=count_include_pad)
    ours, (g,) = grads_of(lambda a: conv.avg_pool2d(a, case["kernel"], **kw), x)
    ref, (r,) = grads_of(lambda a: F.avg_pool2d(a, case["kernel"], **kw), x)
    assert torch.allclose(ours, ref) and torch.allclose(g, r)


@pytest.mark.parametrize("seed", range(60))
def test_output_size_formula_matches_torch_shapes(seed):
    rng = random.Random(1000 + seed)
    k, s, p, d = rng.randint(1, 5), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3)
    n = rng.randint(max(1, d * (k - 1) + 1 - 2 * p), 30)
    out = F.conv2d(torch.zeros(1, 1, n, 3), torch.zeros(1, 1, k, 1), stride=(s, 1),
                   padding=(p, 0), dilation=(d, 1))
    assert conv.conv_output_size(n, k, s, p, d) == out.shape[2]
    if p <= k // 2:
        pooled = F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, d)
        assert conv.conv_output_size(n, k, s, p, d) == pooled.shape[2]


def test_output_size_rejects_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        conv.conv_output_size(4, 3, dilation=2)
    with pytest.raises(ValueError, match="stride"):
        conv.conv_output_size(10, 3, stride=0)
    with pytest.raises(RuntimeError):  # torch agrees that it does not fit
        F.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), dilation=2)


def test_receptive_field_matches_the_gradient_support():
    torch.manual_seed(0)
    layers = [(3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1)]  # (kernel, stride, dilation)
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    h = x
    for k, s, d in layers:
        h = F.conv2d(h, torch.ones(1, 1, k, k), stride=s, dilation=d)
    h[0, 0, h.shape[2] // 2, h.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    support = (rows.max() - rows.min() + 1).item()
    assert conv.receptive_field(*zip(*layers)) == support
    assert conv.receptive_field([3, 3]) == 5 and conv.receptive_field([3, 3, 3]) == 7


def test_bad_input_is_refused_up_front():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="batch of images"):
        conv.conv2d_unfold(x[0], torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv.conv2d_loops(x, torch.randn(3, 4, 3, 3), groups=3)
    with pytest.raises(ValueError, match="input channels"):
        conv.conv2d_unfold(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="bias"):
        conv.conv2d_unfold(x, torch.randn(2, 4, 3, 3), torch.randn(3))
    with pytest.raises(ValueError, match="at most half"):
        conv.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d_loops(x, torch.randn(2, 4, 3, 3), padding=-1)


@pytest.mark.parametrize("impl", [conv.conv2d_loops, conv.conv2d_unfold],
                         ids=["loops", "unfold"])
@pytest.mark.parametrize("groups", [1, 2])
def test_an_empty_batch_gives_an_empty_batch_like_torch(impl, groups):
    x, weight = torch.zeros(0, 4, 8, 8), torch.randn(6, 4 // groups, 3, 3)
    ours = impl(x, weight, torch.randn(6), stride=2, padding=1, groups=groups)
    assert ours.shape == F.conv2d(x, weight, stride=2, padding=1, groups=groups).shape
    assert ours.shape == (0, 6, 4, 4)


# the backward pass has no groups: one case per forward case, groups folded away
GRAD_CASES = [{**c, "groups": 1} for c in CASES]


@pytest.mark.parametrize("index", range(len(GRAD_CASES)),
                         ids=[f"case{i}" for i in range(len(GRAD_CASES))])
def test_the_backward_pass_is_a_convolution(index):
    case = GRAD_CASES[index]
    x, weight, _ = tensors(case, seed=index, bias=False)
    options = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    x.requires_grad_(True)
    weight.requires_grad_(True)
    out = F.conv2d(x, weight, **options)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(index),
                           dtype=out.dtype)
    dx, dw = torch.autograd.grad(out, (x, weight), grad_out)
    ours_dx = conv.conv2d_input_grad(grad_out, weight.detach(), x.shape[2:], **options)
    ours_dw = conv.conv2d_weight_grad(x.detach(), grad_out, weight.shape[2:], **options)
    assert torch.allclose(ours_dx, dx) and torch.allclose(ours_dw, dw)


def test_the_backward_cases_cover_stride_padding_and_dilation():
    assert any(c["padding"][0] > c["dilation"][0] * (c["kernel"][0] - 1) for c in GRAD_CASES)
    assert any(max(c["stride"]) > 1 for c in GRAD_CASES)
    assert any(max(c["dilation"]) > 1 for c in GRAD_CASES)


def test_the_backward_pass_refuses_mismatched_channels():
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d_input_grad(torch.randn(1, 3, 4, 4), torch.randn(2, 1, 3, 3), (6, 6))


def test_the_backward_pass_refuses_an_input_size_the_output_did_not_come_from():
    grad_out, weight = torch.randn(1, 4, 6, 6), torch.randn(4, 3, 3, 3)
    assert conv.conv2d_input_grad(grad_out, weight, (8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="not grad_out's"):
        conv.conv2d_input_grad(grad_out, weight, (20, 20))
    # a stride that does not fit: 9 and 10 pixels both give 4 outputs at stride 2
    for size in (9, 10):
        assert conv.conv2d_input_grad(torch.randn(1, 4, 4, 4), weight, (size, size),
                                      stride=2).shape == (1, 3, size, size)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_average_pooling_of_an_empty_batch_is_an_empty_batch_like_torch(count_include_pad):
    x = torch.zeros(0, 3, 7, 7)
    ours = conv.avg_pool2d(x, 3, 2, 1, count_include_pad=count_include_pad)
    theirs = F.avg_pool2d(x, 3, 2, 1, count_include_pad=count_include_pad)
    assert ours.shape == theirs.shape == (0, 3, 4, 4)
