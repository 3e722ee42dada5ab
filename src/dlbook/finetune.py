"""Supervised fine-tuning (SFT) of a language model on prompt -> answer pairs, from its equations.

A pretrained language model is trained further on examples of the behaviour we want: a prompt
and the answer to it, written one after the other as one sequence. The loss is the usual
next-token cross-entropy, but only over the answer's tokens:

    L = - (1 / |A|) sum_{t in A} log p(x_{t+1} | x_{<=t})      A: positions whose next token
                                                                  belongs to the answer

The prompt's tokens are inputs, never targets ("prompt masking"): the model learns to answer,
not to write prompts. Targets of -1 are skipped by every language model of the book (their
``forward(idx, targets)`` uses ``ignore_index=-1``), so masking is just a -1 in ``targets``.

    >>> pairs = upper_pairs(["whale", "sea"])         # ("Upper: whale\\n", "WHALE\\n"), ...
    >>> x, y = sft_batch(pairs, tokenizer)            # (B, T) inputs, targets -1 off the answer
    >>> model, history = train_sft(gpt, pairs, tokenizer, steps=200, lr=1e-3)
    >>> exact_match(model, val_pairs, tokenizer)      # (N,) bool: greedy answer == answer

Does the model read its instruction? :func:`instruction_pairs` puts every word under several
instructions (``Upper``, ``Reverse``, ``First``), and :func:`instruction_confusion` says whose
answer each prompt gets.

The module also holds chapter 18's LoRA experiment on names (:func:`names_streams`,
:func:`fine_tune_names`, :func:`names_curve`, :func:`bigram_baseline`, the count tables
:func:`ngram_nll` and :func:`context_seen`) and its second SFT task,
one that needs what pretraining stored (:func:`next_word_pairs`: the word that follows a passage
of the book), shared by the chapter and ``tools/ch18_finetune_sweep.py``.
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

IGNORE = -1  # a target the loss skips
PROMPT = "Upper: {}\n"  # the instruction format of chapter 18's task


# ----------------------------------------------------------------------------- the task
def task_words(text: str, min_len: int = 3, max_len: int = 8, n_val: int = 300,
               n_test: int = 300, seed: int = 0) -> dict[str, list[str]]:
    """The distinct lower-case words of ``text`` with ``min_len`` to ``max_len`` letters,
    shuffled (seeded) and cut into ``train``, ``val`` and ``test``: no word is in two splits,
    so validation and test prompts are words the fine-tuning never saw."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    words = sorted({w for w in re.findall(r"[a-z]+", text) if min_len <= len(w) <= max_len})
    if len(words) < n_val + n_test + 1:
        raise ValueError(f"only {len(words)} words of {min_len}-{max_len} letters: too few "
                         f"for {n_val} validation and {n_test} test words plus training")
    random.Random(seed).shuffle(words)
    return {"train": words[n_val + n_test:], "val": words[:n_val],
            "test": words[n_val:n_val + n_test]}


def upper_pairs(words) -> list[tuple[str, str]]:
    """The task as (prompt, answer) pairs: ``("Upper: whale\\n", "WHALE\\n")``. The answer ends
    with a newline, so a model that learned the task also says when it is done."""
    words = list(words)
    bad = [w for w in words if not w or not w.isalpha() or not w.islower()]
    if bad:
        raise ValueError(f"words must be non-empty lower-case letters, got {bad[:5]}")
    return [(PROMPT.format(w), w.upper() + "\n") for w in words]


INSTRUCTIONS = {"Upper": str.upper,  # whale -> WHALE
                "Reverse": lambda w: w[::-1],  # whale -> elahw
                "First": lambda w: w[0]}  # whale -> w


