"""Embed a list of texts through the cache: identical texts once, cached texts never again, and what was
embedded kept in the cache as it finishes, so a run stopped part-way continues where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evalfast.model.cache import EmbeddingCache, text_keys
from evalfast.model.encoder import Encoder, chunk_bounds

MIN_SHARD_TEXTS = 1000  # a checkpoint stores at least this many texts in one cache shard ...
CHECKPOINT_SECONDS = 5.0  # ... or what was encoded in this many seconds, whichever comes first


@dataclass(frozen=True)
class Embeddings:
    """Vectors for texts (the encoder's, see Encoder), in input order, with counts and timing."""

    vectors: np.ndarray  # float32 (n, dim)
    n_texts: int
    n_encoded: int  # distinct texts run through the model now
    n_cached: int  # distinct texts taken from the cache
    n_tokens: int  # tokens of the distinct texts, after truncation
    n_truncated: int  # distinct texts cut to the model's max sequence length
    seconds: float  # the whole call: hashing, cache look-ups, encoding and checkpoints
    n_encoded_tokens: int  # tokens of the n_encoded texts, after truncation
    encode_seconds: float  # spent encoding the n_encoded texts (0 when none were)

    @property
    def texts_per_second(self) -> float:
        """All texts, cached ones included, per second of the whole call."""
        return self.n_texts / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tokens_per_second(self) -> float:
        """All distinct texts' tokens, cached ones included, per second of the whole call."""
        return self.n_tokens / self.seconds if self.seconds > 0 else float("inf")

    @property
    def encoded_texts_per_second(self) -> float | None:
        """Texts encoded now per second spent encoding them; None when none were (all from the cache)."""
        return self.n_encoded / self.encode_seconds if self.n_encoded and self.encode_seconds > 0 else None

    @property
    def encoded_tokens_per_second(self) -> float | None:
        """Tokens of the texts encoded now per second spent encoding them; None when none were."""
        return self.n_encoded_tokens / self.encode_seconds if self.n_encoded and self.encode_seconds > 0 else None


class _Checkpoints:
    """Vectors of finished chunks (``on_chunk`` of :meth:`Encoder.encode`), stored in the cache under their keys
    as they come, grouped so that a shard holds at least MIN_SHARD_TEXTS texts or CHECKPOINT_SECONDS of work."""

    def __init__(self, cache: EmbeddingCache, keys: np.ndarray):
        self.cache, self.keys = cache, keys
        self.pending: list[tuple[int, np.ndarray]] = []  # (start, vectors) of chunks not stored yet
        self.since = time.perf_counter()

    def __call__(self, start: int, vectors: np.ndarray) -> None:
        self.pending.append((start, vectors))
        n_pending = start + len(vectors) - self.pending[0][0]
        if n_pending >= MIN_SHARD_TEXTS or time.perf_counter() - self.since >= CHECKPOINT_SECONDS:
            self.store()

    def store(self) -> None:
        """Write the pending chunks as one shard."""
        if self.pending:
            start, vectors = self.pending[0][0], np.concatenate([v for _, v in self.pending])
            self.cache.add(self.keys[start : start + len(vectors)], vectors)
            self.pending, self.since = [], time.perf_counter()


def _chunks_of_missing(found: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """The chunks all the distinct texts would be encoded in (:func:`chunk_bounds`), cut down to the ``~found``
    ones and numbered among them. A vector's last bits depend on the texts batched with it, so the texts left
    by an interrupted run get the very bits an uninterrupted run gives them."""
    missing_before = np.concatenate([[0], np.cumsum(~found)])
    bounds = [(int(missing_before[a]), int(missing_before[b])) for a, b in chunk_bounds(len(found), chunk)]
    return [(start, stop) for start, stop in bounds if stop > start]


def embed(encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None = None,
          on_progress: Callable[[int], None] | None = None) -> Embeddings:
    """Embed ``texts`` (float32 (n, dim) unit vectors in input order), reusing ``cache`` when given.

    Each chunk's vectors go into ``cache`` as soon as the chunk is encoded (see :class:`_Checkpoints`), so after
    an interruption (Ctrl-C, any error) a run of the same texts encodes only the rest, and gets the same bits.

    Example::

        vectors = embed(Encoder("export/all-MiniLM-L6-v2"), ["first text", "second text"]).vectors
    """
    start = time.perf_counter()
    texts = list(texts)
    keys = text_keys(texts)
    unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if cache:
        found, cached_vectors = cache.lookup(unique_keys, encoder.dimension)
    else:
        found, cached_vectors = np.zeros(len(unique_keys), bool), None
    if on_progress and found.any():
        on_progress(int(np.count_nonzero(found)))
    missing = np.flatnonzero(~found)
    checkpoints = _Checkpoints(cache, unique_keys[missing]) if cache else None
    try:
        encoded = encoder.encode([texts[i] for i in first[missing]], on_progress, checkpoints,
                                 _chunks_of_missing(found, encoder.config.chunk))
    finally:
        if checkpoints is not None:
            checkpoints.store()
    unique_vectors = np.empty((len(unique_keys), encoder.dimension), np.float32)
    unique_vectors[missing] = encoded.vectors
    if cached_vectors is not None:
        unique_vectors[found] = cached_vectors
    cached_tokens, cached_truncated = encoder.token_stats([texts[i] for i in first[found]])
    return Embeddings(
        vectors=unique_vectors[inverse.ravel()],
        n_texts=len(texts),
        n_encoded=len(missing),
        n_cached=int(found.sum()),
        n_tokens=encoded.n_tokens + cached_tokens,
        n_truncated=encoded.n_truncated + cached_truncated,
        seconds=time.perf_counter() - start,
        n_encoded_tokens=encoded.n_tokens,
        encode_seconds=encoded.seconds if len(missing) else 0.0,
    )
