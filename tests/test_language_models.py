"""dlbook.language_models: one interface, forward(idx, targets=None) -> (logits, loss)."""
from __future__ import annotations

import math

import pytest
import torch

from dlbook.data import names_splits
from dlbook.language_models import (BigramLM, CharTokenizer, MLPLM, MLPLMConfig, RecurrentLM,
                                    RecurrentLMConfig, generate, lm_loss, sample_names)
from dlbook.training import TokenStream, evaluate, fit


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tokenizer_round_trip_and_stream():
    tok = CharTokenizer.from_texts(["emma", "olivia", "ava"])
    assert tok.itos[0] == "." and tok.vocab_size == 1 + len(set("emmaoliviaava"))
    assert tok.decode(tok.encode("olivia")) == "olivia"
    assert tok.decode(tok.stream(["emma", "ava"])) == ".emma.ava."
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("zed")
    full = CharTokenizer.from_texts("abcdefghijklmnopqrstuvwxyz")
    assert full.vocab_size == 27 and full.stoi["a"] == 1 and full.stoi["z"] == 26


def test_names_splits_are_deterministic_and_disjoint():
    train, dev, test = names_splits()
    assert (len(train), len(dev), len(test)) == (25600, 3200, 3200)
    assert names_splits()[1] == dev
    assert not set(dev) & set(train) or len(set(dev) & set(train)) < 50  # names are unique
    assert names_splits(seed=1)[1] != dev
    with pytest.raises(ValueError, match="fractions"):
        names_splits((0.5, 0.5, 0.5))


def _all_models(V=6):
    return [BigramLM(V), MLPLM(MLPLMConfig(vocab_size=V, context=3, n_embd=4, n_hidden=8)),
            RecurrentLM(RecurrentLMConfig(vocab_size=V, cell="rnn", n_embd=4, n_hidden=8)),
            RecurrentLM(RecurrentLMConfig(vocab_size=V, cell="lstm", n_embd=4, n_hidden=8)),
            RecurrentLM(RecurrentLMConfig(vocab_size=V, cell="gru", n_embd=4, n_hidden=8,
                                          from_scratch=True))]


@pytest.mark.parametrize("model", _all_models(), ids=lambda m: type(m).__name__)
def test_every_model_speaks_the_interface(model):
    idx = torch.randint(6, (3, 7))
    targets = torch.randint(6, (3, 7))
    logits, loss = model(idx)
    assert logits.shape == (3, 7, 6) and loss is None
    logits, loss = model(idx, targets)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, 6),
                                                                  targets.reshape(-1)))
    out = generate(model, idx[:, :2], 5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 7) and torch.equal(out[:, :2], idx[:, :2])
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))


def test_models_are_causal():
    """Position t never depends on tokens after t (or the model could cheat on its targets)."""
    idx = torch.randint(6, (2, 8))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 6
    for model in _all_models():
        if isinstance(model, BigramLM):
            torch.nn.init.normal_(model.table)  # a zero table predicts the same everywhere
        a, _ = model(idx)
        b, _ = model(changed)
        assert torch.allclose(a[:, :5], b[:, :5]), type(model).__name__
        assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_mlp_context_window():
    model = MLPLM(MLPLMConfig(vocab_size=6, context=2, n_embd=3, n_hidden=5))
    idx = torch.randint(1, 6, (1, 6))
    logits, _ = model(idx)
    # Position 3 depends on tokens 2 and 3 only.
    other = idx.clone()
    other[0, :2] = 0
    assert torch.allclose(model(other)[0][0, 3], logits[0, 3])


def test_lm_loss_ignores_minus_one_and_checks_shapes():
    logits = torch.randn(2, 3, 4)
    targets = torch.tensor([[1, -1, 2], [-1, -1, 3]])
    keep = targets >= 0
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(lm_loss(logits, targets), expected)
    with pytest.raises(ValueError, match="must match"):
        lm_loss(logits, targets[:, :2])


def test_bigram_counts_and_gradient_training_agree():
    tok = CharTokenizer.from_texts("abc")
    stream = tok.stream(["ab", "abc", "cab", "ba"] * 50)  # .ab.abc.cab.ba. ...
    counts = BigramLM.count(stream, tok.vocab_size)
    assert counts.sum() == len(stream) - 1
    assert counts[tok.stoi["a"], tok.stoi["b"]] == 150
    counted = BigramLM.from_counts(stream, tok.vocab_size, smoothing=0.01)
    probs = torch.softmax(counted.table.detach(), 1)
    assert torch.allclose(probs.sum(1), torch.ones(tok.vocab_size))
    row = counts[tok.stoi["a"]].float() + 0.01
    assert probs[tok.stoi["a"], tok.stoi["b"]].item() == pytest.approx((row[tok.stoi["b"]] / row.sum()).item())
    data = TokenStream(stream, 8)
    count_nll = evaluate(counted, data, metric=None)[0]
    torch.manual_seed(0)
    learned = BigramLM(tok.vocab_size)
    fit(learned, data, steps=300, batch_size=32, lr=0.1, progress=False)
    assert abs(evaluate(learned, data, metric=None)[0] - count_nll) < 0.02


