"""Read and write TREC qrels and run files (and BEIR qrels TSV) as index arrays plus id vocabularies.

The readers accept what trec_eval 10 accepts and read numbers as it does, or refuse the line (evalfast.data.trec_parse
has the rules): blank lines, comment lines (first field starting with "#"), tabs or spaces, CRLF, fields after a
run's tag. A qrels file is TREC ('qid 0 docid rel') or, when its first line has three fields, BEIR TSV ('query-id
corpus-id score', after an optional header whose last field is "score").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from evalfast.atomic import atomic_path
from evalfast.data.qrels import Qrels, pair_keys
from evalfast.data.run import Run, descending_name_rank, order_like_trec_eval, pack_rows
from evalfast.data.texts import first_non_id, id_problem, shown
from evalfast.data.trec_parse import (MAX_INTEGER_DIGITS, Layout, Parsed, Text, c_reads, decode, fields_at, line_of,
                                      read_table)
from evalfast.errors import EvalfastError

TREC_QRELS = Layout("trec", "TREC qrels", "qid 0 docid rel", 4, False, (0, 2, 3), ("qid", "docid", "relevance"), True)
BEIR_QRELS = Layout("beir-tsv", "BEIR qrels TSV", "query-id corpus-id score", 3, False, (0, 1, 2),
                    ("query-id", "corpus-id", "score"), True)
TREC_RUN = Layout("trec", "a TREC run", "qid Q0 docid rank score tag", 6, True, (0, 2, 4), ("qid", "docid", "score"),
                  False)
FORMATS = {layout.format: f"{layout.kind} ({layout.columns})" for layout in (TREC_QRELS, BEIR_QRELS)}


class FileNames(Sequence[str]):
    """Names read from a file, decoded when first used: until then their bytes stay in the file's buffer (a qrels
    file's documents are often only looked up by the native reader, and never needed as str). Compares equal to a
    list of the same names."""

    def __init__(self, text: Text, start: np.ndarray, length: np.ndarray) -> None:
        self._text, self._start, self._length = text, start, length
        self._names: list[str] | None = None

    def _decoded(self) -> list[str]:
        if self._names is None:
            self._names = decode(self._text, self._start, self._length)
        return self._names

    def __len__(self) -> int:
        return len(self._start)

    def __getitem__(self, index):
        return self._decoded()[index]

    def __iter__(self):
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, FileNames)) else NotImplemented

    def __add__(self, other: Sequence[str]) -> list[str]:
        return self._decoded() + list(other)

    def __radd__(self, other: Sequence[str]) -> list[str]:
        return list(other) + self._decoded()

    def __repr__(self) -> str:
        return f"FileNames({self._decoded()!r})"

    def pick(self, ids: np.ndarray) -> list[str]:
        """The names of these ids, decoding only them while the rest are not decoded."""
        if self._names is not None:
            return [self._names[i] for i in ids.tolist()]
        return decode(self._text, self._start[ids], self._length[ids])


def _pick(names: Sequence[str], ids: np.ndarray) -> list[str]:
    """names[i] for each id."""
    return names.pick(ids) if isinstance(names, FileNames) else [names[i] for i in ids.tolist()]


def _extended(names: Sequence[str], text: Text, start: np.ndarray, length: np.ndarray) -> Sequence[str]:
    """A copy of names, then the new names at these byte ranges of the text (FileNames when one of the two is
    empty: nothing is decoded yet)."""
    if not len(names):
        return FileNames(text, start, length)
    if not start.size and isinstance(names, FileNames):  # immutable: no copy needed
        return names
    return list(names) + decode(text, start, length)


@dataclass(frozen=True)
class _Table:
    """A TREC or BEIR file's data lines: query, doc int64 (n,) index the name lists (doc -1: a document not known,
    when the parse did not number documents); value float64 (n,)."""

    text: Text
    parsed: Parsed
    query_names: Sequence[str]
    doc_names: Sequence[str]

    @property
    def query(self) -> np.ndarray:
        return self.parsed.query

    @property
    def doc(self) -> np.ndarray:
        return self.parsed.doc

    @property
    def value(self) -> np.ndarray:
        return self.parsed.values

    def line(self, row: int) -> int:
        """The line number of data row ``row`` (for error messages)."""
        return self.parsed.line(self.text, row)

    def where(self, row: int) -> str:
        return f"{self.text.path} line {self.line(row)}"

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
            raise self.repeat_error(b, a, self.doc_names[self.doc[b]], detail)
        return order[np.r_[True, ~repeat]]

    def repeat_error(self, row: int, earlier: int, doc_name: str, detail: str = "") -> EvalfastError:
        """Row ``row`` lists the (query, doc) of row ``earlier`` again."""
        pair = f"query {self.query_names[self.query[row]]} doc {doc_name}"
        return EvalfastError(f"{self.where(row)}: {pair} repeats line {self.line(earlier)}{detail}; keep one line per "
                             "query and doc")


def _number_problem(field: bytes, what: str, integer: bool) -> str:
    """Why a relevance (integer) or score field is refused, and the fix."""
    fix = "write a whole number such as 0, 1 or 2" if integer else "write it in plain decimal, e.g. 12.5, -0.3 or 1e-4"
    kind, reader = ("an integer", "atol") if integer else ("a number", "atof")
    read, value = c_reads(field, integer)
    text = shown(field.decode("utf-8"))
    if integer and read == field:
        return f"{what} {text} has more than {MAX_INTEGER_DIGITS} digits; {fix}"
    if value != value:
        return f"{what} {text} is NaN, which cannot be ranked; give every line a number"
    if read == field:
        return f"{what} {text} is not plain decimal (trec_eval's atof reads it as {value!r}); {fix}"
    reading = f"reads only {shown(read.decode())} of it, as {value!r}" if read else f"reads nothing of it, as {value!r}"
    return f"{what} {text} is not {kind} as trec_eval reads it (its {reader} {reading}); {fix}"


def _read_table(path: str | os.PathLike[str], choose: Callable[[Text, list[bytes], int], Layout], expected: str,
                query_names: Sequence[str], doc_names: Sequence[str], **options) -> _Table:
    """Parse the qid, docid and number of each data line of a TREC or BEIR file (options: read_table's).

    Unseen names are appended to copies of query_names and doc_names (or given as FileNames when there were
    none), numbered in order of first appearance
    (unseen documents only where the parse numbered them: see read_table's known_docs_only); a number that is not
    plain C syntax, and a name that is not an id, are EvalfastErrors naming their first line.
    """
    text, parsed = read_table(path, choose, expected, query_names, doc_names, **options)
    layout = parsed.layout
    if parsed.bad_number is not None:
        start, length = parsed.bad_number
        field = text.data[start:start + length].tobytes()
        raise EvalfastError(f"{text.path} line {line_of(text, start)}: "
                            f"{_number_problem(field, layout.names[2], layout.integers)}")
    (query_start, query_length, query_first), (doc_start, doc_length, doc_first) = parsed.new_queries, parsed.new_docs
    all_queries = _extended(query_names, text, query_start, query_length)
    all_docs = _extended(doc_names, text, doc_start, doc_length)
    table = _Table(text, parsed, all_queries, all_docs)
    first_bad = []
    for names, known, first, field_name in ((all_queries, len(query_names), query_first, layout.names[0]),
                                           (all_docs, len(doc_names), doc_first, layout.names[1])):
        index = None if parsed.plain_ids else first_non_id(names, known)
        if index is not None:  # names are numbered in order of first appearance
            first_bad.append((table.line(int(first[index - known])), id_problem(field_name, names[index])))
    if first_bad:
        line, problem = min(first_bad)
        raise EvalfastError(f"{text.path} line {line}: {problem}")
    return table


def _qrels_layout(text: Text, first: list[bytes], line: int) -> Layout:
    """TREC qrels for four fields on the first data line; BEIR TSV for three (a header when the last is "score")."""
    if len(first) == TREC_QRELS.n_fields:
        return TREC_QRELS
    if len(first) == BEIR_QRELS.n_fields:
        return replace(BEIR_QRELS, header=first[-1].lower() == b"score")
    raise EvalfastError(f"{text.path} line {line}: expected 4 columns ({TREC_QRELS.columns}: {TREC_QRELS.kind}) or 3 "
                        f"({BEIR_QRELS.columns}: {BEIR_QRELS.kind}), got {len(first)}")


@dataclass(frozen=True)
class QrelsFile:
    """A qrels file read: the judgments, the names their indices stand for, and the format found ("trec" or
    "beir-tsv"; FORMATS says each in words)."""

    qrels: Qrels
    query_names: Sequence[str]
    doc_names: Sequence[str]  # FileNames: decoded when first used
    format: str
    doc_table: object | None = None  # the native reader's table of doc_names, for read_run_to_score to look up in


def read_qrels_file(path: str | os.PathLike[str]) -> QrelsFile:
    """Read TREC 'qid 0 docid rel' or BEIR TSV 'query-id corpus-id score' lines (rel an integer, may be negative).

    Names are numbered in order of first appearance. A repeated (qid, docid) line with the same rel is dropped;
    with a different rel it is an error.
    """
    table = _read_table(path, _qrels_layout, f"'{TREC_QRELS.columns}' or '{BEIR_QRELS.columns}'", [], [],
                        keep_doc_table=True)
    keep = table.distinct(same_value_ok=True)
    qrels = Qrels(table.query[keep], table.doc[keep], table.value[keep], len(table.query_names), len(table.doc_names))
    return QrelsFile(qrels, table.query_names, table.doc_names, table.parsed.layout.format, table.parsed.doc_table)


def read_qrels(path: str | os.PathLike[str]) -> tuple[Qrels, Sequence[str], Sequence[str]]:
    """read_qrels_file's (Qrels, query names, doc names)."""
    read = read_qrels_file(path)
    return read.qrels, read.query_names, read.doc_names


def _grouped_by(query: np.ndarray, n_queries: int) -> np.ndarray | slice:
    """Indices that order rows by query, keeping file order within a query (a slice when they already are)."""
    if np.all(query[1:] >= query[:-1]):
        return slice(None)
    return np.argsort(query.astype(np.uint16) if n_queries <= 1 << 16 else query, kind="stable")  # radix for uint16


def _trec_eval_order(doc_ids: np.ndarray, scores: np.ndarray, names_of: Callable[[np.ndarray], list[str]]) -> Run:
    """order_like_trec_eval(doc_ids, scores float64, names' rank), names_of(ids) asked only for documents tied on a
    score."""
    if not (scores[:, :-1] >= scores[:, 1:]).all():  # most runs are written best first (padding is -inf)
        order = np.argsort(np.where(doc_ids >= 0, -scores, np.nan), axis=1)  # NaN: no hit, sorted last
        doc_ids, scores = np.take_along_axis(doc_ids, order, 1), np.take_along_axis(scores, order, 1)
    tied = (scores[:, 1:] == scores[:, :-1]) & (doc_ids[:, 1:] >= 0)  # hits come first: a hit after a hit
    rows = np.flatnonzero(tied.any(axis=1))
    if rows.size:  # settle each tie as trec_eval does: docid descending
        in_tie = np.zeros(doc_ids.shape, bool)
        in_tie[:, 1:] |= tied
        in_tie[:, :-1] |= tied
        docs = np.sort(doc_ids[in_tie])
        docs = docs[np.concatenate([[True], docs[1:] != docs[:-1]])]  # distinct, as np.unique (which imports numpy.ma)
        rank = np.zeros(int(doc_ids[rows].max()) + 1, np.int64)  # the rows' other documents rank 0: not tied
        rank[docs] = descending_name_rank(names_of(docs))
        settled = order_like_trec_eval(doc_ids[rows], scores[rows], rank)
        doc_ids[rows], scores[rows] = settled.doc_ids, settled.scores
    with np.errstate(over="ignore"):  # a score past float32's range is stored as infinity; it was ranked as read
        return Run(doc_ids, scores)


def _ranked(table: _Table, names_of: Callable[[np.ndarray], list[str]]) -> Run:
    """The table's lines as a Run (row i: query i), a (query, doc) pair listed twice refused."""
    rows = _grouped_by(table.query, len(table.query_names))
    query = table.query[rows]
    doc_ids = pack_rows(query, table.doc[rows], len(table.query_names), -1)
    if table.parsed.repeated is not None:  # found as the lines were read
        row, earlier = table.parsed.repeated
        raise table.repeat_error(row, earlier, fields_at(table.text, table.parsed.offsets[[row]])[0])
    if table.parsed.docs_numbered:
        ordered = np.sort(doc_ids, axis=1)
        if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
            table.distinct(same_value_ok=False)  # names the first repeated line
        del ordered
    scores = pack_rows(query, table.value[rows], len(table.query_names), -np.inf)
    del rows, query
    return _trec_eval_order(doc_ids, scores, names_of)


def _names_of(table: _Table) -> Callable[[np.ndarray], list[str]]:
    """The names of documents by id (sorted ids): numbered ones from the name list, others from their line."""
    known = len(table.doc_names)

    def names_of(ids: np.ndarray) -> list[str]:
        numbered, unnumbered = ids[ids < known], ids[ids >= known] - known
        named = _pick(table.doc_names, numbered)
        return named + (fields_at(table.text, table.parsed.offsets[unnumbered]) if unnumbered.size else [])

    return names_of


def read_run(
    path: str | os.PathLike[str], query_names: list[str], doc_names: list[str]
) -> tuple[Run, list[str], list[str]]:
    """Read 'qid Q0 docid rank score tag' lines (any fields after the tag ignored) -> (Run, extended query names,
    extended doc names).

    Unknown qids/docids get new indices after the given names (the input lists are not modified). Row i of the
    Run is query i, ordered like trec_eval (score desc, ties by docid desc; the rank column is ignored) and
    padded with -1 / -inf to the deepest query. A (qid, docid) pair listed twice is an error.
    """
    table = _read_table(path, lambda text, first, line: TREC_RUN, repr(TREC_RUN.columns), query_names, doc_names)
    return _ranked(table, _names_of(table)), table.query_names, table.doc_names


def read_run_to_score(path: str | os.PathLike[str], query_names: list[str], doc_names: list[str],
                      doc_table: object | None = None) -> tuple[Run, list[str]]:
    """read_run for scoring against qrels of these names -> (Run, extended query names), faster: a document absent
    from doc_names needs no name, so it may get an id of its own line's, len(doc_names) + its row, and two lines
    naming one such document two ids (both unjudged). Everything read_run refuses is refused alike. doc_table:
    the qrels' QrelsFile.doc_table, which spares numbering doc_names again.
    """
    table = _read_table(path, lambda text, first, line: TREC_RUN, repr(TREC_RUN.columns), query_names, doc_names,
                        known_docs_only=True, doc_table=doc_table)
    return _ranked(table, _names_of(table)), table.query_names


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
