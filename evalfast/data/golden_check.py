"""Checking a golden set: every problem in a BEIR folder or a pairs file, not just the first.

:func:`~evalfast.data.golden.load_golden` stops at the first error; :func:`check_golden` reads leniently and
collects findings: errors (the set cannot be evaluated as written) and warnings (it can, but the figures
may mislead: duplicate or near-duplicate documents make ties, queries without a relevant document are skipped).

Example::

    report = check_golden("data/golden/handwritten")
    print(format_report(report))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evalfast.data.golden import KNOWN_COLUMNS, pair_rows, unread_warning
from evalfast.data.texts import id_problem, read_jsonl, text_problem, utf8_lines

MAX_LISTED = 20  # findings listed per code; the rest are summed up in one "... and N more" finding
NGRAM = 3  # near duplicates compare sets of word 3-grams
NEAR_DUPLICATE_JACCARD = 0.8
LSH_BANDS, LSH_ROWS = 10, 4  # a pair at Jaccard 0.8 becomes a candidate with probability 1 - (1 - 0.8**4)**10 > 0.99
MINHASH_SEED = 0
WORD_HASH_POSITIONS = 32  # positions in a word with their own hash multiplier (longer words wrap around)
WORD_HASH_BATCH = 10_000  # texts whose words are hashed at once

# Every code a check can report, with its fixed severity.
SEVERITY = {
    "missing-file": "error",
    "unknown-format": "error",
    "not-utf8": "error",
    "invalid-json": "error",
    "empty-file": "error",
    "missing-id": "error",
    "invalid-id": "error",  # whitespace or a control character, or not a string
    "invalid-field": "error",  # a text field that is a list, number, object, ...
    "missing-text": "error",
    "duplicate-id": "error",
    "qrels-columns": "error",
    "invalid-score": "error",
    "unknown-query": "error",
    "unknown-document": "error",
    "conflicting-judgment": "error",
    "missing-column": "error",
    "csv-columns": "error",  # a repeated column, or a row with more or fewer fields than the header
    "no-relevant-judgment": "error",  # load_golden refuses a split or file where nothing is relevant
    "invalid-relevance": "error",
    "duplicate-query": "warning",
    "duplicate-document": "warning",
    "near-duplicate-document": "warning",
    "query-equals-document": "warning",
    "no-relevant-document": "warning",
    "repeated-qrels-line": "error",  # load_golden refuses a (query, document) judged twice in a BEIR split
    "repeated-judgment": "warning",  # the seed's pairs protocol reads every row, repeats included
    "conflicting-pair": "warning",
    "unread-column": "warning",
}

_PUNCTUATION = re.compile(r"[^\w\s]+")
_ASCII_PUNCTUATION = bytes(c for c in range(128) if _PUNCTUATION.fullmatch(chr(c)))  # the same, for bytes.translate


@dataclass(frozen=True)
class Finding:
    """One problem: ``severity`` "error" or "warning", a stable ``code`` and a one-line ``message``."""

    severity: str
    code: str
    message: str


@dataclass(frozen=True)
class CheckReport:
    """The findings about one golden set (at most MAX_LISTED per code) and exact counts, errors and warnings
    included."""

    path: Path
    findings: list[Finding]
    counts: dict[str, int]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def exit_status(self) -> int:
        """1 if the golden set has any error, else 0."""
        return 1 if self.errors else 0


@dataclass(frozen=True)
class _Entry:
    """A query or document as the checks see it: its key (id, or text in a pairs file), text and location."""

    key: str
    text: str
    line: int
    label: str  # "<file> line <n> (<kind> <id>)", for messages


@dataclass(frozen=True)
class _Judgment:
    """One well-formed qrels line or pairs row."""

    split: str
    query: str
    doc: str
    score: float
    path: Path
    line: int
    subject: str  # what is judged, for messages: "q1 d7" or "the same query and context"

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"


class _Findings:
    """Findings collected while reading, grouped by code in order of first appearance."""

    def __init__(self) -> None:
        self.by_code: dict[str, list[str]] = {}

    def add(self, code: str, message: str) -> None:
        self.by_code.setdefault(code, []).append(message)

    def report(self, path: Path, counts: dict[str, int]) -> CheckReport:
        """Errors first; each code capped at MAX_LISTED findings, the counts exact."""
        listed: list[Finding] = []
        totals = {"error": 0, "warning": 0}
        for code in sorted(self.by_code, key=lambda c: SEVERITY[c] != "error"):
            messages, severity = self.by_code[code], SEVERITY[code]
            totals[severity] += len(messages)
            listed += [Finding(severity, code, message) for message in messages[:MAX_LISTED]]
            if len(messages) > MAX_LISTED:
                listed.append(Finding(severity, code, f"... and {len(messages) - MAX_LISTED} more {code} findings"))
        return CheckReport(path, listed, {**counts, "errors": totals["error"], "warnings": totals["warning"]})


def check_golden(path: str | Path) -> CheckReport:
    """Every problem with a golden set: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv) or a pairs
    .csv / .jsonl file (columns query, context, relevance)."""
    path = Path(path)
    found = _Findings()
    counts: dict[str, int] = {}
    if path.is_dir():
        counts = _check_beir(path, found)
    elif not path.exists():
        found.add("missing-file", f"{path}: no such file or folder; pass a BEIR folder, a .csv or a .jsonl golden set")
    elif path.suffix.lower() in (".csv", ".jsonl", ".json"):
        counts = _check_pairs(path, found)
    else:
        found.add("unknown-format", f"{path}: unknown golden set format {path.suffix!r}; use a BEIR folder, .csv "
                                    "or .jsonl")
    return found.report(path, counts)


def _count(n: int, plural: str) -> str:
    """``3 queries``, ``1 query``, ``1 split``."""
    singular = {"queries": "query"}.get(plural, plural[:-1])
    return f"{n} {singular if n == 1 else plural}"


def format_report(report: CheckReport) -> str:
    """One line per finding, then "N errors, M warnings" with what was read."""
    lines = [f"{f.severity:<7}  {f.code:<23}  {f.message}" for f in report.findings]
    read = ", ".join(_count(n, name) for name, n in report.counts.items() if name not in ("errors", "warnings"))
    lines.append(f"{_count(report.counts['errors'], 'errors')}, {_count(report.counts['warnings'], 'warnings')} "
                 f"in {report.path}" + (f" ({read})" if read else ""))
    return "\n".join(lines)


def report_json(report: CheckReport) -> dict:
    """The report as JSON-ready data (for --json)."""
    return {"path": str(report.path), "exit_status": report.exit_status(), "counts": dict(report.counts),
            "findings": [asdict(f) for f in report.findings]}


def normalise(text: str) -> str:
    """Lowercase, punctuation removed, whitespace collapsed: the text that duplicate checks compare."""
    lowered = text.lower()
    if lowered.isascii():  # the common case, several times faster than the regular expression
        stripped = lowered.encode().translate(None, _ASCII_PUNCTUATION).decode()
    else:
        stripped = _PUNCTUATION.sub("", lowered)
    return " ".join(stripped.split())


# --- fields (the files are read by golden's readers in their lenient mode: utf8_lines, read_jsonl, pair_rows)


def _clean(value: object) -> str:
    return "" if value is None else str(value).strip()


def _text(record: dict, field: str, where: str, found: _Findings) -> str:
    """A text field, stripped; one that is not a string is reported, and read as its JSON so that it is not also
    reported empty."""
    value = record.get(field)
    if problem := text_problem(field, value):
        found.add("invalid-field", f"{where}: {problem}")
        return json.dumps(value)
    return _clean(value)


def _valid_id(field: str, value: object, where: str, found: _Findings) -> bool:
    """Whether ``value`` is an id; if not, the finding."""
    problem = id_problem(field, value)
    if problem:
        found.add("invalid-id", f"{where}: {problem}")
    return problem is None


def _number(value: object) -> float | None:
    """The value as a finite float, or None."""
    try:
        number = float(_clean(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- BEIR folders ----------------------------------------------------------------------------------------


def _check_beir(folder: Path, found: _Findings) -> dict[str, int]:
    docs = _read_records(folder / "corpus.jsonl", "document", found)
    queries = _read_records(folder / "queries.jsonl", "query", found)
    qrels_files = sorted((folder / "qrels").glob("*.tsv"))
    if not qrels_files:
        found.add("missing-file", f"{folder / 'qrels'}: no <split>.tsv files; add qrels/test.tsv "
                                  "(lines: query-id corpus-id score)")
    judgments = [j for file in qrels_files for j in _read_qrels(file, queries, docs, found)]
    _check_judgments(judgments, found, "repeated-qrels-line", "conflicting-judgment", "keep one line")
    _check_texts([q for q in (queries or {}).values() if q.text], [d for d in (docs or {}).values() if d.text],
                 judgments, found)
    return {"queries": len(queries or ()), "documents": len(docs or ()), "judgments": len(judgments),
            "splits": len(qrels_files)}


def _read_records(path: Path, kind: str, found: _Findings) -> dict[str, _Entry] | None:
    """Corpus or query records by id (None if the file is missing); a document's text is its title and text."""
    if not path.is_file():
        found.add("missing-file", f"{path}: missing; a BEIR folder holds corpus.jsonl, queries.jsonl and "
                                  "qrels/<split>.tsv")
        return None
    entries: dict[str, _Entry] = {}
    for line_no, record in read_jsonl(path, found.add):
        where = f"{path} line {line_no}"
        if not _clean(record.get("_id")):
            found.add("missing-id", f"{where}: missing or empty _id; give every {kind} a unique _id")
            continue
        if not _valid_id("_id", record["_id"], where, found):
            continue
        record_id = str(record["_id"])
        if record_id in entries:
            found.add("duplicate-id", f"{where}: duplicate _id {record_id!r} (first on line "
                                      f"{entries[record_id].line}); ids must be unique")
            continue
        fields = ("title", "text") if kind == "document" else ("text",)
        text = " ".join(filter(None, (_text(record, field, where, found) for field in fields)))
        if not text:
            found.add("missing-text", f"{where}: {kind} {record_id!r} has no text; fill it in or remove the line")
        entries[record_id] = _Entry(record_id, text, line_no, f"{where} ({kind} {record_id!r})")
    return entries


