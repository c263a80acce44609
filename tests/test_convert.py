"""Converting golden sets: BEIR <-> pairs CSV/JSONL round trips keep ids, texts, titles and judgments;
conversions that would lose something are refused with the reason; existing targets are left alone."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from evalfast.data.beir import Judgment, write_beir
from evalfast.data.convert import convert_golden
from evalfast.data.golden import GoldenSet, load_golden, read_jsonl
from evalfast.errors import EvalfastError, GoldenSetError

from conftest import HANDWRITTEN, SEED_CSV, needs_seed_csv, write_file


def records(path: Path) -> list[dict]:
    return [record for _, record in read_jsonl(path)]


def qrels_lines(folder: Path, split: str = "test") -> list[tuple[str, str, float]]:
    lines = (folder / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(q, d, float(score)) for q, d, score in (line.split("\t") for line in lines)]


def beir_content(folder: Path) -> tuple[dict, dict, list]:
    """Documents by id (title, text), query texts by id, and the qrels lines in order."""
    corpus = {r["_id"]: (r.get("title", ""), r["text"]) for r in records(folder / "corpus.jsonl")}
    queries = {r["_id"]: r["text"] for r in records(folder / "queries.jsonl")}
    return corpus, queries, qrels_lines(folder)


def by_id(golden: GoldenSet) -> tuple[dict, dict, dict]:
    """A GoldenSet by ids rather than positions: the corpus order of a pairs file is its order of first use."""
    judgments = zip(golden.qrels.query.tolist(), golden.qrels.doc.tolist(), golden.qrels.relevance.tolist())
    return (dict(zip(golden.query_ids, golden.query_texts)), dict(zip(golden.doc_ids, golden.doc_texts)),
            {(golden.query_ids[q], golden.doc_ids[d]): rel for q, d, rel in judgments})


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def judged_set(tmp_path_factory) -> Path:
    """The handwritten set less its unjudged queries (a pairs file cannot hold those; see the refusal test)."""
    judged = {q for q, _, _ in qrels_lines(HANDWRITTEN)}
    queries = [r for r in records(HANDWRITTEN / "queries.jsonl") if r["_id"] in judged]
    judgments = [Judgment(q, d, int(score)) for q, d, score in qrels_lines(HANDWRITTEN)]
    return write_beir(tmp_path_factory.mktemp("judged") / "golden", records(HANDWRITTEN / "corpus.jsonl"), queries,
                      {"test": judgments})


@pytest.mark.parametrize("pairs_format", ["csv", "jsonl"])
def test_beir_to_pairs_to_beir_round_trip(judged_set: Path, tmp_path: Path, pairs_format: str) -> None:
    pairs = convert_golden(judged_set, tmp_path / f"golden.{pairs_format}", to=pairs_format)
    back = convert_golden(pairs, tmp_path / "back", to="beir")
    assert beir_content(back) == beir_content(judged_set)
    original, round_tripped = load_golden(judged_set), load_golden(back)
    assert by_id(round_tripped) == by_id(original)
    assert round_tripped.query_ids == original.query_ids  # the handwritten qrels list queries in file order


def test_pairs_file_from_beir_has_one_row_per_qrels_line(judged_set: Path, tmp_path: Path) -> None:
    rows = csv_rows(convert_golden(judged_set, tmp_path / "golden.csv", to="csv"))
    corpus, queries, judgments = beir_content(judged_set)
    assert list(rows[0]) == ["query", "context", "relevance", "query_id", "context_id", "context_title"]
    assert [(r["query_id"], r["context_id"], float(r["relevance"])) for r in rows] == judgments
    assert all(r["query"] == queries[r["query_id"]] for r in rows)
    assert all((r["context_title"], r["context"]) == corpus[r["context_id"]] for r in rows)
    assert {r["relevance"] for r in rows} <= {"0", "1", "2", "3"}  # integral relevance written as an int


def test_unjudged_queries_and_documents_are_not_dropped(tmp_path: Path) -> None:
    handwritten_unjudged = {r["_id"] for r in records(HANDWRITTEN / "queries.jsonl")} - {
        q for q, _, _ in qrels_lines(HANDWRITTEN)}
    with pytest.raises(EvalfastError, match=f"names {len(handwritten_unjudged)} queries .*would be lost"):
        convert_golden(HANDWRITTEN, tmp_path / "handwritten.csv", to="csv")
    folder = write_beir(tmp_path / "golden", [{"_id": "d1", "title": "", "text": "judged"},
                                              {"_id": "d2", "title": "", "text": "never judged"}],
                        [{"_id": "q1", "text": "a query"}], {"test": [Judgment("q1", "d1", 1)]})
    with pytest.raises(EvalfastError, match=r"names 1 document \(d2\), which would be lost"):
        convert_golden(folder, tmp_path / "golden.csv", to="csv")
    assert not (tmp_path / "handwritten.csv").exists() and not (tmp_path / "golden.csv").exists()


def seed_rows(path: Path) -> list[tuple[str, str, float]]:
    return [(r["query"], r["context"], float(r["relevance"])) for r in csv_rows(path)]


@needs_seed_csv
def test_seed_csv_to_beir_to_csv_keeps_every_row(tmp_path: Path) -> None:
    rows = seed_rows(SEED_CSV)
    relevance_by_pair: dict[tuple[str, str], set[float]] = {}
    for query, context, relevance in rows:
        relevance_by_pair.setdefault((query, context), set()).add(relevance)
    assert all(len(r) == 1 for r in relevance_by_pair.values())  # no conflicting repeats, so nothing is refused
    beir = convert_golden(SEED_CSV, tmp_path / "seed", to="beir")
    assert len(records(beir / "queries.jsonl")) == load_golden(SEED_CSV).n_queries
    assert seed_rows(convert_golden(beir, tmp_path / "seed.csv", to="csv")) == rows
    jsonl = convert_golden(SEED_CSV, tmp_path / "seed.jsonl", to="jsonl")
    assert seed_rows(convert_golden(jsonl, tmp_path / "again.csv", to="csv")) == rows


def test_pairs_without_ids_number_queries_and_contexts_in_order(tmp_path: Path) -> None:
    source = write_file(tmp_path / "pairs.csv", 'query,context,relevance\nfirst,"a, b",1.0\nsecond,c,0.5\n'
                                                'first,c,0\nfirst,"a, b",1\n')
    folder = convert_golden(source, tmp_path / "golden", to="beir", split="dev")
    assert records(folder / "queries.jsonl") == [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}]
    assert records(folder / "corpus.jsonl") == [{"_id": "d1", "title": "", "text": "a, b"},
                                                {"_id": "d2", "title": "", "text": "c"}]
    # the repeated row with the same relevance collapses; relevance is an int when integral
    assert (folder / "qrels" / "dev.tsv").read_text().splitlines() == [
        "query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\td2\t0.5", "q1\td2\t0"]


def test_jsonl_from_csv_is_utf8_and_keeps_optional_columns(tmp_path: Path) -> None:
    source = write_file(tmp_path / "pairs.csv", "query,context,relevance,query_id\ncafé,naïve,1,Q-7\n")
    target = convert_golden(source, tmp_path / "pairs.jsonl", to="jsonl")
    assert target.read_text(encoding="utf-8") == (
        '{"query": "café", "context": "naïve", "relevance": 1, "query_id": "Q-7"}\n')


def test_conflicting_repeats_are_refused(tmp_path: Path) -> None:
    source = write_file(tmp_path / "pairs.csv", "query,context,relevance\nq,c,1\nq,d,0\nq,c,0\n")
    with pytest.raises(EvalfastError, match=r"lines 2 and 4: .*different relevance.*pairs protocol.*its figures"):
        convert_golden(source, tmp_path / "golden", to="beir")
    assert not (tmp_path / "golden").exists()


@pytest.mark.parametrize("content, message", [
    ("query,context,relevance,query_id\nq,c,1,Q1\nr,c,1,Q1\n", "line 3: query_id 'Q1' names another text than on"),
    ("query,context,relevance,context_id\nq,c,1,\n", "line 2: empty context_id"),
    ("query,context,relevance,notes\nq,c,1,keep me\n", r"line 2: field\(s\) notes would be lost"),
])
def test_pairs_that_cannot_become_beir_are_refused(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(EvalfastError, match=message):
        convert_golden(write_file(tmp_path / "pairs.csv", content), tmp_path / "golden", to="beir")


def test_invalid_source_reports_the_loaders_error(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match="line 2: relevance 'yes' is not a number"):
        convert_golden(write_file(tmp_path / "pairs.csv", "query,context,relevance\nq,c,yes\n"),
                       tmp_path / "golden", to="beir")


@pytest.mark.parametrize("target, to, message", [
    ("golden.csv", "parquet", "unknown format 'parquet'"),
    ("golden.csv", "jsonl", r"name a jsonl golden set \*\.jsonl"),
    ("again.csv", "csv", "is already csv"),
])
def test_bad_conversion_requests(tmp_path: Path, target: str, to: str, message: str) -> None:
    source = write_file(tmp_path / "pairs.csv", "query,context,relevance\nq,c,1\n")
    with pytest.raises(EvalfastError, match=message):
        convert_golden(source, tmp_path / target, to=to)


def test_existing_target_needs_overwrite(judged_set: Path, tmp_path: Path) -> None:
    target = write_file(tmp_path / "golden.csv", "keep me\n")
    with pytest.raises(EvalfastError, match="already exists; pass --overwrite"):
        convert_golden(judged_set, target, to="csv")
    assert target.read_text() == "keep me\n"
    folder = write_file(tmp_path / "golden" / "corpus.jsonl", "keep me\n").parent
    pairs = write_file(tmp_path / "pairs.csv", "query,context,relevance\nq,c,1\n")
    with pytest.raises(EvalfastError, match="already exists"):
        convert_golden(pairs, folder, to="beir")
    assert [p.name for p in folder.iterdir()] == ["corpus.jsonl"]
    assert (folder / "corpus.jsonl").read_text() == "keep me\n"
    convert_golden(judged_set, target, to="csv", overwrite=True)
    convert_golden(pairs, folder, to="beir", overwrite=True)
    assert len(csv_rows(target)) == len(qrels_lines(judged_set))
    assert records(folder / "queries.jsonl") == [{"_id": "q1", "text": "q"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["golden", "golden.csv", "pairs.csv"]  # no temporaries left
