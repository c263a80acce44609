"""Golden sets: the seed's CSV, the same rows as JSONL, BEIR folders, and the errors a user gets for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalfast.data.golden import GoldenSet, load_golden
from evalfast.errors import EvalfastError, GoldenSetError

from conftest import HANDWRITTEN, SEED_CSV, needs_seed_csv, write_file

DRAGON = "<Fantasy> </Fantasy> <Dragons> </Dragons> prompt A dragon, who hoards books, meets a librarian."
BAKERY = "A cozy bakery mystery"
# The seed's layout: header, quoted contexts with commas, relevance written as 1.0 / 0.0.
PAIRS_CSV = f"""\
query,context,relevance
dragon story,"{DRAGON}",1.0
dragon story,{BAKERY},0.0
baking,{BAKERY},2
dragon story,{BAKERY},1
baking,"{DRAGON}",0
"""
# The same rows as PAIRS_CSV, as JSON objects.
PAIRS_RECORDS = [
    {"query": "dragon story", "context": DRAGON, "relevance": 1.0},
    {"query": "dragon story", "context": BAKERY, "relevance": 0.0},
    {"query": "baking", "context": BAKERY, "relevance": 2},
    {"query": "dragon story", "context": BAKERY, "relevance": 1},
    {"query": "baking", "context": DRAGON, "relevance": 0},
]


def write(folder: Path, name: str, text: str | bytes) -> Path:
    return write_file(folder / name, text)


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def judgments(golden: GoldenSet) -> list[tuple[int, int, float]]:
    return list(zip(golden.qrels.query.tolist(), golden.qrels.doc.tolist(), golden.qrels.relevance.tolist()))


def rows(golden: GoldenSet) -> list[tuple[int, int, float]]:
    pairs = golden.pairs
    return list(zip(pairs.query.tolist(), pairs.doc.tolist(), pairs.relevance.tolist()))


# --- CSV / JSONL pairs files -----------------------------------------------------------------------------


def test_csv_indexes_queries_and_contexts_in_order_of_first_appearance(tmp_path: Path) -> None:
    golden = load_golden(write(tmp_path, "golden.csv", PAIRS_CSV))
    assert golden.query_texts == ["dragon story", "baking"]
    assert golden.doc_texts == [DRAGON, BAKERY]
    assert golden.query_ids == ["q0", "q1"] and golden.doc_ids == ["d0", "d1"]
    assert (golden.n_queries, golden.n_docs) == (2, 2)
    assert golden.source == tmp_path / "golden.csv"


def test_csv_keeps_every_row_in_file_order(tmp_path: Path) -> None:
    golden = load_golden(write(tmp_path, "golden.csv", PAIRS_CSV))
    # (query index, context index, relevance) per data row; "1.0" -> 1, graded 2 kept, the repeated pair twice.
    assert rows(golden) == [(0, 0, 1.0), (0, 1, 0.0), (1, 1, 2.0), (0, 1, 1.0), (1, 0, 0.0)]
    assert golden.pairs.query.dtype == np.int64 and golden.pairs.relevance.dtype == np.float64


def test_csv_judgments_one_per_pair_with_max_relevance(tmp_path: Path) -> None:
    golden = load_golden(write(tmp_path, "golden.csv", PAIRS_CSV))
    # dragon story/bakery appears with 0 (line 3) then 1 (line 5): one judgment, relevance max(0, 1) = 1.
    # The repeated query keeps its relevant (dragon) and non-relevant rows apart; baking keeps graded 2.
    assert judgments(golden) == [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 0.0), (1, 1, 2.0)]
    np.testing.assert_array_equal(golden.qrels.relevant_counts(), [2, 1])


@pytest.mark.parametrize("relevances", [("0", "1"), ("1", "0"), ("1.0", "0.0"), ("0", "1.0")])
def test_repeated_pair_takes_the_highest_relevance_in_either_order(tmp_path: Path, relevances) -> None:
    text = "query,context,relevance\n" + "".join(f"q,c,{r}\n" for r in relevances)
    golden = load_golden(write(tmp_path, "golden.csv", text))
    assert judgments(golden) == [(0, 0, 1.0)]
    assert [r for _, _, r in rows(golden)] == [float(r) for r in relevances]


def test_jsonl_gives_the_same_golden_set_as_the_csv(tmp_path: Path) -> None:
    from_csv = load_golden(write(tmp_path, "golden.csv", PAIRS_CSV))
    from_jsonl = load_golden(write(tmp_path, "golden.jsonl", jsonl(PAIRS_RECORDS)))
    assert from_jsonl.source.name == "golden.jsonl"
    for field in ("query_ids", "query_texts", "doc_ids", "doc_texts"):
        assert getattr(from_jsonl, field) == getattr(from_csv, field), field
    assert judgments(from_jsonl) == judgments(from_csv)
    assert rows(from_jsonl) == rows(from_csv)
    assert (from_jsonl.qrels.n_queries, from_jsonl.qrels.n_docs) == (2, 2)


def test_jsonl_skips_blank_lines_and_accepts_string_relevance(tmp_path: Path) -> None:
    text = '{"query": "q", "context": "c", "relevance": "1.0"}\n\n   \n{"query": "q", "context": "d", "relevance": 0}\n'
    golden = load_golden(write(tmp_path, "golden.jsonl", text))
    assert rows(golden) == [(0, 0, 1.0), (0, 1, 0.0)]


@needs_seed_csv
def test_seed_csv_loads() -> None:
    golden = load_golden(SEED_CSV)
    assert len(golden.pairs.query) == 532  # every row kept for the pairs protocol
    assert set(golden.pairs.relevance.tolist()) <= {0.0, 1.0}
    assert golden.n_queries == len(set(golden.query_texts)) and golden.n_docs == len(set(golden.doc_texts))


def test_csv_with_byte_order_mark_loads(tmp_path: Path) -> None:
    golden = load_golden(write(tmp_path, "excel.csv", b"\xef\xbb\xbfquery,context,relevance\nq,c,1\n"))
    assert golden.query_texts == ["q"]


# --- BEIR folders --------------------------------------------------------------------------------------------

CORPUS = [
    {"_id": "d1", "title": "Dragons", "text": "A dragon hoards books."},
    {"_id": "d2", "title": "", "text": "A cozy bakery."},
    {"_id": "d3", "text": "No title here."},
]
QUERIES = [{"_id": "q1", "text": "dragon"}, {"_id": "q2", "text": "untitled"}, {"_id": "q3", "text": "unjudged"}]
TEST_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n\nq2\td3\t1\n"


def make_beir(folder: Path, corpus=CORPUS, queries=QUERIES, qrels: str = TEST_QRELS, split: str = "test") -> Path:
    write(folder, "corpus.jsonl", jsonl(corpus))
    write(folder, "queries.jsonl", jsonl(queries))
    write(folder, f"qrels/{split}.tsv", qrels)
    return folder


def test_beir_folder(tmp_path: Path) -> None:
    golden = load_golden(make_beir(tmp_path / "beir"))
    assert golden.doc_ids == ["d1", "d2", "d3"]
    assert golden.doc_texts == ["Dragons A dragon hoards books.", "A cozy bakery.", "No title here."]
    assert golden.query_ids == ["q1", "q2", "q3"] and golden.query_texts == ["dragon", "untitled", "unjudged"]
    # q3 has no qrels line: kept and counted, but judged nowhere. The header line is not a judgment.
    assert (golden.n_queries, golden.n_docs) == (3, 3)
    assert judgments(golden) == [(0, 0, 2.0), (0, 1, 0.0), (1, 2, 1.0)]
    np.testing.assert_array_equal(golden.qrels.relevant_counts(), [1, 1, 0])
    assert golden.pairs is None


def test_judged_documents_missing_from_the_corpus_are_kept_and_named(tmp_path: Path) -> None:
    # real BEIR sets (ArguAna) judge a few documents their corpus lacks: relevant, unretrievable, reported
    golden = load_golden(make_beir(tmp_path / "beir", qrels="q1\td9\t1\nq1\td1\t2\nq2\td8\t1\nq2\td9\t0\n"))
    assert golden.missing_doc_ids == ("d9", "d8") and golden.qrels.n_docs == golden.n_docs + 2
    assert judgments(golden) == [(0, 3, 1.0), (0, 0, 2.0), (1, 4, 1.0), (1, 3, 0.0)]
    np.testing.assert_array_equal(golden.qrels.relevant_counts(), [2, 1, 0])
    (warning,) = golden.warnings
    assert "test.tsv" in warning and "2 judged document(s) not in corpus.jsonl ('d9', 'd8')" in warning


def test_documents_and_queries_keep_their_whitespace(tmp_path: Path) -> None:
    # MTEB embeds (title + " " + text).strip() and queries as written; SentencePiece tokenizers see the spaces
    corpus = [{"_id": "d1", "title": "Title ", "text": " body  "}, {"_id": "d2", "title": "", "text": "  lone "}]
    golden = load_golden(make_beir(tmp_path / "beir", corpus=corpus, queries=[{"_id": "q1", "text": " spaced  "}],
                                   qrels="q1\td1\t1\n"))
    assert golden.doc_texts == ["Title   body", "lone"] and golden.query_texts == [" spaced  "]


@pytest.mark.parametrize("header", ["", "query-id corpus-id score\n", "query-id\tcorpus-id\tScore\n"])
def test_beir_qrels_header_is_optional(tmp_path: Path, header: str) -> None:
    golden = load_golden(make_beir(tmp_path / "beir", qrels=header + "q2\td1\t1\n"))
    assert judgments(golden) == [(1, 0, 1.0)]


def test_beir_split_selects_the_qrels_file(tmp_path: Path) -> None:
    folder = make_beir(tmp_path / "beir")
    write(folder, "qrels/dev.tsv", "query-id\tcorpus-id\tscore\nq3\td2\t1\n")
    assert judgments(load_golden(folder, split="dev")) == [(2, 1, 1.0)]
    assert judgments(load_golden(folder)) == [(0, 0, 2.0), (0, 1, 0.0), (1, 2, 1.0)]  # default split: test


def test_bundled_demo_loads() -> None:
    golden = load_golden(HANDWRITTEN)
    assert (golden.n_queries, golden.n_docs, len(golden.qrels.query)) == (340, 320, 1859)
    assert golden.query_ids[0] == "q001" and golden.doc_ids[0] == "p001"
    assert golden.doc_texts[0].startswith("The Borrowed Spell An apprentice borrows")  # title + " " + text
    assert int((golden.qrels.relevant_counts() == 0).sum()) == 24  # off-topic queries the eval leaves out


# --- bad input -----------------------------------------------------------------------------------------------

HEADER = "query,context,relevance\n"
GOOD_ROW = "a query,a context,1\n"
GOOD_RECORD = '{"query": "a query", "context": "a context", "relevance": 1}\n'


def _csv(text: str):
    return lambda d: write(d, "bad.csv", text)


def _jsonl(text: str | bytes):
    return lambda d: write(d, "bad.jsonl", text)


def _beir(**kwargs):
    return lambda d: make_beir(d / "beir", **kwargs)


def _beir_without_queries(d: Path) -> Path:
    folder = make_beir(d / "beir")
    (folder / "queries.jsonl").unlink()
    return folder


# (make the path in a folder, the file named in the message, the expected part of the message)
BAD_INPUT = [
    pytest.param(_csv("query,context\na,b\n"), "bad.csv", "line 1: missing column(s) relevance", id="csv-no-relevance"),
    pytest.param(_csv("question,context\na,b\n"), "bad.csv", "line 1: missing column(s) query, relevance",
                 id="csv-two-missing"),
    pytest.param(_csv(HEADER + GOOD_ROW + "q,c,\n"), "bad.csv", "line 3: relevance '' is not a number",
                 id="csv-empty-relevance"),
    pytest.param(_csv(HEADER + GOOD_ROW + "q,c,yes\n"), "bad.csv", "line 3: relevance 'yes' is not a number",
                 id="csv-relevance-yes"),
    pytest.param(_csv(HEADER + GOOD_ROW + "q,c,nan\n"), "bad.csv", "line 3: relevance 'nan' is not a number",
                 id="csv-relevance-nan"),
    pytest.param(_csv(HEADER + GOOD_ROW + "q,c,inf\n"), "bad.csv", "line 3: relevance 'inf' is not a number",
                 id="csv-relevance-inf"),
    pytest.param(_csv(HEADER + GOOD_ROW + "  ,c,1\n"), "bad.csv", "line 3: empty query", id="csv-empty-query"),
    pytest.param(_csv(HEADER + GOOD_ROW + 'q,"",1\n'), "bad.csv", "line 3: empty context", id="csv-empty-context"),
    pytest.param(_csv(HEADER), "bad.csv", "no rows", id="csv-header-only"),
    pytest.param(_jsonl(GOOD_RECORD + "{'query': 'single quotes'}\n"), "bad.jsonl", "line 2: not valid JSON",
                 id="jsonl-not-json"),
    pytest.param(_jsonl(GOOD_RECORD + "[1, 2]\n"), "bad.jsonl", "line 2: expected a JSON object, got list",
                 id="jsonl-not-object"),
    pytest.param(_jsonl(GOOD_RECORD + "\n" + '{"query": "q", "context": "c"}\n'), "bad.jsonl",
                 "line 3: missing field(s) relevance", id="jsonl-missing-field"),
    pytest.param(_jsonl(GOOD_RECORD + '{"query": "q", "context": "c", "relevance": null}\n'), "bad.jsonl",
                 "line 2: relevance None is not a number", id="jsonl-null-relevance"),
    pytest.param(_beir(qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n"), "test.tsv",
                 "line 3: query 'q9' is not in queries.jsonl", id="beir-unknown-query"),
    pytest.param(_beir(corpus=[*CORPUS, {"_id": "d1", "text": "again"}]), "corpus.jsonl",
                 "line 4: duplicate _id 'd1' (first on line 1)", id="beir-duplicate-doc"),
    pytest.param(_beir(queries=[QUERIES[0], QUERIES[0]]), "queries.jsonl", "line 2: duplicate _id 'q1'",
                 id="beir-duplicate-query"),
    pytest.param(_beir(corpus=[]), "corpus.jsonl", "the corpus is empty", id="beir-empty-corpus"),
    pytest.param(_beir(queries=[]), "queries.jsonl", "no queries", id="beir-no-queries"),
    pytest.param(_beir(corpus=[{"_id": "d1", "title": " ", "text": ""}]), "corpus.jsonl", "line 1: empty text",
                 id="beir-empty-doc-text"),
    pytest.param(_beir(qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t1\n"), "test.tsv",
                 "line 3: q1 d1 is judged twice (first on line 2)", id="beir-judged-twice"),
    pytest.param(_beir(qrels="q1\td1\t1\nq1 0 d2 1\n"), "test.tsv", "line 2: expected 3 columns", id="beir-4-columns"),
    pytest.param(_beir(qrels="q1\td1\n"), "test.tsv", "line 1: expected 3 columns", id="beir-2-columns"),
    pytest.param(_beir(qrels="q1\td1\thigh\n"), "test.tsv", "line 1: relevance 'high' is not a number",
                 id="beir-bad-score"),
    pytest.param(_beir_without_queries, "beir", "missing queries.jsonl", id="beir-no-queries-file"),
    pytest.param(_beir(split="train"), "qrels/test.tsv", "not found; this folder has split(s) train: pass --split train",
                 id="beir-no-split"),
    pytest.param(lambda d: d / "nowhere.csv", "nowhere.csv", "no such file or folder", id="missing-path"),
    pytest.param(lambda d: write(d, "golden.txt", HEADER + GOOD_ROW), "golden.txt", "unknown golden set format '.txt'",
                 id="txt-extension"),
    pytest.param(_csv(b"query,context,relevance\ncaf\xe9,c,1\n"), "bad.csv", "line 2", id="csv-latin-1"),
]


@pytest.mark.parametrize(("make", "name", "message"), BAD_INPUT)
def test_bad_input(tmp_path: Path, make, name: str, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(GoldenSetError) as error:
        load_golden(path)
    assert isinstance(error.value, EvalfastError)
    text = str(error.value)
    assert name in text and message in text, text