def _read_qrels(path: Path, queries: Collection[str] | None, docs: Collection[str] | None,
                found: _Findings) -> Iterator[_Judgment]:
    """The well-formed judgments of one qrels file; ids are checked against files that exist. A file in which no
    line judges a document relevant is an error."""
    relevant = False
    for line_no, line in utf8_lines(path, report=found.add):
        fields = line.split()
        if not fields or (line_no == 1 and fields[-1].lower() == "score"):
            continue
        where = f"{path} line {line_no}"
        if len(fields) != 3:
            found.add("qrels-columns", f"{where}: expected 3 columns (query-id corpus-id score), got {len(fields)}")
            continue
        query_id, doc_id, text = fields
        score = _number(text)
        if score is None:
            found.add("invalid-score", f"{where}: score {text!r} is not a number; use 0 for not relevant, "
                                       "1 or more for relevant")
        relevant = relevant or (score or 0) > 0
        if not (_valid_id("query-id", query_id, where, found) and _valid_id("corpus-id", doc_id, where, found)):
            continue
        unknown_query = queries is not None and query_id not in queries
        unknown_doc = docs is not None and doc_id not in docs
        if unknown_query:
            found.add("unknown-query", f"{where}: query {query_id!r} is not in queries.jsonl; fix or drop the line")
        if unknown_doc:
            found.add("unknown-document", f"{where}: document {doc_id!r} is not in corpus.jsonl; fix or drop the line")
        if score is not None and not unknown_query and not unknown_doc:
            yield _Judgment(path.stem, query_id, doc_id, score, path, line_no, f"{query_id} {doc_id}")
    if not relevant:
        found.add("no-relevant-judgment", f"{path}: no query has a relevant document (no line with a score above 0), "
                                          "so evaluating this split fails; judge relevant documents 1 or more")


