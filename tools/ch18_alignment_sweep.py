"""Chapter 18's preference experiments, too long for the chapter: writes data/ch18_alignment.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch18_alignment_sweep.py

For seeds 0, 1 and 2: 1,550 pairs of the book's GPT's continuations of "The whale " (32
characters each), labelled by noisy Bradley-Terry raters on the hidden long-word scorer; the
ties dropped and the first 1,000 untied pairs split 600 / 200 / 200 into train, validation (the
reward models' L2 penalty) and test (their reported accuracy). Linear reward models on
word-length counts, on the bag of characters and on the GPT's own last hidden state. Then, all
evaluated every 10 steps on the learned reward, the hidden score and KL to the reference (64
samples reported, 64 more for choosing settings and checkpoints):
- RLHF (KL-penalised REINFORCE, 80 steps) over a grid of KL coefficients and learning rates;
- DPO (100 steps of 16 pairs) at beta 0.1 over a grid of learning rates, on the 600 training
  pairs and on 2,400 (the 600 and 1,800 more untied pairs from a fresh sample);
- best-of-n on 1,024 fresh samples.
And trl's DPO loss on a fixed small input (trl 1.16.0's DPOTrainer._compute_loss), which the
chapter recomputes with dlbook.alignment.dpo_loss. The chapter re-runs seed 0's preferences,
reward models and the first evaluation interval of one RLHF and one DPO run.
"""
from __future__ import annotations

import json
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
SEEDS = [0, 1, 2]
# (beta, learning rate): five KL coefficients at 3e-4, and the learning rate bracketed at 0.1
RLHF_GRID = [(0.0, 3e-4), (0.03, 3e-4), (0.1, 1e-4), (0.1, 3e-4), (0.1, 1e-3), (0.3, 3e-4),
             (1.0, 3e-4)]
# steps of the runs that need more than the default 80 to move as far (their first 80 steps are
# the 80-step run's, step for step)
RLHF_STEPS = {"0.3 0.0003": 160, "1 0.0003": 160}
RLHF_GPT_FEATURES = (0.1, 3e-4)  # one RLHF setting with the reward model on the GPT's features
# (beta, learning rate): the learning rate at beta 0.1, then beta at the chosen 3e-4
DPO_GRID = [(0.1, 3e-5), (0.1, 1e-4), (0.1, 3e-4), (0.1, 1e-3), (0.03, 3e-4), (0.3, 3e-4),
            (1.0, 3e-4)]
# the runs the extension (--extend) made or re-made, with the measures `repeat` and `ref_nats`
EXTENDED_RLHF = [(0.1, 3e-4), (0.3, 3e-4), (1.0, 3e-4)]
EXTENDED_DPO = [(0.1, 3e-4), (0.03, 3e-4), (0.3, 3e-4), (1.0, 3e-4)]
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


def merge(parts: list[str]) -> None:
    """Join the files of runs made seed by seed (--seeds, --out) into OUT."""
    out = None
    for part in parts:
        data = json.loads(Path(part).read_text())
        if out is None:
            out = data
        else:
            same = {k: v for k, v in data.items() if k not in ("seeds", "trl")}
            assert same == {k: v for k, v in out.items() if k not in ("seeds", "trl")}, \
                "parts of different sweeps"
            out["seeds"].update(data["seeds"])
            out["trl"] = out.get("trl") or data.get("trl")
    out["seeds"] = {k: out["seeds"][k] for k in sorted(out["seeds"])}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT, "seeds", list(out["seeds"]))


def reward_record(m: dict) -> dict:
    return {"w": m["w"].tolist(), "decay": m["decay"], "test_acc": m["test_acc"],
            "test_loss": m["test_loss"],
            "table": [{k: v for k, v in row.items() if k != "w"} for row in m["table"]]}


