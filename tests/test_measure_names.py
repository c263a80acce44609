"""Measure names: every accepted form scores what pytrec_eval (or ir-measures) scores under that name; wrong names
are refused with the accepted forms, by the engine and by the CLI (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import numpy as np
import pytest
import pytrec_eval
from test_cli import assert_user_error, invoke, ok
from test_trec_eval_parity import engine_inputs, for_pytrec_eval, trec_sorted

from evalfast.errors import EvalfastError
from evalfast.metrics.measures import measure_values
from evalfast.metrics.names import ACCEPTED, parse_measure, parse_measures, split_names

# name -> (trec_eval measure, relevance level, -M cutoff or None), or the ir-measures name for Judged
FORMS: dict[str, tuple[str, int, int | None] | str] = {
    **dict.fromkeys(["P@5", "Precision@5", "P.5", "P_5", "precision@5", "P(rel=1)@5"], ("P_5", 1, None)),
    **dict.fromkeys(["R@5", "Recall@5", "recall.5", "recall_5", "recall@5"], ("recall_5", 1, None)),
    **dict.fromkeys(["Success@3", "success.3", "success_3", "hit_rate@3"], ("success_3", 1, None)),
    **dict.fromkeys(["nDCG@5", "NDCG@5", "ndcg_cut.5", "ndcg_cut_5", "ndcg@5"], ("ndcg_cut_5", 1, None)),
    **dict.fromkeys(["nDCG", "NDCG", "ndcg"], ("ndcg", 1, None)),
    **dict.fromkeys(["AP", "MAP", "map"], ("map", 1, None)),
    **dict.fromkeys(["AP@5", "MAP@5", "map_cut.5", "map_cut_5", "map@5"], ("map_cut_5", 1, None)),
    **dict.fromkeys(["RR", "MRR", "recip_rank"], ("recip_rank", 1, None)),
    **dict.fromkeys(["RR@2", "MRR@2", "mrr@2"], ("recip_rank", 1, 2)),
    **dict.fromkeys(["Rprec", "RPrec", "R-Prec", "r_precision"], ("Rprec", 1, None)),
    "P(rel=2)@5": ("P_5", 2, None), "Precision( rel=3 )@5": ("P_5", 3, None), "R(rel=2)@5": ("recall_5", 2, None),
    "Success(rel=2)@3": ("success_3", 2, None), "AP(rel=2)": ("map", 2, None), "AP(rel=2)@5": ("map_cut_5", 2, None),
    "RR(rel=2)": ("recip_rank", 2, None), "RR(rel=2)@2": ("recip_rank", 2, 2), "Rprec(rel=2)": ("Rprec", 2, None),
    "Judged@5": "Judged@5", "Judged": "Judged",
}

# Graded judgments, ties (q1: .5 ranks g f e by name descending), a run longer than 5: every measure above gets a
# different value on at least one query (checked below), so a name read as another measure fails.
QRELS = {"q1": {"a": 3, "b": 1, "c": 0, "e": 2, "f": 1, "h": 1, "u": -1},
         "q2": {"a": 1, "b": 2, "c": 3, "d": 0, "z": 2},
         "q3": {"x": 1, "y": 0}}
RUN = {"q1": {"a": 0.2, "b": 0.9, "c": 0.8, "d": 0.7, "e": 0.5, "f": 0.5, "g": 0.5, "u": 0.6},
       "q2": {"d": 1.0, "a": 0.9, "b": 0.3, "c": 0.2, "y": 0.1, "w": 0.05},
       "q3": {"y": 0.9, "q": 0.8, "r": 0.7, "x": 0.1}}


def expected_values(form: tuple[str, int, int | None] | str) -> dict[str, float]:
    """{query: value} of pytrec_eval's measure at that level on the run cut to -M (ir-measures for Judged)."""
    if isinstance(form, str):  # ir-measures ranks ties by docid ascending: give it trec_eval's ranking
        ranked = {q: {d: -float(i) for i, d in enumerate(trec_sorted(docs))} for q, docs in RUN.items()}
        return {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.parse_measure(form)], QRELS, ranked)}
    name, level, cut = form
    run = {q: {d: docs[d] for d in trec_sorted(docs)[:cut]} for q, docs in RUN.items()} if cut else RUN
    evaluated = pytrec_eval.RelevanceEvaluator(for_pytrec_eval(QRELS), {name}, relevance_level=level).evaluate(run)
    return {q: values[name] for q, values in evaluated.items()}


def test_the_case_tells_every_measure_apart() -> None:
    distinct = set(FORMS.values())
    values = {tuple(round(v, 12) for v in expected_values(form).values()) for form in distinct}
    assert len(values) == len(distinct)


@pytest.mark.parametrize("name", FORMS)
def test_each_form_scores_its_measure(name: str) -> None:
    qrels, doc_ids, queries = engine_inputs(QRELS, RUN)
    measure = parse_measure(name)
    ours = measure_values(doc_ids, qrels, [measure])[measure]
    for query, value in expected_values(FORMS[name]).items():
        assert ours[queries.index(query)] == pytest.approx(value, abs=1e-12), query


