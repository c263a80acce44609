"""The TREC and BEIR readers against trec_eval's own rules, on adversarial files.

A reference reader written here, one line at a time in plain Python, follows trec_eval 10's C readers
(get_qrels.c, get_trec_results.c): C whitespace (bytes.split) separates fields, a first field starting with "#"
makes a comment line, blank lines are skipped, and every number is read by libc's own strtod / strtol (through
ctypes), accepted only when C reads the whole field (evalfast also refuses hexadecimal and NaN scores, and
relevances of more than 18 digits). For every file both accept, evalfast must read what the reference reads (names
in order of first appearance, judgments, scores, trec_eval's ranking), and the per-query measures evalfast computes
from its own parse must equal pytrec_eval's (trec_eval's C engine) on the reference's, to 1e-9. Every file the
reference refuses, evalfast refuses through the CLI: exit 2 and one line naming the file and the line.

trec_eval's own test files (test/qrels.test.with-comments, qrels.comment.test, results.comment.test, results.trunc)
are not copied here, as their licence is for research use only; the files below reproduce what they exercise:
comment lines at the top and between judgments, a "#" inside a docno, tab-separated results with spaces before the
score, fields after the run tag.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import random
import sys
import threading
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from test_cli import assert_user_error, invoke

from evalfast.data import trec_parse
from evalfast.data.texts import not_utf8
from evalfast.data.trec import TREC_RUN, read_qrels, read_qrels_file, read_run
from evalfast.data.trec_parse import c_reads
from evalfast.errors import EvalfastError
from evalfast.metrics import compute, judge

from conftest import HANDWRITTEN, REPO, write_file

pytestmark = pytest.mark.usefixtures("table_reader")  # every test twice: the native reader, then the numpy one
LIBC = ctypes.CDLL(None)
LIBC.strtod.restype, LIBC.strtod.argtypes = ctypes.c_double, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
LIBC.strtol.restype = ctypes.c_long
LIBC.strtol.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
BOM = b"\xef\xbb\xbf"
TREC_MEASURES = {"P.5", "ndcg_cut.10", "map", "recip_rank", "recall.10"}


# --- the reference: trec_eval's rules, one line at a time ----------------------------------------------------


class Refused(Exception):
    """The reference refuses the file (the argument says what it refuses)."""


def c_read(field: bytes, integer: bool) -> tuple[float | int, int]:
    """libc's strtol (base 10) or strtod of the field: (value, bytes it read)."""
    buffer, end = ctypes.create_string_buffer(field), ctypes.c_void_p()
    value = LIBC.strtol(buffer, ctypes.byref(end), 10) if integer else LIBC.strtod(buffer, ctypes.byref(end))
    return value, end.value - ctypes.addressof(buffer)


def relevance(field: bytes) -> int:
    value, read = c_read(field, integer=True)
    if read != len(field) or len(field.lstrip(b"+-")) > 18:
        raise Refused(field)
    return value


def score(field: bytes) -> float:
    value, read = c_read(field, integer=False)
    if read != len(field) or value != value or field.lstrip(b"+-")[:2].lower() == b"0x":
        raise Refused(field)
    return value


def name(field: bytes) -> str:
    text = field.decode("utf-8")  # UnicodeDecodeError is a refusal too
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in text):
        raise Refused(field)
    return text


def data_lines(raw: bytes) -> list[list[bytes]]:
    """Each data line's fields: C whitespace separates them, blank lines and '#' comment lines are skipped."""
    return [fields for line in raw.removeprefix(BOM).split(b"\n") if (fields := line.split())
            and not fields[0].startswith(b"#")]


