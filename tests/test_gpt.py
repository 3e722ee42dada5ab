"""dlbook.gpt: shapes, weight tying, GPT-2 initialisation, sampling filters, the KV cache,
parity with a GPT assembled from PyTorch's own transformer layers, and the checkpoint files."""
from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook import data
from dlbook.attention import GrowingKVCache, KVCache, TransformerBlock
from dlbook.data import DataIntegrityError
from dlbook.gpt import (CHECKPOINT, GPT, GPTConfig, filter_logits, load_checkpoint,
                        moby_dick_streams, next_token_probs, save_checkpoint)
from dlbook.language_models import CharTokenizer
from dlbook.training import TokenStream, evaluate, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V = 11


def tiny(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.tiny(V), **overrides)


def test_shapes_and_loss_at_init_is_log_vocab():
    model = tiny()
    idx = torch.randint(V, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, V) and loss is None
    logits, loss = model(idx, torch.randint(V, (3, 16)))
    assert loss.shape == ()
    # N(0, 0.02) weights give near-zero logits: the model starts at the uniform guess
    assert abs(loss.item() - math.log(V)) < 0.05
    assert logits.std().item() < 0.2


def test_ignored_targets_are_not_scored():
    model = tiny()
    idx, targets = torch.randint(V, (2, 8)), torch.randint(V, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -1
    logits, loss = model(idx, masked)
    expected = F.cross_entropy(logits[:, 4:].reshape(-1, V), targets[:, 4:].reshape(-1))
    assert torch.allclose(loss, expected)


def test_presets():
    for preset in (GPTConfig.tiny, GPTConfig.chapter, GPTConfig.checkpoint):
        config = preset(83)
        assert config.vocab_size == 83 and config.n_embd % config.n_head == 0
    assert GPT(GPTConfig.chapter(83)).num_params() > 10 * GPT(GPTConfig.tiny(83)).num_params()
    model = GPT(GPTConfig.tiny(V), n_layer=3)  # overrides on top of a preset
    assert model.config.n_layer == 3 and len(model.blocks) == 3


def test_weight_tying_is_one_tensor():
    model = tiny()
    assert model.head.weight is model.tok_emb.weight
    names = [name for name, _ in model.named_parameters()]
    assert "head.weight" not in names  # counted once
    C = model.config.n_embd
    untied = model.num_params() + V * C
    assert sum(p.numel() for p in model.state_dict().values()) == untied  # state_dict lists both
    assert model.num_params(non_embedding=True) == (
        model.num_params() - V * C - model.config.block_size * C)
    # a gradient step moves the embedding and the head together
    _, loss = model(torch.randint(V, (2, 8)), torch.randint(V, (2, 8)))
    loss.backward()
    with torch.no_grad():
        model.tok_emb.weight -= 0.1 * model.tok_emb.weight.grad
    assert torch.equal(model.head.weight, model.tok_emb.weight)


def test_gpt2_initialisation_statistics():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=83, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(config)
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("bias"):  # linear layers' and LayerNorms' biases
            assert torch.all(p == 0), name
        elif ".ln_" in name or name.startswith("ln_f"):
            assert torch.all(p == 1), name  # LayerNorm gains
        elif name.endswith(("attn.out_proj.weight", "mlp.2.weight")):
            assert abs(p.std().item() - residual) < 0.05 * residual, name
            assert abs(p.mean().item()) < 0.1 * residual, name
        else:  # embeddings, in_proj, the MLP's first layer
            assert abs(p.std().item() - 0.02) < 0.05 * 0.02, name
            assert abs(p.mean().item()) < 0.002, name


def _reference_gpt(model: GPT):
    """The same network from PyTorch's own layers: nn.TransformerEncoderLayer (pre-norm, GELU)
    with a causal mask, our embeddings, final LayerNorm and the tied head."""
    c = model.config
    torch.manual_seed(1)
    layers = nn.ModuleList(
        nn.TransformerEncoderLayer(c.n_embd, c.n_head, 4 * c.n_embd, dropout=0.0,
                                   activation="gelu", batch_first=True, norm_first=True)
        for _ in range(c.n_layer))
    with torch.no_grad():  # random, non-trivial LayerNorm and bias values everywhere
        for p in layers.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for ours, layer in zip(model.blocks, layers):
        ours.load_state_dict(TransformerBlock.from_torch(layer).state_dict())

    def forward(idx):
        T = idx.shape[1]
        x = model.tok_emb(idx) + model.pos_emb(torch.arange(T))  # (B, T, C)
        mask = nn.Transformer.generate_square_subsequent_mask(T)  # (T, T), -inf above
        for layer in layers:
            x = layer(x, src_mask=mask, is_causal=True)
        return model.ln_f(x) @ model.tok_emb.weight.T  # (B, T, V)

    return forward, layers


def test_matches_a_gpt_built_from_torch_layers():
    model = tiny()
    reference, layers = _reference_gpt(model)
    idx, targets = torch.randint(V, (3, 16)), torch.randint(V, (3, 16))
    logits, loss = model(idx, targets)
    ref_logits = reference(idx)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    loss.backward()
    ours = [{n: p.grad.clone() for n, p in block.named_parameters()} for block in model.blocks]
    emb_grad = model.tok_emb.weight.grad.clone()
    model.zero_grad()
    F.cross_entropy(ref_logits.reshape(-1, V), targets.reshape(-1)).backward()
    assert torch.allclose(emb_grad, model.tok_emb.weight.grad, atol=1e-5)  # embedding + head
    for grads, layer in zip(ours, layers):  # the blocks' gradients, parameter by parameter
        theirs = TransformerBlock.from_torch(_with_grads_as_weights(layer)).state_dict()
        for name, g in grads.items():
            assert torch.allclose(g, theirs[name], atol=1e-5), name


def _with_grads_as_weights(layer: nn.TransformerEncoderLayer) -> nn.TransformerEncoderLayer:
    """A copy of ``layer`` whose parameters are its gradients (to map them onto our names)."""
    import copy

    clone = copy.deepcopy(layer)
    with torch.no_grad():
        for p, q in zip(clone.parameters(), layer.parameters()):
            p.copy_(q.grad)
    return clone


def test_kv_cache_logits_equal_the_full_forward():
    model = tiny().eval()
    idx = torch.randint(V, (2, 16))
    full, _ = model(idx)
    caches = [KVCache() for _ in model.blocks]
    pieces = [model(idx[:, :5], caches=caches)[0]]  # a prompt of 5, then one token at a time
    for t in range(5, 16):
        pieces.append(model(idx[:, t:t + 1], caches=caches)[0])
    assert len(caches[0]) == 16
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(idx[:, :1], caches=caches)  # the cache is full
    with pytest.raises(ValueError, match="one KVCache per layer"):
        model(idx[:, :1], caches=[KVCache()])


@pytest.mark.parametrize("sampling", [dict(temperature=1.0), dict(temperature=0.8, top_k=4),
                                      dict(temperature=1.2, top_p=0.9), dict(temperature=0)])
def test_generate_gives_identical_tokens_with_and_without_cache(sampling):
    model = tiny()
    prompt = torch.randint(V, (2, 3))
    # 30 new tokens: past block_size (16), where the window slides and the cache is dropped
    outs = [model.generate(prompt, 30, use_cache=use, generator=torch.Generator().manual_seed(7),
                           **sampling) for use in (True, False)]
    assert outs[0].shape == (2, 33)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0][:, :3], prompt)
    assert model.training  # generate restores the mode it found


