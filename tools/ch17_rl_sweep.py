"""Chapter 17's CartPole-v1 comparison, too long for the chapter: writes data/ch17_rl_runs.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py [--cache FILE]

1. Tunes the book's DQN: a grid of learning rates around rl-baselines3-zoo's CartPole-v1
   settings (dlbook.rl.ZOO_CARTPOLE_DQN, gamma 0.99), each config trained on the tuning seeds 10
   and 11 (not the reported ones) and scored by its mean greedy return over the checkpoints of
   the second half of the run (25,000-50,000 steps). (A second knob, the gradient steps per
   burst, would double the sweep's cost on this machine and is not in it.) The book's REINFORCE
   is tuned the same way, on its own grid of learning rates, on six tuning seeds (10-15): a
   REINFORCE run costs about 10 CPU seconds, a DQN run about 50.
2. Runs, at the same budget of environment steps, seeds 0, 1 and 2 (REINFORCE, the cheapest, on
   seeds 0-4), each evaluated greedily every `eval_every` steps on the same 10 seeded starts:
   the book's tuned REINFORCE and its DQN with the zoo's settings and the scanned learning rate
   (dlbook.rl), that DQN without its target network (the ablation), stable-baselines3's DQN (the
   same settings, the same argument list)
   and PPO (its defaults), and a uniformly random policy. The chapter reads the file and re-runs the book's REINFORCE at seed 0, checking it
   against the file.
3. A second target-network control: the textbook DQN (dlbook.rl.DQNConfig's defaults: one
   gradient step per environment step, 64-64 tanh, a target copied every 500 steps; untuned)
   with and without its target network, seeds 0-2, each run's max_a Q on 50 start states kept
   ("start_q") to compare with the bound 1 / (1 - gamma) = 100.
   Steps 1-3 rewrite their own fields of the file and keep the others ("triad", "qlearning",
   "double_dqn") when the file exists, so they can be re-run alone.
4. The deadly-triad 2x2 (--triad SEED, then --triad-merge; it needs the file written by 1-3):
   the book's zoo-settings DQN without its target network, TRIAD_STEPS environment steps, with only the
   activation (ReLU, the zoo's, or tanh) and the schedule (the zoo's bursts of 128 gradient steps
   every 256 environment steps, or one gradient step per environment step) changed; seeds 0-2.
   Each run keeps max_a Q on the 50 start states every 500 steps ("q_steps", "start_q") and its
   greedy returns every 2,500 steps. It adds "triad" to the file and leaves the rest unchanged.
   Of the Q-values only their mean, min and max over the 50 start states are kept ("start_q_mean",
   "start_q_min", "start_q_max"); --triad-slim rewrites a file that kept all 50 that way.
5. Tabular Q-learning and SARSA on FrozenLake (--qlearning; a few CPU minutes): each tuned
   on a 4 x 4 grid of step size alpha and exploration epsilon on seeds 10-14, scored by the mean
   exact success probability of the greedy policy over checkpoints every 2,000 transitions up
   to 60,000; at each pick seeds 0-2, Q-learning also with alpha decaying linearly to a tenth of
   its pick, SARSA with epsilon decaying linearly from 0.5 to 0.01 over the run (alpha 0.03 and
   0.1), and certainty equivalence (random play, counted and planned on) at the same
   transition checkpoints. The chapter re-runs part of them live and checks them against the
   file. Adds "qlearning".
6. Exercise 2's answer (--double; about a CPU minute): the book's DQN cut to the chapter's
   5,000-step run (target network kept, the 800-step epsilon schedule of
   dataclasses.replace(dqn, steps=5000, eval_every=5000)), with DQN's targets and with Double
   DQN's (the online network picks a', the target network values it), seeds 0-2: max_a Q on
   the 50 start states (mean, min, max) and the 10 greedy returns at 5,000 steps. The chapter
   checks the DQN seed-0 run against its own live run. Adds "double_dqn".

Every run is seeded and deterministic for one torch build; --cache FILE[,FILE...] keeps each
finished run (keyed by agent, config and seed) in the first file and reads all of them, so that an
interrupted sweep resumes where it stopped; --part I/N computes only every N-th missing run
(from the I-th) and writes no output while runs are missing, so N processes can share the work.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import rl  # noqa: E402

OUT = ROOT / "data" / "ch17_rl_runs.json"
SEEDS = [0, 1, 2]
TUNE_SEEDS = [10, 11]
REINFORCE_SEEDS = [0, 1, 2, 3, 4]  # REINFORCE is cheap: five reported seeds, six tuning seeds
REINFORCE_TUNE_SEEDS = [10, 11, 12, 13, 14, 15]
GRID = {"lr": [2.5e-4, 5e-4, 1e-3, 2.3e-3, 5e-3]}
CENTRE = rl.ZOO_CARTPOLE_DQN
REINFORCE_GRID = {"lr": [2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2]}
REINFORCE_CENTRE = rl.ReinforceConfig()  # lr 0.01
ONE_STEP = rl.DQNConfig()  # the textbook DQN: one gradient step per environment step, untuned
ONE_STEP_NT = replace(ONE_STEP, target_network=False)


TRIAD_STEPS = 20_000
TRIAD_SCHEDULES = {"bursts": {"train_every": 256, "gradient_steps": 128},
                   "one step": {"train_every": 1, "gradient_steps": 1}}
TRIAD_ACTIVATIONS = ["relu", "tanh"]


def triad_configs(dqn: dict) -> dict[str, rl.DQNConfig]:
    """The 2x2 of activation x schedule, everything else the book's zoo-settings DQN's, no
    target network."""
    base = replace(rl.DQNConfig(**dqn), target_network=False, steps=TRIAD_STEPS, eval_every=2500)
    return {f"{act} {sched}": replace(base, activation=act, **kw)
            for act in TRIAD_ACTIVATIONS for sched, kw in TRIAD_SCHEDULES.items()}


def triad_run(cfg: rl.DQNConfig, seed: int) -> dict:
    """One run of the 2x2, with max_a Q on the 50 start states every 500 steps."""
    env = rl.make_env(cfg.env_id)
    starts = torch.as_tensor(np.array([env.reset(seed=30_000 + k)[0] for k in range(50)],
                                      np.float32))
    q_steps, start_q = [], []

    def probe(step, net):
        with torch.no_grad():
            q = net(starts).max(1).values.numpy().astype(float)
        q_steps.append(step)
        start_q.append(q.tolist())

    curve, net = rl.train_dqn(cfg, seed, probe=probe, probe_every=500)
    assert np.allclose(start_q[-1], rl.start_q_values(net, cfg.env_id))
    return slim_start_q({**asdict(curve), "q_steps": q_steps, "start_q": start_q})


def slim_start_q(run: dict) -> dict:
    """Keeps the mean, min and max over the start states of each probe's max_a Q, not all 50."""
    q = np.array(run.pop("start_q"))  # (probes, 50)
    return {**run, "start_q_mean": q.mean(1).tolist(), "start_q_min": q.min(1).tolist(),
            "start_q_max": q.max(1).tolist()}