def reference_qrels(raw: bytes) -> tuple[dict[str, dict[str, int]], list[str], list[str], str]:
    """(judgments, query names, doc names in order of first appearance, format)."""
    lines = data_lines(raw)
    if not lines or len(lines[0]) not in (3, 4):
        raise Refused("no data or an unknown layout")
    width = len(lines[0])
    if width == 3 and lines[0][2].lower() == b"score":
        lines = lines[1:]
    judgments: dict[str, dict[str, int]] = {}
    queries, docs = {}, {}
    for fields in lines:
        if len(fields) != width:
            raise Refused(fields)
        qid, docid, rel = (fields[0], fields[2], fields[3]) if width == 4 else fields
        value, query, doc = relevance(rel), name(qid), name(docid)
        queries.setdefault(query, None), docs.setdefault(doc, None)
        if judgments.setdefault(query, {}).setdefault(doc, value) != value:
            raise Refused(fields)
    if not lines:
        raise Refused("no judgments")
    return judgments, list(queries), list(docs), {4: "trec", 3: "beir-tsv"}[width]


def reference_run(raw: bytes, queries: list[str], docs: list[str]) -> tuple[dict[str, dict[str, float]], list[str],
                                                                            list[str]]:
    """(scores, query names, doc names: the given ones, then new ones in order of first appearance)."""
    lines = data_lines(raw)
    if not lines:
        raise Refused("no data")
    run: dict[str, dict[str, float]] = {}
    query_order, doc_order = dict.fromkeys(queries), dict.fromkeys(docs)
    for fields in lines:
        if len(fields) < 6:
            raise Refused(fields)
        value, query, doc = score(fields[4]), name(fields[0]), name(fields[2])
        query_order.setdefault(query, None), doc_order.setdefault(doc, None)
        if doc in run.setdefault(query, {}):
            raise Refused(fields)
        run[query][doc] = value
    return run, list(query_order), list(doc_order)


def trec_eval_ranking(scores: dict[str, float]) -> list[str]:
    """trec_eval's order: score descending, ties by docid descending (strcmp: UTF-8 byte order)."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0].encode()), reverse=True)]


# --- files ---------------------------------------------------------------------------------------------------

JUDGMENTS = [("301", "CR93E-10279", "0"), ("301", "CR93E-10505", "0"), ("301", "CR93E-1282", "1"),
             ("301", "CR#93E-1860", "0"), ("301", "FBIS3-10082", "1"), ("301", "FBIS3-10169", "2"),
             ("301", "FT921-5", "1"), ("302", "FBIS3-10082", "0"), ("302", "FT921-5", "2"), ("302", "LA010189-1", "1"),
             ("302", "naïve-doc", "1"), ("302", "中文-7", "2"), ("303", "CR93E-1282", "0"), ("304", "FT921-9", "1")]
RESULTS = [("301", "CR93E-1282", "2.129133"), ("301", "FBIS3-10082", "1.724760"), ("301", "CR#93E-1860", "2.129133"),
           ("301", "FT921-5", "1.912871"), ("301", "LA010189-1", "1.912871"), ("301", "CR93E-10279", "0.5"),
           ("301", "FBIS3-10169", "0.4"), ("301", "XX-1", "3.5"), ("302", "FT921-5", "0.25"),
           ("302", "中文-7", "0.25"), ("302", "naïve-doc", "0.25"), ("302", "FBIS3-10082", "1"),
           ("302", "LA010189-1", "0.125"), ("302", "CR93E-10505", "-3"), ("303", "CR93E-1282", "7"),
           ("305", "FT921-9", "1")]


def qrels_text(rows=JUDGMENTS, sep: str = " ", end: str = "\n") -> str:
    return "".join(sep.join((q, "0", d, r)) + end for q, d, r in rows)


def run_text(rows=RESULTS, sep: str = " ", end: str = "\n", after: str = "STANDARD") -> str:
    return "".join(sep.join((q, "Q0", d, str(rank), s, after)) + end for rank, (q, d, s) in enumerate(rows, 1))


def replaced(rows: list[tuple[str, ...]], values: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The rows with the last field of the first ones replaced by ``values``."""
    return [(*row[:-1], value) for row, value in zip(rows, [*values, *(row[-1] for row in rows[len(values):])])]


def with_scores(*scores: str) -> str:
    return run_text(replaced(RESULTS, scores))


