"""Retrieval-augmented generation (Lewis et al., 2020), small: cut a book into passages, embed
them once with a sentence encoder (MiniLM, chapter 13), find the passages nearest a question,
and put them in the language model's prompt.

    >>> passages = chunk_text(load_moby_dick())              # ~400-character passages
    >>> vectors = load_index()                                # (N, 384), their MiniLM vectors
    >>> top = retrieve(embed(questions), vectors, k=2)        # (Q, 2) passage indices
    >>> replies = generate_replies(prompts, tokenizer=tok, model=smol)
    >>> contains_answer(replies[0], ["Pequod"])

Embedding the whole book takes MiniLM about two minutes of CPU, more than a chapter's budget,
so ``tools/ch15_rag_index.py`` does it once and stores the vectors (float16) in
``data/ch15_moby_index.npz``; the chapter re-embeds a sample of passages and checks them
against the file.
"""
from __future__ import annotations

import re

import numpy as np
import torch

INDEX_FILE = "ch15_moby_index.npz"
PASSAGE_CHARS = 400  # the longest passage, in characters (about 100 SmolLM2 tokens)


def chunk_text(text: str, max_chars: int = PASSAGE_CHARS) -> list[str]:
    """Cut ``text`` into passages of at most ``max_chars`` characters, whole words only, never
    across a paragraph (a blank line); whitespace is collapsed. Deterministic, so the stored
    index and the chapter agree on which passage is which."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("chunk_text needs a non-empty string")
    if not isinstance(max_chars, int) or max_chars < 20:
        raise ValueError(f"max_chars must be a whole number >= 20, got {max_chars!r}")
    passages = []
    for paragraph in re.split(r"\n\s*\n", text):
        words, current = paragraph.split(), ""
        for w in words:
            if current and len(current) + 1 + len(w) > max_chars:
                passages.append(current)
                current = ""
            current = f"{current} {w}" if current else w[:max_chars]
        if current:
            passages.append(current)
    return passages


def load_index(name: str = INDEX_FILE) -> tuple[torch.Tensor, dict]:
    """The stored passage vectors ``(N, 384)`` float32 (unit rows) and the settings that made
    them (``max_chars``, ``n``, ``sha256`` of the text), after the file's checksum."""
    from .data import verified_path

    with np.load(verified_path(name)) as f:
        vectors = torch.from_numpy(f["vectors"].astype(np.float32))
        meta = {"max_chars": int(f["max_chars"]), "n": int(f["vectors"].shape[0]),
                "text_sha256": str(f["text_sha256"])}
    return vectors, meta


