"""Evaluating a causal language model without generating: log-likelihoods of given texts.

- **Multiple choice by log-likelihood** (the way lm-evaluation-harness scores HellaSwag, ARC,
  MMLU's cloze form): each option is scored by the log-probability the model gives its tokens
  after the question; the prediction is the option with the largest sum (or mean per token,
  which does not favour short options).
- **Bits per byte**: the total next-token loss on a text in bits, divided by the text's UTF-8
  bytes. Unlike perplexity per token it does not depend on the tokenizer, so a character-level
  model and a BPE model can be compared on the same text.

    >>> lp, n = continuation_logprobs("", [("Question: 2 + 2?\\nAnswer:", " 4")],
    ...                               tokenizer=tok, model=smol)
    >>> picks = multiple_choice(items, tokenizer=tok, model=smol)   # {"sum": (Q,), "mean": (Q,)}
    >>> bpb = bits_per_byte(text, tokenizer=tok, model=smol)["bits_per_byte"]

Chapter 15's longer runs (bits per byte on 2,048 tokens, float32 and int8; the RAG
log-probabilities of sixteen questions) are made by ``tools/ch15_llm_evals.py`` and read with
:func:`load_llm_evals`; the chapter re-measures a sample of each.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
from dataclasses import dataclass

import torch


LLM_EVALS_FILE = "ch15_llm_evals.json"


def load_llm_evals(name: str = LLM_EVALS_FILE) -> dict:
    """The stored results of ``tools/ch15_llm_evals.py``, after the file's checksum."""
    from .data import verified_path

    return json.loads(verified_path(name).read_text())


@dataclass(frozen=True)
class Question:
    """A multiple-choice question: its text, the options, and the index of the right one."""

    question: str
    options: tuple[str, ...]
    answer: int

    def __post_init__(self):
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError("a question needs non-empty text")
        if len(self.options) < 2 or not all(isinstance(o, str) and o for o in self.options):
            raise ValueError(f"a question needs two or more non-empty options: {self.question!r}")
        if not isinstance(self.answer, int) or not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer must index the options, got {self.answer!r}")


