"""The index-array types (evalfast.data.run.Run, evalfast.data.qrels.Qrels) and the TREC run reader's grouping and
ties, on inputs the file-based tests do not reach: more than 65,536 queries out of order, ties on the first
document."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalfast.data.qrels import Qrels, pair_keys
from evalfast.data.run import Run, descending_name_rank, pack_rows
from evalfast.data.trec import read_run


def test_run_holds_int64_ids_and_float32_scores_of_one_shape() -> None:
    run = Run(np.array([[3, -1]], np.int32), np.array([[0.5, -np.inf]]))
    assert run.doc_ids.dtype == np.int64 and run.scores.dtype == np.float32
    with pytest.raises(ValueError, match="2-D arrays of one shape"):
        Run(np.zeros((2, 3), np.int64), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-D arrays of one shape"):
        Run(np.zeros(3, np.int64), np.zeros(3))


def test_qrels_are_coerced_and_checked() -> None:
    qrels = Qrels(np.array([0, 1], np.int32), np.array([2, 0], np.int16), np.array([1, 0], np.int8), 2, 3)
    assert (qrels.query.dtype, qrels.doc.dtype, qrels.relevance.dtype) == (np.int64, np.int64, np.float64)
    for query, doc in (([2], [0]), ([-1], [0]), ([0], [3]), ([0], [-1])):
        with pytest.raises(ValueError, match="out of range"):
            Qrels(np.array(query), np.array(doc), np.array([1.0]), 2, 3)
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        Qrels(np.array([0, 1]), np.array([0]), np.array([1.0]), 2, 3)
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        Qrels(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.ones((1, 1)), 2, 3)
    with pytest.raises(ValueError, match="judged more than once"):
        Qrels(np.array([1, 1]), np.array([2, 2]), np.array([1.0, 0.0]), 2, 3)


def test_qrels_by_query_groups_stably_and_counts_relevant() -> None:
    qrels = Qrels(np.array([1, 0, 1, 0]), np.array([0, 1, 2, 0]), np.array([2.0, 0.0, 1.0, -1.0]), 3, 3)
    query, doc, relevance = qrels.by_query()
    assert query.tolist() == [0, 0, 1, 1] and doc.tolist() == [1, 0, 0, 2] and relevance.tolist() == [0, -1, 2, 1]
    assert qrels.relevant_counts().tolist() == [0, 2, 0]
    assert pair_keys(np.array([2]), np.array([1]), 5).tolist() == [11]


def test_pack_rows_lays_each_row_left_aligned() -> None:
    packed = pack_rows(np.array([0, 0, 2]), np.array([5.0, 6.0, 7.0]), 3, -1.0)
    np.testing.assert_array_equal(packed, [[5, 6], [-1, -1], [7, -1]])
    assert pack_rows(np.array([1]), np.array([4]), 2, 0, min_width=3).tolist() == [[0, 0, 0], [4, 0, 0]]
    assert pack_rows(np.array([0, 1]), np.array([1, 2]), 2, 0).tolist() == [[1], [2]]  # full rows: a reshape


def test_descending_name_rank_orders_by_code_point() -> None:
    assert descending_name_rank(["b", "a", "é", "B"]).tolist() == [1, 2, 0, 3]


def test_a_run_of_more_queries_than_sixteen_bits_out_of_order_reads_by_query(tmp_path: Path) -> None:
    """70,000 queries listed in reverse: each row of the Run still holds its own query's documents."""
    n = 70_000
    path = tmp_path / "run.txt"
    path.write_text("".join(f"q{q} Q0 d{q} 1 1 r\nq{q} Q0 e{q} 2 0.5 r\n" for q in range(n - 1, -1, -1)))
    run, queries, docs = read_run(path, [f"q{q}" for q in range(n)], [])
    names = np.asarray(docs)
    assert queries[:3] == ["q0", "q1", "q2"]
    np.testing.assert_array_equal(names[run.doc_ids[:, 0]], [f"d{q}" for q in range(n)])
    np.testing.assert_array_equal(names[run.doc_ids[:, 1]], [f"e{q}" for q in range(n)])


def test_a_tie_with_the_first_document_is_settled_by_docid_descending(tmp_path: Path) -> None:
    """Document 0 ("a", known first) comes after "A" with the same score, in a run written best first: trec_eval
    orders ties by docid descending, so "a" goes before "A"."""
    path = tmp_path / "run.txt"
    path.write_text("q Q0 c 1 2 r\nq Q0 A 2 1 r\nq Q0 a 3 1 r\n")
    run, _, docs = read_run(path, ["q"], ["a"])
    assert [docs[d] for d in run.doc_ids[0]] == ["c", "a", "A"]


def test_write_run_writes_ranks_from_one_and_reads_back(tmp_path: Path) -> None:
    from evalfast.data.trec import write_run

    path = tmp_path / "out" / "run.trec"
    path.parent.mkdir()
    run = Run(np.array([[1, 0], [2, -1]]), np.array([[0.75, 0.25], [1.5, -np.inf]]))
    write_run(path, run, ["q1", "q2"], ["d0", "d1", "dé"], "tag")
    assert path.read_bytes() == "q1 Q0 d1 1 0.75 tag\nq1 Q0 d0 2 0.25 tag\nq2 Q0 dé 1 1.5 tag\n".encode()
    again, queries, docs = read_run(path, ["q1", "q2"], ["d0", "d1", "dé"])
    np.testing.assert_array_equal(again.doc_ids, run.doc_ids)


@pytest.mark.parametrize(("queries", "docs", "message"), [
    (["q 1", "q2"], ["d0", "d1", "d2"], "qid 'q 1' holds whitespace"),
    (["q1", "q2"], ["d0", "d\x01", "d2"], "docid 'd\\\\x01' holds whitespace or a control character"),
])
def test_write_run_refuses_ids_a_run_cannot_carry_and_writes_nothing(tmp_path: Path, queries, docs, message) -> None:
    from evalfast.data.trec import write_run
    from evalfast.errors import EvalfastError

    path = tmp_path / "run.trec"
    run = Run(np.array([[1, 0], [2, -1]]), np.array([[0.75, 0.25], [1.5, -np.inf]]))
    with pytest.raises(EvalfastError, match=f"^{tmp_path}/run.trec: cannot write the run: {message}"):
        write_run(path, run, queries, docs, "tag")
    assert not path.exists()
    with pytest.raises(EvalfastError, match="run tag 'a b': must be one word"):
        write_run(path, run, ["q1", "q2"], ["d0", "d1", "d2"], "a b")
