"""Chapter 18's preference experiments, too long for the chapter: writes data/ch18_alignment.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch18_alignment_sweep.py

or, one process per seed (in parallel), then joined:

    for s in 0 1 2 3 4; do ... tools/ch18_alignment_sweep.py --seeds $s --out part$s.json & done
    .venv/bin/python tools/ch18_alignment_sweep.py --merge part0.json part1.json ... part4.json

For seeds 0 to 4: 1,550 pairs of the book's GPT's continuations of "The whale " (32
characters each), labelled by noisy Bradley-Terry raters on the hidden long-word scorer; the
ties dropped and the first 1,000 untied pairs split 600 / 200 / 200 into train, validation (the
reward models' L2 penalty) and test (their reported accuracy). Linear reward models on
word-length counts, on the bag of characters and on the GPT's own last hidden state. Then, all
evaluated every 10 steps on the learned reward, the hidden score and KL to the reference, the
share of answers repeating a long word, the hidden score of the others and the reference's
log-likelihood per character (64 samples reported, 64 more for choosing settings and
checkpoints):
- RLHF (KL-penalised REINFORCE, 80 steps; 160 for the settings of RLHF_STEPS) over a
  one-factor grid of KL coefficients and learning rates on the word-length reward model, and
  over the same grid without beta 0 on the GPT-feature reward model;
- DPO (100 steps of 16 pairs) over a one-factor grid, on the 600 training pairs and on 2,400
  (the 600 and 1,800 more untied pairs from a fresh sample), each evaluation also recording
  ``implicit_acc``, how often DPO's implicit reward beta log(pi / pi_ref) ranks the preferred
  answer of the 200 test pairs higher;
- best-of-n on 1,024 fresh samples, with each reward model.
And trl's DPO loss on a fixed small input (trl 1.16.0's DPOTrainer._compute_loss), which the
chapter recomputes with dlbook.alignment.dpo_loss. The chapter re-runs seed 0's preferences,
reward models and the first evaluation interval of one RLHF and one DPO run.

Cost, measured (one thread each, three seeds in parallel on a shared 2-core machine): the reward
models, best-of-n, RLHF on the GPT-feature reward model and DPO on 600 pairs took 409-417 s of
CPU per seed (29 min wall); the RLHF grid on the word-length reward model and DPO on 2,400 pairs
add about 380 s per seed (their runs' cpu_seconds in the file): about 13 min of CPU per seed.
`--merge --base OLD.json part0.json ...` prints, per seed, the largest difference from a former
file on the numbers both hold (a check that a rebuild reproduces it).

Only some groups of runs, for a part to be merged into a former file (`--merge --base`):

    tools/ch18_alignment_sweep.py --seeds 0 --out part0.json --groups rlhf_gpt:added,dpo600

The groups are GROUPS ("rlhf_gpt", "dpo600", "rlhf", "dpo2400"), "rlhf_gpt:added" (only
the settings of RLHF_GPT_ADDED) and "GROUP:BETA/LR" (that one setting, e.g. rlhf:0.3/3e-4); the data and reward models are always made (about 22 s of
CPU: the runs need them), best-of-n and trl's check are then left out (the base keeps them),
and the merge replaces runs setting by setting. Each RLHF run on the GPT-feature reward model
costs about 40 s of CPU per 80 steps, a DPO run about 20 s.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import alignment as al
from dlbook.gpt import load_checkpoint

OUT = ROOT / "data" / "ch18_alignment.json"
SEEDS = [0, 1, 2, 3, 4]
# (beta, learning rate): five KL coefficients at 3e-4, and the learning rate bracketed at 0.1
RLHF_GRID = [(0.0, 3e-4), (0.03, 3e-4), (0.1, 1e-4), (0.1, 3e-4), (0.1, 1e-3), (0.3, 3e-4),
             (1.0, 3e-4)]
# steps of the runs that need more than the default 80 to move as far (their first 80 steps are
# the 80-step run's, step for step)
RLHF_STEPS = {"0.3 0.0003": 160, "1 0.0003": 160}
# RLHF with the reward model on the GPT's own features: the KL coefficient at 3e-4
# (beta, learning rate), one factor at a time: beta at 3e-4, the learning rate at beta 0.1 (down
# to 3e-5, as the pick was 1e-4 without it)
RLHF_GPT_GRID = [(0.03, 3e-4), (0.1, 3e-5), (0.1, 1e-4), (0.1, 3e-4), (0.1, 1e-3), (0.3, 3e-4),
                 (1.0, 3e-4)]
# the settings added to RLHF_GPT_GRID in the build of 7 December 2026 (group "rlhf_gpt:added")
RLHF_GPT_ADDED = [(0.03, 3e-4), (0.1, 3e-5), (0.1, 1e-4), (0.1, 1e-3)]
# the groups of runs, in the order they run; `--groups` picks some of them
GROUPS = ["rlhf_gpt", "dpo600", "rlhf", "dpo2400"]
# (beta, learning rate): the learning rate at beta 0.1, then beta at the chosen 3e-4
DPO_GRID = [(0.1, 3e-5), (0.1, 1e-4), (0.1, 3e-4), (0.1, 1e-3), (0.03, 3e-4), (0.3, 3e-4),
            (1.0, 3e-4)]
DPO_SIZES = [600, 2400]  # training pairs: the chapter's, and four times as many
EXTRA_COLLECT = 2800  # pairs sampled (ties included) for the 1,800 extra untied pairs
BON_NS = [1, 2, 4, 8, 16, 32, 64, 128]
BON_POOL = 1024


def key(beta: float, lr: float) -> str:
    return f"{beta:g} {lr:g}"


def trl_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta: float) -> float:
    """trl's DPO loss (DPOTrainer._compute_loss, loss type "sigmoid", trl 1.16.0) on sequence
    log-probabilities: each sequence is a prompt token and one completion token carrying its
    whole log-probability. trl's private method needs a stand-in for the trainer."""
    from trl.trainer.dpo_trainer import DPOTrainer

    N = len(chosen)
    token_logps = torch.cat([chosen, rejected])[:, None].double()  # (2N, 1)

    class Model(torch.nn.Module):  # what trl's fused head returns: masked token log-probs
        training = True

        def forward(self, labels=None, **_):
            logps = token_logps * (labels[:, 1:] != -100)
            zero = torch.zeros_like(logps)
            return SimpleNamespace(log_probs=logps, entropy=zero, mean_logits=zero,
                                   is_top1=zero.bool())

    acc = SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
    trainer = SimpleNamespace(
        model=Model(), accelerator=acc, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
        loss_weights=[1.0], beta=beta, use_weighting=False,
        _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1)
    completion = torch.tensor([[0, 1]] * (2 * N))  # token 0 is the prompt
    inputs = {"input_ids": torch.zeros(2 * N, 2, dtype=torch.long),
              "attention_mask": torch.ones(2 * N, 2, dtype=torch.long),
              "completion_mask": completion, "ref_chosen_logps": ref_chosen.double(),
              "ref_rejected_logps": ref_rejected.double()}
    return DPOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False).item()


