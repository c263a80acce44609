"""A run seen through the qrels: the per-rank gains every metric kernel reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalfast.qrels import Qrels, pair_keys
from evalfast.run import pack_rows


@dataclass(frozen=True)
class Judged:
    """A run seen through the qrels: what each metric kernel needs.

    gains float64 (n_queries, depth): relevance of the doc at each rank; 0 where the doc is unjudged, judged
        with relevance <= 0, or no hit (-1).
    n_relevant int64 (n_queries,): judged docs with relevance > 0.
    ideal_gains float64 (n_queries, m): each query's positive relevances sorted descending, zero padded;
        m = max(max n_relevant, 1).
    """

    gains: np.ndarray
    n_relevant: np.ndarray
    ideal_gains: np.ndarray


def judge(run_doc_ids: np.ndarray, qrels: Qrels) -> Judged:
    """Look up every ranked doc in the qrels at once (keys q * stride + doc, np.searchsorted on the sorted qrel keys).

    run_doc_ids int64 (n_queries, depth), -1 = no hit. Row i is query i, so n_queries >= qrels.n_queries (rows
    past qrels.n_queries have no judgments); doc ids may reach past qrels.n_docs (docs nobody judged).
    """
    n_queries = run_doc_ids.shape[0]
    if n_queries < qrels.n_queries:
        raise ValueError(f"judge: run has {n_queries} query rows, qrels has {qrels.n_queries} queries")
    stride = max(qrels.n_docs, int(run_doc_ids.max(initial=-1)) + 1)
    judged_keys = pair_keys(qrels.query, qrels.doc, stride)
    order = np.argsort(judged_keys)
    # A sentinel above every real key keeps searchsorted's answer a valid index.
    sorted_keys = np.append(judged_keys[order], np.iinfo(np.int64).max)
    relevance = np.append(qrels.relevance[order], 0.0)
    keys = pair_keys(np.arange(n_queries)[:, None], run_doc_ids, stride)
    pos = np.searchsorted(sorted_keys, keys)
    found = (run_doc_ids >= 0) & (sorted_keys[pos] == keys)  # a -1 key could alias the previous row's last doc
    return Judged(
        gains=np.where(found, np.maximum(relevance[pos], 0.0), 0.0),
        n_relevant=np.pad(qrels.relevant_counts(), (0, n_queries - qrels.n_queries)),
        ideal_gains=_ideal_gains(qrels, n_queries),
    )


def _ideal_gains(qrels: Qrels, n_queries: int) -> np.ndarray:
    """float64 (n_queries, max(max n_relevant, 1)): each query's positive relevances, descending, zero padded."""
    positive = qrels.relevance > 0
    query, gain = qrels.query[positive], qrels.relevance[positive]
    order = np.lexsort((-gain, query))
    return pack_rows(query[order], gain[order], n_queries, 0.0, min_width=1)


def divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """float64 (n,): numerator / denominator, 0 where denominator <= 0 (queries without relevant docs)."""
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator)), where=denominator > 0)
