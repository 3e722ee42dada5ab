"""Chapter 15's expensive SmolLM2 measurements, computed once and stored.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch15_llm_evals.py

Writes data/ch15_llm_evals.json (about eight minutes of CPU on one thread):

- ``bits_per_byte``: SmolLM2 (the 4-bit GGUF read as float32) and its int8 copy
  (``dlbook.quantize.quantize_model``, lm_head skipped) on the first 2,048 tokens of the last
  tenth of *Moby-Dick*, and on the first 256 (the sample the chapter re-measures);
- ``rag``: for the 16 questions of ``dlbook.rag.MOBY_QUESTIONS``, the passages of each condition
  (``dlbook.rag.rag_contexts``), the teacher-forced log-probability of the first accepted answer
  in each condition (``dlbook.rag.answer_logprobs``), and the greedy replies (8 tokens) closed-book
  and with MiniLM's two passages.

Review r8 added (``--parts`` recomputes only the named parts and keeps the others):

- ``rag`` also holds two more controls, ``mention`` (one passage, outside MiniLM's 200 nearest,
  that names the gold answer: the name without the question's context) and ``wrong mention``
  (one such passage naming the *next* question's answer and not this one's), and ``choice``:
  for every condition, the log-probability of each of the sixteen gold answers as the reply
  (multiple choice over the answer set, ``dlbook.evaluation.grouped_logprobs``);
- ``mc``: multiple choice by log-likelihood on the 48 questions of ``TRIVIA + TRIVIA_CONTROL +
  TRIVIA_MORE``, with and without the question (per question right or wrong), and the leak in
  both directions (TRIVIA with its own key / TRIVIA_CONTROL's, and the other way round);
- ``four_bit``: bits per byte of SmolLM2 with every block linear rounded to 4 bits with a
  scale per row (``fake_quantize``) and NF4 with a scale per 64 (``block_quantize``);
- ``chat``: the greedy replies (8 tokens) of chapter 15's chat-template sentiment prompts,
  zero-shot and with one solved turn (three draws), with each reply's first token;
- ``speculative``: greedy speculative decoding (gamma 3, 32 new tokens) on 5 held-out prompts
  of 100 tokens with three drafts (SmolLM2 rounded to NF4, prompt lookup, SmolLM2's first 8
  blocks), accepted, proposed and refused guesses, tokens per target pass and CPU seconds (one thread) of each run and of
  plain greedy decoding; and the CPU time of one target pass over 1 and over gamma + 1 tokens;
- ``rag_no_demo``: the 16 greedy replies closed book and with MiniLM's passages, with no solved
  example in the chat (``rag_messages(..., demo=False)``), 16 new tokens each.

The chapter re-measures a sample of each (256 tokens float32 and int8; one question's
log-probabilities closed-book and with MiniLM's passages, and its reply with them) and checks
it against the file.
"""
from __future__ import annotations

import argparse
import copy
import random
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from dlbook.data import load_moby_dick
from dlbook.evaluation import (NEGATIVE_REVIEWS, POSITIVE_REVIEWS, TRIVIA, TRIVIA_CONTROL, TRIVIA_MORE, answer_key, bits_per_byte,
                               grouped_logprobs, multiple_choice)
from dlbook.llama import from_hf
from dlbook.pretrained import embed, load_smollm2
from dlbook.quantize import block_quantize, fake_quantize, quantize_model
from dlbook.rag import (MOBY_QUESTIONS, answer_logprobs, chunk_text, contains_answer,
                        generate_replies, load_index, rag_contexts, rag_messages, retrieve)
from dlbook.speculative import LookupDraft, early_exit, greedy, new_caches, speculative_greedy

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "ch15_llm_evals.json"
N_HELD, N_SAMPLE, K = 2048, 256, 2


PARTS = ("bits_per_byte", "rag", "mc", "four_bit", "speculative", "chat", "rag_no_demo")
N_SPEC, GAMMA, PROMPT_TOKENS = 32, 3, 100
SPEC_STARTS = (0, 5000, 20000, 40000, 60000)  # characters into the held-out tenth


