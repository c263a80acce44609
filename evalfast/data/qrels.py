"""Relevance judgments (qrels) as parallel index arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pair_keys(query: np.ndarray, doc: np.ndarray, n_docs: int) -> np.ndarray:
    """int64 key per (query, doc) pair: query * n_docs + doc (shapes broadcast; unique while 0 <= doc < n_docs)."""
    return np.asarray(query, np.int64) * n_docs + doc


@dataclass(frozen=True)
class Qrels:
    """Relevance judgments as parallel arrays over query and document indices.

    Each (query, doc) pair appears at most once: the constructor raises ValueError on a repeat
    (read_qrels drops identical repeated lines and reports conflicting ones to the user).
    """

    query: np.ndarray  # int64 (n,) query index into a query-id list
    doc: np.ndarray  # int64 (n,) document index into a doc-id list
    relevance: np.ndarray  # float64 (n,) graded relevance; > 0 means relevant, <= 0 judged non-relevant
    n_queries: int
    n_docs: int

    def __post_init__(self) -> None:
        """Coerce the arrays to int64/int64/float64 and check shapes, index ranges and uniqueness."""
        for name, dtype in (("query", np.int64), ("doc", np.int64), ("relevance", np.float64)):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype))
        if not self.query.ndim == 1 or not self.query.shape == self.doc.shape == self.relevance.shape:
            raise ValueError("Qrels: query, doc and relevance must be 1-D arrays of one length")
        in_range = (0 <= self.query) & (self.query < self.n_queries) & (0 <= self.doc) & (self.doc < self.n_docs)
        if not in_range.all():
            raise ValueError("Qrels: query or doc index out of range [0, n_queries) / [0, n_docs)")
        keys = pair_keys(self.query, self.doc, self.n_docs)
        if (keys[1:] > keys[:-1]).all():  # ordered by (query, doc), as read_qrels gives them: no pair repeats
            return
        keys.sort()
        if np.any(keys[1:] == keys[:-1]):
            raise ValueError("Qrels: a (query, doc) pair is judged more than once")

    def relevant_counts(self) -> np.ndarray:
        """int64 (n_queries,): number of judged docs with relevance > 0 per query."""
        return np.bincount(self.query[self.relevance > 0], minlength=self.n_queries).astype(np.int64)

    def by_query(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query, doc, relevance) reordered stably by query, so that each query's judgments are contiguous.

        The arrays themselves when they already are (as with qrels read from a file grouped by query), else
        reordered copies.
        """
        if np.all(self.query[1:] >= self.query[:-1]):
            return self.query, self.doc, self.relevance
        order = np.argsort(self.query, kind="stable")
        return self.query[order], self.doc[order], self.relevance[order]
