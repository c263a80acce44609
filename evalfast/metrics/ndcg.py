"""Normalised discounted cumulative gain with linear gain (trec_eval ndcg_cut_k)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, Prefixes, as_prefixes, divide_or_zero


def ndcg(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): DCG@k / IDCG@k with gain = relevance and IDCG from all judged positive relevances.

    0 for queries without relevant docs.
    """
    prefix = as_prefixes(judged, k)
    column = prefix.column(k)
    return divide_or_zero(prefix.dcg[column], prefix.ideal_dcg[column])
