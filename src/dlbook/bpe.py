"""Byte-level byte-pair encoding (BPE), from scratch: train, encode, decode.

A tokenizer turns text into the integers a language model reads. Byte-level BPE (Sennrich et
al. 2016 for words; Radford et al. 2019, GPT-2, for bytes) starts from the 256 byte values, so
*any* text, in any script, with emoji or binary junk, has an encoding and nothing is ever
"unknown". Training repeats one step: find the most frequent adjacent pair of tokens in the
training text and give it a new id. Encoding replays those merges, in the order they were
learned; decoding concatenates the bytes of the tokens.

    >>> tok = BPETokenizer.train(text, vocab_size=1000)   # 256 bytes + 744 merges
    >>> ids = tok.encode("Call me Ishmael.")               # list of ints
    >>> tok.decode(ids)                                    # 'Call me Ishmael.'
    >>> tok.save("bpe.json"); BPETokenizer.load("bpe.json")

Like GPT-2 (and minGPT's ``bpe.py``, which this module follows in spirit), the text is first cut
into chunks by a regular expression (words with their leading space, numbers, punctuation runs,
whitespace), and merges never cross a chunk boundary: " whale" and "whale." then share the token
" whale" instead of learning "e." and "e," separately. Training counts each distinct chunk once,
weighted by how often it occurs, and updates the pair counts incrementally, so a full pass over
*Moby-Dick* (1.2 M characters) takes seconds in pure Python rather than hours.

Ties between equally frequent pairs go to the pair with the smaller ids, so training is
deterministic. :func:`train_library_bpe` trains Hugging Face's ``tokenizers`` (Rust) with the
same pre-tokenizer, for comparison, and :func:`library_merges` reads its merges back as bytes.
"""
from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import regex

# GPT-2's pre-tokenizer (openai/gpt-2 encoder.py): contractions, an optional space then letters,
# then digits, then other symbols, then whitespace (a run of spaces keeps its last one for the
# next word). Hugging Face's ByteLevel pre-tokenizer uses the same pattern.
GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                r"""|\s+(?!\S)|\s+""")
N_BYTES = 256
FORMAT_VERSION = 1


