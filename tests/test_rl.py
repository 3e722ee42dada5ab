"""dlbook.rl against hand-solved answers, torch autograd, finite differences and direct formulas."""
from __future__ import annotations

import dataclasses
from itertools import pairwise

import numpy as np
import pytest
import torch

from dlbook import rl


def two_state_mdp(gamma=0.9):
    # state 0: stay for 1, or move to state 1 for 0; state 1: stay for 2, or move back for 0
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, 0, 1] = P[1, 1, 0] = 1.0
    R = np.array([[1.0, 0.0], [2.0, 0.0]])
    return rl.TabularMDP(P, R, gamma, start=np.array([1.0, 0.0]))


def chain_mdp():
    # 3 states, 2 actions, slippery moves, a terminal state: small enough for exact gradients
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=(4, 2))
    P[3] = 0.0
    P[3, :, 3] = 1.0
    R = rng.normal(size=(4, 2))
    R[3] = 0.0
    return rl.TabularMDP(P, R, 0.9, np.array([0.5, 0.5, 0, 0]), terminal=[0, 0, 0, 1])


def test_value_iteration_solves_the_hand_solved_mdp():
    mdp = two_state_mdp()
    V, history = rl.value_iteration(mdp)
    # by hand: V(1) = 2 / (1 - 0.9) = 20; V(0) = max(1 / 0.1, 0.9 * 20) = 18
    assert np.allclose(V, [18.0, 20.0], atol=1e-8)
    assert np.array_equal(rl.greedy_policy(mdp, V), [[0, 1], [1, 0]])
    assert np.allclose(rl.policy_evaluation(mdp, rl.greedy_policy(mdp, V)), V, atol=1e-8)
    assert np.allclose(history[1], [1.0, 2.0])  # one sweep from zero: the best immediate reward
    # the error shrinks by at least gamma each sweep (a contraction)
    errors = [np.abs(h - V).max() for h in history[:50]]
    assert all(b <= 0.9 * a + 1e-9 for a, b in zip(errors, errors[1:]))


def test_frozen_lake_mdp_and_its_optimal_policy():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("FrozenLake-v1")
    mdp = rl.mdp_from_gymnasium(env, gamma=0.99)
    assert mdp.P.shape == (16, 4, 16) and np.allclose(mdp.P.sum(-1), 1)
    assert mdp.terminal.sum() == 5  # four holes and the goal
    V, _ = rl.value_iteration(mdp)
    pi = rl.greedy_policy(mdp, V)
    assert np.allclose(rl.policy_evaluation(mdp, pi), V, atol=1e-6)
    uniform = np.full((16, 4), 0.25)
    assert (rl.policy_evaluation(mdp, uniform) <= V + 1e-9).all()
    assert 0.5 < V[0] < 0.6  # the known optimum of the slippery 4 x 4 lake at gamma 0.99


def test_exact_policy_gradient_matches_autograd_and_finite_differences():
    mdp, H = chain_mdp(), 6
    theta = np.random.default_rng(1).normal(size=(4, 2))
    t = torch.tensor(theta, requires_grad=True, dtype=torch.float64)
    rl.exact_objective(mdp, t, H).backward()
    closed = rl.exact_policy_gradient(mdp, theta, H)
    assert torch.allclose(t.grad, torch.as_tensor(closed), atol=1e-12)
    eps, fd = 1e-6, np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        d = np.zeros_like(theta)
        d[idx] = eps
        plus = rl.exact_objective(mdp, torch.tensor(theta + d), H).item()
        minus = rl.exact_objective(mdp, torch.tensor(theta - d), H).item()
        fd[idx] = (plus - minus) / (2 * eps)
    assert np.allclose(fd, closed, atol=1e-8)


def test_exact_objective_matches_the_finite_horizon_values():
    mdp, H = chain_mdp(), 5
    theta = np.zeros((4, 2))
    _, V, _ = rl.finite_horizon_values(mdp, rl.softmax_policy(theta), H)
    assert np.isclose(rl.exact_objective(mdp, torch.tensor(theta), H).item(), mdp.start @ V[0])


@pytest.fixture(scope="module")
def corridor_episodes():
    """The corridor MDP at a random policy: its exact gradient and values, 100,000 episodes."""
    mdp, H = chain_mdp(), 5
    theta = np.random.default_rng(2).normal(size=(4, 2))
    exact = rl.exact_policy_gradient(mdp, theta, H)
    pi = rl.softmax_policy(theta)
    _, V, _ = rl.finite_horizon_values(mdp, pi, H)
    s, a, r = rl.sample_episodes(mdp, pi, 100_000, H, np.random.default_rng(3))
    return mdp, H, theta, exact, V, s, a, r


