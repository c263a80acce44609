"""Evaluate one model on one golden set: embed, search, score."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .cache import EmbeddingCache
from .embeddings import embed
from .encoder import Encoder
from .errors import EvalfastError
from .golden import GoldenSet
from .index import search
from .metrics import METRICS, compute, judge, summarize
from .metrics.pairs import PAIRS_DEPTH, pairs_metrics
from .metrics.rag import rag_metrics
from .metrics.similarity import pair_cosines, similarity_metrics
from .run import Run, descending_name_rank

DEFAULT_KS = (1, 3, 5, 10, 100)
PROTOCOLS = ("qrels", "pairs")


@dataclass(frozen=True)
class EvalConfig:
    """What to compute: the protocol, the cutoffs and metrics (qrels protocol), the noise seed."""

    protocol: str = "qrels"
    ks: tuple[int, ...] = DEFAULT_KS
    metrics: tuple[str, ...] = tuple(METRICS)
    seed: int = 0  # for the simulated metrics' noise
    rag_k: int = 10  # cutoff of the RAG-style context precision and recall
    rag_threshold: float = 0.5  # cosine at which a retrieved document matches a reference one (threshold variants)


@dataclass(frozen=True)
class EvalResult:
    """Mean metrics, per-query (or per-row) values, the run, counts and timings of one evaluation."""

    model: str
    model_sha256: str
    precision: str
    device: str
    golden: str
    protocol: str
    metrics: dict[str, float]  # ranking metrics, flat "name@k" keys
    similarity: dict[str, float]  # mean cosine and the seed's simulated metrics
    per_query: dict[str, np.ndarray]  # per query (qrels) or per row (pairs), float64; RAG-style ones included
    run: Run
    counts: dict[str, int]
    timings: dict[str, float]
    embedding: dict[str, int] = field(default_factory=dict)
    rag: dict[str, float] = field(default_factory=dict)  # RAG-style context precision and recall (qrels protocol)
    evaluated: np.ndarray | None = None  # bool (n,): the queries (or rows) the means are taken over
    run_relevance: np.ndarray | None = None  # float64 (n_queries, depth): judged relevance down the run (qrels)


def _similarity_pairs(golden: GoldenSet) -> tuple[np.ndarray, np.ndarray]:
    """The (query, doc) pairs whose cosine is averaged: positive rows of a pairs file, else relevant qrels."""
    if golden.pairs is not None:
        positive = golden.pairs.relevance > 0
        return golden.pairs.query[positive], golden.pairs.doc[positive]
    relevant = golden.qrels.relevance > 0
    return golden.qrels.query[relevant], golden.qrels.doc[relevant]


@dataclass(frozen=True)
class Scored:
    """What the metrics make of one set of vectors: the run, per-query values, means and counts."""

    run: Run
    per_query: dict[str, np.ndarray]
    metrics: dict[str, float]
    similarity: dict[str, float]
    counts: dict[str, int]
    search_seconds: float
    metrics_seconds: float
    rag: dict[str, float]
    evaluated: np.ndarray  # bool (n,)
    run_relevance: np.ndarray | None


def check_config(config: EvalConfig, golden: GoldenSet) -> None:
    """An error naming the option if ``config`` cannot be applied to ``golden``."""
    if config.protocol not in PROTOCOLS:
        raise EvalfastError(f"--protocol {config.protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if config.protocol == "pairs" and golden.pairs is None:
        raise EvalfastError(f"{golden.source}: the pairs protocol needs a CSV or JSONL file of query, context, "
                            "relevance rows; use --protocol qrels for a BEIR folder")
    if not config.ks or min(config.ks) < 1:
        raise EvalfastError(f"--k {','.join(map(str, config.ks))}: cutoffs must be integers >= 1")
    if not -1 <= config.rag_threshold <= 1:
        raise EvalfastError(f"--rag-threshold {config.rag_threshold:g}: a cosine threshold lies in [-1, 1]")


Searcher = Callable[[np.ndarray, np.ndarray, int, np.ndarray], Run]  # (docs, queries, k, tie_rank) -> Run


def score_vectors(golden: GoldenSet, doc_vectors: np.ndarray, query_vectors: np.ndarray,
                  config: EvalConfig = EvalConfig(), device: str = "cpu", searcher: Searcher | None = None) -> Scored:
    """Search ``query_vectors`` (float32 (n_queries, dim)) against ``doc_vectors`` (float32 (n_docs, dim)) on
    ``device`` (or with ``searcher``) and score the run on ``golden`` under ``config``."""
    check_config(config, golden)
    start = time.perf_counter()
    depth = PAIRS_DEPTH if config.protocol == "pairs" else max(config.ks)
    find = searcher or (lambda docs, queries, k, tie_rank: search(docs, queries, k, tie_rank, device))
    run = find(doc_vectors, query_vectors, depth, descending_name_rank(golden.doc_ids))
    searched = time.perf_counter()

    counts = {"queries": golden.n_queries, "documents": golden.n_docs}
    rag: dict[str, float] = {}
    if config.protocol == "pairs":
        pairs = golden.pairs
        per_query = pairs_metrics(run.doc_ids, pairs.query, pairs.doc, pairs.relevance)
        metrics = {key: float(values.mean()) for key, values in per_query.items()}
        counts.update(rows=len(pairs.query), positive_rows=int((pairs.relevance > 0).sum()))
        evaluated, run_relevance = np.ones(len(pairs.query), bool), None
    else:
        judged = judge(run.doc_ids, golden.qrels)
        per_query = compute(judged, config.metrics, config.ks)
        metrics, n_evaluated, n_skipped = summarize(per_query, judged.n_relevant)
        rag_per_query = rag_metrics(judged, run.doc_ids, golden.qrels, doc_vectors, config.rag_k, config.rag_threshold)
        rag = summarize(rag_per_query, judged.n_relevant)[0]
        per_query |= rag_per_query
        counts.update(queries_evaluated=n_evaluated, queries_skipped_no_relevant=n_skipped)
        evaluated, run_relevance = judged.n_relevant > 0, judged.gains
    sim_query, sim_doc = _similarity_pairs(golden)
    cosines = pair_cosines(query_vectors, doc_vectors, sim_query, sim_doc)
    similarity = {key: float(values.mean()) if len(values) else float("nan")
                  for key, values in similarity_metrics(cosines, config.seed).items()}
    counts["similarity_pairs"] = len(cosines)
    return Scored(run, per_query, metrics, similarity, counts, searched - start, time.perf_counter() - searched, rag,
                  evaluated, run_relevance)


def evaluate(encoder: Encoder, golden: GoldenSet, config: EvalConfig = EvalConfig(),
             cache: EmbeddingCache | None = None, on_progress: Callable[[int], None] | None = None,
             engine=None) -> EvalResult:
    """Embed the corpus and queries, search the top k exactly, and compute the metrics.

    ``on_progress(n)`` is called as texts are embedded (corpus then queries; n_docs + n_queries in all).
    ``engine``: None embeds and searches here; an :class:`evalfast.distributed.RayEngine` does both on a cluster.

    Example::

        result = evaluate(Encoder("export/all-MiniLM-L6-v2"), load_golden("data/golden/handwritten"))
        print(result.metrics["ndcg@10"])
    """
    check_config(config, golden)
    start = time.perf_counter()
    if engine is None:
        docs = embed(encoder, golden.doc_texts, cache, on_progress)
        queries = embed(encoder, golden.query_texts, cache, on_progress)
        query_vectors = queries.vectors
    else:
        docs, queries = engine.embed(golden.doc_texts), engine.embed(golden.query_texts)
        query_vectors = queries.vectors.dense()
    embed_seconds = time.perf_counter() - start
    scored = score_vectors(golden, docs.vectors, query_vectors, config, encoder.config.device,
                           engine.search if engine is not None else None)
    return EvalResult(
        model=str(encoder.folder),
        model_sha256=encoder.graph_sha256,
        precision=encoder.config.precision,
        device=encoder.config.device,
        golden=str(golden.source),
        protocol=config.protocol,
        metrics=scored.metrics,
        similarity=scored.similarity,
        per_query=scored.per_query,
        run=scored.run,
        counts=scored.counts,
        timings={
            "embed_seconds": embed_seconds,
            "search_seconds": scored.search_seconds,
            "metrics_seconds": scored.metrics_seconds,
            "total_seconds": time.perf_counter() - start,
            "documents_per_second": docs.texts_per_second,
            "tokens_per_second": (docs.n_tokens + queries.n_tokens) / max(embed_seconds, 1e-9),
        },
        embedding={
            "tokens": docs.n_tokens + queries.n_tokens,
            "truncated": docs.n_truncated + queries.n_truncated,
            "encoded": docs.n_encoded + queries.n_encoded,
            "cached": docs.n_cached + queries.n_cached,
        },
        rag=scored.rag,
        evaluated=scored.evaluated,
        run_relevance=scored.run_relevance,
    )
