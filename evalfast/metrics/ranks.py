"""Metrics that weigh relevant docs by their rank: mrr (reciprocal rank) and map (average precision)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, Prefixes, as_prefixes, divide_or_zero


def reciprocal_rank(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): 1 / rank of the first relevant doc if rank <= k, else 0 (trec_eval recip_rank, run cut to k).

    Works on any Prefixes: it reads first_relevant, not a cutoff column.
    """
    first = as_prefixes(judged, k).first_relevant
    return np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)


def average_precision(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): (sum over relevant docs in the top k of precision at their rank) / n_relevant.

    n_relevant counts ALL relevant docs, retrieved or not; 0 for queries without any (trec_eval map_cut_k).
    """
    prefix = as_prefixes(judged, k)
    return divide_or_zero(prefix.precision_sum[prefix.column(k)], prefix.n_relevant)
