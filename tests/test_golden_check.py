"""Checking golden sets: a clean set passes, each planted defect is reported with its code and severity,
near duplicates are found (and distinct documents are not), and the bundled sets have no errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evalfast.data.beir import Judgment, write_beir
from evalfast.data.golden_check import (MAX_LISTED, CheckReport, check_golden, format_report, near_duplicate_pairs,
                                        normalise, report_json)

from conftest import HANDWRITTEN, SEED_CSV, needs_seed_csv, write_file

N_DOCS = 6
WORDS_PER_DOC = 40


def doc_text(i: int) -> str:
    """40 words no other document shares."""
    return " ".join(f"w{i}x{j}" for j in range(WORDS_PER_DOC)) + "."


def one_word_changed(text: str, position: int = WORDS_PER_DOC // 2) -> str:
    words = text.split()
    words[position] = "changed"
    return " ".join(words)


def write_clean_set(folder: Path) -> Path:
    """Six titled documents, three queries, each with a relevant and a non-relevant judgment."""
    corpus = [{"_id": f"d{i}", "title": f"Title {i}", "text": doc_text(i)} for i in range(1, N_DOCS + 1)]
    queries = [{"_id": f"q{i}", "text": f"question number {i}"} for i in range(1, 4)]
    judgments = [Judgment(f"q{i}", f"d{i}", 1) for i in range(1, 4)] + [Judgment(f"q{i}", f"d{i + 3}", 0)
                                                                        for i in range(1, 4)]
    return write_beir(folder, corpus, queries, {"test": judgments})


def append(path: Path, line: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(line if isinstance(line, bytes) else (line + "\n").encode())


def record(**fields: object) -> str:
    return json.dumps(fields)


def corpus(folder: Path) -> Path:
    return folder / "corpus.jsonl"


def queries(folder: Path) -> Path:
    return folder / "queries.jsonl"


def qrels(folder: Path) -> Path:
    return folder / "qrels" / "test.tsv"


def add_query(folder: Path, text: str, score: int = 1) -> None:
    """A new query q9 judged ``score`` for d1 (by default relevant, so that it raises no other finding)."""
    append(queries(folder), record(_id="q9", text=text))
    append(qrels(folder), f"q9\td1\t{score}")


def codes(report: CheckReport) -> set[str]:
    return {f.code for f in report.findings}


def test_clean_set_has_no_findings(tmp_path: Path) -> None:
    report = check_golden(write_clean_set(tmp_path / "golden"))
    assert report.findings == [] and report.exit_status() == 0
    assert report.counts == {"queries": 3, "documents": 6, "judgments": 6, "splits": 1, "errors": 0, "warnings": 0}


# (name, defect, code, severity); a defect raises only its code, except where CASCADES says what follows from it
BEIR_DEFECTS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("missing queries file", lambda f: queries(f).unlink(), "missing-file", "error"),
    ("line not JSON", lambda f: append(corpus(f), "{not json"), "invalid-json", "error"),
    ("line a JSON list", lambda f: append(corpus(f), "[1, 2]"), "invalid-json", "error"),
    ("line not UTF-8", lambda f: append(corpus(f), b'{"_id": "d9", "text": "caf\xe9 au lait"}\n'), "not-utf8",
     "error"),
    ("empty corpus", lambda f: corpus(f).write_text(""), "empty-file", "error"),
    ("missing _id", lambda f: append(corpus(f), record(text="a document without an id")), "missing-id", "error"),
    ("empty _id", lambda f: append(queries(f), record(_id=" ", text="who am i")), "missing-id", "error"),
    ("empty text", lambda f: append(queries(f), record(_id="q9", text="  ")), "missing-text", "error"),
    ("duplicate document id", lambda f: append(corpus(f), record(_id="d2", text="another text")), "duplicate-id",
     "error"),
    ("duplicate query id", lambda f: append(queries(f), record(_id="q1", text="another query")), "duplicate-id",
     "error"),
    ("qrels line with 2 columns", lambda f: append(qrels(f), "q1\td2"), "qrels-columns", "error"),
    ("non-numeric score", lambda f: append(qrels(f), "q1\td2\thigh"), "invalid-score", "error"),
    ("unknown query", lambda f: append(qrels(f), "q99\td1\t1"), "unknown-query", "error"),
    ("unknown document", lambda f: append(qrels(f), "q1\td99\t1"), "unknown-document", "error"),
    ("conflicting judgment", lambda f: append(qrels(f), "q1\td1\t0"), "conflicting-judgment", "error"),
    ("repeated qrels line", lambda f: append(qrels(f), "q1\td1\t1"), "repeated-qrels-line", "error"),
    ("duplicate document text", lambda f: append(corpus(f), record(_id="d9", title="TITLE 1,", text=doc_text(1))),
     "duplicate-document", "warning"),
    ("near-duplicate document", lambda f: append(corpus(f), record(_id="d9", title="Title 1",
                                                                   text=one_word_changed(doc_text(1)))),
     "near-duplicate-document", "warning"),
    ("duplicate query text", lambda f: add_query(f, "Question number 1!"), "duplicate-query", "warning"),
    ("query equal to a document", lambda f: add_query(f, f"Title 2 {doc_text(2)}"), "query-equals-document",
     "warning"),
    ("query without a relevant document", lambda f: add_query(f, "an unanswerable question", score=0),
     "no-relevant-document", "warning"),
]


# with no documents, every judgment names an unknown document, so no query has a relevant one
CASCADES = {"empty-file": {"unknown-document", "no-relevant-document"}}


@pytest.mark.parametrize("defect, code, severity", [pytest.param(d, c, s, id=name) for name, d, c, s in BEIR_DEFECTS])
def test_beir_defect_is_reported(tmp_path: Path, defect: Callable[[Path], None], code: str, severity: str) -> None:
    folder = write_clean_set(tmp_path / "golden")
    defect(folder)
    report = check_golden(folder)
    assert codes(report) == {code} | CASCADES.get(code, set())
    assert {f.severity for f in report.findings if f.code == code} == {severity}
    assert report.exit_status() == (1 if severity == "error" else 0)
    assert all(str(folder) in f.message for f in report.findings)  # every message names the file


def test_no_qrels_files_is_an_error(tmp_path: Path) -> None:
    folder = write_clean_set(tmp_path / "golden")
    qrels(folder).unlink()
    assert "missing-file" in codes(check_golden(folder))


def test_message_names_line_and_fix(tmp_path: Path) -> None:
    folder = write_clean_set(tmp_path / "golden")
    append(qrels(folder), "q1\td99\t1")
    [finding] = check_golden(folder).findings
    assert finding.message == f"{qrels(folder)} line 8: document 'd99' is not in corpus.jsonl; fix or drop the line"


def test_findings_are_capped_per_code_but_counted_exactly(tmp_path: Path) -> None:
    folder = write_clean_set(tmp_path / "golden")
    for i in range(MAX_LISTED + 5):
        append(qrels(folder), f"q1\tmissing{i}\t1")
    report = check_golden(folder)
    assert len(report.errors) == MAX_LISTED + 1
    assert report.errors[-1].message == "... and 5 more unknown-document findings"
    assert report.counts["errors"] == MAX_LISTED + 5
    assert format_report(report).splitlines()[-1].startswith(f"{MAX_LISTED + 5} errors, 0 warnings")


def test_format_report_and_json(tmp_path: Path) -> None:
    folder = write_clean_set(tmp_path / "golden")
    append(qrels(folder), "q1\td1\t1")
    report = check_golden(folder)
    lines = format_report(report).splitlines()
    assert len(lines) == 2 and "repeated-qrels-line" in lines[0]
    assert lines[1] == f"1 error, 0 warnings in {folder} (3 queries, 6 documents, 7 judgments, 1 split)"
    data = json.loads(json.dumps(report_json(report)))
    assert data["exit_status"] == 1 and data["counts"]["errors"] == 1
    assert data["findings"] == [{"severity": "error", "code": "repeated-qrels-line",
                                 "message": report.findings[0].message}]


# --- pairs files -----------------------------------------------------------------------------------------

CLEAN_CSV = f"""\
query,context,relevance
first question,"{doc_text(1)}",1.0
first question,"{doc_text(2)}",0.0
second question,"{doc_text(2)}",1
"""


@pytest.mark.parametrize("content, severity, expected", [
    pytest.param("query,context\na,b\n", "error", {"missing-column"}, id="missing column"),
    pytest.param(CLEAN_CSV + ',"some context",1\n', "error", {"missing-text"}, id="empty query"),
    pytest.param(CLEAN_CSV + "third question,,1\n", "error", {"missing-text"}, id="empty context"),
    pytest.param(CLEAN_CSV + f'second question,"{doc_text(3)}",yes\n', "error", {"invalid-relevance"},
                 id="non-numeric relevance"),
    pytest.param("query,context,relevance\n", "error", {"empty-file"}, id="no rows"),
    pytest.param(CLEAN_CSV + f'first question,"{doc_text(1)}",1\n', "warning", {"repeated-judgment"},
                 id="repeated row"),
    pytest.param(CLEAN_CSV + f'first question,"{doc_text(1)}",0\n', "warning", {"conflicting-pair"},
                 id="conflicting row"),
    pytest.param(CLEAN_CSV + f'third question,"{doc_text(2)}",0\n', "warning", {"no-relevant-document"},
                 id="query without a relevant context"),
])
def test_csv_defect_is_reported(tmp_path: Path, content: str, severity: str, expected: set[str]) -> None:
    report = check_golden(write_file(tmp_path / "golden.csv", content))
    assert codes(report) == expected
    assert {f.severity for f in report.findings} == {severity}
    assert report.exit_status() == (1 if severity == "error" else 0)


def test_clean_csv_and_jsonl_have_no_findings(tmp_path: Path) -> None:
    rows = [{"query": "first question", "context": doc_text(1), "relevance": 1},
            {"query": "second question", "context": doc_text(2), "relevance": 2}]
    jsonl = write_file(tmp_path / "golden.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert check_golden(write_file(tmp_path / "golden.csv", CLEAN_CSV)).findings == []
    report = check_golden(jsonl)
    assert report.findings == [] and report.counts["judgments"] == 2


def test_jsonl_line_without_a_field_is_a_missing_column(tmp_path: Path) -> None:
    path = write_file(tmp_path / "golden.jsonl", json.dumps({"query": "q", "context": "c"}) + "\n")
    assert codes(check_golden(path)) == {"missing-column"}


def test_missing_path_and_unknown_format(tmp_path: Path) -> None:
    assert codes(check_golden(tmp_path / "nowhere.csv")) == {"missing-file"}
    assert codes(check_golden(write_file(tmp_path / "golden.txt", "x"))) == {"unknown-format"}


# --- near duplicates -------------------------------------------------------------------------------------


def random_texts(n: int, seed: int = 0, vocabulary: int = 5000) -> list[str]:
    words = np.random.default_rng(seed).integers(0, vocabulary, (n, WORDS_PER_DOC))
    return [" ".join(f"word{w}" for w in row) for row in words]


def test_near_duplicate_with_one_word_changed_is_found() -> None:
    texts = random_texts(200)
    texts.append(one_word_changed(texts[17]))
    [(first, second, jaccard)] = near_duplicate_pairs([normalise(t) for t in texts])
    assert (first, second) == (17, 200)
    assert jaccard == pytest.approx(35 / 41)  # 38 3-grams each, 3 of them changed


def test_distinct_and_dissimilar_documents_are_not_flagged() -> None:
    texts = random_texts(300)
    texts.append(one_word_changed(one_word_changed(texts[5], 10), 30))  # Jaccard 32 / 44 < 0.8
    texts += ["too short", "too short"]  # no 3-grams: exact duplicates are another check's business
    assert near_duplicate_pairs([normalise(t) for t in texts]) == []


def test_normalise() -> None:
    assert normalise("  The  Dragon's\tHOARD, revisited! ") == "the dragons hoard revisited"
    assert normalise("Café — «naïve» façade") == "café naïve façade"


def test_large_corpus(tmp_path: Path) -> None:
    """20,000 documents with one planted near duplicate: found, and nothing else."""
    texts = random_texts(20_000, seed=1, vocabulary=20_000)
    texts.append(one_word_changed(texts[12_345]))
    corpus_records = [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(texts)]
    folder = write_beir(tmp_path / "large", corpus_records, [{"_id": "q0", "text": "a question"}],
                        {"test": [Judgment("q0", "d0", 1)]})
    report = check_golden(folder)
    assert codes(report) == {"near-duplicate-document"} and report.counts["warnings"] == 1
    assert "'d12345'" in report.findings[0].message and "'d20000'" in report.findings[0].message


# --- the bundled sets ------------------------------------------------------------------------------------


def test_handwritten_set_has_no_errors() -> None:
    report = check_golden(HANDWRITTEN)
    assert report.errors == [] and report.exit_status() == 0
    assert report.counts["queries"] > 0 and report.counts["documents"] > 0


@needs_seed_csv
def test_seed_csv_has_no_errors() -> None:
    report = check_golden(SEED_CSV)
    assert report.errors == [] and report.exit_status() == 0
    assert report.counts["judgments"] == 532


@pytest.mark.parametrize("name, content", [
    ("header.csv", "query,context\nq,c\n"),
    ("twice.csv", "query,context,relevance,query\nq,c,1,q\n"),
    ("fields.csv", "query,context,relevance\nq,c,1\nq,c\n"),
    ("json.jsonl", '{"query": "q", "context": "c", "relevance": 1}\n{not json\n'),
    ("list.jsonl", '{"query": "q", "context": "c", "relevance": 1}\n[1, 2]\n'),
    ("field.jsonl", '{"query": "q", "context": "c", "relevance": 1}\n{"query": "q", "context": "c"}\n'),
])
def test_check_reports_the_problem_load_golden_refuses_in_the_same_words(tmp_path: Path, name: str,
                                                                          content: str) -> None:
    """One reader per format: golden check reads with load_golden's readers in their lenient mode, so the line
    load_golden stops at is among the findings, word for word."""
    from evalfast.data.golden import load_golden
    from evalfast.errors import GoldenSetError

    path = write_file(tmp_path / name, content)
    with pytest.raises(GoldenSetError) as refused:
        load_golden(path)
    assert str(refused.value) in [finding.message for finding in check_golden(path).findings]


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_still_read(tmp_path: Path) -> None:
    rows = [b"query,context,relevance\n", b"caf\xe9,some context,1\n", b"fine,another context,2\n"]
    path = tmp_path / "golden.csv"
    path.write_bytes(b"".join(rows))
    report = check_golden(path)
    assert [f.message for f in report.findings if f.code == "not-utf8"] == [
        f"{path} line 2: not UTF-8 text; save the file as UTF-8"]
    assert report.counts["queries"] == 2  # the bad line is read with U+FFFD, and the next line too
