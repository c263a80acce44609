"""evalfast against pytrec_eval (trec_eval 10's C code) and ir-measures, per query and mean, under every --average
rule, on adversarial cases: queries judged only non-relevant, qrels queries missing from the run, run queries
missing from the qrels, negative and graded judgments, tied scores, runs shorter than k, no query in both files,
and 300 random small cases.

pytrec_eval returns values for the queries in both files only. The means are built from them as trec_eval builds
its own: without -c (--average both) over those queries; with -c (--average all) over every qrels query, a query
absent from the run adding 0 (trec_eval's help for -c: "Missing queries will contribute a value of 0 to all
evaluation measures"); --average judged over the qrels queries with a judgment > 0, absent ones adding 0.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ir_measures
import numpy as np
import pytest
import pytrec_eval
from test_cli import assert_user_error, invoke, ok
from test_metrics import to_arrays

from evalfast.data.qrels import Qrels
from evalfast.metrics.averaging import AVERAGES, averaged_queries, means
from evalfast.metrics.measures import Measure, measure_values

Judgments = dict[str, dict[str, int]]
Scores = dict[str, dict[str, float]]

KS = (1, 3, 5, 10)
MEASURES = [
    *(Measure(family, k, rel) for family in ("P", "R", "Success") for k in KS for rel in (None, 2)),
    *(Measure(family, k) for family in ("nDCG", "Judged") for k in KS),
    *(Measure(family, k, rel) for family in ("AP", "RR") for k in KS for rel in (None, 3)),
    *(Measure(family, None, rel) for family in ("AP", "RR", "Rprec") for rel in (None, 2)),
    Measure("nDCG"), Measure("Judged"),
]
"""P_k, recall_k, success_k, ndcg_cut_k, map_cut_k, recip_rank (run cut to k), at relevance levels 1 and 2 or 3,
ndcg, map, recip_rank, Rprec, and ir-measures' Judged@k."""

TREC_EVAL_NAME = {"P": "P_{k}", "R": "recall_{k}", "Success": "success_{k}", "nDCG": "ndcg_cut_{k}",
                  "AP": "map_cut_{k}"}
WHOLE_RUN_NAME = {"nDCG": "ndcg", "AP": "map", "RR": "recip_rank", "Rprec": "Rprec"}


def trec_sorted(docs: dict[str, float]) -> list[str]:
    """trec_eval's order: score descending, then doc name descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def engine_inputs(qrels: Judgments, run: Scores) -> tuple[Qrels, np.ndarray, list[str]]:
    """(Qrels, trec-ordered run doc ids, query names) numbered as the TREC readers number them: the qrels queries
    in order of first appearance, then the run's others; the Qrels cover the qrels queries only."""
    qrel_arrays, doc_ids, queries, _ = to_arrays(qrels, run)
    return dataclasses.replace(qrel_arrays, n_queries=len(qrels)), doc_ids, queries


def reference(qrels: Judgments, run: Scores, measures: list[Measure]) -> dict[Measure, dict[str, float]]:
    """{measure: {query: value}} from pytrec_eval (ir-measures for Judged), for the queries in both files."""
    out: dict[Measure, dict[str, float]] = {}
    for measure in measures:
        level, k = measure.rel or 1, measure.cutoff
        if measure.family == "Judged":
            # ir-measures ranks ties by docid ascending: give it trec_eval's ranking. It also adds a 0 for each qrels
            # query absent from the run (as -c does); keep the queries in both files, as pytrec_eval does.
            ranked = {q: {d: -float(i) for i, d in enumerate(trec_sorted(docs))} for q, docs in run.items()}
            found = ir_measures.iter_calc([ir_measures.parse_measure(measure.name)], qrels, ranked)
            out[measure] = {m.query_id: m.value for m in found if m.query_id in run}
            continue
        if measure.family == "RR" and k is not None:  # trec_eval -M k: the run cut to its top k
            cut = {q: {d: docs[d] for d in trec_sorted(docs)[:k]} for q, docs in run.items()}
            name, ranked = "recip_rank", cut
        else:
            name = WHOLE_RUN_NAME[measure.family] if k is None else TREC_EVAL_NAME[measure.family].format(k=k)
            ranked = run
        evaluator = pytrec_eval.RelevanceEvaluator(for_pytrec_eval(qrels), {name}, relevance_level=level)
        per_query = evaluator.evaluate(ranked)
        out[measure] = {q: values[name] for q, values in per_query.items()}
    return out