def instruction_pairs(words, instructions=tuple(INSTRUCTIONS)) -> list[tuple[str, str]]:
    """Every word under every instruction of ``instructions`` (names of :data:`INSTRUCTIONS`):
    ``("Reverse: whale\\n", "elahw\\n")``. Words of three letters or more give a different
    answer for each instruction, so only a model that reads the instruction can answer all."""
    words = list(words)
    unknown = [i for i in instructions if i not in INSTRUCTIONS]
    if unknown or not instructions:
        raise ValueError(f"instructions must be names of {sorted(INSTRUCTIONS)}, got "
                         f"{list(instructions)}")
    bad = [w for w in words if not w or not w.isalpha() or not w.islower()]
    if bad:
        raise ValueError(f"words must be non-empty lower-case letters, got {bad[:5]}")
    return [(f"{i}: {w}\n", INSTRUCTIONS[i](w) + "\n") for w in words for i in instructions]


def instruction_confusion(model: nn.Module, words, tokenizer,
                          instructions=tuple(INSTRUCTIONS)) -> dict[str, dict[str, float]]:
    """Which instruction the model carries out. For each instruction A (a row) and each
    instruction B: the share of ``words`` whose prompt "A: word" gets exactly B's answer by
    greedy decoding (the diagonal is A's exact match), and under ``"other"`` the share that
    gets none of them. Greedy decoding writes one answer, so each row sums to 1."""
    words = list(words)
    if not words:
        raise ValueError("need at least one word")
    out = {}
    for a in instructions:
        row, hit_any = {}, torch.zeros(len(words), dtype=torch.bool)
        for b in instructions:
            hit = exact_match(model, [(f"{a}: {w}\n", INSTRUCTIONS[b](w) + "\n")
                                      for w in words], tokenizer)
            row[b], hit_any = hit.float().mean().item(), hit_any | hit
        row["other"] = 1.0 - hit_any.float().mean().item()
        out[a] = row
    return out


# ----------------------------------------------------------------------------- batches
def _check_pairs(pairs) -> list[tuple[str, str]]:
    pairs = list(pairs)
    if not pairs:
        raise ValueError("need at least one (prompt, answer) pair")
    for p in pairs:
        if not (isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) for s in p)):
            raise ValueError(f"each example is a (prompt, answer) pair of strings, got {p!r}")
        if not p[0] or not p[1]:
            raise ValueError(f"prompt and answer must both be non-empty, got {p!r}")
    return pairs


def _check_fits(T: int, block_size: int | None) -> int:
    """``T`` positions, checked against the model's context (``None``: no limit)."""
    if block_size is not None and T > block_size:
        raise ValueError(f"the longest example needs {T} positions, more than the model's "
                         f"block_size {block_size}: shorten the prompts or answers")
    return T


def sft_batch(pairs, tokenizer, mask_prompt: bool = True, block_size: int | None = None,
              pad_id: int = 0):
    """Pairs -> ``(x, y)``, both (B, T) with T the longest ``len(prompt + answer) - 1``.

    Row i reads ``prompt + answer`` shifted by one: ``x`` holds its tokens but the last, ``y``
    the next token at each position. Positions past the example (padding, ``pad_id`` in ``x``)
    get target -1, and so do the prompt's positions when ``mask_prompt``: then only the
    answer's tokens are scored. Without masking the prompt's own tokens (after its first) are
    targets too, as in pretraining.
    """
    pairs = _check_pairs(pairs)
    ids = [(tokenizer.encode(p), tokenizer.encode(a)) for p, a in pairs]
    T = _check_fits(max(len(p) + len(a) for p, a in ids) - 1, block_size)
    x = torch.full((len(ids), T), pad_id, dtype=torch.long)  # (B, T)
    y = torch.full((len(ids), T), IGNORE, dtype=torch.long)  # (B, T)
    for i, (p, a) in enumerate(ids):
        seq = torch.tensor(p + a)
        n = len(seq) - 1
        x[i, :n], y[i, :n] = seq[:-1], seq[1:]  # the inputs; the next tokens
        if mask_prompt:
            y[i, :len(p) - 1] = IGNORE  # the targets that are prompt tokens
    return x, y


