"""Evaluate one model on one golden set: embed, search, score."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from evalfast.choices import DEFAULT_KS, MTEB_KS, PROTOCOLS
from evalfast.data.golden import GoldenSet, select_queries
from evalfast.data.run import Run, descending_name_rank
from evalfast.errors import EvalfastError
from evalfast.metrics import METRICS, compute, judge, summarize
from evalfast.metrics.pairs import PAIRS_DEPTH, pairs_metrics
from evalfast.metrics.rag import rag_metrics
from evalfast.metrics.similarity import pair_similarities, similarity_metrics
from evalfast.model.cache import EmbeddingCache
from evalfast.model.embeddings import Embeddings, embed
from evalfast.model.encoder import Encoder
from evalfast.search.index import search


@dataclass(frozen=True)
class EvalConfig:
    """What to compute: the protocol, the cutoffs and metrics (qrels and mteb protocols), the noise seed.

    The mteb protocol is the qrels protocol as MTEB's retrieval tasks run it: only the queries the qrels judge
    are embedded, and every one of them is averaged (one judged only non-relevant scores 0, as pytrec_eval scores
    it), at ``MTEB_KS`` by default.
    """

    protocol: str = "qrels"
    ks: tuple[int, ...] = DEFAULT_KS
    metrics: tuple[str, ...] = tuple(METRICS)
    seed: int = 0  # for the simulated metrics' noise
    rag_k: int = 10  # cutoff of the RAG-style context precision and recall
    rag_threshold: float = 0.5  # similarity at which a retrieved document matches a reference one (threshold variants)
    ignore_identical_ids: bool = False  # drop a retrieved document whose id is the query's (MTEB: ArguAna, Quora)
    # from the run, which then holds one document fewer for those queries, as MTEB's does

    @classmethod
    def for_protocol(cls, protocol: str, ks: tuple[int, ...] | None = None, **settings) -> EvalConfig:
        """``protocol``'s config, at its default cutoffs (MTEB's under mteb) unless ``ks`` is given."""
        return cls(protocol, ks or (MTEB_KS if protocol == "mteb" else DEFAULT_KS), **settings)


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
    conventions: dict = field(default_factory=dict)  # similarity, prompts, dimension, truncation the vectors used
    embedding: dict[str, int] = field(default_factory=dict)
    rag: dict[str, float] = field(default_factory=dict)  # RAG-style context precision and recall (qrels protocol)
    evaluated: np.ndarray | None = None  # bool (n,): the queries (or rows) the means are taken over
    run_relevance: np.ndarray | None = None  # float64 (n_queries, depth): judged relevance down the run (qrels)
    split: str | None = None  # the golden set's BEIR split, None for a pairs file


def _similarity_pairs(golden: GoldenSet) -> tuple[np.ndarray, np.ndarray]:
    """The (query, doc) pairs whose similarity is averaged: positive rows of a pairs file, else relevant qrels
    of documents in the corpus."""
    if golden.pairs is not None:
        positive = golden.pairs.relevance > 0
        return golden.pairs.query[positive], golden.pairs.doc[positive]
    relevant = (golden.qrels.relevance > 0) & (golden.qrels.doc < golden.n_docs)
    return golden.qrels.query[relevant], golden.qrels.doc[relevant]


def for_protocol(golden: GoldenSet, protocol: str) -> GoldenSet:
    """The golden set as ``protocol`` evaluates it: under mteb, only the queries that the qrels judge."""
    if protocol != "mteb":
        return golden
    judged = np.zeros(golden.n_queries, bool)
    judged[golden.qrels.query] = True
    return golden if judged.all() else select_queries(golden, judged)


def drop_identical_ids(run: Run, golden: GoldenSet) -> Run:
    """``run`` without each query's own document (the one whose id is the query's id), the rest moved up and
    the row padded: MTEB removes it after the search, without fetching another."""
    doc_index = {doc_id: i for i, doc_id in enumerate(golden.doc_ids)}
    own = np.array([doc_index.get(query_id, -1) for query_id in golden.query_ids], np.int64)
    dropped = (run.doc_ids == own[:, None]) & (own[:, None] >= 0)
    order = np.argsort(dropped, axis=1, kind="stable")
    doc_ids, scores = np.take_along_axis(run.doc_ids, order, 1), np.take_along_axis(run.scores, order, 1)
    gone = np.take_along_axis(dropped, order, 1)
    return Run(np.where(gone, -1, doc_ids), np.where(gone, -np.inf, scores))


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


def check_config(config: EvalConfig, golden: GoldenSet, similarity: str = "cosine") -> None:
    """An error naming the option if ``config`` cannot be applied to ``golden`` with a ``similarity`` model."""
    if config.protocol not in PROTOCOLS:
        raise EvalfastError(f"--protocol {config.protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if config.protocol == "pairs" and golden.pairs is None:
        raise EvalfastError(f"{golden.source}: the pairs protocol needs a CSV or JSONL file of query, context, "
                            "relevance rows; use --protocol qrels for a BEIR folder")
    if not config.ks or min(config.ks) < 1:
        raise EvalfastError(f"--k {','.join(map(str, config.ks))}: cutoffs must be integers >= 1")
    if similarity == "cosine" and not -1 <= config.rag_threshold <= 1:
        raise EvalfastError(f"--rag-threshold {config.rag_threshold:g}: a cosine threshold lies in [-1, 1]")


Searcher = Callable[[np.ndarray, np.ndarray, int, np.ndarray], Run]  # (docs, queries, k, tie_rank) -> Run


class Engine(Protocol):
    """Somewhere else to embed and search (evalfast.search.distributed.RayEngine: a Ray cluster)."""

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """The texts' embeddings; their ``vectors`` need only ``dense()`` for queries and the engine's search."""

    search: Searcher


def score_vectors(golden: GoldenSet, doc_vectors: np.ndarray, query_vectors: np.ndarray,
                  config: EvalConfig = EvalConfig(), device: str = "cpu", searcher: Searcher | None = None,
                  similarity: str = "cosine") -> Scored:
    """Search ``query_vectors`` (float32 (n_queries, dim)) against ``doc_vectors`` (float32 (n_docs, dim)) on
    ``device`` (or with ``searcher``) and score the run on ``golden`` under ``config``.

    Documents are ranked by inner product, which is the model's ``similarity`` for an encoder's vectors (unit
    vectors for cosine models); the RAG-style threshold metrics compare documents by it too."""
    check_config(config, golden, similarity)
    start = time.perf_counter()
    depth = PAIRS_DEPTH if config.protocol == "pairs" else max(config.ks)
    find = searcher or (lambda docs, queries, k, tie_rank: search(docs, queries, k, tie_rank, device))
    run = find(doc_vectors, query_vectors, depth, descending_name_rank(golden.doc_ids))
    if config.ignore_identical_ids:
        run = drop_identical_ids(run, golden)
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
        averaged = np.ones(golden.n_queries, bool) if config.protocol == "mteb" else judged.n_relevant > 0
        metrics, n_evaluated, n_skipped = summarize(per_query, averaged)
        rag_per_query = rag_metrics(judged, run.doc_ids, golden.qrels, doc_vectors, config.rag_k, config.rag_threshold,
                                    similarity)
        rag = summarize(rag_per_query, averaged)[0]
        per_query |= rag_per_query
        counts.update(queries_evaluated=n_evaluated, queries_skipped_no_relevant=n_skipped)
        evaluated, run_relevance = averaged, judged.gains
    sim_query, sim_doc = _similarity_pairs(golden)
    pair_scores = pair_similarities(query_vectors, doc_vectors, sim_query, sim_doc)
    pair_means = {key: float(values.mean()) if len(values) else float("nan")
                  for key, values in similarity_metrics(pair_scores, config.seed).items()}
    counts["similarity_pairs"] = len(pair_scores)
    return Scored(run, per_query, metrics, pair_means, counts, searched - start, time.perf_counter() - searched, rag,
                  evaluated, run_relevance)


def evaluate(encoder: Encoder, golden: GoldenSet, config: EvalConfig = EvalConfig(),
             cache: EmbeddingCache | None = None, on_progress: Callable[[int], None] | None = None,
             engine: Engine | None = None) -> EvalResult:
    """Embed the corpus and queries, search the top k exactly, and compute the metrics.

    Documents and queries get the encoder's document and query prompts (see Encoder.prompted); under the mteb
    protocol only judged queries are evaluated (see for_protocol). ``on_progress(n)`` is called as texts are
    embedded (corpus then queries; n_docs + n_queries in all). ``engine``: None embeds and searches here; an
    :class:`Engine` (evalfast.search.distributed.RayEngine) does both elsewhere.

    Example::

        result = evaluate(Encoder("export/all-MiniLM-L6-v2"), load_golden("data/golden/handwritten"))
        print(result.metrics["ndcg@10"])
    """
    similarity = encoder.manifest.similarity
    golden = for_protocol(golden, config.protocol)
    check_config(config, golden, similarity)
    start = time.perf_counter()
    doc_texts, query_texts = encoder.prompted(golden.doc_texts, "document"), encoder.prompted(golden.query_texts, "query")
    if engine is None:
        docs = embed(encoder, doc_texts, cache, on_progress)
        queries = embed(encoder, query_texts, cache, on_progress)
        query_vectors = queries.vectors
    else:
        docs, queries = engine.embed(doc_texts), engine.embed(query_texts)
        query_vectors = queries.vectors.dense()
    embed_seconds = time.perf_counter() - start
    scored = score_vectors(golden, docs.vectors, query_vectors, config, encoder.config.device,
                           engine.search if engine is not None else None, similarity)
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
            "texts_per_second": (docs.n_texts + queries.n_texts) / max(embed_seconds, 1e-9),
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
        conventions=encoder_conventions(encoder),
        split=golden.split,
    )


def encoder_conventions(encoder: Encoder) -> dict:
    """What an evaluation's vectors were made with, for its report: similarity, prompts, dimension, truncation."""
    return {"similarity": encoder.manifest.similarity, "query_prompt": encoder.prompts["query"],
            "document_prompt": encoder.prompts["document"], "dimension": encoder.dimension,
            "max_seq_length": encoder.max_seq_length, "normalized": encoder.normalizes or (encoder.manifest.normalize and encoder.dimension == encoder.manifest.dimension)}
