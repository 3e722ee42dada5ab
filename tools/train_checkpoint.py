"""Train the book's longer-trained GPT checkpoint: data/gpt_moby_dick.safetensors.

    python tools/train_checkpoint.py            (or: make checkpoints)

Seeded and deterministic on one CPU thread: the `checkpoint()` preset of dlbook.gpt, character
level, on the first 90% of data/moby_dick.txt (dlbook.gpt.moby_dick_streams, the split chapter
14 uses), for a fixed number of AdamW steps with warm-up and cosine decay. The validation loss
is measured on the whole last 10% of the text. The script writes the weights as safetensors
(the config, vocabulary and these numbers in its metadata) and prints the file's sha256, which
goes into dlbook.data.CHECKSUMS and data/README.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dlbook.data import sha256_of
from dlbook.gpt import CHECKPOINT, GPT, GPTConfig, moby_dick_streams, save_checkpoint
from dlbook.training import evaluate, fit, warmup_cosine

STEPS = 2000
BATCH = 16
LR = 3e-3
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / CHECKPOINT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer, train, val = moby_dick_streams(GPTConfig.checkpoint().block_size,
                                              max_eval_windows=200)
    model = GPT(GPTConfig.checkpoint(tokenizer.vocab_size))
    cpu, wall = time.process_time(), time.perf_counter()
    history = fit(model, train, val, steps=args.steps, batch_size=BATCH, seed=SEED,
                  optimizer=lambda p: torch.optim.AdamW(p, lr=LR, weight_decay=0.1),
                  scheduler=warmup_cosine(min(100, args.steps // 10), args.steps), grad_clip=1.0,
                  eval_every=max(1, args.steps // 10), metric=None, device="cpu",
                  progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for step, loss in zip(history.x, history.val_loss):
        print(f"step {step:5d}  val loss (200 windows) {loss:.3f}")
    full_val = moby_dick_streams(model.config.block_size)[2]
    val_loss, _ = evaluate(model, full_val, metric=None)
    print(f"validation loss on the whole last 10%: {val_loss:.4f} nats/char; "
          f"{cpu:.0f} s CPU, {wall:.0f} s wall")
    save_checkpoint(model, tokenizer, args.out, steps=args.steps, batch_size=BATCH, lr=LR,
                    seed=SEED, val_loss=f"{val_loss:.4f}", train_cpu_seconds=f"{cpu:.0f}",
                    data="moby_dick.txt, first 90% of characters (last 10%: validation)",
                    script="tools/train_checkpoint.py", torch=torch.__version__)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes), sha256 {sha256_of(args.out)}")


if __name__ == "__main__":
    main()
