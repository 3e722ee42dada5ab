"""Chapter 15's retrieval index: every passage of *Moby-Dick* embedded by MiniLM, stored once.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch15_rag_index.py

Cuts data/moby_dick.txt with dlbook.rag.chunk_text (PASSAGE_CHARS characters), embeds every
passage with dlbook.pretrained.embed (MiniLM, unit vectors) and writes data/ch15_moby_index.npz:
``vectors`` (N, 384) float16, ``max_chars`` and ``text_sha256``. About two minutes of CPU on one
thread; the chapter re-embeds a sample of passages and checks them against the file.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from dlbook.data import load_moby_dick
from dlbook.pretrained import embed
from dlbook.rag import INDEX_FILE, PASSAGE_CHARS, chunk_text

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    text = load_moby_dick()
    passages = chunk_text(text, PASSAGE_CHARS)
    vectors = embed(passages, batch_size=64).numpy().astype(np.float16)  # (N, 384)
    out = ROOT / "data" / INDEX_FILE
    np.savez_compressed(out, vectors=vectors, max_chars=np.int64(PASSAGE_CHARS),
                        text_sha256=hashlib.sha256(text.encode()).hexdigest())
    print(f"{len(passages):,} passages -> {out} "
          f"({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