def triad_slim() -> None:
    """Rewrites a file whose triad runs kept all 50 start states' Q-values, without re-running."""
    data = json.loads(OUT.read_text())
    for runs in data["triad"]["runs"].values():
        for seed, run in runs.items():
            if "start_q" in run:
                runs[seed] = slim_start_q(run)
    write(data)


def write(data: dict) -> None:
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    import hashlib

    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


QL_TRANSITIONS, QL_EVERY, QL_SEEDS = 60_000, 2_000, [0, 1, 2]
QL_TUNE_SEEDS = [10, 11, 12, 13, 14]
QL_GRID = {"alpha": [0.01, 0.03, 0.1, 0.3], "epsilon": [0.1, 0.2, 0.5, 0.8]}
# SARSA with epsilon decaying towards 0 (GLIE-like): from, to; the step sizes it is run at
QL_EPS_DECAY, QL_DECAY_ALPHAS = (0.5, 0.01), [0.03, 0.1]


def lake_mdp():
    import gymnasium as gym

    lake = gym.make("FrozenLake-v1")
    return lake, rl.mdp_from_gymnasium(lake, gamma=1.0)


def qlearning_main() -> None:
    """Q-learning and SARSA (rl.td_control, gamma 0.99) tuned on the same alpha x epsilon grid on
    QL_TUNE_SEEDS, each scored by the mean exact greedy value over its QL_TRANSITIONS // QL_EVERY
    checkpoints; then seeds 0-2 at each pick, Q-learning with alpha decaying linearly to a tenth
    of its pick, SARSA with epsilon decaying linearly (QL_EPS_DECAY, at each of QL_DECAY_ALPHAS)
    and certainty equivalence (random play) on the same transition checkpoints.
    Grid points the file already scored (same tuning seeds and checkpoints) are not re-run."""
    lake, mdp = lake_mdp()
    data = json.loads(OUT.read_text())
    run = dict(transitions=QL_TRANSITIONS, every=QL_EVERY)
    old = data.get("qlearning", {})
    same = (old.get("tune_seeds"), old.get("transitions"), old.get("every")) == (
        QL_TUNE_SEEDS, QL_TRANSITIONS, QL_EVERY)
    done = {(name, t["alpha"], t["epsilon"]): t["score"]
            for name, tab in (old.get("tuning", {}) if same else {}).items() for t in tab}
    tuning, picks, runs = {}, {}, {}
    for name, sarsa in (("Q-learning", False), ("SARSA", True)):
        table = []
        for alpha in QL_GRID["alpha"]:
            for eps in QL_GRID["epsilon"]:
                score = done.get((name, alpha, eps))
                if score is None:
                    score = float(np.mean([rl.td_control(lake, mdp, s, alpha, eps,
                                                         sarsa=sarsa, **run)
                                           for s in QL_TUNE_SEEDS]))
                table.append({"alpha": alpha, "epsilon": eps, "score": score})
                print(f"  {name} alpha {alpha} epsilon {eps}: {score:.3f}", flush=True)
        tuning[name] = table
        pick = max(table, key=lambda t: t["score"])
        picks[name] = {"alpha": pick["alpha"], "epsilon": pick["epsilon"]}
        runs[name] = [rl.td_control(lake, mdp, s, pick["alpha"], pick["epsilon"], sarsa=sarsa,
                                    **run).tolist() for s in QL_SEEDS]
    q = picks["Q-learning"]
    runs["Q-learning, alpha decaying"] = [
        rl.td_control(lake, mdp, s, q["alpha"], q["epsilon"], alpha_end=q["alpha"] / 10,
                      **run).tolist() for s in QL_SEEDS]
    eps0, eps1 = QL_EPS_DECAY
    decay = {"epsilon": eps0, "epsilon_end": eps1, "alpha": QL_DECAY_ALPHAS,
             "runs": [[rl.td_control(lake, mdp, s, alpha, eps0, epsilon_end=eps1, sarsa=True,
                                     **run).tolist() for s in QL_SEEDS]
                      for alpha in QL_DECAY_ALPHAS]}  # (alphas, seeds, checkpoints)
    checkpoints = range(QL_EVERY, QL_TRANSITIONS + 1, QL_EVERY)
    runs["certainty equivalence"] = [
        [float(mdp.start @ rl.policy_evaluation(mdp, pi)) for pi in
         rl.certainty_equivalence(lake, 1.0, checkpoints, s, unit="transitions")]
        for s in QL_SEEDS]
    data["qlearning"] = {
        "transitions": QL_TRANSITIONS, "every": QL_EVERY, "seeds": QL_SEEDS, "gamma": 0.99,
        "tune_seeds": QL_TUNE_SEEDS, "grid": QL_GRID,
        "score": "mean exact greedy value (gamma 1) over the checkpoints", "tuning": tuning,
        "picks": picks, "runs": runs, "sarsa_epsilon_decaying": decay,
        "command": ("DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py "
                    "--qlearning")}
    for name, v in runs.items():
        print(name, np.round(np.mean(v, 0), 3).tolist(), flush=True)
    for alpha, v in zip(QL_DECAY_ALPHAS, decay["runs"]):
        print(f"SARSA, epsilon {eps0} -> {eps1}, alpha {alpha}: mean {np.mean(v):.3f}, last",
              np.round(np.array(v)[:, -1], 3).tolist(), flush=True)
    write(data)