def test_growing_cache_holds_the_same_keys_and_logits_as_the_cache():
    model = tiny().eval()
    idx = torch.randint(V, (3, 16))
    plain, growing = ([cls() for _ in model.blocks] for cls in (KVCache, GrowingKVCache))
    for a, b in ((0, 5), *((t, t + 1) for t in range(5, 16))):  # a prompt, then one by one
        want, _ = model(idx[:, a:b], caches=plain)
        got, _ = model(idx[:, a:b], caches=growing)
        assert torch.equal(got, want)
    assert len(growing[0]) == 16 and torch.equal(growing[0].k, plain[0].k)
    assert torch.equal(growing[-1].v, plain[-1].v)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(idx[:, :1], caches=growing)  # the cache is full


@pytest.mark.parametrize("new", [5, 30])  # within the block, and past it (the window slides)
def test_generate_gives_identical_tokens_with_the_growing_cache(new):
    model = tiny()
    prompt = torch.randint(V, (4, 3))
    outs = [model.generate(prompt, new, generator=torch.Generator().manual_seed(3),
                           growing_cache=grow) for grow in (False, True)]
    assert torch.equal(outs[0], outs[1])


def test_generate_accepts_a_prompt_longer_than_the_block():
    model = tiny()
    out = model.generate(torch.randint(V, (1, 40)), 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 45)


