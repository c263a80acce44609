"""TREC qrels/run files: parsing, trec_eval ordering, user-facing errors, atomic write round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from evalfast.data.run import Run, descending_name_rank, order_like_trec_eval
from evalfast.data.trec import read_qrels, read_run, write_run
from evalfast.errors import EvalfastError
from evalfast.metrics import compute, judge

QRELS = """\
q1 0 a 2
q1 0 b 1
q1 0 c -1

q2 0 a 0
q1 0 b 1
"""
RUN = """\
q1 Q0 c 1 0.5 sys
q1 Q0 a 2 0.5 sys
q1 Q0 z 3 0.9 sys
q3 Q0 a 1 1.0e0 sys
q1 Q0 b 4 0.5 sys
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_qrels(tmp_path: Path) -> None:
    qrels, queries, docs = read_qrels(write(tmp_path, "qrels.txt", QRELS))
    assert (queries, docs) == (["q1", "q2"], ["a", "b", "c"])
    assert (qrels.n_queries, qrels.n_docs) == (2, 3)
    # The blank line is skipped and the identical repeat of "q1 0 b 1" is dropped.
    np.testing.assert_array_equal(qrels.query, [0, 0, 0, 1])
    np.testing.assert_array_equal(qrels.doc, [0, 1, 2, 0])
    np.testing.assert_array_equal(qrels.relevance, [2, 1, -1, 0])
    np.testing.assert_array_equal(qrels.relevant_counts(), [2, 0])


@pytest.mark.parametrize(("text", "read"), [(QRELS, read_qrels), (RUN, lambda path: read_run(path, [], []))],
                         ids=["qrels", "run"])
def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path: Path, text: str, read) -> None:
    # Windows editors save UTF-8 with a BOM; kept, it would rename the first query and lose its judgment
    plain = read(write(tmp_path, "plain.txt", text))
    marked = read(write(tmp_path, "marked.txt", "\ufeff" + text))
    assert marked[1:] == plain[1:]
    for field in ("query", "doc") if hasattr(plain[0], "relevance") else ("doc_ids", "scores"):
        np.testing.assert_array_equal(getattr(marked[0], field), getattr(plain[0], field))


def test_read_run_extends_vocabularies_and_orders_like_trec_eval(tmp_path: Path) -> None:
    run, queries, docs = read_run(write(tmp_path, "run.txt", RUN), ["q1", "q2"], ["a", "b", "c"])
    assert (queries, docs) == (["q1", "q2", "q3"], ["a", "b", "c", "z"])
    # q1: z .9 first, then the .5 tie by name descending c b a; q2 has no lines; the rank column is ignored.
    np.testing.assert_array_equal(run.doc_ids, [[3, 2, 1, 0], [-1] * 4, [0, -1, -1, -1]])
    scores = [[0.9, 0.5, 0.5, 0.5], [-np.inf] * 4, [1, -np.inf, -np.inf, -np.inf]]
    np.testing.assert_array_equal(run.scores, np.array(scores, np.float32))


def test_files_match_trec_eval(tmp_path: Path) -> None:
    qrels_text = "q1 0 a 2\nq1 0 b 1\nq1 0 c -1\nq1 0 y 1\nq2 0 a 0\n"  # pytrec_eval takes no blanks or repeats
    qrels_path, run_path = write(tmp_path, "qrels.txt", qrels_text), write(tmp_path, "run.txt", RUN)
    qrels, queries, docs = read_qrels(qrels_path)
    run, queries, docs = read_run(run_path, queries, docs)
    ours = compute(judge(run.doc_ids, qrels), ["ndcg", "precision", "map"], [3])
    with open(qrels_path) as q, open(run_path) as r:
        measures = {"ndcg_cut.3", "P.3", "map_cut.3"}
        evaluator = pytrec_eval.RelevanceEvaluator(pytrec_eval.parse_qrel(q), measures)
        expected = evaluator.evaluate(pytrec_eval.parse_run(r))
    for key, trec in [("ndcg@3", "ndcg_cut_3"), ("precision@3", "P_3"), ("map@3", "map_cut_3")]:
        assert 0 < ours[key][queries.index("q1")] == pytest.approx(expected["q1"][trec], abs=1e-12)


BAD_QRELS = [
    ("q1 0 a 1\nq1 0 b\n", "line 2: expected 4 columns (qid 0 docid rel), got 3"),
    ("q1 0 a 1\n\nq1 0 b high\n", "line 3: relevance 'high' is not an integer as trec_eval reads it (its atol reads "
                                  "nothing of it, as 0); write a whole number"),
    ("q1 0 a 1.5\n", "line 1: relevance '1.5' is not an integer as trec_eval reads it (its atol reads only '1'"),
    ("q1 0 a 1\nq1 0 b 0\nq1 0 a 2\n", "line 3: query q1 doc a repeats line 1 with 2 instead of 1; keep one line"),
    ("\n  \n", "file is empty"),
]
BAD_RUNS = [
    ("q1 Q0 a 1 0.5 sys\nq1 Q0 b 2 0.4\n", "line 2: expected 6 columns or more (qid Q0 docid rank score tag), got 5"),
    ("q1 Q0 a 1 high sys\n", "line 1: score 'high' is not a number as trec_eval reads it (its atof reads nothing"),
    ("q1 Q0 a 1 nan sys\n", "line 1: score 'nan' is NaN, which cannot be ranked"),
    ("q1 Q0 a 1 0.5 sys\nq2 Q0 a 1 0.5 sys\nq1 Q0 a 2 0.4 sys\n", "line 3: query q1 doc a repeats line 1;"),
    ("", "file is empty"),
]


@pytest.mark.parametrize(("text", "message"), BAD_QRELS)
def test_bad_qrels(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.qrels", text)
    with pytest.raises(EvalfastError) as error:
        read_qrels(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


@pytest.mark.parametrize(("text", "message"), BAD_RUNS)
def test_bad_run(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.run", text)
    with pytest.raises(EvalfastError) as error:
        read_run(path, [], [])
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalfastError, match="missing.qrels: cannot read"):
        read_qrels(tmp_path / "missing.qrels")


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    queries, docs = [f"q{i}" for i in range(20)], [f"doc-{i}" for i in range(500)]
    doc_ids = np.array([rng.choice(500, size=30, replace=False) for _ in queries])
    doc_ids[np.arange(30) >= rng.integers(0, 31, size=(20, 1))] = -1  # ragged rows
    doc_ids[0] = np.arange(30)  # one full row keeps the depth at 30
    scores = np.where(doc_ids >= 0, np.round(rng.standard_normal(doc_ids.shape), 1), -np.inf)  # with ties
    run = order_like_trec_eval(doc_ids, scores, descending_name_rank(docs))
    path = tmp_path / "run.trec"
    path.write_text("old contents\n")
    write_run(path, run, queries, docs, "my-model")
    assert [p.name for p in tmp_path.iterdir()] == ["run.trec"]  # no temporary file left behind
    again, queries_again, docs_again = read_run(path, queries, docs)
    assert (queries_again, docs_again) == (queries, docs)
    np.testing.assert_array_equal(again.doc_ids, run.doc_ids)
    np.testing.assert_array_equal(again.scores, run.scores)


def test_write_run_rejects_bad_tag(tmp_path: Path) -> None:
    run = Run(np.array([[0]]), np.array([[1.0]]))
    with pytest.raises(EvalfastError, match="run tag 'my model'"):
        write_run(tmp_path / "run.trec", run, ["q"], ["d"], "my model")
