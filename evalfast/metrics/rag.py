"""RAG-style retrieval metrics, honestly named.

* ``context_precision@k``: RAGAS's context precision computed from judged relevance instead of an LLM's verdict:
  the mean of precision@i over the ranks i <= k that hold a relevant document (0 when none does).
* ``context_recall@k``: the share of a query's relevant documents found in the top k (RAGAS's context recall
  with the judged relevant documents as the reference contexts).
* ``... (cosine >= t)``: the same two in the manner of RAGAS's non-LLM metrics, which match contexts to the
  reference by a similarity threshold: a retrieved document counts as relevant when its embedding's similarity
  with some reference document is at least ``t``, and a reference document counts as found when some retrieved
  document reaches ``t`` with it. The similarity is the model's (cosine, or ``dot`` for dot-product models) and
  is named with the threshold in the metric's name, so reports state both. A reference document that is not in
  the corpus has no embedding and is never found.
"""

from __future__ import annotations

import numpy as np

from evalfast.data.qrels import Qrels
from evalfast.metrics.counts import recall
from evalfast.metrics.judged import Judged


def context_precision(relevant: np.ndarray) -> np.ndarray:
    """float64 (n,) from bool (n, k) "the document at rank i is relevant": sum_i precision@i * rel_i / sum_i rel_i."""
    hits = relevant.astype(np.float64)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    found = hits.sum(axis=1)
    return np.divide((precision_at * hits).sum(axis=1), found, out=np.zeros(len(hits)), where=found > 0)


def _reference_matrix(qrels: Qrels) -> tuple[np.ndarray, np.ndarray]:
    """(int64 (n_queries, m) relevant doc indices padded with -1, bool (n_queries, m) mask)."""
    relevant = qrels.relevance > 0
    query, doc = qrels.query[relevant], qrels.doc[relevant]
    order = np.argsort(query, kind="stable")
    query, doc = query[order], doc[order]
    counts = np.bincount(query, minlength=qrels.n_queries)
    width = max(1, int(counts.max(initial=0)))
    slot = np.arange(len(query)) - np.repeat(np.cumsum(counts) - counts, counts)
    references = np.full((qrels.n_queries, width), -1, np.int64)
    references[query, slot] = doc
    return references, references >= 0


def rag_metrics(judged: Judged, run_doc_ids: np.ndarray, qrels: Qrels, doc_vectors: np.ndarray, k: int,
                threshold: float, similarity: str = "cosine") -> dict[str, np.ndarray]:
    """Per-query float64 (n_queries,) values of the four metrics at cutoff ``k`` (capped at the run's depth).

    ``doc_vectors`` float32 (n_docs, dim), whose inner product is the model's ``similarity`` (anything indexable
    by an id array); ``run_doc_ids`` int64 (n_queries, depth).
    """
    k = min(k, run_doc_ids.shape[1])
    retrieved = run_doc_ids[:, :k]
    references, has_reference = _reference_matrix(qrels)
    embedded = has_reference & (references < len(doc_vectors))
    scores = np.einsum("qkd,qrd->qkr", doc_vectors[np.maximum(retrieved, 0)],
                       doc_vectors[np.where(embedded, references, 0)])
    close = (scores >= threshold) & embedded[:, None, :] & (retrieved >= 0)[:, :, None]
    n_references = has_reference.sum(axis=1)
    found = np.divide(close.any(axis=1).sum(axis=1), n_references, out=np.zeros(len(retrieved)),
                      where=n_references > 0)
    return {
        f"context_precision@{k}": context_precision(judged.gains[:, :k] > 0),
        f"context_recall@{k}": recall(judged, k),
        f"context_precision@{k} ({similarity} >= {threshold:g})": context_precision(close.any(axis=2)),
        f"context_recall@{k} ({similarity} >= {threshold:g})": found,
    }