def for_pytrec_eval(qrels: Judgments) -> Judgments:
    """The qrels with every negative judgment written 0: the same to the measures compared with pytrec_eval.

    trec_eval (form_res_rels.c) reads any judgment < 0 as "in the pool but unjudged", which P, recall, success,
    ndcg, map, recip_rank and Rprec treat as not relevant, like 0 (Judged tells them apart; its reference,
    ir-measures, gets the qrels as they are). But trec_eval sizes its per-query arrays by the largest judgment:
    on a query judged only below 0, pytrec_eval crashes (segmentation fault) or never returns.
    """
    return {q: {d: max(r, 0) for d, r in docs.items()} for q, docs in qrels.items()}


def reference_queries(qrels: Judgments, run: Scores, rule: str) -> list[str]:
    """The queries a mean is over: every qrels query (trec_eval -c), those also in the run (trec_eval), or the qrels
    queries with a judgment > 0 (evalfast's judged rule)."""
    return {"all": list(qrels), "both": [q for q in qrels if q in run],
            "judged": [q for q, docs in qrels.items() if any(r > 0 for r in docs.values())]}[rule]


def reference_mean(qrels: Judgments, run: Scores, per_query: dict[str, float], rule: str) -> float:
    """The mean of pytrec_eval's per-query values over rule's queries, a query it did not score adding 0."""
    over = reference_queries(qrels, run, rule)
    return sum(per_query.get(q, 0.0) for q in over) / len(over) if over else float("nan")


def assert_parity(qrels: Judgments, run: Scores, measures: list[Measure] = MEASURES) -> None:
    """Every measure per query, and its mean under every rule, equal to the reference to 1e-9; the counts too."""
    qrel_arrays, doc_ids, queries = engine_inputs(qrels, run)
    ours = measure_values(doc_ids, qrel_arrays, measures)
    expected = reference(qrels, run, measures)
    both = reference_queries(qrels, run, "both")
    for measure in measures:
        assert set(expected[measure]) == set(both), measure
        for q in qrels:
            value = ours[measure][queries.index(q)]
            assert value == pytest.approx(expected[measure].get(q, 0.0), abs=1e-9), (measure.name, q)
    in_run = (doc_ids >= 0).any(axis=1)
    without_relevant = [q for q, docs in qrels.items() if all(r <= 0 for r in docs.values())]
    for rule in AVERAGES:
        mask, counts = averaged_queries(rule, qrel_arrays.relevant_counts(), in_run)
        averaged = means(ours, mask)
        for measure in measures:
            np.testing.assert_allclose(averaged[measure], reference_mean(qrels, run, expected[measure], rule), rtol=0,
                                       atol=1e-9, err_msg=f"{measure.name} --average {rule}")
        assert counts.queries_averaged == len(reference_queries(qrels, run, rule))
        assert (counts.qrels_queries, counts.judged_without_relevant) == (len(qrels), len(without_relevant))
        assert counts.qrels_queries_absent_from_run == len(set(qrels) - set(run))
        assert counts.run_queries_absent_from_qrels == len(set(run) - set(qrels))


# q1: graded, ties (.5: e d c b a by name descending), negative labels; q2: judged only non-relevant; q3: judged
# relevant, absent from the run; q4: only in the run; q5: a run shorter than every k but one.
MIXED_QRELS: Judgments = {"q1": {"a": 3, "b": 1, "c": -1, "d": 2, "f": 1, "z": 0},
                          "q2": {"a": 0, "x": -2}, "q3": {"y": 1}, "q5": {"a": 1, "b": 2}}
MIXED_RUN: Scores = {"q1": {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.5, "g": 0.9, "z": 0.1},
                     "q2": {"x": 2.0, "a": 1.0, "w": 3.0}, "q4": {"a": 1.0}, "q5": {"b": 0.2}}

