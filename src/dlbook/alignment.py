"""From a language model to what people prefer: reward models, RLHF, best-of-n and DPO.

A **preference** says which of two answers y_w ("won") and y_l ("lost") to the same prompt a
rater liked better. The **Bradley-Terry** model (1952) explains preferences by a scalar reward:

    P(y_w > y_l) = sigmoid(r(y_w) - r(y_l)),   loss = -log sigmoid(r(y_w) - r(y_l)).

**RLHF** (Ziegler et al. 2019, Ouyang et al. 2022) then maximises the learned reward while a KL
penalty keeps the policy near the reference model (the one it started from):

    J(pi) = E_{y ~ pi}[ r(y) ] - beta KL(pi || pi_ref),
    KL(pi || pi_ref) = E_{y ~ pi}[ log pi(y) - log pi_ref(y) ],

by the policy gradient of chapter 17 on the penalised reward r(y) - beta log(pi(y) / pi_ref(y)).
Its maximiser is pi*(y) = pi_ref(y) exp(r(y) / beta) / Z, so r(y) = beta log(pi*(y) / pi_ref(y))
+ beta log Z; put that into Bradley-Terry (Z cancels in the difference) and you get **DPO**
(Rafailov et al. 2023), a classification loss on the policy itself:

    loss = -log sigmoid(beta [log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l)]).

**Best-of-n** draws n samples from pi_ref and keeps the one the reward model likes best; for a
continuous reward without ties its KL to pi_ref is log n - (n - 1)/n (an upper bound otherwise).

A sample is a prompt followed by ``new_tokens`` generated tokens; log-probabilities are summed
over the generated tokens only (the prompt is given, not chosen).
"""
from __future__ import annotations

import copy
import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _check_beta(beta: float) -> float:
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not math.isfinite(beta) \
            or beta < 0:
        raise ValueError(f"the KL coefficient beta must be a number >= 0, got {beta!r}")
    return float(beta)