def trl_check(gpt, tok, scfg, train) -> dict:
    """trl's DPO loss on the first 8 training pairs of seed 0: the checkpoint as reference and,
    as the policy, the checkpoint's log-probabilities shifted by fixed noise."""
    import trl

    P = len(tok.encode(scfg.prompt))
    c, r = (x[:8] for x in train.chosen_rejected())
    with torch.no_grad():
        ref_c, ref_r = al.sequence_logprob(gpt, c, P), al.sequence_logprob(gpt, r, P)
    g = torch.Generator().manual_seed(0)
    pi_c, pi_r = ref_c + torch.randn(8, generator=g), ref_r + torch.randn(8, generator=g)
    beta = 0.1
    return {"trl_version": trl.__version__, "beta": beta, "policy_chosen": pi_c.tolist(),
            "policy_rejected": pi_r.tolist(), "ref_chosen": ref_c.tolist(),
            "ref_rejected": ref_r.tolist(), "loss": trl_dpo_loss(pi_c, pi_r, ref_c, ref_r, beta)}


def reward_record(m: dict) -> dict:
    return {"w": m["w"].tolist(), "decay": m["decay"], "test_acc": m["test_acc"],
            "test_loss": m["test_loss"],
            "table": [{k: v for k, v in row.items() if k != "w"} for row in m["table"]]}


