"""Metric engine: every metric per query against pytrec_eval, plus hand-worked cases."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import pytrec_eval

from evalfast.data.qrels import Qrels
from evalfast.data.run import descending_name_rank, order_like_trec_eval, pack_rows
from evalfast.errors import EvalfastError
from evalfast.metrics import METRICS, WHOLE_RUN, compute, judge, judged as judged_module, summarize
from evalfast.metrics.averaging import averaged_queries, means
from evalfast.metrics.measures import measure_values
from evalfast.metrics.names import default_measures

KS = (1, 3, 5, 10, 100)
CUTS = ",".join(map(str, KS))
TREC_MEASURES = {f"success.{CUTS}", f"P.{CUTS}", f"recall.{CUTS}", f"ndcg_cut.{CUTS}", f"map_cut.{CUTS}", "Rprec"}
TREC_NAME = {"hit_rate": "success", "precision": "P", "recall": "recall", "ndcg": "ndcg_cut", "map": "map_cut"}

Judgments = dict[str, dict[str, int]]
Scores = dict[str, dict[str, float]]


def trec_sorted(docs: dict[str, float]) -> list[str]:
    """Brute-force trec_eval order: score descending, then doc name descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def to_arrays(qrels: Judgments, run: Scores) -> tuple[Qrels, np.ndarray, list[str], list[str]]:
    """Index the dicts like the TREC readers would: (Qrels, trec-ordered run doc ids, query names, doc names)."""
    queries = list(dict.fromkeys([*qrels, *run]))  # numbered by first appearance, so index order != name order
    docs = list(dict.fromkeys(d for table in (qrels, run) for q in table for d in table[q]))
    qi, di = {q: i for i, q in enumerate(queries)}, {d: i for i, d in enumerate(docs)}
    judged = [(qi[q], di[d], r) for q in qrels for d, r in qrels[q].items()]
    hits = sorted((qi[q], di[d], s) for q in run for d, s in run[q].items())
    row = np.array([h[0] for h in hits], np.int64)
    doc_ids = pack_rows(row, np.array([h[1] for h in hits], np.int64), len(queries), -1)
    scores = pack_rows(row, np.array([h[2] for h in hits]), len(queries), -np.inf)
    qrel_arrays = Qrels(*(np.array(column) for column in zip(*judged)), len(queries), len(docs))
    return qrel_arrays, order_like_trec_eval(doc_ids, scores, descending_name_rank(docs)).doc_ids, queries, docs


def reference(qrels: Judgments, run: Scores) -> dict[str, dict[str, float]]:
    """pytrec_eval values keyed like compute(): {qid: {"name@k" or "r_precision": value}}."""
    evaluated = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    out = {}
    for q, m in evaluated.items():
        out[q] = {"r_precision": m["Rprec"]}
        for name, trec in TREC_NAME.items():
            out[q].update({f"{name}@{k}": m[f"{trec}_{k}"] for k in KS})
    for k in KS:  # mrr@k is recip_rank on the run cut to its top k
        top_k = {q: {d: run[q][d] for d in trec_sorted(run[q])[:k]} for q in evaluated}
        for q, m in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k).items():
            out[q][f"mrr@{k}"] = m["recip_rank"]
    return out


def assert_matches_trec_eval(qrels: Judgments, run: Scores) -> dict[str, np.ndarray]:
    """Compute every metric at every k and compare per query to pytrec_eval to 1e-9; return our values."""
    qrel_arrays, doc_ids, queries, _ = to_arrays(qrels, run)
    ours = compute(judge(doc_ids, qrel_arrays), list(METRICS), KS)
    expected = reference(qrels, run)
    assert set(expected) == set(run) & set(qrels)
    assert set(ours) == set(next(iter(expected.values())))
    for q, values in expected.items():
        for key, value in values.items():
            assert ours[key][queries.index(q)] == pytest.approx(value, abs=1e-9), (q, key)
    return ours