def test_reinforce_is_unbiased_with_and_without_a_baseline_and_biased_without_gamma_t(
        corridor_episodes):
    mdp, H, theta, exact, V, s, a, r = corridor_episodes
    for baseline in (None, V[:H]):
        g = rl.reinforce_gradients(mdp, theta, s, a, r, baseline).reshape(len(s), -1)
        z = (g.mean(0) - exact.ravel()) / (g.std(0, ddof=1) / np.sqrt(len(g)) + 1e-12)
        assert np.abs(z[exact.ravel() != 0]).max() < 4.5, z
    plain = rl.reinforce_gradients(mdp, theta, s, a, r).reshape(len(s), -1)
    with_b = rl.reinforce_gradients(mdp, theta, s, a, r, V[:H]).reshape(len(s), -1)
    assert with_b.var(0).sum() < plain.var(0).sum()
    biased = rl.reinforce_gradients(mdp, theta, s, a, r, discount_weights=False)
    biased = biased.reshape(len(s), -1)
    live = exact.ravel() != 0  # the terminal state's entries are exactly 0
    z = (biased.mean(0) - exact.ravel())[live] / (biased.std(0, ddof=1)[live] / np.sqrt(len(s)))
    assert np.abs(z).max() > 10


def test_returns_to_go_numpy_and_torch():
    r = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    expected = np.array([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3], [0.25, 0.5, 1.0]])
    assert np.allclose(rl.returns_to_go(r, 0.5), expected)
    assert torch.allclose(rl.returns_to_go(torch.tensor(r), 0.5), torch.tensor(expected))
    with pytest.raises(ValueError, match="gamma"):
        rl.returns_to_go(r, 1.5)


def test_replay_buffer_wraps_and_samples():
    buf = rl.ReplayBuffer(capacity=3, obs_dim=2)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4, np.random.default_rng(0))
    for i in range(5):
        buf.add([i, i], i % 2, float(i), [i + 1, i + 1], i == 4)
    assert len(buf) == 3 and sorted(buf.rewards) == [2.0, 3.0, 4.0]  # the oldest two gone
    obs, act, rew, nxt, term = buf.sample(16, np.random.default_rng(0))
    assert obs.shape == (16, 2) and act.shape == (16,) and act.dtype == torch.int64
    assert torch.equal(nxt, obs + 1) and torch.equal(term, (rew == 4).float())
    with pytest.raises(ValueError, match="capacity"):
        rl.ReplayBuffer(0, 2)


def test_mlp_activations():
    assert isinstance(rl.mlp([4, 8, 2])[1], torch.nn.Tanh)
    assert isinstance(rl.mlp([4, 8, 2], "relu")[1], torch.nn.ReLU)
    with pytest.raises(ValueError, match="activation"):
        rl.mlp([4, 8, 2], "gelu")


def test_dqn_targets_against_a_direct_computation():
    torch.manual_seed(0)
    net = rl.mlp([4, 8, 2])
    r, nxt = torch.tensor([1.0, 0.5, -1.0]), torch.randn(3, 4)
    term = torch.tensor([0.0, 1.0, 0.0])
    y = rl.dqn_targets(net, r, nxt, term, 0.9)
    for i in range(3):
        best = max(net(nxt[i])[a].item() for a in range(2))
        direct = r[i].item() + (0.0 if term[i] else 0.9 * best)
        assert abs(y[i].item() - direct) < 1e-6


def test_bad_input_errors():
    gym = pytest.importorskip("gymnasium")
    with pytest.raises(ValueError, match="discrete action space"):
        rl.check_discrete(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="transition table"):
        rl.mdp_from_gymnasium(gym.make("CartPole-v1"), 0.9)
    with pytest.raises(ValueError, match="probability distribution"):
        rl.TabularMDP(np.ones((2, 2, 2)), np.zeros((2, 2)), 0.9, [1, 0])
    with pytest.raises(ValueError, match="gamma"):
        rl.TabularMDP(two_state_mdp().P, np.zeros((2, 2)), 1.2, [1, 0])
    with pytest.raises(ValueError, match="strategy"):
        rl.run_bandit(np.zeros((2, 3)), "greedy", 0.1, 10)
    with pytest.raises(ValueError, match="baseline"):
        mdp = chain_mdp()
        s, a, r = rl.sample_episodes(mdp, np.full((4, 2), 0.5), 3, 4, np.random.default_rng(0))
        rl.reinforce_gradients(mdp, np.zeros((4, 2)), s, a, r, baseline=np.zeros(4))


def test_bandit_ucb_tries_every_arm_first_and_greedy_regret_is_linear():
    means = rl.bandit_means(rl.BanditConfig(arms=5, runs=50))
    regret = rl.run_bandit(means, "ucb", 2.0, 5)
    gaps = means.max(1, keepdims=True) - means  # (runs, arms)
    assert np.allclose(np.sort(regret, 1), np.sort(gaps, 1))  # each arm once, in some order
    greedy = rl.run_bandit(means, "epsilon", 0.0, 400).mean(0)
    assert greedy[200:].mean() > 0.5 * greedy[:20].mean() > 0  # greedy stops learning


