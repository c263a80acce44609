"""Read and write TREC qrels and run files as index arrays plus id vocabularies."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalfast.atomic import atomic_path
from evalfast.errors import EvalfastError
from evalfast.qrels import Qrels, pair_keys
from evalfast.run import Run, descending_name_rank, order_like_trec_eval, pack_rows
from evalfast.texts import first_non_id, id_problem, utf8_lines


@dataclass(frozen=True)
class _Format:
    """A TREC file layout: its columns (qid first, docid third) and the numeric column to read."""

    columns: str
    value_column: int  # 0-based
    convert: Callable[[str], float]
    value: str  # what the value column must hold, for error messages


QRELS = _Format("qid 0 docid rel", 3, int, "an integer relevance")
RUN = _Format("qid Q0 docid rank score tag", 4, float, "a numeric score")


def _records(path: str | os.PathLike[str], columns: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each non-blank line of a whitespace-separated UTF-8 file with these columns
    (a byte-order mark at its start is not part of the first field)."""
    name, width, empty = os.fspath(path), len(columns.split()), True
    try:
        for lineno, line in utf8_lines(Path(path), EvalfastError):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != width:
                got = len(fields)
                raise EvalfastError(f"{name} line {lineno}: expected {width} columns ({columns}), got {got}")
            empty = False
            yield lineno, fields
    except OSError as exc:
        raise EvalfastError(f"{name}: cannot read it ({exc.strerror or exc}); check the path") from exc
    if empty:
        raise EvalfastError(f"{name}: file is empty; expected lines of '{columns}'")


def _parse(convert: Callable[[str], float], text: str, where: str, expected: str) -> float:
    """convert(text), or EvalfastError "<where>: expected <expected>, got '<text>'" if it fails or gives NaN."""
    try:
        value = convert(text)
    except ValueError:
        value = float("nan")
    if value != value:  # NaN: unparseable, or a "nan" score that cannot be ranked
        raise EvalfastError(f"{where}: expected {expected}, got {text!r}")
    return value


@dataclass(frozen=True)
class _Lines:
    """A TREC file's lines: query, doc int64 (n,) index the name lists; value float64 (n,); line int64 (n,)."""

    path: str
    query: np.ndarray
    doc: np.ndarray
    value: np.ndarray
    line: np.ndarray
    query_names: list[str]
    doc_names: list[str]

    def distinct(self, same_value_ok: bool) -> np.ndarray:
        """int64 indices of each (query, doc) pair's first line, sorted by (query, doc).

        The first line repeating an earlier pair is an EvalfastError, unless same_value_ok and the values are equal.
        """
        keys = pair_keys(self.query, self.doc, len(self.doc_names))
        order = np.argsort(keys, kind="stable")
        earlier, later = order[:-1], order[1:]
        repeat = keys[earlier] == keys[later]
        clash = repeat & (self.value[earlier] != self.value[later]) if same_value_ok else repeat
        if clash.any():
            i = np.argmin(np.where(clash, later, keys.size))
            a, b = earlier[i], later[i]
            detail = f" with {self.value[b]:g} instead of {self.value[a]:g}" if same_value_ok else ""
            pair = f"query {self.query_names[self.query[b]]} doc {self.doc_names[self.doc[b]]}"
            where = f"{self.path} line {self.line[b]}"
            raise EvalfastError(f"{where}: {pair} repeats line {self.line[a]}{detail}; keep one line per query and doc")
        return order[np.r_[True, ~repeat]]

    def refuse_bad_names(self, known_queries: int, known_docs: int) -> None:
        """EvalfastError at the first line that brings a new name (after the known ones) that is not an id."""
        first_bad = []
        for column, names, known, field in ((self.query, self.query_names, known_queries, "qid"),
                                            (self.doc, self.doc_names, known_docs, "docid")):
            index = first_non_id(names, known)
            if index is not None:  # names are numbered in order of first appearance
                first_bad.append((int(self.line[np.argmax(column == index)]), id_problem(field, names[index])))
        if first_bad:
            line, problem = min(first_bad)
            raise EvalfastError(f"{self.path} line {line}: {problem}")