DOUBLE_STEPS = 5_000


def double_targets(q_net, target_net, rewards, next_obs, terminated, gamma):
    """Double DQN's y = r + gamma (1 - terminated) Q_target(s', argmax_a' Q_online(s', a'))."""
    with torch.no_grad():
        a_star = q_net(next_obs).argmax(1, keepdim=True)  # the online network chooses
        value = target_net(next_obs).gather(1, a_star).squeeze(1)  # the target values
    return rewards + gamma * (1.0 - terminated) * value


def double_main() -> None:
    """The chapter's 5,000-step DQN (seeds 0-2) with DQN's and with Double DQN's targets."""
    data = json.loads(OUT.read_text())
    short = replace(rl.DQNConfig(**data["dqn"]), steps=DOUBLE_STEPS, target_network=True,
                    eval_every=DOUBLE_STEPS)
    runs = {}
    for name, targets in (("DQN", None), ("Double DQN", double_targets)):
        runs[name] = {}
        for seed in SEEDS:
            curve, net = rl.train_dqn(short, seed, targets=targets)
            q = rl.start_q_values(net, short.env_id)
            runs[name][str(seed)] = {"start_q_mean": float(q.mean()), "start_q_min": float(q.min()),
                                     "start_q_max": float(q.max()),
                                     "returns": [float(r) for r in curve.returns[-1]],
                                     "cpu_seconds": curve.cpu_seconds}
            print(f"{name} seed {seed}: Q {q.mean():.2f}; greedy {np.mean(curve.returns[-1]):.1f}"
                  f" ({curve.cpu_seconds:.0f} s)", flush=True)
    data["double_dqn"] = {
        "config": asdict(short), "seeds": SEEDS, "runs": runs,
        "command": ("DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py "
                    "--double")}
    write(data)