def dpo_pairs(gpt, tok, scorer, setup, train, seed: int, size: int):
    """The first ``size`` DPO pairs as (chosen, rejected) token tensors: the ``setup.n_train``
    training pairs, then untied pairs from a fresh sample (seed ``1000 + seed``)."""
    chosen, rejected = train.chosen_rejected()
    if size <= len(chosen):
        return chosen[:size], rejected[:size]
    extra = al.collect_preferences(gpt, tok, scorer, setup.sample, EXTRA_COLLECT,
                                   setup.temperature, 1000 + seed).untied()
    more = size - len(chosen)
    assert len(extra) >= more, (len(extra), more)
    c, r = extra.chosen_rejected()
    return torch.cat([chosen, c[:more]]), torch.cat([rejected, r[:more]])


def run_grid(train_fn, grid, label: str) -> dict:
    """One run per (beta, lr) of ``grid``; ``train_fn(beta, lr)`` returns (model, history).
    RLHF settings listed in RLHF_STEPS run longer (their first steps are the short run's)."""
    runs = {}
    for beta, lr in grid:
        _, hist = train_fn(beta, lr)
        runs[key(beta, lr)] = hist
        print(f"  {label} {key(beta, lr)}: hidden {hist[-1]['hidden']:.2f} "
              f"kl {hist[-1]['kl']:.1f} ({hist[-1]['cpu_seconds']:.0f} s)", flush=True)
    return runs


def best_of_n_record(rf, pool, hidden, clean, ref_nats) -> dict:
    """Best-of-n of the pool on the learned reward ``rf``: the expected hidden score, reward,
    share of answers repeating a long word, hidden score of those that repeat none, and the
    reference's log-likelihood per character, for each n of BON_NS."""
    r = rf(pool).numpy()
    order = np.argsort(r, kind="stable")
    h, c, nats = hidden[order], clean[order], ref_nats[order]
    rec = {f: [] for f in ("hidden", "reward", "repeat", "hidden_clean", "ref_nats")}
    for n in BON_NS:
        w = al.best_of_n_weights(BON_POOL, n)
        rec["hidden"].append(float(w @ h))
        rec["reward"].append(float(w @ np.sort(r)))
        rec["repeat"].append(float(w @ ~c))
        rec["hidden_clean"].append(float((w * c) @ h / (w @ c)))
        rec["ref_nats"].append(float(w @ nats))
    return rec