def _check_pairs(chosen, rejected, what: str = "pairs"):
    if chosen.shape != rejected.shape:
        raise ValueError(f"{what}: chosen and rejected must have the same shape (one of each per "
                         f"pair), got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    if chosen.numel() == 0:
        raise ValueError(f"{what}: the preference set is empty")


# --- sampling and sequence log-probabilities ---------------------------------------------------
@dataclass(frozen=True)
class SampleConfig:
    prompt: str = "The whale "
    new_tokens: int = 32  # characters the model writes after the prompt

    def __post_init__(self):
        if not self.prompt:
            raise ValueError("the prompt needs at least one character")
        if isinstance(self.new_tokens, bool) or not isinstance(self.new_tokens, int) \
                or self.new_tokens < 1:
            raise ValueError(f"new_tokens must be a whole number >= 1, got {self.new_tokens!r}")


def sample(model, tokenizer, cfg: SampleConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """n samples of the prompt's continuation, prompt included. (n, P + new_tokens)"""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = model.tok_emb.weight.device
    prompt = torch.tensor([tokenizer.encode(cfg.prompt)], device=device).repeat(n, 1)  # (n, P)
    # thousands of answers at once: caches that do not copy themselves at every step
    return model.generate(prompt, cfg.new_tokens, generator=generator, growing_cache=True)


def sequence_logprob(model, idx: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """log pi(y | prompt) = sum over the generated positions t >= prompt_len of
    log p(idx[t] | idx[:t]). ``idx`` (B, T) holds prompt and sample. (B,)"""
    if idx.ndim != 2 or not 1 <= prompt_len < idx.shape[1]:
        raise ValueError(f"idx must be (B, T) with 1 <= prompt_len < T, got {tuple(idx.shape)} "
                         f"and prompt_len {prompt_len}")
    logits, _ = model(idx[:, :-1])  # (B, T-1, V): position t predicts idx[t+1]
    logp = logits.log_softmax(-1).gather(-1, idx[:, 1:, None])[..., 0]  # (B, T-1)
    return logp[:, prompt_len - 1:].sum(1)  # (B,)


def texts(tokenizer, idx: torch.Tensor, prompt_len: int) -> list[str]:
    """The generated part of every sample, as text."""
    return [tokenizer.decode(row[prompt_len:].tolist()) for row in idx]


# --- the hidden scorer and preferences ----------------------------------------------------------
def vocabulary(text: str, min_count: int = 2) -> frozenset[str]:
    """The lower-case words that occur at least ``min_count`` times in ``text``."""
    counts = Counter(re.findall(r"[a-z]+", text.lower()))
    return frozenset(w for w, c in counts.items() if c >= min_count)


@dataclass(frozen=True)
class LongWordScorer:
    """The hidden scorer that stands in for a human rater: the number of letters in the
    *different* real words (in ``words``) at least ``min_len`` letters long that a sample holds.
    It likes substantial, correctly spelled, varied vocabulary; a misspelled word, a short one
    and a repeated one earn nothing."""

    words: frozenset
    min_len: int = 5

    def __call__(self, texts_: list[str]) -> np.ndarray:
        return np.array([sum(len(w) for w in {w.lower() for w in re.findall(r"[A-Za-z]+", t)}
                             if len(w) >= self.min_len and w in self.words)
                         for t in texts_], dtype=float)


def sample_preferences(score_a: np.ndarray, score_b: np.ndarray, temperature: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Noisy raters: True where a is preferred, drawn with P(a > b) = sigmoid((s_a - s_b) / T)
    (Bradley-Terry on the hidden score). (N,)"""
    score_a, score_b = np.asarray(score_a, float), np.asarray(score_b, float)
    if score_a.shape != score_b.shape:
        raise ValueError(f"pairs of unequal lengths: {score_a.shape} and {score_b.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = 1 / (1 + np.exp(-(score_a - score_b) / temperature))
    return rng.random(p.shape) < p


def agreement_ceiling(score_a, score_b, temperature: float) -> float:
    """The expected accuracy on noisy labels of the best possible predictor, which knows the
    hidden score: E[max(p, 1 - p)] with p = sigmoid((s_a - s_b) / T)."""
    d = np.abs(np.asarray(score_a, float) - np.asarray(score_b, float))
    return float(np.mean(1 / (1 + np.exp(-d / temperature))))


@dataclass
class Preferences:
    """Pairs of samples of the same prompt: a (N, P + new), b (N, P + new), a_won (N,) the
    raters' labels, and the hidden scores of a and b (N,)."""

    a: torch.Tensor
    b: torch.Tensor
    a_won: np.ndarray
    score_a: np.ndarray
    score_b: np.ndarray

    def __len__(self) -> int:
        return len(self.a_won)

    def split(self, n_first: int) -> tuple[Preferences, Preferences]:
        """The first n_first pairs and the rest."""
        first = Preferences(*(v[:n_first] for v in (self.a, self.b, self.a_won, self.score_a,
                                                     self.score_b)))
        rest = Preferences(*(v[n_first:] for v in (self.a, self.b, self.a_won, self.score_a,
                                                    self.score_b)))
        return first, rest

    def untied(self) -> Preferences:
        """The pairs whose two answers score differently: a tie's label is a coin toss, and
        raters who may answer "no preference" give none (InstructGPT's comparisons and
        UltraFeedback-binarized both leave ties out)."""
        keep = torch.as_tensor(self.score_a != self.score_b)
        return Preferences(self.a[keep], self.b[keep], self.a_won[keep.numpy()],
                           self.score_a[keep.numpy()], self.score_b[keep.numpy()])

    def chosen_rejected(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The preferred and the other sample of every pair. (N, T) each"""
        won = torch.as_tensor(self.a_won)[:, None]
        return torch.where(won, self.a, self.b), torch.where(won, self.b, self.a)


@dataclass(frozen=True)
class ExperimentConfig:
    """Chapter 18's preference data: ``n_collect`` pairs of samples, of which the first
    ``n_pairs`` untied ones are kept: ``n_train`` for training, ``n_val`` for validation (the
    reward model's L2 penalty) and the rest for test; raters' noise ``temperature`` (in letters
    of score)."""

    sample: SampleConfig = SampleConfig()
    n_collect: int = 1550
    n_pairs: int = 1000
    n_train: int = 600
    n_val: int = 200
    temperature: float = 2.0


def preference_splits(model, tokenizer, scorer, setup: ExperimentConfig, seed: int):
    """Collect ``setup.n_collect`` pairs, drop the ties, keep the first ``setup.n_pairs`` and
    split them into train, validation and test. Returns (all pairs collected, train, val, test)."""
    prefs = collect_preferences(model, tokenizer, scorer, setup.sample, setup.n_collect,
                                setup.temperature, seed)
    untied = prefs.untied()
    if len(untied) < setup.n_pairs:
        raise ValueError(f"only {len(untied)} untied pairs of {setup.n_collect}; collect more")
    kept, _ = untied.split(setup.n_pairs)
    train, rest = kept.split(setup.n_train)
    val, test = rest.split(setup.n_val)
    return prefs, train, val, test


def moby_scorer() -> LongWordScorer:
    """The hidden scorer with the vocabulary of Moby-Dick's training text (its first 90%, the
    text chapter 14's GPT was trained on)."""
    from .data import verified_path
    from .gpt import VAL_FRACTION

    text = verified_path("moby_dick.txt").read_text(encoding="utf-8")
    return LongWordScorer(vocabulary(text[:int(len(text) * (1 - VAL_FRACTION))]))


def word_features(tokenizer, prompt_len: int):
    """idx (B, T) -> word-length counts of the generated text (B, 12)."""
    return lambda idx: word_length_counts(texts(tokenizer, idx, prompt_len))


def char_features(tokenizer, prompt_len: int):
    """idx (B, T) -> bag of characters of the generated text (B, V)."""
    return lambda idx: char_counts(idx, prompt_len, tokenizer.vocab_size)


def gpt_features(model, prompt_len: int):
    """idx (B, T) -> the mean over the generated positions of ``model``'s last hidden state
    (after the final LayerNorm), the features its next-token head reads. (B, C)"""
    def featurize(idx):
        with torch.no_grad():
            T = idx.shape[1]
            pos = torch.arange(T, device=idx.device)
            x = model.tok_emb(idx) + model.pos_emb(pos)  # (B, T, C)
            for block in model.blocks:
                x = block(x)
            x = model.ln_f(x)  # (B, T, C)
            return x[:, prompt_len:].mean(1).float().cpu()  # (B, C)
    return featurize


def linear_reward(w: torch.Tensor, featurize):
    """The reward model r(y) = w . features(y), as a function of idx (B, T) -> (B,)."""
    return lambda idx: featurize(idx).to(w.device) @ w


def collect_preferences(model, tokenizer, scorer, scfg: SampleConfig, n_pairs: int,
                        temperature: float, seed: int) -> Preferences:
    """Sample 2 n_pairs answers from ``model``, pair them, and let noisy raters who follow
    Bradley-Terry on the hidden ``scorer`` choose."""
    if n_pairs < 1:
        raise ValueError(f"need at least one pair, got {n_pairs}")
    gen = torch.Generator().manual_seed(seed)
    idx = sample(model, tokenizer, scfg, 2 * n_pairs, gen)  # (2N, P + new)
    P = len(tokenizer.encode(scfg.prompt))
    s = scorer(texts(tokenizer, idx, P))  # (2N,)
    a_won = sample_preferences(s[0::2], s[1::2], temperature, np.random.default_rng(seed))
    return Preferences(idx[0::2], idx[1::2], a_won, s[0::2], s[1::2])


# --- the Bradley-Terry reward model -------------------------------------------------------------
def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_w - r_l) over the pairs. r_chosen, r_rejected: (N,)"""
    _check_pairs(r_chosen, r_rejected, "reward pairs")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def char_counts(idx: torch.Tensor, prompt_len: int, vocab_size: int) -> torch.Tensor:
    """Bag of characters of the generated part: how often each character occurs. (B, V)"""
    gen = idx[:, prompt_len:]  # (B, new)
    counts = torch.zeros(idx.shape[0], vocab_size)
    return counts.scatter_add_(1, gen.cpu(), torch.ones(gen.shape))


def word_length_counts(texts_: list[str], max_len: int = 12) -> torch.Tensor:
    """How many words (runs of letters) of each length 1, 2, ..., max_len (and longer, in the
    last column) every text holds. Blind to spelling. (B, max_len)"""
    out = torch.zeros(len(texts_), max_len)
    for i, t in enumerate(texts_):
        for w in re.findall(r"[A-Za-z]+", t):
            out[i, min(len(w), max_len) - 1] += 1
    return out


@dataclass(frozen=True)
class RewardConfig:
    weight_decay: float = 1e-2  # L2 on the weights, chosen on validation pairs
    steps: int = 300  # full-batch L-BFGS iterations


def fit_reward_model(x_chosen: torch.Tensor, x_rejected: torch.Tensor,
                     cfg: RewardConfig = RewardConfig()) -> torch.Tensor:
    """A linear reward r(y) = w . x(y) fitted by the Bradley-Terry loss with L2 penalty on
    features of the chosen and rejected answers (N, D). Returns w (D,). (A bias cancels in
    every difference r_w - r_l, so there is none.)"""
    _check_pairs(x_chosen, x_rejected, "reward-model pairs")
    d = (x_chosen - x_rejected).double()  # (N, D)
    w = torch.zeros(d.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=cfg.steps, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = -F.logsigmoid(d @ w).mean() + cfg.weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().float()


def bt_val_loss(w: torch.Tensor, x_a: torch.Tensor, x_b: torch.Tensor, a_won) -> float:
    """The Bradley-Terry loss of a linear reward w on labelled pairs (features (N, D))."""
    won = torch.as_tensor(np.asarray(a_won))[:, None]
    xw, xl = torch.where(won, x_a, x_b), torch.where(won, x_b, x_a)
    return bradley_terry_loss(xw @ w, xl @ w).item()


DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def tune_reward_model(featurize, train: Preferences, val: Preferences,
                      decays=DECAYS, test: Preferences | None = None) -> dict:
    """Fit a linear Bradley-Terry reward on ``featurize(idx)`` (N, D) features of the training
    pairs for every weight decay; keep the one with the lowest validation loss. Returns the
    weights, the pick and every decay's validation loss and accuracy (and, given ``test``
    pairs, the pick's test loss and accuracy, measured once)."""
    if len(train) == 0 or len(val) == 0 or (test is not None and len(test) == 0):
        raise ValueError("the preference set is empty")
    cw, cl = (featurize(x) for x in train.chosen_rejected())
    va, vb = featurize(val.a), featurize(val.b)
    table = []
    for wd in decays:
        w = fit_reward_model(cw, cl, RewardConfig(weight_decay=wd))
        table.append({"decay": wd, "w": w, "val_loss": bt_val_loss(w, va, vb, val.a_won),
                      "val_acc": pair_accuracy((va @ w).numpy(), (vb @ w).numpy(), val.a_won)})
    best = min(table, key=lambda row: row["val_loss"])
    out = {"w": best["w"], "decay": best["decay"], "table": table}
    if test is not None:
        ta, tb = featurize(test.a), featurize(test.b)
        out["test_loss"] = bt_val_loss(best["w"], ta, tb, test.a_won)
        out["test_acc"] = pair_accuracy((ta @ best["w"]).numpy(), (tb @ best["w"]).numpy(),
                                        test.a_won)
    return out


def pair_accuracy(r_a: np.ndarray, r_b: np.ndarray, a_won: np.ndarray) -> float:
    """The fraction of pairs whose label the rewards predict (a tie counts a half)."""
    r_a, r_b = np.asarray(r_a, float), np.asarray(r_b, float)
    if r_a.shape != r_b.shape or r_a.shape != np.shape(a_won):
        raise ValueError("pairs of unequal lengths")
    if r_a.size == 0:
        raise ValueError("the preference set is empty")
    s = np.sign(r_a - r_b)
    return float(np.mean(np.where(s == 0, 0.5, (s > 0) == np.asarray(a_won))))


# --- KL -------------------------------------------------------------------------------------------
def exact_kl(p, q) -> float:
    """KL(p || q) = sum p log(p / q) of two distributions over the same finite set."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    m = p > 0
    if (q[m] == 0).any():
        return math.inf
    return float(np.sum(p[m] * (np.log(p[m]) - np.log(q[m]))))


def kl_estimates(logp: torch.Tensor, logq: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample estimators of KL(p || q) from samples x ~ p, with log r = log q(x) - log p(x)
    (Schulman 2020): k1 = -log r (unbiased, can be negative), k2 = (log r)^2 / 2 (biased, low
    variance), k3 = (r - 1) - log r (unbiased and >= 0). Each (N,)."""
    if logp.shape != logq.shape:
        raise ValueError(f"logp and logq must have the same shape, got {tuple(logp.shape)} "
                         f"and {tuple(logq.shape)}")
    log_r = logq - logp
    return {"k1": -log_r, "k2": 0.5 * log_r ** 2, "k3": torch.expm1(log_r) - log_r}


# --- best-of-n -----------------------------------------------------------------------------------
def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || reference) = log n - (n - 1)/n for a continuous reward without ties."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(probs, rewards, n: int) -> np.ndarray:
    """The exact distribution of best-of-n over a finite set: n draws from ``probs``, keep the
    highest reward (ties broken uniformly at random). With F the probability of a reward below
    r and G that of a reward up to r, the tied group at r is chosen with probability
    G^n - F^n, shared in proportion to probs. (K,)"""
    probs, rewards = np.asarray(probs, float), np.asarray(rewards, float)
    if probs.shape != rewards.shape or probs.ndim != 1:
        raise ValueError("probs and rewards must be 1-d and of equal length")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = np.zeros_like(probs)
    for r in np.unique(rewards):
        group = rewards == r
        below, upto = probs[rewards < r].sum(), probs[rewards <= r].sum()
        out[group] = (upto ** n - below ** n) * probs[group] / probs[group].sum()
    return out


def best_of_n_weights(m: int, n: int) -> np.ndarray:
    """Best-of-n from a pool of m samples sorted by reward, ascending: the probability that n
    draws with replacement from the pool pick sample i as their best, (i/m)^n - ((i-1)/m)^n.
    Sum them against any score to get its expectation under best-of-n of the pool. (m,)"""
    i = np.arange(1, m + 1)
    return (i / m) ** n - ((i - 1) / m) ** n


def score_at_kl(kl, score, budget: float) -> float:
    """A run's score where its KL first reaches ``budget`` nats: linear interpolation between
    its evaluations, on the KL so far (never shrinking); nan if the run never gets that far."""
    kl = np.maximum.accumulate(np.asarray(kl, float))
    if budget < 0:
        raise ValueError(f"the KL budget must be >= 0, got {budget}")
    return float(np.interp(budget, kl, np.asarray(score, float))) if kl[-1] >= budget \
        else math.nan


def best_within_kl(history: list[dict], budget: float,
                   measures=("hidden", "kl", "repeat", "hidden_clean", "ref_nats")
                   ) -> dict[str, float]:
    """A run's best use of a KL budget. The candidates: its checkpoints whose KL so far on the
    answers kept apart (``kl_pick``) stays within ``budget``, and the point where it first
    reaches the budget (read as :func:`score_at_kl` does). The one with the highest kept-apart
    hidden score (``hidden_pick``) is chosen, and its ``measures`` are read on the other
    answers (at the crossing: interpolated on their KL). So a setting that stops short of the
    budget competes with its best checkpoint, one that passes it with its reading there.
    Returns the measures and ``pick``, the kept-apart score it was chosen on; all nan if no
    checkpoint after step 0 fits (a missing measure is nan)."""
    nan = math.nan
    kl_pick = np.maximum.accumulate([e["kl_pick"] for e in history])
    options = [(history[i]["hidden_pick"], {m: history[i].get(m, nan) for m in measures})
               for i in range(1, len(history)) if kl_pick[i] <= budget]
    crossing = score_at_kl(kl_pick, [e["hidden_pick"] for e in history], budget)
    kl = [e["kl"] for e in history]
    if not math.isnan(crossing) and max(kl) >= budget:
        options.append((crossing, {m: budget if m == "kl" else score_at_kl(
            kl, [e.get(m, nan) for e in history], budget) for m in measures}))
    if not options:
        return {"pick": nan, **{m: nan for m in measures}}
    pick, read = max(options, key=lambda o: o[0])
    return {"pick": pick, **read}


def choose_within_kl(family: dict[str, list[list[dict]]], budget: float) -> dict:
    """One method's choice of setting for a KL budget. ``family`` maps each setting to its
    runs' histories, one per seed. Every run is read by :func:`best_within_kl`; the setting
    whose mean kept-apart score (``pick``) over the seeds is highest is chosen (one with a seed
    that has no reading cannot be). Returns ``setting``, its per-seed ``readings`` (measures of
    the reported answers, ``kl`` their KL) and ``picks``, each setting's mean kept-apart
    score."""
    if not family:
        raise ValueError("no settings to choose from")
    readings = {k: [best_within_kl(h, budget) for h in hists] for k, hists in family.items()}
    if len({len(r) for r in readings.values()}) != 1:
        raise ValueError("every setting needs the same number of seeds")
    picks = {k: float(np.mean([x["pick"] for x in r])) for k, r in readings.items()}
    setting = max(picks, key=lambda k: -math.inf if math.isnan(picks[k]) else picks[k])
    if math.isnan(picks[setting]):
        raise ValueError(f"no setting has a reading within {budget} nats on every seed")
    return {"setting": setting, "readings": readings[setting], "picks": picks}


def best_of_n_within_kl(record: dict[str, list[float]], ns: list[int], budget: float) -> dict:
    """Best-of-n's reading within a KL budget: the largest n whose KL by the formula
    (:func:`best_of_n_kl`, an upper bound) is at most ``budget``, with every measure that
    ``record`` holds per n, and ``kl``, the formula's KL. (Nothing to choose on, so no answers
    are kept apart: the pool's expectations are exact.)"""
    fits = [i for i, n in enumerate(ns) if best_of_n_kl(n) <= budget + 1e-12]
    if not fits:
        raise ValueError(f"no n within {budget} nats")
    i = fits[-1]
    return {"n": ns[i], **{m: v[i] for m, v in record.items()}, "kl": best_of_n_kl(ns[i])}


def mean_se(d) -> tuple[float, float]:
    """Mean and standard error (ddof = 1) of per-seed values."""
    d = np.asarray(d, float)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"need at least two per-seed values, got shape {d.shape}")
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def pm(d) -> str:
    """"mean ± standard error" of per-seed values; two decimals where one would show 0.0."""
    m, se = mean_se(d)
    n = 2 if se < 0.05 else 1
    return f"{m:.{n}f} ± {se:.{n}f}"


def paired_verdict(a, b, name_a: str, name_b: str, level: float = 0.05) -> dict:
    """The verdict on two methods' per-seed scores (paired by seed): the differences' mean and
    standard error, on how many seeds ``a`` is ahead, the paired t statistic and its two-sided
    p-value (n - 1 degrees of freedom), whether the two are separable (p < ``level``: with 3
    seeds the mean must be 4.30 standard errors from 0, not 2) and a sentence saying so."""
    from scipy.special import stdtr, stdtrit  # Student's t CDF and its inverse

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"per-seed scores of different shapes: {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"the test's level must lie in (0, 1), got {level}")
    d = a - b
    m, se = mean_se(d)
    n, ahead = len(d), int((d > 0).sum())
    t = m / se if se > 0 else (math.inf if m else 0.0) * np.sign(m)
    p = float(2 * stdtr(n - 1, -abs(t)))
    critical = float(stdtrit(n - 1, 1 - level / 2))
    separable = p < level
    test = f"t = {abs(t):.1f}, " + (f"p = {p:.2f}" if p >= 0.01 else "p < 0.01")
    if separable:
        lead, other, diff, k = ((name_a, name_b, d, ahead) if m > 0
                                else (name_b, name_a, -d, n - ahead))
        text = f"{lead} leads {other} by {pm(diff)} (ahead on {k} of {n} seeds; {test})"
    elif ahead in (0, n) and m != 0:
        lead, other, diff = (name_a, name_b, d) if ahead else (name_b, name_a, -d)
        text = (f"{lead} is ahead of {other} on all {n} seeds, by {pm(diff)}, but not "
                f"significantly with {n} seeds ({test})")
    else:
        text = (f"{name_a} and {name_b} are not separable with {n} seeds ({name_a} minus "
                f"{name_b}: {pm(d)}; {name_a} ahead on {ahead} of {n}; p = {p:.2f})")
    return {"mean": m, "se": se, "ahead": ahead, "seeds": n, "t": float(t), "p": p,
            "critical": critical, "separable": separable, "text": text}


# --- DPO ------------------------------------------------------------------------------------------
def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """-log sigmoid(beta [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))]),
    averaged over pairs. All four: sequence log-probabilities, (N,)."""
    beta = _check_beta(beta)
    _check_pairs(pi_chosen, pi_rejected, "DPO pairs")
    _check_pairs(ref_chosen, ref_rejected, "DPO reference pairs")
    if pi_chosen.shape != ref_chosen.shape:
        raise ValueError("policy and reference log-probabilities must have the same shape")
    margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)  # (N,)
    return -F.logsigmoid(beta * margin).mean()


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1
    lr: float = 1e-4
    steps: int = 100
    batch_pairs: int = 16
    eval_every: int = 10

    def __post_init__(self):
        _check_beta(self.beta)


# --- RLHF -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RLHFConfig:
    beta: float = 0.1  # KL coefficient
    lr: float = 3e-4
    steps: int = 80
    batch: int = 32  # samples per policy-gradient step
    eval_every: int = 10

    def __post_init__(self):
        _check_beta(self.beta)


def rlhf_step(policy, ref, reward_fn, tokenizer, scfg: SampleConfig, beta: float, opt,
              batch: int, generator: torch.Generator) -> dict[str, float]:
    """One REINFORCE step (chapter 17) on the KL-penalised reward
    R(y) = r(y) - beta (log pi(y) - log pi_ref(y)), with the batch mean of R as the baseline."""
    beta = _check_beta(beta)
    P = len(tokenizer.encode(scfg.prompt))
    idx = sample(policy, tokenizer, scfg, batch, generator)  # (B, P + new)
    policy.train()
    logp = sequence_logprob(policy, idx, P)  # (B,), differentiable
    with torch.no_grad():
        logq = sequence_logprob(ref, idx, P)  # (B,)
        r = torch.as_tensor(reward_fn(idx), dtype=logq.dtype).to(logq.device)  # (B,)
        kl = logp.detach() - logq  # (B,) k1 per sample
        R = r - beta * kl
        advantage = R - R.mean()
    loss = -(advantage * logp).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    policy.eval()
    return {"reward": r.mean().item(), "kl": kl.mean().item()}


def evaluate(policy, ref, reward_fn, hidden_fn, tokenizer, scfg: SampleConfig, n: int,
             generator: torch.Generator) -> dict[str, float]:
    """Mean learned reward, hidden score (with its standard error) and KL(pi || pi_ref) (k1,
    with its standard error) of n fresh samples of the policy; and the hidden score and KL of
    n further samples (``hidden_pick``, ``kl_pick``), for choosing settings and checkpoints on
    samples other than those reported. Two measures the hidden scorer does not pay for, on the
    reported samples: ``repeat``, the share of answers that use one word of 5 or more letters
    twice or more (the hidden scorer counts distinct words, so a repeat earns nothing: it
    marks degenerate text), ``hidden_clean``, the hidden score of the answers that repeat no
    such word (nan if none), and ``ref_nats``, the reference's log-likelihood per character
    (nats; far above the reference's own samples' means the answers collapsed onto a few
    of the reference's likeliest strings)."""
    P = len(tokenizer.encode(scfg.prompt))
    with torch.no_grad():
        idx = sample(policy, tokenizer, scfg, 2 * n, generator)
        logq = sequence_logprob(ref, idx, P)  # (2n,)
        kl = sequence_logprob(policy, idx, P) - logq  # (2n,)
        r = reward_fn(idx[:n])
    answers = texts(tokenizer, idx, P)
    h = hidden_fn(answers)  # (2n,)
    clean = ~np.array([repeats_long_word(t) for t in answers[:n]])  # (n,)
    return {"reward": r.mean().item(), "hidden": float(h[:n].mean()),
            "hidden_se": float(h[:n].std(ddof=1) / math.sqrt(n)), "kl": kl[:n].mean().item(),
            "kl_se": (kl[:n].std() / math.sqrt(n)).item(), "hidden_pick": float(h[n:].mean()),
            "kl_pick": kl[n:].mean().item(), "sample": answers[0],
            "repeat": float(np.mean(~clean)),
            "hidden_clean": float(h[:n][clean].mean()) if clean.any() else math.nan,
            "ref_nats": (logq[:n].mean() / (idx.shape[1] - P)).item()}


def repeats_long_word(text: str, min_len: int = 5) -> bool:
    """Whether ``text`` uses some word of ``min_len`` or more letters more than once."""
    words = re.findall(f"[a-z]{{{min_len},}}", text.lower())
    return len(words) > len(set(words))


def train_rlhf(base, reward_fn, hidden_fn, tokenizer, scfg: SampleConfig, cfg: RLHFConfig,
               seed: int, eval_n: int = 64):
    """Fine-tune a copy of ``base`` by KL-penalised REINFORCE; ``base`` stays the reference.
    Returns the policy and the evaluations every ``eval_every`` steps (step 0 included)."""
    torch.manual_seed(seed)
    policy, ref = copy.deepcopy(base), base
    policy.eval()
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)

    def update():
        rlhf_step(policy, ref, reward_fn, tokenizer, scfg, cfg.beta, opt, cfg.batch, gen)

    history = _run_with_evaluations(policy, ref, update, cfg.steps, cfg.eval_every, reward_fn,
                                    hidden_fn, tokenizer, scfg, eval_n, seed)
    return policy, history


def _run_with_evaluations(policy, ref, update, steps: int, eval_every: int, reward_fn, hidden_fn,
                          tokenizer, scfg: SampleConfig, eval_n: int, seed: int,
                          extra=None) -> list[dict]:
    """``steps`` calls of ``update()``, with :func:`evaluate` before the first and after every
    ``eval_every``-th (on its own generator, seeded ``10_000 + seed``), plus ``extra()``'s
    measures if given; the last evaluation also records the CPU seconds of the whole run. The
    loop of RLHF and of DPO."""
    eval_gen = torch.Generator().manual_seed(10_000 + seed)
    history, start = [], time.process_time()
    for step in range(steps + 1):
        if step % eval_every == 0:
            history.append({"step": step, **evaluate(policy, ref, reward_fn, hidden_fn, tokenizer,
                                                     scfg, eval_n, eval_gen)})
            if extra is not None:
                history[-1].update(extra())
        if step < steps:
            update()
    history[-1]["cpu_seconds"] = time.process_time() - start
    return history


def dpo_batches(n_pairs: int, cfg: DPOConfig, seed: int) -> torch.Tensor:
    """The pairs :func:`train_dpo` draws, (cfg.steps, cfg.batch_pairs) indices into its
    ``n_pairs`` pairs: drawn with replacement, so a pair may come twice and another never."""
    if n_pairs < 1:
        raise ValueError(f"DPO needs at least one pair to draw from, got {n_pairs}")
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(n_pairs, (cfg.batch_pairs,), generator=gen)
                        for _ in range(cfg.steps)])


