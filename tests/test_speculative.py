"""dlbook.speculative: greedy speculative decoding gives exactly the target's greedy output,
whatever the draft; its counts add up; bad input is refused up front."""
from __future__ import annotations

import pytest
import torch

from dlbook.llama import Llama, LlamaConfig
from dlbook.speculative import (
    LookupDraft,
    early_exit,
    greedy,
    speculative_greedy,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(seed=0, n_layer=4, vocab=50):
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=vocab, block_size=128, n_layer=n_layer, n_head=4,
                             n_kv_head=2, n_embd=32, mlp_hidden=64)).eval()


def reference(model, idx, n):  # greedy without a cache: the whole sequence every step
    out = idx
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(out)
            out = torch.cat([out, logits[:, -1:].argmax(-1)], 1)
    return out


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_exact_for_any_draft(gamma):
    target = tiny(0)
    idx = torch.tensor([[1, 5, 7, 2, 9]])
    ref, passes = greedy(target, idx, 20)
    assert torch.equal(ref, reference(target, idx, 20)) and passes == 20
    for draft in (early_exit(target, 1), tiny(1), target, LookupDraft(50)):
        out, stats = speculative_greedy(target, draft, idx, 20, gamma=gamma)
        assert torch.equal(out, ref)
        assert stats.tokens == 20 and stats.accepted <= stats.proposed
        assert 1 <= stats.target_passes <= 20


def test_perfect_draft_accepts_everything():
    target = tiny(0)
    out, stats = speculative_greedy(target, target, torch.tensor([[3, 4]]), 16, gamma=3)
    assert stats.acceptance_rate == 1.0
    assert stats.target_passes == 4  # gamma + 1 = 4 tokens a pass
    assert stats.tokens_per_target_pass == 4.0


def test_lookup_copies_a_repeat():
    d = LookupDraft(50, max_n=2)
    assert d.propose([1, 2, 3, 4, 1, 2], 2) == [3, 4]
    assert d.propose([1, 2, 3], 2) == []


def test_early_exit_shares_weights_and_cuts_blocks():
    target = tiny(0)
    draft = early_exit(target, 2)
    assert len(draft.blocks) == 2 and len(target.blocks) == 4
    assert draft.blocks[0] is target.blocks[0] and draft.head is target.head
    assert draft.config.n_layer == 2 and target.config.n_layer == 4


def test_bad_input():
    target = tiny(0)
    idx = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_greedy(target, tiny(1, vocab=65), idx, 4)
    with pytest.raises(ValueError, match="gamma"):
        speculative_greedy(target, target, idx, 4, gamma=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy(target, idx, 0)
    with pytest.raises(ValueError, match="one prompt"):
        greedy(target, torch.tensor([[1, 2], [3, 4]]), 2)
    with pytest.raises(ValueError, match="n_layer"):
        early_exit(target, 4)
    with pytest.raises(TypeError):
        speculative_greedy(target, object(), idx, 4)


def test_speculative_sampling_gives_the_targets_distribution():
    from dlbook.speculative import (acceptance_probability, speculative_output_distribution,
                                    speculative_sample_step)
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)
    q = torch.tensor([0.1, 0.1, 0.3, 0.4, 0.1], dtype=torch.float64)
    # exact: the output distribution is p, for this q and for random ones
    assert torch.allclose(speculative_output_distribution(p, q), p, atol=1e-12)
    for _ in range(20):
        a = torch.rand(7, generator=g, dtype=torch.float64) ** 3
        b = torch.rand(7, generator=g, dtype=torch.float64) ** 3
        a, b = a / a.sum(), b / b.sum()
        assert torch.allclose(speculative_output_distribution(a, b), a, atol=1e-12)
    # the control: keeping the draft's guess always would give q, far from p
    assert (q - p).abs().max() > 0.2
    # empirical: 20,000 draws, each guess from q, match p (and not q)
    n, counts, kept = 20000, torch.zeros(5), 0
    for _ in range(n):
        guess = int(torch.multinomial(q, 1, generator=g))
        tok, acc = speculative_sample_step(p, q, guess, g)
        counts[tok] += 1
        kept += acc
    freq = counts / n
    assert (freq - p.float()).abs().max() < 0.015
    assert (freq - q.float()).abs().max() > 0.2
    assert abs(kept / n - acceptance_probability(p, q)) < 0.015
    assert acceptance_probability(p, p) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        speculative_sample_step(p, q[:4], 0)
    with pytest.raises(ValueError):
        speculative_sample_step(p, torch.tensor([1.0, 0, 0, 0, 0]), 2)


def test_alpha_counts_examined_guesses_only():
    # A draft whose first guess is always right and second always wrong: per round one guess
    # is accepted and one refused, the third never read. Leviathan's alpha is 1/2; accepted
    # per proposed is 1/3; tokens per pass are 2 = 1 + gamma * (accepted per proposed).
    target = tiny(0)
    idx = torch.tensor([[1, 5, 7]])
    ref = greedy(target, idx, 12)[0][0].tolist()

    class HalfRight:
        vocab_size, passes = 50, 0

        def propose(self, seq, gamma):
            right = ref[len(seq)]
            return [right, (right + 1) % 50, (right + 2) % 50][:gamma]

        def keep(self, length):
            pass

    out, stats = speculative_greedy(target, HalfRight(), idx, 12, gamma=3)
    assert out[0].tolist() == ref
    assert (stats.accepted, stats.rejected, stats.proposed) == (6, 6, 18)
    assert stats.alpha == 0.5 and abs(stats.acceptance_rate - 1 / 3) < 1e-12
    assert stats.tokens_per_target_pass == 2.0