def random_case(seed: int, n_queries: int = 300, n_docs: int = 400) -> tuple[Judgments, Scores]:
    """Graded labels -1/0/1/2, queries without relevant docs, runs of 0-149 docs with scores tied at 1 decimal."""
    rng = np.random.default_rng(seed)
    names = [f"d{i}" for i in rng.permutation(n_docs)]  # d10 < d9 lexically: ties test string order
    qrels: Judgments = {}
    run: Scores = {}
    for q in range(n_queries):
        judged = rng.choice(names, size=rng.integers(1, 20), replace=False)
        labels = rng.choice([-1, 0, 1, 2], size=judged.size, p=[0.1, 0.4, 0.3, 0.2] if q % 7 else [0.5, 0.5, 0, 0])
        qrels[f"q{q}"] = dict(zip(judged.tolist(), labels.tolist()))
        if q % 11:  # some judged queries have no run at all
            pool = np.union1d(judged, rng.choice(names, size=200, replace=False))
            retrieved = rng.choice(pool, size=rng.integers(0, 150), replace=False).tolist()
            run[f"q{q}"] = {d: float(np.round(rng.random() + 0.5 * (d in judged), 1)) for d in retrieved}
    run["unjudged"] = {names[0]: 1.0}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_runs_match_trec_eval(seed: int) -> None:
    assert_matches_trec_eval(*random_case(seed))


# q1: relevant a=2, b=1, e=1 (R = 3); c=0, d=-1 non-relevant. Scores c .9 > a = b = d .5 > f .1, and the .5
# tie is broken by name descending, so the ranking is c d b a f with gains 0 0 1 2 0.
HAND_QRELS: Judgments = {"q1": {"a": 2, "b": 1, "c": 0, "d": -1, "e": 1}, "q2": {"x": 0}, "q3": {"y": 1}}
HAND_RUN: Scores = {"q1": {"a": 0.5, "b": 0.5, "c": 0.9, "d": 0.5, "f": 0.1}, "q2": {"x": 3.0}}
DCG5 = 1 / np.log2(4) + 2 / np.log2(5)  # b at rank 3, a at rank 4
IDCG = [2.0, 2 + 1 / np.log2(3), 2 + 1 / np.log2(3) + 1 / np.log2(4)]  # ideal gains 2 1 1 cut at 1, 2, >= 3
HAND_Q1 = {
    "hit_rate@1": 0, "hit_rate@3": 1, "hit_rate@5": 1,
    "precision@1": 0, "precision@3": 1 / 3, "precision@5": 2 / 5, "precision@10": 2 / 10,
    "recall@1": 0, "recall@3": 1 / 3, "recall@5": 2 / 3,
    "mrr@1": 0, "mrr@3": 1 / 3, "mrr@5": 1 / 3,
    "ndcg@1": 0, "ndcg@3": (1 / np.log2(4)) / IDCG[2], "ndcg@5": DCG5 / IDCG[2],
    "map@3": (1 / 3) / 3, "map@5": (1 / 3 + 2 / 4) / 3,  # precision at ranks 3 and 4, over R = 3
    "r_precision": 1 / 3,  # top R = 3: c d b, one relevant
}


def test_hand_case() -> None:
    ours = assert_matches_trec_eval(HAND_QRELS, HAND_RUN)
    for key, value in HAND_Q1.items():
        assert ours[key][0] == pytest.approx(value, abs=1e-12), key
    assert all(values[1] == 0 and values[2] == 0 for values in ours.values())  # q2: no relevant; q3: no hits
    means, n_evaluated, n_skipped = summarize(ours, np.array([3, 0, 1]))
    assert (n_evaluated, n_skipped) == (2, 1)  # q3 counts as evaluated with 0 (trec_eval -c), q2 is skipped
    assert means["recall@5"] == pytest.approx((2 / 3 + 0) / 2)


def test_graded_ndcg_tie_order() -> None:
    # Tie at 1.0: name descending ranks b (gain 2) before a (gain 1): DCG = 2 + 1/log2(3) = IDCG, so ndcg@2 = 1.
    assert_matches_trec_eval({"q": {"a": 1, "b": 2}}, {"q": {"a": 1.0, "b": 1.0}})
    qrels, doc_ids, _, _ = to_arrays({"q": {"a": 1, "b": 2}}, {"q": {"a": 1.0, "b": 1.0}})
    assert compute(judge(doc_ids, qrels), ["ndcg"], [2])["ndcg@2"][0] == 1.0


def test_judge_is_independent_of_batching() -> None:
    qrels, doc_ids, _, _ = to_arrays(*random_case(3))
    whole = compute(judge(doc_ids, qrels), list(METRICS), KS)
    parts = []
    for rows in np.array_split(np.arange(doc_ids.shape[0]), [7, 130]):
        mine = np.isin(qrels.query, rows)
        chunk = Qrels(qrels.query[mine] - rows[0], qrels.doc[mine], qrels.relevance[mine], rows.size, qrels.n_docs)
        parts.append(compute(judge(doc_ids[rows], chunk), list(METRICS), KS))
    for key, values in whole.items():
        np.testing.assert_allclose(np.concatenate([part[key] for part in parts]), values, rtol=0, atol=1e-12)


