"""dlbook.lora: LoRA from its equations, checked against the base model and itself merged."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dlbook.lora import (
    LoRAConfig,
    LoRALinear,
    add_lora,
    count_parameters,
    lora_layers,
    lora_parameter_count,
    merge_lora,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 16)
        self.attn = nn.Linear(16, 24)
        self.mlp = nn.Sequential(nn.Linear(24, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 11, bias=False)

    def forward(self, idx):  # (B, T) -> (B, T, 11)
        return self.head(self.mlp(self.attn(self.emb(idx))))


def _model(seed=0):
    torch.manual_seed(seed)
    return Tiny()


IDX = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(1))


def _train_a_little(model, steps=5):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        loss = model(IDX).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_starts_equal_to_the_base():
    base = _model()
    adapted = add_lora(copy.deepcopy(base), rank=4, alpha=8)
    assert torch.equal(adapted(IDX), base(IDX))
    for _, layer in lora_layers(adapted):
        assert torch.count_nonzero(layer.B) == 0 and torch.count_nonzero(layer.A) > 0


def test_forward_is_the_equation():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), rank=2, alpha=3.0)
    nn.init.normal_(layer.B)
    x = torch.randn(4, 6)
    W, b = layer.base.weight, layer.base.bias
    expected = x @ W.T + b + (3.0 / 2) * x @ (layer.B @ layer.A).T
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_merged_weights_give_the_same_logits():
    adapted = add_lora(_model(), rank=4, alpha=8, targets=("attn", "mlp"))
    _train_a_little(adapted)
    before = adapted(IDX).detach()
    assert not torch.allclose(before, _model()(IDX)), "training moved the adapter"
    merged = merge_lora(copy.deepcopy(adapted))
    assert not lora_layers(merged)
    assert all(type(m) is nn.Linear for m in merged.modules() if isinstance(m, nn.Linear))
    assert torch.allclose(merged(IDX), before, atol=1e-5)


def test_only_adapter_parameters_get_gradients():
    adapted = add_lora(_model(), rank=2, alpha=4, targets=("attn", "mlp.2"))
    adapted(IDX).logsumexp(-1).mean().backward()
    for name, p in adapted.named_parameters():
        is_adapter = name.endswith((".A", ".B"))
        assert p.requires_grad == is_adapter, name
        assert (p.grad is not None) == is_adapter, name
    # B starts at zero, so A's first gradient is zero and B's is not
    layer = adapted.attn
    assert torch.count_nonzero(layer.B.grad) > 0


def test_parameter_counts_by_formula():
    base = _model()
    total = sum(p.numel() for p in base.parameters())
    adapted = add_lora(base, rank=3, alpha=6, targets=("attn", "mlp"))
    expected = lora_parameter_count([(16, 24), (24, 32), (32, 16)], rank=3)
    assert expected == 3 * (16 + 24) + 3 * (24 + 32) + 3 * (32 + 16)
    count = count_parameters(adapted)
    assert count.trainable == expected
    assert count.total == total + expected
    assert 0 < count.fraction < 1
    # every Linear layer when targets is None
    everything = add_lora(_model(), rank=1, alpha=1)
    assert count_parameters(everything).trainable == lora_parameter_count(
        [(16, 24), (24, 32), (32, 16), (16, 11)], rank=1)


def test_bad_rank_alpha_and_no_matching_layer_fail_clearly():
    for rank in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rank must be a positive integer"):
            add_lora(_model(), rank=rank, alpha=1)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        add_lora(_model(), rank=2, alpha=0)
    with pytest.raises(ValueError, match="alpha must be a positive"):
        LoRAConfig(rank=2, alpha=-1)
    with pytest.raises(ValueError, match="not low-rank"):
        LoRALinear(nn.Linear(4, 3), rank=4)
    with pytest.raises(ValueError, match=r"no nn.Linear layer .* matches targets=\('qkv',\)"):
        add_lora(_model(), targets="qkv")
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError, match="no LoRA layers"):
        merge_lora(_model())


def test_agrees_with_peft():  # peft (a test dependency): the library the chapter names
    import peft

    base = _model()
    ours = add_lora(copy.deepcopy(base), rank=4, alpha=8, targets=("attn",))
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["attn"], lora_dropout=0.0))
    with torch.no_grad():
        theirs.base_model.model.attn.lora_A["default"].weight.copy_(ours.attn.A)
        nn.init.normal_(ours.attn.B)
        theirs.base_model.model.attn.lora_B["default"].weight.copy_(ours.attn.B)
    assert torch.allclose(ours(IDX), theirs(IDX), atol=1e-5)


def test_a_gpt_whose_attention_reads_in_proj_weight_is_adapted_and_merges():
    # dlbook.attention splits in_proj.weight into W_q, W_k, W_v instead of calling the layer:
    # the adapter must show through .weight, and its gradient reach A and B.
    from dlbook.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt = GPT(GPTConfig.tiny())
    idx = torch.randint(0, 65, (3, 16))
    adapted = add_lora(copy.deepcopy(gpt), rank=2, alpha=4.0,
                       targets=("in_proj", "out_proj", "mlp"))
    assert len(lora_layers(adapted)) == 4 * len(gpt.blocks)
    assert torch.allclose(adapted(idx)[0], gpt(idx)[0], atol=1e-6)  # B = 0
    _, loss = adapted(idx, idx)
    loss.backward()
    qkv = adapted.blocks[0].attn.in_proj
    assert qkv.B.grad is not None and qkv.B.grad.abs().sum() > 0
    assert qkv.base.weight.grad is None
    with torch.no_grad():
        for _, layer in lora_layers(adapted):
            layer.B.normal_(0, 0.1)
    z = adapted(idx)[0]
    assert not torch.allclose(z, gpt(idx)[0], atol=1e-3)  # the in_proj adapters act
    merged = merge_lora(copy.deepcopy(adapted))
    assert torch.allclose(merged(idx)[0], z, atol=1e-5)