def with_relevances(*labels: str) -> str:
    return qrels_text(replaced(JUDGMENTS, labels))


def commented(text: str, comments: list[tuple[int, str]]) -> str:
    """The text with comment lines inserted before the given (0-based) lines."""
    lines = text.splitlines(keepends=True)
    for at, comment in sorted(comments, reverse=True):
        lines.insert(at, comment + "\n")
    return "".join(lines)


BEIR_QRELS = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in JUDGMENTS)
ACCEPTED = {
    # what trec_eval's qrels.test.with-comments and results.comment.test hold: comments at the top, between lines,
    # before a docno holding "#"; a comment of four (qrels) or six (run) fields is no query named "#"
    "comment lines": (commented(qrels_text(), [(0, "# comment here"), (2, "# and comment here"), (3, "# a b c"),
                                               (3, "#"), (9, "   # indented, four fields")]),
                      commented(run_text(sep="\t"), [(0, "# This is my favorite run"), (0, "# Q0 d 1 9.5 tag"),
                                                     (5, "# And has another comment here."), (16, "#end")])),
    "blank and whitespace lines": ("\n \n" + qrels_text().replace("302 0 FT921-5", "\n\t\n302 0 FT921-5") + "\n\n",
                                   "\n" + run_text().replace("\n302", "\n   \n302") + " \t \n"),
    # results.comment.test: tabs, and spaces before the score
    "tabs and runs of spaces": (qrels_text(sep="\t"), run_text(sep="\t").replace("\t2.", "\t  2.")),
    "leading and trailing whitespace": (qrels_text(sep="  ").replace("30", " \t30"),
                                        run_text(end="  \t\n").replace("30", "  30")),
    "every C whitespace separates": (qrels_text(sep="\v"), run_text(sep=" \f\r\t")),
    # results.trunc: fields after the run tag
    "fields after the run tag": (qrels_text(), run_text(after="STANDARD extra 12 fields\tafter")),
    "CRLF": (qrels_text(end="\r\n"), run_text(end="\r\n")),
    "byte-order marks": ("\ufeff" + qrels_text(), "\ufeff" + run_text()),
    "no final newline": (qrels_text().rstrip("\n"), run_text().rstrip("\n")),
    "BEIR TSV with a header": (BEIR_QRELS, run_text()),
    "BEIR TSV without a header, CRLF": (BEIR_QRELS.split("\n", 1)[1].replace("\n", "\r\n"), run_text()),
    "plain C numbers in odd spellings": (with_relevances("+1", "-1", "007", "-0", "+0002", "2", "00"),
                                         with_scores("+1", ".5", "1e3", "1.", "-0", "007", "1E-3", "+.5e+2", "-.25",
                                                     "0.30000000000000004", "123456789012345678901234567890",
                                                     "0000000000000000000000001.5", "1.7976931348623157e308")),
    "huge and tiny exponents, infinities": (qrels_text(), with_scores("1e400", "-1e400", "1e-400", "4.9e-324",
                                                                      "inf", "-Infinity", "+INF", "1e-0000000000005",
                                                                      "2e22", "3e-22", "9007199254740993")),
    "ties everywhere": (qrels_text(), with_scores(*["1.0"] * 16)),
    "repeated identical judgments": (qrels_text(JUDGMENTS + JUDGMENTS[:3]), run_text()),
    "one query, one line": ("q 0 d 1\n", "q Q0 d 1 0 run\n"),
}


def pairs(tmp_path: Path, qrels: str | bytes, run: str | bytes) -> tuple[Path, Path]:
    return write_file(tmp_path / "q.txt", qrels), write_file(tmp_path / "r.txt", run)


