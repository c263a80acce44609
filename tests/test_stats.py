"""evalfast.comparison.stats against scipy (and statsmodels when present) as independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from evalfast.comparison.stats import Interval, PairedTest, bootstrap_interval, format_difference, holm, paired_tests


def paired_data(n: int, shift: float = 0.0, seed: int = 0, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate per-query scores whose differences are N(shift, 1)."""
    rng = np.random.default_rng(seed)
    shape = (n,) if rows is None else (rows, n)
    baseline = rng.random(shape)
    return baseline, baseline + shift + rng.normal(size=shape)


def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


# --- paired t-test -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 10, 57, 500])
def test_t_test_matches_scipy_ttest_rel(n: int) -> None:
    baseline, candidate = paired_data(n, shift=0.1, seed=n)
    result = paired_tests(baseline, candidate, resamples=10, permutations=10)
    reference = scipy_stats.ttest_rel(candidate, baseline)
    assert result.t == pytest.approx(reference.statistic, rel=1e-10, abs=1e-10)
    assert result.p_t_test == pytest.approx(reference.pvalue, rel=1e-10, abs=1e-10)
    assert result.difference == pytest.approx(np.mean(candidate - baseline), rel=1e-12)


def test_t_test_matches_scipy_on_2d_rows() -> None:
    baseline, candidate = paired_data(40, shift=0.2, seed=3, rows=5)
    candidate[0] += 0.5  # one clearly significant metric, the others around chance
    results = paired_tests(baseline, candidate, resamples=10, permutations=10)
    reference = scipy_stats.ttest_rel(candidate, baseline, axis=1)
    assert len(results) == 5
    np.testing.assert_allclose([r.t for r in results], reference.statistic, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose([r.p_t_test for r in results], reference.pvalue, rtol=1e-10, atol=1e-10)


# --- randomization test ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "shift", "seed"), [(30, 0.35, 1), (100, 0.1, 2), (25, 0.0, 3)])
def test_randomization_matches_scipy_permutation_test(n: int, shift: float, seed: int) -> None:
    baseline, candidate = paired_data(n, shift=shift, seed=seed)
    ours = paired_tests(baseline, candidate, resamples=10, permutations=10_000, seed=seed).p_randomization
    reference = scipy_stats.permutation_test(
        (candidate, baseline),
        mean_difference,
        permutation_type="samples",
        alternative="two-sided",
        vectorized=True,
        n_resamples=100_000,  # the reference's own Monte-Carlo error well below ours
        batch=20_000,
        rng=np.random.default_rng(100 + seed),
    ).pvalue
    assert abs(ours - reference) < 0.02, (ours, reference)  # Monte-Carlo sd of the gap is at most ~0.006


def test_randomization_matches_exact_enumeration_for_tiny_n() -> None:
    differences = np.array([0.30, -0.05, 0.12, 0.40, -0.10, 0.22, 0.08, 0.15])
    signs = 1.0 - 2.0 * ((np.arange(256)[:, None] >> np.arange(8)) & 1)  # all 2^8 sign flips
    flipped_means = (signs * differences).mean(axis=1)
    exact = np.mean(np.abs(flipped_means) >= abs(differences.mean()) - 1e-12)
    result = paired_tests(np.zeros(8), differences, resamples=10, permutations=10_000, seed=5)
    assert 0.01 < exact < 0.2  # a p-value where Monte-Carlo error is informative
    assert abs(result.p_randomization - exact) < 0.02, (result.p_randomization, exact)


# --- bootstrap ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), [(50, 0), (400, 1)])
def test_bootstrap_matches_scipy_percentile_bootstrap(n: int, seed: int) -> None:
    values = np.random.default_rng(seed).exponential(size=n)
    ours = bootstrap_interval(values, resamples=4000, confidence=0.9, seed=seed)
    reference = scipy_stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=4000, confidence_level=0.9, rng=np.random.default_rng(7)
    ).confidence_interval
    standard_error = values.std(ddof=1) / math.sqrt(n)
    assert ours.mean == pytest.approx(values.mean(), rel=1e-12)
    assert ours.low == pytest.approx(reference.low, abs=0.25 * standard_error)
    assert ours.high == pytest.approx(reference.high, abs=0.25 * standard_error)


def test_bootstrap_interval_covers_the_true_mean() -> None:
    true_mean = 1.0
    datasets = np.random.default_rng(11).exponential(true_mean, size=(200, 60))  # skewed, one dataset per row
    intervals = bootstrap_interval(datasets, resamples=1000, confidence=0.95, seed=12)
    coverage = np.mean([interval.low <= true_mean <= interval.high for interval in intervals])
    # percentile bootstrap under-covers a little for skewed data at n = 60; ~3 binomial sd of slack either side
    assert 0.88 <= coverage <= 0.99, coverage


def test_bootstrap_rejects_empty_input() -> None:
    with pytest.raises(ValueError):
        bootstrap_interval(np.array([]))
    with pytest.raises(ValueError):
        paired_tests(np.array([]), np.array([]))


# --- holm ----------------------------------------------------------------------------------------------------------


def test_holm_textbook_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 by monotonicity
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_monotone() -> None:
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    p = np.random.default_rng(4).random(30) ** 3
    adjusted = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)


def test_holm_leaves_nan_out_of_the_family() -> None:
    # family of 2: 0.01*2 = 0.02, 0.04*1 = 0.04
    adjusted = holm([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])
    assert np.isnan(holm([math.nan])).all()
    assert holm([]).shape == (0,)


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(6).random(25) ** 2
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1], rtol=1e-12)


