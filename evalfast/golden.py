"""Golden sets: queries, a corpus and relevance judgments, read from the seed's CSV, JSONL or a BEIR folder.

Texts and ids are Python lists (strings live only at the edges); judgments are integer index arrays
(:class:`~evalfast.qrels.Qrels`). The seed's CSV and JSONL also keep their rows in file order
(:class:`Pairs`) for the seed's row-wise ``pairs`` protocol.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GoldenSetError
from .qrels import Qrels

PAIR_COLUMNS = ("query", "context", "relevance")


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
    try:
        return _load(path, split)
    except UnicodeDecodeError as err:
        raise GoldenSetError(_where_not_utf8(path)) from err


def _where_not_utf8(path: Path) -> str:
    """Name the file and line of the first byte that is not UTF-8 (read again only on this error path)."""
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        raw = file.read_bytes() if file.is_file() else b""
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line_no = raw[: err.start].count(b"\n") + 1
            return f"{file} line {line_no}: not UTF-8 text; save the file as UTF-8"
    return f"{path}: not UTF-8 text; save it as UTF-8"


def _load(path: Path, split: str) -> GoldenSet:
    if path.is_dir():
        return _load_beir(path, split)
    if not path.exists():
        raise GoldenSetError(f"{path}: no such file or folder; pass a BEIR folder, a .csv or a .jsonl golden set")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _pairs_golden(path, _csv_rows(path))
    if suffix in (".jsonl", ".json"):
        return _pairs_golden(path, _jsonl_pair_rows(path))
    raise GoldenSetError(f"{path}: unknown golden set format {suffix!r}; use a BEIR folder, .csv or .jsonl")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PAIR_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GoldenSetError(
                f"{path} line 1: missing column(s) {', '.join(missing)}; the header must name "
                f"{', '.join(PAIR_COLUMNS)} (found: {', '.join(reader.fieldnames or []) or 'nothing'})"
            )
        for row in reader:
            yield reader.line_num, row


def _jsonl_pair_rows(path: Path) -> Iterator[tuple[int, dict]]:
    for line_no, record in read_jsonl(path):
        missing = [c for c in PAIR_COLUMNS if c not in record]
        if missing:
            raise GoldenSetError(f"{path} line {line_no}: missing field(s) {', '.join(missing)}")
        yield line_no, record


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object is an error."""
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise GoldenSetError(f"{path} line {line_no}: not valid JSON ({err.msg}); fix or remove the line") from err
            if not isinstance(record, dict):
                raise GoldenSetError(f"{path} line {line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record


def _text(path: Path, line_no: int, field: str, value: object) -> str:
    text = "" if value is None else str(value).strip()
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


def _pairs_golden(path: Path, rows: Iterator[tuple[int, dict]]) -> GoldenSet:
    """Index unique queries and contexts in order of first appearance; keep every row for the pairs protocol."""
    queries: dict[str, int] = {}
    contexts: dict[str, int] = {}
    row_query, row_doc, row_rel = [], [], []
    for line_no, row in rows:
        query = _text(path, line_no, "query", row.get("query"))
        context = _text(path, line_no, "context", row.get("context"))
        row_rel.append(_relevance(path, line_no, row.get("relevance")))
        row_query.append(queries.setdefault(query, len(queries)))
        row_doc.append(contexts.setdefault(context, len(contexts)))
    if not row_query:
        raise GoldenSetError(f"{path}: no rows; a golden set needs at least one query, context, relevance row")
    pairs = Pairs(np.asarray(row_query, np.int64), np.asarray(row_doc, np.int64), np.asarray(row_rel, np.float64))
    return GoldenSet(
        source=path,
        query_ids=[f"q{i}" for i in range(len(queries))],
        query_texts=list(queries),
        doc_ids=[f"d{i}" for i in range(len(contexts))],
        doc_texts=list(contexts),
        qrels=_max_relevance_qrels(pairs, len(queries), len(contexts)),
        pairs=pairs,
    )


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
    for required in (corpus_path, queries_path, qrels_path):
        if not required.is_file():
            raise GoldenSetError(
                f"{folder}: missing {required.relative_to(folder)}; a BEIR folder holds corpus.jsonl, "
                f"queries.jsonl and qrels/{split}.tsv"
            )
    doc_ids, doc_texts = _beir_records(corpus_path, with_title=True)
    if not doc_ids:
        raise GoldenSetError(f"{corpus_path}: the corpus is empty; add at least one document")
    query_ids, query_texts = _beir_records(queries_path, with_title=False, split=split)
    if not query_ids:
        raise GoldenSetError(f"{queries_path}: no queries (in split {split!r}); add at least one")
    qrels, missing = _read_beir_qrels(qrels_path, query_ids, doc_ids)
    warnings = ()
    if missing:
        shown = ", ".join(repr(d) for d in missing[:3]) + (", ..." if len(missing) > 3 else "")
        warnings = (f"{qrels_path}: {len(missing)} judged document(s) not in corpus.jsonl ({shown}); kept as "
                    "relevant but unretrievable, as trec_eval and MTEB count them",)
    return GoldenSet(folder, query_ids, query_texts, doc_ids, doc_texts, qrels, None, tuple(missing), warnings)


def _beir_records(path: Path, with_title: bool, split: str | None = None) -> tuple[list[str], list[str]]:
    """Ids and texts: a query's text as written, a document's ``(title + " " + text).strip()`` as MTEB and
    sentence-transformers' evaluator join them. Records with a "split" field other than ``split`` (as
    evalfast's generators write) are left out."""
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for line_no, record in read_jsonl(path):
        record_id = _text(path, line_no, "_id", record.get("_id"))
        if record_id in seen:
            raise GoldenSetError(
                f"{path} line {line_no}: duplicate _id {record_id!r} (first on line {seen[record_id]}); ids must be unique"
            )
        seen[record_id] = line_no
        if split is not None and record.get("split", split) != split:
            continue
        body = str(record.get("text") or "")
        text = f"{record.get('title') or ''} {body}".strip() if with_title else body
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
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if line_no == 1 and fields[-1].lower() == "score":
                continue
            if len(fields) != 3:
                raise GoldenSetError(f"{path} line {line_no}: expected 3 columns (query-id corpus-id score), got {len(fields)}")
            query_id, doc_id, score = fields
            if query_id not in query_index:
                raise GoldenSetError(f"{path} line {line_no}: query {query_id!r} is not in queries.jsonl; fix or drop the line")
            doc = doc_index.get(doc_id)
            if doc is None:
                doc = missing.setdefault(doc_id, len(doc_ids) + len(missing))
            key = (query_index[query_id], doc)
            if key in judged:
                raise GoldenSetError(
                    f"{path} line {line_no}: {query_id} {doc_id} is judged twice (first on line {judged[key][1]}); keep one line"
                )
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
                     golden.doc_ids, golden.doc_texts, qrels, None, golden.missing_doc_ids, golden.warnings)
