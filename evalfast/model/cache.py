"""An on-disk embedding cache keyed by (encoder fingerprint, text hash), so unchanged texts are embedded once.

Layout: ``<root>/embeddings/<fingerprint>/<shard>.vectors.npy`` (float32 (n, dim)) and ``<shard>.keys.npy``
(S32 hex text hashes, (n,)). Each file is written atomically and the keys file last, so a shard exists only
once it is complete: an interrupted run leaves the cache as it was, and temporaries a killed run left are
removed when the cache is next opened.

The cache is an optimisation, never a reason for a run to fail or to be wrong: a damaged shard (a file
truncated or overwritten, the wrong dtype or dimension, keys and vectors of different lengths, vectors that
are not finite) is reported once through ``on_warning``, moved into ``<folder>/damaged/`` and its texts are
embedded again; a folder that cannot be written (full, read-only) is reported once and the run goes on
without storing vectors.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from evalfast.atomic import all_or_none, remove_stale_temporaries

KEYS_SUFFIX = ".keys.npy"
VECTORS_SUFFIX = ".vectors.npy"
DAMAGED_FOLDER = "damaged"
KEY_DTYPE = np.dtype("S32")


def default_cache_dir() -> Path:
    """``$EVALFAST_CACHE``, else ``$XDG_CACHE_HOME/evalfast``, else ``~/.cache/evalfast``."""
    if os.environ.get("EVALFAST_CACHE"):
        return Path(os.environ["EVALFAST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "evalfast"


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """S32 (n,): 128-bit BLAKE2b of each text's UTF-8 bytes, as hex."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in texts], dtype=KEY_DTYPE)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.save(handle, array)


class DamagedShard(ValueError):
    """A shard whose files do not hold what the cache writes."""


