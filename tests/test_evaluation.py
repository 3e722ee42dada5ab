"""dlbook.evaluation against direct computation on a tiny transformers Llama: continuation
log-probabilities with and without a cached prefix, multiple choice, bits per byte."""
from __future__ import annotations

import math

import pytest
import torch

from dlbook.evaluation import (
    TRIVIA,
    TRIVIA_CONTROL,
    Question,
    answer_key,
    bits_per_byte,
    continuation_logprobs,
    grouped_logprobs,
    multiple_choice,
)

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CharTokenizer:  # one token per ASCII character, its code; 0 pads
    pad_token_id = 0

    class _Out:
        def __init__(self, ids):
            self.input_ids = ids

    def __call__(self, text, add_special_tokens=True, return_tensors=None):
        ids = [ord(c) for c in text]
        return self._Out(torch.tensor([ids]) if return_tensors == "pt" else ids)

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=256)
    return CharTokenizer(), transformers.LlamaForCausalLM(config).eval()


def direct(tok, model, context, continuation):
    a, b = tok(context).input_ids, tok(continuation).input_ids
    ids = torch.tensor([a + b])
    with torch.no_grad():
        logp = model(ids).logits[0].log_softmax(-1)
    return sum(logp[len(a) - 1 + j, b[j]].item() for j in range(len(b)))


def test_continuations_match_whole_sequences(lm):
    tok, model = lm
    pairs = [("Q: x?\nA:", " yes"), ("Q: longer one?\nA:", " no"), ("Q:", " maybe so")]
    lp, n = continuation_logprobs("", pairs, tokenizer=tok, model=model)
    for i, (c, k) in enumerate(pairs):
        assert lp[i].item() == pytest.approx(direct(tok, model, c, k), abs=1e-4)
        assert n[i] == len(k)
    prefix = "Some shared text. "
    lp2, _ = continuation_logprobs(prefix, pairs + [("", " bare")], tokenizer=tok, model=model)
    for i, (c, k) in enumerate(pairs + [("", " bare")]):
        assert lp2[i].item() == pytest.approx(direct(tok, model, prefix + c, k), abs=1e-4)


def test_multiple_choice_picks_the_likeliest(lm):
    tok, model = lm
    q = Question("x?", ("aa", "bb", "cc"), 1)
    picks = multiple_choice([q], tokenizer=tok, model=model)
    scores = [direct(tok, model, "Question: x?\nAnswer:", " " + o) for o in q.options]
    assert picks["sum"].item() == max(range(3), key=scores.__getitem__)
    assert picks["truth"].tolist() == [1]
    assert "Answer: bb" in answer_key([q])


def test_bits_per_byte(lm):
    tok, model = lm
    text = "call me ishmael. some years ago, never mind how long precisely."
    r = bits_per_byte(text, tokenizer=tok, model=model, window=16)
    ids = torch.tensor([tok(text).input_ids])
    nats = 0.0
    with torch.no_grad():
        for s in range(0, ids.shape[1] - 1, 16):
            chunk = ids[:, s:s + 17]
            nats += torch.nn.functional.cross_entropy(
                model(chunk[:, :-1]).logits[0], chunk[0, 1:], reduction="sum").item()
    assert r["nats"] == pytest.approx(nats, rel=1e-5)
    assert r["tokens"] == len(text) - 1 and r["bytes"] == len(text) - 1
    assert r["bits_per_byte"] == pytest.approx(nats / math.log(2) / (len(text) - 1))


def test_benchmarks_are_well_formed():
    assert len(TRIVIA) == len(TRIVIA_CONTROL) == 12
    assert {q.answer for q in TRIVIA} == {0, 1, 2, 3}
    assert not {q.question for q in TRIVIA} & {q.question for q in TRIVIA_CONTROL}
    from dlbook.evaluation import TRIVIA_MORE
    every = TRIVIA + TRIVIA_CONTROL + TRIVIA_MORE
    assert len(every) == 48 and len({q.question for q in every}) == 48  # no repeats
    assert all(len(q.options) == 4 and len(set(q.options)) == 4 for q in every)
    # the right option is at each place equally often: position alone cannot score
    assert [sum(q.answer == j for q in every) for j in range(4)] == [12] * 4
    from dlbook.evaluation import NEGATIVE_REVIEWS, POSITIVE_REVIEWS
    assert len(POSITIVE_REVIEWS) == len(NEGATIVE_REVIEWS) == 16
    assert not set(POSITIVE_REVIEWS) & set(NEGATIVE_REVIEWS)


def test_bad_input(lm):
    tok, model = lm
    with pytest.raises(ValueError):
        Question("x?", ("a",), 0)
    with pytest.raises(ValueError):
        Question("x?", ("a", "b"), 2)
    with pytest.raises(ValueError):
        continuation_logprobs("", [("", " a")], tokenizer=tok, model=model)
    with pytest.raises(ValueError):
        continuation_logprobs("", [("a", "")], tokenizer=tok, model=model)
    with pytest.raises(ValueError):
        multiple_choice([], tokenizer=tok, model=model)
    with pytest.raises(ValueError):
        bits_per_byte("a", tokenizer=tok, model=model)


def test_grouped_equals_pairs(lm):
    tok, model = lm
    groups = [("Q: one?\nA:", [" a", " bcd", " ef"]), ("Q: two?\nA:", [" x", " yy"])]
    pairs = [(c, o) for c, os in groups for o in os]
    for prefix in ("", "A leaked key. "):
        if not prefix:
            ref, n_ref = continuation_logprobs("", pairs, tokenizer=tok, model=model)
        else:
            ref, n_ref = continuation_logprobs(prefix, pairs, tokenizer=tok, model=model)
        got = grouped_logprobs(prefix, groups, tokenizer=tok, model=model)
        lp = torch.cat([g[0] for g in got])
        assert torch.allclose(lp, ref, atol=1e-4)
        assert torch.equal(torch.cat([g[1] for g in got]), n_ref)
    with pytest.raises(ValueError):
        grouped_logprobs("", [("", [" a"])], tokenizer=tok, model=model)
