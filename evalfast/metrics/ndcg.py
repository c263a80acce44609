"""Normalised discounted cumulative gain with linear gain (trec_eval ndcg_cut_k)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, Prefixes, as_prefixes, divide_or_zero


def ndcg(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): nDCG@k = DCG@k / IDCG@k, DCG@k = sum over ranks i <= k of rel_i / log2(i + 1) with the
    relevance label as the gain (linear), IDCG@k the DCG@k of the query's positive judgments in descending order;
    0 for queries without relevant docs.

    trec_eval ``ndcg_cut.k`` (ndcg_cut_k; ``ndcg`` at the run's depth), ir-measures ``nDCG@k`` (``nDCG``);
    evalfast's ``ndcg@k``.
    """
    prefix = as_prefixes(judged, k)
    column = prefix.column(k)
    return divide_or_zero(prefix.dcg[column], prefix.ideal_dcg[column])