# --- pairs files -----------------------------------------------------------------------------------------


def _check_pairs(path: Path, found: _Findings) -> dict[str, int]:
    rows = pair_rows(path, found.add)
    queries: dict[str, _Entry] = {}
    contexts: dict[str, _Entry] = {}
    judgments: list[_Judgment] = []
    unread: set[str] = set()
    for line_no, row in rows:
        where = f"{path} line {line_no}"
        query, context, score = (_text(row, "query", where, found), _text(row, "context", where, found),
                                 _number(row.get("relevance")))
        for column, value in (("query", query), ("context", context)):
            if not value:
                found.add("missing-text", f"{where}: empty {column}; fill it in or remove the row")
        for column in ("query_id", "context_id"):
            if row.get(column) not in (None, ""):
                _valid_id(column, row[column], where, found)
        _text(row, "context_title", where, found)
        unread |= row.keys() - KNOWN_COLUMNS
        if score is None:
            found.add("invalid-relevance", f"{where}: relevance {row.get('relevance')!r} is not a number; "
                                           "use 0 for not relevant, 1 or more for relevant")
        if query and context and score is not None:
            queries.setdefault(query, _Entry(query, query, line_no, f"{where} (query)"))
            contexts.setdefault(context, _Entry(context, context, line_no, f"{where} (context)"))
            judgments.append(_Judgment("pairs", query, context, score, path, line_no, "the same query and context"))
    if unread:
        found.add("unread-column", unread_warning(path, unread))
    if judgments and not any(j.score > 0 for j in judgments):
        found.add("no-relevant-judgment", f"{path}: no query has a relevant document (every relevance is 0 or less), "
                                          "so evaluating it fails; give relevant contexts a relevance of 1 or more")
    _check_judgments(judgments, found, "repeated-judgment", "conflicting-pair",
                     "the qrels protocol keeps the highest, the pairs protocol scores both rows; keep one row")
    _check_texts(list(queries.values()), list(contexts.values()), judgments, found)
    return {"queries": len(queries), "documents": len(contexts), "judgments": len(judgments)}


