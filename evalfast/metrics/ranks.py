"""Metrics that weigh relevant docs by their rank: mrr (reciprocal rank) and map (average precision)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, divide_or_zero


def _reciprocal_rank(relevant: np.ndarray) -> np.ndarray:
    """float64 (n,): 1 / rank of the first True in each row of relevant bool (n, depth), 0 if none."""
    return np.where(relevant.any(axis=1), 1.0 / (relevant.argmax(axis=1) + 1), 0.0)


def _precision_sum(relevant: np.ndarray) -> np.ndarray:
    """float64 (n,): sum over relevant ranks r of |relevant in top r| / r; relevant bool (n, depth)."""
    precision_at = np.cumsum(relevant, axis=1) / np.arange(1, relevant.shape[1] + 1)
    return (precision_at * relevant).sum(axis=1)


def reciprocal_rank(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): 1 / rank of the first relevant doc if rank <= k, else 0 (trec_eval recip_rank, run cut to k)."""
    return _reciprocal_rank(judged.gains[:, :k] > 0)


def average_precision(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): (sum over relevant docs in the top k of precision at their rank) / n_relevant.

    n_relevant counts ALL relevant docs, retrieved or not; 0 for queries without any (trec_eval map_cut_k).
    """
    return divide_or_zero(_precision_sum(judged.gains[:, :k] > 0), judged.n_relevant)