def test_judge_arrays() -> None:
    qrels = Qrels(np.array([0, 0, 0, 1]), np.array([2, 0, 1, 2]), np.array([1.0, 3.0, -2.0, 0.0]), 2, 3)
    judged = judge(np.array([[1, 2, 5, -1], [2, -1, -1, -1], [0, -1, -1, -1]]), qrels)  # doc 5 and row 2: unjudged
    np.testing.assert_array_equal(judged.gains, [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(judged.n_relevant, [2, 0, 0])
    np.testing.assert_array_equal(judged.ideal_gains, [[3, 1], [0, 0], [0, 0]])


def lookup_case(seed: int, n_docs: int = 300, depth: int = 40) -> tuple[np.ndarray, Qrels]:
    """A run of 60 rows (the last 5 past the qrels) with -1 padding, ids below -1 and past n_docs, and qrels of 0-30
    judgments per query, many of them retrieved, stored in shuffled order."""
    rng = np.random.default_rng(seed)
    run = np.array([rng.permutation(n_docs + 50)[:depth] for _ in range(60)])
    run[rng.random(run.shape) < 0.2] = -1
    run[rng.random(run.shape) < 0.02] = -7
    pairs = {(q, int(d)) for q in range(55) for d in rng.choice(
        np.concatenate([run[q][(run[q] >= 0) & (run[q] < n_docs)], rng.integers(0, n_docs, 10)]), rng.integers(0, 31))}
    query, doc = np.array(sorted(pairs)).T
    order = rng.permutation(query.size)
    relevance = rng.choice([-1.0, 0.0, 1.0, 2.0, 0.5], query.size)
    return run, Qrels(query[order], doc[order], relevance, 55, n_docs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("offset", [0, 2**40])  # 2**40: doc ids too large for int32 codes
@pytest.mark.parametrize("threads", [1, 3])
def test_row_sort_lookup_matches_search(seed: int, offset: int, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judged_module, "BLOCK_ENTRIES", 300)  # blocks of a few rows
    run, qrels = lookup_case(seed)
    run = np.where(run >= 0, run + offset, run)
    qrels = Qrels(qrels.query, qrels.doc + offset, qrels.relevance, qrels.n_queries, qrels.n_docs + offset)
    with ThreadPoolExecutor(threads) as pool:
        gains, relevant_hits = judged_module._gains_by_row_sort(run, *qrels.by_query(), pool)
    np.testing.assert_array_equal(gains, judged_module._gains_by_search(run, qrels))
    np.testing.assert_array_equal(relevant_hits, np.flatnonzero(gains > 0))
    assert gains.any() and (gains == 0.5).any()


def test_judge_falls_back_to_search() -> None:
    run, qrels = lookup_case(7)
    relevant = np.flatnonzero(qrels.relevance > 0)[0]
    repeated = run.copy()
    repeated[qrels.query[relevant], :2] = qrels.doc[relevant]  # one row ranks a judged doc twice
    deep = Qrels(np.zeros(41, np.int64), np.arange(41), np.ones(41), 1, 41)  # more judgments than the run's depth
    for doc_ids, judgments in ((repeated, qrels), (run[:1], deep)):
        with ThreadPoolExecutor(2) as pool:
            assert judged_module._gains_by_row_sort(doc_ids, *judgments.by_query(), pool) is None
        judged = judge(doc_ids, judgments)
        assert judged.relevant_hits is None
        np.testing.assert_array_equal(judged.gains, judged_module._gains_by_search(doc_ids, judgments))
    np.testing.assert_array_equal(judge(repeated, qrels).gains[qrels.query[relevant], :2], qrels.relevance[relevant])


def test_compute_does_not_depend_on_request_order() -> None:
    qrels, doc_ids, _, _ = to_arrays(*random_case(5))
    judged = judge(doc_ids, qrels)
    forward = compute(judged, list(METRICS), KS)
    backward = compute(judged, list(METRICS)[::-1], KS[::-1] + KS)
    without_hits = compute(dataclasses.replace(judged, relevant_hits=None), list(METRICS), KS)
    one_at_a_time = {key: value for name in METRICS for k in KS for key, value in compute(judged, [name], [k]).items()}
    assert forward.keys() == backward.keys() == without_hits.keys() == one_at_a_time.keys()
    for key, values in forward.items():
        np.testing.assert_array_equal(backward[key], values)
        np.testing.assert_array_equal(without_hits[key], values)
        np.testing.assert_allclose(one_at_a_time[key], values, rtol=0, atol=1e-12)  # other cutoffs: other sums
    for name, metric in METRICS.items():  # each metric also works on the Judged itself
        for k in [doc_ids.shape[1]] if name in WHOLE_RUN else KS:
            key = name if name in WHOLE_RUN else f"{name}@{k}"
            np.testing.assert_allclose(metric(judged, k), forward[key], rtol=0, atol=1e-12)


def test_qrels_rejects_repeated_pair() -> None:
    with pytest.raises(ValueError, match="more than once"):
        Qrels(np.array([0, 0]), np.array([1, 1]), np.array([1.0, 2.0]), 1, 2)


def test_unknown_metric_lists_registry() -> None:
    qrels, doc_ids, _, _ = to_arrays(HAND_QRELS, HAND_RUN)
    with pytest.raises(EvalfastError, match="unknown metric 'bleu'") as error:
        compute(judge(doc_ids, qrels), ["ndcg", "bleu"], [10])
    assert all(name in str(error.value) for name in METRICS)


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_bad_cutoff(k: object) -> None:
    qrels, doc_ids, _, _ = to_arrays(HAND_QRELS, HAND_RUN)
    with pytest.raises(EvalfastError, match="cutoff"):
        compute(judge(doc_ids, qrels), ["ndcg"], [k])


def test_order_like_trec_eval_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    names = [f"d{i}" for i in range(60)] + ["", "D", "é", "z"]
    doc_ids = np.array([rng.permutation(len(names))[:30] for _ in range(50)])
    doc_ids[rng.random(doc_ids.shape) < 0.2] = -1
    scores = np.where(doc_ids >= 0, np.round(rng.random(doc_ids.shape), 1), -np.inf)
    run = order_like_trec_eval(doc_ids, scores, descending_name_rank(names))
    for row, (ids, values) in enumerate(zip(doc_ids, scores)):
        expected = trec_sorted({names[d]: s for d, s in zip(ids, values) if d >= 0})
        assert [names[d] for d in run.doc_ids[row] if d >= 0] == expected
        assert (run.doc_ids[row, len(expected):] == -1).all() and np.isneginf(run.scores[row, len(expected):]).all()
    assert run.doc_ids.dtype == np.int64 and run.scores.dtype == np.float32


def test_descending_name_rank() -> None:
    np.testing.assert_array_equal(descending_name_rank(["b", "a", "c", "aa"]), [1, 3, 0, 2])  # c b aa a


def test_summarize_without_relevant_queries() -> None:
    assert summarize({"ndcg@10": np.zeros(3)}, np.zeros(3, np.int64)) == ({"ndcg@10": 0.0}, 0, 3)


def test_default_measures_are_computes_metrics() -> None:
    # `evalfast metrics` without --measure scores what compute() scores, under the same names
    qrels, doc_ids, _, _ = to_arrays(*random_case(6))
    named = default_measures(KS)
    values = measure_values(doc_ids, qrels, [measure for _, measure in named])
    expected = compute(judge(doc_ids, qrels), list(METRICS), KS)
    assert [name for name, _ in named] == list(expected)
    for name, measure in named:
        np.testing.assert_array_equal(values[measure], expected[name], err_msg=name)


def test_average_judged_is_evals_rule() -> None:
    # --average judged averages what summarize() averages for `evalfast eval` (queries with a relevant document)
    qrels, doc_ids, _, _ = to_arrays(*random_case(7))
    judged = judge(doc_ids, qrels)
    per_query = compute(judged, list(METRICS), KS)
    mask, counts = averaged_queries("judged", qrels.relevant_counts(), (doc_ids >= 0).any(axis=1))
    expected, n_evaluated, n_skipped = summarize(per_query, judged.n_relevant)
    assert means(per_query, mask) == pytest.approx(expected, abs=1e-12)
    assert (counts.queries_averaged, counts.judged_without_relevant) == (n_evaluated, n_skipped)