# --- checks common to both layouts -----------------------------------------------------------------------


def _check_judgments(judgments: list[_Judgment], found: _Findings, repeat_code: str, conflict_code: str,
                     conflict_fix: str) -> None:
    """The same (split, query, document) judged again: repeated with the same score, or in conflict."""
    first: dict[tuple[str, str, str], _Judgment] = {}
    for judgment in judgments:
        prior = first.setdefault((judgment.split, judgment.query, judgment.doc), judgment)
        if prior is judgment:
            continue
        if judgment.score == prior.score:
            found.add(repeat_code, f"{judgment.where}: repeats line {prior.line} ({judgment.subject}, "
                                           f"{judgment.score:g}); drop the repeat")
        else:
            found.add(conflict_code, f"{judgment.where}: {judgment.subject} judged {judgment.score:g} here and "
                                     f"{prior.score:g} on line {prior.line}; {conflict_fix}")


def _check_texts(queries: list[_Entry], docs: list[_Entry], judgments: list[_Judgment], found: _Findings) -> None:
    """Duplicate and near-duplicate texts, queries that equal a document, queries with nothing relevant."""
    query_texts = [normalise(q.text) for q in queries]
    doc_texts = [normalise(d.text) for d in docs]
    _exact_duplicates(queries, query_texts, "duplicate-query", found)
    first_doc = _exact_duplicates(docs, doc_texts, "duplicate-document", found)
    distinct = list(first_doc.values())
    for i, j, jaccard in near_duplicate_pairs([doc_texts[k] for k in distinct]):
        found.add("near-duplicate-document", f"{docs[distinct[i]].label} and {docs[distinct[j]].label}: near "
                                             f"duplicates (word 3-gram Jaccard {jaccard:.2f}) that make ties; "
                                             "merge them or drop one")
    relevant = {j.query for j in judgments if j.score > 0}
    for query, text in zip(queries, query_texts):
        if text in first_doc:
            found.add("query-equals-document", f"{query.label}: same text as {docs[first_doc[text]].label}; "
                                               "a query should not give its answer away")
        if query.key not in relevant:
            found.add("no-relevant-document", f"{query.label}: no relevant document (score > 0) in any split, so "
                                              "metrics skip it; judge one or drop the query")


def _exact_duplicates(entries: list[_Entry], texts: list[str], code: str, found: _Findings) -> dict[str, int]:
    """Report each entry whose normalised text an earlier one has; return text -> index of its first entry."""
    first: dict[str, int] = {}
    for index, (entry, text) in enumerate(zip(entries, texts)):
        prior = first.setdefault(text, index)
        if prior != index:
            found.add(code, f"{entry.label}: same text as {entries[prior].label} once case, spacing and punctuation "
                            "are ignored; merge them or drop one")
    return first


# --- near duplicates: MinHash + LSH, verified exactly ----------------------------------------------------