def _to_text(data: str | bytes) -> str:
    """Text to pre-tokenize. Bytes that are not UTF-8 become lone surrogates (surrogateescape),
    which the pattern treats as symbols and :func:`_chunk_bytes` turns back into the same bytes,
    so arbitrary bytes round-trip."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", errors="surrogateescape")
    if isinstance(data, str):
        return data
    raise TypeError(f"encode() takes a str or bytes, got {type(data).__name__}")


def _chunk_bytes(chunk: str) -> bytes:
    try:
        return chunk.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as err:
        raise ValueError(f"the text holds a lone surrogate {chunk[err.start]!r} at a position "
                         "that is not a valid character; encode the raw bytes instead "
                         "(pass bytes to encode())") from None


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pairs(ids: list[int]) -> Counter:
    return Counter(zip(ids, ids[1:]))


@dataclass
class BPETokenizer:
    """A trained byte-level BPE: ``merges[k] = (a, b)`` made token ``256 + k`` from tokens a, b.

    The vocabulary follows from the merges: ids 0-255 are single bytes, and token ``256 + k`` is
    the bytes of ``a`` followed by those of ``b``. Build one with :meth:`train` or :meth:`load`.
    """

    merges: list[tuple[int, int]] = field(default_factory=list)
    pattern: str = GPT2_PATTERN
    counts: list[int] | None = None  # how often each merged pair occurred when it was merged

    def __post_init__(self):
        self.merges = [tuple(int(t) for t in m) for m in self.merges]
        if self.counts is not None and len(self.counts) != len(self.merges):
            raise ValueError(f"{len(self.counts)} counts for {len(self.merges)} merges")
        self.vocab: list[bytes] = [bytes([b]) for b in range(N_BYTES)]
        self.ranks: dict[tuple[int, int], int] = {}
        for k, (a, b) in enumerate(self.merges):
            new_id = N_BYTES + k
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge {k} = ({a}, {b}) uses a token that does not exist yet "
                                 f"(ids below {new_id} exist at that point)")
            if (a, b) in self.ranks:
                raise ValueError(f"merge {k} = ({a}, {b}) repeats merge {self.ranks[(a, b)]}")
            self.ranks[(a, b)] = k
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._regex = regex.compile(self.pattern)
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return N_BYTES + len(self.merges)

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str | bytes, vocab_size: int, pattern: str = GPT2_PATTERN,
              min_count: int = 2) -> "BPETokenizer":
        """Learn ``vocab_size - 256`` merges from ``text``, most frequent pair first.

        Stops early if no pair occurs ``min_count`` times (merging a pair seen once only
        memorises the training text). Each distinct chunk is stored once with its count; after a
        merge only the chunks that contained the pair are re-counted, and a heap of
        ``(-count, pair)`` with lazy deletion finds the next most frequent pair.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < N_BYTES:
            raise ValueError(f"vocab_size must be at least {N_BYTES} (the byte values), "
                             f"got {vocab_size}")
        text = _to_text(text)
        if not text:
            raise ValueError("cannot train a tokenizer on empty text")
        chunk_counts = Counter(regex.findall(pattern, text))
        words = [list(_chunk_bytes(c)) for c in chunk_counts]  # distinct chunks, as byte ids
        freq = list(chunk_counts.values())

        counts: Counter = Counter()  # pair -> occurrences in the whole text
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks holding it
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                counts[pair] += freq[w]
                where[pair].add(w)
        heap = [(-c, pair) for pair, c in counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        merge_counts: list[int] = []
        while len(merges) < vocab_size - N_BYTES and heap:
            neg, pair = heapq.heappop(heap)
            if counts.get(pair, 0) != -neg:  # stale entry: the count has changed since
                continue
            if -neg < min_count:
                break
            new_id = N_BYTES + len(merges)
            merges.append(pair)
            merge_counts.append(-neg)
            changed: Counter = Counter()
            for w in where.pop(pair):
                old = words[w]
                new = _merge(old, pair, new_id)
                for p, c in _pairs(old).items():
                    changed[p] -= c * freq[w]
                for p, c in _pairs(new).items():
                    changed[p] += c * freq[w]
                    where[p].add(w)
                words[w] = new
            for p, delta in changed.items():
                if delta:
                    counts[p] += delta
                    if counts[p] > 0:
                        heapq.heappush(heap, (-counts[p], p))
                    else:
                        del counts[p]
            counts.pop(pair, None)
        return cls(merges=merges, pattern=pattern, counts=merge_counts)

    # ---- encoding and decoding ------------------------------------------------------------
    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges to one chunk, always the earliest-learned pair first (as training
        made them), until no learned pair is left."""
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk)
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            ids = _merge(ids, pair, N_BYTES + self.ranks[pair])
        if len(self._cache) < 100_000:
            self._cache[chunk] = ids
        return ids

    def chunks(self, text: str | bytes) -> list[bytes]:
        """The pre-tokenizer's pieces of ``text``, as bytes (merges never cross them)."""
        return [_chunk_bytes(c) for c in self._regex.findall(_to_text(text))]

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text`` (a str, or raw bytes of any kind)."""
        ids: list[int] = []
        for chunk in self.chunks(text):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def decode_bytes(self, ids) -> bytes:
        """The bytes that token ids stand for (exact for any ids, even mid-character)."""
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) and not hasattr(i, "__index__"):
                raise TypeError(f"token ids must be ints, got {i!r}")
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
            out.append(self.vocab[i])
        return b"".join(out)

    def decode(self, ids, errors: str = "replace") -> str:
        """The text of token ids. A cut through a multi-byte character (as a model's sample may
        make) shows as U+FFFD with ``errors="replace"``; ``"surrogateescape"`` inverts
        ``encode(raw_bytes)`` exactly."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_str(self, i: int) -> str:
        """A token as readable text (for tables and plots)."""
        return self.decode_bytes([i]).decode("utf-8", errors="replace")

    def merge_bytes(self) -> list[tuple[bytes, bytes]]:
        """The merges as pairs of byte strings, comparable across tokenizers."""
        return [(self.vocab[a], self.vocab[b]) for a, b in self.merges]

    def truncated(self, n_merges: int) -> "BPETokenizer":
        """The tokenizer after only its first ``n_merges`` merges (to watch training progress)."""
        if not 0 <= n_merges <= len(self.merges):
            raise ValueError(f"n_merges must be in 0..{len(self.merges)}, got {n_merges}")
        counts = None if self.counts is None else self.counts[:n_merges]
        return BPETokenizer(merges=self.merges[:n_merges], pattern=self.pattern, counts=counts)

    # ---- saving ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "dlbook.bpe", "version": FORMAT_VERSION, "pattern": self.pattern,
                "merges": [list(m) for m in self.merges], "counts": self.counts}

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        if data.get("format") != "dlbook.bpe" or data.get("version") != FORMAT_VERSION:
            raise ValueError("not a dlbook.bpe tokenizer file (format/version missing or "
                             f"different): {str(data)[:80]}")
        return cls(merges=[tuple(m) for m in data["merges"]], pattern=data["pattern"],
                   counts=data.get("counts"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


# ---- the library version, for comparison --------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (so BPE can work on strings): the
    byte-level alphabet that Hugging Face's tokenizers store their merges in."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(N_BYTES):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(N_BYTES + extra)
            extra += 1
    return chars


def train_library_bpe(text: str, vocab_size: int):
    """Hugging Face ``tokenizers``' BPE trained like :meth:`BPETokenizer.train`: byte-level,
    GPT-2's pre-tokenizer, no prefix space, the 256 bytes as the initial alphabet and no special
    tokens, so that ``vocab_size`` means the same for both."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def library_merges(tokenizer) -> list[tuple[bytes, bytes]]:
    """A trained ``tokenizers`` BPE's merges, in order, as pairs of byte strings."""
    model = json.loads(tokenizer.to_str())["model"]
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    pairs = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    return [tuple(bytes(to_byte[ch] for ch in part) for part in pair) for pair in pairs]


def merge_agreement(ours: list[tuple[bytes, bytes]], theirs: list[tuple[bytes, bytes]],
                    k: int | None = None) -> dict:
    """How far two merge lists agree: the length of their common prefix (same merges in the
    same order) and the share of our first ``k`` merges that are among their first ``k``."""
    k = min(len(ours), len(theirs)) if k is None else k
    if k <= 0 or k > min(len(ours), len(theirs)):
        raise ValueError(f"k must be in 1..{min(len(ours), len(theirs))}, got {k}")
    prefix = 0
    while prefix < k and ours[prefix] == theirs[prefix]:
        prefix += 1
    shared = len(set(ours[:k]) & set(theirs[:k])) / k
    return {"k": k, "common_prefix": prefix, "shared": shared}