def main(seeds=SEEDS, path=OUT, groups=None) -> None:
    """Every run for ``seeds``, written to ``path`` after each group. ``groups`` (names of
    GROUPS; "rlhf_gpt:added" for RLHF_GPT_ADDED only, "GROUP:BETA/LR" for one setting of a
    group) runs only those after the data
    and reward models, which the runs need; best-of-n and trl's check are then left out (a
    part to be merged with --base)."""
    plan = {}  # group -> its settings to run, in GROUPS order
    for g in GROUPS if groups is None else groups:
        name, _, which = g.partition(":")
        if name not in GROUPS or (which and which != "added" and "/" not in which) or (
                which == "added" and name != "rlhf_gpt"):
            raise ValueError(f"unknown group {g!r}; known: {GROUPS}, rlhf_gpt:added and "
                             "GROUP:BETA/LR (one setting)")
        grid = {"rlhf_gpt": RLHF_GPT_GRID, "rlhf": RLHF_GRID}.get(name, DPO_GRID)
        if which == "added":
            grid = RLHF_GPT_ADDED
        elif which:
            grid = [tuple(map(float, which.split("/")))]
        plan.setdefault(name, []).extend(grid)
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    gpt, tok, _ = load_checkpoint()
    setup = al.ExperimentConfig()
    scfg = setup.sample
    scorer = al.moby_scorer()
    P = len(tok.encode(scfg.prompt))
    out = {"experiment": asdict(setup), "rlhf": asdict(al.RLHFConfig()),
           "dpo": asdict(al.DPOConfig()), "rlhf_grid": RLHF_GRID, "rlhf_steps": RLHF_STEPS,
           "rlhf_gpt_grid": RLHF_GPT_GRID, "dpo_grid": DPO_GRID, "dpo_sizes": DPO_SIZES,
           "decays": list(al.DECAYS), "bon_ns": BON_NS, "bon_pool": BON_POOL,
           "versions": {"torch": torch.__version__}, "seeds": {}}
    for seed in seeds:
        t0 = time.process_time()
        prefs, train, val, test = al.preference_splits(gpt, tok, scorer, setup, seed)
        models = {name: al.tune_reward_model(f(tok, P) if name != "gpt" else f, train, val,
                                             test=test)
                  for name, f in (("words", al.word_features), ("chars", al.char_features),
                                  ("gpt", al.gpt_features(gpt, P)))}
        rfs = {"words": al.linear_reward(models["words"]["w"], al.word_features(tok, P)),
               "gpt": al.linear_reward(models["gpt"]["w"], al.gpt_features(gpt, P))}
        rec = {"reward_model": {k: reward_record(m) for k, m in models.items()},
               "ties": float(np.mean(prefs.score_a == prefs.score_b)),
               "ceiling": al.agreement_ceiling(test.score_a, test.score_b, setup.temperature)}
        out["seeds"][str(seed)] = rec
        if seed == 0 and groups is None:
            out["trl"] = trl_check(gpt, tok, scfg, train)
        if groups is None:
            rec["best_of_n"] = best_of_n_all(gpt, tok, scorer, scfg, rfs, seed, P)
        print(f"seed {seed}: data and reward models {time.process_time() - t0:.0f} s", flush=True)

        def rlhf(rf):
            return lambda beta, lr: al.train_rlhf(gpt, rf, scorer, tok, scfg, al.RLHFConfig(
                beta=beta, lr=lr, steps=RLHF_STEPS.get(key(beta, lr), 80)), seed)

        def dpo(size):
            c, r = dpo_pairs(gpt, tok, scorer, setup, train, seed, size)
            return lambda beta, lr: al.train_dpo(gpt, c, r, rfs["words"], scorer, tok, scfg,
                                                 al.DPOConfig(beta=beta, lr=lr), seed, test=test)

        makers = {"rlhf_gpt": lambda: rlhf(rfs["gpt"]), "dpo600": lambda: dpo(600),
                  "rlhf": lambda: rlhf(rfs["words"]), "dpo2400": lambda: dpo(2400)}
        rec["dpo"] = {}
        for label in sorted(plan, key=GROUPS.index):
            runs = run_grid(makers[label](), plan[label], label)
            if label.startswith("dpo"):
                rec["dpo"][label[3:]] = runs
            else:
                rec[label] = runs
            rec["cpu_seconds"] = time.process_time() - t0
            Path(path).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path)