def answer_mask(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which positions a masked batch scores: (B, T) bool, True where ``y`` is not -1."""
    return y != IGNORE


# ----------------------------------------------------------------------------- measuring
@torch.no_grad()
def exact_match(model: nn.Module, pairs, tokenizer, batch_size: int = 256) -> torch.Tensor:
    """(N,) bool: does greedy decoding after each prompt write exactly its answer?

    One teacher-forced pass suffices: greedy decoding writes the answer exactly if and only if,
    fed the prompt and the answer's first k tokens, the model's most likely next token is the
    answer's token k + 1, for every k (by induction over k). The answer's final newline is
    included, so an answer followed by more letters does not count.
    """
    pairs = _check_pairs(pairs)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        x, y = sft_batch(pairs[start:start + batch_size], tokenizer, mask_prompt=True)
        x, y = x.to(device), y.to(device)
        logits, _ = model(x)  # (B, T, V)
        ok = (logits.argmax(-1) == y) | (y == IGNORE)  # (B, T)
        out.append(ok.all(1).cpu())
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def greedy_answer(model: nn.Module, prompt: str, tokenizer, max_new_tokens: int = 12,
                  stop: str = "\n") -> str:
    """What the model writes after ``prompt`` by greedy decoding, up to ``stop`` (kept out) or
    ``max_new_tokens`` tokens."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(prompt)], device=device)  # (1, T)
    out = ""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])  # (1, T, V)
        nxt = logits[0, -1].argmax().item()
        ch = tokenizer.decode([nxt])
        if ch == stop:
            break
        out += ch
        idx = torch.cat([idx, torch.tensor([[nxt]], device=device)], dim=1)
    model.train(was_training)
    return out


# ----------------------------------------------------------------------------- training
@dataclass
class SFTHistory:
    steps: list[int] = field(default_factory=list)  # when the validation was measured
    val_exact: list[float] = field(default_factory=list)  # exact-match rate then
    loss: list[float] = field(default_factory=list)  # the training loss of every step
    snapshots: dict = field(default_factory=dict)  # step -> {prompt: greedy answer}


