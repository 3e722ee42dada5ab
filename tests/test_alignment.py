"""dlbook.alignment against direct formulas, exact enumeration, autograd and trl's DPO loss."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from dlbook import alignment as al
from dlbook.gpt import GPT, GPTConfig
from dlbook.language_models import CharTokenizer


def test_bradley_terry_loss_is_the_formula():
    g = torch.Generator().manual_seed(0)
    rw, rl_ = torch.randn(50, generator=g), torch.randn(50, generator=g)
    direct = np.mean([-math.log(1 / (1 + math.exp(-(a - b)))) for a, b in zip(rw.tolist(),
                                                                              rl_.tolist())])
    assert abs(al.bradley_terry_loss(rw, rl_).item() - direct) < 1e-6
    # equal rewards: log 2; a pair ordered right costs less than the same pair reversed
    assert abs(al.bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() - math.log(2)) < 1e-7
    assert al.bradley_terry_loss(rw.abs() + 1, -rw.abs()) < al.bradley_terry_loss(-rw.abs(),
                                                                                 rw.abs() + 1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        al.bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        al.bradley_terry_loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="beta"):
        al.dpo_loss(*(torch.zeros(2),) * 4, beta=-0.1)
    with pytest.raises(ValueError, match="beta"):
        al.RLHFConfig(beta=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        al.dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="empty"):
        al.fit_reward_model(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="unequal"):
        al.sample_preferences(np.zeros(3), np.zeros(4), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        al.pair_accuracy(np.zeros(0), np.zeros(0), np.zeros(0, bool))


def test_reward_model_recovers_the_weights_of_bradley_terry_raters():
    rng = np.random.default_rng(0)
    w_true = torch.tensor([1.0, -2.0, 0.5])
    g = torch.Generator().manual_seed(0)  # not the global stream: test order moves it
    xa, xb = torch.randn(20_000, 3, generator=g), torch.randn(20_000, 3, generator=g)
    a_won = torch.as_tensor(rng.random(20_000) < torch.sigmoid((xa - xb) @ w_true).numpy())
    cw, cl = torch.where(a_won[:, None], xa, xb), torch.where(a_won[:, None], xb, xa)
    w = al.fit_reward_model(cw, cl, al.RewardConfig(weight_decay=0.0))
    assert torch.allclose(w, w_true, atol=0.06), w  # about 2 standard errors
    # and its loss is at a stationary point of the Bradley-Terry loss (autograd)
    w_ = w.clone().requires_grad_()
    al.bradley_terry_loss(cw @ w_, cl @ w_).backward()
    assert w_.grad.abs().max() < 1e-4


def test_dpo_loss_is_the_formula_and_its_gradient():
    g = torch.Generator().manual_seed(1)
    pw, pl, qw, ql = (torch.randn(8, generator=g, dtype=torch.float64) for _ in range(4))
    beta = 0.3
    z = beta * ((pw - qw) - (pl - ql))
    direct = torch.mean(torch.log1p(torch.exp(-z)))
    assert torch.allclose(al.dpo_loss(pw, pl, qw, ql, beta), direct)
    # d loss / d log pi(y_w) = -beta sigmoid(-z) / N
    pw_ = pw.clone().requires_grad_()
    al.dpo_loss(pw_, pl, qw, ql, beta).backward()
    assert torch.allclose(pw_.grad, -beta * torch.sigmoid(-z) / len(z))
    # at the reference itself the loss is log 2 whatever beta is
    assert torch.allclose(al.dpo_loss(qw, ql, qw, ql, 5.0), torch.tensor(math.log(2),
                                                                        dtype=torch.float64))


TRL_CHECKED = "1.16.0"  # the trl whose private DPOTrainer._compute_loss the stand-in fits


def test_dpo_loss_agrees_with_trl():  # trl (a test dependency): the library the chapter names
    trl = pytest.importorskip("trl")
    if trl.__version__ != TRL_CHECKED:  # requirements.txt pins it; a private API may change
        pytest.skip(f"checked against trl {TRL_CHECKED}, found {trl.__version__}: update the "
                    "stand-in in tools/ch18_alignment_sweep.py.trl_dpo_loss and this pin")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "ch18_alignment_sweep.py"
    spec = importlib.util.spec_from_file_location("ch18_alignment_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    g = torch.Generator().manual_seed(2)
    N, beta = 6, 0.2
    logps = [-40 * torch.rand(N, generator=g, dtype=torch.float64) for _ in range(4)]
    theirs = sweep.trl_dpo_loss(*logps, beta)
    ours = al.dpo_loss(*logps, beta).item()
    assert abs(theirs - ours) < 1e-12 and abs(ours - math.log(2)) > 1e-3, (theirs, ours)
    # a different beta gives a different loss in both (the stand-in passes beta through)
    assert abs(sweep.trl_dpo_loss(*logps, 1.0) - al.dpo_loss(*logps, 1.0).item()) < 1e-12
    assert abs(sweep.trl_dpo_loss(*logps, 1.0) - theirs) > 1e-3


def test_untied_splits_and_score_at_kl():
    a = torch.arange(10)[:, None].repeat(1, 3)
    prefs = al.Preferences(a, a + 1, np.arange(10) % 2 == 0, np.array([1., 2, 2, 3, 4, 4, 5, 6,
                                                                       7, 7]),
                           np.array([1., 1, 2, 3, 3, 4, 6, 6, 6, 8]))
    untied = prefs.untied()
    assert len(untied) == 5 and (untied.score_a != untied.score_b).all()
    assert untied.a[:, 0].tolist() == [1, 4, 6, 8, 9] and untied.a_won.tolist() == [
        False, True, True, True, False]
    # the score where the KL so far first reaches the budget, linearly interpolated
    assert al.score_at_kl([0, 1, 3, 2], [0, 10, 30, 99], 2.0) == 20.0
    assert math.isnan(al.score_at_kl([0, 1, 2], [0, 1, 2], 2.5))
    with pytest.raises(ValueError):
        al.score_at_kl([0, 1], [0, 1], -1.0)


def test_kl_estimators_against_exact_kl():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    exact = al.exact_kl(p, q)
    assert abs(exact - sum(p * np.log(p / q))) < 1e-12 and exact > 0
    x = rng.choice(6, size=400_000, p=p)
    est = al.kl_estimates(torch.tensor(np.log(p[x])), torch.tensor(np.log(q[x])))
    for name in ("k1", "k3"):  # unbiased: within 4 standard errors
        se = est[name].std().item() / math.sqrt(len(x))
        assert abs(est[name].mean().item() - exact) < 4 * se, (name, exact)
    assert (est["k3"] >= 0).all() and (est["k1"] < 0).any()  # k3 never negative, k1 can be
    # k3's expectation, exactly: sum p ((q/p - 1) - log(q/p)) = KL
    assert abs(np.sum(p * ((q / p - 1) - np.log(q / p))) - exact) < 1e-12
    assert al.exact_kl(p, p) == 0 and al.exact_kl([0.5, 0.5], [1.0, 0.0]) == math.inf


def test_best_of_n_kl_closed_form():
    assert al.best_of_n_kl(1) == 0
    for n in (2, 4, 16):
        # many equally likely outcomes, all rewards different: nearly continuous, so exact
        m = 20_000
        probs, rewards = np.full(m, 1 / m), np.random.default_rng(n).permutation(m)
        bon = al.best_of_n_distribution(probs, rewards, n)
        assert abs(bon.sum() - 1) < 1e-12
        assert abs(al.exact_kl(bon, probs) - al.best_of_n_kl(n)) < 2e-3 * n
        # a few outcomes, or ties: below the formula (an upper bound)
        rng = np.random.default_rng(n)
        small = rng.dirichlet(np.ones(5))
        kl_small = al.exact_kl(al.best_of_n_distribution(small, rng.normal(size=5), n), small)
        tied = al.best_of_n_distribution(probs, rewards // 100, n)  # 200 tied groups
        assert kl_small < al.best_of_n_kl(n) - 1e-3
        assert al.exact_kl(tied, probs) < al.best_of_n_kl(n)


def test_best_of_n_distribution_by_enumeration():
    probs, rewards, n = np.array([0.5, 0.3, 0.2]), np.array([1.0, 3.0, 1.0]), 2
    # enumerate the 9 ordered pairs of draws; ties (outcomes 0 and 2) broken uniformly
    direct = np.zeros(3)
    for i in range(3):
        for j in range(3):
            p = probs[i] * probs[j]
            if rewards[i] == rewards[j]:
                direct[i] += p / 2
                direct[j] += p / 2
            else:
                direct[i if rewards[i] > rewards[j] else j] += p
    assert np.allclose(al.best_of_n_distribution(probs, rewards, n), direct)
    # from a pool sorted by reward, the weights are the same formula with equal probabilities
    m, n = 7, 3
    w = al.best_of_n_weights(m, n)
    assert np.allclose(w, al.best_of_n_distribution(np.full(m, 1 / m), np.arange(m), n))


def tiny_model():
    torch.manual_seed(0)
    tok = CharTokenizer(list("\n abcdefgh"))
    return GPT(GPTConfig.tiny(vocab_size=tok.vocab_size)).eval(), tok


def test_sequence_logprob_scores_only_the_generated_tokens():
    model, tok = tiny_model()
    idx = torch.randint(tok.vocab_size, (3, 10))
    P = 4
    logits, _ = model(idx)
    direct = sum(logits[:, t - 1].log_softmax(-1).gather(1, idx[:, t:t + 1])[:, 0]
                 for t in range(P, 10))
    assert torch.allclose(al.sequence_logprob(model, idx, P), direct, atol=1e-5)
    with pytest.raises(ValueError):
        al.sequence_logprob(model, idx, 10)


def test_rlhf_step_with_a_large_kl_coefficient_stays_near_the_reference():
    model, tok = tiny_model()
    scfg = al.SampleConfig(prompt="a", new_tokens=6)
    reward = al.linear_reward(torch.eye(tok.vocab_size)[tok.stoi["b"]],
                              al.char_features(tok, 1))  # counts the "b"s
    runs = {}
    for beta in (0.0, 1.0):
        policy = copy.deepcopy(model)
        opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(30):
            al.rlhf_step(policy, model, reward, tok, scfg, beta, opt, 32, gen)
        runs[beta] = al.evaluate(policy, model, reward, lambda t: np.zeros(len(t)), tok, scfg,
                                 512, torch.Generator().manual_seed(1))
    base = al.evaluate(model, model, reward, lambda t: np.zeros(len(t)), tok, scfg, 512,
                       torch.Generator().manual_seed(1))
    assert runs[0.0]["reward"] > base["reward"] + 0.5  # the reward alone is climbed
    assert runs[1.0]["kl"] < runs[0.0]["kl"] / 3  # the penalty holds the policy back
    assert abs(base["kl"]) < 1e-6


def test_word_length_counts_and_scorer():
    counts = al.word_length_counts(["a bb ccc", "whale whales"], max_len=5)
    assert counts.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 0, 2]]
    scorer = al.LongWordScorer(frozenset({"whale", "ocean"}))
    assert scorer(["whale whale Whale", "wha le ocean", "whalee"]).tolist() == [5, 5, 0]


def test_best_within_kl_chooses_on_the_kept_apart_answers():
    def ev(kl, pick, hidden, kl_pick=None):
        return {"kl": kl, "kl_pick": kl if kl_pick is None else kl_pick, "hidden_pick": pick,
                "hidden": hidden, "repeat": 0.5, "ref_nats": -2.0}

    # stops short of the budget: its best kept-apart checkpoint (step 1), read on the others
    short = [ev(0, 0, 0), ev(1, 9, 5), ev(2, 3, 8)]
    r = al.best_within_kl(short, 4.0)
    assert (r["pick"], r["hidden"], r["kl"], r["repeat"]) == (9, 5, 1, 0.5)
    # passes the budget: the crossing (kept-apart 5 at 2 nats) beats the checkpoint before it
    far = [ev(0, 0, 0), ev(1, 2, 2), ev(3, 8, 6), ev(5, 99, 99)]
    r = al.best_within_kl(far, 2.0)
    assert r["pick"] == 5 and r["hidden"] == 4 and r["kl"] == 2.0
    # a checkpoint past the budget never counts (only the crossing); only step 0 within: nan
    r = al.best_within_kl([ev(0, 0, 0), ev(3, 9, 9, kl_pick=3)], 1.0)
    assert r["hidden"] == 3 and r["pick"] == 3
    assert math.isnan(al.best_within_kl([ev(0, 0, 0)], 1.0)["hidden"])


def test_repeats_long_word():
    assert al.repeats_long_word("whale, the whale")
    assert not al.repeats_long_word("the the whale, Whales")
    assert al.repeats_long_word("Whale whale")
    assert not al.repeats_long_word("whale")


def test_choose_within_kl_and_best_of_n_within_kl():
    def run(step_hidden, kl_step=1.0):  # kept-apart and reported answers alike
        return [{"kl": kl_step * i, "kl_pick": kl_step * i, "hidden_pick": h, "hidden": h}
                for i, h in enumerate(step_hidden)]

    family = {"a": [run([0, 1, 2]), run([0, 2, 3])], "b": [run([0, 5, 6]), run([0, 1, 1])]}
    c = al.choose_within_kl(family, 2.0)
    assert c["setting"] == "b" and c["picks"] == {"a": 2.5, "b": 3.5}
    assert [x["hidden"] for x in c["readings"]] == [6, 1]
    # a setting with a seed that never gets a reading cannot be chosen
    c = al.choose_within_kl({"a": [run([0, 1]), run([0, 1])], "b": [run([0, 9]), run([0])]},
                            1.0)
    assert c["setting"] == "a"
    with pytest.raises(ValueError, match="no settings"):
        al.choose_within_kl({}, 1.0)
    with pytest.raises(ValueError, match="same number of seeds"):
        al.choose_within_kl({"a": [run([0, 1])], "b": [run([0, 1]), run([0, 1])]}, 1.0)
    with pytest.raises(ValueError, match="within"):
        al.choose_within_kl({"a": [run([0]), run([0])]}, 1.0)
    ns = [1, 2, 4]
    r = al.best_of_n_within_kl({"hidden": [1.0, 2.0, 3.0]}, ns, al.best_of_n_kl(2) + 0.01)
    assert r["n"] == 2 and r["hidden"] == 2.0 and r["kl"] == al.best_of_n_kl(2)
    assert al.best_of_n_within_kl({"hidden": [1.0, 2.0, 3.0]}, ns, al.best_of_n_kl(4))["n"] == 4
    with pytest.raises(ValueError, match="no n"):
        al.best_of_n_within_kl({"hidden": [1.0]}, [2], 0.1)


def test_paired_verdict():
    v = al.paired_verdict([5.0, 6.0, 7.0], [1.0, 2.0, 3.1], "A", "B")
    assert v["separable"] and v["ahead"] == 3 and v["text"].startswith("A leads B by 3.97 ±")
    v = al.paired_verdict([1.0, 2.0, 3.0], [5.0, 6.0, 7.5], "A", "B")
    assert v["separable"] and v["text"] == ("B leads A by 4.2 ± 0.2 (ahead on 3 of 3 seeds; "
                                            "t = 25.0, p < 0.01)")
    v = al.paired_verdict([1.0, 2.0, 0.0], [0.0, 1.0, 3.0], "A", "B")
    assert not v["separable"] and v["ahead"] == 2
    assert v["text"] == ("A and B are not separable with 3 seeds (A minus B: -0.3 ± 1.3; "
                         "A ahead on 2 of 3; p = 0.83)")
    # 3 seeds: the 5% critical value is t(0.975, 2) = 4.30, not 2. A mean 3 standard errors
    # from 0 (differences 1, 2, 3.6) passed the old 2-SE rule and fails the t-test.
    v = al.paired_verdict([1.0, 2.0, 3.6], [0.0, 0.0, 0.0], "A", "B")
    assert abs(v["critical"] - 4.302653) < 1e-5 and 2 < v["t"] < v["critical"]
    assert not v["separable"] and abs(v["p"] - 0.0955) < 0.01, v
    assert v["text"].startswith("A is ahead of B on all 3 seeds, by 2.2 ± 0.8, but not "
                                "significantly with 3 seeds (t = 2.9, p = 0.10)")
    v = al.paired_verdict([0.0] * 3, [1.0, 2.0, 3.6], "A", "B")
    assert v["text"].startswith("B is ahead of A on all 3 seeds") and v["ahead"] == 0
    assert abs(al.paired_verdict([1.0] * 4, [0.0, 0.1, 0.0, 0.1], "A", "B")["critical"]
               - 3.182446) < 1e-5  # 4 seeds: 3 degrees of freedom
    with pytest.raises(ValueError, match="level"):
        al.paired_verdict([1.0, 2.0], [1.0, 0.0], "A", "B", level=5)
    m, se = al.mean_se([1.0, 2.0, 3.0])
    assert m == 2.0 and abs(se - 1 / np.sqrt(3)) < 1e-12
    assert al.pm([0.10, 0.11, 0.12]) == "0.11 ± 0.01"
    with pytest.raises(ValueError, match="shapes"):
        al.paired_verdict([1.0, 2.0], [1.0], "A", "B")
    with pytest.raises(ValueError, match="two per-seed"):
        al.mean_se([1.0])


def test_dpo_records_its_implicit_reward_accuracy():
    model, tok = tiny_model()
    scfg = al.SampleConfig(prompt="a", new_tokens=6)
    g = torch.Generator().manual_seed(0)
    chosen = torch.tensor([tok.encode("abbbbbb")] * 8)  # the "b"s are preferred
    rejected = torch.cat([torch.zeros(8, 1, dtype=torch.long) + tok.stoi["a"],
                          torch.randint(2, tok.vocab_size, (8, 6), generator=g)], 1)
    a_won = np.array([True, False] * 4)  # half the test pairs list the preferred answer second
    a, b = torch.where(torch.as_tensor(a_won)[:, None], chosen, rejected), \
        torch.where(torch.as_tensor(a_won)[:, None], rejected, chosen)
    test = al.Preferences(a, b, a_won, np.zeros(8), np.zeros(8))
    zero = lambda t: np.zeros(len(t))  # noqa: E731
    reward = al.linear_reward(torch.zeros(tok.vocab_size), al.char_features(tok, 1))
    policy, hist = al.train_dpo(model, chosen, rejected, reward, zero, tok, scfg,
                                al.DPOConfig(beta=0.1, lr=3e-3, steps=20, eval_every=10), 0,
                                eval_n=8, test=test)
    assert [e["step"] for e in hist] == [0, 10, 20]
    assert hist[0]["implicit_acc"] == 0.5  # the policy is the reference: every pair a tie
    with torch.no_grad():
        ref = (al.sequence_logprob(model, a, 1), al.sequence_logprob(model, b, 1))
    assert hist[-1]["implicit_acc"] == al.implicit_reward_accuracy(policy, ref, test, 1) == 1.0
    with pytest.raises(ValueError, match="reference log-probabilities"):
        al.implicit_reward_accuracy(policy, (ref[0][:3], ref[1]), test, 1)


def test_dpo_batches_are_the_draws_of_train_dpo():
    cfg = al.DPOConfig(steps=5, batch_pairs=4)
    b = al.dpo_batches(7, cfg, seed=3)
    assert b.shape == (5, 4) and int(b.min()) >= 0 and int(b.max()) < 7
    gen = torch.Generator().manual_seed(3)  # train_dpo's former inline draws
    loop = torch.stack([torch.randint(7, (4,), generator=gen) for _ in range(5)])
    assert torch.equal(b, loop) and torch.equal(b, al.dpo_batches(7, cfg, seed=3))
    with pytest.raises(ValueError, match="at least one pair"):
        al.dpo_batches(0, cfg, seed=0)