def _direct_top_k(logits, k):
    keep = torch.zeros_like(logits, dtype=torch.bool)
    for row, top in zip(keep, logits.topk(k, dim=-1).indices):
        row[top] = True
    return keep


def _direct_top_p(logits, p):
    """The smallest set of most likely tokens whose probabilities reach p, row by row."""
    keep = torch.zeros_like(logits, dtype=torch.bool)
    for row, scores in zip(keep, logits):
        total = 0.0
        for i in scores.softmax(-1).argsort(descending=True).tolist():
            row[i] = True
            total += scores.softmax(-1)[i].item()
            if total >= p:
                break
    return keep


def test_filter_logits_against_a_direct_computation():
    torch.manual_seed(0)
    logits = 3 * torch.randn(6, 20)
    for k in (1, 3, 20, 50):
        kept = filter_logits(logits, top_k=k) > -math.inf
        assert torch.equal(kept, _direct_top_k(logits, min(k, 20))), k
    for p in (0.05, 0.5, 0.9, 0.999, 1.0):
        kept = filter_logits(logits, top_p=p) > -math.inf
        assert torch.equal(kept, _direct_top_p(logits, p)), p
    both = filter_logits(logits, top_k=3, top_p=0.9) > -math.inf
    assert torch.equal(both, _direct_top_k(logits, 3) & _direct_top_p(
        logits.masked_fill(~_direct_top_k(logits, 3), -math.inf), 0.9))
    kept = filter_logits(logits, top_k=5)
    assert torch.equal(kept[kept > -math.inf], logits[_direct_top_k(logits, 5)])  # unchanged
    probs = next_token_probs(logits, 0.7, top_k=5, top_p=0.8)
    assert torch.allclose(probs.sum(-1), torch.ones(6))
    assert torch.equal(probs > 0, filter_logits(logits / 0.7, 5, 0.8) > -math.inf)


def test_top_p_of_one_keeps_every_token_in_float32():
    # a float32 running sum of 400,000 probabilities reaches 1 before the last tokens are
    # counted: top_p=1 must still keep all of them (it is the unfiltered distribution)
    torch.manual_seed(0)
    logits = 4 * torch.randn(3, 400_000)
    assert (filter_logits(logits, top_p=1.0) > -math.inf).all()
    assert torch.equal(next_token_probs(logits, 1.0, top_p=1.0), logits.softmax(-1))
    kept = (filter_logits(logits, top_p=0.999999) > -math.inf).sum(-1)
    assert (kept > 100_000).all()  # the long tail still counts towards p


def test_filter_logits_never_returns_the_callers_tensor():
    logits = torch.randn(2, 7)
    for k, p in ((None, None), (None, 1.0), (7, None), (7, 1.0), (3, 0.9)):
        out = filter_logits(logits, top_k=k, top_p=p)
        assert out is not logits and out.data_ptr() != logits.data_ptr()
    out = filter_logits(logits, top_p=1.0)
    out[0, 0] = -math.inf  # editing the result leaves the logits alone
    assert torch.isfinite(logits).all()


