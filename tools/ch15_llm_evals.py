"""Chapter 15's expensive SmolLM2 measurements, computed once and stored.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch15_llm_evals.py

Writes data/ch15_llm_evals.json (about three minutes of CPU on one thread):

- ``bits_per_byte``: SmolLM2 (the 4-bit GGUF read as float32) and its int8 copy
  (``dlbook.quantize.quantize_model``, lm_head skipped) on the first 2,048 tokens of the last
  tenth of *Moby-Dick*, and on the first 256 (the sample the chapter re-measures);
- ``rag``: for the 16 questions of ``dlbook.rag.MOBY_QUESTIONS``, the passages of each condition
  (``dlbook.rag.rag_contexts``), the teacher-forced log-probability of the first accepted answer
  in each condition (``dlbook.rag.answer_logprobs``), and the greedy replies (8 tokens) closed-book
  and with MiniLM's two passages.

The chapter re-measures a sample of each (256 tokens float32 and int8; one question's
log-probabilities closed-book and with MiniLM's passages, and its reply with them) and checks
it against the file.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from dlbook.data import load_moby_dick
from dlbook.evaluation import bits_per_byte
from dlbook.pretrained import embed, load_smollm2
from dlbook.quantize import quantize_model
from dlbook.rag import (MOBY_QUESTIONS, answer_logprobs, chunk_text, generate_replies,
                        load_index, rag_contexts, rag_messages, retrieve)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "ch15_llm_evals.json"
N_HELD, N_SAMPLE, K = 2048, 256, 2


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    tokenizer, smol = load_smollm2(torch.device("cpu"))
    text = load_moby_dick()
    held_text = text[int(0.9 * len(text)):]
    smol_int8 = quantize_model(copy.deepcopy(smol), skip="lm_head")
    bpb = {name: {str(n): bits_per_byte(held_text, tokenizer=tokenizer, model=m, max_tokens=n)
                  for n in (N_HELD, N_SAMPLE)}
           for name, m in [("float32", smol), ("int8", smol_int8)]}
    del smol_int8
    passages = chunk_text(text)
    index, _ = load_index()
    questions = [q for q, _ in MOBY_QUESTIONS]
    accepted = [list(a) for _, a in MOBY_QUESTIONS]
    q_vectors = embed(questions)
    found = retrieve(q_vectors, index, K)
    contexts = rag_contexts(questions, accepted, passages, q_vectors, index, found.tolist())

    def prompt(q, ids):
        return tokenizer.apply_chat_template(rag_messages(q, [passages[j] for j in ids]),
                                             tokenize=False, add_generation_prompt=True)

    prompts = {c: [prompt(q, ids) for q, ids in zip(questions, rows)]
               for c, rows in contexts.items()}
    gold = [a[0] for a in accepted]
    logprob = {c: answer_logprobs(p, gold, tokenizer=tokenizer, model=smol).tolist()
               for c, p in prompts.items()}
    replies = {c: generate_replies(prompts[c], tokenizer=tokenizer, model=smol,
                                   max_new_tokens=8)
               for c in ("closed book", "retrieved")}
    result = {"n_held": N_HELD, "n_sample": N_SAMPLE, "k": K, "bits_per_byte": bpb,
              "rag": {"questions": questions, "gold": gold, "contexts": contexts,
                      "logprob": logprob, "replies": replies}}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for c, v in logprob.items():
        print(f"{c:>12}: mean log p(gold) {sum(v) / len(v):.2f}")
    print({k: v[str(N_HELD)]["bits_per_byte"] for k, v in bpb.items()}, "->", OUT)


if __name__ == "__main__":
    main()
