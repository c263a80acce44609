"""Production-like retrieval latency: one query at a time, embedded and searched, under a steady arrival rate.

The load generator is open-loop: arrival times are drawn in advance (Poisson by default) and each request's
latency is measured from its scheduled time, so time spent waiting for a busy worker counts. Every request
embeds one query (a single-text path with no batching or padding) and searches a FAISS index. Index quality is
always reported beside its speed: recall@k against exact search on the same queries and, on a golden set, the
change in nDCG@10.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from evalfast.errors import EvalfastError

if TYPE_CHECKING:
    from evalfast.data.golden import GoldenSet

INDEX_SHORTHANDS = {
    "flat": "Flat",
    "hnsw": "HNSW{hnsw_m},Flat",
    "ivf": "IVF{nlist},Flat",
    "ivfpq": "IVF{nlist},PQ{pq_m}",
    "pq": "PQ{pq_m}",
    "sq8": "SQ8",
}
PERCENTILES = (50, 90, 99, 99.9)
MAX_REQUESTS = 10_000_000  # scheduled requests per load; their arrays stay within a few hundred MB
TRAIN_SAMPLE = 100_000  # vectors an IVF or PQ index is trained on at most
HISTOGRAM_BINS = 40
SYNTHETIC_NOISE = 0.02  # about 0.4 in norm at 384 dimensions
WARM_QUERIES = 20  # sent before the load, to warm the session and the index
SCHEMA_VERSION = 1  # of the latency document


@dataclass(frozen=True)
class IndexSpec:
    """Which FAISS index and its search-time settings (metadata: the command-line option's help and bounds)."""

    name: str = "flat"  # a shorthand (INDEX_SHORTHANDS) or a FAISS factory string
    hnsw_m: int = field(default=32, metadata={"help": "HNSW links per node.", "min": 2})
    ef_search: int = field(default=64, metadata={"help": "HNSW search depth.", "min": 1})
    ef_construction: int = field(default=40, metadata={  # FAISS's default
        "help": "HNSW build depth: higher builds slower and finds more at the same --ef-search.", "min": 1})
    nlist: int | None = None  # IVF lists; None: 4 * sqrt(n_docs)
    nprobe: int = field(default=16, metadata={"help": "IVF lists searched.", "min": 1})
    pq_m: int = 48  # PQ sub-quantizers (must divide the dimension)

    def factory(self, n_docs: int) -> str:
        """The FAISS factory string this spec builds."""
        nlist = self.nlist or max(1, int(4 * math.sqrt(n_docs)))
        template = INDEX_SHORTHANDS.get(self.name.lower(), self.name)
        return template.format(hnsw_m=self.hnsw_m, nlist=nlist, pq_m=self.pq_m)


@dataclass(frozen=True)
class BuiltIndex:
    """A searchable index and what it cost."""

    index: object  # faiss.Index
    factory: str
    spec: IndexSpec
    build_seconds: float
    size_bytes: int  # serialized size, close to the memory it holds


def build_index(vectors: np.ndarray, spec: IndexSpec, seed: int = 0) -> BuiltIndex:
    """Build ``spec`` over unit ``vectors`` (float32 (n, dim)) for inner-product search, train it if it needs it."""
    import faiss

    factory = spec.factory(len(vectors))
    start = time.perf_counter()
    try:
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise EvalfastError(f"--index {spec.name!r}: FAISS cannot build {factory!r} ({str(err).splitlines()[0]}); "
                            f"use one of {', '.join(INDEX_SHORTHANDS)} or a FAISS factory string") from err
    if not index.is_trained:
        sample = np.random.default_rng(seed).permutation(len(vectors))[:TRAIN_SAMPLE]
        try:
            index.train(np.ascontiguousarray(vectors[np.sort(sample)]))
        except RuntimeError as err:
            raise EvalfastError(f"--index {factory!r}: FAISS cannot train it on {len(vectors):,} vectors "
                                f"({str(err).splitlines()[0]}); use fewer lists or another index") from err
    graph = getattr(faiss.downcast_index(index), "hnsw", None)
    if graph is not None:
        graph.efConstruction = spec.ef_construction
    index.add(np.ascontiguousarray(vectors, np.float32))
    parameters = faiss.ParameterSpace()
    for name, value in (("efSearch", spec.ef_search), ("nprobe", spec.nprobe)):
        try:
            parameters.set_index_parameter(index, name, value)
        except RuntimeError:
            pass  # the parameter does not apply to this kind of index
    seconds = time.perf_counter() - start
    return BuiltIndex(index, factory, spec, seconds, int(faiss.serialize_index(index).size))


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` (int (n, k)) that ``found`` (int (n, k)) also holds."""
    hits = [len(set(f.tolist()) & set(e.tolist())) / max(1, len(e)) for f, e in zip(found, exact)]
    return float(np.mean(hits)) if hits else math.nan


def recall_by_ef_search(index, queries: np.ndarray, exact_ids: np.ndarray, ef_values: list[int]) -> dict[int, float]:
    """recall@k of an HNSW ``index`` against ``exact_ids`` (int (n, k)) at each efSearch; its own is restored."""
    import faiss

    parameters, own = faiss.ParameterSpace(), faiss.downcast_index(index).hnsw.efSearch
    queries, k, recall = np.ascontiguousarray(queries, np.float32), exact_ids.shape[1], {}
    for ef in ef_values:
        parameters.set_index_parameter(index, "efSearch", ef)
        recall[ef] = recall_at_k(index.search(queries, k)[1], exact_ids)
    parameters.set_index_parameter(index, "efSearch", own)
    return recall


def synthetic_corpus(real: np.ndarray, n_docs: int, seed: int, noise: float = SYNTHETIC_NOISE) -> np.ndarray:
    """``n_docs`` unit vectors around real documents: a random mix of two of them plus Gaussian noise (per
    dimension, before normalising)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_docs, real.shape[1]), np.float32)
    for start in range(0, n_docs, 1 << 16):
        n = min(1 << 16, n_docs - start)
        first, second = rng.integers(len(real), size=(2, n))
        weight = rng.random((n, 1), dtype=np.float32)
        block = weight * real[first] + (1 - weight) * real[second]
        block += rng.normal(scale=noise, size=block.shape).astype(np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def latency_corpus(real: np.ndarray, n_docs: int | None, seed: int) -> np.ndarray:
    """The documents to index: the real ones (float32 (n, dim), kept first and in order) followed by synthetic
    ones drawn around them until there are ``n_docs`` (None: the real ones alone)."""
    if n_docs is None or n_docs == len(real):
        return real
    if n_docs < len(real):
        raise EvalfastError(f"--synthetic-docs {n_docs:,}: the real documents alone are {len(real):,}; "
                            f"ask for more documents than that")
    return np.concatenate([real, synthetic_corpus(real, n_docs - len(real), seed)])


def index_quality(index, corpus: np.ndarray, queries: np.ndarray, golden, k: int) -> dict:
    """recall@k of ``index`` against exact search for ``queries``; with a golden set, whose documents are the
    corpus's first rows (the rest unjudged, so not relevant), nDCG@k both ways too."""
    from evalfast.data.run import descending_name_rank
    from evalfast.metrics import judge, ndcg
    from evalfast.search.index import search

    n_named = len(golden.doc_ids) if golden is not None else 0
    tie_rank = np.arange(len(corpus))  # unnamed documents tie after the golden set's, in corpus order
    if golden is not None:
        tie_rank[:n_named] = descending_name_rank(golden.doc_ids)
    exact = search(corpus, queries, k, tie_rank)
    found = index.search(np.ascontiguousarray(queries, np.float32), k)[1]
    quality = {"k": k, f"recall@{k}": recall_at_k(found, exact.doc_ids)}
    if golden is not None:
        scored = golden.qrels.relevant_counts() > 0
        exact_ndcg, index_ndcg = (float(ndcg(judge(ids, golden.qrels), k)[scored].mean()) for ids in (exact.doc_ids, found))
        quality |= {f"ndcg@{k}_exact": exact_ndcg, f"ndcg@{k}_index": index_ndcg, f"ndcg@{k}_change": index_ndcg - exact_ndcg}
    return quality


def check_load(qps: float, duration: float) -> None:
    """EvalfastError for a load of more requests than one run sends (MAX_REQUESTS)."""
    if qps * duration > MAX_REQUESTS:
        raise EvalfastError(f"--qps {qps:g} for {duration:g} s schedules {qps * duration:,.0f} requests; one run "
                            f"sends at most {MAX_REQUESTS:,}: lower --qps or --duration")


def arrival_times(qps: float, duration: float, process: str, seed: int) -> np.ndarray:
    """Scheduled request times in seconds from the start, within ``duration``: Poisson or evenly spaced."""
    check_load(qps, duration)
    expected = int(qps * duration * 1.2) + 10
    if process == "uniform":
        times = np.arange(expected) / qps
    else:
        times = np.cumsum(np.random.default_rng(seed).exponential(1 / qps, expected))
    return times[times < duration]


@dataclass(frozen=True)
class LoadResult:
    """Per request (in scheduled order): seconds from schedule to start, embedding, search, total; and errors."""

    queued: np.ndarray
    embed: np.ndarray
    search: np.ndarray
    latency: np.ndarray
    errors: int
    wall_seconds: float
    scheduled: int


def run_load(serve: Callable[[int], tuple[float, float]], n_queries: int, times: np.ndarray, concurrency: int,
             ) -> LoadResult:
    """Send request i (query ``i % n_queries``) at ``times[i]`` to ``concurrency`` workers; ``serve(q)`` embeds
    and searches query q and returns (embed seconds, search seconds)."""
    requests: queue.Queue = queue.Queue()
    records = np.full((len(times), 4), np.nan)
    errors = [0]
    lock = threading.Lock()

    def worker() -> None:
        while (item := requests.get()) is not None:
            i, due = item
            began = time.perf_counter()
            try:
                embed_seconds, search_seconds = serve(i % n_queries)
            except Exception:  # a failed request is counted, and the load goes on
                with lock:
                    errors[0] += 1
                continue
            records[i] = (began - due, embed_seconds, search_seconds, time.perf_counter() - due)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in workers:
        thread.start()
    start = time.perf_counter()
    for i, offset in enumerate(times):
        delay = start + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        requests.put((i, start + offset))
    for _ in workers:
        requests.put(None)
    for thread in workers:
        thread.join()
    done = ~np.isnan(records[:, 3])
    return LoadResult(*(records[done, c] for c in range(4)), errors[0], time.perf_counter() - start, len(times))


def summarize_load(result: LoadResult) -> dict:
    """Latency percentiles (ms), the embedding / search / queueing split, achieved rate, errors."""
    def ms(values: np.ndarray) -> dict[str, float]:
        if not len(values):
            return {}
        points = np.percentile(values, PERCENTILES) * 1000
        return {**{f"p{p:g}": float(v) for p, v in zip(PERCENTILES, points)},
                "max": float(values.max() * 1000), "mean": float(values.mean() * 1000)}

    latency_ms = result.latency * 1000
    edges = np.linspace(0.0, float(latency_ms.max()) if len(latency_ms) else 1.0, HISTOGRAM_BINS + 1)
    return {"requests": result.scheduled, "completed": len(result.latency), "errors": result.errors,
            "achieved_qps": len(result.latency) / result.wall_seconds if result.wall_seconds else math.nan,
            "latency_ms": ms(result.latency), "embed_ms": ms(result.embed), "search_ms": ms(result.search),
            "queued_ms": ms(result.queued),
            "histogram": {"edges_ms": edges.tolist(), "counts": np.histogram(latency_ms, edges)[0].tolist()}}


def query_server(encoder, index, texts: list[str], k: int) -> Callable[[int], tuple[float, float]]:
    """``serve(q)``: embed ``texts[q]`` with ``encoder.encode_one`` and search ``index`` for its top ``k``.

    FAISS is set to one OpenMP thread: a single query gains nothing from more, and idle OpenMP threads spinning
    beside onnxruntime's thread stall requests on a small machine.
    """
    import faiss

    faiss.omp_set_num_threads(1)

    def serve(q: int) -> tuple[float, float]:
        began = time.perf_counter()
        vector = encoder.encode_one(texts[q])
        embedded = time.perf_counter()
        index.search(vector[None, :], k)
        return embedded - began, time.perf_counter() - embedded

    return serve


def sweep(serve: Callable[[int], tuple[float, float]], n_queries: int, start_qps: float, duration: float,
          concurrency: int, process: str, seed: int, bound_ms: float, steps: int = 8) -> list[dict]:
    """Rates tried (doubling from ``start_qps`` until p99 passes ``bound_ms``, then halving the gap), each with
    its summary; the highest rate whose p99 stayed within the bound is the one marked ``within_bound``."""
    tried: list[dict] = []

    def attempt(qps: float) -> bool:
        summary = summarize_load(run_load(serve, n_queries, arrival_times(qps, duration, process, seed), concurrency))
        p99 = summary["latency_ms"].get("p99", math.inf)
        ok = p99 <= bound_ms and summary["errors"] == 0
        tried.append({"qps": qps, "p99_ms": p99, "within_bound": ok, "summary": summary})
        return ok

    good, bad, qps = 0.0, math.inf, start_qps
    for _ in range(steps):
        if attempt(qps):
            good = qps
            qps = qps * 2 if math.isinf(bad) else (qps + bad) / 2
        else:
            bad = qps
            qps = (good + bad) / 2 if good else qps / 2
        if bad - good < max(1.0, 0.05 * good):
            break
    return tried


@dataclass(frozen=True)
class LatencyConfig:
    """What ``evalfast latency`` runs: the index, the open-loop load, and the hits each query asks for."""

    index: IndexSpec = IndexSpec("hnsw")
    qps: float = field(default=50.0, metadata={"help": "Target arrival rate, requests per second.", "min": 0,
                                               "open": True})
    duration_seconds: float = 30.0
    concurrency: int = field(default=1, metadata={"help": "Serving workers.", "min": 1})
    arrival: str = "poisson"  # or "uniform"
    k: int = field(default=10, metadata={"help": "Hits per query.", "min": 1})
    synthetic_docs: int | None = None  # grow the index to this many documents, synthetic ones around the real
    p99_bound_ms: float | None = None  # also find the highest rate whose p99 stays within this bound
    seed: int = 0

    def __post_init__(self) -> None:
        check_load(self.qps, self.duration_seconds)  # a load too large to send is refused before any work


def run_latency(encoder, golden: GoldenSet, config: LatencyConfig, cache=None, distractors: Sequence[str] = (),
                golden_path: str = "", command: str = "", on_progress: Callable[[int], None] | None = None,
                on_status: Callable[[str], None] = lambda message: None) -> dict:
    """Index ``golden``'s corpus and the ``distractors`` (embedded by ``encoder`` through ``cache``; grown with
    synthetic documents), then send its queries one at a time under the configured load: the latency document
    (kind "evalfast.latency"). ``on_progress(n)`` counts the corpus texts embedded."""
    from evalfast.model.embeddings import embed

    arrivals = arrival_times(config.qps, config.duration_seconds, config.arrival, config.seed)
    docs = embed(encoder, encoder.prompted(golden.doc_texts + list(distractors), "document"), cache,
                 on_progress).vectors
    queries = embed(encoder, encoder.prompted(golden.query_texts, "query"), cache).vectors
    corpus = latency_corpus(docs, config.synthetic_docs, config.seed)
    if config.k > len(corpus):
        raise EvalfastError(f"--k {config.k}: the index holds only {len(corpus):,} documents")
    on_status(f"building {config.index.name} over {len(corpus):,} documents ...")
    built = build_index(corpus, config.index, config.seed)
    quality = index_quality(built.index, corpus, queries, golden, config.k)
    serve = query_server(encoder, built.index, encoder.prompted(golden.query_texts, "query"), config.k)
    for q in range(min(WARM_QUERIES, golden.n_queries)):
        serve(q)
    load = summarize_load(run_load(serve, golden.n_queries, arrivals, config.concurrency))
    swept = (sweep(serve, golden.n_queries, config.qps, config.duration_seconds, config.concurrency, config.arrival,
                   config.seed, config.p99_bound_ms) if config.p99_bound_ms else None)
    composition = {"golden": golden.n_docs, "distractors": len(distractors), "synthetic": len(corpus) - len(docs)}
    settings = {"qps": config.qps, "duration_seconds": config.duration_seconds, "concurrency": config.concurrency,
                "arrival": config.arrival, "k": config.k, "seed": config.seed}
    return latency_document(command, encoder, golden_path, built, composition, quality, settings, load, swept,
                            config.p99_bound_ms)


def latency_document(command: str, encoder, golden: str, built: BuiltIndex, composition: dict[str, int],
                     quality: dict, settings: dict, load: dict, swept: list[dict] | None,
                     p99_bound_ms: float | None) -> dict:
    """Everything about a latency run, machine-readable, dated now."""
    from evalfast.perf.bench import machine

    model = {"path": str(encoder.folder), "precision": encoder.config.precision, "device": encoder.config.device,
             "threads": encoder.config.threads}
    return {
        "schema_version": SCHEMA_VERSION, "kind": "evalfast.latency",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command, "machine": machine(),
        "model": model, "golden": golden,
        "index": {"factory": built.factory, "spec": dataclasses.asdict(built.spec),
                  "documents": sum(composition.values()), "composition": composition,
                  "build_seconds": built.build_seconds, "size_bytes": built.size_bytes},
        "quality": quality, "settings": settings, "load": load,
        "sweep": {"p99_bound_ms": p99_bound_ms, "tried": swept,
                  "best_qps": max((t["qps"] for t in swept if t["within_bound"]), default=None)} if swept else None,
    }
