"""Converting golden sets between the seed's pairs CSV, pairs JSONL and BEIR folders, without losing anything.

Pairs files hold the columns query, context, relevance and, optionally, query_id, context_id and context_title,
so that BEIR -> CSV -> BEIR gives back the same ids, texts, titles and judgments. A conversion that cannot
carry everything (a document no judgment names, a pair judged twice differently) is refused with the reason.

Example::

    convert_golden("prompt_evaluation_dataset.csv", "golden/seed", to="beir")
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalfast.atomic import write_text
from evalfast.data.beir import Judgment, check_output, write_beir
from evalfast.data.golden import ID_COLUMNS, PAIR_COLUMNS, load_golden, pair_rows, read_jsonl
from evalfast.errors import EvalfastError

FORMATS = ("beir", "csv", "jsonl")
CORPUS_FIELDS = ("_id", "title", "text")
QUERY_FIELDS = ("_id", "text")
NAMED = 5  # ids or lines named in an error message before "..."


@dataclass(frozen=True)
class PairRow:
    """One row of a pairs file; an optional column is None where the file has no such column."""

    query: str
    context: str
    relevance: float
    query_id: str | None = None
    context_id: str | None = None
    context_title: str | None = None


def convert_golden(source: str | Path, target: str | Path, to: str, overwrite: bool = False,
                   split: str = "test") -> Path:
    """Convert a golden set to ``to`` ("beir", "csv" or "jsonl") at ``target``, written atomically.

    ``split`` is the qrels file read from a BEIR source or written to a BEIR target. Raises EvalfastError
    when the conversion would lose something, or when ``target`` exists and ``overwrite`` is false.
    """
    source, target = Path(source), Path(target)
    source_format = _format_of(source)
    if to not in FORMATS:
        raise EvalfastError(f"unknown format {to!r}; convert to one of {', '.join(FORMATS)}")
    if to == source_format:
        raise EvalfastError(f"{source} is already {to}; nothing to convert")
    if to != "beir" and target.suffix.lower() != f".{to}":
        raise EvalfastError(f"{target}: name a {to} golden set *.{to}, the suffix tells readers its format")
    check_output(target, overwrite)
    if source_format == "beir":
        _write_pairs(target, to, _beir_rows(source, split))
    elif to == "beir":
        _write_beir(source, target, _pairs_rows(source), split, overwrite)
    else:
        _write_pairs(target, to, [row for _, row in _pairs_rows(source)])
    return target


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "beir"
    formats = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
    if path.suffix.lower() not in formats:
        raise EvalfastError(f"{path}: unknown golden set format {path.suffix!r}; use a BEIR folder, .csv or .jsonl")
    return formats[path.suffix.lower()]


def _clean(value: object) -> str:
    return "" if value is None else str(value).strip()


def _score(relevance: float) -> int | float:
    """Relevance as an int when it is integral, else as given."""
    return int(relevance) if float(relevance).is_integer() else relevance


def _named(items: list[str]) -> str:
    return ", ".join(items[:NAMED]) + (", ..." if len(items) > NAMED else "")


def _refuse_extra_fields(path: Path, line_no: int, record: dict, carried: tuple[str, ...]) -> None:
    """Fields the target cannot hold must be empty."""
    extra = [str(k) for k, v in record.items() if k not in carried and v not in (None, "", [], {})]
    if extra:
        raise EvalfastError(f"{path} line {line_no}: field(s) {', '.join(extra)} would be lost (the conversion "
                            f"carries only {', '.join(carried)}); remove them first")


# --- reading ---------------------------------------------------------------------------------------------


def _beir_rows(folder: Path, split: str) -> list[PairRow]:
    """One row per qrels line of ``split``, in file order; refused if a document or query would be left out."""
    golden = load_golden(folder, split)  # the same checks, and messages, as evaluating the folder
    if golden.missing_doc_ids:
        raise EvalfastError(f"{folder}: qrels/{split}.tsv judges {len(golden.missing_doc_ids)} document(s) not in "
                            f"corpus.jsonl ({golden.missing_doc_ids[0]!r}, ...), and a pairs row needs the document's "
                            "text; add them to the corpus or drop their lines")
    corpus = folder / "corpus.jsonl"
    titled: dict[str, tuple[str, str]] = {}
    for line_no, record in read_jsonl(corpus):
        _refuse_extra_fields(corpus, line_no, record, CORPUS_FIELDS)
        title, text = _clean(record.get("title")), _clean(record.get("text"))
        if not text:
            raise EvalfastError(f"{corpus} line {line_no}: document has a title but no text, and a pairs row "
                                "needs a context; give it a text")
        titled[_clean(record["_id"])] = (title, text)
    for line_no, record in read_jsonl(folder / "queries.jsonl"):
        _refuse_extra_fields(folder / "queries.jsonl", line_no, record, QUERY_FIELDS)
    unjudged = [f"{len(missing)} {kind if len(missing) == 1 else kinds} ({_named(missing)})"
                for kind, kinds, ids, judged in (("document", "documents", golden.doc_ids, golden.qrels.doc),
                                                 ("query", "queries", golden.query_ids, golden.qrels.query))
                if (missing := [ids[i] for i in np.setdiff1d(np.arange(len(ids)), judged)])]
    if unjudged:
        raise EvalfastError(f"{folder}: no line of qrels/{split}.tsv names {' or '.join(unjudged)}, which would be "
                            "lost, since a pairs file holds only judged query-context rows; judge or remove them")
    return [PairRow(golden.query_texts[q], titled[golden.doc_ids[d]][1], relevance, golden.query_ids[q],
                    golden.doc_ids[d], titled[golden.doc_ids[d]][0])
            for q, d, relevance in zip(golden.qrels.query.tolist(), golden.qrels.doc.tolist(),
                                       golden.qrels.relevance.tolist())]


def _pairs_rows(path: Path) -> list[tuple[int, PairRow]]:
    """(line number, row) for every row of a pairs file, texts and relevance as load_golden reads them."""
    golden = load_golden(path)  # the same checks, and messages, as evaluating the file
    raw_rows = list(pair_rows(path))
    present = [c for c in ID_COLUMNS if any(c in raw for _, raw in raw_rows)]
    rows = []
    for (line_no, raw), q, d, relevance in zip(raw_rows, golden.pairs.query.tolist(), golden.pairs.doc.tolist(),
                                              golden.pairs.relevance.tolist()):
        _refuse_extra_fields(path, line_no, raw, PAIR_COLUMNS + ID_COLUMNS)
        optional = {column: _clean(raw.get(column)) for column in present}
        for column in ("query_id", "context_id"):
            if optional.get(column) == "":
                raise EvalfastError(f"{path} line {line_no}: empty {column}; fill it in on every row or drop the "
                                    "column")
        rows.append((line_no, PairRow(golden.query_texts[q], golden.doc_texts[d], relevance, **optional)))
    return rows


# --- writing ---------------------------------------------------------------------------------------------


def _write_pairs(target: Path, to: str, rows: list[PairRow]) -> None:
    columns = PAIR_COLUMNS + tuple(c for c in ID_COLUMNS if any(getattr(row, c) is not None for row in rows))
    records = [{column: getattr(row, column) for column in columns} | {"relevance": _score(row.relevance)}
               for row in rows]
    if to == "jsonl":
        write_text(target, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(target, buffer.getvalue())


class _Distinct:
    """Distinct queries or contexts in order of first appearance, keyed by their given id or else by content."""

    def __init__(self, prefix: str, id_column: str) -> None:
        self.prefix, self.id_column = prefix, id_column
        self.by_key: dict[object, tuple[str, tuple[str, ...], int]] = {}

    def add(self, given_id: str | None, content: tuple[str, ...], source: Path, line_no: int) -> str:
        """The id for this row's query or context: the given one, else q1, q2, ... (d1, d2, ...)."""
        key = content if given_id is None else given_id
        new_id = given_id or f"{self.prefix}{len(self.by_key) + 1}"
        record_id, known, first_line = self.by_key.setdefault(key, (new_id, content, line_no))
        if known != content:
            raise EvalfastError(f"{source} line {line_no}: {self.id_column} {record_id!r} names another text than on "
                                f"line {first_line}; give each text its own id")
        return record_id

    def records(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(record_id, content) for record_id, content, _ in self.by_key.values()]


