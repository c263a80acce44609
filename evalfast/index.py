"""Exact inner-product search over unit vectors with FAISS, returning a trec_eval-ordered :class:`Run`.

FAISS finds candidates; each candidate's score is then recomputed pair by pair, so that identical
documents get bit-identical scores whatever the batch (BLAS kernels do not promise that), and ties are
broken as trec_eval breaks them. A tie that reaches past the candidates is resolved against every document.
"""

from __future__ import annotations

import numpy as np

from .run import Run, order_like_trec_eval

QUERY_BATCH = 4096  # queries per FAISS call
TIE_MARGIN = 8  # candidates fetched past k, so ties and rounding at the cutoff are decided exactly
PAIR_BLOCK = 1 << 14  # (query, document) pairs rescored at once


def exact_scores(query_vectors: np.ndarray, doc_vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """float32 (n, depth): inner product of query row i with document ``ids[i, j]``; -inf where ids is -1.

    Every pair is computed by the same reduction, so equal vectors give equal scores.
    """
    scores = np.full(ids.shape, -np.inf, np.float32)
    flat_scores, flat_ids = scores.reshape(-1), ids.reshape(-1)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    for start in range(0, flat_ids.size, PAIR_BLOCK):
        block = slice(start, start + PAIR_BLOCK)
        valid = np.flatnonzero(flat_ids[block] >= 0) + start
        flat_scores[valid] = np.einsum("ij,ij->i", query_vectors[rows[valid]], doc_vectors[flat_ids[valid]])
    return scores


def _candidates(doc_vectors: np.ndarray, query_vectors: np.ndarray, depth: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(doc_vectors.shape[1])
    index.add(doc_vectors)
    ids = np.empty((len(query_vectors), depth), np.int64)
    for begin in range(0, len(query_vectors), QUERY_BATCH):
        _, ids[begin : begin + QUERY_BATCH] = index.search(query_vectors[begin : begin + QUERY_BATCH], depth)
    return ids


def search(doc_vectors: np.ndarray, query_vectors: np.ndarray, k: int, tie_rank: np.ndarray) -> Run:
    """Top-``k`` documents per query by inner product (cosine for unit vectors), best first.

    doc_vectors float32 (n_docs, dim); query_vectors float32 (n_queries, dim); ``k`` is capped at n_docs.
    Equal scores are ordered as trec_eval orders them (``tie_rank``, see :func:`descending_name_rank`).
    """
    doc_vectors = np.ascontiguousarray(doc_vectors, np.float32)
    query_vectors = np.ascontiguousarray(query_vectors, np.float32)
    n_docs = len(doc_vectors)
    k = min(k, n_docs)
    depth = min(n_docs, k + TIE_MARGIN)
    ids = _candidates(doc_vectors, query_vectors, depth)
    run = order_like_trec_eval(ids, exact_scores(query_vectors, doc_vectors, ids), tie_rank)
    doc_ids, scores = run.doc_ids[:, :k].copy(), run.scores[:, :k].copy()
    if depth < n_docs:
        open_rows = np.flatnonzero(run.scores[:, k - 1] == run.scores[:, -1])
        for row in open_rows:  # rare: more documents tie at the cutoff than the margin holds
            every_doc = np.arange(n_docs)[None, :]
            full = order_like_trec_eval(every_doc, exact_scores(query_vectors[row : row + 1], doc_vectors, every_doc),
                                        tie_rank)
            doc_ids[row], scores[row] = full.doc_ids[0, :k], full.scores[0, :k]
    return Run(doc_ids, scores)
