"""Chapter 18's preference experiments, too long for the chapter: writes data/ch18_alignment.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch18_alignment_sweep.py

For seeds 0, 1 and 2: 1,000 pairs of the book's GPT's continuations of "The whale " (32
characters each), labelled by noisy Bradley-Terry raters on the hidden long-word scorer; a linear
reward model on word-length counts (and a bag-of-characters one beside it) tuned on 250
held-out pairs; then RLHF (KL-penalised REINFORCE) over a grid of KL coefficients, DPO over a grid
of betas on the same 750 training pairs, and best-of-n on 1,024 fresh samples, all evaluated on
the learned reward, the hidden score and KL to the reference. The chapter re-runs seed 0's
preferences, reward model and the first evaluation interval of one RLHF and one DPO run.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import alignment as al
from dlbook.gpt import load_checkpoint

OUT = ROOT / "data" / "ch18_alignment.json"
SEEDS = [0, 1, 2]
RLHF_BETAS = [0.0, 0.03, 0.1, 0.3]
DPO_BETAS = [0.03, 0.1, 0.3, 1.0]
BON_NS = [1, 2, 4, 8, 16, 32, 64, 128]
BON_POOL = 1024


def merge(parts: list[str]) -> None:
    """Join the files of runs made seed by seed (--seeds, --out) into OUT."""
    out = None
    for part in parts:
        data = json.loads(Path(part).read_text())
        if out is None:
            out = data
        else:
            assert {k: v for k, v in data.items() if k != "seeds"} == \
                {k: v for k, v in out.items() if k != "seeds"}, "parts of different sweeps"
            out["seeds"].update(data["seeds"])
    out["seeds"] = {k: out["seeds"][k] for k in sorted(out["seeds"])}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT, "seeds", list(out["seeds"]))


def main(seeds=SEEDS, path=OUT, extend: bool = False) -> None:
    """``extend``: read ``path`` and run only the settings it lacks (every run starts from its
    own seed, so the file is the one a full run with the present grids writes)."""
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    old = json.loads(Path(path).read_text()) if extend else None
    gpt, tok, _ = load_checkpoint()
    setup = al.ExperimentConfig()
    scfg = setup.sample
    scorer = al.moby_scorer()
    P = len(tok.encode(scfg.prompt))
    rcfg, dcfg = al.RLHFConfig(), al.DPOConfig()
    out = {"experiment": asdict(setup), "rlhf": asdict(rcfg), "dpo": asdict(dcfg),
           "rlhf_betas": RLHF_BETAS, "dpo_betas": DPO_BETAS, "bon_ns": BON_NS,
           "bon_pool": BON_POOL, "versions": {"torch": torch.__version__}, "seeds": {}}
    if old is not None:
        seeds = [int(k) for k in old["seeds"]]
    for seed in seeds:
        t0 = time.process_time()
        prefs = al.collect_preferences(gpt, tok, scorer, scfg, setup.n_pairs, setup.temperature,
                                       seed)
        train, val = prefs.split(setup.n_train)
        words = al.tune_reward_model(al.word_features(tok, P), train, val)
        chars = al.tune_reward_model(al.char_features(tok, P), train, val)
        reward_fn = al.linear_reward(words["w"], al.word_features(tok, P))
        rec = {"reward_model": {k: {"w": m["w"].tolist(), "decay": m["decay"],
                                    "table": [{k2: v for k2, v in row.items() if k2 != "w"}
                                              for row in m["table"]]}
                                for k, m in (("words", words), ("chars", chars))},
               "ceiling": al.agreement_ceiling(val.score_a, val.score_b, setup.temperature)}
        pool = al.sample(gpt, tok, scfg, BON_POOL, torch.Generator().manual_seed(20_000 + seed))
        r = reward_fn(pool).numpy()
        h = scorer(al.texts(tok, pool, P))[np.argsort(r, kind="stable")]
        rec["best_of_n"] = {"hidden": [float(al.best_of_n_weights(BON_POOL, n) @ h)
                                       for n in BON_NS],
                            "reward": [float(al.best_of_n_weights(BON_POOL, n) @ np.sort(r))
                                       for n in BON_NS]}
        print(f"seed {seed}: reward model {time.process_time() - t0:.0f} s", flush=True)
        rec["rlhf"] = {}
        done = old["seeds"][str(seed)] if old is not None else None
        if done is not None:
            assert done["reward_model"] == rec["reward_model"], "not the stored reward model"
            assert done["best_of_n"] == rec["best_of_n"], "not the stored best-of-n"
        for beta in RLHF_BETAS:
            if done is not None and str(beta) in done["rlhf"]:
                rec["rlhf"][str(beta)] = done["rlhf"][str(beta)]
                continue
            _, hist = al.train_rlhf(gpt, reward_fn, scorer, tok, scfg,
                                    al.RLHFConfig(beta=beta), seed)
            rec["rlhf"][str(beta)] = hist
            print(f"  rlhf beta {beta}: hidden {hist[-1]['hidden']:.2f} kl {hist[-1]['kl']:.1f}"
                  f" ({hist[-1]['cpu_seconds']:.0f} s)", flush=True)
        chosen, rejected = train.chosen_rejected()
        rec["dpo"] = {}
        for beta in DPO_BETAS:
            if done is not None and str(beta) in done["dpo"]:
                rec["dpo"][str(beta)] = done["dpo"][str(beta)]
                continue
            _, hist = al.train_dpo(gpt, chosen, rejected, reward_fn, scorer, tok, scfg,
                                   al.DPOConfig(beta=beta), seed)
            rec["dpo"][str(beta)] = hist
            print(f"  dpo beta {beta}: hidden {hist[-1]['hidden']:.2f} kl {hist[-1]['kl']:.1f}"
                  f" ({hist[-1]['cpu_seconds']:.0f} s)", flush=True)
        out["seeds"][str(seed)] = rec
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    # default: all seeds into OUT; or `--seeds 2 --out part.json` for one part, and
    # `--merge part0.json part1.json ...` to join parts into OUT; `--extend` adds to OUT the
    # settings a grid gained since it was written
    args = sys.argv[1:]
    if args[:1] == ["--extend"]:
        main(extend=True)
    elif args[:1] == ["--merge"]:
        merge(args[1:])
    elif args[:1] == ["--seeds"]:
        main([int(s) for s in args[1].split(",")], args[3] if args[2:3] == ["--out"] else OUT)
    else:
        main()
