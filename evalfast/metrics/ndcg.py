"""Normalised discounted cumulative gain with linear gain (trec_eval ndcg_cut_k)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, divide_or_zero


def _dcg(gains: np.ndarray) -> np.ndarray:
    """float64 (n,): sum over ranks r = 1.. of gains[:, r - 1] / log2(r + 1); gains float64 (n, depth)."""
    return gains @ (1.0 / np.log2(np.arange(2, gains.shape[1] + 2)))


def ndcg(judged: Judged, k: int) -> np.ndarray:
    """float64 (n,): DCG@k / IDCG@k with gain = relevance and IDCG from all judged positive relevances.

    0 for queries without relevant docs.
    """
    return divide_or_zero(_dcg(judged.gains[:, :k]), _dcg(judged.ideal_gains[:, :k]))