def triad_main(seed: int | None) -> None:
    data = json.loads(OUT.read_text())
    configs = triad_configs(data["dqn"])
    if seed is not None:  # one seed's four runs into a scratch file
        runs = {}
        for name, cfg in configs.items():
            runs[name] = triad_run(cfg, seed)
            r = runs[name]
            print(f"{name} seed {seed}: Q {np.mean(r['start_q'][-1]):,.1f}; greedy "
                  f"{np.mean(r['returns'], 1).round(0).tolist()} ({r['cpu_seconds']:.0f} s)",
                  flush=True)
        Path(f"/tmp/ch17_triad_{seed}.json").write_text(json.dumps(runs))
        return
    per_seed = {s: json.loads(Path(f"/tmp/ch17_triad_{s}.json").read_text()) for s in SEEDS}
    data["triad"] = {"steps": TRIAD_STEPS, "schedules": TRIAD_SCHEDULES,
                     "configs": {n: asdict(c) for n, c in configs.items()},
                     "runs": {n: {str(s): per_seed[s][n] for s in SEEDS} for n in configs}}
    data["triad_command"] = ("DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python "
                             "tools/ch17_rl_sweep.py --triad SEED (seeds 0, 1, 2), then --triad-merge")
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    import hashlib

    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


def cross(centre, grid: dict) -> list:
    """Each knob's values with the other knobs at the centre's: a cross through the centre."""
    configs = [centre]
    for knob, values in grid.items():
        configs += [replace(centre, **{knob: v}) for v in values if v != getattr(centre, knob)]
    return configs


