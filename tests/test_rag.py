"""dlbook.rag: passages, retrieval, answer matching, batched greedy replies, bad input."""
from __future__ import annotations

import pytest
import torch

from dlbook.rag import (
    MOBY_QUESTIONS,
    ORACLE_ANSWERS,
    chunk_text,
    contains_answer,
    rag_messages,
    retrieve,
)


def test_chunks_keep_words_and_paragraphs():
    text = "one two three four five six\n\nseven eight"
    chunks = chunk_text(text, max_chars=20)
    assert chunks == ["one two three four", "five six", "seven eight"]
    assert " ".join(chunks).split() == text.split()
    assert all(len(c) <= 20 for c in chunk_text("word " * 200, max_chars=20))


def test_retrieve_finds_the_nearest():
    passages = torch.eye(4)
    queries = torch.tensor([[0.1, 0.0, 0.9, 0.2], [1.0, 0.5, 0.0, 0.0]])
    assert retrieve(queries, passages, k=2).tolist() == [[2, 3], [0, 1]]


def test_contains_answer_whole_words():
    assert contains_answer("The ship is the Pequod.", ["pequod"])
    assert contains_answer("a life buoy", ["life-buoy"])
    assert not contains_answer("Pipes and tobacco", ["Pip"])
    assert all(a for _, a in MOBY_QUESTIONS) and len(MOBY_QUESTIONS) == 16


def test_messages():
    m = rag_messages("Who?", ["A passage."])
    assert m[-1]["role"] == "user" and "Passage 1: A passage." in m[-1]["content"]
    assert "Passage" not in rag_messages("Who?")[-1]["content"]
    assert m[2] == {"role": "assistant", "content": "Ahab"}
    assert "captain of the Pequod" not in " ".join(q for q, _ in MOBY_QUESTIONS)


def test_bad_input():
    with pytest.raises(ValueError):
        chunk_text("")
    with pytest.raises(ValueError):
        chunk_text("text", max_chars=5)
    with pytest.raises(ValueError):
        retrieve(torch.zeros(2, 3), torch.zeros(4, 5), k=1)
    with pytest.raises(ValueError):
        retrieve(torch.zeros(2, 3), torch.zeros(4, 3), k=5)
    with pytest.raises(ValueError):
        contains_answer("x", "Pequod")  # a string, not a list
    with pytest.raises(ValueError):
        rag_messages("  ")


def test_rag_contexts_oracle_and_control():
    from dlbook.rag import rag_contexts

    passages = ["the Pequod sails", "a whale", "the sea", "Pequod again", "sky", "rope"]
    index = torch.eye(6)  # passage j is direction j
    q = torch.tensor([[0.0, 0.5, 0.0, 0.9, 0.0, 0.0]])  # nearest: 3, then 1
    ctx = rag_contexts(["Ship?"], [["Pequod"]], passages, q, index, [[3, 1]], seed=0)
    assert ctx["closed book"] == [[]] and ctx["retrieved"] == [[3, 1]]
    assert ctx["oracle"] == [[3]]  # the nearest passage that holds the answer
    rand = ctx["random"][0]
    assert len(rand) == 2 and len(set(rand)) == 2
    assert not any(contains_answer(passages[j], ["Pequod"]) for j in rand)
    assert rag_contexts(["Ship?"], [["Pequod"]], passages, q, index, [[3, 1]],
                        seed=0) == ctx  # seeded
    with pytest.raises(ValueError):
        rag_contexts(["Ship?"], [["Pequod"]], passages, q, index, [])
    with pytest.raises(ValueError):
        rag_contexts(["Ship?"], [["Ahab"]], passages, q, index, [[3, 1]])


def test_messages_without_the_demo():
    m = rag_messages("Who?", ["a passage"], demo=False)
    assert [t["role"] for t in m] == ["system", "user"] and "Ahab" not in str(m)
    assert len(rag_messages("Who?", ["a passage"])) == 4


def test_oracle_marks_cover_the_questions():
    # One hand mark per question; the three mates' passage does not rank them; each marked
    # passage id is a whole passage number.
    assert len(ORACLE_ANSWERS) == len(MOBY_QUESTIONS)
    assert all(isinstance(a, bool) and isinstance(j, int) and j >= 0
               for a, j in ORACLE_ANSWERS)
    assert ORACLE_ANSWERS[3] == ORACLE_ANSWERS[4] == (False, 925)
    assert ORACLE_ANSWERS[2][0] and 0 < sum(a for a, _ in ORACLE_ANSWERS) < len(MOBY_QUESTIONS)
