"""Golden sets: queries, a corpus and relevance judgments, read from the seed's CSV, JSONL or a BEIR folder.

Texts and ids are Python lists (strings live only at the edges); judgments are integer index arrays
(:class:`~evalfast.data.qrels.Qrels`). The seed's CSV and JSONL also keep their rows in file order
(:class:`Pairs`) for the seed's row-wise ``pairs`` protocol.
"""

from __future__ import annotations

import csv
import math
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalfast.data.qrels import Qrels
from evalfast.data.texts import Report, checked_id, checked_text, problem, read_jsonl, shown, utf8_lines
from evalfast.errors import GoldenSetError

PAIR_COLUMNS = ("query", "context", "relevance")
ID_COLUMNS = ("query_id", "context_id", "context_title")  # optional: ignored here, carried by golden convert
KNOWN_COLUMNS = frozenset(PAIR_COLUMNS + ID_COLUMNS)
CSV_FIELD_LIMIT = 2**31 - 1  # characters in one CSV field: a whole document (the csv module's default is 131,072)


@dataclass(frozen=True)
class Pairs:
    """The rows of a pairs file in file order: query index, context (document) index, relevance; each (n,)."""

    query: np.ndarray
    doc: np.ndarray
    relevance: np.ndarray


@dataclass(frozen=True)
class GoldenSet:
    """Queries and corpus (ids and texts, index-aligned) with their judgments.

    Judged documents absent from the corpus (real BEIR sets have a few) are kept in the qrels as documents
    ``n_docs``, ``n_docs + 1``, ... named by ``missing_doc_ids``: relevant but never retrievable, so they count in
    recall's and nDCG's denominators exactly as trec_eval counts them.
    """

    source: Path
    query_ids: list[str]
    query_texts: list[str]
    doc_ids: list[str]
    doc_texts: list[str]
    qrels: Qrels
    pairs: Pairs | None = None
    missing_doc_ids: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what reading it tolerated, one line each, for the user
    split: str | None = None  # the BEIR qrels split read (qrels/<split>.tsv); None for a pairs file

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)


def load_golden(path: str | Path, split: str = "test") -> GoldenSet:
    """Read a golden set: a BEIR folder, a CSV or a JSONL file with columns query, context, relevance.

    Example::

        golden = load_golden("data/golden/handwritten")
        print(golden.n_queries, golden.n_docs)
    """
    path = Path(path)
    if path.is_dir():
        return _load_beir(path, split)
    if not path.exists():
        raise GoldenSetError(f"{path}: no such file or folder; pass a BEIR folder, a .csv or a .jsonl golden set")
    if path.suffix.lower() in (".csv", ".jsonl", ".json"):
        return _pairs_golden(path, pair_rows(path))
    raise GoldenSetError(f"{path}: unknown golden set format {path.suffix.lower()!r}; use a BEIR folder, .csv or "
                         ".jsonl")