# --- edge cases ----------------------------------------------------------------------------------------------------


def test_identical_runs_are_not_different() -> None:
    scores = np.random.default_rng(8).random(20)
    result = paired_tests(scores, scores.copy())
    assert result == PairedTest(0.0, 0.0, 0.0, 1.0, 1.0, 0.0)


def test_single_query() -> None:
    assert bootstrap_interval(np.array([0.7])) == Interval(0.7, 0.7, 0.7)
    result = paired_tests(np.array([0.2]), np.array([0.5]))
    assert result.difference == pytest.approx(0.3)
    assert result.low == result.high == result.difference
    assert math.isnan(result.p_t_test) and math.isnan(result.p_randomization) and math.isnan(result.t)


@pytest.mark.parametrize("step", [0.25, -0.5])
def test_constant_non_zero_difference(step: float) -> None:
    baseline = np.arange(30) / 64  # dyadic, so candidate - baseline is exactly constant
    result = paired_tests(baseline, baseline + step)
    assert result.p_t_test == 0.0
    assert result.t == math.copysign(math.inf, step)
    assert result.p_randomization == pytest.approx(1 / 10_001)  # only 2 of 2^30 flips are as extreme
    assert result.low == pytest.approx(step) and result.high == pytest.approx(step)


def test_rows_of_2d_input_match_1d_calls() -> None:
    baseline, candidate = paired_data(35, shift=0.15, seed=9, rows=4)
    rows_at_once = paired_tests(baseline, candidate, resamples=500, permutations=2000, seed=3)
    for b, c, together in zip(baseline, candidate, rows_at_once):
        alone = paired_tests(b, c, resamples=500, permutations=2000, seed=3)
        assert (together.difference, together.t, together.p_t_test) == (alone.difference, alone.t, alone.p_t_test)
        assert (together.low, together.high) == (alone.low, alone.high)  # same resampled queries for every row
        assert together.p_randomization == alone.p_randomization
    intervals = bootstrap_interval(candidate, resamples=500, seed=3)
    assert intervals == [bootstrap_interval(row, resamples=500, seed=3) for row in candidate]


def test_paired_interval_is_bootstrap_of_differences() -> None:
    baseline, candidate = paired_data(80, shift=0.1, seed=10)
    result = paired_tests(baseline, candidate, resamples=700, permutations=10, confidence=0.9, seed=4)
    interval = bootstrap_interval(candidate - baseline, resamples=700, confidence=0.9, seed=4)
    assert (result.low, result.high) == (interval.low, interval.high)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        paired_tests(np.zeros(5), np.zeros(6))


# --- power ---------------------------------------------------------------------------------------------------------


def test_half_sd_shift_with_200_queries_is_detected() -> None:
    baseline, candidate = paired_data(200, shift=0.5, seed=13)
    result = paired_tests(baseline, candidate)
    assert result.p_t_test < 0.001 and result.p_randomization < 0.001
    assert result.low > 0.0


# --- formatting ----------------------------------------------------------------------------------------------------


def test_format_significant() -> None:
    test = PairedTest(0.0214, 0.0041, 0.0378, 0.01, 0.012, 2.5)
    assert format_difference(test, alpha=0.05, adjusted_p=0.0104) == "+0.021 [+0.004, +0.038], p = 0.01"


def test_format_not_significant() -> None:
    test = PairedTest(0.002, -0.0104, 0.014, 0.6, 0.61, 0.5)
    expected = "+0.002 [-0.010, +0.014], not significant (p = 0.61)"
    assert format_difference(test, alpha=0.05, adjusted_p=0.6123) == expected


def test_format_tiny_p() -> None:
    test = PairedTest(-0.05, -0.07, -0.03, 1e-4, 1e-9, -6.0)
    assert format_difference(test, alpha=0.05, adjusted_p=2e-9) == "-0.050 [-0.070, -0.030], p < 0.001"


def test_settings_and_inputs_are_checked_with_messages_naming_them() -> None:
    with pytest.raises(ValueError, match="permutations must be >= 1, got 0"):
        paired_tests(np.ones(3), np.ones(3), permutations=0)
    with pytest.raises(ValueError, match="baseline is empty"):
        paired_tests(np.array([]), np.ones(3))
    with pytest.raises(ValueError, match="candidate must be 1-D or 2-D"):
        paired_tests(np.ones(3), np.ones((1, 1, 3)))


def test_resamples_and_confidence_bounds_are_checked_at_their_edges() -> None:
    values = np.arange(5.0)
    assert bootstrap_interval(values, resamples=1, confidence=0.5).low <= 4  # one resample is allowed
    for resamples, confidence, message in ((0, 0.95, "resamples must be >= 1, got 0"),
                                           (10, 0.0, r"confidence must be in \(0, 1\), got 0.0"),
                                           (10, 1.0, r"confidence must be in \(0, 1\), got 1.0"),
                                           (10, 1.5, r"confidence must be in \(0, 1\), got 1.5")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            bootstrap_interval(values, resamples=resamples, confidence=confidence)


def test_holm_accepts_python_lists_of_integers_and_keeps_ties_in_order() -> None:
    adjusted = holm([0, 1, 0])
    assert adjusted.dtype == np.float64 and adjusted.tolist() == [0.0, 1.0, 0.0]