def _read_shard(keys_path: Path, vectors_path: Path, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors memory-mapped) of a shard, checked against what :meth:`EmbeddingCache.add` writes."""
    arrays = []
    for path, mmap_mode, what in ((keys_path, None, "keys file"), (vectors_path, "r", "vectors file")):
        try:
            array = np.load(path, mmap_mode=mmap_mode)
        except FileNotFoundError as err:
            raise DamagedShard(f"{what} missing") from err
        except (ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DamagedShard(f"{what} truncated or not a .npy array") from err
        if not isinstance(array, np.ndarray):  # bytes that happen to open as an .npz archive
            raise DamagedShard(f"{what} not a .npy array")
        arrays.append(array)
    keys, vectors = arrays
    if keys.dtype != KEY_DTYPE or keys.ndim != 1:
        raise DamagedShard(f"keys are {keys.dtype} {keys.shape}, not S32 (n,)")
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise DamagedShard(f"vectors are {vectors.dtype} {vectors.shape}, not float32 (n, {dimension})")
    if vectors.shape[1] != dimension:
        raise DamagedShard(f"vectors have {vectors.shape[1]} components, not the encoder's {dimension}")
    if len(vectors) != len(keys):
        raise DamagedShard(f"{len(keys)} keys but {len(vectors)} vectors")
    return keys, vectors


class EmbeddingCache:
    """Vectors of one encoder, stored in append-only shards.

    ``on_warning(message)`` receives a one-line message, once, for each problem the cache works around (damaged
    shards, a folder that cannot be written); by default nothing is shown.
    """

    def __init__(self, root: Path, fingerprint: str, on_warning: Callable[[str], None] | None = None):
        self.folder = Path(root) / "embeddings" / fingerprint
        self.on_warning = on_warning
        self.writable = True  # False once a write failed: the rest of the run goes without caching
        self._ignored: set[str] = set()  # damaged shards already reported (moved aside, or left where they are)
        remove_stale_temporaries(self.folder)

    def _warn(self, message: str) -> None:
        if self.on_warning:
            self.on_warning(message)

    def _path(self, stem: str, suffix: str) -> Path:
        return self.folder / f"{stem}{suffix}"

    def _shards(self, dimension: int) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[tuple[str, str]]]:
        """The readable shards as (stem, keys, vectors), and the damaged ones as (stem, what is wrong)."""
        shards, damaged = [], []
        for keys_path in sorted(self.folder.glob(f"*{KEYS_SUFFIX}")):
            stem = keys_path.name[: -len(KEYS_SUFFIX)]
            if stem in self._ignored:
                continue
            try:
                shards.append((stem, *_read_shard(keys_path, self._path(stem, VECTORS_SUFFIX), dimension)))
            except DamagedShard as err:
                if keys_path.exists():  # else another run has just moved it aside
                    damaged.append((stem, str(err)))
            except OSError as err:  # unreadable (permissions, I/O errors): of no more use than a damaged one
                damaged.append((stem, f"unreadable: {err.strerror or err}"))
        return shards, damaged

    def _set_aside(self, damaged: list[tuple[str, str]]) -> None:
        """Move damaged shards into the damaged folder (keys first, so each stops being a shard at once) and
        report them in one warning."""
        target = self.folder / DAMAGED_FOLDER
        moved = True
        for stem, _ in damaged:
            self._ignored.add(stem)
            try:
                target.mkdir(exist_ok=True)
                for suffix in (KEYS_SUFFIX, VECTORS_SUFFIX):
                    if self._path(stem, suffix).exists():
                        os.replace(self._path(stem, suffix), target / f"{stem}{suffix}")
            except OSError:
                moved = False
        stem, reason = damaged[0]
        others = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        where = f"moved to {target}" if moved else f"left in place (could not move them to {target})"
        self._warn(f"{self.folder}: damaged cache shard {stem} ({reason}){others}; {where}; "
                   f"{'their' if others else 'its'} texts are embedded again")

    def lookup(self, keys: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Find ``keys`` (S32 (n,)) among shards of ``dimension`` components: a bool (n,) mask of hits and their
        vectors (float32 (hits, dimension)) in key order. Damaged shards count as misses (see the module)."""
        shards, damaged = self._shards(dimension) if self.folder.is_dir() else ([], [])
        found, vectors = self._find(keys, shards, dimension, damaged)
        if damaged:
            self._set_aside(damaged)
        return (found, vectors) if found.any() else (found, None)

    @staticmethod
    def _find(keys: np.ndarray, shards: list[tuple[str, np.ndarray, np.ndarray]], dimension: int,
              damaged: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(hit mask, hit vectors) of ``keys`` in ``shards``; a shard with non-finite hit vectors joins
        ``damaged`` and its hits become misses."""
        if not shards:
            return np.zeros(len(keys), bool), np.empty((0, dimension), np.float32)
        all_keys = np.concatenate([k for _, k, _ in shards])
        shard_of = np.repeat(np.arange(len(shards)), [len(k) for _, k, _ in shards])
        row_of = np.concatenate([np.arange(len(k)) for _, k, _ in shards])
        order = np.argsort(all_keys)
        pos = np.minimum(np.searchsorted(all_keys[order], keys), len(order) - 1)
        found = all_keys[order][pos] == keys
        hits = order[pos[found]]
        vectors = np.empty((len(hits), dimension), np.float32)
        usable = np.ones(len(hits), bool)
        for s, (stem, _, shard_vectors) in enumerate(shards):
            mine = shard_of[hits] == s
            vectors[mine] = shard_vectors[row_of[hits[mine]]]
            if not np.isfinite(vectors[mine]).all():
                damaged.append((stem, "vectors that are not finite"))
                usable[mine] = False
        found[np.flatnonzero(found)[~usable]] = False
        return found, vectors[usable]

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store a new shard: vectors first, keys last (the keys file marks the shard complete). A write that
        fails (a full disk, a read-only folder) is reported once; later calls then store nothing."""
        if not len(keys) or not self.writable:
            return
        stem = uuid.uuid4().hex
        vectors = np.ascontiguousarray(vectors, np.float32)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with all_or_none() as out:  # both staged, then renamed in this order
                out.write(self._path(stem, VECTORS_SUFFIX), lambda tmp: _write_npy(tmp, vectors))
                out.write(self._path(stem, KEYS_SUFFIX), lambda tmp: _write_npy(tmp, keys))
        except OSError as err:
            self.writable = False
            self._warn(f"{self.folder}: cannot write the embedding cache ({err.strerror or err}); carrying on "
                       "without caching, so these texts are embedded again next time (fix that folder or give "
                       "another --cache-dir)")
