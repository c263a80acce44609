"""Metrics that weigh relevant docs by their rank: mrr (reciprocal rank) and map (average precision)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, Prefixes, as_prefixes, divide_or_zero


def reciprocal_rank(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): RR@k = 1 / rank of the first relevant doc when that rank is at most k, else 0.

    trec_eval ``recip_rank`` on the run cut to k (``-M k``), ir-measures ``RR@k`` (``RR`` at the run's depth);
    evalfast's ``mrr@k``. Works on any Prefixes: it reads first_relevant, not a cutoff column.
    """
    first = as_prefixes(judged, k).first_relevant
    return np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)


def average_precision(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): AP@k = (sum over the relevant docs in the top k of P@(their rank)) / R, R = all relevant
    docs of the query, retrieved or not; 0 when R is 0.

    trec_eval ``map_cut.k`` (map_cut_k; ``map`` at the run's depth), ir-measures ``AP@k`` (``AP``); evalfast's
    ``map@k``.
    """
    prefix = as_prefixes(judged, k)
    return divide_or_zero(prefix.precision_sum[prefix.column(k)], prefix.n_relevant)
