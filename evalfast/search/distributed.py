"""The same evaluation on a Ray cluster: sharded embedding by warm actors, search where the shards lie.

Texts are cut into shards; a pool of actors, each holding one warm onnxruntime session, embeds them and writes
each shard atomically as ``shard-NNNNN.npy`` (vectors) plus ``.json`` (first id, count, the model's graph sha256
and a hash of the texts) to a folder every node sees. A shard already there with the same model and texts is
skipped, so a run stopped and started again loses nothing. Actors restart and their calls are retried when a
worker dies. Search runs one task per shard, each returning only its top candidates; the driver merges them,
rescores the survivors exactly from the shards (memory-mapped) and breaks ties as the local engine does, so both
engines return the same run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evalfast.atomic import atomic_path, write_text
from evalfast.data.run import Run
from evalfast.errors import EvalfastError
from evalfast.model.embeddings import Embeddings
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.search.index import search

SHARD_SIZE = 4096
INSTALL_HINT = "--engine ray needs Ray: pip install 'evalfast[ray]'"


def require_ray():
    """The ray module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise EvalfastError(INSTALL_HINT) from err
    return ray


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address``, or start a local one; True when this call started it."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except ConnectionError as err:
        raise EvalfastError(f"--address {address}: no Ray cluster answers there ({err})") from err
    return address is None