def test_cartpole_agents_run_and_evaluate():
    pytest.importorskip("gymnasium")
    torch.set_num_threads(1)
    cfg = rl.DQNConfig(steps=600, learning_starts=100, eval_every=300, eval_episodes=2)
    curve, net = rl.train_dqn(cfg, seed=0)
    assert curve.steps == [0, 300, 600] and np.asarray(curve.returns).shape == (3, 2)
    again, _ = rl.train_dqn(cfg, seed=0)
    assert again.returns == curve.returns  # seeded
    zoo = dataclasses.replace(rl.ZOO_CARTPOLE_DQN, steps=600, learning_starts=100,
                              eval_every=300, eval_episodes=2, hidden=16, gradient_steps=8)
    for target_network in (True, False):  # bursts, clipping, ReLU; and the ablation
        cfg = dataclasses.replace(zoo, target_network=target_network)
        curve, net = rl.train_dqn(cfg, seed=0)
        assert curve.steps == [0, 300, 600] and isinstance(net[1], torch.nn.ReLU)
    rcfg = rl.ReinforceConfig(steps=600, batch_steps=200, eval_every=300, eval_episodes=2)
    curve, _ = rl.train_reinforce(rcfg, seed=0)
    assert curve.steps == [0, 300, 600]
    assert np.mean(rl.random_policy_returns("CartPole-v1", 20)) < 40


def test_corridor_is_solved_by_moving_right():
    mdp = rl.corridor(n=4, slip=0.2, step_cost=0.1, gamma=0.9)
    assert np.allclose(mdp.P.sum(-1), 1) and mdp.terminal.tolist() == [False] * 3 + [True]
    V, _ = rl.value_iteration(mdp)
    assert (rl.greedy_policy(mdp, V)[:3].argmax(1) == 1).all()
    with pytest.raises(ValueError, match="n >= 2"):
        rl.corridor(n=1)


def test_random_search_keeps_the_best_linear_rule_within_its_budget():
    pytest.importorskip("gymnasium")
    curve = rl.random_search("CartPole-v1", steps=3000, seed=0, eval_every=1000, eval_episodes=3)
    assert curve.steps == [0, 1000, 2000, 3000]
    assert curve.mean()[-1] > 2 * np.mean(rl.random_policy_returns("CartPole-v1", 20))
    with pytest.raises(ValueError, match="2 actions"):
        rl.random_search("Acrobot-v1", steps=10, seed=0)


def test_random_search_scores_each_rule_on_several_episodes_and_stops_early(monkeypatch):
    pytest.importorskip("gymnasium")
    resets = []  # episodes played, the search's and its evaluations' (both call make_env)
    make = rl.make_env

    def counting(env_id):
        env = make(env_id)
        reset = env.reset
        env.reset = lambda **kw: (resets.append(1), reset(**kw))[1]
        return env

    monkeypatch.setattr(rl, "make_env", counting)
    curve = rl.random_search("CartPole-v1", steps=20_000, seed=0, eval_every=5000,
                             eval_episodes=3, episodes_per_rule=5)
    monkeypatch.setattr(rl, "make_env", make)
    assert curve.steps == [0, 5000, 10_000, 15_000, 20_000]
    assert curve.stopped_at <= 20_000 and len(curve.rules_tried) == 4
    # even with the evaluations' episodes counted, fewer than five episodes per rule were
    # played: a rule is dropped once it cannot beat the best
    tried = curve.rules_tried[-1]
    assert len(resets) < 5 * tried and tried > 10, (len(resets), tried)
    # the search stopped once a rule had scored 500 on all five episodes: it stays the best
    assert curve.stopped_at < 20_000 and curve.mean()[-1] == 500
    # one episode per rule keeps the first rule that once lasts longest
    one = rl.random_search("CartPole-v1", steps=20_000, seed=1, eval_every=5000,
                           eval_episodes=10)
    five = rl.random_search("CartPole-v1", steps=20_000, seed=1, eval_every=5000,
                            eval_episodes=10, episodes_per_rule=5)
    assert one.mean()[-1] < five.mean()[-1] == 500
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="episodes_per_rule must be a positive integer"):
            rl.random_search("CartPole-v1", steps=10, seed=0, episodes_per_rule=bad)


def test_zoo_cartpole_dqn_is_the_zoo_setting():
    # rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1
    zoo = {"hidden": 256, "activation": "relu", "lr": 2.3e-3, "gamma": 0.99,
           "buffer_size": 100_000, "batch_size": 64, "learning_starts": 1000,
           "train_every": 256, "gradient_steps": 128, "target_every": 10, "eps_end": 0.04,
           "eps_fraction": 0.16, "grad_clip": 10.0, "steps": 50_000}
    ours = dataclasses.asdict(rl.ZOO_CARTPOLE_DQN)
    assert {k: ours[k] for k in zoo} == zoo


