"""Chapter 17's CartPole-v1 comparison, too long for the chapter: writes data/ch17_rl_runs.json.

    DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py

Five contenders at the same budget of environment steps (dlbook.rl.ReinforceConfig().steps),
seeds 0, 1 and 2, each evaluated greedily every `eval_every` steps on the same 10 seeded starts:
the book's REINFORCE and DQN (dlbook.rl), stable-baselines3's DQN (the book's DQN settings) and
PPO (its defaults), and a uniformly random policy. The chapter reads the file and re-runs the
book's REINFORCE at seed 0, checking it against the file.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from dlbook import rl  # noqa: E402

OUT = ROOT / "data" / "ch17_rl_runs.json"
SEEDS = [0, 1, 2]


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


def main() -> None:
    torch.set_num_threads(int(os.environ.get("DLBOOK_CPU_THREADS", "1")))
    rcfg, dcfg = rl.ReinforceConfig(), rl.DQNConfig()
    assert rcfg.steps == dcfg.steps and rcfg.eval_every == dcfg.eval_every
    runs = {name: {} for name in ("REINFORCE", "DQN", "SB3 DQN", "SB3 PPO")}
    for seed in SEEDS:
        jobs = {"REINFORCE": lambda: rl.train_reinforce(rcfg, seed)[0],
                "DQN": lambda: rl.train_dqn(dcfg, seed)[0],
                "SB3 DQN": lambda: sb3_run("DQN", seed, dcfg.steps, dcfg),
                "SB3 PPO": lambda: sb3_run("PPO", seed, dcfg.steps, dcfg)}
        for name, job in jobs.items():
            curve = job()
            runs[name][str(seed)] = asdict(curve)
            print(f"{name:10s} seed {seed}: {curve.mean().round(1).tolist()} "
                  f"({curve.cpu_seconds:.0f} s)", flush=True)
    random_returns = rl.random_policy_returns(dcfg.env_id, 100)
    import gymnasium
    import stable_baselines3

    data = {"command": "DLBOOK_CPU_THREADS=1 nice -n 10 .venv/bin/python tools/ch17_rl_sweep.py",
            "seeds": SEEDS, "reinforce": asdict(rcfg), "dqn": asdict(dcfg),
            "versions": {"torch": torch.__version__, "gymnasium": gymnasium.__version__,
                         "stable_baselines3": stable_baselines3.__version__},
            "random_returns": random_returns, "runs": runs}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    import hashlib

    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