def best_of_n_all(gpt, tok, scorer, scfg, rfs, seed: int, P: int) -> dict:
    """Best-of-n on BON_POOL fresh samples (seed 20,000 + seed), with each reward model."""
    pool = al.sample(gpt, tok, scfg, BON_POOL, torch.Generator().manual_seed(20_000 + seed))
    answers = al.texts(tok, pool, P)
    hidden = scorer(answers)
    clean = ~np.array([al.repeats_long_word(t) for t in answers])
    with torch.no_grad():
        nats = (al.sequence_logprob(gpt, pool, P) / (pool.shape[1] - P)).numpy()
    return {name: best_of_n_record(rf, pool, hidden, clean, nats)
            for name, rf in rfs.items()}


def merge(parts: list[str], base: str | None = None) -> None:
    """Join the files of runs made seed by seed (--seeds, --out) into OUT. With ``base`` (a
    former OUT), a part's seed fills in what the part lacks from the base (a part cut short),
    and prints the largest difference between the two on the runs both hold."""
    out = json.loads(Path(base).read_text()) if base else None
    former = json.loads(Path(base).read_text())["seeds"] if base else {}
    touched = set()  # the seeds the parts hold
    for part in parts:
        data = json.loads(Path(part).read_text())
        touched |= set(data["seeds"])
        if out is None:
            out = data
            continue
        for k in data.keys() & out.keys() - {"seeds", "trl"}:
            if base and data[k] != out[k]:
                print(f"{part}: the setting {k!r} differs from the base's:", drift(out[k], data[k]))
        for k in [k for k in out if k not in data and k not in ("seeds", "trl")]:
            del out[k]  # a former file's settings that this sweep no longer has
        for k, v in data.items():
            if k not in ("seeds", "trl"):
                out[k] = v
        for seed, rec in data["seeds"].items():
            old = out["seeds"].get(seed, {})
            if base:
                print(f"seed {seed}:", f"largest change {drift(old, rec)}" if old else "new")
            # run by run: a part may hold only some settings of a group (rlhf_gpt:added)
            runs = {g: {**old.get(g, {}), **rec[g]} for g in ("rlhf", "rlhf_gpt") if g in rec}
            dpo = {**old.get("dpo", {})}
            for size, r in rec.get("dpo", {}).items():
                dpo[size] = {**dpo.get(size, {}), **r}
            out["seeds"][seed] = {**old, **rec, **runs, "dpo": dpo}
        out["trl"] = data.get("trl") or out.get("trl")
    out["seeds"] = {k: out["seeds"][k] for k in sorted(out["seeds"])}
    for seed in sorted(former.keys() - touched):  # the base's other seeds, kept exactly
        if out["seeds"][seed] != former[seed]:
            raise RuntimeError(f"seed {seed} of the base changed in the merge")
        print(f"seed {seed}: kept as in the base")
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT, "seeds", list(out["seeds"]))


def drift(old, new, where: str = "") -> tuple[float, str]:
    """The largest absolute difference between numbers both records hold (cpu times aside)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = [drift(old[k], new[k], f"{where}/{k}") for k in old.keys() & new.keys()
                 if "cpu_seconds" not in k]
    elif isinstance(old, list) and isinstance(new, list):
        found = [drift(a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(old, new))]
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return (abs(old - new) if old == old and new == new else 0.0), where
    else:
        return (0.0 if old == new else math.inf), where
    return max(found, default=(0.0, where))


if __name__ == "__main__":
    # default: all seeds into OUT; or `--seeds 2 --out part.json` for one part, and
    # `--merge part0.json part1.json ...` to join parts into OUT (`--merge --base OLD.json
    # part0.json ...` to fill in and compare with a former OUT)
    args = sys.argv[1:]
    if args[:2] == ["--merge", "--base"]:
        merge(args[3:], base=args[2])
    elif args[:1] == ["--merge"]:
        merge(args[1:])
    elif args[:1] == ["--seeds"]:
        opts = dict(zip(args[2::2], args[3::2]))
        main([int(s) for s in args[1].split(",")], opts.get("--out", OUT),
             opts["--groups"].split(",") if "--groups" in opts else None)
    else:
        main()