def _read_lines(path: str | os.PathLike[str], form: _Format, query_names: list[str], doc_names: list[str]) -> _Lines:
    """Parse qid, docid and the value column of each line of a TREC file.

    Unseen names are appended to copies of query_names and doc_names, numbered in order of first appearance;
    one holding a control character is an EvalfastError naming its first line.
    """
    queries = {qid: i for i, qid in enumerate(query_names)}
    docs = {docid: i for i, docid in enumerate(doc_names)}
    file, expected = os.fspath(path), f"{form.value} in column {form.value_column + 1} ({form.columns})"
    rows: list[tuple[int, int, float, int]] = []
    for lineno, fields in _records(path, form.columns):
        number = _parse(form.convert, fields[form.value_column], f"{file} line {lineno}", expected)
        qid, docid = fields[0], fields[2]
        rows.append((queries.setdefault(qid, len(queries)), docs.setdefault(docid, len(docs)), number, lineno))
    query, doc, values, line = (np.array(column) for column in zip(*rows))
    lines = _Lines(file, query, doc, values.astype(np.float64), line, list(queries), list(docs))
    lines.refuse_bad_names(len(query_names), len(doc_names))
    return lines


def read_qrels(path: str | os.PathLike[str]) -> tuple[Qrels, list[str], list[str]]:
    """Read 'qid 0 docid rel' lines (rel an integer, may be negative) -> (Qrels, query names, doc names).

    Names are numbered in order of first appearance. A repeated (qid, docid) line with the same rel is dropped;
    with a different rel it is an error.
    """
    lines = _read_lines(path, QRELS, [], [])
    keep = lines.distinct(same_value_ok=True)
    qrels = Qrels(lines.query[keep], lines.doc[keep], lines.value[keep], len(lines.query_names), len(lines.doc_names))
    return qrels, lines.query_names, lines.doc_names


def read_run(
    path: str | os.PathLike[str], query_names: list[str], doc_names: list[str]
) -> tuple[Run, list[str], list[str]]:
    """Read 'qid Q0 docid rank score tag' lines -> (Run, extended query names, extended doc names).

    Unknown qids/docids get new indices after the given names (the input lists are not modified). Row i of the
    Run is query i, ordered like trec_eval (score desc, ties by docid desc; the rank column is ignored) and
    padded with -1 / -inf to the deepest query. A (qid, docid) pair listed twice is an error.
    """
    lines = _read_lines(path, RUN, query_names, doc_names)
    keep = lines.distinct(same_value_ok=False)
    n_queries = len(lines.query_names)
    doc_ids = pack_rows(lines.query[keep], lines.doc[keep], n_queries, -1)
    scores = pack_rows(lines.query[keep], lines.value[keep], n_queries, -np.inf)
    run = order_like_trec_eval(doc_ids, scores, descending_name_rank(lines.doc_names))
    return run, lines.query_names, lines.doc_names


def write_run(path: str | os.PathLike[str], run: Run, query_names: list[str], doc_names: list[str], tag: str) -> None:
    """Write the run's hits as 'qid Q0 docid rank score tag' lines, rank = position + 1, scores to float32 precision.

    Atomic (evalfast.atomic.atomic_path): written to a temporary file in the same folder, then os.replace'd.
    A written qid or docid with whitespace or a control character (it would shift columns or forge lines) is an
    EvalfastError, and nothing is written.
    """
    if tag.split() != [tag]:
        raise EvalfastError(f"run tag {tag!r}: must be one word without whitespace")
    query, rank = np.nonzero(run.doc_ids >= 0)
    for field, names, written in (("qid", query_names, query), ("docid", doc_names, run.doc_ids[query, rank])):
        chosen = [names[i] for i in np.unique(written).tolist()]
        bad = first_non_id(chosen)
        if bad is not None:
            raise EvalfastError(f"{os.fspath(path)}: cannot write the run: {id_problem(field, chosen[bad])}")
    lines = zip(query.tolist(), run.doc_ids[query, rank].tolist(), rank.tolist(), run.scores[query, rank].tolist())
    try:
        with atomic_path(path) as temp, open(temp, "w", encoding="utf-8") as out:
            out.writelines(f"{query_names[q]} Q0 {doc_names[d]} {r + 1} {s:.9g} {tag}\n" for q, d, r, s in lines)
    except OSError as exc:
        raise EvalfastError(f"{os.fspath(path)}: cannot write the run ({exc}); check the folder is writable") from exc