def retrieve(queries: torch.Tensor, passages: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(Q, k)`` of the ``k`` passages with the largest dot product (the cosine, for
    unit vectors) with each query, best first. queries (Q, D), passages (N, D)."""
    if queries.ndim != 2 or passages.ndim != 2 or queries.shape[1] != passages.shape[1]:
        raise ValueError(f"need queries (Q, D) and passages (N, D) of one width D, got "
                         f"{tuple(queries.shape)} and {tuple(passages.shape)}")
    if not isinstance(k, int) or not 1 <= k <= passages.shape[0]:
        raise ValueError(f"k must be a whole number in [1, {passages.shape[0]}], got {k!r}")
    return (queries.float() @ passages.float().T).topk(k, dim=1).indices  # (Q, k)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, single spaces: what 'contains the answer' compares."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("-", " ")).split())


def contains_answer(reply: str, answers) -> bool:
    """Whether ``reply`` contains any of ``answers`` (a list of accepted spellings) as whole
    words, after :func:`normalize_answer` (SQuAD's normalisation, lenient on format)."""
    if isinstance(answers, str) or not answers:
        raise ValueError("answers must be a non-empty list of accepted answers")
    padded = f" {normalize_answer(reply)} "
    return any(f" {normalize_answer(a)} " in padded for a in answers)


DEMO_PASSAGE = ("“Who is Captain Ahab, sir?” “Aye, aye, I thought so. Captain Ahab is the "
                "Captain of this ship.”")  # chapter 16, word for word


def rag_messages(question: str, passages=(), demo: bool = True) -> list[dict]:
    """A chat for an instruction-tuned model: a short system message, one solved example (a
    question about the book that is not in :data:`MOBY_QUESTIONS`, answered in a few words,
    with one passage when the question has passages: it shows the format of the answer), then
    the passages (if any) and the question. ``demo=False`` leaves the solved example out (its
    answer, *Ahab*, is one a small reader may copy)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("need a non-empty question")

    def ask(q, context):
        text = "".join(f"Passage {i + 1}: {p}\n\n" for i, p in enumerate(context))
        return text + ("Use the passages to answer. " if context else "") + f"Question: {q}"

    system = [{"role": "system", "content": "Answer with a name or a short phrase only."}]
    final = [{"role": "user", "content": ask(question, list(passages))}]
    if not demo:
        return system + final
    example = [DEMO_PASSAGE] if passages else []
    return system + [{"role": "user", "content": ask("Who is the captain of the Pequod?",
                                                     example)},
                     {"role": "assistant", "content": "Ahab"}] + final


@torch.no_grad()
def generate_replies(prompts, *, tokenizer, model, max_new_tokens: int = 8) -> list[str]:
    """Greedy replies of a causal LM to ``prompts`` (strings), generated as one left-padded
    batch: the prompts share each decoding step's pass over the weights."""
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens follow every prompt's last real token
    try:
        batch = tokenizer(list(prompts), return_tensors="pt", padding=True,
                          add_special_tokens=False).to(next(model.parameters()).device)
    finally:
        tokenizer.padding_side = side
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    new = out[:, batch["input_ids"].shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


# Chapter 15's questions about *Moby-Dick*, written for the book from the text (each answer is
# in at least one passage; several spellings are accepted). Sixteen questions are a small set:
# one question moves a score by 6 points, and they were written by someone who knew the book.
MOBY_QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("What is the name of the whaling ship that Ishmael sails on?", ("Pequod",)),
    ("What is the name of the harpooneer who shares a bed with Ishmael at the inn?",
     ("Queequeg",)),
    ("Who is the chief mate of the Pequod?", ("Starbuck",)),
    ("Who is the second mate of the Pequod?", ("Stubb",)),
    ("Who is the third mate of the Pequod?", ("Flask",)),
    ("What is the name of the inn in New Bedford where Ishmael meets Queequeg?",
     ("Spouter-Inn", "Spouter")),
    ("What is the name of the landlord of the Spouter-Inn?", ("Peter Coffin",)),
    ("Who preaches the sermon about Jonah in the Whaleman's Chapel?",
     ("Father Mapple", "Mapple")),
    ("What gold coin does Ahab nail to the mainmast?", ("doubloon",)),
    ("What is the name of Ahab's Parsee harpooneer?", ("Fedallah",)),
    ("What is the name of the ship whose captain is searching for his lost son?",
     ("Rachel",)),
    ("What does Queequeg's coffin become at the end of the book?",
     ("life-buoy", "life buoy", "lifebuoy")),
    ("Which harpooneer is an Indian from Gay Head?", ("Tashtego",)),
    ("Which retired captain, a part-owner of the Pequod, signs Ishmael on with Bildad?",
     ("Peleg",)),
    ("What is the name of the Pequod's little black cabin boy?", ("Pip",)),
    ("What English ship is commanded by the captain who lost his arm to Moby Dick?",
     ("Samuel Enderby", "Enderby")),
]

# Marked by hand, one entry per question of MOBY_QUESTIONS: does the *oracle* passage chosen by
# ``rag_contexts`` (the one nearest the question, with MiniLM's stored index, among those that
# contain an accepted answer; its id is the second item, to catch a changed chunking or index)
# actually answer the question, so that a reader who never saw the book could give the answer
# from it? Containing the answer's name is not enough: for the second mate the oracle is "Now
# these three mates, Starbuck, Stubb, and Flask, were momentous men...", which does not say who
# is second. Marked True when the passage states or plainly implies the answer (the sign "The
# Spouter Inn: Peter Coffin" names the landlord; a doubloon lodged in the mast is the gold coin).
ORACLE_ANSWERS: tuple[tuple[bool, int], ...] = (
    (False, 522),  # Peleg on fitting out the Pequod: not that Ishmael sails on her
    (False, 480),  # Queequeg on the stairs of the Try Pots: not the shared bed at the inn
    (True, 891),  # "The chief mate of the Pequod was Starbuck"
    (False, 925),  # the three mates named, none ranked
    (False, 925),  # the same passage
    (False, 459),  # "the landlord of the Spouter-Inn", not that Ishmael met Queequeg there
    (True, 51),  # the sign "The Spouter Inn:--Peter Coffin."
    (True, 268),  # the chaplain entering is "the famous Father Mapple"
    (True, 3365),  # "find a doubloon lodged in [this old mast]... Oh, the gold!"
    (False, 4258),  # Fedallah changes places with Ahab: not a Parsee, not a harpooneer
    (True, 4119),  # the Rachel's captain's sons among the missing
    (True, 4066),  # "that coffin... I'm ordered to make a life-buoy of it"
    (True, 930),  # "Tashtego, an unmixed Indian from Gay Head"
    (False, 807),  # "Captain Peleg was now all alive... and not Bildad": no signing on
    (True, 3198),  # "in the Pequod with the little negro Pippin... Pip"
    (True, 3403),  # "Samuel Enderby is the name of my ship", said the one-armed captain
)


def rag_contexts(questions, accepted, passages, question_vectors, index, retrieved, *,
                 seed: int = 0) -> dict[str, list[list[int]]]:
    """The passages each question is asked with, by condition (lists of passage ids):
    ``closed book`` (none), ``retrieved`` (``retrieved``, MiniLM's top k), ``oracle`` (the
    passage nearest the question, by MiniLM, among those holding an accepted answer) and
    ``random`` (k passages drawn at random, seeded per question, none holding an answer: the
    control, as long as the retrieved ones)."""
    questions, accepted = list(questions), list(accepted)
    retrieved = [list(map(int, row)) for row in retrieved]
    if not (len(questions) == len(accepted) == len(retrieved) == len(question_vectors)):
        raise ValueError("questions, accepted, retrieved and question_vectors must align")
    ranked = (question_vectors.float() @ index.float().T).argsort(dim=1, descending=True)
    oracle, control = [], []
    for i, answers in enumerate(accepted):
        holds = [j for j in ranked[i].tolist()[:400] if contains_answer(passages[j], answers)]
        if not holds:
            raise ValueError(f"no passage near question {i} holds an accepted answer")
        oracle.append([holds[0]])
        rng, picked = np.random.default_rng([seed, i]), []
        while len(picked) < len(retrieved[i]):
            j = int(rng.integers(len(passages)))
            if j not in picked and not contains_answer(passages[j], answers):
                picked.append(j)
        control.append(picked)
    return {"closed book": [[] for _ in questions], "retrieved": retrieved,
            "oracle": oracle, "random": control}


def answer_logprobs(prompts, answers, *, tokenizer, model) -> torch.Tensor:
    """Teacher forcing: the summed log-probability ``(Q,)`` (nats) of each gold ``answers[i]``
    (a string) as the model's reply to ``prompts[i]`` (a chat prompt ending at the
    assistant's turn). No text is generated: this scores whether the prompt makes the right
    answer likelier, even when the model would not produce it greedily."""
    from .evaluation import continuation_logprobs

    prompts, answers = list(prompts), list(answers)
    if not prompts or len(prompts) != len(answers):
        raise ValueError("need as many answers as prompts, at least one")
    logprob, _ = continuation_logprobs("", list(zip(prompts, answers)),
                                       tokenizer=tokenizer, model=model)
    return logprob