def grid_configs() -> list[rl.DQNConfig]:
    return cross(CENTRE, GRID)


def second_half_score(curve: dict) -> float:
    """Mean greedy return over the checkpoints at or after half the budget."""
    half = curve["steps"][-1] / 2
    return float(np.mean([np.mean(r) for s, r in zip(curve["steps"], curve["returns"]) if s >= half]))


def sb3_run(kind: str, seed: int, steps: int, dqn: rl.DQNConfig) -> rl.Curve:
    """stable-baselines3's DQN or PPO on CartPole-v1, evaluated as the book's agents are."""
    from stable_baselines3.common.callbacks import BaseCallback

    t0 = time.process_time()
    model = rl.sb3_agent(kind, dqn, rl.make_env(dqn.env_id), seed)

    def act(obs):
        return int(model.predict(obs, deterministic=True)[0])

    curve = rl.Curve([0], [rl.evaluate(act, dqn.env_id, dqn.eval_episodes)])

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % dqn.eval_every == 0 and self.num_timesteps not in curve.steps:
                curve.steps.append(self.num_timesteps)
                curve.returns.append(rl.evaluate(act, dqn.env_id, dqn.eval_episodes))
            return True

    model.learn(total_timesteps=steps, callback=Every())
    curve.cpu_seconds = time.process_time() - t0
    return curve


class Cache:
    """Finished runs by (agent, config, seed), optionally kept in a file between invocations."""

    def __init__(self, paths: str | None, part: str | None):
        paths = [Path(p) for p in paths.split(",")] if paths else []
        self.path, self.runs = (paths or [None])[0], {}
        for p in paths:
            self.runs.update(json.loads(p.read_text()) if p.exists() else {})
        self.part = tuple(map(int, part.split("/"))) if part else None
        self.misses, self.incomplete = 0, False

    def get(self, agent: str, cfg, seed: int, job) -> dict:
        key = json.dumps([agent, asdict(cfg), seed], sort_keys=True)
        if key not in self.runs and self.part:
            self.misses += 1
            if (self.misses - 1) % self.part[1] != self.part[0]:  # another process's run
                self.incomplete = True
                return {"steps": [0], "returns": [[0.0]]}
        if key not in self.runs:
            curve = job()
            self.runs[key] = curve if isinstance(curve, dict) else asdict(curve)
            means = np.mean(self.runs[key]["returns"], 1).round(1).tolist()
            print(f"{agent:14s} seed {seed} {cfg_label(cfg)}: {means} "
                  f"({self.runs[key]['cpu_seconds']:.0f} s)", flush=True)
            if self.path:
                self.path.write_text(json.dumps(self.runs))
        return self.runs[key]


def with_start_q(cfg: rl.DQNConfig, seed: int) -> dict:
    """A DQN run's curve and, after training, max_a Q on 50 seeded start states."""
    curve, net = rl.train_dqn(cfg, seed)
    return {**asdict(curve), "start_q": rl.start_q_values(net, cfg.env_id).tolist()}


def cfg_label(cfg) -> str:
    return f"lr {cfg.lr:g}" + ("" if isinstance(cfg, rl.ReinforceConfig) else f" gamma {cfg.gamma}")