def held_prompts(tokenizer, held_text):
    """Five prompts of 100 tokens, each from the start of a paragraph of the held-out text."""
    out = []
    for s in SPEC_STARTS:
        start = held_text.index("\n\n", s) + 2
        ids = tokenizer(held_text[start:start + 2000], add_special_tokens=False).input_ids
        out.append(ids[:PROMPT_TOKENS])
    return out


def rounded_copy(smol, rounding):
    """A copy of SmolLM2 with every linear layer of its blocks rounded (the head, tied to the
    embedding, stays)."""
    m = copy.deepcopy(smol)
    with torch.no_grad():
        for mod in m.model.layers.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(rounding(mod.weight))
    return m


def part_bits_per_byte(tokenizer, smol, held_text):
    smol_int8 = quantize_model(copy.deepcopy(smol), skip="lm_head")
    return {name: {str(n): bits_per_byte(held_text, tokenizer=tokenizer, model=m, max_tokens=n)
                   for n in (N_HELD, N_SAMPLE)}
            for name, m in [("float32", smol), ("int8", smol_int8)]}


def part_four_bit(tokenizer, smol, held_text):
    out = {}
    for name, f in [("a scale per row", lambda w: fake_quantize(w, 4)),
                    ("NF4, a scale per 64", lambda w: block_quantize(w, 64, levels="nf4"))]:
        m = rounded_copy(smol, f)
        out[name] = {str(n): bits_per_byte(held_text, tokenizer=tokenizer, model=m,
                                           max_tokens=n) for n in (N_HELD, N_SAMPLE)}
        del m
    return out


def part_rag(tokenizer, smol, text):
    passages = chunk_text(text)
    index, _ = load_index()
    questions = [q for q, _ in MOBY_QUESTIONS]
    accepted = [list(a) for _, a in MOBY_QUESTIONS]
    q_vectors = embed(questions)
    found = retrieve(q_vectors, index, K)
    contexts = rag_contexts(questions, accepted, passages, q_vectors, index, found.tolist())
    # The mention controls: one passage far from the question (outside MiniLM's 200 nearest)
    # that names this question's answer, or the next question's answer and not this one's.
    ranked = (q_vectors.float() @ index.float().T).argsort(dim=1, descending=True)
    rng = np.random.default_rng(0)
    mention, wrong = [], []
    for i, a in enumerate(accepted):
        near = set(ranked[i].tolist()[:200])
        other = accepted[(i + 1) % len(accepted)]
        far = [j for j in range(len(passages)) if j not in near]
        mention.append([int(rng.choice([j for j in far if contains_answer(passages[j], a)]))])
        wrong.append([int(rng.choice([j for j in far if contains_answer(passages[j], other)
                                      and not contains_answer(passages[j], a)]))])
    contexts["mention"], contexts["wrong mention"] = mention, wrong

    def prompt(q, ids):
        return tokenizer.apply_chat_template(rag_messages(q, [passages[j] for j in ids]),
                                             tokenize=False, add_generation_prompt=True)

    prompts = {c: [prompt(q, ids) for q, ids in zip(questions, rows)]
               for c, rows in contexts.items()}
    gold = [a[0] for a in accepted]
    logprob = {c: answer_logprobs(p, gold, tokenizer=tokenizer, model=smol).tolist()
               for c, p in prompts.items()}
    choice = {}  # condition -> (Q, 16): log p(each gold answer) as the reply to each question
    for c, ps in prompts.items():
        rows = grouped_logprobs("", [(p, gold) for p in ps], tokenizer=tokenizer, model=smol)
        choice[c] = [lp.tolist() for lp, _ in rows]
    replies = {c: generate_replies(prompts[c], tokenizer=tokenizer, model=smol,
                                   max_new_tokens=8)
               for c in ("closed book", "retrieved")}
    return {"questions": questions, "gold": gold, "contexts": contexts, "logprob": logprob,
            "choice": choice, "replies": replies}