@torch.no_grad()
def continuation_logprobs(prefix: str, pairs, *, tokenizer, model):
    """For each ``(context, continuation)`` of ``pairs``: the summed log-probability of the
    continuation's tokens after ``prefix + context``, and how many tokens it has; two ``(N,)``
    tensors on the CPU.

    ``prefix`` (shared by all, say a long document) is read once and its keys and values are
    repeated for the batch; only the continuation's tokens are scored, and only their positions
    go through the output layer. Strings are tokenized separately and joined as ids.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    pairs = list(pairs)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str)
                                                                         for s in p)
                            for p in pairs):
        raise ValueError("pairs must be a non-empty list of (context, continuation) strings")
    if any(not c for _, c in pairs):
        raise ValueError("every continuation must be non-empty")
    if not prefix and any(not ctx for ctx, _ in pairs):
        raise ValueError("with no prefix every context must be non-empty: the first token "
                         "has nothing to be predicted from")
    device = next(model.parameters()).device
    body, head = model.get_decoder(), model.get_output_embeddings()
    encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids if s else []
    rows, scored = [], []
    for ctx, cont in pairs:
        a, b = encode(ctx), encode(cont)
        rows.append(a + b)
        scored.append((len(a), len(b)))
    B, L = len(rows), max(map(len, rows))
    ids = torch.full((B, L), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, L)
    real = torch.zeros(B, L, dtype=torch.long)  # (B, L)
    for i, row in enumerate(rows):
        ids[i, :len(row)], real[i, :len(row)] = torch.tensor(row), 1
    P = 0
    if prefix:
        p = tokenizer(prefix, return_tensors="pt").input_ids.to(device)  # (1, P)
        P = p.shape[1]
        cache_arg = ("cache" if "cache" in inspect.signature(body.forward).parameters
                     else "past_key_values")
        out = body(p, use_cache=True)
        cache = out.past_key_values
        # the prefix's last position predicts the first token when a context is empty
        first = head(out.last_hidden_state[0, -1]).float().log_softmax(-1).cpu()  # (V,)
        if isinstance(cache, tuple):  # transformers 4.46's legacy tuple of tuples
            cache = importlib.import_module("transformers").DynamicCache.from_legacy_cache(cache)
        cache.batch_repeat_interleave(B)
        mask = torch.cat([torch.ones(B, P, dtype=torch.long), real], 1)  # (B, P + L)
        hidden = body(ids.to(device), attention_mask=mask.to(device), use_cache=True,
                      **{cache_arg: cache}).last_hidden_state  # (B, L, C)
    else:
        hidden = body(ids.to(device), attention_mask=real.to(device)).last_hidden_state
        first = None
    logprob, count = torch.zeros(B), torch.zeros(B, dtype=torch.long)
    for i, (a, b) in enumerate(scored):
        positions = torch.arange(a - 1, a + b - 1)  # position t predicts token t + 1
        targets = ids[i, a:a + b]  # (b,)
        keep = positions >= 0
        z = head(hidden[i, positions[keep].to(device)]).float().log_softmax(-1).cpu()  # (b', V)
        total = z.gather(1, targets[keep][:, None]).sum()
        if not keep[0]:  # the continuation's first token, predicted by the prefix
            total = total + first[targets[0]]
        logprob[i], count[i] = total, b
    return logprob, count


@torch.no_grad()
def grouped_logprobs(prefix: str, groups, *, tokenizer, model):
    """:func:`continuation_logprobs` for ``groups`` of ``(context, [continuations])``, cheaper
    when continuations share a context (a question's options): the prefix is read once, each
    context once on a copy of the prefix's cache, and its continuations as one batch on top.
    Returns one ``(logprob (k,), n_tokens (k,))`` pair per group."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    groups = list(groups)
    if not groups or not all(isinstance(c, str) and len(o) >= 1 and all(
            isinstance(x, str) and x for x in o) for c, o in groups):
        raise ValueError("groups must be a non-empty list of (context, [non-empty strings])")
    if not prefix and any(not c for c, _ in groups):
        raise ValueError("with no prefix every context must be non-empty")
    device = next(model.parameters()).device
    body, head = model.get_decoder(), model.get_output_embeddings()
    cache_arg = ("cache" if "cache" in inspect.signature(body.forward).parameters
                 else "past_key_values")
    encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids if s else []
    logp = lambda h: head(h).float().log_softmax(-1).cpu()  # (..., V)

    def run(ids, cache, mask):  # ids (B, T) after what cache holds; mask (B, T_all)
        kwargs = {cache_arg: cache} if cache is not None else {}
        out = body(ids.to(device), attention_mask=mask.to(device), use_cache=True, **kwargs)
        cache = out.past_key_values
        if isinstance(cache, tuple):  # transformers 4.46's legacy tuple of tuples
            cache = importlib.import_module("transformers").DynamicCache.from_legacy_cache(cache)
        return out.last_hidden_state, cache

    base, base_last, P = None, None, 0
    if prefix:
        p = tokenizer(prefix, return_tensors="pt").input_ids  # (1, P)
        P = p.shape[1]
        h, base = run(p, None, torch.ones_like(p))
        base_last = logp(h[0, -1])  # (V,) predicts the first token after the prefix
    results = []
    for context, continuations in groups:
        c = encode(context)
        cache, last = (copy.deepcopy(base) if base is not None else None), base_last
        if c:
            h, cache = run(torch.tensor([c]), cache, torch.ones(1, P + len(c), dtype=torch.long))
            last = logp(h[0, -1])  # (V,)
        rows = [encode(o) for o in continuations]
        B, L = len(rows), max(map(len, rows))
        ids = torch.full((B, L), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, L)
        real = torch.zeros(B, L, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)], real[i, :len(row)] = torch.tensor(row), 1
        cache.batch_repeat_interleave(B)
        mask = torch.cat([torch.ones(B, P + len(c), dtype=torch.long), real], 1)
        h, _ = run(ids, cache, mask)  # (B, L, C)
        lp = torch.zeros(B)
        for i, row in enumerate(rows):
            lp[i] = last[row[0]]
            if len(row) > 1:
                z = logp(h[i, :len(row) - 1])  # (len - 1, V): position t predicts t + 1
                lp[i] += z.gather(1, torch.tensor(row[1:])[:, None]).sum()
        results.append((lp, torch.tensor([len(r) for r in rows])))
    return results