def texts_hash(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _shard_paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"shard-{index:05d}.npy", folder / f"shard-{index:05d}.json"


def _shard_done(folder: Path, index: int, meta: dict) -> bool:
    """True when the shard is written and was made from the same texts by the same model."""
    vectors, header = _shard_paths(folder, index)
    if not (vectors.is_file() and header.is_file()):
        return False
    written = json.loads(header.read_text())
    return all(written.get(key) == value for key, value in meta.items())


class _EmbedWorker:
    """One warm encoder; embeds a shard and writes it atomically (vectors first, then the header with the
    shard's token counts)."""

    def __init__(self, folder: str, config: EncoderConfig):
        self.encoder = Encoder(folder, config)

    def embed(self, shard_dir: str, index: int, texts: list[str], meta: dict) -> int:
        vectors_path, header_path = _shard_paths(Path(shard_dir), index)
        encoded = self.encoder.encode(texts)
        with atomic_path(vectors_path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, encoded.vectors)
        write_text(header_path, json.dumps(meta | {"tokens": encoded.n_tokens, "truncated": encoded.n_truncated}))
        return index


@dataclass(frozen=True)
class ShardedEmbedding:
    """Where the shards are and what this run did."""

    folder: Path
    n_texts: int
    shard_size: int
    embedded: int  # shards embedded by this run
    skipped: int  # shards found finished
    texts_embedded: int  # texts in the shards embedded by this run
    n_tokens: int  # after truncation, summed from the shard headers
    n_truncated: int
    tokens_embedded: int  # tokens of the texts embedded by this run


def embed_on_ray(encoder: Encoder, texts: Sequence[str], shard_dir: Path, actors: int = 2,
                 shard_size: int = SHARD_SIZE, on_shard: Callable[[int, list], None] | None = None
                 ) -> ShardedEmbedding:
    """Embed ``texts`` into shards under ``shard_dir`` with ``actors`` warm actors (Ray must be started).

    ``on_shard(index, actor_handles)`` is called on the driver as each shard finishes.
    """
    ray = require_ray()
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(texts), shard_size)
    metas = [{"first": start, "count": len(texts[start : start + shard_size]), "model": encoder.fingerprint,
              "texts": texts_hash(texts[start : start + shard_size])} for start in starts]
    todo = [i for i, meta in enumerate(metas) if not _shard_done(shard_dir, i, meta)]
    if todo:
        # the driver's model, conventions and batching; one thread each, no helper processes of their own
        config = replace(encoder.config, threads=1, tokenizer_threads=1, tokenizer_processes=0, runners=1)
        worker = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=3)(_EmbedWorker)
        handles = [worker.remote(str(encoder.folder), config) for _ in range(min(actors, len(todo)))]
        pending = {handles[n % len(handles)].embed.remote(
            str(shard_dir), i, list(texts[metas[i]["first"] : metas[i]["first"] + metas[i]["count"]]), metas[i]): i
            for n, i in enumerate(todo)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index = ray.get(ready[0])
            del pending[ready[0]]
            if on_shard:
                on_shard(index, handles)
        for handle in handles:
            ray.kill(handle)
    headers = [json.loads(_shard_paths(shard_dir, i)[1].read_text()) for i in range(len(metas))]
    return ShardedEmbedding(shard_dir, len(texts), shard_size, len(todo), len(metas) - len(todo),
                            sum(metas[i]["count"] for i in todo), sum(h["tokens"] for h in headers),
                            sum(h["truncated"] for h in headers), sum(headers[i]["tokens"] for i in todo))


class ShardedVectors:
    """The shards of one embedding, memory-mapped, indexable by row ids like one (n, dim) array."""

    def __init__(self, sharded: ShardedEmbedding):
        self.sharded = sharded
        n_shards = -(-sharded.n_texts // sharded.shard_size)
        self.shards = [np.load(_shard_paths(sharded.folder, i)[0], mmap_mode="r") for i in range(n_shards)]
        self.shard_size = sharded.shard_size
        self.shape = (sharded.n_texts, self.shards[0].shape[1] if self.shards else 0)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows)
        flat = rows.reshape(-1)
        out = np.empty((flat.size, self.shape[1]), np.float32)
        shard, offset = np.divmod(flat, self.shard_size)
        for s in np.unique(shard):
            where = shard == s
            out[where] = self.shards[s][offset[where]]
        return out.reshape(*rows.shape, self.shape[1])

    def dense(self) -> np.ndarray:
        """All rows in one array (for the sizes a driver can hold)."""
        return np.concatenate([np.asarray(s) for s in self.shards]) if self.shards else np.empty(self.shape, np.float32)


def _shard_candidates(path: str, first: int, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    docs = np.load(path, mmap_mode="r")
    scores, ids = faiss.knn(queries, np.ascontiguousarray(docs, np.float32), min(depth, len(docs)),
                            metric=faiss.METRIC_INNER_PRODUCT)
    return scores, np.where(ids >= 0, ids + first, -1)


def search_on_ray(sharded: ShardedEmbedding, query_vectors: np.ndarray, k: int, tie_rank: np.ndarray) -> Run:
    """Top-``k`` per query over the sharded corpus: candidates per shard on the cluster, merged on the driver,
    then :func:`evalfast.search.index.search`'s exact rescoring and trec_eval tie order, as the local engine does."""
    import faiss

    ray = require_ray()
    task = ray.remote(num_cpus=1, max_retries=3)(_shard_candidates)

    def candidates(queries: np.ndarray, depth: int) -> np.ndarray:
        queries_ref = ray.put(queries)
        futures = [task.remote(str(_shard_paths(sharded.folder, i)[0]), first, queries_ref, depth)
                   for i, first in enumerate(range(0, sharded.n_texts, sharded.shard_size))]
        heap = faiss.ResultHeap(len(queries), depth, keep_max=True)
        for scores, ids in ray.get(futures):
            padded_scores = np.full((len(queries), depth), -np.inf, np.float32)
            padded_ids = np.full((len(queries), depth), -1, np.int64)
            padded_scores[:, : scores.shape[1]], padded_ids[:, : ids.shape[1]] = scores, ids
            heap.add_result(padded_scores, padded_ids)
        heap.finalize()
        return heap.I

    return search(ShardedVectors(sharded), query_vectors, k, tie_rank, candidates=candidates)


@dataclass(frozen=True)
class RayEngine:
    """Embedding and search on a Ray cluster, for :func:`evalfast.evaluate.evaluate` (``embedder``/``searcher``).

    Shards go under ``shard_root`` (a folder every node sees), one sub-folder per (model, texts).
    """

    encoder: Encoder
    shard_root: Path
    actors: int = 2
    on_shard: Callable[[int, list], None] | None = None

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """Sharded embeddings of ``texts``; ``vectors`` is a :class:`ShardedVectors`."""
        started = time.perf_counter()
        folder = Path(self.shard_root) / f"{self.encoder.fingerprint[:16]}-{texts_hash(texts)[:16]}"
        sharded = embed_on_ray(self.encoder, texts, folder, self.actors, on_shard=self.on_shard)
        seconds = time.perf_counter() - started
        return Embeddings(ShardedVectors(sharded), len(texts), sharded.texts_embedded,
                          len(texts) - sharded.texts_embedded,
                          sharded.n_tokens, sharded.n_truncated, seconds, n_encoded_tokens=sharded.tokens_embedded,
                          encode_seconds=seconds if sharded.texts_embedded else 0.0)

    @staticmethod
    def search(doc_vectors: ShardedVectors, query_vectors: np.ndarray, k: int, tie_rank: np.ndarray) -> Run:
        return search_on_ray(doc_vectors.sharded, query_vectors, k, tie_rank)