def test_temperature_goes_to_greedy():
    torch.manual_seed(0)
    logits = torch.randn(4, 9)
    greedy = F.one_hot(logits.argmax(-1), 9).float()
    assert torch.allclose(next_token_probs(logits, 1e-3), greedy, atol=1e-6)
    assert torch.equal(next_token_probs(logits, 0), greedy)
    hot = next_token_probs(logits, 100.0)
    assert torch.allclose(hot, torch.full_like(hot, 1 / 9), atol=0.01)  # high T -> uniform
    model = tiny().eval()
    out = model.generate(torch.zeros(1, 1, dtype=torch.long), 10, temperature=0)
    idx = torch.zeros(1, 1, dtype=torch.long)
    for _ in range(10):  # greedy decoding by hand
        idx = torch.cat([idx, model(idx)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, idx)


def test_clear_errors_on_bad_input():
    model = tiny()
    with pytest.raises(ValueError, match="longer than block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.zeros(1, 4))  # floats
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        model(torch.full((1, 4), V))
    with pytest.raises(ValueError, match="no tokens"):
        model(torch.zeros(1, 0, dtype=torch.long))
    prompt = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="prompt"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 5)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="top_p"):
            model.generate(prompt, 5, top_p=bad)
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match="top_k"):
            model.generate(prompt, 5, top_k=bad)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            model.generate(prompt, 5, temperature=bad)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(prompt, -1)
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPT(GPTConfig.tiny(V), n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="n_layer must be a positive whole number"):
        GPTConfig(n_layer=0)


def test_fit_trains_it():
    model = tiny()
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 60)  # a periodic text
    stream = TokenStream(ids, 16)
    before, _ = evaluate(model, stream, metric=None)
    fit(model, stream, steps=40, batch_size=8, lr=1e-2, metric=None, progress=False,
        device="cpu")
    after, _ = evaluate(model, stream, metric=None)
    assert before > 2.0 and after < 0.5 * before


def test_moby_dick_split():
    tokenizer, train, val = moby_dick_streams(64)
    text = data.load_moby_dick()
    assert tokenizer.vocab_size == len(set(text))
    assert len(train) + len(val) == len(text)
    assert abs(len(val) / len(text) - 0.1) < 1e-3
    assert tokenizer.decode(val.tokens[:50]) == text[len(train):len(train) + 50]


def test_save_load_round_trip(tmp_path):
    model = tiny()
    tokenizer = CharTokenizer("abcdefghij")  # 10 letters and the boundary: V = 11
    path = tmp_path / "gpt.safetensors"
    save_checkpoint(model, tokenizer, path, steps=5, note="test")
    assert path.read_bytes()[8:9] == b"{"  # safetensors: a length, then a JSON header
    loaded, tok, meta = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    assert loaded.head.weight is loaded.tok_emb.weight  # still tied after loading
    assert tok.itos == tokenizer.itos and meta["steps"] == "5" and meta["note"] == "test"
    idx = torch.randint(V, (2, 16))
    assert torch.equal(loaded(idx)[0], model.eval()(idx)[0])


def test_damaged_checkpoint_files_give_clear_errors(tmp_path):
    model = tiny()
    path = tmp_path / "gpt.safetensors"
    save_checkpoint(model, CharTokenizer("abcdefghij"), path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataIntegrityError, match="not a readable dlbook GPT checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataIntegrityError, match="make checkpoints"):
        load_checkpoint(garbage)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))  # safetensors, but no config in it
    with pytest.raises(DataIntegrityError, match="not a readable"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_the_books_checkpoint_loads_and_is_checked(tmp_path, monkeypatch):
    if CHECKPOINT not in data.CHECKSUMS:
        pytest.skip("the checkpoint is not registered yet")
    model, tokenizer, meta = load_checkpoint()
    assert model.config == GPTConfig.checkpoint(tokenizer.vocab_size)
    assert float(meta["val_loss"]) <= 1.8
    _, _, val = moby_dick_streams(model.config.block_size, max_eval_windows=20)
    loss, _ = evaluate(model, val, metric=None)
    assert loss < 2.0  # 20 windows of the validation text, a quick look
    # a flipped bit in a copy is caught by its sha256 before anything is read
    raw = bytearray(data.verified_path(CHECKPOINT).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / CHECKPOINT).write_bytes(bytes(raw))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataIntegrityError, match="sha256"):
        load_checkpoint()
    shutil.rmtree(tmp_path)