def main(seeds=SEEDS, path=OUT) -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    gpt, tok, _ = load_checkpoint()
    setup = al.ExperimentConfig()
    scfg = setup.sample
    scorer = al.moby_scorer()
    P = len(tok.encode(scfg.prompt))
    rcfg, dcfg = al.RLHFConfig(), al.DPOConfig()
    out = {"experiment": asdict(setup), "rlhf": asdict(rcfg), "dpo": asdict(dcfg),
           "rlhf_grid": RLHF_GRID, "rlhf_steps": RLHF_STEPS, "rlhf_gpt_features": RLHF_GPT_FEATURES, "dpo_grid": DPO_GRID,
           "dpo_sizes": DPO_SIZES, "decays": list(al.DECAYS), "bon_ns": BON_NS,
           "bon_pool": BON_POOL, "versions": {"torch": torch.__version__}, "seeds": {}}
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
        if seed == 0:
            out["trl"] = trl_check(gpt, tok, scfg, train)
        pool = al.sample(gpt, tok, scfg, BON_POOL, torch.Generator().manual_seed(20_000 + seed))
        hidden = scorer(al.texts(tok, pool, P))
        rec["best_of_n"] = {}
        for name, rf in rfs.items():
            r = rf(pool).numpy()
            h = hidden[np.argsort(r, kind="stable")]
            rec["best_of_n"][name] = {
                "hidden": [float(al.best_of_n_weights(BON_POOL, n) @ h) for n in BON_NS],
                "reward": [float(al.best_of_n_weights(BON_POOL, n) @ np.sort(r))
                           for n in BON_NS]}
        print(f"seed {seed}: data and reward models {time.process_time() - t0:.0f} s", flush=True)
        rec["rlhf"] = {}
        for beta, lr in RLHF_GRID:
            _, hist = al.train_rlhf(gpt, rfs["words"], scorer, tok, scfg,
                                    al.RLHFConfig(beta=beta, lr=lr,
                                                  steps=RLHF_STEPS.get(key(beta, lr), 80)),
                                    seed)
            rec["rlhf"][key(beta, lr)] = hist
            print(f"  rlhf {key(beta, lr)}: hidden {hist[-1]['hidden']:.2f} "
                  f"kl {hist[-1]['kl']:.1f} ({hist[-1]['cpu_seconds']:.0f} s)", flush=True)
        beta, lr = RLHF_GPT_FEATURES
        _, hist = al.train_rlhf(gpt, rfs["gpt"], scorer, tok, scfg,
                                al.RLHFConfig(beta=beta, lr=lr), seed)
        rec["rlhf_gpt"] = {key(beta, lr): hist}
        print(f"  rlhf gpt-features {key(beta, lr)}: hidden {hist[-1]['hidden']:.2f} "
              f"kl {hist[-1]['kl']:.1f}", flush=True)
        extra = al.collect_preferences(gpt, tok, scorer, scfg, EXTRA_COLLECT, setup.temperature,
                                       1000 + seed).untied()
        assert len(extra) >= DPO_SIZES[-1] - setup.n_train, len(extra)
        big_c, big_r = (torch.cat([x, y[:DPO_SIZES[-1] - setup.n_train]]) for x, y in
                        zip(train.chosen_rejected(), extra.chosen_rejected()))
        rec["dpo"] = {}
        for size in DPO_SIZES:
            rec["dpo"][str(size)] = {}
            for beta, lr in DPO_GRID:
                _, hist = al.train_dpo(gpt, big_c[:size], big_r[:size], rfs["words"], scorer,
                                       tok, scfg, al.DPOConfig(beta=beta, lr=lr), seed)
                rec["dpo"][str(size)][key(beta, lr)] = hist
                print(f"  dpo {size} {key(beta, lr)}: hidden {hist[-1]['hidden']:.2f} "
                      f"kl {hist[-1]['kl']:.1f} ({hist[-1]['cpu_seconds']:.0f} s)", flush=True)
        rec["cpu_seconds"] = time.process_time() - t0
        out["seeds"][str(seed)] = rec
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path)


