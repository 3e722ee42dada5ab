"""dlbook.finetune: prompt masking checked against a direct computation, exact match against
greedy decoding, and clear errors for bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook import finetune as ft
from dlbook.gpt import GPT, GPTConfig
from dlbook.language_models import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOK = CharTokenizer(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ :\n"))
PAIRS = ft.upper_pairs(["whale", "sea", "ahab"])


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2,
                         n_embd=16, dropout=0.0)).eval()


def test_upper_pairs_format():
    assert PAIRS[0] == ("Upper: whale\n", "WHALE\n")
    with pytest.raises(ValueError, match="lower-case"):
        ft.upper_pairs(["Whale"])
    with pytest.raises(ValueError, match="lower-case"):
        ft.upper_pairs([""])


def test_task_words_splits_are_disjoint_and_seeded():
    text = " ".join(f"w{'a' * (i % 5)}{'b' * (i // 5)}" for i in range(60)).replace("w", "")
    w = ft.task_words(text, min_len=1, max_len=20, n_val=5, n_test=5)
    assert not set(w["train"]) & set(w["val"]) and not set(w["val"]) & set(w["test"])
    assert w == ft.task_words(text, min_len=1, max_len=20, n_val=5, n_test=5)
    with pytest.raises(ValueError, match="too few"):
        ft.task_words("a bb ccc", n_val=5, n_test=5)


def test_sft_batch_masks_exactly_the_prompt():
    x, y = ft.sft_batch(PAIRS, TOK, mask_prompt=True)
    xu, yu = ft.sft_batch(PAIRS, TOK, mask_prompt=False)
    assert torch.equal(x, xu)
    for i, (p, a) in enumerate(PAIRS):
        seq = TOK.encode(p + a)
        n = len(seq) - 1
        assert x[i, :n].tolist() == seq[:-1]
        # masked: exactly the answer's tokens are targets, in order
        assert y[i][y[i] != -1].tolist() == TOK.encode(a)
        assert (y[i, :len(p) - 1] == -1).all() and (y[i, n:] == -1).all()
        # unmasked: every next token is a target, padding is not
        assert yu[i, :n].tolist() == seq[1:] and (yu[i, n:] == -1).all()


def test_masked_loss_equals_the_direct_sum_over_answer_tokens():
    model = _gpt()
    x, y = ft.sft_batch(PAIRS, TOK, mask_prompt=True)
    _, loss = model(x, y)
    # direct: for each example, feed prompt + answer alone (no padding) and sum -log p of the
    # answer's tokens; divide by the number of answer tokens in the batch
    total, count = 0.0, 0
    for p, a in PAIRS:
        seq = torch.tensor([TOK.encode(p + a)])
        logp = F.log_softmax(model(seq[:, :-1])[0], -1)[0]  # (T, V)
        for t in range(len(TOK.encode(p)) - 1, seq.shape[1] - 1):
            total -= logp[t, seq[0, t + 1]].item()
            count += 1
    assert count == sum(len(a) for _, a in PAIRS)
    assert math.isclose(loss.item(), total / count, rel_tol=1e-5)
    # and the unmasked loss is a different number: the prompt's tokens count
    _, unmasked = model(*ft.sft_batch(PAIRS, TOK, mask_prompt=False))
    assert abs(unmasked.item() - loss.item()) > 1e-3


def test_exact_match_agrees_with_greedy_decoding():
    model = _gpt(1)
    # a trained model gets some right and some wrong: train briefly on two of the pairs
    model, _ = ft.train_sft(model, PAIRS[:2], TOK, steps=60, lr=3e-2, batch_size=2, seed=0)
    em = ft.exact_match(model, PAIRS, TOK)
    for (p, a), ok in zip(PAIRS, em.tolist()):
        assert ok == (ft.greedy_answer(model, p, TOK, max_new_tokens=len(a) + 2) + "\n" == a)
    assert em[:2].all()  # it learned the pairs it trained on


def test_train_sft_leaves_the_base_untouched_and_is_seeded():
    base = _gpt()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    m1, h1 = ft.train_sft(base, PAIRS, TOK, steps=5, lr=1e-2, seed=3, val_pairs=PAIRS,
                          eval_every=2, show_prompts=[PAIRS[0][0]])
    m2, h2 = ft.train_sft(base, PAIRS, TOK, steps=5, lr=1e-2, seed=3)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert h1.loss == h2.loss and h1.steps == [0, 2, 4, 5] and len(h1.snapshots) == 4


def test_mixing_in_the_pretraining_loss():
    """L_SFT + w * L_LM: weight 0 gives the plain SFT run exactly; weight 1 lowers the
    language-modelling loss on the mixed-in text relative to plain SFT."""
    from dlbook.training import TokenStream, evaluate

    text = TokenStream(torch.tensor(TOK.encode("the whale and the sea and ahab " * 20)), 16)
    plain, h = ft.train_sft(_gpt(), PAIRS, TOK, steps=30, lr=1e-2, seed=1)
    zero, h0 = ft.train_sft(_gpt(), PAIRS, TOK, steps=30, lr=1e-2, seed=1, lm_stream=text,
                            lm_weight=0.0)
    mixed, _ = ft.train_sft(_gpt(), PAIRS, TOK, steps=30, lr=1e-2, seed=1, lm_stream=text)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain.parameters(),
                                                                zero.parameters()))
    assert h.loss == pytest.approx(h0.loss, abs=1e-6)
    lm = {k: evaluate(m, text, metric=None)[0] for k, m in [("plain", plain), ("mixed", mixed)]}
    assert lm["mixed"] < lm["plain"] - 0.5, lm
    with pytest.raises(ValueError, match="lm_weight"):
        ft.train_sft(_gpt(), PAIRS, TOK, steps=1, lr=1e-3, lm_stream=text, lm_weight=-1.0)


def test_bad_input_fails_clearly():
    with pytest.raises(ValueError, match="at least one"):
        ft.sft_batch([], TOK)
    with pytest.raises(ValueError, match="non-empty"):
        ft.sft_batch([("Upper: a\n", "")], TOK)
    with pytest.raises(ValueError, match="pair"):
        ft.sft_batch(["Upper: a\n"], TOK)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ft.sft_batch([("Upper: é\n", "É\n")], TOK)
    with pytest.raises(ValueError, match="block_size"):
        ft.sft_batch(ft.upper_pairs(["a" * 40]), TOK, block_size=32)
    with pytest.raises(ValueError, match="block_size"):
        ft.train_sft(_gpt(), ft.upper_pairs(["a" * 40]), TOK, steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="steps"):
        ft.train_sft(_gpt(), PAIRS, TOK, steps=0, lr=1e-3)
    with pytest.raises(ValueError, match="lr"):
        ft.train_sft(_gpt(), PAIRS, TOK, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="mode"):
        ft.fine_tune_names(_gpt(), "qlora", 1e-3, 0, {})
    with pytest.raises(ValueError, match="smoothing"):
        ft.bigram_baseline(torch.tensor([0, 1, 2]), 3, 0.0)


def test_bigram_baseline_is_the_count_table():
    tokens = torch.tensor([0, 1, 1, 2, 0, 1])
    model = ft.bigram_baseline(tokens, 3, smoothing=0.5)
    p = model.table.exp()
    # from 1: to 1 once, to 2 once, to 0 never -> (0.5, 1.5, 1.5) / 3.5
    assert torch.allclose(p[1], torch.tensor([0.5, 1.5, 1.5]) / 3.5)
    assert torch.allclose(p.sum(1), torch.ones(3))


def test_fine_tune_names_is_seeded_whatever_ran_before():
    from dlbook.training import TokenStream

    tokens = torch.randint(0, TOK.vocab_size, (400,), generator=torch.Generator().manual_seed(0))
    streams = {k: TokenStream(tokens, 8) for k in ("train", "val")}
    base = _gpt()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    for mode in ft.MODES:
        torch.manual_seed(123)
        a, _ = ft.fine_tune_names(base, mode, 1e-2, 0, streams, steps=2, batch_size=4)
        torch.rand(7)  # the global RNG moved on: the result must not depend on it
        b, _ = ft.fine_tune_names(base, mode, 1e-2, 0, streams, steps=2, batch_size=4)
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), (mode, k)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_names_curve_is_seeded_reads_every_stream_and_keeps_the_base():
    from dlbook.training import TokenStream, evaluate

    tokens = torch.randint(0, TOK.vocab_size, (400,), generator=torch.Generator().manual_seed(0))
    train, val = TokenStream(tokens, 8), TokenStream(tokens[:100], 8)
    base = _gpt()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    a, ca = ft.names_curve(base, "lora", 1e-2, 0, train, {"val": val}, steps=5, eval_every=2)
    torch.rand(3)
    _, cb = ft.names_curve(base, "lora", 1e-2, 0, train, {"val": val}, steps=5, eval_every=2)
    assert ca["steps"] == [0, 2, 4, 5] and ca == cb
    assert ca["val"][0] == pytest.approx(evaluate(base, val, metric=None)[0])  # B = 0 at start
    assert ca["val"][-1] == pytest.approx(evaluate(a, val, metric=None)[0])
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    with pytest.raises(ValueError, match="eval_every"):
        ft.names_curve(base, "full", 1e-2, 0, train, {"val": val}, steps=5, eval_every=9)
    with pytest.raises(ValueError, match="at least one stream"):
        ft.names_curve(base, "full", 1e-2, 0, train, {}, steps=5, eval_every=1)
    with pytest.raises(ValueError, match="mode"):
        ft.names_curve(base, "qlora", 1e-2, 0, train, {"val": val}, steps=5, eval_every=1)


def test_next_word_pairs_follow_the_text_and_keep_passages_apart():
    import re

    text = " ".join(f"w{i % 7} alpha beta gamma delta{i % 5} epsilon" for i in range(3000))
    text = re.sub(r"\d", lambda m: "xyzuvw"[int(m.group()) % 6], text)
    pairs = ft.next_word_pairs(text, n_val=20, n_test=20, n_train=100, chunk=500)
    assert {k: len(v) for k, v in pairs.items()} == {"train": 100, "val": 20, "test": 20}
    for prompt, answer in pairs["train"][:30]:
        ctx = prompt[len("Next: "):-1]
        assert prompt.startswith("Next: ") and answer.endswith("\n") and len(ctx) <= 36
        assert ctx + " " + answer[:-1] in text  # the word that follows in the text
    assert pairs == ft.next_word_pairs(text, n_val=20, n_test=20, n_train=100, chunk=500)
    with pytest.raises(ValueError, match="word starts"):
        ft.next_word_pairs(text[:2000], n_val=20, n_test=20, n_train=100, chunk=500)
    with pytest.raises(ValueError, match="at least one"):
        ft.next_word_pairs(text, n_val=0)


def test_stored_sft_model_is_the_sweeps_seed_0():
    """data/ch18_sft.safetensors is the run ch18_finetune.json records: same test exact match."""
    from dlbook.data import load_moby_dick
    from dlbook.gpt import load_checkpoint

    _, tok, _ = load_checkpoint()
    model = ft.load_sft_model()
    assert not model.training
    words = ft.task_words(load_moby_dick())
    stored = ft.load_runs()["sft"]["runs"]["masked"]["seeds"]["0"]["test_exact"]
    em = ft.exact_match(model, ft.upper_pairs(words["test"]), tok).float().mean().item()
    assert em == pytest.approx(stored, abs=1e-6)


def test_instruction_pairs_give_each_word_every_instruction():
    pairs = ft.instruction_pairs(["whale", "eye"])
    assert pairs[:3] == [("Upper: whale\n", "WHALE\n"), ("Reverse: whale\n", "elahw\n"),
                         ("First: whale\n", "w\n")]
    assert len({a for p, a in pairs if "eye" in p}) == 3  # distinct even for a palindrome
    assert ft.instruction_pairs(["sea"], ("First",)) == [("First: sea\n", "s\n")]
    with pytest.raises(ValueError, match="instructions must be"):
        ft.instruction_pairs(["sea"], ("Shout",))
    with pytest.raises(ValueError, match="lower-case"):
        ft.instruction_pairs(["Sea"])


class _Obeys(torch.nn.Module):
    """A stand-in model whose greedy answer to "A: word" is ``INSTRUCTIONS[does[A]](word)``:
    at every position it puts all its weight on the next token of that sequence."""

    def __init__(self, does):
        super().__init__()
        self.does, self.w = does, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx, targets=None):
        logits = torch.full((*idx.shape, TOK.vocab_size), -10.0)
        for i, row in enumerate(idx):
            text = TOK.decode(row.tolist())
            name, rest = text.split(": ", 1)
            word = rest.split("\n", 1)[0]
            seq = TOK.encode(f"{name}: {word}\n" + ft.INSTRUCTIONS[self.does[name]](word) + "\n")
            for t in range(min(len(seq) - 1, idx.shape[1])):
                logits[i, t, seq[t + 1]] = 10.0
        return logits, None


def test_instruction_confusion_says_whose_answer_is_written():
    does = {"Upper": "Upper", "Reverse": "Upper", "First": "First"}  # ignores "Reverse"
    conf = ft.instruction_confusion(_Obeys(does), ["whale", "sea", "ahab"], TOK)
    assert conf["Upper"] == {"Upper": 1.0, "Reverse": 0.0, "First": 0.0, "other": 0.0}
    assert conf["Reverse"]["Upper"] == 1.0 and conf["Reverse"]["Reverse"] == 0.0
    assert conf["First"]["First"] == 1.0
    for row in conf.values():
        assert sum(row.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one word"):
        ft.instruction_confusion(_Obeys(does), [], TOK)


def test_ngram_nll_is_the_backed_off_count_table():
    from collections import Counter

    from dlbook.training import TokenStream

    V = 4
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, V, (300,), generator=gen)
    stream = TokenStream(torch.randint(0, V, (60,), generator=gen), 6, max_eval_windows=None)
    x, y = stream.windows()
    t = train.tolist()
    for order, k in [(1, 0.5), (3, 0.1), (4, 1.0)]:
        got = ft.ngram_nll(train, stream, order, k, V)
        for i in range(x.shape[0]):
            for pos in range(x.shape[1]):
                for c in range(min(order - 1, pos + 1), -1, -1):  # back off
                    ctx = tuple(x[i, pos - c + 1:pos + 1].tolist()) if c else ()
                    follow = Counter(t[j + c] for j in range(len(t) - c)
                                     if tuple(t[j:j + c]) == ctx)
                    if follow:
                        p = (follow[y[i, pos].item()] + k) / (sum(follow.values()) + k * V)
                        assert got[i, pos] == pytest.approx(-math.log(p))
                        break
    seen = ft.context_seen(train, stream, 2, V)
    first = tuple(x[0, :2].tolist())
    assert seen[0] == sum(tuple(t[j:j + 2]) == first for j in range(len(t) - 2))
    with pytest.raises(ValueError, match="order"):
        ft.ngram_nll(train, stream, 0, 0.1, V)
    with pytest.raises(ValueError, match="at least 1"):
        ft.context_seen(train, stream, 0, V)