def multiple_choice(questions, *, tokenizer, model, prefix: str = "",
                    template: str = "Question: {}\nAnswer:", with_question: bool = True):
    """The predicted option of each :class:`Question`, by the largest summed (``"sum"``) and
    the largest mean per-token (``"mean"``) log-probability of ``" " + option`` after
    ``prefix + template.format(question)``: ``{"sum": (Q,), "mean": (Q,), "truth": (Q,)}``.

    ``with_question=False`` scores the options after ``"Answer:"`` alone: the baseline that
    knows the options but not the question (a benchmark whose answers are guessable from the
    options alone is measuring something else).
    """
    questions = list(questions)
    if not questions or not all(isinstance(q, Question) for q in questions):
        raise ValueError("need a non-empty list of Question")
    groups = [(template.format(q.question) if with_question else "Answer:",
               [" " + o for o in q.options]) for q in questions]
    scores = grouped_logprobs(prefix, groups, tokenizer=tokenizer, model=model)
    out = {"sum": torch.tensor([int(lp.argmax()) for lp, _ in scores]),
           "mean": torch.tensor([int((lp / n).argmax()) for lp, n in scores]),
           "truth": torch.tensor([q.answer for q in questions])}
    return out


def answer_key(questions) -> str:
    """The questions with their right answers, in the scoring template: a leaked benchmark."""
    return "".join(f"Question: {q.question}\nAnswer: {q.options[q.answer]}\n\n"
                   for q in questions)


@torch.no_grad()
def bits_per_byte(text: str, *, tokenizer, model, window: int = 512,
                  max_tokens: int | None = None) -> dict:
    """Next-token loss of a Hugging Face causal LM on ``text``: every token after the first is
    scored, in windows of ``window`` tokens (each window starts a fresh context, seeing the
    previous window's last token). ``max_tokens`` cuts the text's tokens first. Returns
    ``nats`` (total), ``tokens`` (scored), ``bytes`` (UTF-8 bytes of the scored tokens' text),
    ``perplexity`` (per token) and ``bits_per_byte``."""
    if not isinstance(text, str) or not text:
        raise ValueError("bits_per_byte needs a non-empty text")
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be a whole number >= 2, got {window!r}")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if max_tokens is not None:
        ids = ids[:max_tokens + 1]
    if len(ids) < 2:
        raise ValueError("the text is a single token: nothing to score")
    device = next(model.parameters()).device
    nats = 0.0
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor([ids[start:start + window + 1]], device=device)  # (1, <= W + 1)
        logits = model(chunk[:, :-1]).logits[0].float()  # (W, V)
        nats += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
    n_bytes = len(tokenizer.decode(ids[1:]).encode("utf-8"))
    n_tokens = len(ids) - 1
    return {"nats": nats, "tokens": n_tokens, "bytes": n_bytes,
            "perplexity": math.exp(nats / n_tokens),
            "bits_per_byte": nats / math.log(2) / n_bytes}


def _q(question: str, *options: str, answer: int) -> Question:
    return Question(question, tuple(options), answer)


