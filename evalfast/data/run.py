"""Ranked retrieval results as padded (n_queries, depth) arrays, ordered the way trec_eval ranks them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Run:
    """Ranked results, best first.

    doc_ids int64 (n_queries, depth), -1 = no hit; scores float32 (n_queries, depth), -inf where no hit.
    """

    doc_ids: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        """Coerce doc_ids to int64 and scores to float32; both must be 2-D of one shape."""
        object.__setattr__(self, "doc_ids", np.asarray(self.doc_ids, np.int64))
        object.__setattr__(self, "scores", np.asarray(self.scores, np.float32))
        if self.doc_ids.ndim != 2 or self.doc_ids.shape != self.scores.shape:
            raise ValueError("Run: doc_ids and scores must be 2-D arrays of one shape")


def descending_name_rank(doc_names: list[str]) -> np.ndarray:
    """int64 (n_docs,): each document's position when the names are sorted in descending lexical order.

    Python/numpy compare strings by code point, which is the byte order strcmp sees in UTF-8.
    """
    rank = np.empty(len(doc_names), np.int64)
    rank[np.argsort(np.asarray(doc_names, dtype=str))[::-1]] = np.arange(len(doc_names))
    return rank


def order_like_trec_eval(doc_ids: np.ndarray, scores: np.ndarray, tie_rank: np.ndarray) -> Run:
    """Sort each row by score descending, ties by doc name descending (tie_rank ascending), -1 padding last.

    doc_ids int64 (n_queries, depth) with -1 for no hit; scores (n_queries, depth) of any float dtype; the
    sort uses them as given (pass float64 to rank like trec_eval's doubles) and the Run stores float32.
    tie_rank int64 (n_docs,) is descending_name_rank(doc_names).
    """
    doc_ids = np.asarray(doc_ids, np.int64)
    scores = np.asarray(scores)
    # tie_rank[-1] on padding is a harmless placeholder: padding sorts last on the primary key anyway.
    order = np.lexsort((tie_rank[doc_ids], -scores, doc_ids < 0), axis=-1)
    return Run(np.take_along_axis(doc_ids, order, axis=-1), np.take_along_axis(scores, order, axis=-1))


def pack_rows(row: np.ndarray, value: np.ndarray, n_rows: int, fill: float, min_width: int = 0) -> np.ndarray:
    """Lay out a flat list as a left-aligned padded matrix.

    row int64 (n,) sorted ascending, value (n,) -> (n_rows, max(most values in a row, min_width)) of value's
    dtype: row r holds its values in input order, then fill (a view of value when every row is full).
    """
    counts = np.bincount(row, minlength=n_rows)
    width = max(int(counts.max(initial=0)), min_width)
    if row.size == n_rows * width:  # every row full (a run of one depth): the list is the matrix, row by row
        return value.reshape(n_rows, width)
    column = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((n_rows, width), fill, dtype=value.dtype)
    out[row, column] = value
    return out