def tune(cache: Cache, agent: str, configs: list, train, knobs: list[str],
         seeds: list[int] = TUNE_SEEDS) -> list[dict]:
    """Each config on the tuning seeds, scored by second_half_score averaged over them."""
    table = []
    for cfg in configs:
        curves = {str(s): cache.get(agent, cfg, s, lambda: train(cfg, s)[0]) for s in seeds}
        score = float(np.mean([second_half_score(c) for c in curves.values()]))
        table.append({**{k: getattr(cfg, k) for k in knobs}, "score": score, "runs": curves})
        print(f"  {agent} {cfg_label(cfg)}: score {score:.1f}", flush=True)
    return table


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))

    def arg(name):
        return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else None

    if "--qlearning" in sys.argv:
        qlearning_main()
        return
    if "--double" in sys.argv:
        double_main()
        return
    if "--triad-slim" in sys.argv:
        triad_slim()
        return
    if "--triad" in sys.argv or "--triad-merge" in sys.argv:
        triad_main(int(arg("--triad")) if "--triad" in sys.argv else None)
        return
    cache = Cache(arg("--cache"), arg("--part"))
    budget = REINFORCE_CENTRE  # PPO's key: it runs on SB3's defaults, at this budget
    assert budget.steps == CENTRE.steps and budget.eval_every == CENTRE.eval_every
    tuning = tune(cache, "DQN", grid_configs(), rl.train_dqn, list(GRID))
    r_tuning = tune(cache, "REINFORCE", cross(REINFORCE_CENTRE, REINFORCE_GRID),
                    rl.train_reinforce, list(REINFORCE_GRID), REINFORCE_TUNE_SEEDS)
    if cache.incomplete:
        sys.exit("tuning runs missing: run again when the other parts are done")
    dcfg = replace(CENTRE, lr=max(tuning, key=lambda t: t["score"])["lr"])
    rcfg = replace(REINFORCE_CENTRE, lr=max(r_tuning, key=lambda t: t["score"])["lr"])
    no_target = replace(dcfg, target_network=False)
    names = ("REINFORCE", "DQN", "DQN no target", "SB3 DQN", "SB3 PPO", "DQN 1-step",
             "DQN 1-step no target")
    runs = {name: {} for name in names}
    jobs = {"REINFORCE": (rcfg, lambda s: rl.train_reinforce(rcfg, s)[0]),
            "DQN": (dcfg, lambda s: rl.train_dqn(dcfg, s)[0]),
            "DQN no target": (no_target, lambda s: rl.train_dqn(no_target, s)[0]),
            "SB3 DQN": (dcfg, lambda s: sb3_run("DQN", s, dcfg.steps, dcfg)),
            "SB3 PPO": (budget, lambda s: sb3_run("PPO", s, dcfg.steps, dcfg)),
            "DQN 1-step": (ONE_STEP, lambda s: with_start_q(ONE_STEP, s)),
            "DQN 1-step no target": (ONE_STEP_NT, lambda s: with_start_q(ONE_STEP_NT, s))}
    for name in sorted(names, key=lambda n: not n.startswith("SB3")):  # the slow ones first
        cfg, job = jobs[name]
        for seed in REINFORCE_SEEDS if name == "REINFORCE" else SEEDS:
            runs[name][str(seed)] = cache.get(name, cfg, seed, lambda: job(seed))  # noqa: B023
    if cache.incomplete:
        sys.exit("runs missing: run again when the other parts are done")
    random_returns = rl.random_policy_returns(dcfg.env_id, 100)
    import gymnasium
    import stable_baselines3

    data = {"command": "DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py",
            "seeds": SEEDS, "reinforce_seeds": REINFORCE_SEEDS, "reinforce": asdict(rcfg), "dqn": asdict(dcfg),
            "dqn_1step": asdict(ONE_STEP),
            "dqn_tuning": {"seeds": TUNE_SEEDS, "grid": GRID, "centre": asdict(CENTRE),
                           "score": "mean greedy return over the checkpoints at 25,000-50,000",
                           "configs": tuning},
            "reinforce_tuning": {"seeds": REINFORCE_TUNE_SEEDS, "grid": REINFORCE_GRID,
                                 "centre": asdict(REINFORCE_CENTRE), "configs": r_tuning},
            "versions": {"torch": torch.__version__, "gymnasium": gymnasium.__version__,
                         "stable_baselines3": stable_baselines3.__version__},
            "random_returns": random_returns, "runs": runs}
    old = json.loads(OUT.read_text()) if OUT.exists() else {}  # keep the 2x2 and Q-learning
    data.update({k: old[k] for k in ("triad", "triad_command", "qlearning", "double_dqn")
                 if k in old})
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    import hashlib

    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