HAND_CASES = {
    "mixed": (MIXED_QRELS, MIXED_RUN),
    "only-non-relevant": ({"q1": {"a": 0, "b": -1}, "q2": {"c": 1}}, {"q1": {"a": 1.0, "b": 2.0}, "q2": {"c": 1.0}}),
    "only-negative": ({"q1": {"a": -2, "b": -1}, "q2": {"c": 1}}, {"q1": {"a": 1.0, "c": 2.0}, "q2": {"c": 1.0}}),
    "issue-two-queries": ({"q1": {"a": 1}, "q2": {"b": 0}}, {"q1": {"a": 1.0}, "q2": {"b": 1.0}}),  # P_1: 0.5 with -c
    "qrels-query-missing-from-run": ({"q1": {"a": 1}, "q2": {"b": 2}}, {"q1": {"a": 1.0, "b": 0.5}}),
    "run-query-missing-from-qrels": ({"q1": {"a": 1}}, {"q1": {"b": 1.0, "a": 0.5}, "q0": {"a": 1.0}}),
    "negative-relevance": ({"q1": {"a": -1, "b": -2, "c": 1}}, {"q1": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}),
    "graded": ({"q1": {"a": 1, "b": 2, "c": 3, "d": 1}}, {"q1": {"a": 4.0, "b": 3.0, "c": 2.0, "e": 1.0, "d": 0.0}}),
    "ties": ({"q1": {"d9": 1, "d10": 2, "d2": 0}}, {"q1": {"d9": 1.0, "d10": 1.0, "d2": 1.0, "d1": 1.0}}),
    "run-shorter-than-k": ({"q1": {"a": 1, "b": 1, "c": 1}}, {"q1": {"b": 1.0, "x": 0.5}}),
    "no-query-in-both": ({"q1": {"a": 1}, "q2": {"b": 0}}, {"q3": {"a": 1.0}}),
}


@pytest.mark.parametrize("name", HAND_CASES)
def test_hand_case_matches_trec_eval(name: str) -> None:
    assert_parity(*HAND_CASES[name])


def test_the_issue_case_gives_trec_eval_means() -> None:
    qrels, run = HAND_CASES["issue-two-queries"]
    qrel_arrays, doc_ids, _ = engine_inputs(qrels, run)
    p1 = measure_values(doc_ids, qrel_arrays, [Measure("P", 1)])[Measure("P", 1)]
    found = {rule: means({"P@1": p1}, averaged_queries(rule, qrel_arrays.relevant_counts(), doc_ids[:, 0] >= 0)[0])
             for rule in AVERAGES}
    assert found == {"all": {"P@1": 0.5}, "both": {"P@1": 0.5}, "judged": {"P@1": 1.0}}


def test_no_query_in_both_files_has_no_mean_without_c() -> None:
    qrels, run = HAND_CASES["no-query-in-both"]
    qrel_arrays, doc_ids, _ = engine_inputs(qrels, run)
    mask, counts = averaged_queries("both", qrel_arrays.relevant_counts(), (doc_ids >= 0).any(axis=1))
    assert counts.queries_averaged == 0 and np.isnan(means({"P@1": np.zeros(3)}, mask)["P@1"])


def random_case(rng: np.random.Generator) -> tuple[Judgments, Scores]:
    """1-6 queries over 12 docs: labels -2..3 (some queries only <= 0), scores tied at one decimal, runs of 1-12
    docs (often shorter than k), qrels queries left out of the run and run queries left out of the qrels."""
    names = [f"d{i}" for i in rng.permutation(12)]
    qrels: Judgments = {}
    run: Scores = {}
    for q in range(rng.integers(1, 7)):
        if rng.random() < 0.85:
            judged = rng.choice(names, size=rng.integers(1, 8), replace=False).tolist()
            labels = rng.choice([-2, -1, 0, 1, 2, 3], size=len(judged), p=[.1, .1, .3, .25, .15, .1])
            qrels[f"q{q}"] = dict(zip(judged, labels.tolist()))
        if rng.random() < 0.8 or f"q{q}" not in qrels:
            retrieved = rng.choice(names, size=rng.integers(1, 13), replace=False).tolist()
            run[f"q{q}"] = {d: float(np.round(rng.random(), 1)) for d in retrieved}
    if not qrels:
        qrels["q_only"] = {names[0]: 1}
    return qrels, run