def test_target_network_is_frozen_through_a_burst(monkeypatch):
    pytest.importorskip("gymnasium")
    torch.set_num_threads(1)
    seen = []  # the bootstrap network's weights at every gradient step

    def recording(net, *args):
        seen.append(torch.cat([p.detach().flatten().clone() for p in net.parameters()]))
        return targets(net, *args)

    targets = rl.dqn_targets
    monkeypatch.setattr(rl, "dqn_targets", recording)
    # bursts of 20 gradient steps at env steps 100, 150, ..., 400; copies at 100, 200, 300, 400,
    # each after that step's burst
    cfg = rl.DQNConfig(steps=400, hidden=16, learning_starts=100, train_every=50,
                       gradient_steps=20, target_every=100, eval_every=400, eval_episodes=1)
    rl.train_dqn(cfg, seed=0)
    bursts = [seen[i:i + 20] for i in range(0, len(seen), 20)]
    assert len(seen) == 7 * 20
    for burst in bursts:  # frozen through every burst
        assert all(torch.equal(w, burst[0]) for w in burst)
    firsts = [b[0] for b in bursts]  # bursts at 100, 150, 200, 250, 300, 350, 400
    changed = [not torch.equal(a, b) for a, b in pairwise(firsts)]
    assert changed == [True, False, True, False, True, False]  # only after a copy
    seen.clear()  # the ablation bootstraps from the online network: it moves every step
    rl.train_dqn(dataclasses.replace(cfg, target_network=False), seed=0)
    assert not any(torch.equal(a, b) for a, b in pairwise(seen[:20]))


def test_sb3_agent_mirrors_every_dqn_config_field():
    pytest.importorskip("stable_baselines3")
    # every field differs from its default and from SB3's, so that a dropped one shows
    cfg = rl.DQNConfig(hidden=24, activation="relu", lr=1.234e-3, gamma=0.97,
                       buffer_size=4321, batch_size=17, learning_starts=321, train_every=7,
                       gradient_steps=3, target_every=11, grad_clip=5.0, eps_start=0.9,
                       eps_end=0.07, eps_fraction=0.3, steps=777, eval_every=111,
                       eval_episodes=3)
    m = rl.sb3_agent("DQN", cfg, rl.make_env(cfg.env_id), seed=0)
    linears = [x for x in m.q_net.q_net if isinstance(x, torch.nn.Linear)]
    mirror = {  # field -> what SB3's model holds for it
        "env_id": m.env.get_attr("spec")[0].id,
        "hidden": [x.out_features for x in linears[:-1]],
        "activation": type(m.q_net.q_net[1]), "lr": m.learning_rate, "gamma": m.gamma,
        "buffer_size": m.buffer_size, "batch_size": m.batch_size,
        "learning_starts": m.learning_starts, "train_every": m.train_freq.frequency,
        "gradient_steps": m.gradient_steps, "target_every": m.target_update_interval,
        "target_network": m.q_net_target is not m.q_net, "grad_clip": m.max_grad_norm,
        "eps_start": m.exploration_initial_eps, "eps_end": m.exploration_final_eps,
        "eps_fraction": m.exploration_fraction,
    }
    expected = dict(dataclasses.asdict(cfg), hidden=[24, 24], activation=torch.nn.ReLU)
    not_sb3 = {"steps", "eval_every", "eval_episodes"}  # learn()'s and the evaluation's
    assert set(mirror) | not_sb3 == {f.name for f in dataclasses.fields(rl.DQNConfig)}
    assert {k: v for k, v in expected.items() if k not in not_sb3} == mirror
    assert rl.sb3_agent("DQN", dataclasses.replace(cfg, grad_clip=None), m.env.envs[0],
                        seed=0).max_grad_norm == 10.0  # no clipping in ours: SB3's default
    with pytest.raises(ValueError, match="target network"):
        rl.sb3_agent("DQN", dataclasses.replace(cfg, target_network=False), m.env.envs[0], 0)


