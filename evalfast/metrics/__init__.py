"""Ranking metrics with trec_eval semantics, vectorised over all queries.

Per-query functions take a Judged (see judge) and a cutoff k and return float64 (n_queries,). They also take
the Prefixes of a Judged (see prefixes), which hold what every metric needs at several cutoffs at once: compute()
builds them once and reads every metric at every k from them.
Relevant means relevance > 0; gains are linear (the relevance value, negatives count as 0).
Measures as ir-measures and trec_eval name them (relevance levels, Judged@k) are in measures and names; which
queries a mean is over (trec_eval's rules with and without -c) in averaging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from evalfast.errors import EvalfastError
from evalfast.metrics.counts import hit_rate, precision, r_precision, recall
from evalfast.metrics.judged import Judged, Prefixes, judge, prefixes
from evalfast.metrics.measures import Measure, measure_values
from evalfast.metrics.ndcg import ndcg
from evalfast.metrics.ranks import average_precision, reciprocal_rank

__all__ = [
    "METRICS",
    "WHOLE_RUN",
    "Judged",
    "Measure",
    "Prefixes",
    "average_precision",
    "compute",
    "hit_rate",
    "judge",
    "measure_values",
    "ndcg",
    "precision",
    "prefixes",
    "r_precision",
    "recall",
    "reciprocal_rank",
    "summarize",
]

METRICS: dict[str, Callable[[Judged | Prefixes, int], np.ndarray]] = {
    "hit_rate": hit_rate,
    "precision": precision,
    "recall": recall,
    "mrr": reciprocal_rank,
    "ndcg": ndcg,
    "map": average_precision,
    "r_precision": r_precision,
}
"""Registry: metric name -> function(judged or its prefixes, k) -> float64 (n_queries,) per-query values."""

WHOLE_RUN: frozenset[str] = frozenset({"r_precision"})
"""Metrics computed once over the run's full depth and keyed by bare name instead of name@k."""


def compute(judged: Judged, names: Sequence[str], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-query float64 (n_queries,) values keyed "name@k" for each cutoff k, or "name" for WHOLE_RUN metrics."""
    for name in names:
        if name not in METRICS:
            raise EvalfastError(f"unknown metric {name!r}: use one of {', '.join(METRICS)}")
    for k in ks:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise EvalfastError(f"cutoff k={k!r}: every cutoff must be an integer >= 1")
    prefix = prefixes(judged, ks)
    values: dict[str, np.ndarray] = {}
    for name in names:
        if name in WHOLE_RUN:
            values[name] = METRICS[name](prefix, judged.gains.shape[1])
        else:
            values.update({f"{name}@{k}": METRICS[name](prefix, k) for k in ks})
    return values


def summarize(per_query: dict[str, np.ndarray], n_relevant: np.ndarray) -> tuple[dict[str, float], int, int]:
    """Means over queries with n_relevant > 0 (int64 (n_queries,), or a bool mask of the queries to average),
    plus (n_evaluated, n_skipped).

    Means are 0.0 when no query has a relevant doc, as trec_eval reports for an empty average.
    """
    evaluated = np.flatnonzero(np.asarray(n_relevant) > 0)
    means = {key: float(values.take(evaluated).sum() / max(evaluated.size, 1)) for key, values in per_query.items()}
    return means, evaluated.size, int(np.size(n_relevant) - evaluated.size)