def test_random_small_cases_match_trec_eval() -> None:
    rng = np.random.default_rng(15)
    for _ in range(300):
        assert_parity(*random_case(rng))


QRELS_FILE = "".join(f"{q} 0 {d} {r}\n" for q, docs in MIXED_QRELS.items() for d, r in docs.items())
RUN_FILE = "".join(f"{q} Q0 {d} {i + 1} {s} tag\n" for q, docs in MIXED_RUN.items() for i, (d, s) in
                   enumerate(docs.items()))
CLI_NAMES = {"P@5": Measure("P", 5), "ndcg_cut.10": Measure("nDCG", 10), "recip_rank": Measure("RR"),
             "RR@3": Measure("RR", 3), "map": Measure("AP"), "Rprec": Measure("Rprec"),
             "P(rel=2)@5": Measure("P", 5, 2), "Judged@10": Measure("Judged", 10)}


@pytest.mark.parametrize("rule", AVERAGES)
def test_cli_means_match_trec_eval(tmp_path: Path, rule: str) -> None:
    (tmp_path / "qrels.txt").write_text(QRELS_FILE)
    (tmp_path / "run.txt").write_text(RUN_FILE)
    result = ok(invoke("metrics", "--qrels", tmp_path / "qrels.txt", "--run", tmp_path / "run.txt", "--average", rule,
                       "-m", ",".join(CLI_NAMES), "--json", tmp_path / "out.json"))
    report = json.loads((tmp_path / "out.json").read_text())
    expected = reference(MIXED_QRELS, MIXED_RUN, list(CLI_NAMES.values()))
    for name, measure in CLI_NAMES.items():
        mean = reference_mean(MIXED_QRELS, MIXED_RUN, expected[measure], rule)
        assert report["metrics"][name] == pytest.approx(mean, abs=1e-9), name
        assert report["measures"][name] == measure.name
    averaged = {"all": 4, "both": 3, "judged": 3}[rule]
    assert report["average"] == {"rule": rule, "means_over": AVERAGES[rule], "queries_averaged": averaged,
                                 "qrels_queries": 4, "judged_without_relevant": 1, "qrels_queries_absent_from_run": 1,
                                 "run_queries_absent_from_qrels": 1}
    assert result.stdout.startswith(f"average {rule}: {averaged} queries, {AVERAGES[rule]}\nqrels: 4 queries, 1 "
                                    "without a relevant document, 1 absent from the run; run: 1 query absent from the "
                                    "qrels (ignored)\nqrels read as TREC qrels")
    assert report["qrels_format"] == "trec"
    assert [line.split()[0] for line in result.stdout.splitlines()[6:]] == list(CLI_NAMES)  # the names as given


def test_cli_average_defaults_to_trec_eval_c(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text(QRELS_FILE)
    (tmp_path / "run.txt").write_text(RUN_FILE)
    assert ok(invoke("metrics", "--qrels", tmp_path / "qrels.txt", "--run", tmp_path / "run.txt")).stdout.startswith(
        "average all: 4 queries, every query in the qrels, as trec_eval -c")


def test_cli_refuses_a_mean_over_no_query(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text("q1 0 a 1\nq2 0 b 0\n")
    (tmp_path / "run.txt").write_text("q3 Q0 a 1 1.0 tag\n")
    args = ("metrics", "--qrels", tmp_path / "qrels.txt", "--run", tmp_path / "run.txt", "-m", "P@1")
    assert_user_error(invoke(*args, "--average", "both"), "run.txt: none of its 1 queries is in", "'q3'",
                      "--average all")
    assert json.loads(ok(invoke(*args, "--json", "-")).stdout)["metrics"] == {"P@1": 0.0}  # -c: both queries score 0


def test_cli_average_choices_are_the_engine_rules() -> None:
    from evalfast.cli import metrics_command

    option = next(param for param in metrics_command.params if param.name == "average")
    assert tuple(option.type.choices) == tuple(AVERAGES)