def near_duplicate_pairs(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard), i < j, for texts (as :func:`normalise` gives them) whose sets of word 3-grams have
    Jaccard similarity >= threshold.

    Seeded MinHash signatures, banded (LSH), propose candidate pairs; each candidate is then verified exactly on
    its words. Texts with fewer than 3 words have no 3-grams and are never near duplicates.
    """
    rng = np.random.default_rng(MINHASH_SEED)
    shingles, starts, counts = _shingles(texts, rng)
    with_shingles = np.flatnonzero(counts)
    if len(with_shingles) < 2:
        return []
    candidates = with_shingles[_lsh_candidates(_minhash(shingles, starts[with_shingles], rng))]
    ngram_sets: dict[int, set[tuple[str, ...]]] = {}

    def ngrams(index: int) -> set[tuple[str, ...]]:
        if index not in ngram_sets:
            words = texts[index].split()
            ngram_sets[index] = set(zip(*(words[offset:] for offset in range(NGRAM))))
        return ngram_sets[index]

    found = []
    for a, b in candidates.tolist():
        set_a, set_b = ngrams(a), ngrams(b)
        shared = len(set_a & set_b)
        jaccard = shared / (len(set_a) + len(set_b) - shared)
        if jaccard >= threshold:
            found.append((a, b, jaccard))
    return found


def _shingles(texts: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint64 hashes of the word 3-grams of every text, concatenated; with each text's offset and number of 3-grams."""
    words, lengths = _word_hashes(texts, rng)
    counts = np.maximum(lengths - (NGRAM - 1), 0)
    starts = np.cumsum(counts) - counts
    word_starts = np.cumsum(lengths) - lengths
    positions = np.arange(counts.sum()) - np.repeat(starts - word_starts, counts)
    shingles = words[positions]
    for offset in range(1, NGRAM):
        shingles = _splitmix64(shingles) + words[positions + offset]
    return shingles, starts, counts


def _word_hashes(texts: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint64 hash of every word of the texts (normalised), in order, and the number of words of each text.

    Vectorised over bytes: a word's hash is the sum of (byte + 1) times a seeded random odd multiplier for the
    byte's position in the word. Collisions only add candidates, which verification drops. Texts are hashed
    WORD_HASH_BATCH at a time to bound memory.
    """
    multipliers = _random_words(rng, WORD_HASH_POSITIONS) | np.uint64(1)
    hashes, lengths = [], []
    for first in range(0, len(texts), WORD_HASH_BATCH):
        batch = texts[first:first + WORD_HASH_BATCH]
        data = np.frombuffer("\n".join(batch).encode(), np.uint8)
        in_word = data > 32  # normalised texts hold word bytes and single spaces, joined here by newlines
        word_bytes = np.flatnonzero(in_word)
        word_first = np.flatnonzero(~np.concatenate(([False], in_word[:-1]))[word_bytes])
        word_size = np.diff(np.append(word_first, len(word_bytes)))
        position = np.arange(len(word_bytes)) - np.repeat(word_first, word_size)
        values = multipliers[position % WORD_HASH_POSITIONS] * (data[word_bytes] + np.uint64(1))
        hashes.append(np.add.reduceat(values, word_first) if len(word_first) else values)
        text_of_word = np.searchsorted(np.flatnonzero(data == ord("\n")), word_bytes[word_first])
        lengths.append(np.bincount(text_of_word, minlength=len(batch)))
    return np.concatenate(hashes or [np.empty(0, np.uint64)]), np.concatenate(lengths or [np.empty(0, np.int64)])


def _random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer, so that hashes of structured codes look random."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _minhash(shingles: np.ndarray, starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint64 (n, LSH_BANDS * LSH_ROWS): per text (its 3-grams from each start to the next), the minimum of
    each seeded multiply-shift hash."""
    n_hashes = LSH_BANDS * LSH_ROWS
    salts = _random_words(rng, n_hashes)
    multipliers = _random_words(rng, n_hashes) | np.uint64(1)
    mixed = _splitmix64(shingles)
    signatures = np.empty((len(starts), n_hashes), np.uint64)
    for k in range(n_hashes):
        signatures[:, k] = np.minimum.reduceat(((mixed ^ salts[k]) * multipliers[k]) >> np.uint64(32), starts)
    return signatures


def _lsh_candidates(signatures: np.ndarray) -> np.ndarray:
    """int64 (m, 2) distinct row pairs (i < j) whose signatures agree on all rows of at least one band."""
    pairs = []
    for band in range(LSH_BANDS):
        keys = signatures[:, band * LSH_ROWS]
        for column in range(band * LSH_ROWS + 1, (band + 1) * LSH_ROWS):
            keys = keys * np.uint64(0x100000001B3) + signatures[:, column]
        pairs.append(_equal_key_pairs(keys))
    pairs = np.sort(np.concatenate(pairs), axis=1)
    n = len(signatures)
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def _equal_key_pairs(keys: np.ndarray) -> np.ndarray:
    """int64 (m, 2) every pair of positions with equal keys; the work is proportional to the pairs found."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    pairs = []
    active = np.arange(len(keys) - 1)
    gap = 1
    while active.size:
        # in sorted order, a key equal to the one `gap` places on equals every key in between
        active = active[active + gap < len(keys)]
        active = active[ordered[active + gap] == ordered[active]]
        pairs.append(np.stack([order[active], order[active + gap]], axis=1))
        gap += 1
    return np.concatenate(pairs)