def test_names_models_learn_and_sample():
    train, dev, _ = names_splits()
    tok = CharTokenizer.from_texts(train)
    stream = tok.stream(train[:3000])
    bigram = BigramLM.from_counts(stream, tok.vocab_size)
    nll = evaluate(bigram, TokenStream(tok.stream(dev[:500]), 16), metric=None)[0]
    assert 2.3 < nll < 2.6, nll
    assert nll < math.log(27)
    names = sample_names(bigram, tok, 8, seed=0)
    assert len(names) == 8 and all(set(n) <= set("abcdefghijklmnopqrstuvwxyz") for n in names)
    assert names == sample_names(bigram, tok, 8, seed=0)


def test_ngram_of_two_is_the_bigram_and_rows_are_distributions():
    from dlbook.language_models import BigramLM, NGramLM

    torch.manual_seed(0)
    tokens = torch.randint(0, 5, (400,))
    two = NGramLM.from_counts(tokens, 5, n=2, smoothing=0.5)
    assert torch.allclose(two.log_probs, BigramLM.from_counts(tokens, 5, 0.5).table)
    three = NGramLM.from_counts(tokens, 5, n=3)
    assert torch.allclose(three.log_probs.exp().sum(-1), torch.ones(5, 5))


def test_ngram_reads_longer_context_and_pads_with_the_boundary():
    from dlbook.language_models import NGramLM

    # after (0, 1) comes 2 and after (2, 1) comes 3: one token of context cannot tell
    tokens = torch.tensor([0, 1, 2, 1, 3] * 50)
    tri = NGramLM.from_counts(tokens, 4, n=3, smoothing=0.01)
    logits, loss = tri(tokens[None, :-1], tokens[None, 1:])
    assert logits.shape == (1, 249, 4)
    big = NGramLM.from_counts(tokens, 4, n=2, smoothing=0.01)
    assert loss < big(tokens[None, :-1], tokens[None, 1:])[1] - 0.2
    # position 0 reads the boundary 0 before the window: P(. | 0, idx0)
    assert torch.allclose(logits[0, 0], tri.log_probs[0, tokens[0]])
    with pytest.raises(ValueError):
        NGramLM.from_counts(tokens, 4, n=1)


def _kneser_ney_by_dicts(tokens, V, n, D, context, c):
    """Interpolated Kneser-Ney written out with dictionaries, one probability at a time."""
    from collections import Counter
    grams = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    levels = {n: grams}
    for m in range(n - 1, 0, -1):  # continuation counts: distinct tokens before each suffix
        levels[m] = Counter(g[1:] for g in levels[m + 1])
    p = 1.0 / V
    for m in range(1, n + 1):
        h = tuple(context[len(context) - (m - 1):]) if m > 1 else ()
        follow = {g: k for g, k in levels[m].items() if g[:-1] == h}
        total = sum(follow.values())
        if total:
            p = max(follow.get(h + (c,), 0) - D, 0) / total + D * len(follow) / total * p
    return p


def test_kneser_ney_matches_the_formula_and_normalises():
    from dlbook.language_models import KneserNeyLM
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(5, (300,), generator=g)
    tokens[::7] = 0  # a boundary now and then, as in a stream of names
    for n in (1, 2, 3, 4):
        model = KneserNeyLM(tokens, 5, n, discount=0.8)
        idx = torch.randint(5, (2, 6), generator=g)
        logits, _ = model(idx)
        probs = logits.exp()  # (2, 6, 5)
        assert torch.allclose(probs.sum(-1), torch.ones(2, 6), atol=1e-5)
        padded = [0] * (n - 1) + idx[1].tolist()  # the window starts after boundaries
        for t in (0, 3, 5):
            for c in range(5):
                want = _kneser_ney_by_dicts(tokens.tolist(), 5, n, 0.8,
                                            padded[t + 1: t + n], c)
                assert abs(probs[1, t, c].item() - want) < 1e-5, (n, t, c)
    with pytest.raises(ValueError, match="discount"):
        KneserNeyLM(tokens, 5, 3, discount=1.0)