def encoded(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode()


def check_against_references(qrels_path: Path, run_path: Path) -> None:
    """evalfast reads what the reference reads, and scores it as pytrec_eval scores the reference's reading."""
    judgments, queries, docs, form = reference_qrels(qrels_path.read_bytes())
    results, run_queries, run_docs = reference_run(run_path.read_bytes(), queries, docs)
    read = read_qrels_file(qrels_path)
    assert (read.query_names, read.doc_names, read.format) == (queries, docs, form)
    ours = {}
    for q, d, r in zip(read.qrels.query.tolist(), read.qrels.doc.tolist(), read.qrels.relevance.tolist()):
        ours.setdefault(queries[q], {})[docs[d]] = r
    assert ours == judgments
    run, our_queries, our_docs = read_run(run_path, read.query_names, read.doc_names)
    assert (our_queries, our_docs) == (run_queries, run_docs)
    for query, scores in results.items():
        row = run.doc_ids[run_queries.index(query)]
        assert [run_docs[d] for d in row[row >= 0]] == trec_eval_ranking(scores), query
        with np.errstate(over="ignore"):
            expected = np.array([scores[run_docs[d]] for d in row[row >= 0]], np.float32)
        np.testing.assert_array_equal(run.scores[run_queries.index(query)][row >= 0], expected)
    assert all(run.doc_ids[run_queries.index(q)][0] < 0 for q in run_queries if q not in results)

    expected = pytrec_eval.RelevanceEvaluator(judgments, TREC_MEASURES).evaluate(results)
    depth = run.doc_ids.shape[1]
    values = compute(judge(run.doc_ids, read.qrels), ["precision", "ndcg", "map", "mrr", "recall"], [5, 10, depth])
    names = {"P_5": "precision@5", "ndcg_cut_10": "ndcg@10", "map": f"map@{depth}", "recip_rank": f"mrr@{depth}",
             "recall_10": "recall@10"}
    checked = 0
    for query, theirs in expected.items():
        if any(label > 0 for label in judgments[query].values()):
            for trec, key in names.items():
                assert values[key][run_queries.index(query)] == pytest.approx(theirs[trec], abs=1e-9), (query, trec)
            checked += 1
    assert checked


@pytest.mark.parametrize(("qrels", "run"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_files_read_as_trec_eval_reads_them(tmp_path: Path, qrels: str, run: str) -> None:
    check_against_references(*pairs(tmp_path, qrels, run))


@pytest.mark.parametrize(("qrels", "run"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_chunks_and_blocks_of_a_few_bytes_read_the_same(tmp_path: Path, monkeypatch, qrels: str, run: str) -> None:
    """Tokenised 7 bytes at a time (each chunk stretched to its line's end) and parsed a row or two at a time."""
    monkeypatch.setattr(trec_parse, "CHUNK", 7)
    monkeypatch.setattr(trec_parse, "BLOCK", 20)
    check_against_references(*pairs(tmp_path, qrels, run))


def test_the_bundled_beir_qrels_score_as_pytrec_eval_scores_them(tmp_path: Path) -> None:
    qrels = HANDWRITTEN / "qrels" / "test.tsv"
    judged = [line.split("\t") for line in qrels.read_text().splitlines()[1:]]
    docs = sorted({doc for _, doc, _ in judged}) + ["unjudged-1", "unjudged-2"]
    rng = np.random.default_rng(7)
    lines = [f"{query} Q0 {doc} 0 {rng.integers(0, 20) / 4} bm25\n" for query in sorted({q for q, _, _ in judged})
             for doc in rng.choice(docs, size=12, replace=False)]
    run = write_file(tmp_path / "run.trec", "".join(lines))
    check_against_references(qrels, run)
    assert read_qrels_file(qrels).format == "beir-tsv"
    result = invoke("metrics", "--qrels", qrels, "--run", run)
    assert result.exit_code == 0, (result.output, result.stderr)


REFUSED = [
    # (case, qrels, run, the file and line blamed, what the line says)
    ("score 1_0", qrels_text(), with_scores("1", "1_0"), "r.txt line 2",
     "score '1_0' is not a number as trec_eval reads it (its atof reads only '1' of it, as 1.0)"),
    ("Arabic-Indic score", qrels_text(), with_scores("\u0663"), "r.txt line 1",
     "score '\u0663' is not a number as trec_eval reads it (its atof reads nothing of it, as 0.0)"),
    ("hexadecimal score", qrels_text(), with_scores("0x1A"), "r.txt line 1",
     "score '0x1A' is not plain decimal (trec_eval's atof reads it as 26.0)"),
    ("NaN score", qrels_text(), with_scores("2", "3", "NaN"), "r.txt line 3", "score 'NaN' is NaN"),
    ("exponent without digits", qrels_text(), with_scores("1e"), "r.txt line 1", "its atof reads only '1' of it"),
    ("two points", qrels_text(), with_scores("1.1.11"), "r.txt line 1", "its atof reads only '1.1' of it"),
    ("score with a control character", qrels_text(), with_scores("1\x01"), "r.txt line 1", "score '1\\x01'"),
    ("relevance 1.5", with_relevances("1.5"), run_text(), "q.txt line 1",
     "relevance '1.5' is not an integer as trec_eval reads it (its atol reads only '1' of it, as 1)"),
    ("relevance 1_0", with_relevances("1", "1_0"), run_text(), "q.txt line 2", "relevance '1_0' is not an integer"),
    ("Arabic-Indic relevance", with_relevances("\u0663"), run_text(), "q.txt line 1",
     "relevance '\u0663' is not an integer as trec_eval reads it (its atol reads nothing of it, as 0)"),
    ("relevance in exponent form", with_relevances("1e+8"), run_text(), "q.txt line 1", "atol reads only '1'"),
    ("relevance of 19 digits", with_relevances("1234567890123456789"), run_text(), "q.txt line 1",
     "has more than 18 digits"),
    ("BEIR score 1.0", BEIR_QRELS.replace("\t1\n", "\t1.0\n", 1), run_text(), "q.txt line 4",
     "score '1.0' is not an integer"),
    ("qrels line with five fields", commented(qrels_text(), [(3, "301 0 CR93E-1 1 extra")]), run_text(),
     "q.txt line 4", "expected 4 columns (qid 0 docid rel), got 5"),
    ("TREC qrels then three fields", qrels_text() + "301 CR93E-2 1\n", run_text(), "q.txt line 15",
     "expected 4 columns (qid 0 docid rel), got 3"),
    ("first qrels line of two fields", "\n301 CR93E-2\n", run_text(), "q.txt line 2",
     "expected 4 columns (qid 0 docid rel: TREC qrels) or 3 (query-id corpus-id score: BEIR qrels TSV), got 2"),
    ("run line of five fields", qrels_text(), commented(run_text(), [(2, "301 Q0 XX-2 3 0.5")]), "r.txt line 3",
     "expected 6 columns or more (qid Q0 docid rank score tag), got 5"),
    ("docid with a control character", qrels_text(), run_text().replace("XX-1", "XX\x7f1"), "r.txt line 8",
     "docid 'XX\\x7f1' holds whitespace or a control character"),
    ("qid with a no-break space", qrels_text().replace("304 0", "30\u00a04 0"), run_text(), "q.txt line 14",
     "qid '30\\xa04' holds whitespace"),
    ("run repeats a document", qrels_text(), run_text() + "302 Q0 FT921-5 9 0.1 x\n", "r.txt line 17",
     "query 302 doc FT921-5 repeats line 9"),
    ("qrels judge a document twice", qrels_text() + "301 0 FT921-5 2\n", run_text(), "q.txt line 15",
     "query 301 doc FT921-5 repeats line 7 with 2 instead of 1"),
    ("latin-1 byte in the run", qrels_text(), run_text().encode().replace(b"XX-1", b"XX-\xe9"), "r.txt line 8",
     "not UTF-8"),
    ("comments only", "# nothing\n\n#\n", run_text(), "q.txt", "file is empty"),
    ("header only", "query-id\tcorpus-id\tscore\n", run_text(), "q.txt", "file is empty"),
    ("empty run", qrels_text(), "", "r.txt", "file is empty"),
]


@pytest.mark.parametrize("chunk", [trec_parse.CHUNK, 7], ids=["", "7-byte chunks"])
@pytest.mark.parametrize(("qrels", "run", "where", "what"), [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_refused_files_name_their_line(tmp_path: Path, monkeypatch, qrels: str, run: str, where: str, what: str,
                                       chunk: int) -> None:
    with pytest.raises((Refused, UnicodeDecodeError)):
        reference_run(encoded(run), *reference_qrels(encoded(qrels))[1:3])
    monkeypatch.setattr(trec_parse, "CHUNK", chunk)
    qrels_path, run_path = pairs(tmp_path, qrels, run)
    line = assert_user_error(invoke("metrics", "--qrels", qrels_path, "--run", run_path), where, what)
    assert f"{tmp_path}/{where}" in line


# --- the parts -------------------------------------------------------------------------------------------------

NUMBER_FIELDS = [b"0", b"-0", b"+7", b"007", b".5", b"5.", b"1e3", b"1E-3", b"-.5e+2", b"1e400", b"1e-400", b"1_0",
                 b"\xd9\xa3", b"0x1A", b"0X1p3", b"0x", b"inf", b"-Infinity", b"infinit", b"nan", b"NaN(12)", b"1e",
                 b"1e+", b".", b"+", b"", b"1.1.1", b"12abc", b"99999999999999999999999"]


@pytest.mark.parametrize("field", NUMBER_FIELDS, ids=[repr(f) for f in NUMBER_FIELDS])
def test_messages_say_what_c_reads(field: bytes) -> None:
    """c_reads, which the messages quote, reads the prefix libc reads, and its value."""
    for integer in (False, True):
        value, read = c_read(field, integer)
        prefix, ours = c_reads(field, integer)
        assert prefix == field[:read], integer
        assert ours == value or (ours != ours and value != value), integer


def test_scores_and_labels_equal_libc_on_random_plain_fields(tmp_path: Path) -> None:
    """Random plain decimal fields (one exact operation, or numpy's parser past 15 digits or 10**22) and labels read
    as libc's strtod and strtol read them."""
    rng = random.Random(3)
    scores = []
    for _ in range(4000):
        digits = str(rng.randrange(10 ** rng.randrange(1, 25)))
        point = rng.randrange(len(digits) + 1)
        exponent = rng.choice(["", f"e{rng.randrange(-330, 330)}", f"E+{rng.randrange(30)}", f"e-{rng.randrange(30)}"])
        scores.append(f"{rng.choice(['', '-', '+'])}{digits[:point]}.{digits[point:]}{exponent}")
    scores += [repr(rng.gauss(0, 1) * 10.0 ** rng.randrange(-30, 30)) for _ in range(2000)]
    labels = [str(rng.randrange(-10 ** 18 + 1, 10 ** 18)) for _ in scores]
    qrels = "".join(f"q 0 d{i} {label}\n" for i, label in enumerate(labels))
    run = "".join(f"q Q0 d{i} 0 {value} run\n" for i, value in enumerate(scores))
    read, _, _ = read_qrels(write_file(tmp_path / "q.txt", qrels))
    assert read.relevance.tolist() == [float(c_read(label.encode(), True)[0]) for label in labels]
    _, parsed = trec_parse.read_table(write_file(tmp_path / "r.txt", run), lambda text, first, line: TREC_RUN, "",
                                      [], [])
    assert parsed.bad_number is None
    np.testing.assert_array_equal(parsed.values, [c_read(s.encode(), False)[0] for s in scores])


def test_ids_are_grouped_by_their_bytes_when_hashes_collide(tmp_path: Path, monkeypatch, table_reader: str) -> None:
    """With a hash that maps every string of one length to one value, ids are still told apart, byte for byte (the
    numpy reader's hash; the native one's table keeps each id's first 16 bytes, tested below)."""
    if table_reader == "native":
        pytest.skip("the native reader's hash cannot be replaced from Python")
    qrels, run = pairs(tmp_path, qrels_text(), run_text())
    expected = read_qrels(qrels), read_run(run, ["302"], ["FT921-5"])
    monkeypatch.setattr(trec_parse, "_mix", lambda words: words * np.uint64(0))
    collided = read_qrels(qrels), read_run(run, ["302"], ["FT921-5"])
    for (want, *want_names), (got, *got_names) in zip(expected, collided):
        assert got_names == want_names
        for field in ("query", "doc", "relevance") if hasattr(want, "query") else ("doc_ids", "scores"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_reading_two_hundred_thousand_lines_runs_no_python_per_line(tmp_path: Path) -> None:
    """A 200,000-line run (2,000 queries x 100) reads as the reference reads it, executing a few thousand lines of
    evalfast's Python, not one per line of the file. Its time is printed, as a benchmark, never asserted."""
    spec = importlib.util.spec_from_file_location("trec_files", REPO / "benchmarks" / "trec_files.py")
    trec_files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trec_files)
    qrels_path, run_path = trec_files.write_trec_files(tmp_path, 2000, depth=100, judged=12, corpus=100_000)
    executed = 0

    def trace(frame, event, arg):
        nonlocal executed
        if "evalfast" in frame.f_code.co_filename:
            executed += event == "line"
            return trace
        return None

    _, queries, docs = read_qrels(qrels_path)
    started = time.perf_counter()
    run, run_queries, run_docs = read_run(run_path, queries, docs)
    seconds = time.perf_counter() - started
    sys.settrace(trace)
    try:
        read_run(run_path, queries, docs)
    finally:
        sys.settrace(None)
    print(f"\nread_run: 200,000 lines in {seconds:.3f} s; {executed} lines of evalfast executed")
    assert executed < 20_000
    results, want_queries, want_docs = reference_run(run_path.read_bytes(), queries, docs)
    assert (run_queries, run_docs) == (want_queries, want_docs)
    for query, scores in results.items():
        row = run.doc_ids[want_queries.index(query)]
        assert [run_docs[d] for d in row[row >= 0]] == trec_eval_ranking(scores), query


def test_lines_ending_in_a_carriage_return_alone_are_refused(tmp_path: Path) -> None:
    """trec_eval would read such a file as one line, of many fields: one result, the rest ignored."""
    qrels, run = pairs(tmp_path, qrels_text(), run_text(end="\r"))
    assert_user_error(invoke("metrics", "--qrels", qrels, "--run", run), f"{run}: its lines end in a carriage return")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_reads_as_a_file(tmp_path: Path) -> None:
    pipe = tmp_path / "run.fifo"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_text, args=(run_text(),))
    writer.start()
    piped = read_run(pipe, ["301"], [])
    writer.join()
    read = read_run(write_file(tmp_path / "run.txt", run_text()), ["301"], [])
    assert piped[1:] == read[1:]
    np.testing.assert_array_equal(piped[0].doc_ids, read[0].doc_ids)


@pytest.mark.parametrize("chunk", [trec_parse.CHUNK, 7], ids=["", "7-byte chunks"])
def test_bytes_that_are_not_utf8_are_named_as_every_reader_names_them(tmp_path: Path, monkeypatch, chunk: int) -> None:
    """The line and byte offset (the byte-order mark counted) that texts.not_utf8 gives, reading the file again."""
    path = write_file(tmp_path / "q.txt", BOM + qrels_text().encode() + "301 0 caf\xe9 1\n".encode("latin-1"))
    monkeypatch.setattr(trec_parse, "CHUNK", chunk)
    with pytest.raises(EvalfastError) as error:
        read_qrels(path)
    assert str(error.value) == not_utf8(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_that_is_not_utf8_is_refused_without_reading_it_again(tmp_path: Path) -> None:
    pipe = tmp_path / "run.fifo"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(run_text().encode() + b"q Q0 caf\xe9 1 1 x\n",))
    writer.start()
    with pytest.raises(EvalfastError, match=r"run.fifo line 17 \(byte offset \d+, 0xe9\): not UTF-8"):
        read_run(pipe, [], [])
    writer.join()
