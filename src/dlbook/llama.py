"""Today's decoder block, from scratch: the Llama architecture (Touvron et al., 2023) that
SmolLM2, Mistral, Qwen and most open models of 2024-2026 share. It is chapter 14's GPT with
four pieces swapped:

    GPT-2 (2019)                          Llama-style (2023-)
    LayerNorm (mean, variance, bias)  ->  RMSNorm: x / rms(x) * g            (Zhang & Sennrich, 2019)
    learned position vectors, added   ->  rotary embeddings on q and k       (Su et al., 2021)
    MLP: W2 GELU(W1 x), 4C wide       ->  SwiGLU: W2 (SiLU(Wg x) * (Wu x))   (Shazeer, 2020)
    n_head keys and values            ->  grouped-query attention: n_kv_head (Ainslie et al., 2023)

and no biases anywhere. ``forward(idx, targets=None) -> (logits, loss)`` is the book's GPT's
interface, so ``dlbook.training.fit`` trains it. :func:`from_hf` builds it from a transformers
``LlamaForCausalLM`` (its config and its weights), which is how chapter 15 runs SmolLM2-135M on
this module's code; ``tests/test_llama.py`` checks every piece against transformers' own
(``LlamaRMSNorm``, the rotary embedding, ``LlamaMLP``, ``LlamaAttention``,
``LlamaDecoderLayer``, ``LlamaForCausalLM``) on outputs and gradients.

Shapes: B batch, T sequence, C = ``n_embd``, nh query heads, nkv key/value heads, hs = C / nh
the size of one head, H the SwiGLU width.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache, causal_mask, scaled_dot_product_attention
from .gpt import check_tokens


def swiglu_width(n_embd: int, multiple_of: int = 32) -> int:
    """Llama's SwiGLU width: ``8/3 * n_embd`` rounded up to a multiple of ``multiple_of``.

    SwiGLU has three ``C x H`` matrices where GPT's MLP has two ``C x 4C``: at H = 8C/3 both hold
    8C^2 weights (SmolLM2: C = 576, H = 1536 exactly).
    """
    return multiple_of * math.ceil(8 * n_embd / 3 / multiple_of)


@dataclass
class LlamaConfig:
    vocab_size: int = 65
    block_size: int = 64  # the longest context it reads (RoPE has no table; training sets it)
    n_layer: int = 4
    n_head: int = 4  # query heads
    n_kv_head: int = 2  # key/value heads, each shared by n_head / n_kv_head query heads
    n_embd: int = 128
    mlp_hidden: int | None = None  # SwiGLU width H; None: swiglu_width(n_embd)
    rope_base: float = 10000.0  # the slowest rotation turns once every 2*pi*base positions
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the head is the token embedding (as in the book's GPT)

    def __post_init__(self):
        if self.mlp_hidden is None:
            self.mlp_hidden = swiglu_width(self.n_embd) if _whole(self.n_embd) else None
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd",
                     "mlp_hidden"):
            if not _whole(getattr(self, name)):
                raise ValueError(f"LlamaConfig.{name} must be a positive whole number, "
                                 f"got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head "
                             f"({self.n_head})")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head "
                             f"({self.n_kv_head}): each key/value head serves an equal group "
                             "of query heads")
        if self.head_size % 2:
            raise ValueError(f"the head size n_embd / n_head = {self.head_size} must be even: "
                             "rotary embeddings rotate pairs of features")
        if not (isinstance(self.rope_base, (int, float)) and self.rope_base > 1):
            raise ValueError(f"rope_base must be a number > 1, got {self.rope_base!r}")
        if not (isinstance(self.norm_eps, (int, float)) and self.norm_eps > 0):
            raise ValueError(f"norm_eps must be a number > 0, got {self.norm_eps!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def tiny(cls, vocab_size: int = 65) -> LlamaConfig:
        """For tests: 2 layers, 4 query and 2 key/value heads, 32 wide, block 16."""
        return cls(vocab_size, block_size=16, n_layer=2, n_head=4, n_kv_head=2, n_embd=32)

    @classmethod
    def smollm2_135m(cls) -> LlamaConfig:
        """SmolLM2-135M's shapes (its config.json): 30 layers, 9 query and 3 key/value heads of
        64, 576 wide, SwiGLU 1536, 49,152 tokens, 8,192 positions, RoPE base 100,000."""
        return cls(49152, block_size=8192, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                   mlp_hidden=1536, rope_base=100000.0, norm_eps=1e-5)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * g``: LayerNorm without the mean and without the bias.

    LayerNorm centres each token's vector and scales it to unit variance; RMSNorm only scales
    it to unit root-mean-square. On a vector of mean zero the two agree; RMSNorm is cheaper
    (one reduction, not two) and trains as well (Zhang & Sennrich, 2019).
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # g, one gain per feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms_inv = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # (..., 1)
        return x * rms_inv * self.weight  # (..., C)


def rope_angles(positions: torch.Tensor, head_size: int, base: float = 10000.0):
    """``(cos, sin)``, each ``(T, hs)``, of the rotary angles ``p * base^(-2i/hs)``.

    Feature i of a head is paired with feature i + hs/2 (the "rotate half" layout of
    transformers' Llama checkpoints); pair i turns by the angle ``p * theta_i`` at position p,
    so the angle's table is laid out twice, once for each member of a pair.
    """
    if head_size % 2:
        raise ValueError(f"head_size must be even (features rotate in pairs), got {head_size}")
    theta = 1.0 / (base ** (torch.arange(0, head_size, 2, dtype=torch.float) / head_size))
    angles = positions.float()[:, None] * theta.to(positions.device)  # (T, hs/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair ``(x_i, x_{i+hs/2})`` of ``x (B, n, T, hs)`` by its position's angle:

        (a, b) -> (a cos - b sin, a sin + b cos)

    A query at position m and a key at position n, both rotated, have the dot product of the
    unrotated pair turned by (m - n): attention scores see only the relative position.
    """
    a, b = x.chunk(2, dim=-1)  # (B, n, T, hs/2) each
    rotated = torch.cat([-b, a], dim=-1)  # (B, n, T, hs): the pair turned by 90 degrees
    return x * cos + rotated * sin  # (B, n, T, hs)


class SwiGLU(nn.Module):
    """The gated MLP: ``down(SiLU(gate(x)) * up(x))``, SiLU(z) = z sigmoid(z).

    One branch decides how much of each hidden feature to let through (the gate), the other
    computes the feature (up); their product replaces GELU's fixed curve.
    """

    def __init__(self, n_embd: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=False)
        self.up_proj = nn.Linear(n_embd, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.gate_proj(x)) * self.up_proj(x)  # (B, T, H)
        return self.down_proj(h)  # (B, T, C)


class GroupedQueryAttention(nn.Module):
    """Causal attention with ``n_head`` query heads but only ``n_kv_head`` key/value heads.

    Each key/value head is shared by a group of ``n_head / n_kv_head`` query heads, so a KV
    cache holds ``n_kv_head`` heads instead of ``n_head``: n_kv_head = n_head is ordinary
    multi-head attention, n_kv_head = 1 multi-query attention (Shazeer, 2019). Queries and keys
    are rotated (:func:`apply_rope`) before the scores; values are not.
    """

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int):
        super().__init__()
        if n_embd % n_head or n_head % n_kv_head:
            raise ValueError(f"need n_embd ({n_embd}) a multiple of n_head ({n_head}) and "
                             f"n_head a multiple of n_kv_head ({n_kv_head})")
        self.n_head, self.n_kv_head, self.hs = n_head, n_kv_head, n_embd // n_head
        self.q_proj = nn.Linear(n_embd, n_head * self.hs, bias=False)
        self.k_proj = nn.Linear(n_embd, n_kv_head * self.hs, bias=False)
        self.v_proj = nn.Linear(n_embd, n_kv_head * self.hs, bias=False)
        self.o_proj = nn.Linear(n_head * self.hs, n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, C), cos and sin (T, hs) of the T tokens' positions -> (B, T, C)."""
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.hs).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask, causal = None, True
        if cache is not None:  # keys and values stored once per key/value head
            k, v = cache.append(k, v)  # (B, nkv, T_past + T, hs)
            mask, causal = causal_mask(k.shape[-2], x.device)[-T:], False  # (T, T_all)
        group = self.n_head // self.n_kv_head
        k = k.repeat_interleave(group, dim=1)  # (B, nh, T_all, hs): heads 0..g-1 share kv 0
        v = v.repeat_interleave(group, dim=1)
        y, _ = scaled_dot_product_attention(q, k, v, mask, causal)  # (B, nh, T, hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class LlamaBlock(nn.Module):
    """The pre-norm block of chapter 14 with today's parts:

        x = x + attention(RMSNorm(x), positions)      grouped-query, rotary
        x = x + SwiGLU(RMSNorm(x))
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.norm_1 = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = GroupedQueryAttention(config.n_embd, config.n_head, config.n_kv_head)
        self.norm_2 = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config.n_embd, config.mlp_hidden)

    def forward(self, x, cos, sin, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), cos, sin, cache)  # (B, T, C)
        return x + self.mlp(self.norm_2(x))  # (B, T, C)


class Llama(nn.Module):
    """A Llama-style decoder-only language model; see the module docstring.

    Token embedding, no position vectors (the positions enter as rotations inside attention),
    ``n_layer`` :class:`LlamaBlock`, a final RMSNorm and a head (tied to the embedding unless
    ``tie_embeddings=False``). Initialised as the book's GPT: N(0, 0.02) and the two layers
    that write into the residual stream scaled by 1 / sqrt(2 n_layer).
    """

    def __init__(self, config: LlamaConfig | None = None, **overrides):
        super().__init__()
        config = config or LlamaConfig()
        if overrides:
            config = LlamaConfig(**{**asdict(config), **overrides})
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.n_embd, config.norm_eps)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.tok_emb.weight  # one (V, C) matrix, two uses
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.o_proj.weight, 0.0, residual_std)
            nn.init.normal_(block.mlp.down_proj.weight, 0.0, residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each counted once; ``non_embedding``: without the token embedding (and
        without an untied head), Kaplan et al.'s N."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if self.head.weight is not self.tok_emb.weight:
                n -= self.head.weight.numel()
        return n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                caches: list[KVCache] | None = None):
        """``idx`` (B, T) token ids -> ``(logits (B, T, V), loss)``; loss is None without targets
        (a target of -1 is not scored). ``caches``: one :class:`KVCache` per layer; ``idx`` are
        then the tokens after those already cached, and their positions follow on."""
        past = check_tokens(idx, caches, len(self.blocks), self.config.block_size,
                            self.config.vocab_size)
        T = idx.shape[1]
        positions = torch.arange(past, past + T, device=idx.device)  # (T,)
        cos, sin = rope_angles(positions, self.config.head_size, self.config.rope_base)
        x = self.tok_emb(idx)  # (B, T, C): no position vector is added
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if caches is None else caches[i])  # (B, T, C)
        logits = self.head(self.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss


def kv_cache_bytes(config: LlamaConfig, n_tokens: int, bytes_per_value: int = 2,
                   n_kv_head: int | None = None) -> int:
    """What a KV cache of ``n_tokens`` takes: keys and values, ``n_kv_head`` heads of ``hs`` in
    each of ``n_layer`` layers, ``bytes_per_value`` each (2: bfloat16). ``n_kv_head``
    overrides the config's (``config.n_head`` gives multi-head attention's cache)."""
    n_kv = config.n_kv_head if n_kv_head is None else n_kv_head
    if not _whole(n_kv) or not _whole(bytes_per_value) or not isinstance(n_tokens, int) \
            or n_tokens < 0:
        raise ValueError("n_tokens >= 0, and n_kv_head and bytes_per_value >= 1, are whole "
                         "numbers")
    return 2 * config.n_layer * n_kv * config.head_size * n_tokens * bytes_per_value


# --- from transformers' LlamaForCausalLM -----------------------------------------------------

def config_from_hf(hf_config) -> LlamaConfig:
    """The :class:`LlamaConfig` of a transformers ``LlamaConfig``, refusing what this module
    does not implement (biases, another activation, scaled RoPE, a head size of its own)."""
    get = lambda name, default=None: getattr(hf_config, name, default)
    if get("model_type") != "llama":
        raise ValueError(f"config_from_hf reads a Llama config, got model_type "
                         f"{get('model_type')!r}")
    rope = get("rope_parameters") or {}  # transformers 5; 4.x has rope_theta, rope_scaling
    scaling = get("rope_scaling") or {}
    rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    problems = []
    if get("attention_bias") or get("mlp_bias"):
        problems.append("biases (attention_bias / mlp_bias)")
    if get("hidden_act", "silu") != "silu":
        problems.append(f"activation {get('hidden_act')!r} (SwiGLU uses silu)")
    if rope_type not in (None, "default"):
        problems.append(f"RoPE scaling {rope_type!r}")
    n_embd, n_head = get("hidden_size"), get("num_attention_heads")
    if get("head_dim") not in (None, n_embd // n_head):
        problems.append(f"head_dim {get('head_dim')} != hidden_size / num_attention_heads")
    if problems:
        raise ValueError("this Llama config uses what dlbook.llama does not implement: "
                         + "; ".join(problems))
    return LlamaConfig(
        vocab_size=get("vocab_size"), block_size=get("max_position_embeddings"),
        n_layer=get("num_hidden_layers"), n_head=n_head,
        n_kv_head=get("num_key_value_heads") or n_head, n_embd=n_embd,
        mlp_hidden=get("intermediate_size"),
        rope_base=float(rope.get("rope_theta", get("rope_theta", 10000.0))),
        norm_eps=float(get("rms_norm_eps")), tie_embeddings=bool(get("tie_word_embeddings")))


HF_NAMES = {  # transformers' name inside model.layers.{i}. -> ours inside blocks.{i}.
    "input_layernorm": "norm_1", "post_attention_layernorm": "norm_2",
    "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj",
    "self_attn.v_proj": "attn.v_proj", "self_attn.o_proj": "attn.o_proj",
    "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj",
    "mlp.down_proj": "mlp.down_proj"}


def our_name(hf_name: str) -> str:
    """The name in :class:`Llama` of the transformers LlamaForCausalLM weight ``hf_name``."""
    if hf_name == "model.embed_tokens.weight":
        return "tok_emb.weight"
    if hf_name == "model.norm.weight":
        return "norm_f.weight"
    if hf_name == "lm_head.weight":
        return "head.weight"
    parts = hf_name.split(".")  # model.layers.{i}.{module...}.weight
    if len(parts) >= 5 and parts[:2] == ["model", "layers"] and parts[-1] == "weight":
        inner = ".".join(parts[3:-1])
        if inner in HF_NAMES:
            return f"blocks.{parts[2]}.{HF_NAMES[inner]}.weight"
    raise ValueError(f"{hf_name!r} is not a weight of a transformers LlamaForCausalLM that "
                     "dlbook.llama knows")


def from_hf(hf_model, *, copy: bool = False) -> Llama:
    """This module's :class:`Llama` running a transformers ``LlamaForCausalLM``'s weights, in
    eval mode on the same device.

    The weights are shared with ``hf_model`` (no second copy of a 135 M-parameter model);
    ``copy=True`` gives the new model weights of its own (to train it apart).
    """
    if not hasattr(hf_model, "config") or not hasattr(hf_model, "state_dict"):
        raise TypeError(f"from_hf takes a transformers LlamaForCausalLM, got "
                        f"{type(hf_model).__name__}")
    config = config_from_hf(hf_model.config)
    state = {}
    for name, tensor in hf_model.state_dict().items():
        if name.endswith("rotary_emb.inv_freq"):  # transformers 4.x keeps it: we recompute it
            continue
        if name == "lm_head.weight" and config.tie_embeddings:
            continue  # the embedding, once more
        state[our_name(name)] = tensor.detach().clone() if copy else tensor.detach()
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        model = Llama(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    expected_missing = {"head.weight"} if config.tie_embeddings else set()
    if set(missing) != expected_missing or unexpected:
        raise ValueError(f"the weights do not fit a Llama of their config: missing "
                         f"{sorted(set(missing) - expected_missing)}, unexpected "
                         f"{sorted(unexpected)}")
    if config.tie_embeddings:
        model.head.weight = model.tok_emb.weight  # assign=True replaced the tied Parameter
    return model.eval()


# --- chapter 14's comparison: GPT-2's block against today's, at equal parameters -------------

BLOCK_SWEEP_FILE = "ch14_block_sweep.json"  # written by tools/llama_block_sweep.py
SWEEP_SHAPE = dict(block_size=32, n_layer=2, n_head=4, n_embd=96)  # the chapter's small GPT
SWEEP_KV_HEADS, SWEEP_MLP_HIDDEN = 2, 296  # 296: the Llama's parameters within 0.3% of GPT's


def comparison_models(vocab_size: int) -> dict:
    """The two contenders of chapter 14's comparison, as ``name -> factory()``: the book's GPT
    (LayerNorm, learned positions, GELU MLP, multi-head attention) and a Llama of the same
    depth, width and heads (RMSNorm, RoPE, SwiGLU, 2 key/value heads), its SwiGLU widened so
    that the two hold the same number of parameters (to 0.3%)."""
    from .gpt import GPT, GPTConfig

    return {
        "GPT-2 block": lambda: GPT(GPTConfig(vocab_size, **SWEEP_SHAPE)),
        "Llama block": lambda: Llama(LlamaConfig(vocab_size, **SWEEP_SHAPE,
                                                 n_kv_head=SWEEP_KV_HEADS,
                                                 mlp_hidden=SWEEP_MLP_HIDDEN)),
    }


def comparison_streams(max_eval_windows: int = 200):
    """*Moby-Dick*'s characters as chapter 14 splits them, its held-out tenth halved:
    ``(tokenizer, train, val, test)``; the first half of the tenth chooses, the second tests."""
    from .gpt import moby_dick_streams
    from .training import TokenStream

    tokenizer, train, held_out = moby_dick_streams(SWEEP_SHAPE["block_size"])
    half = len(held_out.tokens) // 2
    block = SWEEP_SHAPE["block_size"]
    return (tokenizer, train, TokenStream(held_out.tokens[:half], block, max_eval_windows),
            TokenStream(held_out.tokens[half:], block, max_eval_windows))


def load_block_sweep() -> dict:
    """``data/ch14_block_sweep.json`` (checked against its sha256)."""
    import json

    from .data import verified_path

    return json.loads(verified_path(BLOCK_SWEEP_FILE).read_text())
