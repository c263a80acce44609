"""compare_results and its document (evalfast.comparison.compare, evalfast.reports.compare_report) on per-query
values made here.

The paired t-test is checked against scipy.stats.ttest_rel, the Holm correction across candidates against
statsmodels' multipletests, the intervals and the randomization test against the definitions computed here; the
per-query differences, and the queries listed as worse and better, against candidate minus baseline.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from evalfast.comparison.compare import StatSettings, compare_results
from evalfast.data.golden import load_golden
from evalfast.data.run import Run
from evalfast.errors import EvalfastError
from evalfast.evaluate import EvalConfig, EvalResult
from evalfast.reports.compare_report import LISTED_QUERIES, compare, comparison_document

from conftest import HANDWRITTEN

METRICS = ("ndcg@10", "mrr@10")
SETTINGS = StatSettings(resamples=2000, permutations=4000, seed=3)


def result(per_query: dict[str, np.ndarray], evaluated: np.ndarray, golden: str = "g") -> EvalResult:
    """An EvalResult holding these per-query values (a run of one hit per query, none of them judged)."""
    n = len(evaluated)
    run = Run(np.zeros((n, 1), np.int64), np.linspace(0, 1, n, dtype=np.float32)[:, None])
    return EvalResult(model="m", model_sha256="0", precision="fp32", device="cpu", golden=golden, protocol="qrels",
                      metrics={name: float(v[evaluated].mean()) for name, v in per_query.items()}, similarity={},
                      per_query=per_query, run=run, counts={}, timings={}, evaluated=evaluated,
                      run_relevance=np.zeros((n, 1)))


def models(n_queries: int, n_models: int, seed: int = 0) -> tuple[list[EvalResult], np.ndarray]:
    rng = np.random.default_rng(seed)
    evaluated = rng.random(n_queries) < 0.85
    base = {name: rng.random(n_queries) for name in METRICS}
    results = [result(base, evaluated)]
    for shift in np.linspace(-0.05, 0.15, n_models - 1):  # candidates worse, alike and better
        results.append(result({name: np.clip(v + shift + rng.normal(0, 0.2, n_queries), 0, 1)
                               for name, v in base.items()}, evaluated))
    return results, evaluated


def test_differences_are_candidate_minus_baseline_over_the_evaluated_queries() -> None:
    results, evaluated = models(60, 3)
    comparison = compare_results(results, ["base", "a", "b"], SETTINGS)
    for pair in comparison.pairs:
        for name in METRICS:
            want = results[pair.candidate].per_query[name][evaluated] - results[0].per_query[name][evaluated]
            np.testing.assert_array_equal(pair.differences[name], want)
            test = next(t.test for t in pair.tests if t.metric == name)
            assert test.difference == pytest.approx(want.mean())
            assert test.low < want.mean() < test.high


def test_t_test_matches_scipy_and_holm_matches_statsmodels() -> None:
    results, evaluated = models(50, 4, seed=1)
    comparison = compare_results(results, ["base", "a", "b", "c"], SETTINGS)
    for name in METRICS:
        p_t = [next(t for t in pair.tests if t.metric == name).test.p_t_test for pair in comparison.pairs]
        scipy_p = [scipy_stats.ttest_rel(r.per_query[name][evaluated], results[0].per_query[name][evaluated]).pvalue
                   for r in results[1:]]
        np.testing.assert_allclose(p_t, scipy_p, rtol=1e-10)
        p_random = [next(t for t in pair.tests if t.metric == name).test.p_randomization for pair in comparison.pairs]
        held = [next(t for t in pair.tests if t.metric == name) for pair in comparison.pairs]
        np.testing.assert_allclose([t.p_randomization_holm for t in held], multipletests(p_random, method="holm")[1])
        np.testing.assert_allclose([t.p_t_test_holm for t in held], multipletests(p_t, method="holm")[1])
        assert [t.significant for t in held] == [t.p_randomization_holm < SETTINGS.alpha for t in held]


def test_randomization_p_value_is_the_share_of_sign_flips_as_extreme() -> None:
    """With 8 queries every one of the 256 sign flips can be enumerated: the sampled p-value comes close to it."""
    rng = np.random.default_rng(4)
    evaluated = np.ones(8, bool)
    base = {name: rng.random(8) for name in METRICS}
    candidate = {name: v + rng.normal(0.2, 0.2, 8) for name, v in base.items()}
    comparison = compare_results([result(base, evaluated), result(candidate, evaluated)], ["base", "a"], SETTINGS)
    signs = np.array(np.meshgrid(*[[-1, 1]] * 8)).reshape(8, -1).T
    for test in comparison.pairs[0].tests:
        d = candidate[test.metric] - base[test.metric]
        exact = np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()) - 1e-12)
        assert test.test.p_randomization == pytest.approx(exact, abs=0.02)


def test_the_document_lists_worse_and_better_queries_by_their_difference() -> None:
    golden = load_golden(HANDWRITTEN)
    results, evaluated = models(golden.n_queries, 2, seed=2)
    document = comparison_document(compare_results(results, ["base", "a"], SETTINGS), golden, "test", "cmd", "d",
                                   (10,), 10, 0.5)
    entry = document["comparisons"][0]
    base, candidate = (r.per_query["ndcg@10"][evaluated] for r in results)
    np.testing.assert_array_equal(entry["per_query_differences"]["values"], candidate - base)
    ids = np.asarray(golden.query_ids)[evaluated]
    difference = dict(zip(ids, candidate - base))
    worse = [row["query_id"] for row in entry["worse"]]
    better = [row["query_id"] for row in entry["better"]]
    assert worse == sorted((q for q in ids if difference[q] < 0), key=difference.get)[:LISTED_QUERIES]
    assert better == sorted((q for q in ids if difference[q] > 0), key=difference.get, reverse=True)[:LISTED_QUERIES]
    for row in entry["worse"] + entry["better"]:
        assert row["candidate"] - row["baseline"] == pytest.approx(difference[row["query_id"]])


def test_compare_is_the_document_of_the_comparison_with_the_configs_settings() -> None:
    """compare(), as `evalfast compare` and `finetune` call it: compare_results' document, dated now (UTC),
    recording the evaluations' cutoffs and RAG settings and the statistics' settings."""
    from datetime import datetime, timezone

    golden = load_golden(HANDWRITTEN)
    results, _ = models(golden.n_queries, 3, seed=4)
    config = EvalConfig(ks=(1, 10), rag_k=3, rag_threshold=0.7)
    document = compare(results, ["base", "a", "b"], golden, "test", config, SETTINGS, "evalfast compare ...")
    expected = comparison_document(compare_results(results, ["base", "a", "b"], SETTINGS), golden, "test",
                                   "evalfast compare ...", document["date"], (1, 10), 3, 0.7)
    assert document == expected
    assert abs(datetime.fromisoformat(document["date"]) - datetime.now(timezone.utc)).total_seconds() < 60
    assert (document["settings"]["ks"], document["settings"]["rag_k"], document["settings"]["rag_threshold"],
            document["settings"]["resamples"], document["settings"]["seed"]) == ([1, 10], 3, 0.7, 2000, 3)


def test_results_of_other_golden_sets_or_queries_are_refused() -> None:
    results, evaluated = models(20, 2)
    with pytest.raises(EvalfastError, match="at least two"):
        compare_results(results[:1], ["base"])
    other = result(results[1].per_query, evaluated, golden="other")
    with pytest.raises(EvalfastError, match="same golden set"):
        compare_results([results[0], other], ["base", "a"])
    with pytest.raises(EvalfastError, match="different queries"):
        compare_results([results[0], result(results[1].per_query, ~evaluated)], ["base", "a"])


def test_relative_change_is_the_change_over_the_baseline() -> None:
    from evalfast.comparison.compare import relative_change

    assert relative_change(0.5, 0.6) == pytest.approx(0.2)
    assert relative_change(0.5, 0.4) == pytest.approx(-0.2)
    assert np.isnan(relative_change(0.0, 0.4))
