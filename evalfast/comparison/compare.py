"""Comparing evaluations of one golden set: intervals for every model, paired tests of each against the first.

Every mean metric gets a percentile bootstrap interval over queries. Each candidate is compared with the
baseline (the first model) query by query: the mean difference with its bootstrap interval, a paired
randomization test and a paired t-test. For each metric the p-values are Holm-corrected across the candidates,
and a difference is called significant when its corrected randomization p-value is below ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalfast.comparison.stats import Interval, PairedTest, StatSettings, bootstrap_interval, holm, paired_tests
from evalfast.errors import EvalfastError
from evalfast.evaluate import EvalResult


@dataclass(frozen=True)
class MetricTest:
    """One metric of a candidate against the baseline."""

    metric: str
    test: PairedTest
    p_randomization_holm: float
    p_t_test_holm: float
    significant: bool


@dataclass(frozen=True)
class PairComparison:
    """A candidate against the baseline: a test per metric, and per-query differences."""

    baseline: int  # index into Comparison.results
    candidate: int
    tests: list[MetricTest]
    differences: dict[str, np.ndarray]  # metric -> float64 (n_evaluated,) candidate - baseline


@dataclass(frozen=True)
class Comparison:
    """Intervals per model and metric, and each candidate's paired tests against the baseline."""

    names: list[str]
    results: list[EvalResult]
    metric_names: list[str]  # per-query metrics present in every result, ranking then RAG-style
    intervals: list[dict[str, Interval]]  # per model: metric -> interval of the mean
    pairs: list[PairComparison]
    settings: StatSettings

    @property
    def evaluated(self) -> np.ndarray:
        """bool (n,): the queries (or rows) every statistic is taken over."""
        return self.results[0].evaluated


def metric_intervals(result: EvalResult, names: list[str], settings: StatSettings) -> dict[str, Interval]:
    """Bootstrap interval of each mean metric over the evaluated queries (the same resamples for all)."""
    rows = np.stack([result.per_query[name][result.evaluated] for name in names])
    return dict(zip(names, bootstrap_interval(rows, settings.resamples, settings.confidence, settings.seed)))


def _check_comparable(results: list[EvalResult]) -> None:
    if len(results) < 2:
        raise EvalfastError(f"compare needs at least two --model options; got {len(results)}")
    first = results[0]
    for result in results[1:]:
        if (result.golden, result.protocol) != (first.golden, first.protocol):
            raise EvalfastError("compare: every result must come from the same golden set and protocol")
        if not np.array_equal(result.evaluated, first.evaluated):
            raise EvalfastError("compare: the results score different queries; evaluate them on the same split")


def compare_results(results: list[EvalResult], names: list[str], settings: StatSettings = StatSettings()) -> Comparison:
    """Intervals for every model, and paired tests of ``results[1:]`` against ``results[0]``."""
    _check_comparable(results)
    metric_names = [name for name in results[0].per_query if all(name in r.per_query for r in results)]
    evaluated = results[0].evaluated
    rows = [np.stack([r.per_query[name][evaluated] for name in metric_names]) for r in results]
    intervals = [metric_intervals(r, metric_names, settings) for r in results]
    raw = [paired_tests(rows[0], candidate_rows, settings.resamples, settings.permutations, settings.confidence,
                        settings.seed) for candidate_rows in rows[1:]]
    # Holm across the candidates, metric by metric
    p_random = np.array([[t.p_randomization for t in tests] for tests in raw])
    p_t = np.array([[t.p_t_test for t in tests] for tests in raw])
    holm_random = np.stack([holm(column) for column in p_random.T], axis=1)
    holm_t = np.stack([holm(column) for column in p_t.T], axis=1)
    pairs = []
    for i, tests in enumerate(raw):
        metric_tests = [MetricTest(name, test, float(holm_random[i, m]), float(holm_t[i, m]),
                                   bool(holm_random[i, m] < settings.alpha))
                        for m, (name, test) in enumerate(zip(metric_names, tests))]
        differences = {name: rows[i + 1][m] - rows[0][m] for m, name in enumerate(metric_names)}
        pairs.append(PairComparison(0, i + 1, metric_tests, differences))
    return Comparison(names, results, metric_names, intervals, pairs, settings)


def relative_change(baseline: float, candidate: float) -> float:
    """(candidate - baseline) / baseline; NaN when the baseline is 0."""
    return (candidate - baseline) / baseline if baseline else math.nan