def train_dpo(base, chosen: torch.Tensor, rejected: torch.Tensor, reward_fn, hidden_fn, tokenizer,
              scfg: SampleConfig, cfg: DPOConfig, seed: int, eval_n: int = 64,
              test: Preferences | None = None):
    """Fine-tune a copy of ``base`` on preference pairs (N, P + new) by the DPO loss, the
    reference being ``base``; evaluated like :func:`train_rlhf`. With ``test`` (held-out
    labelled pairs), each evaluation also records ``implicit_acc``: how often DPO's implicit
    reward, beta * log(pi / pi_ref) of an answer, ranks the preferred answer of a test pair
    higher (:func:`implicit_reward_accuracy`)."""
    _check_pairs(chosen, rejected, "DPO pairs")
    torch.manual_seed(seed)
    P = len(tokenizer.encode(scfg.prompt))
    policy, ref = copy.deepcopy(base), base
    policy.eval()
    with torch.no_grad():
        ref_w, ref_l = sequence_logprob(ref, chosen, P), sequence_logprob(ref, rejected, P)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    batches = iter(dpo_batches(len(chosen), cfg, seed))

    def update():
        b = next(batches)
        policy.train()
        both = sequence_logprob(policy, torch.cat([chosen[b], rejected[b]]), P)  # (2b,)
        loss = dpo_loss(both[:len(b)], both[len(b):], ref_w[b], ref_l[b], cfg.beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        policy.eval()

    extra = None
    if test is not None:
        with torch.no_grad():
            ref_ab = (sequence_logprob(ref, test.a, P), sequence_logprob(ref, test.b, P))

        def extra():
            return {"implicit_acc": implicit_reward_accuracy(policy, ref_ab, test, P)}

    history = _run_with_evaluations(policy, ref, update, cfg.steps, cfg.eval_every, reward_fn,
                                    hidden_fn, tokenizer, scfg, eval_n, seed, extra)
    return policy, history


def implicit_reward_accuracy(policy, ref_logprobs, pairs: Preferences, prompt_len: int) -> float:
    """The pair accuracy of DPO's implicit reward log(pi / pi_ref) on labelled ``pairs``
    (beta > 0 scales it, so it does not change the ranking); ``ref_logprobs`` is the
    reference's (log p(a), log p(b)) of the pairs."""
    ref_a, ref_b = ref_logprobs
    if len(ref_a) != len(pairs) or len(ref_b) != len(pairs):
        raise ValueError(f"{len(ref_a)} and {len(ref_b)} reference log-probabilities for "
                         f"{len(pairs)} pairs")
    with torch.no_grad():
        ra = sequence_logprob(policy, pairs.a, prompt_len) - ref_a
        rb = sequence_logprob(policy, pairs.b, prompt_len) - ref_b
    return pair_accuracy(ra.numpy(), rb.numpy(), pairs.a_won)


def config_dict(cfg) -> dict:
    return asdict(cfg)


RUNS_FILE = "ch18_alignment.json"


def load_runs() -> dict:
    """The committed results of ``tools/ch18_alignment_sweep.py`` (sha256-checked)."""
    import json

    from .data import verified_path

    with open(verified_path(RUNS_FILE), encoding="utf-8") as f:
        return json.load(f)