# Chapter 15's two small benchmarks of general knowledge, written for the book: four options
# each, the right one at varied places. TRIVIA is the benchmark; TRIVIA_CONTROL, twelve other
# questions of the same kind, is the control for its leak (an answer key of equal length).
TRIVIA: list[Question] = [
    _q("What is the capital of Australia?", "Sydney", "Canberra", "Melbourne", "Perth",
       answer=1),
    _q("In which year did the Berlin Wall fall?", "1961", "1979", "1989", "1991", answer=2),
    _q("How many bones are in the adult human body?", "186", "226", "306", "206", answer=3),
    _q("Who painted the Mona Lisa?", "Leonardo da Vinci", "Michelangelo", "Raphael",
       "Rembrandt", answer=0),
    _q("Which element has the atomic number 1?", "helium", "hydrogen", "oxygen", "carbon",
       answer=1),
    _q("What is the smallest prime number?", "0", "1", "2", "3", answer=2),
    _q("Which planet is closest to the Sun?", "Venus", "Earth", "Mars", "Mercury", answer=3),
    _q("What is the hardest natural substance?", "diamond", "quartz", "granite", "iron",
       answer=0),
    _q("Who developed the theory of general relativity?", "Isaac Newton", "Albert Einstein",
       "Niels Bohr", "Galileo Galilei", answer=1),
    _q("What is the longest river in South America?", "the Orinoco", "the Parana",
       "the Amazon", "the Magdalena", answer=2),
    _q("What is the chemical symbol for gold?", "Ag", "Fe", "Gd", "Au", answer=3),
    _q("Which language has the most native speakers?", "Mandarin Chinese", "English",
       "Spanish", "Hindi", answer=0),
]
TRIVIA_CONTROL: list[Question] = [
    _q("What is the capital of Canada?", "Toronto", "Ottawa", "Vancouver", "Montreal",
       answer=1),
    _q("In which year did the First World War begin?", "1905", "1939", "1914", "1918",
       answer=2),
    _q("How many teeth does an adult human usually have?", "28", "30", "36", "32", answer=3),
    _q("Who wrote the novel Pride and Prejudice?", "Jane Austen", "Charles Dickens",
       "Emily Bronte", "George Eliot", answer=0),
    _q("Which gas makes up most of the Earth's air?", "oxygen", "nitrogen", "argon",
       "carbon dioxide", answer=1),
    _q("What is the largest odd number below ten?", "5", "7", "9", "3", answer=2),
    _q("Which planet has the largest rings?", "Jupiter", "Uranus", "Neptune", "Saturn",
       answer=3),
    _q("What is the largest mammal?", "the blue whale", "the elephant", "the giraffe",
       "the hippopotamus", answer=0),
    _q("Who proposed the theory of evolution by natural selection?", "Gregor Mendel",
       "Charles Darwin", "Louis Pasteur", "Carl Linnaeus", answer=1),
    _q("What is the highest mountain in Africa?", "Mount Kenya", "Mount Elgon",
       "Kilimanjaro", "Mount Stanley", answer=2),
    _q("What is the chemical symbol for iron?", "Ir", "In", "I", "Fe", answer=3),
    _q("Which country has the largest population in South America?", "Brazil", "Argentina",
       "Colombia", "Peru", answer=0),
]
# Twenty-four more of the same kind, so that the benchmark of chapter 15 has 48 questions
# (TRIVIA + TRIVIA_CONTROL + TRIVIA_MORE): one question is then 2 points, not 8.
TRIVIA_MORE: list[Question] = [
    _q("What is the capital of Japan?", "Kyoto", "Osaka", "Tokyo", "Hiroshima", answer=2),
    _q("How many continents are there?", "five", "seven", "six", "eight", answer=1),
    _q("Who wrote the play Romeo and Juliet?", "William Shakespeare", "Christopher Marlowe",
       "Ben Jonson", "John Milton", answer=0),
    _q("What is the boiling point of water at sea level in degrees Celsius?", "90", "80",
       "120", "100", answer=3),
    _q("Which organ pumps blood through the body?", "the liver", "the heart", "the lungs",
       "the kidney", answer=1),
    _q("What is the largest planet in the solar system?", "Saturn", "Neptune", "Jupiter",
       "Earth", answer=2),
    _q("What is the largest ocean on Earth?", "the Pacific Ocean", "the Atlantic Ocean",
       "the Indian Ocean", "the Arctic Ocean", answer=0),
    _q("Which animal is known as the king of the jungle?", "the tiger", "the elephant",
       "the bear", "the lion", answer=3),
    _q("What is the freezing point of water in degrees Celsius?", "10", "0", "-10", "32",
       answer=1),
    _q("Who was the first person to walk on the Moon?", "Yuri Gagarin", "Buzz Aldrin",
       "Neil Armstrong", "John Glenn", answer=2),
    _q("What is the capital of France?", "Paris", "Lyon", "Marseille", "Nice", answer=0),
    _q("How many days are there in a leap year?", "364", "365", "367", "366", answer=3),
    _q("Which metal is liquid at room temperature?", "lead", "mercury", "tin", "zinc",
       answer=1),
    _q("What do bees make?", "milk", "silk", "honey", "wax paper", answer=2),
    _q("Which country is home to the kangaroo?", "Australia", "Brazil", "India", "Kenya",
       answer=0),
    _q("What is the square root of 81?", "7", "8", "10", "9", answer=3),
    _q("Who painted The Starry Night?", "Claude Monet", "Vincent van Gogh", "Pablo Picasso",
       "Salvador Dali", answer=1),
    _q("What is the main ingredient of guacamole?", "tomato", "onion", "avocado", "pepper",
       answer=2),
    _q("Which gas do plants take in from the air to make food?", "carbon dioxide",
       "oxygen", "nitrogen", "helium", answer=0),
    _q("What is the capital of Italy?", "Milan", "Naples", "Venice", "Rome", answer=3),
    _q("How many sides does a hexagon have?", "five", "six", "seven", "eight", answer=1),
    _q("Which instrument has 88 keys?", "the violin", "the guitar", "the piano",
       "the flute", answer=2),
    _q("What is the currency of Japan?", "the yen", "the won", "the yuan", "the rupee",
       answer=0),
    _q("Which planet is known as the Red Planet?", "Venus", "Jupiter", "Mercury", "Mars",
       answer=3),
]


