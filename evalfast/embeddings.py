"""Embed a list of texts through the cache: identical texts once, cached texts never again."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .cache import EmbeddingCache, text_keys
from .encoder import Encoder


@dataclass(frozen=True)
class Embeddings:
    """Vectors for texts (the encoder's, see Encoder), in input order, with counts and timing."""

    vectors: np.ndarray  # float32 (n, dim)
    n_texts: int
    n_encoded: int  # distinct texts run through the model now
    n_cached: int  # distinct texts taken from the cache
    n_tokens: int  # tokens of the distinct texts, after truncation
    n_truncated: int  # distinct texts cut to the model's max sequence length
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return self.n_texts / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else float("inf")


def embed(encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None = None,
          on_progress: Callable[[int], None] | None = None) -> Embeddings:
    """Embed ``texts`` (float32 (n, dim) unit vectors in input order), reusing ``cache`` when given.

    Example::

        vectors = embed(Encoder("export/all-MiniLM-L6-v2"), ["first text", "second text"]).vectors
    """
    start = time.perf_counter()
    texts = list(texts)
    keys = text_keys(texts)
    unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    found, cached_vectors = cache.lookup(unique_keys) if cache else (np.zeros(len(unique_keys), bool), None)
    if on_progress and found.any():
        on_progress(int(np.count_nonzero(found)))
    missing = np.flatnonzero(~found)
    encoded = encoder.encode([texts[i] for i in first[missing]], on_progress)
    if cache:
        cache.add(unique_keys[missing], encoded.vectors)
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
    )