RAG_NO_DEMO_TOKENS = 16


def part_rag_no_demo(tokenizer, smol, text):
    """The 16 greedy replies again, closed book and with the retrieved passages, with no solved
    example in the chat (the example's answer, Ahab, is copied by the reader). Without the
    example the reader restates the question first, so it gets 16 new tokens, not 8."""
    passages = chunk_text(text)
    index, _ = load_index()
    questions = [q for q, _ in MOBY_QUESTIONS]
    found = retrieve(embed(questions), index, K).tolist()
    out = {}
    for c, rows in (("closed book", [[] for _ in questions]), ("retrieved", found)):
        prompts = [tokenizer.apply_chat_template(
            rag_messages(q, [passages[j] for j in ids], demo=False), tokenize=False,
            add_generation_prompt=True) for q, ids in zip(questions, rows)]
        out[c] = generate_replies(prompts, tokenizer=tokenizer, model=smol,
                                  max_new_tokens=RAG_NO_DEMO_TOKENS)
    return out


def part_mc(tokenizer, smol):
    bench = TRIVIA + TRIVIA_CONTROL + TRIVIA_MORE
    right = lambda p, r="sum": (p[r] == p["truth"]).int().tolist()
    q = multiple_choice(bench, tokenizer=tokenizer, model=smol)
    alone = multiple_choice(bench, tokenizer=tokenizer, model=smol, with_question=False)
    leak = {}
    for name, test, other in [("TRIVIA", TRIVIA, TRIVIA_CONTROL),
                              ("TRIVIA_CONTROL", TRIVIA_CONTROL, TRIVIA)]:
        leak[name] = {
            "no context": right(multiple_choice(test, tokenizer=tokenizer, model=smol)),
            "another test's answers": right(multiple_choice(
                test, tokenizer=tokenizer, model=smol, prefix=answer_key(other))),
            "this test's answers": right(multiple_choice(
                test, tokenizer=tokenizer, model=smol, prefix=answer_key(test)))}
    return {"n": len(bench),
            "question": {"sum": right(q), "mean": right(q, "mean")},
            "options alone": {"sum": right(alone), "mean": right(alone, "mean")},
            "leak": leak}


@torch.no_grad()
def part_speculative(tokenizer, smol, held_text):
    book = from_hf(smol)
    nf4 = from_hf(smol, copy=True)
    for m in [*nf4.blocks.modules(), nf4.head]:
        if isinstance(m, torch.nn.Linear):
            m.weight = torch.nn.Parameter(block_quantize(m.weight, 64, "nf4"))
    prompts = held_prompts(tokenizer, held_text)
    runs = {"greedy": [], "NF4 SmolLM2": [], "prompt lookup": [], "first 8 blocks": []}
    for ids in prompts:
        idx = torch.tensor([ids])
        t0 = time.process_time()
        ref, passes = greedy(book, idx, N_SPEC)
        runs["greedy"].append({"cpu_s": time.process_time() - t0, "target_passes": passes,
                               "tokens": ref[0, len(ids):].tolist()})
        for name, draft in [("NF4 SmolLM2", nf4), ("prompt lookup", LookupDraft(49152)),
                            ("first 8 blocks", early_exit(book, 8))]:
            t0 = time.process_time()
            out, st = speculative_greedy(book, draft, idx, N_SPEC, gamma=GAMMA)
            runs[name].append({"cpu_s": time.process_time() - t0,
                               "same": bool(torch.equal(out, ref)),
                               "accepted": st.accepted, "proposed": st.proposed,
                               "rejected": st.rejected,
                               "target_passes": st.target_passes,
                               "draft_passes": st.draft_passes, "tokens": st.tokens})
    # One target pass over 1 and over gamma + 1 new tokens after a 132-token cache (the
    # middle of a run), median of 15 (CPU seconds, one thread).
    idx = torch.tensor([prompts[0] + runs["greedy"][0]["tokens"]])
    base = new_caches(book)
    book(idx[:, :PROMPT_TOKENS + N_SPEC], caches=base)
    verify = {}
    for n in (1, GAMMA + 1, 1, GAMMA + 1):
        times = []
        for _ in range(15):
            c = copy.deepcopy(base)
            t0 = time.process_time()
            book(idx[:, :n], caches=c)
            times.append(time.process_time() - t0)
        verify[str(n)] = statistics.median(times)  # the second round, warmed up
    return {"n_new": N_SPEC, "gamma": GAMMA, "prompt_tokens": PROMPT_TOKENS,
            "starts": list(SPEC_STARTS), "prompts": prompts, "runs": runs,
            "verify_pass_cpu_s": verify}