def test_ch17_sweep_tunes_reinforce_on_six_unreported_seeds_and_reports_five():
    """The stored runs are what tools/ch17_rl_sweep.py says: REINFORCE tuned on >= 6 seeds none of
    which is reported, its pick (inside the grid) run on 5 seeds, the other agents on 3."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "ch17_rl_sweep.py"
    spec = importlib.util.spec_from_file_location("ch17_rl_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    assert len(sweep.REINFORCE_TUNE_SEEDS) >= 6 and len(sweep.REINFORCE_SEEDS) >= 5
    assert not set(sweep.REINFORCE_TUNE_SEEDS) & set(sweep.REINFORCE_SEEDS + sweep.SEEDS)
    runs = rl.load_runs()
    tuning = runs["reinforce_tuning"]
    assert tuning["seeds"] == sweep.REINFORCE_TUNE_SEEDS
    assert all(list(c["runs"]) == [str(s) for s in sweep.REINFORCE_TUNE_SEEDS]
               for c in tuning["configs"])
    assert list(runs["runs"]["REINFORCE"]) == [str(s) for s in sweep.REINFORCE_SEEDS]
    assert all(list(runs["runs"][a]) == [str(s) for s in sweep.SEEDS]
               for a in runs["runs"] if a != "REINFORCE")
    pick = max(tuning["configs"], key=lambda c: c["score"])["lr"]
    assert runs["reinforce"]["lr"] == pick
    assert min(sweep.REINFORCE_GRID["lr"]) < pick < max(sweep.REINFORCE_GRID["lr"])


def test_policy_evaluation_of_a_policy_that_never_ends_at_gamma_1():
    gym = pytest.importorskip("gymnasium")
    mdp = rl.mdp_from_gymnasium(gym.make("FrozenLake-v1"), gamma=1.0)
    up = np.eye(4)[np.full(16, 3)]  # "up" everywhere: the top row slips along itself for ever
    V = rl.policy_evaluation(mdp, up)
    assert np.array_equal(V[:4], np.zeros(4))  # never ends, never paid
    _, V_t, _ = rl.finite_horizon_values(mdp, up, 5000)  # the long-horizon limit, by recursion
    assert np.allclose(V, V_t[0], atol=1e-9)
    assert V[14] > 0.1  # next to the goal: a sideways slip from "up" reaches it
    # a policy that loops for ever while paying has no finite value at gamma 1: a clear error
    left = np.eye(2)[np.zeros(4, int)]
    with pytest.raises(ValueError, match="infinite"):
        rl.policy_evaluation(rl.corridor(slip=0.0, step_cost=0.1, gamma=1.0), left)
    assert rl.policy_evaluation(rl.corridor(slip=0.0, step_cost=0.1, gamma=0.9), left)[0] < 0


def test_dqn_update_is_one_step_on_the_huber_loss():
    torch.manual_seed(0)
    q_net, target = rl.mlp([4, 8, 2]), rl.mlp([4, 8, 2])
    batch = (torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1]), torch.randn(5),
             torch.randn(5, 4), torch.tensor([0.0, 0, 1, 0, 0]))
    w0 = [p.detach().clone() for p in q_net.parameters()]
    q = q_net(batch[0])[torch.arange(5), batch[1]]
    y = batch[2] + 0.9 * (1 - batch[4]) * target(batch[3]).max(1).values.detach()
    err = (q - y).abs()
    direct = torch.where(err < 1, 0.5 * err**2, err - 0.5).mean()
    grads = torch.autograd.grad(direct, list(q_net.parameters()))
    loss = rl.dqn_update(q_net, target, torch.optim.SGD(q_net.parameters(), lr=0.1), batch, 0.9)
    assert abs(loss - direct.item()) < 1e-6
    for p, p0, g in zip(q_net.parameters(), w0, grads):
        assert torch.allclose(p, p0 - 0.1 * g, atol=1e-6)


def test_dqn_update_takes_other_targets():
    torch.manual_seed(0)
    q_net, target = rl.mlp([4, 8, 2]), rl.mlp([4, 8, 2])
    batch = (torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1]), torch.randn(5),
             torch.randn(5, 4), torch.tensor([0.0, 0, 1, 0, 0]))

    def double(q, tgt, r, o2, d, gamma):  # Double DQN: the online net picks, the target values
        return r + gamma * (1 - d) * tgt(o2).gather(1, q(o2).argmax(1, keepdim=True)).squeeze(1)

    a2 = q_net(batch[3]).argmax(1)
    y = batch[2] + 0.9 * (1 - batch[4]) * target(batch[3])[torch.arange(5), a2].detach()
    q = q_net(batch[0])[torch.arange(5), batch[1]]
    err = (q - y).abs()
    direct = torch.where(err < 1, 0.5 * err**2, err - 0.5).mean()
    loss = rl.dqn_update(q_net, target, torch.optim.SGD(q_net.parameters(), lr=0.1), batch,
                         0.9, targets=double)
    assert abs(loss - direct.item()) < 1e-6
    with pytest.raises(ValueError, match="one target per transition"):
        rl.dqn_update(q_net, target, torch.optim.SGD(q_net.parameters(), lr=0.1), batch, 0.9,
                      targets=lambda q, t, r, o2, d, g: t(o2))


def test_reinforce_update_surrogate_gradient_is_the_estimate():
    torch.manual_seed(0)
    policy = rl.mlp([3, 2])
    rng = np.random.default_rng(0)
    batch = [(rng.normal(size=(n, 3)), rng.integers(2, size=n), np.ones(n)) for n in (4, 7)]
    w0 = [p.detach().clone() for p in policy.parameters()]
    G = [rl.returns_to_go(r, 0.9) for _, _, r in batch]
    base = np.array([np.mean([g[t] for g in G if len(g) > t]) for t in range(7)])
    adv = np.concatenate([g - base[:len(g)] for g in G])
    adv = adv / (adv.std() + 1e-8)
    obs = torch.as_tensor(np.concatenate([o for o, _, _ in batch]), dtype=torch.float32)
    act = torch.as_tensor(np.concatenate([a for _, a, _ in batch]))
    logp = torch.log_softmax(policy(obs), -1)[torch.arange(11), act]
    # the estimate: mean over episodes of sum_t A_t grad log pi(a_t | s_t), ascended
    est = torch.autograd.grad((torch.as_tensor(adv, dtype=torch.float32) * logp).sum() / 2,
                              list(policy.parameters()))
    rl.reinforce_update(policy, torch.optim.SGD(policy.parameters(), lr=0.1), batch, 0.9)
    for p, p0, g in zip(policy.parameters(), w0, est):
        assert torch.allclose(p, p0 + 0.1 * g, atol=1e-6)


def test_dqn_update_matches_stable_baselines3_on_one_batch():
    pytest.importorskip("stable_baselines3")
    cfg = rl.DQNConfig(hidden=16, grad_clip=0.5, lr=0.01, batch_size=8)
    m = rl.sb3_agent("DQN", cfg, rl.make_env(cfg.env_id), seed=0)
    ours, target = rl.mlp([4, 16, 16, 2]), rl.mlp([4, 16, 16, 2])
    ours.load_state_dict(m.q_net.q_net.state_dict())
    target.load_state_dict(m.q_net_target.q_net.state_dict())
    torch.manual_seed(1)
    o, a, r, o2 = torch.randn(8, 4), torch.randint(2, (8,)), torch.ones(8), torch.randn(8, 4)
    d = torch.tensor([0.0, 1, 0, 0, 0, 0, 1, 0])
    w0 = [p.detach().clone() for p in m.q_net.q_net.parameters()]
    rl.sb3_one_update(m, (o, a, r, o2, d))
    assert any(not torch.equal(p, q) for p, q in zip(w0, m.q_net.q_net.parameters()))
    opt = torch.optim.Adam(ours.parameters(), lr=cfg.lr)
    rl.dqn_update(ours, target, opt, (o, a, r, o2, d), cfg.gamma, cfg.grad_clip)
    for p, q in zip(ours.parameters(), m.q_net.q_net.parameters()):
        assert torch.allclose(p, q, atol=1e-7)
    # a different reward moves it differently: the batch given is the batch used
    m2 = rl.sb3_agent("DQN", cfg, rl.make_env(cfg.env_id), seed=0)
    rl.sb3_one_update(m2, (o, a, -r, o2, d))
    assert not torch.allclose(next(m2.q_net.q_net.parameters()), next(ours.parameters()))
    with pytest.raises(ValueError, match="batch must be"):
        rl.sb3_one_update(m, (o, a, r, o2))
    with pytest.raises(TypeError, match="stable_baselines3 DQN"):
        rl.sb3_one_update(ours, (o, a, r, o2, d))


def test_td_advantages_by_hand_and_unbiased_only_with_the_exact_critic(corridor_episodes):
    mdp, H, theta, exact, V, s, a, r = corridor_episodes
    adv = rl.td_advantages(mdp, V[:H], s, r)
    n, t = 7, 2  # one entry by hand, and the last step bootstraps from nothing
    assert np.isclose(adv[n, t], r[n, t] + mdp.gamma * V[t + 1, s[n, t + 1]] - V[t, s[n, t]])
    assert np.allclose(adv[:, -1], r[:, -1] - V[H - 1, s[:, -1]])
    live = exact.ravel() != 0
    wrong = V[:H] + np.random.default_rng(4).normal(0, 0.3, V[:H].shape)  # (a constant
    # error would not do: it only adds a baseline)
    for critic, unbiased in ((V[:H], True), (wrong, False)):
        g = rl.reinforce_gradients(mdp, theta, s, a, r,
                                   advantages=rl.td_advantages(mdp, critic, s, r))
        g = g.reshape(n := len(s), -1)
        z = (g.mean(0) - exact.ravel())[live] / (g.std(0, ddof=1)[live] / np.sqrt(n))
        assert (np.abs(z).max() < 4.5) == unbiased, z
    with pytest.raises(ValueError, match="V must be"):
        rl.td_advantages(mdp, V, s, r)  # (H + 1, S): one row too many
    with pytest.raises(ValueError, match="not both"):
        rl.reinforce_gradients(mdp, theta, s, a, r, V[:H], advantages=adv)
    with pytest.raises(ValueError, match="advantages must be"):
        rl.reinforce_gradients(mdp, theta, s, a, r, advantages=adv[:, 1:])


def test_train_dqn_probe_sees_the_network_on_schedule_and_changes_nothing():
    pytest.importorskip("gymnasium")
    torch.set_num_threads(1)
    cfg = rl.DQNConfig(steps=600, learning_starts=100, eval_every=300, eval_episodes=2)
    seen = []
    curve, net = rl.train_dqn(cfg, 0, probe=lambda step, q: seen.append(step), probe_every=200)
    assert seen == [0, 200, 400, 600]
    plain, _ = rl.train_dqn(cfg, 0)
    assert plain.returns == curve.returns
    with pytest.raises(ValueError, match="probe_every"):
        rl.train_dqn(cfg, 0, probe=print, probe_every=0)


def test_certainty_equivalence_plans_on_counted_play():
    gym = pytest.importorskip("gymnasium")
    lake = gym.make("FrozenLake-v1")
    mdp = rl.mdp_from_gymnasium(lake, gamma=1.0)
    V_star, _ = rl.value_iteration(mdp)
    policies = rl.certainty_equivalence(lake, 1.0, [2, 2000], seed=1)
    assert policies.shape == (2, 16, 4)
    assert np.allclose(policies.sum(-1), 1.0)  # one-hot, deterministic
    values = [rl.policy_evaluation(mdp, pi)[0] for pi in policies]
    # 2 random episodes tell it almost nothing; 2,000 give the optimal policy
    assert values[0] < 0.5 * V_star[0] and np.isclose(values[1], V_star[0])
    with pytest.raises(ValueError, match="checkpoints"):
        rl.certainty_equivalence(lake, 1.0, [0, 10], seed=0)
    # counted in transitions: the episode-counted planner after as many steps of the same play
    by_steps = rl.certainty_equivalence(lake, 1.0, [3, 15_000], seed=1, unit="transitions")
    assert by_steps.shape == (2, 16, 4)
    assert np.isclose(rl.policy_evaluation(mdp, by_steps[1])[0], V_star[0])
    with pytest.raises(ValueError, match="unit"):
        rl.certainty_equivalence(lake, 1.0, [10], seed=0, unit="steps")


def test_td_control_learns_frozenlake_and_sarsa_differs():
    gym = pytest.importorskip("gymnasium")
    lake = gym.make("FrozenLake-v1")
    mdp = rl.mdp_from_gymnasium(lake, gamma=1.0)
    V_star, _ = rl.value_iteration(mdp)
    q = rl.td_control(lake, mdp, 0, 0.1, 0.5, transitions=20_000, every=5_000)
    assert q.shape == (4,) and q[-1] > 0.5 and (q <= V_star[0] + 1e-9).all()
    again = rl.td_control(lake, mdp, 0, 0.1, 0.5, transitions=20_000, every=5_000)
    assert np.array_equal(q, again)  # seeded: deterministic
    sarsa = rl.td_control(lake, mdp, 0, 0.1, 0.5, 20_000, 5_000, sarsa=True)
    assert not np.array_equal(q, sarsa)  # the on-policy target changes the run
    with pytest.raises(ValueError, match="alpha"):
        rl.td_control(lake, mdp, 0, 0.0, 0.5, transitions=100, every=10)
    with pytest.raises(ValueError, match="every"):
        rl.td_control(lake, mdp, 0, 0.1, 0.5, transitions=100, every=200)


class TwoCellStub:
    """A deterministic gymnasium-like env for hand-checking td_control. From cell 0 either action
    moves to cell 1 for +2. From cell 1, action 0 moves back to 0 for -3 and action 1 ends the
    episode (terminated) for +1, reporting cell 0, whose Q is not 0 by then: a target that
    bootstrapped past termination would show. Episodes are cut (truncated) after ``limit``
    steps. ``actions`` logs the actions taken."""

    class action_space:
        n = 2

    def __init__(self, limit=2):
        self.limit, self.actions = limit, []

    def reset(self, seed=None):
        self.s, self.t = 0, 0
        return 0, {}

    def step(self, a):
        self.t += 1
        self.actions.append(a)
        if self.s == 0:
            self.s, r, terminated = 1, 2.0, False
        elif a == 0:
            self.s, r, terminated = 0, -3.0, False
        else:
            self.s, r, terminated = 0, 1.0, True
        return self.s, r, terminated, self.t >= self.limit and not terminated, {}


def test_td_control_targets_by_hand():
    # epsilon 0 (ties go to action 0), alpha 1, gamma 0.5: each update sets Q(s, a) to its target.
    #  1. (0, 0) -> 1, r 2:                   Q(0, 0) = 2 + .5 Q(1, 0) = 2 + 0          = 2
    #  2. (1, 0) -> 0, r -3, truncated:       Q(1, 0) = -3 + .5 Q(0, a' = 0) = -3 + 1   = -2
    #     (bootstrapped: cut by the time limit, not ended; Q(0, .) = (2, 0), so the mean
    #     would give -2.5, Q(s, a') = Q(1, 0) -3, no bootstrap -3)
    #  3. (0, 0) -> 1, r 2, a' = argmax(-2, 0) = 1: Q(0, 0) = 2 + .5 Q(1, 1) = 2 + 0    = 2
    #     (the mean of Q(1, .) would give 1.5)
    #  4. (1, 1) -> 0, r 1, terminated:       Q(1, 1) = 1 + 0                           = 1
    #     (bootstrapping past the end would add .5 Q(0, 0) = 1)
    # With epsilon 0, SARSA's a' is the greedy action, so both targets agree here.
    P = np.zeros((2, 2, 2))
    P[0, :, 1] = P[1, :, 0] = 1.0
    mdp = rl.TabularMDP(P, [[2.0, 2.0], [-3.0, 1.0]], 0.5, start=[1.0, 0.0])
    by_hand = np.array([[2.0, 0.0], [-2.0, 1.0]])
    for sarsa in (False, True):
        values, Q = rl.td_control(TwoCellStub(), mdp, 0, 1.0, 0.0, transitions=4, every=4,
                                  sarsa=sarsa, gamma=0.5, return_q=True)
        assert np.array_equal(Q, by_hand), (sarsa, Q)
        assert values.shape == (1,)
    three, Q3 = rl.td_control(TwoCellStub(), mdp, 0, 1.0, 0.0, 3, 3, gamma=0.5, return_q=True)
    assert np.array_equal(Q3, [[2.0, 0.0], [-2.0, 0.0]])  # the end's update not yet made
    # without return_q the values alone, as before
    assert np.array_equal(rl.td_control(TwoCellStub(), mdp, 0, 1.0, 0.0, 4, 4, gamma=0.5),
                          values)
    # SARSA's a' is the action it then takes: epsilon 1 (a random walk), no time limit. Seed 0's
    # draws take actions 1, 0, 0, 1: one episode of 4 steps, ended at the fourth.
    #  1. (0, 1) -> 1, r 2, a' = 0:  Q(0, 1) = 2 + .5 Q(1, 0) = 2, and so for Q-learning
    #  2. (1, 0) -> 0, r -3, a' = 0: SARSA  Q(1, 0) = -3 + .5 Q(0, 0) = -3
    #                                Q-learning  -3 + .5 max(0, 2) = -2
    #  3. (0, 0) -> 1, r 2, a' = 1:  Q(0, 0) = 2 + .5 Q(1, 1) = 2 (max(-3 or -2, 0) = 0 too)
    #  4. (1, 1) -> 0, r 1, terminated: Q(1, 1) = 1
    for sarsa, q10 in ((True, -3.0), (False, -2.0)):
        env = TwoCellStub(limit=np.inf)
        _, Q = rl.td_control(env, mdp, 0, 1.0, 1.0, 4, 4, sarsa=sarsa, gamma=0.5,
                             return_q=True)
        assert env.actions == [1, 0, 0, 1], ("numpy's stream for seed 0 changed", env.actions)
        assert np.array_equal(Q, [[2.0, 2.0], [q10, 1.0]]), (sarsa, Q)
    with pytest.raises(TypeError, match="return_q"):
        rl.td_control(TwoCellStub(), mdp, 0, 1.0, 0.0, 4, 4, return_q="yes")
    with pytest.raises(ValueError, match="epsilon_end"):
        rl.td_control(TwoCellStub(), mdp, 0, 1.0, 0.5, 4, 4, epsilon_end=1.5)


def test_td_control_epsilon_decay_is_linear_and_constant_by_default():
    gym = pytest.importorskip("gymnasium")
    lake = gym.make("FrozenLake-v1")
    mdp = rl.mdp_from_gymnasium(lake, gamma=1.0)
    run = dict(transitions=4_000, every=1_000, sarsa=True)
    base = rl.td_control(lake, mdp, 3, 0.1, 0.5, **run)
    assert np.array_equal(base, rl.td_control(lake, mdp, 3, 0.1, 0.5, epsilon_end=0.5, **run))
    assert not np.array_equal(base, rl.td_control(lake, mdp, 3, 0.1, 0.5, epsilon_end=0.0,
                                                  **run))


def test_td_gradient_mean_is_exact_and_matches_the_sampled_mean(corridor_episodes):
    mdp, H, theta, exact, V, s, a, r = corridor_episodes
    assert np.allclose(rl.td_gradient_mean(mdp, theta, V[:H], H), exact, atol=1e-12)
    wrong = V[:H] + np.random.default_rng(5).normal(0, 0.3, V[:H].shape)
    mean = rl.td_gradient_mean(mdp, theta, wrong, H)
    assert np.abs(mean - exact).max() > 0.01  # a wrong critic: biased
    g = rl.reinforce_gradients(mdp, theta, s, a, r,
                               advantages=rl.td_advantages(mdp, wrong, s, r))
    g = g.reshape(n := len(s), -1)
    live = exact.ravel() != 0
    z = (g.mean(0) - mean.ravel())[live] / (g.std(0, ddof=1)[live] / np.sqrt(n))
    assert np.abs(z).max() < 4.5, z  # the sampled mean centres on the exact one
    with pytest.raises(ValueError, match="V must be"):
        rl.td_gradient_mean(mdp, theta, V, H)  # (H + 1, S)


def test_check_reinforce_arguments_names_each_bad_input():
    n, H, S = 3, 4, 5
    baseline, advantages = rl.check_reinforce_arguments(n, H, S, [[0] * S] * H, None)
    assert baseline.dtype == float and baseline.shape == (H, S) and advantages is None
    assert rl.check_reinforce_arguments(n, H, S, None, np.zeros((n, H)))[1].shape == (n, H)
    assert rl.check_reinforce_arguments(n, H, S, None, None) == (None, None)
    with pytest.raises(ValueError, match="not both"):
        rl.check_reinforce_arguments(n, H, S, np.zeros((H, S)), np.zeros((n, H)))
    with pytest.raises(ValueError, match=r"advantages must be \(n, H\) = \(3, 4\)"):
        rl.check_reinforce_arguments(n, H, S, None, np.zeros((n, H + 1)))
    with pytest.raises(ValueError, match=r"baseline must be \(H, S\) = \(4, 5\)"):
        rl.check_reinforce_arguments(n, H, S, np.zeros(S), None)
