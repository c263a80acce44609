"""Statistics behind comparison reports: bootstrap intervals, paired significance tests, Holm correction.

Per-query metric values are float arrays of shape (n_queries,) or (n_metrics, n_queries); every row of a 2-D
array holds the same queries, so resampled or sign-flipped queries are shared by all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Bytes allowed for one chunk-sized (resamples x queries) array; a chunk holds a few of them at once.
_CHUNK_BYTES = 16 * 2**20
# Slack when comparing a sign-flipped mean with the observed one, so the identity flip always counts.
_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class StatSettings:
    """How intervals and tests are computed. Each field's metadata gives its command-line option (help and
    bounds), so the option's default is the field's."""

    confidence: float = 0.95
    resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples.", "min": 10})
    permutations: int = field(default=10000, metadata={"help": "Sign flips of the paired randomization test.",
                                                       "min": 100})
    alpha: float = field(default=0.05, metadata={"help": "Significance level, applied to Holm-corrected p-values.",
                                                 "min": 0, "max": 1, "open": True})
    seed: int = 0


@dataclass(frozen=True)
class Interval:
    """Mean over queries and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedTest:
    """Candidate minus baseline: mean difference, its bootstrap interval and two-sided p-values."""

    difference: float
    low: float
    high: float
    p_randomization: float
    p_t_test: float
    t: float


def _as_rows(values: np.ndarray, name: str = "values") -> np.ndarray:
    """``values`` as a float64 (n_metrics, n_queries) array; ValueError when empty or not 1-D/2-D."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return np.atleast_2d(array)


def _chunk_size(n_queries: int, total: int) -> int:
    """How many resamples (or permutations) of ``n_queries`` to draw at once."""
    return max(1, min(total, _CHUNK_BYTES // (8 * n_queries)))


def _bootstrap_means(rows: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_metrics, resamples) means over queries resampled with replacement, the same indices for every row."""
    n_metrics, n_queries = rows.shape
    means = np.empty((n_metrics, resamples))
    chunk = _chunk_size(n_queries, resamples)
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, n_queries, size=(min(chunk, resamples - start), n_queries))
        for row, row_means in zip(rows, means):
            row_means[start : start + len(indices)] = row[indices].mean(axis=1)
    return means


def _percentile_bounds(means: np.ndarray, confidence: float) -> np.ndarray:
    """(2, n_metrics) lower and upper percentiles of bootstrap means."""
    tail = (1.0 - confidence) / 2.0
    return np.quantile(means, [tail, 1.0 - tail], axis=1)


def _check_settings(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_interval(
    values: np.ndarray, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval | list[Interval]:
    """Percentile bootstrap interval of the mean over queries; one Interval per row for 2-D input."""
    _check_settings(resamples, confidence)
    rows = _as_rows(values)
    bounds = _percentile_bounds(_bootstrap_means(rows, resamples, np.random.default_rng(seed)), confidence)
    intervals = [Interval(float(mean), float(low), float(high)) for mean, low, high in zip(rows.mean(axis=1), *bounds)]
    return intervals[0] if np.ndim(values) == 1 else intervals


def _sign_flip_p_values(differences: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided randomization p-value per row: each query's difference flips sign at random."""
    n_metrics, n_queries = differences.shape
    totals = differences.sum(axis=1)
    threshold = np.abs(totals / n_queries) - _TIE_TOLERANCE
    extreme = np.zeros(n_metrics, dtype=np.int64)
    chunk = _chunk_size(n_queries, permutations)
    bytes_per_row = (n_queries + 7) // 8
    for start in range(0, permutations, chunk):
        size = min(chunk, permutations - start)
        packed = np.frombuffer(rng.bytes(size * bytes_per_row), dtype=np.uint8).reshape(size, bytes_per_row)
        # flipped[i, q] = 1 when permutation i flips query q: its sum is total - 2 * (sum of flipped differences)
        flipped = np.unpackbits(packed, axis=1, count=n_queries).astype(np.float64)
        flipped_means = (totals[:, None] - 2.0 * (differences @ flipped.T)) / n_queries
        extreme += (np.abs(flipped_means) >= threshold[:, None]).sum(axis=1)
    return (1.0 + extreme) / (1.0 + permutations)


def _paired_t(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paired t statistic and two-sided p-value per row (t distribution with n - 1 degrees of freedom)."""
    from scipy.special import stdtr  # scipy takes a fifth of a second to import: only compare needs it

    n_queries = differences.shape[1]
    mean = differences.mean(axis=1)
    if n_queries < 2:
        return np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    constant = np.all(differences == differences[:, :1], axis=1)  # exactly zero variance, free of rounding
    std = np.where(constant, 0.0, differences.std(axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (std / np.sqrt(n_queries))
    p = 2.0 * stdtr(n_queries - 1, -np.abs(t))
    return t, p


def paired_tests(
    baseline: np.ndarray,
    candidate: np.ndarray,
    resamples: int = 1000,
    permutations: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest | list[PairedTest]:
    """Compare candidate with baseline on the same queries; one PairedTest per row for 2-D input.

    The interval is ``bootstrap_interval(candidate - baseline, resamples, confidence, seed)``. When every
    difference is zero both p-values are 1 and t is 0; otherwise a single query gives NaN p-values and t.
    """
    _check_settings(resamples, confidence)
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    baseline_rows = _as_rows(baseline, "baseline")
    candidate_rows = _as_rows(candidate, "candidate")
    if np.shape(baseline) != np.shape(candidate):
        raise ValueError(f"baseline and candidate shapes differ: {np.shape(baseline)} vs {np.shape(candidate)}")
    differences = candidate_rows - baseline_rows
    rng = np.random.default_rng(seed)
    low, high = _percentile_bounds(_bootstrap_means(differences, resamples, rng), confidence)
    p_randomization = _sign_flip_p_values(differences, permutations, rng)
    t, p_t_test = _paired_t(differences)
    if differences.shape[1] < 2:
        p_randomization = np.full_like(p_randomization, np.nan)
    all_zero = np.all(differences == 0.0, axis=1)
    p_randomization[all_zero] = p_t_test[all_zero] = 1.0
    t[all_zero] = 0.0
    tests = [
        PairedTest(float(d), float(lo), float(hi), float(pr), float(pt), float(tt))
        for d, lo, hi, pr, pt, tt in zip(differences.mean(axis=1), low, high, p_randomization, p_t_test, t)
    ]
    return tests[0] if np.ndim(baseline) == 1 else tests


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values in input order; NaN stays NaN and is left out of the family."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    family = len(order)
    stepped = np.maximum.accumulate((family - np.arange(family)) * p[order])
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def format_difference(test: PairedTest, alpha: float, adjusted_p: float) -> str:
    """E.g. "+0.021 [+0.004, +0.038], p = 0.01" or "+0.002 [-0.010, +0.014], not significant (p = 0.61)"."""
    estimate = f"{test.difference:+.3f} [{test.low:+.3f}, {test.high:+.3f}]"
    if adjusted_p < alpha:
        return f"{estimate}, {_format_p(adjusted_p)}"
    return f"{estimate}, not significant ({_format_p(adjusted_p)})"