def extend(seed: int, path: str) -> None:
    """The runs of EXTENDED_RLHF and EXTENDED_DPO for one seed, on the stored reward model and
    the same pairs: the new beta values, and the old settings re-made with the two measures
    the first sweep did not store (their other numbers must come out the same)."""
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    gpt, tok, _ = load_checkpoint()
    setup = al.ExperimentConfig()
    scfg, scorer = setup.sample, al.moby_scorer()
    P = len(tok.encode(scfg.prompt))
    old = json.loads(OUT.read_text())["seeds"][str(seed)]
    rf = al.linear_reward(torch.tensor(old["reward_model"]["words"]["w"]),
                          al.word_features(tok, P))
    t0 = time.process_time()
    rec = {"rlhf": {}, "dpo": {str(n): {} for n in DPO_SIZES}}
    for beta, lr in EXTENDED_RLHF:
        _, hist = al.train_rlhf(gpt, rf, scorer, tok, scfg, al.RLHFConfig(
            beta=beta, lr=lr, steps=RLHF_STEPS.get(key(beta, lr), 80)), seed)
        rec["rlhf"][key(beta, lr)] = hist
        print(f"seed {seed} rlhf {key(beta, lr)}: {[round(e['kl'], 1) for e in hist]} "
              f"{[round(e['hidden'], 1) for e in hist]}", flush=True)
    _, train, _, _ = al.preference_splits(gpt, tok, scorer, setup, seed)
    extra = al.collect_preferences(gpt, tok, scorer, scfg, EXTRA_COLLECT, setup.temperature,
                                   1000 + seed).untied()
    big_c, big_r = (torch.cat([x, y[:DPO_SIZES[-1] - setup.n_train]]) for x, y in
                    zip(train.chosen_rejected(), extra.chosen_rejected()))
    for size in DPO_SIZES:
        for beta, lr in EXTENDED_DPO:
            _, hist = al.train_dpo(gpt, big_c[:size], big_r[:size], rf, scorer, tok, scfg,
                                   al.DPOConfig(beta=beta, lr=lr), seed)
            rec["dpo"][str(size)][key(beta, lr)] = hist
            print(f"seed {seed} dpo {size} {key(beta, lr)}: kl {hist[-1]['kl']:.1f} "
                  f"hidden {hist[-1]['hidden']:.2f}", flush=True)
    rec["cpu_seconds"] = time.process_time() - t0
    Path(path).write_text(json.dumps({"seed": seed, **rec}, indent=1) + "\n")
    print("wrote", path, f"{rec['cpu_seconds']:.0f} s")


def apply_extension(parts: list[str]) -> None:
    """Put the extension's runs into OUT; a re-made run must repeat the stored numbers."""
    out = json.loads(OUT.read_text())
    for part in parts:
        ext = json.loads(Path(part).read_text())
        rec = out["seeds"][str(ext["seed"])]
        pairs = [(rec["rlhf"], ext["rlhf"])] + [(rec["dpo"][n], ext["dpo"][n])
                                                 for n in ext["dpo"]]
        for stored, new in pairs:
            for k, hist in new.items():
                for a, b in zip(stored.get(k, []), hist):
                    for f in ("reward", "hidden", "kl", "hidden_pick", "kl_pick", "sample"):
                        assert a[f] == b[f], (ext["seed"], k, f, a[f], b[f])
                stored[k] = hist
        rec["extension_cpu_seconds"] = ext["cpu_seconds"]
    out["rlhf_grid"], out["rlhf_steps"], out["dpo_grid"] = RLHF_GRID, RLHF_STEPS, DPO_GRID
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    # default: all seeds into OUT; or `--seeds 2 --out part.json` for one part, and
    # `--merge part0.json part1.json ...` to join parts into OUT
    args = sys.argv[1:]
    if args[:1] == ["--merge"]:
        merge(args[1:])
    elif args[:1] == ["--extend"]:  # --extend SEED PART.json, then --apply PART.json ...
        extend(int(args[1]), args[2])
    elif args[:1] == ["--apply"]:
        apply_extension(args[1:])
    elif args[:1] == ["--seeds"]:
        main([int(s) for s in args[1].split(",")], args[3] if args[2:3] == ["--out"] else OUT)
    else:
        main()
