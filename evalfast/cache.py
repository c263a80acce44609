"""An on-disk embedding cache keyed by (encoder fingerprint, text hash), so unchanged texts are embedded once.

Layout: ``<root>/embeddings/<fingerprint>/<shard>.vectors.npy`` (float32 (n, dim)) and ``<shard>.keys.npy``
(S32 hex text hashes, (n,)). Each file is written atomically and the keys file last, so a shard exists only
once it is complete: an interrupted run leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_path

KEYS_SUFFIX = ".keys.npy"
VECTORS_SUFFIX = ".vectors.npy"


def default_cache_dir() -> Path:
    """``$EVALFAST_CACHE``, else ``$XDG_CACHE_HOME/evalfast``, else ``~/.cache/evalfast``."""
    if os.environ.get("EVALFAST_CACHE"):
        return Path(os.environ["EVALFAST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalfast"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """S32 (n,): 128-bit BLAKE2b of each text's UTF-8 bytes, as hex."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts], dtype="S32")


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, array)


class EmbeddingCache:
    """Vectors of one encoder, stored in append-only shards."""

    def __init__(self, root: Path, fingerprint: str):
        self.folder = Path(root) / "embeddings" / fingerprint

    def _shards(self) -> list[tuple[np.ndarray, np.ndarray]]:
        shards = []
        for keys_path in sorted(self.folder.glob(f"*{KEYS_SUFFIX}")):
            vectors_path = keys_path.with_name(keys_path.name[: -len(KEYS_SUFFIX)] + VECTORS_SUFFIX)
            keys = np.load(keys_path)
            vectors = np.load(vectors_path, mmap_mode="r")
            if len(vectors) == len(keys):
                shards.append((keys, vectors))
        return shards

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Find ``keys`` (S32 (n,)): a bool (n,) mask of hits and their vectors (float32 (hits, dim)) in key order."""
        found = np.zeros(len(keys), bool)
        shards = self._shards() if self.folder.is_dir() else []
        if not shards:
            return found, None
        all_keys = np.concatenate([k for k, _ in shards])
        shard_of = np.repeat(np.arange(len(shards)), [len(k) for k, _ in shards])
        row_of = np.concatenate([np.arange(len(k)) for k, _ in shards])
        order = np.argsort(all_keys)
        pos = np.minimum(np.searchsorted(all_keys[order], keys), len(order) - 1)
        found = all_keys[order][pos] == keys
        hits = order[pos[found]]
        vectors = np.empty((len(hits), shards[0][1].shape[1]), np.float32)
        for s, (_, shard_vectors) in enumerate(shards):
            mine = shard_of[hits] == s
            vectors[mine] = shard_vectors[row_of[hits[mine]]]
        return found, vectors

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store a new shard: vectors first, keys last (the keys file marks the shard complete)."""
        if not len(keys):
            return
        stem = self.folder / uuid.uuid4().hex
        _save(stem.with_name(stem.name + VECTORS_SUFFIX), np.ascontiguousarray(vectors, np.float32))
        _save(stem.with_name(stem.name + KEYS_SUFFIX), keys)
