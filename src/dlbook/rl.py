"""Reinforcement learning from its equations: bandits, tabular MDPs, the policy gradient, and two
deep agents (REINFORCE and DQN) for gymnasium's discrete-action tasks.

An **agent** acts, the **environment** answers with a reward and the next state. The **return**
from step t is ``G_t = r_t + gamma r_{t+1} + gamma^2 r_{t+2} + ...``; a **policy** pi(a | s)
chooses actions; its **value** is ``V(s) = E[G_0 | s_0 = s]`` and its action value
``Q(s, a) = E[G_0 | s_0 = s, a_0 = a]``.

- **Bandits** (one state): epsilon-greedy and UCB (UCB1 when its weight c is sqrt 2), vectorised
  over independent runs.
- **Value iteration** (Bellman 1957): ``V <- max_a R(s, a) + gamma sum_s' P(s' | s, a) V(s')``.
- **Policy gradient** of a tabular softmax policy on a finite-horizon MDP, exactly (backward
  induction, differentiable in torch, and the policy-gradient theorem in closed form), and
  **REINFORCE** (Williams 1992), its Monte-Carlo estimate, with an optional baseline b(s, t):

      grad J = E[ sum_t gamma^t (G_t - b(s_t, t)) grad log pi(a_t | s_t) ].

- **Deep RL** on gymnasium (CartPole-v1): REINFORCE with a small policy network, and DQN (Mnih
  et al. 2015) with a replay buffer and a target network:
  ``y = r + gamma (1 - terminated) max_a' Q_target(s', a')``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# --- bandits ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BanditConfig:
    arms: int = 10
    steps: int = 1000
    runs: int = 200  # independent bandits (a fresh set of arm means each)
    seed: int = 0


def bandit_means(cfg: BanditConfig) -> np.ndarray:
    """The testbed of Sutton and Barto: arm means ~ N(0, 1), one set per run. (runs, arms)"""
    return np.random.default_rng(cfg.seed).normal(size=(cfg.runs, cfg.arms))


def run_bandit(means: np.ndarray, strategy: str, param: float, steps: int,
               seed: int = 0) -> np.ndarray:
    """Play every run's bandit for ``steps`` pulls; rewards ~ N(mean, 1). ``strategy`` is
    "epsilon" (explore uniformly with probability ``param``) or "ucb" (UCB with exploration
    weight c = ``param``: argmax Q + c sqrt(ln t / n); c = sqrt 2 is Auer et al.'s UCB1).
    Returns the regret of each pull, max mean - mean of the pulled arm. (runs, steps)"""
    if strategy not in ("epsilon", "ucb"):
        raise ValueError(f"strategy must be 'epsilon' or 'ucb', got {strategy!r}")
    if param < 0 or (strategy == "epsilon" and param > 1):
        raise ValueError(f"bad {strategy} parameter {param}")
    means = np.asarray(means, dtype=float)
    if means.ndim != 2:
        raise ValueError(f"means must be (runs, arms), got shape {means.shape}")
    rng = np.random.default_rng(seed)
    runs, arms = means.shape
    q = np.zeros((runs, arms))  # sample-mean estimates
    n = np.zeros((runs, arms))  # pull counts
    best, rows = means.max(1), np.arange(runs)
    regret = np.empty((runs, steps))
    for t in range(steps):
        if strategy == "epsilon":
            greedy = np.argmax(q + 1e-9 * rng.random((runs, arms)), 1)  # random ties
            explore = rng.random(runs) < param
            a = np.where(explore, rng.integers(arms, size=runs), greedy)
        else:  # every arm once, then the upper confidence bound
            bonus = param * np.sqrt(math.log(t + 1) / np.maximum(n, 1))
            a = np.argmax(np.where(n == 0, np.inf, q + bonus), 1)
        r = means[rows, a] + rng.normal(size=runs)
        n[rows, a] += 1
        q[rows, a] += (r - q[rows, a]) / n[rows, a]
        regret[:, t] = best - means[rows, a]
    return regret


# --- tabular MDPs -------------------------------------------------------------------------------
@dataclass
class TabularMDP:
    """P (S, A, S): transition probabilities; R (S, A): expected reward; start (S,): the
    initial distribution; terminal (S,): absorbing states worth 0."""

    P: np.ndarray
    R: np.ndarray
    gamma: float
    start: np.ndarray
    terminal: np.ndarray | None = None

    def __post_init__(self):
        self.P, self.R = np.asarray(self.P, float), np.asarray(self.R, float)
        S, A = self.R.shape
        if self.P.shape != (S, A, S):
            raise ValueError(f"P must be (S, A, S) = {(S, A, S)}, got {self.P.shape}")
        if not np.allclose(self.P.sum(-1), 1.0) or (self.P < 0).any():
            raise ValueError("every P[s, a] must be a probability distribution over next states")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        self.start = np.asarray(self.start, float)
        if self.start.shape != (S,) or not np.isclose(self.start.sum(), 1.0):
            raise ValueError("start must be a distribution over the S states")
        self.terminal = (np.zeros(S, bool) if self.terminal is None
                         else np.asarray(self.terminal, bool))

    @property
    def n_states(self) -> int:
        return self.R.shape[0]

    @property
    def n_actions(self) -> int:
        return self.R.shape[1]


def corridor(n: int = 4, slip: float = 0.2, step_cost: float = 0.1,
             gamma: float = 0.9) -> TabularMDP:
    """A corridor of ``n`` cells, the last one the goal (terminal). Actions: 0 left, 1 right; a
    move goes the other way with probability ``slip`` (the left wall stops it). Every step costs
    ``step_cost``; reaching the goal pays 1. The agent starts in cell 0."""
    if n < 2 or not 0 <= slip <= 1:
        raise ValueError(f"need n >= 2 cells and 0 <= slip <= 1, got n={n}, slip={slip}")
    P = np.zeros((n, 2, n))
    for s in range(n - 1):
        for a, step in ((0, -1), (1, 1)):
            P[s, a, min(max(s + step, 0), n - 1)] += 1 - slip
            P[s, a, min(max(s - step, 0), n - 1)] += slip
    P[n - 1, :, n - 1] = 1.0
    R = -step_cost + P[:, :, n - 1]  # expected reward: the cost, and 1 on reaching the goal
    R[n - 1] = 0.0
    terminal = np.arange(n) == n - 1
    return TabularMDP(P, R, gamma, np.eye(n)[0], terminal)


def check_discrete(env) -> int:
    """The number of actions of ``env``; a clear error for a continuous action space."""
    space = env.action_space
    if not hasattr(space, "n"):
        raise ValueError(f"this agent needs a discrete action space, got {space} "
                         "(a continuous one needs another policy: e.g. a Gaussian)")
    return int(space.n)


def mdp_from_gymnasium(env, gamma: float) -> TabularMDP:
    """The MDP of a gymnasium toy-text environment (FrozenLake, CliffWalking, Taxi), read from
    its transition table ``env.unwrapped.P[s][a] = [(p, s', r, done), ...]``."""
    A = check_discrete(env)
    table = getattr(env.unwrapped, "P", None)
    if table is None:
        raise ValueError(f"{env} has no transition table P: only toy-text environments do")
    S = len(table)
    P, R, terminal = np.zeros((S, A, S)), np.zeros((S, A)), np.zeros(S, bool)
    for s in range(S):
        for a in range(A):
            for p, s2, r, done in table[s][a]:
                P[s, a, s2] += p
                R[s, a] += p * r
                terminal[s2] |= bool(done)
    P[terminal], R[terminal] = 0.0, 0.0  # absorbing, worth nothing
    P[terminal, :, terminal.nonzero()[0]] = 0.0
    for s in terminal.nonzero()[0]:
        P[s, :, s] = 1.0
    start = np.asarray(env.unwrapped.initial_state_distrib, float)
    return TabularMDP(P, R, gamma, start, terminal)


def bellman_backup(mdp: TabularMDP, V: np.ndarray) -> np.ndarray:
    """Q(s, a) = R(s, a) + gamma sum_s' P(s' | s, a) V(s'). (S, A)"""
    return mdp.R + mdp.gamma * mdp.P @ V  # (S, A, S) @ (S,) -> (S, A)


def value_iteration(mdp: TabularMDP, tol: float = 1e-10,
                    max_iter: int = 10_000) -> tuple[np.ndarray, list[np.ndarray]]:
    """Iterate V <- max_a Q(s, a) from V = 0 until no value moves by more than ``tol``.
    Returns the optimal values (S,) and every iterate (history[k] is V after k sweeps)."""
    V = np.zeros(mdp.n_states)
    history = [V]
    for _ in range(max_iter):
        V_new = np.where(mdp.terminal, 0.0, bellman_backup(mdp, V).max(1))
        history.append(V_new)
        if np.abs(V_new - V).max() < tol:
            return V_new, history
        V = V_new
    raise RuntimeError(f"value iteration did not converge in {max_iter} sweeps (gamma = 1 "
                       "with a policy that never ends?)")


def greedy_policy(mdp: TabularMDP, V: np.ndarray) -> np.ndarray:
    """The deterministic policy that is greedy with respect to V, as a table pi(a | s). (S, A)"""
    return np.eye(mdp.n_actions)[bellman_backup(mdp, V).argmax(1)]


def policy_evaluation(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """V^pi exactly, by solving (I - gamma P_pi) V = r_pi on the non-terminal states. (S,)

    At gamma = 1 the system is singular when pi can loop for ever: from some states no terminal
    state is reachable. Those states are found by reachability; if pi earns no reward there,
    their value is 0 (nothing is ever collected) and the rest is solved without them; if it
    does, the value is infinite and a ValueError says so."""
    pi = np.asarray(pi, float)
    if pi.shape != mdp.R.shape or not np.allclose(pi.sum(1), 1.0):
        raise ValueError(f"pi must be a (S, A) = {mdp.R.shape} table of distributions")
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)  # (S, S)
    r_pi = (pi * mdp.R).sum(1)  # (S,)
    live = ~mdp.terminal
    if mdp.gamma == 1.0:
        ends = mdp.terminal.copy()  # states from which a terminal state is reachable
        while True:
            more = ends | ((P_pi[:, ends] > 0).any(1))
            if (more == ends).all():
                break
            ends = more
        stuck = live & ~ends
        if np.abs(r_pi[stuck]).max(initial=0.0) > 0:
            raise ValueError(f"at gamma = 1, pi never ends from states {stuck.nonzero()[0]} "
                             "and earns reward there: their value is infinite")
        live = live & ends  # the stuck states keep V = 0
    V = np.zeros(mdp.n_states)
    A = np.eye(live.sum()) - mdp.gamma * P_pi[np.ix_(live, live)]
    V[live] = np.linalg.solve(A, r_pi[live])
    return V


def certainty_equivalence(env, gamma: float, checkpoints, seed: int,
                          unit: str = "episodes") -> np.ndarray:
    """Model-based baseline: play uniformly at random, count transitions, and at each checkpoint
    (episodes played, or with unit="transitions" environment steps taken) plan on the estimated
    model: P from the counts, R the mean reward, terminal the states play ended in, and (s, a)
    never tried staying put with reward 0.
    Returns the greedy policies of value iteration on that model. (len(checkpoints), S, A)"""
    A = check_discrete(env)
    S = env.observation_space.n
    checkpoints = sorted(int(c) for c in checkpoints)
    if unit not in ("episodes", "transitions"):
        raise ValueError(f"unit must be 'episodes' or 'transitions', got {unit!r}")
    if not checkpoints or checkpoints[0] < 1:
        raise ValueError(f"checkpoints must be {unit} counts >= 1, got {checkpoints}")
    rng = np.random.default_rng(seed)
    counts, reward_sums = np.zeros((S, A, S)), np.zeros((S, A))
    starts, terminal, policies = np.zeros(S), np.zeros(S, bool), []

    def plan() -> None:
        n = counts.sum(2)  # (S, A) visits
        P = np.where(n[..., None] > 0, counts / np.maximum(n, 1)[..., None],
                     np.eye(S)[:, None, :])  # unseen: stay
        R = reward_sums / np.maximum(n, 1)
        P[terminal], R[terminal] = np.eye(S)[terminal][:, None, :], 0.0
        model = TabularMDP(P, R, gamma, starts / starts.sum(), terminal)
        policies.append(greedy_policy(model, value_iteration(model)[0]))

    episode = steps = 0
    while len(policies) < len(checkpoints):
        s, _ = env.reset(seed=int(rng.integers(2**31)))
        starts[s] += 1
        done = False
        while not done and len(policies) < len(checkpoints):
            a = int(rng.integers(A))
            s2, r, terminated, truncated, _ = env.step(a)
            counts[s, a, s2] += 1
            reward_sums[s, a] += r
            terminal[s2] |= terminated
            s, done, steps = s2, terminated or truncated, steps + 1
            if unit == "transitions" and steps in checkpoints:
                plan()
        episode += 1
        if unit == "episodes" and episode in checkpoints:
            plan()
    return np.array(policies)


def check_td_arguments(alpha, alpha_end, epsilon, epsilon_end, every, transitions, return_q):
    """td_control's settings: a clear error for each bad one."""
    if not (0 < min(alpha, alpha_end) and max(alpha, alpha_end) <= 1):
        raise ValueError(f"need 0 < alpha, alpha_end <= 1; got {alpha}, {alpha_end}")
    if not (0 <= min(epsilon, epsilon_end) and max(epsilon, epsilon_end) <= 1):
        raise ValueError(f"need 0 <= epsilon, epsilon_end <= 1; got {epsilon}, {epsilon_end}")
    if not 0 < every <= transitions:
        raise ValueError(f"need 0 < every <= transitions; got {every}, {transitions}")
    if not isinstance(return_q, bool):
        raise TypeError(f"return_q must be True or False, got {return_q!r}")


def td_control(env, mdp: TabularMDP, seed: int, alpha: float, epsilon: float,
               transitions: int, every: int, sarsa: bool = False, gamma: float = 0.99,
               alpha_end: float | None = None, epsilon_end: float | None = None,
               return_q: bool = False):
    """Tabular Q-learning (or, with sarsa=True, SARSA) on a toy-text env, acting
    epsilon-greedily for a fixed number of transitions (episode k starts from
    reset(seed=100_000 seed + 10_000 + k)). Q-learning's target is r + gamma max_a' Q(s', a'),
    SARSA's r + gamma Q(s', a') with a' the action it then takes; 0 past a terminal state, but
    bootstrapped past a truncated one. The step size goes linearly from alpha to alpha_end, the
    exploration rate from epsilon to epsilon_end (default: constant). Every ``every``
    transitions: the exact value under ``mdp`` (its start distribution) of Q's greedy policy.
    Returns those values (transitions // every,), and with return_q=True also the final Q
    (S, A)."""
    n_actions = check_discrete(env)
    a_end = alpha if alpha_end is None else alpha_end
    e_end = epsilon if epsilon_end is None else epsilon_end
    check_td_arguments(alpha, a_end, epsilon, e_end, every, transitions, return_q)
    rng, Q, values = np.random.default_rng(seed), np.zeros(mdp.R.shape), []
    step, episode = 0, 0

    def act(s: int) -> int:
        eps = epsilon + (e_end - epsilon) * step / max(transitions - 1, 1)
        explore = rng.random() < eps
        return int(rng.integers(n_actions)) if explore else int(Q[s].argmax())

    while step < transitions:
        s, _ = env.reset(seed=100_000 * seed + 10_000 + episode)
        a, done, episode = act(s), False, episode + 1
        while not done and step < transitions:
            s2, r, terminated, truncated, _ = env.step(a)
            a2 = act(s2)  # SARSA's a'; Q-learning acts with it too (chosen before the update)
            nxt = Q[s2, a2] if sarsa else Q[s2].max()
            size = alpha + (a_end - alpha) * step / max(transitions - 1, 1)
            Q[s, a] += size * (r + gamma * nxt * (not terminated) - Q[s, a])
            s, a, done, step = s2, a2, terminated or truncated, step + 1
            if step % every == 0:
                greedy = np.eye(n_actions)[Q.argmax(1)]  # (S, A) one-hot
                values.append(float(mdp.start @ policy_evaluation(mdp, greedy)))
    return (np.array(values), Q) if return_q else np.array(values)


# --- the policy gradient on a finite-horizon MDP -------------------------------------------------
def softmax_policy(theta):
    """pi(a | s) = softmax over a of theta(s, a), for a numpy array or a torch tensor. (S, A)"""
    if isinstance(theta, torch.Tensor):
        return torch.softmax(theta, -1)
    z = np.exp(theta - theta.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def exact_objective(mdp: TabularMDP, theta: torch.Tensor, horizon: int) -> torch.Tensor:
    """J(theta) = E[sum_{t < H} gamma^t r_t] under the softmax policy, by backward induction:
    differentiable, so torch.autograd gives the exact gradient."""
    P, R = torch.as_tensor(mdp.P, dtype=theta.dtype), torch.as_tensor(mdp.R, dtype=theta.dtype)
    pi = softmax_policy(theta)  # (S, A)
    V = torch.zeros(mdp.n_states, dtype=theta.dtype)
    for _ in range(horizon):
        V = (pi * (R + mdp.gamma * P @ V)).sum(1)
    return torch.as_tensor(mdp.start, dtype=theta.dtype) @ V


def finite_horizon_values(mdp: TabularMDP, pi: np.ndarray, horizon: int):
    """Q_t (H, S, A) and V_t (H + 1, S) of policy pi with t steps taken (V_H = 0), and the
    state distribution d_t (H, S) from the start."""
    S, A = mdp.R.shape
    Q, V = np.zeros((horizon, S, A)), np.zeros((horizon + 1, S))
    for t in reversed(range(horizon)):
        Q[t] = bellman_backup(mdp, V[t + 1])
        V[t] = (pi * Q[t]).sum(1)
    d = np.zeros((horizon, S))
    d[0] = mdp.start
    for t in range(1, horizon):
        d[t] = d[t - 1] @ np.einsum("sa,sat->st", pi, mdp.P)
    return Q, V, d


def exact_policy_gradient(mdp: TabularMDP, theta: np.ndarray, horizon: int) -> np.ndarray:
    """The policy-gradient theorem for a softmax table, in closed form:
    dJ/dtheta(s, a) = sum_t gamma^t d_t(s) pi(a | s) (Q_t(s, a) - V_t(s)). (S, A)"""
    pi = softmax_policy(theta)
    Q, V, d = finite_horizon_values(mdp, pi, horizon)
    disc = mdp.gamma ** np.arange(horizon)  # (H,)
    advantage = Q - V[:horizon, :, None]  # (H, S, A)
    return np.einsum("t,ts,sa,tsa->sa", disc, d, pi, advantage)


def td_gradient_mean(mdp: TabularMDP, theta: np.ndarray, V: np.ndarray,
                     horizon: int) -> np.ndarray:
    """The exact mean of the policy-gradient estimate with the one-step (TD) advantage of a
    critic V (H, S), as ``td_advantages`` and ``reinforce_gradients`` sample it: the advantage is
    linear in V, so its mean is a sum over d_t, pi and P (V_H = 0):
    sum_t gamma^t d_t(s) pi(a | s) (R(s, a) + gamma P V_{t+1} - V_t(s)) (e_a - pi(. | s)).
    With the policy's own V_t it is exact_policy_gradient; any other V adds a bias. (S, A)"""
    V = np.asarray(V, float)
    if V.shape != (horizon, mdp.n_states):
        raise ValueError(f"V must be (H, S) = {(horizon, mdp.n_states)}, got {V.shape}")
    pi = softmax_policy(theta)
    _, _, d = finite_horizon_values(mdp, pi, horizon)
    V_next = np.concatenate([V[1:], np.zeros((1, mdp.n_states))])  # (H, S)
    advantage = mdp.R + mdp.gamma * np.einsum("sat,ht->hsa", mdp.P, V_next) \
        - V[:, :, None]  # (H, S, A): its mean given s_t, a_t
    w = (mdp.gamma ** np.arange(horizon))[:, None, None] * d[:, :, None] * pi * advantage
    return w.sum(0) - w.sum((0, 2))[:, None] * pi  # sum_a w(a) (e_a - pi)


def sample_episodes(mdp: TabularMDP, pi: np.ndarray, n: int, horizon: int,
                    rng: np.random.Generator):
    """n episodes of ``horizon`` steps, all at once: states, actions (n, H) int, rewards (n, H).
    (Terminal states are absorbing with reward 0, so a fixed length loses nothing.)"""
    S, A = mdp.R.shape
    states, actions = np.zeros((n, horizon), int), np.zeros((n, horizon), int)
    rewards = np.zeros((n, horizon))
    s = rng.choice(S, size=n, p=mdp.start)
    cum_pi, cum_P = pi.cumsum(1), mdp.P.cumsum(2)
    for t in range(horizon):
        a = np.minimum((rng.random((n, 1)) > cum_pi[s]).sum(1), A - 1)
        states[:, t], actions[:, t], rewards[:, t] = s, a, mdp.R[s, a]
        s = np.minimum((rng.random((n, 1)) > cum_P[s, a]).sum(1), S - 1)
    return states, actions, rewards


def returns_to_go(rewards, gamma: float):
    """G_t = sum_{k >= t} gamma^(k - t) r_k along the last axis, for numpy or torch. (..., T)"""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    G = rewards * 0.0
    running = rewards[..., -1] * 0.0
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        G[..., t] = running
    return G


def td_advantages(mdp: TabularMDP, V: np.ndarray, states, rewards) -> np.ndarray:
    """Actor-critic's one-step advantage r_t + gamma V_{t+1}(s_{t+1}) - V_t(s_t) along sampled
    episodes of H steps, with a critic V (H, S) indexed by the steps taken; after the last step
    the horizon is reached and nothing follows (V_H = 0). (n, H)"""
    n, H = states.shape
    V = np.asarray(V, float)
    if V.shape != (H, mdp.n_states):
        raise ValueError(f"V must be (H, S) = {(H, mdp.n_states)}, got {V.shape}")
    t = np.arange(H)
    v_next = np.concatenate([V[t[1:], states[:, 1:]], np.zeros((n, 1))], 1)  # (n, H)
    return rewards + mdp.gamma * v_next - V[t, states]


def check_reinforce_arguments(n: int, H: int, S: int, baseline, advantages):
    """reinforce_gradients' optional inputs: a clear error for each bad one. Returns them as
    float arrays (or None)."""
    if advantages is not None:
        if baseline is not None:
            raise ValueError("give a baseline or advantages, not both")
        advantages = np.asarray(advantages, float)
        if advantages.shape != (n, H):
            raise ValueError(f"advantages must be (n, H) = {(n, H)}, got {advantages.shape}")
    if baseline is not None:
        baseline = np.asarray(baseline, float)
        if baseline.shape != (H, S):
            raise ValueError(f"baseline must be (H, S) = {(H, S)}, got {baseline.shape}")
    return baseline, advantages


def reinforce_gradients(mdp: TabularMDP, theta: np.ndarray, states, actions, rewards,
                        baseline: np.ndarray | None = None, discount_weights: bool = True,
                        advantages: np.ndarray | None = None):
    """One REINFORCE estimate per episode: sum_t gamma^t (G_t - b(t, s_t)) grad log pi(a_t|s_t),
    with grad_theta(s, .) log pi(a | s) = onehot(a) - pi(. | s). ``baseline`` is (H, S) or None.
    ``advantages`` (n, H), if given, replaces G_t - b (e.g. td_advantages: an actor-critic).
    ``discount_weights=False`` drops the gamma^t factor (a common bug: a biased estimate).
    Returns (n, S, A)."""
    (n, H), (S, A) = states.shape, mdp.R.shape  # episodes, steps; states, actions
    baseline, advantages = check_reinforce_arguments(n, H, S, baseline, advantages)
    G = returns_to_go(rewards, mdp.gamma) if advantages is None else advantages  # (n, H)
    if baseline is not None:
        G = G - baseline[np.arange(H), states]
    weight = G * (mdp.gamma ** np.arange(H) if discount_weights else 1.0)  # (n, H)
    score = np.eye(A)[actions] - softmax_policy(theta)[states]  # (n, H, A): grad log pi
    grads = np.zeros((n, S, A))
    for t in range(H):
        np.add.at(grads, (np.arange(n), states[:, t]), weight[:, t, None] * score[:, t])
    return grads


# --- deep RL on gymnasium -----------------------------------------------------------------------
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(sizes: list[int], activation: str = "tanh") -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([ACTIVATIONS[activation]()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class ReinforceConfig:
    env_id: str = "CartPole-v1"
    steps: int = 50_000  # environment steps of training
    hidden: int = 64
    lr: float = 0.01  # the centre of tools/ch17_rl_sweep.py's grid; the chapter uses its pick
    gamma: float = 0.99
    batch_steps: int = 1000  # one update per batch of whole episodes of at least this many steps
    eval_every: int = 5000
    eval_episodes: int = 10


@dataclass(frozen=True)
class DQNConfig:
    """Defaults: a plain DQN (one gradient step per environment step, no gradient clipping);
    ZOO_CARTPOLE_DQN below holds rl-baselines3-zoo's settings for CartPole-v1."""
    env_id: str = "CartPole-v1"
    steps: int = 50_000
    hidden: int = 64
    activation: str = "tanh"
    lr: float = 1e-3
    gamma: float = 0.99
    buffer_size: int = 50_000
    batch_size: int = 64
    learning_starts: int = 1000
    train_every: int = 1  # env steps between bursts of gradient steps
    gradient_steps: int = 1  # gradient steps per burst
    target_every: int = 500  # env steps between copies into the target network
    target_network: bool = True  # False: bootstrap from the online network itself (ablation)
    grad_clip: float | None = None  # max gradient norm (None: no clipping)
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.2  # of the steps over which epsilon decays linearly
    eval_every: int = 5000
    eval_episodes: int = 10


ZOO_CARTPOLE_DQN = DQNConfig(
    hidden=256, activation="relu", lr=2.3e-3, gamma=0.99, buffer_size=100_000,
    train_every=256, gradient_steps=128, target_every=10, grad_clip=10.0, eps_end=0.04,
    eps_fraction=0.16)
"""rl-baselines3-zoo's hyperparams/dqn.yml entry for CartPole-v1, field for field (gamma 0.99
included); tools/ch17_rl_sweep.py tunes its learning rate."""


@dataclass
class Curve:
    """Greedy evaluation returns at fixed environment-step counts. returns: (checkpoints, episodes)"""

    steps: list[int]
    returns: list[list[float]]
    cpu_seconds: float = 0.0

    def mean(self) -> np.ndarray:
        return np.asarray(self.returns, float).mean(1)


def make_env(env_id: str):
    import gymnasium as gym

    env = gym.make(env_id)
    check_discrete(env)
    return env


def evaluate(act: Callable[[np.ndarray], int], env_id: str, episodes: int,
             seed: int = 10_000) -> list[float]:
    """Undiscounted returns of ``act`` (observation -> action) over ``episodes`` episodes whose
    starts are seeded ``seed, seed + 1, ...`` (the same starts for every agent)."""
    env, returns = make_env(env_id), []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(act(obs))
            total += r
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def greedy(net: nn.Module) -> Callable[[np.ndarray], int]:
    """The argmax action of a network of logits or action values."""
    def act(obs):
        with torch.no_grad():
            return int(net(torch.as_tensor(obs, dtype=torch.float32)).argmax())
    return act


def random_policy_returns(env_id: str, episodes: int, seed: int = 10_000) -> list[float]:
    rng = np.random.default_rng(seed)
    n = check_discrete(make_env(env_id))
    return evaluate(lambda obs: int(rng.integers(n)), env_id, episodes, seed)


def random_search(env_id: str, steps: int, seed: int, eval_every: int = 5000,
                  eval_episodes: int = 10, episodes_per_rule: int = 1) -> Curve:
    """The simplest learner worth beating on a small control task: draw linear policies
    a = [w . obs > 0], w ~ N(0, I), score each on up to ``episodes_per_rule`` episodes, and keep
    the best so far (by its mean return), until ``steps`` environment steps are spent. Two
    actions only.

    With several episodes per rule, scoring stops as soon as the rule cannot beat the best any
    more, even were every remaining episode to reach the time limit (rewards of at most 1 per
    step, as on CartPole); and once the best rule has scored the largest possible return on
    every episode, nothing can replace it, so the search stops: the remaining checkpoints repeat
    its evaluation (``curve.stopped_at``: the step it stopped at, else ``steps``). A checkpoint
    whose best rule has not changed reuses the previous evaluation (the same seeded starts)."""
    if episodes_per_rule < 1 or int(episodes_per_rule) != episodes_per_rule:
        raise ValueError(f"episodes_per_rule must be a positive integer, got {episodes_per_rule!r}")
    t0 = time.process_time()
    rng = np.random.default_rng(seed)
    env = make_env(env_id)
    if env.action_space.n != 2:
        raise ValueError(f"random_search draws a sign rule: it needs 2 actions, got "
                         f"{env.action_space.n}")
    dim = env.observation_space.shape[0]
    cap = float(env.spec.max_episode_steps or np.inf)  # the largest return of one episode
    best_w, best_score = rng.normal(size=dim), -np.inf  # score: mean return

    def rule(w):
        return lambda obs: int(w @ obs > 0)

    scored = []  # the best rule's evaluation, while it stays the best (seeded starts)

    def checkpoint(step):
        if not scored:
            scored.append(evaluate(rule(best_w), env_id, eval_episodes))
        curve.steps.append(step)
        curve.returns.append(scored[0])
        curve.rules_tried.append(tried)

    curve = Curve([0], [evaluate(rule(best_w), env_id, eval_episodes)])
    curve.rules_tried = []  # candidates drawn by each checkpoint
    step, tried = 0, 0
    while step < steps and best_score < cap:
        w, tried = rng.normal(size=dim), tried + 1  # a new candidate
        total, played = 0.0, 0
        while played < episodes_per_rule and step < steps:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            done = False
            while not done and step < steps:
                obs, r, terminated, truncated, _ = env.step(int(w @ obs > 0))
                total, step, done = total + r, step + 1, terminated or truncated
                if step % eval_every == 0:  # the best finished candidate so far
                    checkpoint(step)
            if not done:
                break  # the budget ran out inside an episode: the rule is not scored
            played += 1
            left = episodes_per_rule - played  # stop once it cannot beat the best
            if total + left * cap <= best_score * episodes_per_rule:
                break
        if played == episodes_per_rule and total / played > best_score:
            best_w, best_score = w, total / played
            scored.clear()
    curve.stopped_at = step
    for k in range(step // eval_every + 1, steps // eval_every + 1):  # the search stopped
        checkpoint(k * eval_every)
    curve.cpu_seconds = time.process_time() - t0
    return curve


def train_reinforce(cfg: ReinforceConfig, seed: int) -> tuple[Curve, nn.Module]:
    """REINFORCE with returns-to-go and the batch's mean return-to-go at each time step as its
    baseline, one Adam step per batch of whole episodes."""
    t0 = time.process_time()
    torch.manual_seed(seed)
    env = make_env(cfg.env_id)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    policy = mlp([obs_dim, cfg.hidden, cfg.hidden, n_actions])
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    curve = Curve([0], [evaluate(greedy(policy), cfg.env_id, cfg.eval_episodes)])
    obs, _ = env.reset(seed=seed)
    step, batch = 0, []  # batch: episodes of (observations, actions, rewards)
    ep_obs, ep_act, ep_rew = [], [], []
    while step < cfg.steps:
        with torch.no_grad():
            logits = policy(torch.as_tensor(obs, dtype=torch.float32))
        a = int(torch.distributions.Categorical(logits=logits).sample())
        ep_obs.append(obs)
        ep_act.append(a)
        obs, r, terminated, truncated, _ = env.step(a)
        ep_rew.append(r)
        step += 1
        if terminated or truncated:
            batch.append((np.array(ep_obs), np.array(ep_act), np.array(ep_rew)))
            ep_obs, ep_act, ep_rew = [], [], []
            obs, _ = env.reset()
            if sum(len(e[1]) for e in batch) >= cfg.batch_steps:
                reinforce_update(policy, opt, batch, cfg.gamma)
                batch = []
        if step % cfg.eval_every == 0:
            curve.steps.append(step)
            curve.returns.append(evaluate(greedy(policy), cfg.env_id, cfg.eval_episodes))
    curve.cpu_seconds = time.process_time() - t0
    return curve, policy


def reinforce_update(policy: nn.Module, opt, batch, gamma: float) -> float:
    """One REINFORCE step on a batch of whole episodes [(obs, actions, rewards), ...]: the
    surrogate loss -sum_t A_t log pi(a_t | s_t), A_t the return-to-go minus the batch's mean at
    step t, scaled to unit spread; its gradient is the policy-gradient estimate. Returns it."""
    G = [returns_to_go(r.astype(np.float64), gamma) for _, _, r in batch]
    longest = max(len(g) for g in G)
    padded = np.full((len(G), longest), np.nan)
    for i, g in enumerate(G):
        padded[i, :len(g)] = g
    baseline = np.nanmean(padded, 0)  # (T,): mean return-to-go of the episodes still running
    obs = torch.as_tensor(np.concatenate([o for o, _, _ in batch]), dtype=torch.float32)
    act = torch.as_tensor(np.concatenate([a for _, a, _ in batch]))
    adv = np.concatenate([g - baseline[:len(g)] for g in G])
    adv = torch.as_tensor(adv / (adv.std() + 1e-8), dtype=torch.float32)  # (N,)
    logp = F.log_softmax(policy(obs), -1)[torch.arange(len(act)), act]  # (N,)
    loss = -(logp * adv).sum() / len(batch)  # surrogate: its gradient is the estimate
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', terminated) for DQN."""

    def __init__(self, capacity: int, obs_dim: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        """A uniform batch (with replacement): tensors obs (B, D), actions (B,), rewards (B,),
        next_obs (B, D), terminated (B,)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(self.size, size=batch_size)
        return tuple(torch.as_tensor(x[idx]) for x in (
            self.obs, self.actions, self.rewards, self.next_obs, self.terminated))


def dqn_targets(target_net: nn.Module, rewards, next_obs, terminated, gamma: float):
    """y = r + gamma (1 - terminated) max_a' Q_target(s', a'): no bootstrap past a true end, but
    bootstrapped past a time-limit truncation. (B,)"""
    with torch.no_grad():
        return rewards + gamma * (1.0 - terminated) * target_net(next_obs).max(1).values


def checked_targets(targets: Callable, q_net: nn.Module, target_net: nn.Module, rewards,
                    next_obs, terminated, gamma: float):
    """``targets(q_net, target_net, rewards, next_obs, terminated, gamma)`` without a gradient,
    checked to give one target per transition. (B,)"""
    with torch.no_grad():
        y = targets(q_net, target_net, rewards, next_obs, terminated, gamma)
    if y.shape != rewards.shape:
        raise ValueError(f"targets must return one target per transition, shape "
                         f"{tuple(rewards.shape)}; got {tuple(y.shape)}")
    return y


def dqn_update(q_net: nn.Module, target_net: nn.Module, opt, batch, gamma: float,
               grad_clip: float | None = None, targets: Callable | None = None) -> float:
    """One gradient step of DQN on a replay batch (obs, actions, rewards, next_obs,
    terminated): regress Q(s, a) on the fixed target y with a Huber loss. Returns the loss.
    ``targets(q_net, target_net, rewards, next_obs, terminated, gamma)``, if given, computes y
    in place of :func:`dqn_targets` (for example Double DQN's)."""
    obs, actions, rewards, next_obs, terminated = batch
    if targets is None:  # (B,), no gradient
        y = dqn_targets(target_net, rewards, next_obs, terminated, gamma)
    else:  # for example Double DQN's, checked: one target per transition
        y = checked_targets(targets, q_net, target_net, rewards, next_obs, terminated, gamma)
    q = q_net(obs).gather(1, actions[:, None]).squeeze(1)  # (B,): Q of the actions taken
    loss = F.smooth_l1_loss(q, y)
    opt.zero_grad()
    loss.backward()
    if grad_clip is not None:  # rescale the whole gradient to norm <= grad_clip
        nn.utils.clip_grad_norm_(q_net.parameters(), grad_clip)
    opt.step()
    return float(loss.detach())


def epsilon_at(cfg: DQNConfig, step: int) -> float:
    frac = min(1.0, step / max(1.0, cfg.eps_fraction * cfg.steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def train_dqn(cfg: DQNConfig, seed: int, probe: Callable[[int, nn.Module], None] | None = None,
              probe_every: int = 500, targets: Callable | None = None) -> tuple[Curve, nn.Module]:
    """DQN: epsilon-greedy acting, a replay buffer, a Huber loss on the TD error, a target
    network copied every ``target_every`` steps (or, with ``target_network=False``, none: the
    target is bootstrapped from the online network's current weights). ``probe(step, q_net)``,
    if given, is called at step 0 and every ``probe_every`` steps; it must not train the net.
    ``targets``, if given, is passed to :func:`dqn_update` (for example Double DQN's targets)."""
    if probe_every < 1:
        raise ValueError(f"probe_every must be >= 1, got {probe_every}")
    t0 = time.process_time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = make_env(cfg.env_id)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    sizes = [obs_dim, cfg.hidden, cfg.hidden, n_actions]
    q_net = mlp(sizes, cfg.activation)
    target = mlp(sizes, cfg.activation) if cfg.target_network else q_net
    target.load_state_dict(q_net.state_dict())
    opt = torch.optim.Adam(q_net.parameters(), lr=cfg.lr)
    buffer = ReplayBuffer(cfg.buffer_size, obs_dim)
    curve = Curve([0], [evaluate(greedy(q_net), cfg.env_id, cfg.eval_episodes)])
    obs, _ = env.reset(seed=seed)
    if probe:
        probe(0, q_net)
    for step in range(1, cfg.steps + 1):
        if rng.random() < epsilon_at(cfg, step):
            a = int(rng.integers(n_actions))
        else:
            a = greedy(q_net)(obs)
        next_obs, r, terminated, truncated, _ = env.step(a)
        buffer.add(obs, a, r, next_obs, terminated)
        obs = env.reset()[0] if terminated or truncated else next_obs
        if step >= cfg.learning_starts and step % cfg.train_every == 0:
            for _ in range(cfg.gradient_steps):
                batch = buffer.sample(cfg.batch_size, rng)
                dqn_update(q_net, target, opt, batch, cfg.gamma, cfg.grad_clip, targets)
        if cfg.target_network and step % cfg.target_every == 0:
            target.load_state_dict(q_net.state_dict())
        if step % cfg.eval_every == 0:
            curve.steps.append(step)
            curve.returns.append(evaluate(greedy(q_net), cfg.env_id, cfg.eval_episodes))
        if probe and step % probe_every == 0:
            probe(step, q_net)
    curve.cpu_seconds = time.process_time() - t0
    return curve, q_net


def start_q_values(q_net: nn.Module, env_id: str = "CartPole-v1", n: int = 50,
                   seed: int = 30_000) -> np.ndarray:
    """max_a Q(s_0, a) on ``n`` seeded start states (seeds ``seed, seed + 1, ...``). (n,)"""
    env = make_env(env_id)
    starts = np.array([env.reset(seed=seed + k)[0] for k in range(n)], np.float32)
    env.close()
    with torch.no_grad():
        return q_net(torch.as_tensor(starts)).max(1).values.numpy().astype(float)


RUNS_FILE = "ch17_rl_runs.json"


def sb3_agent(kind: str, cfg: DQNConfig, env, seed: int):
    """stable-baselines3's DQN with the book's DQN settings, or its PPO with its defaults: the
    one argument list that tools/ch17_rl_sweep.py trains and the chapter shows."""
    from stable_baselines3 import DQN, PPO

    if kind == "PPO":
        return PPO("MlpPolicy", env, seed=seed, device="cpu")  # 64-64 tanh
    if kind != "DQN":
        raise ValueError(f"kind must be 'DQN' or 'PPO', got {kind!r}")
    if not cfg.target_network:
        raise ValueError("stable-baselines3's DQN always has a target network: "
                         "target_network=False has no SB3 equivalent")
    return DQN(
        "MlpPolicy", env, learning_rate=cfg.lr, buffer_size=cfg.buffer_size,
        learning_starts=cfg.learning_starts, batch_size=cfg.batch_size,
        gamma=cfg.gamma, train_freq=cfg.train_every, gradient_steps=cfg.gradient_steps,
        target_update_interval=cfg.target_every,
        max_grad_norm=10.0 if cfg.grad_clip is None else cfg.grad_clip,  # 10: SB3's default
        exploration_fraction=cfg.eps_fraction,
        exploration_initial_eps=cfg.eps_start, exploration_final_eps=cfg.eps_end,
        policy_kwargs=dict(net_arch=[cfg.hidden] * 2,
                           activation_fn=ACTIVATIONS[cfg.activation]),
        seed=seed, device="cpu")


def sb3_one_update(model, batch) -> None:
    """One gradient step of stable-baselines3's ``DQN.train`` on a given batch (obs, actions,
    rewards, next_obs, terminated), as ``dqn_update`` takes it, in place of one sampled from
    the model's replay buffer: to compare the two updates on the same data. The model's buffer
    keeps returning that batch afterwards: use a model made for the comparison."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    if not isinstance(model, DQN):
        raise TypeError(f"model must be a stable_baselines3 DQN, got {type(model).__name__}")
    if len(batch) != 5:
        raise ValueError("batch must be (obs, actions, rewards, next_obs, terminated), "
                         f"got {len(batch)} items")
    obs, actions, rewards, next_obs, terminated = batch
    samples = ReplayBufferSamples(obs, actions[:, None], next_obs, terminated[:, None],
                                  rewards[:, None])  # SB3's order, (B, 1) columns
    model.replay_buffer.sample = lambda *_, **__: samples
    model.set_logger(Logger(None, []))  # train() logs; nothing to log to
    model._current_progress_remaining = 1.0  # where its learning-rate schedule reads the rate
    model.train(gradient_steps=1, batch_size=len(obs))


def load_runs() -> dict:
    """The committed results of ``tools/ch17_rl_sweep.py`` (sha256-checked): configs, the random
    policy's returns, and runs[agent][seed] = a Curve's fields."""
    import json

    from .data import verified_path

    with open(verified_path(RUNS_FILE), encoding="utf-8") as f:
        return json.load(f)


def curves_of(runs: dict, agent: str) -> np.ndarray:
    """Mean greedy return at every checkpoint, one row per seed. (seeds, checkpoints)"""
    return np.array([np.mean(c["returns"], 1) for c in runs["runs"][agent].values()])
