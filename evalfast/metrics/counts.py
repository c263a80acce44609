"""Metrics that count relevant docs in a prefix of the ranking: hit_rate, precision, recall, r_precision."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, divide_or_zero


def _relevant_in_top(gains: np.ndarray, cutoff: np.ndarray | int) -> np.ndarray:
    """int64 (n,): relevant docs (gain > 0) in each row's first cutoff ranks.

    gains float64 (n, depth); cutoff an int for every row, or int64 (n,) per row.
    """
    top = gains[:, : int(np.max(cutoff, initial=0))] > 0
    return np.count_nonzero(top & (np.arange(top.shape[1]) < np.reshape(cutoff, (-1, 1))), axis=1)


def hit_rate(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): 1 if any relevant doc is in the top k, else 0 (trec_eval success_k)."""
    return (_relevant_in_top(judged.gains, k) > 0).astype(np.float64)


def precision(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): |relevant in top k| / k, k even when fewer docs were retrieved (trec_eval P_k)."""
    return _relevant_in_top(judged.gains, k) / k


def recall(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): |relevant in top k| / n_relevant, 0 without relevant docs (trec_eval recall_k)."""
    return divide_or_zero(_relevant_in_top(judged.gains, k), judged.n_relevant)


def r_precision(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): |relevant in top R| / R, R = n_relevant, on the run cut to k (trec_eval Rprec when k = depth)."""
    return divide_or_zero(_relevant_in_top(judged.gains, np.minimum(judged.n_relevant, k)), judged.n_relevant)
