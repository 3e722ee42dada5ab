"""dlbook.bpe: round trips on any text or bytes, merges replayed in order, agreement with a naive
reference trainer and with Hugging Face's `tokenizers`, and clear errors on bad input."""
from __future__ import annotations

import random
from collections import Counter

import pytest
import regex

from dlbook.bpe import (GPT2_PATTERN, N_BYTES, BPETokenizer, _merge, bytes_to_unicode,
                        library_merges,
                        merge_agreement, train_library_bpe)
from dlbook.data import load_moby_dick

SAMPLE = ("The whale, the whale! Call me Ishmael. Some years ago - never mind how long "
          "precisely - having little or no money in my purse, I thought I would sail about "
          "and see the watery part of the world. It's a way I have; they'd've said so. ") * 3
UNICODE = "naïve café – 東京 🐋🐋 Ωμέγα\tdone\n\n  spaces   end "


@pytest.fixture(scope="module")
def moby():
    return load_moby_dick()[:120_000]


@pytest.fixture(scope="module")
def tok(moby):
    return BPETokenizer.train(moby, vocab_size=600)


def naive_train(text: str, vocab_size: int, min_count: int = 2) -> list[tuple[int, int]]:
    """The textbook algorithm, recounting every pair over every chunk at every step."""
    chunks = [list(c.encode("utf-8")) for c in regex.findall(GPT2_PATTERN, text)]
    merges = []
    while len(merges) < vocab_size - N_BYTES:
        counts = Counter(p for ids in chunks for p in zip(ids, ids[1:]))
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest ids
        if counts[best] < min_count:
            break
        new_id = N_BYTES + len(merges)
        merges.append(best)
        chunks = [_merge(ids, best, new_id) for ids in chunks]
    return merges


def test_incremental_training_matches_the_naive_algorithm():
    for text in (SAMPLE, UNICODE * 5, "aaaaaaaaaa bbbb aaaa " * 4):
        fast = BPETokenizer.train(text, vocab_size=N_BYTES + 60)
        assert fast.merges == naive_train(text, N_BYTES + 60)


def test_round_trip_on_text_unicode_and_arbitrary_bytes(tok):
    rng = random.Random(0)
    texts = [SAMPLE, UNICODE, "", " ", "\n\n\n", "a" * 1000]
    texts += ["".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(200)) for _ in range(5)]
    for text in texts:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert all(0 <= i < tok.vocab_size for i in ids)
    for _ in range(20):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        ids = tok.encode(data)
        assert tok.decode_bytes(ids) == data
        assert tok.decode(ids, errors="surrogateescape").encode(
            "utf-8", errors="surrogateescape") == data


def test_encoding_replays_the_merges_in_the_order_they_were_learned(tok, moby):
    text = moby[-3000:] + UNICODE
    expected = []
    for chunk in tok.chunks(text):
        ids = list(chunk)
        for k, pair in enumerate(tok.merges):
            ids = _merge(ids, pair, N_BYTES + k)
        expected.extend(ids)
    assert tok.encode(text) == expected


def test_vocab_is_built_from_the_merges_and_counts_fall(tok):
    assert tok.vocab_size == 600 and len(tok.merges) == 600 - N_BYTES
    for k, (a, b) in enumerate(tok.merges):
        assert tok.vocab[N_BYTES + k] == tok.vocab[a] + tok.vocab[b]
    # the most frequent pair is merged first; later merges are rarer (never more frequent)
    assert all(c1 >= c2 for c1, c2 in zip(tok.counts, tok.counts[1:]))
    assert tok.merge_bytes()[0] in {(b"e", b" "), (b" ", b"t"), (b"h", b"e"), (b"t", b"h")}


def test_compresses_and_truncation_interpolates(tok, moby):
    text = moby[:20_000]
    n_bytes = len(text.encode("utf-8"))
    lengths = [len(tok.truncated(k).encode(text)) for k in (0, 50, 200, len(tok.merges))]
    assert lengths[0] == n_bytes
    assert all(a > b for a, b in zip(lengths, lengths[1:]))
    assert len(text) / lengths[-1] > 2.0


def test_agrees_with_the_tokenizers_library(tok, moby):
    library = train_library_bpe(moby, vocab_size=600)
    assert library.get_vocab_size() == tok.vocab_size
    theirs = library_merges(library)
    agreement = merge_agreement(tok.merge_bytes(), theirs)
    # the same merges; at most their order differs, and only among equally frequent pairs
    assert agreement["shared"] >= 0.98 and agreement["common_prefix"] >= 20, agreement
    text = load_moby_dick()[200_000:230_000]  # text neither saw in training
    ours = [tok.vocab[i] for i in tok.encode(text)]
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    lib_tokens = [bytes(to_byte[c] for c in t) for t in library.encode(text).tokens]
    assert abs(len(ours) - len(lib_tokens)) <= 0.01 * len(ours)
    assert b"".join(lib_tokens) == b"".join(ours) == text.encode("utf-8")
    assert library.decode(library.encode(text).ids) == text == tok.decode(tok.encode(text))


def test_save_and_load_round_trip(tok, tmp_path):
    path = tmp_path / "bpe.json"
    tok.save(path)
    again = BPETokenizer.load(path)
    assert again.merges == tok.merges and again.counts == tok.counts
    assert again.encode(SAMPLE) == tok.encode(SAMPLE)
    path.write_text('{"merges": []}')
    with pytest.raises(ValueError, match="not a dlbook.bpe"):
        BPETokenizer.load(path)


def test_bad_input_is_refused_clearly(tok):
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train(SAMPLE, vocab_size=100)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer.train(SAMPLE, vocab_size=300.0)
    with pytest.raises(ValueError, match="empty text"):
        BPETokenizer.train("", vocab_size=300)
    with pytest.raises(TypeError, match="str or bytes"):
        tok.encode(["a list"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="must be ints"):
        tok.decode(["a"])
    with pytest.raises(ValueError, match="lone surrogate"):
        tok.encode("bad \ud800 char")
    with pytest.raises(ValueError, match="does not exist yet"):
        BPETokenizer(merges=[(256, 1)])
    with pytest.raises(ValueError, match="repeats merge"):
        BPETokenizer(merges=[(1, 2), (1, 2)])
    with pytest.raises(ValueError, match="n_merges"):
        tok.truncated(len(tok.merges) + 1)
    with pytest.raises(ValueError, match="k must be"):
        merge_agreement(tok.merge_bytes(), tok.merge_bytes(), k=0)


def test_training_stops_when_no_pair_repeats():
    tok = BPETokenizer.train("abcdefg", vocab_size=1000)
    assert tok.merges == [] and tok.encode("abc") == [97, 98, 99]