def csv_reader(lines: Iterable[str]) -> csv.DictReader:
    """A DictReader over ``lines`` whose fields may be as long as a document."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    return csv.DictReader(lines)


def csv_header_problem(fieldnames: list[str] | None) -> str | None:
    """Why a pairs CSV's header cannot be read (a missing or repeated column), or None."""
    names = fieldnames or []
    missing = [c for c in PAIR_COLUMNS if c not in names]
    if missing:
        return (f"missing column(s) {', '.join(missing)}; the header must name {', '.join(PAIR_COLUMNS)} "
                f"(found: {', '.join(map(shown, names)) or 'nothing'})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"column(s) {', '.join(map(shown, repeated))} named twice; give each column its own name"
    return None


def csv_row_problem(row: dict, n_columns: int) -> str | None:
    """Why a CSV row does not fit its header (more or fewer fields), or None."""
    n_fields = n_columns + len(row.get(None, ())) - sum(value is None for value in row.values())
    if n_fields == n_columns:
        return None
    return (f"{n_fields} fields, but the header names {n_columns} columns; quote a field that holds a comma, "
            "or give the row its missing fields")


def pair_rows(path: Path, report: Report | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a pairs .csv or .jsonl file, each row holding query, context and relevance (their
    values not checked yet). A row that cannot be read is a GoldenSetError; leniently (``report``, as golden check
    reads) each is reported, skipped, and reading goes on, and an empty file is reported too."""
    return _csv_rows(path, report) if path.suffix.lower() == ".csv" else _jsonl_pair_rows(path, report)


def _csv_rows(path: Path, report: Report | None) -> Iterator[tuple[int, dict]]:
    reader = csv_reader(line for _, line in utf8_lines(path, report=report))
    if header := csv_header_problem(reader.fieldnames):
        missing = any(c not in (reader.fieldnames or []) for c in PAIR_COLUMNS)
        problem(report, "missing-column" if missing else "csv-columns", f"{path} line 1: {header}")
        return
    n_rows = 0
    for n_rows, row in enumerate(reader, start=1):
        if fit := csv_row_problem(row, len(reader.fieldnames)):
            problem(report, "csv-columns", f"{path} line {reader.line_num}: {fit}")
        else:
            yield reader.line_num, row
    if not n_rows and report is not None:  # load_golden refuses an empty file in its own words
        report("empty-file", f"{path}: no rows; add at least one query, context, relevance row")


def _jsonl_pair_rows(path: Path, report: Report | None) -> Iterator[tuple[int, dict]]:
    for line_no, record in read_jsonl(path, report):
        missing = [c for c in PAIR_COLUMNS if c not in record]
        if missing:
            problem(report, "missing-column", f"{path} line {line_no}: missing field(s) {', '.join(missing)}; every "
                                              f"line needs {', '.join(PAIR_COLUMNS)}")
        else:
            yield line_no, record


def _text(path: Path, line_no: int, field: str, value: object) -> str:
    """A text field, stripped; refused when it is not a string or is empty."""
    text = checked_text(f"{path} line {line_no}", field, value).strip()
    if not text:
        raise GoldenSetError(f"{path} line {line_no}: empty {field}; fill it in or remove the line")
    return text


def _relevance(path: Path, line_no: int, value: object) -> float:
    try:
        relevance = float(str(value).strip())
    except ValueError:
        relevance = math.nan
    if not math.isfinite(relevance):
        raise GoldenSetError(
            f"{path} line {line_no}: relevance {value!r} is not a number; use 0 for not relevant, 1 or more for relevant"
        )
    return relevance


def _check_optional_columns(path: Path, line_no: int, row: dict) -> None:
    """The optional id columns, where filled in, hold ids, and context_title holds text."""
    where = f"{path} line {line_no}"
    for column in ("query_id", "context_id"):
        if row.get(column) not in (None, ""):
            checked_id(where, column, row[column])
    checked_text(where, "context_title", row.get("context_title"))


def _pairs_golden(path: Path, rows: Iterator[tuple[int, dict]]) -> GoldenSet:
    """Index unique queries and contexts in order of first appearance; keep every row for the pairs protocol."""
    queries: dict[str, int] = {}
    contexts: dict[str, int] = {}
    row_query, row_doc, row_rel = [], [], []
    unread: set[str] = set()
    for line_no, row in rows:
        query = _text(path, line_no, "query", row.get("query"))
        context = _text(path, line_no, "context", row.get("context"))
        row_rel.append(_relevance(path, line_no, row.get("relevance")))
        _check_optional_columns(path, line_no, row)
        unread |= row.keys() - KNOWN_COLUMNS
        row_query.append(queries.setdefault(query, len(queries)))
        row_doc.append(contexts.setdefault(context, len(contexts)))
    if not row_query:
        raise GoldenSetError(f"{path}: no rows; a golden set needs at least one query, context, relevance row")
    pairs = Pairs(np.asarray(row_query, np.int64), np.asarray(row_doc, np.int64), np.asarray(row_rel, np.float64))
    if not (pairs.relevance > 0).any():
        raise GoldenSetError(f"{path}: no query has a relevant document (every relevance is 0 or less); give each "
                             "query's relevant context a relevance of 1 or more")
    return GoldenSet(
        source=path,
        query_ids=[f"q{i}" for i in range(len(queries))],
        query_texts=list(queries),
        doc_ids=[f"d{i}" for i in range(len(contexts))],
        doc_texts=list(contexts),
        qrels=_max_relevance_qrels(pairs, len(queries), len(contexts)),
        pairs=pairs,
        warnings=(unread_warning(path, unread),) if unread else (),
    )


def unread_warning(path: Path, unread: set[str]) -> str:
    """The warning for columns (CSV) or fields (JSONL) of a pairs file that evaluation does not read."""
    kind = "column(s)" if path.suffix.lower() == ".csv" else "field(s)"
    return (f"{path}: {kind} {', '.join(map(shown, sorted(unread)))} not read (a pairs file holds "
            f"{', '.join(PAIR_COLUMNS + ID_COLUMNS)}); rename or drop them")


def _max_relevance_qrels(pairs: Pairs, n_queries: int, n_docs: int) -> Qrels:
    """One judgment per (query, context): the highest relevance any row gives it."""
    order = np.lexsort((-pairs.relevance, pairs.doc, pairs.query))
    query, doc, rel = pairs.query[order], pairs.doc[order], pairs.relevance[order]
    first = np.ones(len(order), bool)
    first[1:] = (query[1:] != query[:-1]) | (doc[1:] != doc[:-1])
    return Qrels(query=query[first], doc=doc[first], relevance=rel[first], n_queries=n_queries, n_docs=n_docs)


def _load_beir(folder: Path, split: str) -> GoldenSet:
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path):
        if not required.is_file():
            raise GoldenSetError(
                f"{folder}: missing {required.relative_to(folder)}; a BEIR folder holds corpus.jsonl, "
                f"queries.jsonl and qrels/{split}.tsv"
            )
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in qrels_path.parent.glob("*.tsv"))
        hint = (f"this folder has split(s) {', '.join(splits)}: pass --split {shlex.quote(splits[0])}" if splits else
                f"qrels/ holds no <split>.tsv; add qrels/{split}.tsv (lines: query-id corpus-id score)")
        raise GoldenSetError(f"{qrels_path} not found; {hint}")
    doc_ids, doc_texts = _beir_records(corpus_path, with_title=True)
    if not doc_ids:
        raise GoldenSetError(f"{corpus_path}: the corpus is empty; add at least one document")
    query_ids, query_texts = _beir_records(queries_path, with_title=False, split=split)
    if not query_ids:
        raise GoldenSetError(f"{queries_path}: no queries (in split {split!r}); add at least one")
    qrels, missing = _read_beir_qrels(qrels_path, query_ids, doc_ids)
    if not (qrels.relevance > 0).any():
        raise GoldenSetError(f"{qrels_path}: no query has a relevant document ({len(qrels.relevance)} judgments, "
                             "none with a score above 0); judge each query's relevant documents 1 or more")
    warnings = ()
    if missing:
        named = ", ".join(repr(d) for d in missing[:3]) + (", ..." if len(missing) > 3 else "")
        warnings = (f"{qrels_path}: {len(missing)} judged document(s) not in corpus.jsonl ({named}); kept as "
                    "relevant but unretrievable, as trec_eval and MTEB count them",)
    return GoldenSet(folder, query_ids, query_texts, doc_ids, doc_texts, qrels, None, tuple(missing), warnings, split)


def _beir_records(path: Path, with_title: bool, split: str | None = None) -> tuple[list[str], list[str]]:
    """Ids and texts: a query's text as written, a document's ``(title + " " + text).strip()`` as MTEB and
    sentence-transformers' evaluator join them. Records with a "split" field other than ``split`` (as
    evalfast's generators write) are left out."""
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for line_no, record in read_jsonl(path):
        where = f"{path} line {line_no}"
        record_id = checked_id(where, "_id", record.get("_id"))
        if record_id in seen:
            raise GoldenSetError(
                f"{path} line {line_no}: duplicate _id {record_id!r} (first on line {seen[record_id]}); ids must be unique"
            )
        seen[record_id] = line_no
        if split is not None and checked_text(where, "split", record.get("split", split)) != split:
            continue
        body = checked_text(where, "text", record.get("text"))
        text = f"{checked_text(where, 'title', record.get('title'))} {body}".strip() if with_title else body
        _text(path, line_no, "text", text)  # refuses an empty one
        ids.append(record_id)
        texts.append(text)
    return ids, texts


def _read_beir_qrels(path: Path, query_ids: list[str], doc_ids: list[str]) -> tuple[Qrels, list[str]]:
    """The judgments, and the judged document ids absent from the corpus (indexed from len(doc_ids) on)."""
    query_index = {q: i for i, q in enumerate(query_ids)}
    doc_index = {d: i for i, d in enumerate(doc_ids)}
    missing: dict[str, int] = {}
    judged: dict[tuple[int, int], tuple[float, int]] = {}
    for line_no, line in utf8_lines(path):
        fields = line.split()
        if not fields:
            continue
        if line_no == 1 and fields[-1].lower() == "score":
            continue
        if len(fields) != 3:
            raise GoldenSetError(f"{path} line {line_no}: expected 3 columns (query-id corpus-id score), got "
                                 f"{len(fields)}")
        query_id, doc_id, score = fields
        if query_id not in query_index:
            raise GoldenSetError(f"{path} line {line_no}: query {shown(query_id)} is not in queries.jsonl; fix or drop "
                                 "the line")
        doc = doc_index.get(doc_id)
        if doc is None:
            if doc_id not in missing:
                checked_id(f"{path} line {line_no}", "corpus-id", doc_id)
            doc = missing.setdefault(doc_id, len(doc_ids) + len(missing))
        key = (query_index[query_id], doc)
        if key in judged:
            raise GoldenSetError(f"{path} line {line_no}: {query_id} {doc_id} is judged twice (first on line "
                                 f"{judged[key][1]}); keep one line")
        judged[key] = (_relevance(path, line_no, score), line_no)
    keys = np.asarray(list(judged), np.int64).reshape(-1, 2)
    relevance = np.asarray([rel for rel, _ in judged.values()], np.float64)
    return (Qrels(query=keys[:, 0], doc=keys[:, 1], relevance=relevance, n_queries=len(query_ids),
                  n_docs=len(doc_ids) + len(missing)), list(missing))


def select_queries(golden: GoldenSet, keep: np.ndarray, source: Path | None = None) -> GoldenSet:
    """The golden set restricted to the queries where ``keep`` (bool (n_queries,)) is true, with the whole corpus;
    judgments are re-indexed (qrels protocol; pairs rows are dropped)."""
    new_index = np.cumsum(keep) - 1
    rows = keep[golden.qrels.query]
    qrels = Qrels(query=new_index[golden.qrels.query[rows]], doc=golden.qrels.doc[rows],
                  relevance=golden.qrels.relevance[rows], n_queries=int(keep.sum()), n_docs=golden.qrels.n_docs)
    kept = np.flatnonzero(keep)
    return GoldenSet(source or golden.source, [golden.query_ids[i] for i in kept], [golden.query_texts[i] for i in kept],
                     golden.doc_ids, golden.doc_texts, qrels, None, golden.missing_doc_ids, golden.warnings, golden.split)