ASK = "Is this review positive or negative? Answer with one word."


def chat_prompt(tokenizer, review, demos=()):
    """The chapter's chat prompt: solved turns (user asks, assistant answers), then the review."""
    turns = []
    for s, l in demos:
        turns += [{"role": "user", "content": f"{ASK}\n\n{s}"},
                  {"role": "assistant", "content": l}]
    turns.append({"role": "user", "content": f"{ASK}\n\n{review}"})
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def chat_replies(tokenizer, smol, prompts):
    """The chapter's ``chat_replies``: greedy, 8 new tokens, one left-padded batch; for each
    prompt its first token (decoded, stripped, lower case) and the whole reply."""
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = "right"
    out = smol.generate(**batch, max_new_tokens=8, do_sample=False,
                        pad_token_id=tokenizer.eos_token_id)
    new = out[:, batch["input_ids"].shape[1]:]
    return [(tokenizer.decode(r[0]).strip().lower(),
             tokenizer.decode(r, skip_special_tokens=True).strip()) for r in new]


def part_chat(tokenizer, smol):
    """Chapter 15's chat-template sentiment replies: the chapter's split of the review pairs,
    zero-shot and with one solved turn (three draws of the demonstration), one batch each."""
    pairs = list(zip(POSITIVE_REVIEWS, NEGATIVE_REVIEWS))
    random.Random(0).shuffle(pairs)
    demo_pool = [(p, "positive") for p, _ in pairs[:8]] + [(n, "negative") for _, n in pairs[:8]]
    test = [(p, "positive") for p, _ in pairs[8:]] + [(n, "negative") for _, n in pairs[8:]]
    random.Random(1).shuffle(demo_pool)
    random.Random(2).shuffle(test)
    settings = {"zero-shot": []}
    settings.update({f"one solved turn, draw {d}": random.Random(d).sample(demo_pool, 1)
                     for d in (0, 1, 2)})
    return {"test_reviews": test,
            "settings": {name: {"demos": demos, "replies": chat_replies(
                tokenizer, smol, [chat_prompt(tokenizer, s, demos) for s, _ in test])}
                for name, demos in settings.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    tokenizer, smol = load_smollm2(torch.device("cpu"))
    text = load_moby_dick()
    held_text = text[int(0.9 * len(text)):]
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    result.update({"n_held": N_HELD, "n_sample": N_SAMPLE, "k": K})
    # Each part's inputs: the whole book (retrieval) or its held-out tenth (loss, decoding).
    runs = {
        "bits_per_byte": lambda: part_bits_per_byte(tokenizer, smol, held_text),
        "four_bit": lambda: part_four_bit(tokenizer, smol, held_text),
        "rag": lambda: part_rag(tokenizer, smol, text),
        "mc": lambda: part_mc(tokenizer, smol),
        "speculative": lambda: part_speculative(tokenizer, smol, held_text),
        "rag_no_demo": lambda: part_rag_no_demo(tokenizer, smol, text),
        "chat": lambda: part_chat(tokenizer, smol),
    }
    assert set(runs) == set(PARTS), "every part in PARTS needs a runner"
    for part in args.parts:
        t0 = time.process_time()
        result[part] = runs[part]()
        print(f"{part}: {time.process_time() - t0:.0f} CPU s", flush=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    print("->", OUT)

if __name__ == "__main__":
    main()
