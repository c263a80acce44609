"""Side-by-side comparison of two evaluations of the same golden set."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import EvalfastError
from .evaluate import EvalResult


@dataclass(frozen=True)
class MetricDelta:
    """One metric of a baseline (A) and a candidate (B); every metric here is better when higher."""

    metric: str
    a: float
    b: float

    @property
    def absolute(self) -> float:
        return self.b - self.a

    @property
    def relative(self) -> float:
        """(B - A) / A; NaN when A is 0."""
        return self.absolute / self.a if self.a else math.nan

    @property
    def better(self) -> str:
        return "A" if self.a > self.b else "B" if self.b > self.a else "tie"


@dataclass(frozen=True)
class Comparison:
    """Metric-by-metric differences of candidate B against baseline A."""

    a: EvalResult
    b: EvalResult
    deltas: list[MetricDelta]

    def best_relative(self) -> MetricDelta | None:
        """The metric with the highest relative improvement of B over A, if any is defined."""
        defined = [d for d in self.deltas if not math.isnan(d.relative)]
        return max(defined, key=lambda d: d.relative, default=None)


def compare_results(a: EvalResult, b: EvalResult) -> Comparison:
    """Pair up the metrics (ranking, then similarity) of two results on the same golden set and protocol."""
    if (a.golden, a.protocol) != (b.golden, b.protocol):
        raise EvalfastError("compare: both results must come from the same golden set and protocol")
    a_metrics, b_metrics = {**a.metrics, **a.similarity}, {**b.metrics, **b.similarity}
    return Comparison(a, b, [MetricDelta(name, a_metrics[name], b_metrics[name]) for name in a_metrics])