def _write_beir(source: Path, target: Path, rows: list[tuple[int, PairRow]], split: str, overwrite: bool) -> None:
    """Corpus = distinct contexts, queries = distinct queries, one qrels line per distinct (query, context)."""
    queries, contexts = _Distinct("q", "query_id"), _Distinct("d", "context_id")
    judged: dict[tuple[str, str], tuple[float, int]] = {}
    conflicts = []
    for line_no, row in rows:
        query_id = queries.add(row.query_id, (row.query,), source, line_no)
        doc_id = contexts.add(row.context_id, (row.context_title or "", row.context), source, line_no)
        relevance, first_line = judged.setdefault((query_id, doc_id), (row.relevance, line_no))
        if relevance != row.relevance:
            conflicts.append(f"{first_line} and {line_no}")
    if conflicts:
        raise EvalfastError(f"{source} lines {_named(conflicts)}: the same query and context with different "
                            "relevance; a BEIR folder holds one judgment per pair and the seed's pairs protocol reads "
                            "every row in order, so conversion would change its figures; keep one row per pair")
    write_beir(target,
               corpus=[{"_id": doc_id, "title": title, "text": text} for doc_id, (title, text) in contexts.records()],
               queries=[{"_id": query_id, "text": text} for query_id, (text,) in queries.records()],
               qrels={split: [Judgment(q, d, _score(relevance)) for (q, d), (relevance, _) in judged.items()]},
               overwrite=overwrite)