def test_the_cli_prints_each_form_as_given(tmp_path: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in QRELS.items() for d, r in docs.items()))
    run = tmp_path / "run.txt"
    run.write_text("".join(f"{q} Q0 {d} 0 {s} t\n" for q, docs in RUN.items() for d, s in docs.items()))
    names = list(FORMS)
    result = ok(invoke("metrics", "--qrels", qrels, "--run", run, "--json", "-",
                       "-m", ",".join(names[:20]), *(option for name in names[20:] for option in ("-m", name))))
    report = json.loads(result.stdout)
    assert list(report["metrics"]) == names
    for name, form in FORMS.items():  # every query is in both files: the mean of pytrec_eval's values
        per_query = expected_values(form)
        assert report["metrics"][name] == pytest.approx(sum(per_query.values()) / len(QRELS), abs=1e-12), name
        assert report["measures"][name] == parse_measure(name).name
    assert report["measures"]["ndcg_cut_5"] == "nDCG@5" and report["measures"]["Precision( rel=3 )@5"] == "P(rel=3)@5"
    rows = result.stderr.splitlines()[6:]  # under the averaging and format lines, a blank line and the header
    assert [row.rsplit(None, 1)[0].strip() for row in rows] == names


@pytest.mark.parametrize(("values", "names"), [
    (["nDCG@10,P(rel=2)@5", "RR  map"], ["nDCG@10", "P(rel=2)@5", "RR", "map"]),
    (["P.5,10", "ndcg_cut.5,10,20"], ["P.5", "P.10", "ndcg_cut.5", "ndcg_cut.10", "ndcg_cut.20"]),
    (["P(rel=2, judged_only=True)@5,AP"], ["P(rel=2, judged_only=True)@5", "AP"]),
    (["P@5", "P@5,RR"], ["P@5", "RR"]),
    (["P@5,10"], ["P@5", "10"]),  # a cutoff list is trec_eval's name.k,k only
])
def test_split_names(values: list[str], names: list[str]) -> None:
    assert split_names(values) == names


def test_a_trec_eval_cutoff_list_scores_each_cutoff() -> None:
    assert [(name, measure.name) for name, measure in parse_measures(["P.5,10"])] == [("P.5", "P@5"), ("P.10", "P@10")]


@pytest.mark.parametrize(("name", "why"), [
    ("bleu", "unknown measure"), ("p@5", "unknown measure"), ("ndcg_cut", "unknown measure"),
    ("recip_rank.10", "unknown measure"), ("10", "unknown measure"), ("P", "P needs a cutoff"),
    ("Success", "Success needs a cutoff"), ("P@0", "cutoff 0"), ("Rprec@10", "Rprec takes no cutoff"),
    ("nDCG(rel=2)@10", "nDCG takes no rel="), ("Judged(rel=2)@10", "Judged takes no rel="),
    ("P(rel=0)@5", "rel=0: give an integer >= 1"), ("P(rel=-1)@5", "rel=-1"),
    ("P(judged_only=True)@5", "the only parameter evalfast takes is rel=N"), ("P@99999999999", "cutoff 99999999999"),
])
def test_wrong_names_are_refused_with_the_accepted_forms(name: str, why: str) -> None:
    with pytest.raises(EvalfastError) as error:
        parse_measure(name)
    assert str(error.value).startswith(f"--measure {name!r}: {why}") and str(error.value).endswith(ACCEPTED)


@pytest.mark.parametrize(("args", "fragments"), [
    (["-m", "nDCG@10,bleu"], ["--measure 'bleu': unknown measure; accepted: ir-measures' P@k"]),
    (["-m", "nDCG(rel=2)@10"], ["nDCG takes no rel=", "trec_eval's P.k"]),
    (["-m", ","], ["--measure: no measure given"]),
    (["-m", "P@5", "--k", "5"], ["give --measure or --k, not both"]),
])
def test_the_cli_refuses_wrong_names_in_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    (tmp_path / "q.txt").write_text("q1 0 a 1\n")
    (tmp_path / "r.txt").write_text("q1 Q0 a 1 1.0 t\n")
    assert_user_error(invoke("metrics", "--qrels", tmp_path / "q.txt", "--run", tmp_path / "r.txt", *args), *fragments)


def test_measure_parameters_are_checked_with_messages() -> None:
    from evalfast.metrics.averaging import AVERAGES, averaged_queries
    from evalfast.metrics.measures import FAMILIES, Measure

    assert Measure("P", 5, rel=1).rel is None and Measure("P", 5, rel=2).rel == 2
    for bad, message in ((lambda: Measure("Q"), f"no measure family 'Q'; the families are {', '.join(FAMILIES)}"),
                         (lambda: Measure("P", 0), "cutoff 0: give an integer >= 1"),
                         (lambda: Measure("P", 2.5), "cutoff 2.5: give an integer >= 1"),
                         (lambda: Measure("P", 5, rel=0), "rel=0: give an integer >= 1"),
                         (lambda: averaged_queries("most", np.zeros(1, np.int64), np.ones(1, bool)),
                          f"averaged_queries: rule 'most' is not one of {', '.join(AVERAGES)}")):
        with pytest.raises(ValueError) as error:
            bad()
        assert str(error.value) == message
    mask, _ = averaged_queries("all", np.ones(2, np.int64), [1, 0])
    assert mask.dtype == bool and mask.tolist() == [True, True]