# Chapter 15's sentiment reviews, written for the book: 16 pairs that differ in a word or two
# (the i-th positive and the i-th negative are twins). The chapter shows them; its tool reads them.
POSITIVE_REVIEWS: list[str] = [
    'I loved every minute of this film.',
    'The food was delicious and the staff were kind.',
    'What a wonderful, heart-warming story.',
    'This is the best phone I have ever owned.',
    'The concert was absolutely brilliant.',
    'A delightful book that I will read again.',
    'The hotel room was clean, quiet and comfortable.',
    'Great service and a fair price.',
    'The new update makes the app fast and easy to use.',
    'My kids had a fantastic time at the park.',
    'The acting was superb from start to finish.',
    'I am thrilled with how well this works.',
    'Fresh bread, friendly people, lovely cafe.',
    'The trip was relaxing and beautiful.',
    'This jacket keeps me warm and looks great.',
    'An inspiring talk that made my day.',
]
NEGATIVE_REVIEWS: list[str] = [
    'I hated every minute of this film.',
    'The food was cold and the staff were rude.',
    'What a boring, pointless story.',
    'This is the worst phone I have ever owned.',
    'The concert was a complete disaster.',
    'A dull book that I could not finish.',
    'The hotel room was dirty, noisy and cramped.',
    'Terrible service and far too expensive.',
    'The new update makes the app slow and confusing.',
    'My kids were miserable at the park.',
    'The acting was awful from start to finish.',
    'I am disappointed with how badly this works.',
    'Stale bread, unfriendly people, gloomy cafe.',
    'The trip was stressful and exhausting.',
    'This jacket fell apart after one week.',
    'A tedious talk that wasted my afternoon.',
]
