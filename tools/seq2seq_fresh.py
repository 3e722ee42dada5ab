"""Chapter 09's fixed context trained on fresh strings: data/seq2seq_fresh.json.

    nice -n 5 python tools/seq2seq_fresh.py [--seeds 0,1,2] [--hidden 32,64,128] [--add]

The committed file: `--seeds 0,1` at every width, then `--seeds 1,2 --hidden 128 --add`.

Does the fixed-context encoder-decoder (dlbook.attention.EncoderDecoder, attention=False) run
out of room, or does it memorise its 8,000 training strings? Here it never sees a string
twice: every step draws a fresh batch of 64 strings (digit_reversal with a seed of its own per
step and run, so no batch repeats the training, validation or test seeds). Same model, Adam,
gradients clipped at norm 1, at each width's learning rate from data/seq2seq_sizes.json
(picked there on a grid that brackets it; a width the size sweep did not run takes the rate
of the widest one it did, and the file says so). STEPS steps; every RECORD steps the
validation accuracy per output digit by source length (1,000 strings, seed 1); the test
accuracy (seed 2) once at the end. Runs go seed by seed (all widths for seed 0 first) and the
file is written after each, so a stopped run keeps what it finished. Seeded and deterministic
on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from dlbook.attention import EncoderDecoder, accuracy_by_length, digit_reversal
from seq2seq_curves import reversal_splits  # the same splits (tools/ is on the path)

STEPS, RECORD, BATCH, MAX_LEN, VOCAB = 6000, 250, 64, 10, 12
HIDDEN, SEEDS = (32, 64, 128), (0, 1, 2)


def run(hidden, lr, seed, val, record_at):
    torch.manual_seed(seed)
    model = EncoderDecoder(VOCAB, hidden=hidden, attention=False, out_len=MAX_LEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    curve = []
    for step in range(1, STEPS + 1):
        model.train()
        src, tgt, _ = digit_reversal(BATCH, seed=10_000_000 * (seed + 1) + step)
        _, loss = model(src, tgt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step in record_at:
            model.eval()
            curve.append(accuracy_by_length(model, *val))
    model.eval()
    return model, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = Path(__file__).resolve().parents[1] / "data"
    parser.add_argument("--out", type=Path, default=data / "seq2seq_fresh.json")
    parser.add_argument("--sizes", type=Path, default=data / "seq2seq_sizes.json")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="the seeds to run, in order (the committed file: 0 and 1 at "
                             "every width, 2 at 128 units)")
    parser.add_argument("--hidden", default=",".join(map(str, HIDDEN)),
                        help="the widths to run (default: all)")
    parser.add_argument("--add", action="store_true",
                        help="keep the runs already in --out and add the missing ones")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, val, test = reversal_splits()
    sizes = {r["hidden"]: r["best_lr"] for r in json.loads(args.sizes.read_text())["runs"]
             if r["model"] == "fixed context"}
    record_at = list(range(RECORD, STEPS + 1, RECORD))
    result = {"steps": STEPS, "record_at": record_at, "batch": BATCH, "runs": [],
              "cpu_seconds": 0}
    if args.add and args.out.exists():
        result = json.loads(args.out.read_text())
    done = {(r["hidden"], r["seed"]) for r in result["runs"]}
    for seed in map(int, args.seeds.split(",")):
        for hidden in map(int, args.hidden.split(",")):
            if (hidden, seed) in done:
                continue
            tuned = hidden in sizes
            lr = sizes[hidden] if tuned else sizes[max(sizes)]
            start = time.process_time()
            model, curve = run(hidden, lr, seed, val, record_at)
            result["runs"].append({
                "hidden": hidden, "seed": seed, "lr": lr,
                "lr_from": "its own pick" if tuned else f"the pick for {max(sizes)} units",
                "parameters": sum(p.numel() for p in model.parameters()),
                "val_curve": curve, "test_by_length": accuracy_by_length(model, *test)})
            result["cpu_seconds"] += round(time.process_time() - start)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
            print(f"H {hidden} seed {seed} lr {lr}: ten-digit val "
                  f"{[round(c[-1], 3) for c in curve]} ({time.process_time() - start:.0f} s)",
                  flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