def train_sft(base: nn.Module, pairs, tokenizer, *, steps: int, lr: float,
              batch_size: int = 16, seed: int = 0, mask_prompt: bool = True,
              val_pairs=None, eval_every: int = 20, show_prompts=(), lm_stream=None,
              lm_weight: float = 1.0, lm_batch_size: int | None = None, device=None):
    """Fine-tune a copy of ``base`` (never ``base`` itself) on ``pairs`` with AdamW for
    ``steps`` steps of ``batch_size`` pairs drawn at random (seeded). Every ``eval_every``
    steps (and at step 0) records the exact-match rate on ``val_pairs`` and the greedy answers
    to ``show_prompts``. Returns ``(model, SFTHistory)``; the model is left in eval mode.

    With ``lm_stream`` (a :class:`~dlbook.training.TokenStream` of pretraining text) every step
    also draws ``lm_batch_size`` windows of it (default ``batch_size``) and minimises
    ``L_SFT + lm_weight * L_LM``: the
    pretraining loss mixed into fine-tuning, against catastrophic forgetting (InstructGPT's
    "ptx" term)."""
    pairs = _check_pairs(pairs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if batch_size < 1 or eval_every < 1:
        raise ValueError("batch_size and eval_every must be positive")
    if lm_stream is not None and not lm_weight >= 0:
        raise ValueError(f"lm_weight must be non-negative, got {lm_weight!r}")
    device = device if device is not None else next(base.parameters()).device
    model = copy.deepcopy(base).to(device)
    block = getattr(getattr(model, "config", None), "block_size", None)
    sft_batch(pairs, tokenizer, mask_prompt, block_size=block)  # fail early if too long
    torch.manual_seed(seed)
    rng = random.Random(seed)
    lm_gen = torch.Generator().manual_seed(seed)  # the pretraining windows' offsets
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    history = SFTHistory()

    def record(step):
        if val_pairs is not None:
            history.steps.append(step)
            history.val_exact.append(exact_match(model, val_pairs, tokenizer).float().mean().item())
        if show_prompts:
            history.snapshots[step] = {p: greedy_answer(model, p, tokenizer)
                                       for p in show_prompts}

    record(0)
    model.train()
    for step in range(1, steps + 1):
        x, y = sft_batch(rng.sample(pairs, min(batch_size, len(pairs))), tokenizer, mask_prompt)
        _, loss = model(x.to(device), y.to(device))
        if lm_stream is not None:
            xl, yl = lm_stream.sample(lm_batch_size or batch_size, generator=lm_gen)  # (B, T)
            loss = loss + lm_weight * model(xl.to(device), yl.to(device))[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.loss.append(loss.item())
        if step % eval_every == 0 or step == steps:
            model.eval()
            record(step)
            model.train()
    model.eval()
    return model, history


# ----------------------------------------------------------------------------- LoRA on names
LORA_TARGETS = ("in_proj", "out_proj", "mlp")  # every Linear of every block


def names_streams(tokenizer, block_size: int = 16, seed: int = 0, max_eval_windows: int = 80):
    """The 32,000 names shuffled (seeded), cut 80 / 10 / 10 into ``train``, ``val`` and
    ``test``, each one :class:`~dlbook.training.TokenStream` of the names one a line."""
    from .data import load_names
    from .training import TokenStream

    names = load_names()
    random.Random(seed).shuffle(names)
    n = len(names)
    parts = {"train": names[:int(0.8 * n)], "val": names[int(0.8 * n):int(0.9 * n)],
             "test": names[int(0.9 * n):]}
    return {k: TokenStream(torch.tensor(tokenizer.encode("\n".join(v) + "\n")), block_size,
                           max_eval_windows=max_eval_windows) for k, v in parts.items()}


MODES = ("lora", "full", "scratch")


def _contender(base: nn.Module, mode: str, seed: int, rank: int, alpha: float) -> nn.Module:
    """The model a names run trains: a copy of ``base`` (with LoRA adapters for ``"lora"``) or
    the same GPT from random weights (``"scratch"``), its new weights drawn from ``seed``."""
    from .gpt import GPT
    from .lora import add_lora

    torch.manual_seed(seed)  # the new weights (LoRA's A, or all of them) depend on it
    if mode == "scratch":
        return GPT(base.config)
    model = copy.deepcopy(base)
    if mode == "lora":
        add_lora(model, rank=rank, alpha=alpha, targets=LORA_TARGETS)
    return model


def fine_tune_names(base: nn.Module, mode: str, lr: float, seed: int, streams, *, steps: int = 20,
                    batch_size: int = 32, rank: int = 4, alpha: float = 8.0, device=None):
    """Train on the names' stream for ``steps`` AdamW steps: ``"lora"`` adapters on a copy of
    ``base`` (rank ``rank``), ``"full"`` every weight of a copy, or ``"scratch"`` a model of the
    same shape from random weights (``torch.manual_seed(seed)``). ``base`` is never changed.
    Returns ``(model, History)`` with the validation loss at the middle and at the end."""
    from .training import fit

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    model = _contender(base, mode, seed, rank, alpha)
    history = fit(model, streams["train"], streams["val"], steps=steps, batch_size=batch_size,
                  seed=seed, metric=None, eval_every=max(steps // 2, 1),
                  optimizer=lambda p: torch.optim.AdamW([q for q in p if q.requires_grad],
                                                        lr=lr, weight_decay=0.0),
                  device=device, progress=False)
    return model, history


def names_curve(base: nn.Module, mode: str, lr: float, seed: int, train, read: dict, *,
                steps: int, eval_every: int, batch_size: int = 32, rank: int = 4,
                alpha: float = 8.0):
    """Like :func:`fine_tune_names`, but reads the loss on every stream of ``read`` (a dict of
    :class:`~dlbook.training.TokenStream`, e.g. validation and test) at step 0 and every
    ``eval_every`` steps: a learning curve. AdamW, ``steps`` steps of ``batch_size`` windows of
    ``train`` drawn at random (seeded). Returns ``(model, {"steps": [...], name: [...]})``."""
    from .training import evaluate

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps!r}")
    if not isinstance(eval_every, int) or not 1 <= eval_every <= steps:
        raise ValueError(f"eval_every must be a whole number from 1 to steps ({steps}), "
                         f"got {eval_every!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if not read:
        raise ValueError("read must name at least one stream to measure the curve on")
    model = _contender(base, mode, seed, rank, alpha)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=lr,
                            weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    curve = {"steps": [], **{k: [] for k in read}}

    def record(step):
        curve["steps"].append(step)
        for k, stream in read.items():
            curve[k].append(evaluate(model, stream, metric=None)[0])

    record(0)
    model.train()
    for step in range(1, steps + 1):
        x, y = train.sample(batch_size, generator=gen)  # (B, T), (B, T)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            record(step)
            model.train()
    model.eval()
    return model, curve


# ----------------------------------------------------------------------------- next word
def _context_codes(a, c: int, vocab_size: int):
    """The ``c`` tokens ending at each position of ``a`` (last axis) as one base-``vocab_size``
    integer: ``n - c + 1`` codes for ``n`` tokens (``n + 1`` zeros for ``c = 0``)."""
    n = a.shape[-1]
    if c == 0:
        return np.zeros(a.shape[:-1] + (n + 1,), np.int64)
    return sum(a[..., j:n - c + 1 + j].astype(np.int64) * vocab_size ** j for j in range(c))


def ngram_nll(train_tokens, stream, order: int, k: float, vocab_size: int):
    """The loss (nats) of an add-``k`` count table of ``order`` tokens (``order - 1`` of
    context), counted on ``train_tokens``, on every target of ``stream``'s windows: (N, T).

    Each target backs off to the longest context that training shows (shorter near a window's
    start, where fewer tokens precede it), down to the add-``k`` unigram."""
    if order < 1 or not k > 0 or vocab_size ** max(order - 1, 1) >= 2 ** 62:
        raise ValueError(f"need order >= 1, k > 0 and vocab_size ** (order - 1) below 2 ** 62, "
                         f"got order {order}, k {k}, vocab_size {vocab_size}")
    train = np.asarray(train_tokens)
    x, y = (np.asarray(a) for a in stream.windows())  # (N, T) each
    nll = np.full(x.shape, np.nan)
    for c in range(order - 1, -1, -1):
        keys, inv = np.unique(_context_codes(train[:-1], c, vocab_size), return_inverse=True)
        counts = np.bincount(inv.ravel() * vocab_size + train[c:],  # (contexts, vocab_size)
                             minlength=len(keys) * vocab_size)
        counts = counts.reshape(len(keys), vocab_size).astype(float)
        q = _context_codes(x, c, vocab_size)[:, -x.shape[1]:]  # contexts of the last positions
        w = q.shape[1]
        i = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
        p = (counts[i, y[:, -w:]] + k) / (counts.sum(1)[i] + k * vocab_size)
        new = (keys[i] == q) & np.isnan(nll[:, -w:])  # seen, and no longer context yet
        nll[:, -w:] = np.where(new, -np.log(p), nll[:, -w:])
    return nll


def context_seen(train_tokens, stream, c: int, vocab_size: int):
    """How often ``train_tokens`` shows (followed by a token) the ``c`` tokens before each
    target of ``stream``'s windows that has ``c`` before it: a flat array of counts."""
    if c < 1:
        raise ValueError(f"c must be at least 1, got {c}")
    train = np.asarray(train_tokens)
    keys, seen = np.unique(_context_codes(train[:-1], c, vocab_size), return_counts=True)
    q = _context_codes(np.asarray(stream.windows()[0]), c, vocab_size).ravel()
    i = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
    return np.where(keys[i] == q, seen[i], 0)


NEXT_PROMPT = "Next: {}\n"  # chapter 18's second task: the word that follows in the book


def next_word_pairs(text: str, n_val: int = 500, n_test: int = 1000, n_train: int = 6000,
                    context: int = 36, max_word: int = 12, chunk: int = 2000,
                    seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """``("Next: and then the whale\n", "rose\n")``-style pairs from ``text``: up to
    ``context`` characters of the text (cut to start at a word, newlines as spaces) and the
    lower-case word of at most ``max_word`` letters that follows them there. The text is cut
    into chunks of ``chunk`` characters, shuffled (seeded) and dealt to ``train``, ``val`` and
    ``test``, so no two splits share a passage; each split then draws its pairs at random."""
    if context < 8 or max_word < 1 or chunk <= context:
        raise ValueError(f"need context >= 8, max_word >= 1, chunk > context; got {context}, "
                         f"{max_word}, {chunk}")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if min(sizes.values()) < 1:
        raise ValueError(f"every split needs at least one pair, got {sizes}")
    starts = [m.start() for m in re.finditer(r"(?<=[ \n])[a-z]+", text)
              if m.start() >= context and len(m.group()) <= max_word]
    chunks = list(range(len(text) // chunk + 1))
    rng = random.Random(seed)
    rng.shuffle(chunks)
    total = sum(sizes.values())
    cut, out, first = {}, {}, 0
    for k, n in sizes.items():  # each split a share of the chunks as of its pairs
        take = max(1, round(len(chunks) * n / total))
        cut[k] = set(chunks[first:first + take])
        first += take
    for k, n in sizes.items():
        mine = [s for s in starts if s // chunk in cut[k] and (s - context) // chunk in cut[k]]
        if len(mine) < n:
            raise ValueError(f"only {len(mine)} word starts for {n} {k} pairs: a longer text "
                             f"or fewer pairs")
        out[k] = []
        for s in sorted(rng.sample(mine, n)):
            ctx = text[s - context:s].replace("\n", " ")
            ctx = ctx[ctx.index(" ") + 1:] if " " in ctx[:-1] else ctx
            word = re.match(r"[a-z]+", text[s:]).group()
            out[k].append((NEXT_PROMPT.format(" ".join(ctx.split())), word + "\n"))
    return out


def bigram_baseline(train_tokens: torch.Tensor, vocab_size: int, smoothing: float):
    """The count table: ``P(b | a)`` from the training stream's bigram counts plus
    ``smoothing`` (a :class:`~dlbook.language_models.BigramLM`)."""
    from .language_models import BigramLM

    if not smoothing > 0:
        raise ValueError(f"smoothing must be positive (a zero count would give log 0), "
                         f"got {smoothing!r}")
    return BigramLM.from_counts(train_tokens, vocab_size, smoothing)


RUNS_FILE = "ch18_finetune.json"
SFT_FILE = "ch18_sft.safetensors"  # the sweep's seed-0 masked SFT model, at its last step


def load_runs() -> dict:
    """The committed results of ``tools/ch18_finetune_sweep.py`` (sha256-checked): the SFT runs
    (``sft``: masked and unmasked, few-shot prompting; ``scratch``: masked from random weights;
    ``mix``: masked with Moby-Dick batches mixed in; each with its learning-rate grid, three
    seeds, test exact match and Moby-Dick loss), the LoRA runs on names (LoRA, full, from
    scratch, the bigram table; ``curves``: their learning curves to 500 steps)."""
    import json

    from .data import verified_path

    with open(verified_path(RUNS_FILE), encoding="utf-8") as f:
        return json.load(f)


def load_sft_model(device=None) -> nn.Module:
    """The GPT fine-tuned by ``tools/ch18_finetune_sweep.py`` (masked SFT, seed 0, all its
    steps), sha256-checked, in eval mode: the chapter's exercises use it without re-training."""
    from .data import verified_path
    from .gpt import load_checkpoint

    return load_checkpoint(verified_path(SFT_FILE), device=device)[0]
