"""Metrics that count relevant docs in a prefix of the ranking: hit_rate, precision, recall, r_precision, and the
share of the prefix that is judged (judged_rate)."""

from __future__ import annotations

import numpy as np

from evalfast.metrics.judged import Judged, Prefixes, as_prefixes, divide_or_zero


def _relevant_in_top(source: Judged | Prefixes, k: int) -> np.ndarray:
    """int64 (n,): relevant docs (gain > 0) in each query's top k."""
    prefix = as_prefixes(source, k)
    return prefix.relevant[prefix.column(k)]


def hit_rate(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): Success@k = 1 if some relevant doc is in the top k, else 0.

    trec_eval ``success.k`` (success_k), ir-measures ``Success@k``; evalfast's ``hit_rate@k``.
    """
    return (_relevant_in_top(judged, k) > 0).astype(np.float64)


def precision(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): P@k = |relevant in top k| / k, k even when fewer docs were retrieved.

    trec_eval ``P.k`` (P_k), ir-measures ``P@k``; evalfast's ``precision@k``.
    """
    return _relevant_in_top(judged, k) / k


def recall(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): R@k = |relevant in top k| / R, R = all relevant docs of the query, retrieved or not; 0 when R
    is 0.

    trec_eval ``recall.k`` (recall_k), ir-measures ``R@k``; evalfast's ``recall@k``.
    """
    prefix = as_prefixes(judged, k)
    return divide_or_zero(prefix.relevant[prefix.column(k)], prefix.n_relevant)


def r_precision(judged: Judged | Prefixes, k: int) -> np.ndarray:
    """float64 (n,): R-Prec = |relevant in top R| / R, R = all relevant docs of the query, on the run cut to k;
    0 when R is 0.

    trec_eval ``Rprec`` (when k is the run's depth), ir-measures ``Rprec`` / ``R-Prec``; evalfast's ``r_precision``.
    Works on any Prefixes: it reads the relevant hits, not a cutoff column.
    """
    prefix = as_prefixes(judged, k)
    cutoff = np.minimum(prefix.n_relevant, k)
    in_top_r = np.bincount(prefix.hit_query, prefix.hit_rank <= cutoff[prefix.hit_query], minlength=cutoff.size)
    return divide_or_zero(in_top_r, prefix.n_relevant)


def judged_rate(marks: Judged | Prefixes, k: int, n_retrieved: np.ndarray) -> np.ndarray:
    """float64 (n,): Judged@k = |judged docs in top k| / min(k, docs retrieved), 0 for a query with nothing
    retrieved.

    ir-measures ``Judged@k`` (trec_eval has no such measure).

    marks: the run judged against qrels in which every judgment is 1, so that its "relevant" docs are the judged
    ones, whatever their label; n_retrieved int64 (n,): the docs each query ranks.
    """
    return divide_or_zero(_relevant_in_top(marks, k), np.minimum(n_retrieved, k))
