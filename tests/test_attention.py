"""dlbook.attention agrees with F.scaled_dot_product_attention and nn.MultiheadAttention."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.attention import (DecoderBlock, DigitsLinear, DigitsMLP, EncoderDecoder, MultiHeadAttention,
                              Seq2SeqTransformer, Transformer, TransformerBlock,
                              TransformerConfig, TransformerEncoderDecoder, accuracy_by_length,
                              causal_mask, digit_reversal, exact_answer_accuracy, fit_curve, gelu,
                              layer_norm, reversal_lm_task, scaled_dot_product_attention,
                              sinusoidal_positions, sorting_lm_task)
from dlbook.training import TokenStream, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _qkv(seed=0, B=2, H=3, Tq=5, Tk=5, d=8, dv=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, Tq, d, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(B, H, Tk, d, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(B, H, Tk, dv, generator=g, dtype=torch.float64, requires_grad=True))


def _grads(out, tensors, seed=5):
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * w).sum(), tensors)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_torch_with_and_without_causal_mask(causal):
    q, k, v = _qkv()
    ours, weights = scaled_dot_product_attention(q, k, v, causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(ours, ref, atol=1e-10)
    for a, b in zip(_grads(ours, (q, k, v)), _grads(ref, (q, k, v))):
        assert torch.allclose(a, b, atol=1e-10)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    if causal:
        assert (weights.triu(1) == 0).all(), "no weight on the future"


def test_sdpa_matches_torch_with_a_boolean_mask_and_rectangular_shapes():
    q, k, v = _qkv(Tq=3, Tk=6)
    mask = torch.rand(3, 6, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[:, 0] = True  # every query may see at least one key
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert (weights[..., ~mask] == 0).all()
    ours_c, _ = scaled_dot_product_attention(q, k, v, causal=True)
    assert torch.allclose(ours_c, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                          atol=1e-10)
    with pytest.raises(ValueError, match="booleans"):
        scaled_dot_product_attention(q, k, v, mask=mask.float())
    with pytest.raises(ValueError, match="disagree"):
        scaled_dot_product_attention(q, k[..., :4], v)


def test_causal_mask():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.sum() == 10 and m[3].all() and m[0, 1:].sum() == 0


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_torch_with_shared_weights(causal):
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention.from_torch(reference).double()
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    torch_mask = nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64) \
        if causal else None
    ref_out, ref_w = reference(x, x, x, attn_mask=torch_mask, need_weights=True,
                               average_attn_weights=False)
    out, w = ours(x, causal=causal)
    assert out.shape == (3, 7, 16) and w.shape == (3, 4, 7, 7)
    assert torch.allclose(out, ref_out, atol=1e-10)
    assert torch.allclose(w, ref_w, atol=1e-10)
    g_ours = _grads(out, (x, *ours.parameters()))
    g_ref = _grads(ref_out, (x, reference.in_proj_weight, reference.in_proj_bias,
                             reference.out_proj.weight, reference.out_proj.bias))
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-9)


def test_cross_attention_matches_torch():
    torch.manual_seed(1)
    reference = nn.MultiheadAttention(8, 2, batch_first=True)
    ours = MultiHeadAttention.from_torch(reference)
    query, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    ref_out, ref_w = reference(query, memory, memory)  # weights averaged over heads
    out, w = ours(query, memory, memory)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(w.mean(1), ref_w, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of n_head"):
        MultiHeadAttention(10, 3)


def test_sinusoidal_positions():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16)
    assert torch.allclose(pe[0, 0::2], torch.zeros(8)) and torch.allclose(pe[0, 1::2], torch.ones(8))
    assert torch.allclose(pe[7, 2], torch.sin(torch.tensor(7 / 10000 ** (2 / 16))))
    # Shifting by k is one fixed rotation per pair: PE[p + k] = R_k PE[p] for every p.
    k, i = 3, 2
    angle = k * 10000 ** (-2 * i / 16)
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    rot = torch.tensor([[c, -s], [s, c]])
    pairs = pe[:, 2 * i:2 * i + 2]  # (50, 2) = (sin, cos)
    assert torch.allclose(pairs[k:], pairs[:-k] @ rot, atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(5, 7)


def test_transformer_block_is_causal_and_residual():
    torch.manual_seed(0)
    block = TransformerBlock(16, 2, causal=True)
    x = torch.randn(2, 6, 16)
    y, w = block(x, return_weights=True)
    assert y.shape == x.shape and w.shape == (2, 2, 6, 6)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 16)  # change the future: the past must not move
    assert torch.allclose(block(x2)[:, :4], y[:, :4], atol=1e-6)
    assert not torch.allclose(block(x2)[:, 4:], y[:, 4:])
    encoder = TransformerBlock(16, 2, causal=False)
    assert not torch.allclose(encoder(x2)[:, :4], encoder(x)[:, :4])


def test_transformer_language_model_learns_a_pattern():
    torch.manual_seed(0)
    config = TransformerConfig.tiny(vocab_size=4, block_size=8)
    model = Transformer(config)
    stream = TokenStream(torch.arange(400) % 4, 8)  # 0 1 2 3 0 1 2 3 ...
    hist = fit(model, stream, stream, steps=60, eval_every=30, lr=1e-2, progress=False)
    assert hist.val_loss[-1] < 0.05 and hist.val_metric[-1] == 1.0
    logits, loss, maps = model(torch.arange(8)[None] % 4, return_weights=True)
    assert loss is None and logits.shape == (1, 8, 4) and maps.shape == (1, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    sin = Transformer(TransformerConfig(vocab_size=4, block_size=8, positions="sinusoidal"))
    assert "pos_emb" in dict(sin.named_buffers())


def test_encoder_decoder_shapes_masking_and_learning():
    torch.manual_seed(0)
    for attention in (False, True):
        model = EncoderDecoder(vocab_size=6, hidden=16, attention=attention, out_len=5)
        src = torch.tensor([[0, 0, 3, 4, 5], [2, 3, 4, 5, 2]])  # left padded with 0
        tgt = torch.tensor([[5, 4, 3, -1, -1], [2, 5, 4, 3, 2]])
        logits, loss, weights = model(src, tgt, return_weights=True)
        assert logits.shape == (2, 5, 6) and loss.ndim == 0
        if attention:
            assert weights.shape == (2, 5, 5)
            assert (weights[0, :, :2] == 0).all(), "padding gets no attention"
        else:
            assert weights is None
    # With attention it learns to reverse short sequences quickly.
    g = torch.Generator().manual_seed(0)
    src = torch.randint(2, 6, (512, 4), generator=g)
    tgt = src.flip(1)
    model = EncoderDecoder(6, hidden=32, attention=True, out_len=4)
    fit(model, (src, tgt), steps=200, batch_size=64, lr=1e-2, progress=False)
    logits, _ = model(src[:100])
    assert (logits.argmax(-1) == tgt[:100]).float().mean() > 0.95


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_block_matches_torch_encoder_layer(causal):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=64, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True).double().eval()
    block = TransformerBlock.from_torch(layer, causal=causal).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64) if causal else None
    ref = layer(x, src_mask=mask, is_causal=causal)
    ours = block(x)
    assert torch.allclose(ours, ref, atol=1e-10)
    for a, b in zip(_grads(ours, (x,)), _grads(ref, (x,))):
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(TypeError, match="norm_first"):
        TransformerBlock.from_torch(nn.TransformerEncoderLayer(16, 4, batch_first=True))


def test_sdpa_rejects_a_mask_of_the_wrong_shape_naming_it():
    q, k, v = _qkv(B=2, H=3, Tq=4, Tk=5)
    with pytest.raises(ValueError, match="mask of shape"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask of shape"):  # would enlarge the output
        scaled_dot_product_attention(q, k, v, mask=torch.ones(7, 2, 3, 4, 5, dtype=torch.bool))
    out, _ = scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 1, 1, 5, dtype=torch.bool))
    assert out.shape == (2, 3, 4, 4)


def test_a_fully_masked_query_row_gives_zero_like_torch():
    q, k, v = _qkv(Tq=3, Tk=4)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may look at nothing
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=1e-10) and not ours.isnan().any()
    assert (ours[..., 1, :] == 0).all() and (weights[..., 1, :] == 0).all()
    grads = _grads(ours, (q, k, v))
    assert all(torch.isfinite(g).all() for g in grads)
    for a, b in zip(grads, _grads(ref, (q, k, v))):
        assert torch.allclose(a, b, atol=1e-10)


def test_multi_head_attention_from_torch_keeps_float64_and_checks_its_input():
    reference = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention.from_torch(reference)
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert torch.equal(ours.in_proj.weight, reference.in_proj_weight)
    assert torch.allclose(ours(x)[0], reference(x, x, x)[0], atol=1e-12)
    with pytest.raises(ValueError, match=r"query must be \(B, T, 16\).*x\[None\]"):
        ours(x[0])
    with pytest.raises(ValueError, match=r"query must be \(B, T, 16\)"):
        ours(torch.randn(2, 5, 12, dtype=torch.float64))
    with pytest.raises(ValueError, match="disagree"):
        ours(x, x[:1], x[:1])
    layer = nn.TransformerEncoderLayer(16, 4, 64, 0.0, "gelu", batch_first=True,
                                       norm_first=True).double()
    assert all(p.dtype == torch.float64 for p in TransformerBlock.from_torch(layer).parameters())


def test_layer_norm_and_gelu_match_torch_with_gradients():
    torch.manual_seed(0)
    reference = nn.LayerNorm(12).double()
    with torch.no_grad():
        reference.weight.normal_()
        reference.bias.normal_()
    x = (3 * torch.randn(4, 5, 12, dtype=torch.float64) + 2).requires_grad_()
    ours = layer_norm(x, reference.weight, reference.bias)
    ref = reference(x)
    assert torch.allclose(ours, ref, atol=1e-12)
    for a, b in zip(_grads(ours, (x, reference.weight, reference.bias)),
                    _grads(ref, (x, reference.weight, reference.bias))):
        assert torch.allclose(a, b, atol=1e-10)
    plain = layer_norm(x)
    assert torch.allclose(plain.mean(-1), torch.zeros(4, 5, dtype=torch.float64), atol=1e-12)
    z = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(gelu(z), F.gelu(z), atol=1e-12)
    assert torch.allclose(_grads(gelu(z), (z,))[0], _grads(F.gelu(z), (z,))[0], atol=1e-12)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_decoder_block_and_encoder_decoder_transformer_match_torch():
    torch.manual_seed(0)
    model = nn.Transformer(16, 4, num_encoder_layers=2, num_decoder_layers=2,
                           dim_feedforward=64, dropout=0.0, activation="gelu",
                           batch_first=True, norm_first=True).double().eval()
    ours = TransformerEncoderDecoder.from_torch(model)
    src = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[0, 5:] = False  # padding at the end of the first source
    causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    ref = model(src, tgt, tgt_mask=causal, tgt_is_causal=True, src_key_padding_mask=~keep,
                memory_key_padding_mask=~keep)
    out = ours(src, tgt, src_keep=keep)
    assert torch.allclose(out, ref, atol=1e-10)
    for a, b in zip(_grads(out, (src, tgt)), _grads(ref, (src, tgt))):
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(TypeError, match="norm_first"):
        DecoderBlock.from_torch(nn.TransformerDecoderLayer(16, 4, batch_first=True))


def test_digit_reversal_and_fit_curve():
    src, tgt, lengths = digit_reversal(50, seed=0)
    assert src.shape == tgt.shape == (50, 10) and lengths.min() >= 2
    n = int(lengths[0])
    assert (src[0, :10 - n] == 0).all() and torch.equal(tgt[0, :n], src[0, 10 - n:].flip(0))
    torch.manual_seed(0)
    model = EncoderDecoder(12, hidden=16, attention=True, out_len=10)
    curve = fit_curve(model, (src, tgt), steps=4, record_at=[2, 4], lr=1e-2,
                      evaluate=lambda m: accuracy_by_length(m, src, tgt, lengths))
    assert len(curve) == 2 and len(curve[0]) == int(lengths.max()) - 1
    with pytest.raises(ValueError, match="record_at"):
        fit_curve(model, (src, tgt), steps=4, record_at=[5], lr=1e-2, evaluate=len)


def test_from_torch_refuses_what_it_cannot_copy():
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(16, 4, add_bias_kv=True))
    with pytest.raises(ValueError, match="dropout 0.1"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(16, 4, dropout=0.1))
    relu = nn.TransformerEncoderLayer(16, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="activation"):
        TransformerBlock.from_torch(relu)
    drop = nn.TransformerEncoderLayer(16, 4, 64, dropout=0.1, activation="gelu",
                                      batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="dropout 0.1"):
        TransformerBlock.from_torch(drop)
    relu_dec = nn.TransformerDecoderLayer(16, 4, 64, dropout=0.0, batch_first=True,
                                          norm_first=True)
    with pytest.raises(ValueError, match="activation"):
        DecoderBlock.from_torch(relu_dec)
    model = nn.Transformer(16, 4, 1, 1, 64, dropout=0.0, batch_first=True, norm_first=True)
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderDecoder.from_torch(model)
    with pytest.raises(TypeError, match="nn.Transformer"):
        TransformerEncoderDecoder.from_torch(relu)


def test_digit_tasks_and_exact_answer_accuracy():
    idx, targets, digits = sorting_lm_task(20, seed=0)
    assert idx.shape == targets.shape == (20, 16) and (targets[:, :8] == -1).all()
    assert torch.equal(targets[:, 8:], digits.sort(1).values)
    assert torch.equal(idx[:, 9:], digits.sort(1).values[:, :7])  # the answer so far
    rev = reversal_lm_task(20, seed=0)
    assert torch.equal(rev[1][:, 8:], rev[2].flip(1))

    class Oracle(nn.Module):  # writes the right next token: accuracy 1; a shifted one: 0
        def __init__(self, answer, shift=0):
            super().__init__()
            self.w, self.answer, self.shift = nn.Parameter(torch.zeros(1)), answer, shift

        def forward(self, idx):
            t = idx.shape[1] - 9  # answer digits written so far
            nxt = (self.answer[:, t] + self.shift) % 10
            return F.one_hot(nxt, 11).float()[:, None].expand(-1, idx.shape[1], -1), None

    assert exact_answer_accuracy(Oracle(digits.sort(1).values), (idx, targets, digits)) == 1.0
    assert exact_answer_accuracy(Oracle(digits.sort(1).values, 1), (idx, targets, digits)) == 0


def test_digits_mlp_learns_reversal_and_checks_its_input():
    train, val = reversal_lm_task(4000, seed=0), reversal_lm_task(200, seed=1)
    torch.manual_seed(0)
    mlp = DigitsMLP(hidden=96)
    _, loss = mlp(val[0], val[1])
    assert loss.item() == pytest.approx(2.3, abs=0.3)  # untrained: near log 10
    fit(mlp, train[:2], steps=300, batch_size=64, lr=1e-2, metric=None, seed=0, device="cpu")
    assert exact_answer_accuracy(mlp, val) > 0.95
    with pytest.raises(ValueError, match="8 digits"):
        mlp(torch.full((2, 16), 10))


def test_digits_linear_is_one_map_that_reverses_at_once():
    linear = DigitsLinear()
    assert sum(p.numel() for p in linear.parameters()) == 80 * 80 + 80
    results = {}
    for name, task in [("reverse", reversal_lm_task), ("sort", sorting_lm_task)]:
        train, val = task(4000, seed=0), task(200, seed=1)
        torch.manual_seed(0)
        model = DigitsLinear()
        fit(model, train[:2], steps=300, batch_size=64, lr=1e-2, metric=None, seed=0,
            device="cpu")
        results[name] = exact_answer_accuracy(model, val)
    # a permutation is one linear map: reversal is learnt at once, sorting is not
    assert results["reverse"] == 1.0 and results["sort"] < 0.5, results
    with pytest.raises(ValueError, match="8 digits"):
        linear(torch.full((2, 16), 10))


def test_seq2seq_transformer_masks_padding_and_learns():
    src, tgt, lengths = digit_reversal(64, seed=0)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(12, n_embd=16, n_head=2, out_len=10).eval()
    logits, loss = model(src, tgt)
    assert logits.shape == (64, 10, 12) and loss.ndim == 0
    with torch.no_grad():  # what sits at a padded position cannot leak into the output
        before = model(src)[0]
        model.embed.weight[0] = 100.0  # the pad token's embedding
        assert (lengths < 10).any()
        assert torch.allclose(before, model(src)[0], atol=1e-5)
        model.embed.weight[5] = 100.0  # a digit's embedding: the output moves
        assert (before - model(src)[0]).abs().max() > 0.1
    with pytest.raises(ValueError, match="longer than out_len"):
        model(torch.zeros(2, 11, dtype=torch.long))
    model.train()
    fit_curve(model, (src, tgt), steps=60, record_at=[60], evaluate=lambda m: 0, lr=1e-2)
    assert model(src, tgt)[1].item() < loss.item()
