"""Whitespace-separated text tables (TREC qrels and runs, BEIR qrels TSV) read at C speed: the file's bytes are
tokenised, its ids interned and its numbers parsed with numpy, with no Python loop over its lines.

The rules are trec_eval 10's (get_qrels.c, get_trec_results.c):

- fields are separated by runs of C whitespace (space, tab, \\r, \\v, \\f) and a line ends at \\n, so CRLF files
  read as LF ones; any other byte, a control character included, belongs to its field;
- a line with no field is blank and a line whose first field starts with "#" is a comment: both are skipped (trec_eval's
  run reader does the same; its qrels reader skips only a "#" in the first column, one line at a time, and refuses
  blank lines);
- a file whose lines end in a carriage return alone (classic Mac OS) is refused, which trec_eval reads as one line;
- a score is read as C's atof (strtod) reads it and a relevance as atol reads it, but only when the whole field is
  plain C syntax: [+-] digits [. digits] [e [+-] digits] for a score (or inf / infinity, any case), [+-] digits for
  a relevance. Any other field is refused rather than read as C reads its prefix ("1_0" is 1 to C and 10 to
  Python; Arabic-Indic digits are 0 to C and numbers to Python): a number is never read differently, nor cut.

A byte-order mark at the start of a file is dropped; bytes that are not UTF-8 are refused with their line.

parse_table reads a file in one native pass (evalfast.data._tablescan, a C extension built at install) or, where it
could not be built, with the numpy functions below; the tests hold the two to the same answers.
"""

from __future__ import annotations

import codecs
import mmap
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from evalfast.data.texts import not_utf8_at
from evalfast.errors import EvalfastError

try:
    from evalfast.data import _tablescan  # the native reader (_tablescan.c), built when a C compiler was found
except ImportError:  # pragma: no cover - the numpy reader gives the same answers
    _tablescan = None

THREADS = min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
PART_BYTES = 1 << 22  # the least text one thread of the native reader takes
PAD = 64  # zero bytes after the text and its appended names: 8-byte words and short windows stay in the buffer
CHUNK = 1 << 22  # bytes tokenised at a time: bounds the temporaries to a few times this
BLOCK = 1 << 22  # bytes of fixed-width fields gathered at a time
KEPT_WORDS = 2  # ids of up to 16 bytes: their words are kept between hashing and checking
NEWLINE, CARRIAGE_RETURN, HASH, BOM = 10, 13, ord("#"), b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Text:
    """A text file's bytes: data holds them (after any byte-order mark, ending in a newline), then the appended
    bytes (names to match the file's fields against) from ``appended_at`` on, then zero padding."""

    path: str
    data: np.ndarray  # uint8
    size: int  # bytes of text in data
    appended_at: int
    skipped: int  # bytes of the file before data[0]: its byte-order mark

    def rows(self, start: np.ndarray, width: int) -> np.ndarray:
        """(n, width) uint8: the ``width`` bytes from each start (past the buffer's end: its last byte, a zero)."""
        if width <= PAD:
            return np.lib.stride_tricks.sliding_window_view(self.data, width)[start]
        return self.data[np.minimum(start[:, None] + np.arange(width), self.data.size - 1)]

    def words(self) -> np.ndarray:
        """(len(data) - 7,) uint64 view, not aligned: element i is the 8 bytes data[i:i + 8]."""
        return np.ndarray((self.data.size - 7,), np.uint64, self.data, 0, (1,))

    def appended_lines(self, counts: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(start, length) of the appended bytes' lines, split in groups of ``counts`` lines."""
        end = np.flatnonzero(self.data[self.appended_at: self.data.size - PAD] == NEWLINE) + self.appended_at
        if end.size != sum(counts):
            raise ValueError("known names must not hold a newline")
        start = np.concatenate([[self.appended_at], end[:-1] + 1])[: end.size].astype(np.int64)
        bounds = np.cumsum([0, *counts])
        return [(start[a:b], end[a:b] - start[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def read_text(path: str | os.PathLike[str], appended: bytes = b"") -> Text:
    """The file's bytes, read once, with ``appended`` after them; EvalfastError when it cannot be read."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            raw = None if stat.S_ISREG(info.st_mode) else handle.read()  # a pipe's size is known only at its end
            capacity = info.st_size if raw is None else len(raw)
            buffer = np.zeros(capacity + 1 + len(appended) + PAD, np.uint8)
            if raw is None:
                size = handle.readinto(memoryview(buffer)[:capacity])
            else:
                buffer[:capacity], size = np.frombuffer(raw, np.uint8), capacity
    except OSError as exc:
        raise EvalfastError(f"{name}: cannot read it ({exc.strerror or exc}); check the path") from exc
    buffer[capacity + 1: capacity + 1 + len(appended)] = np.frombuffer(appended, np.uint8)
    skip = len(BOM) if buffer[: len(BOM)].tobytes() == BOM else 0
    data, size = buffer[skip:], max(size - skip, 0)
    if size and data[size - 1] != NEWLINE:
        data[size] = NEWLINE
        size += 1
    return Text(name, data, size, capacity + 1 - skip, skip)


def map_text(path: str | os.PathLike[str]) -> Text | None:
    """The file's bytes mapped read-only (no copy), when it is a regular file ending in a newline; else None, and
    read_text copies it. (The file must not shrink while it is read.)"""
    try:
        info = os.stat(path)  # before opening it: opening a named pipe would wait for its writer, and consume it
        if not stat.S_ISREG(info.st_mode) or not info.st_size:
            return None
        with open(path, "rb") as handle:
            data = np.frombuffer(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
    except (OSError, ValueError):  # read_text says why it cannot be read
        return None
    if data[-1] != NEWLINE:
        return None
    skip = len(BOM) if data[: len(BOM)].tobytes() == BOM else 0
    return Text(os.fspath(path), data[skip:], data.size - skip, data.size - skip, skip)


@dataclass(frozen=True)
class Layout:
    """What each data line of a file format holds, and which fields are read from it."""

    format: str  # "trec" or "beir-tsv"
    kind: str  # in words, e.g. "TREC qrels"
    columns: str  # the fields, named for messages, e.g. "qid 0 docid rel"
    n_fields: int
    more_fields_ok: bool  # fields after these are ignored (a run's after its tag), else refused
    picked: tuple[int, int, int]  # 0-based: the query id, the document id and the number
    names: tuple[str, str, str]  # what those three are called in messages
    integers: bool  # the number is a relevance label, read as atol reads it; else a score, read as atof does
    header: bool = False  # the first data line names the columns and is skipped


@dataclass(frozen=True)
class Fields:
    """The picked fields of every data line (blank lines, comments and a header left out), in file order."""

    start: np.ndarray  # (3, n): byte offset in Text.data of each picked field of each data line
    length: np.ndarray  # (3, n)

    def column(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, length) of picked field i."""
        return self.start[i], self.length[i]


def _chunks(text: Text) -> Iterator[tuple[int, int]]:
    """[lo, hi) byte ranges of about CHUNK bytes covering the text, each ending just after a newline."""
    lo = 0
    while lo < text.size:
        hi = min(lo + CHUNK, text.size)
        while text.data[hi - 1] != NEWLINE:  # back to the last newline, or on to the next when there is none
            back = np.flatnonzero(text.data[lo:hi] == NEWLINE)
            hi = min(lo + int(back[-1]) + 1 if back.size else hi + CHUNK, text.size)
        yield lo, hi
        lo = hi


def _tokens(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fields of a chunk of whole lines: (start, end) int64 byte offsets of each field, and fields per line."""
    separator = np.flatnonzero(chunk <= 32)
    byte = chunk[separator]
    whitespace = (byte == 32) | ((byte - 9) <= 4)  # space, \t \n \v \f \r (uint8 arithmetic wraps below 9)
    if not whitespace.all():  # a control character: part of its field, as in C
        separator, byte = separator[whitespace], byte[whitespace]
    before = np.empty_like(separator)
    before[0], before[1:] = -1, separator[:-1]
    ends = separator - before > 1  # a field ends at each separator that does not follow another one
    newline = np.flatnonzero(byte == NEWLINE)
    if ends.all():  # one separator between fields, none at the start of a line: the usual file
        return before + 1, separator, np.diff(newline + 1, prepend=0)
    return before[ends] + 1, separator[ends], np.diff(np.cumsum(ends)[newline], prepend=0)


def _check_utf8(text: Text, chunk: np.ndarray, lo: int, lines_before: int) -> None:
    """EvalfastError naming the line and byte offset of the first byte that is not UTF-8, as texts.not_utf8 does
    (without reading the file again: it may be a pipe). A chunk ends at a newline, which no UTF-8 sequence holds."""
    if chunk.size and chunk.max() >= 0x80:
        try:
            codecs.utf_8_decode(memoryview(chunk), "strict", True)
        except UnicodeDecodeError as err:
            line = lines_before + int(np.count_nonzero(chunk[: err.start] == NEWLINE)) + 1
            raise EvalfastError(not_utf8_at(text.path, line, text.skipped + lo + err.start, int(chunk[err.start]))) from None


def _newlines(text: Text) -> int:
    """How many lines the text has (each ends in a newline); a text of one line holding carriage returns, as a classic
    Mac OS file is, is an EvalfastError."""
    if _tablescan is not None:
        count = _tablescan.count_byte(text.data, text.size, NEWLINE)
    else:
        count = sum(int(np.count_nonzero(text.data[lo:hi] == NEWLINE)) for lo, hi in _chunks(text))
    if count == 1 and np.count_nonzero(text.data[: text.size - 2] == CARRIAGE_RETURN):
        raise EvalfastError(f"{text.path}: its lines end in a carriage return alone (classic Mac OS), which trec_eval "
                            "reads as one line; convert it to \\n line endings (e.g. tr '\\r' '\\n')")
    return count


def _check_text(text: Text) -> tuple[int, bool]:
    """The text's number of lines, and whether it is ASCII, once its bytes are known to be UTF-8 and its lines to
    end in \\n."""
    ascii = not text.size or text.data[: text.size].max() < 0x80
    if not ascii:
        lines_before = 0
        for lo, hi in _chunks(text):
            chunk = text.data[lo:hi]
            _check_utf8(text, chunk, lo, lines_before)
            lines_before += int(np.count_nonzero(chunk == NEWLINE))
    return _newlines(text), ascii


def line_of(text: Text, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of the text."""
    if _tablescan is not None:
        return _tablescan.count_byte(text.data, offset, NEWLINE) + 1
    return int(np.count_nonzero(text.data[:offset] == NEWLINE)) + 1


def _empty(text: Text, layout: Layout | None, expected: str) -> EvalfastError:
    return EvalfastError(f"{text.path}: file is empty (blank lines, comments or a header only); expected lines of "
                         f"{repr(layout.columns) if layout else expected}")


def read_fields(text: Text, choose: Callable[[list[bytes], int], Layout], expected: str) -> tuple[Layout, Fields]:
    """The picked fields of every data line of ``text`` (offsets int32 below 2 GiB, else int64), with numpy.

    ``choose(fields of the first data line, its line number)`` gives the layout; a later data line with another
    number of fields is an EvalfastError naming it. No data line at all is an EvalfastError saying that lines of
    ``expected`` were expected.
    """
    capacity, _ = _check_text(text)
    offset = np.int32 if text.data.size < 2**31 else np.int64
    starts, lengths = np.empty((3, capacity), offset), np.empty((3, capacity), offset)
    layout: Layout | None = None
    filled = lines_before = 0
    for lo, hi in _chunks(text):
        chunk = text.data[lo:hi]
        start, end, counts = _tokens(chunk)
        first = np.cumsum(counts) - counts
        lines = np.flatnonzero(counts)
        lines = lines[chunk[start[first[lines]]] != HASH]  # not a comment
        if layout is None and lines.size:
            where = first[lines[0]] + np.arange(counts[lines[0]])
            fields = [chunk[a:b].tobytes() for a, b in zip(start[where], end[where])]
            layout = choose(fields, lines_before + int(lines[0]) + 1)
            lines = lines[1:] if layout.header else lines
        if lines.size:
            _check_field_counts(text, layout, counts[lines], lines + lines_before)
            picked = first[lines] + np.asarray(layout.picked)[:, None]
            picked_start = start[picked]
            np.add(picked_start, lo, out=starts[:, filled: filled + lines.size], casting="unsafe")
            np.subtract(end[picked], picked_start, out=lengths[:, filled: filled + lines.size], casting="unsafe")
            filled += lines.size
        lines_before += counts.size
    if not filled:
        raise _empty(text, layout, expected)
    return layout, Fields(starts[:, :filled], lengths[:, :filled])


def _field_count_problem(text: Text, layout: Layout, count: int, line: int) -> EvalfastError:
    """The error for 0-based ``line``, whose ``count`` fields the layout refuses."""
    more = " or more" if layout.more_fields_ok else ""
    why = "" if layout.more_fields_ok else f"; its first data line has {layout.n_fields}: the file is read as {layout.kind}"
    return EvalfastError(f"{text.path} line {line + 1}: expected {layout.n_fields} columns{more} ({layout.columns}), "
                         f"got {count}{why}")


def _check_field_counts(text: Text, layout: Layout, counts: np.ndarray, line_index: np.ndarray) -> None:
    """EvalfastError at the first line whose number of fields the layout refuses."""
    bad = counts < layout.n_fields if layout.more_fields_ok else counts != layout.n_fields
    if bad.any():
        i = int(np.argmax(bad))
        raise _field_count_problem(text, layout, int(counts[i]), int(line_index[i]))


def _blocks(length: np.ndarray, extra: int = 0) -> Iterator[tuple[slice, int]]:
    """Row slices of at most about BLOCK bytes of fields, and the width of each: its longest field + extra."""
    rows = max(1, BLOCK // max(16, int(length.max(initial=0)) + extra))
    for lo in range(0, length.size, rows):
        block = slice(lo, min(lo + rows, length.size))
        yield block, int(length[block].max()) + extra


def _terminated(text: Text, start: np.ndarray, length: np.ndarray, width: int, terminator: int) -> np.ndarray:
    """(n, width) uint8: each field's bytes, then ``terminator``, then zeros (width > every length)."""
    out = text.rows(start, width)
    out *= np.arange(width) < length[:, None]
    out[np.arange(start.size), length] = terminator
    return out


def decode(text: Text, start: np.ndarray, length: np.ndarray) -> list[str]:
    """The fields as str (UTF-8, checked when the text was read)."""
    if _tablescan is not None:
        return _tablescan.decode(text.data, np.ascontiguousarray(start, np.int64), np.ascontiguousarray(length, np.int64))
    names: list[str] = []
    for block, width in _blocks(length, extra=1):
        terminated = _terminated(text, start[block], length[block], width, NEWLINE)
        names += terminated[np.arange(width) <= length[block, None]].tobytes().decode("utf-8").split("\n")[:-1]
    return names


# --- ids: each distinct byte string numbered in order of first appearance -------------------------------------

# splitmix64's finaliser: a bijection of 64-bit words that spreads every bit of its input over its output
_MIX = (np.uint64(30), np.uint64(0xBF58476D1CE4E5B9), np.uint64(27), np.uint64(0x94D049BB133111EB), np.uint64(31))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array."""
    s1, m1, s2, m2, s3 = _MIX
    x ^= x >> s1
    x *= m1
    x ^= x >> s2
    x *= m2
    x ^= x >> s3
    return x


def _word(text: Text, start: np.ndarray, length: np.ndarray, i: int) -> np.ndarray:
    """uint64: the i-th 8 bytes of each field, zero past its end."""
    word = text.words()[start + 8 * i]
    rest = length - 8 * i
    if (rest < 8).any():  # keep the first bytes in memory, shifting the others out (twice: a shift of 64 is none)
        half = (32 - 4 * np.minimum(np.maximum(rest, 0), 8)).astype(np.uint8)
        out, back = (np.left_shift, np.right_shift) if np.little_endian else (np.right_shift, np.left_shift)
        for shift in (out, out, back, back):
            shift(word, half, out=word)
    return word


def _hashes(text: Text, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """uint64 (n,): a hash of each field's bytes, its length included; and the fields' 8-byte words (_word's) when
    they take at most KEPT_WORDS, for _differing to compare without reading them again."""
    hashes = length.astype(np.uint64) * _MIX[3]
    n_words = -(-int(length.max(initial=0)) // 8)
    kept: list[np.ndarray] = []
    for i in range(n_words):
        word = _word(text, start, length, i)
        mixed = _mix(hashes ^ word)
        live = length > 8 * i
        if live.all():
            hashes = mixed
        else:
            np.copyto(hashes, mixed, where=live)
        if n_words <= KEPT_WORDS:
            kept.append(word)
    return hashes, kept if n_words <= KEPT_WORDS else None


def _earliest_by_sort(keys: np.ndarray) -> np.ndarray:
    """int64 (n,): for each key, the index of the first key equal to it."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    new = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    earliest = np.empty(keys.size, np.int64)
    earliest[order] = np.repeat(order[new], np.diff(np.append(new, keys.size)))
    return earliest


def _earliest_by_hash(hashes: np.ndarray) -> np.ndarray:
    """int64 (n,): for each row, the first row whose hash shares its leading bits (64 less those a row number takes:
    rows and hash prefixes are sorted as one uint64, which numpy sorts faster than it argsorts). Overwrites hashes."""
    run_starts = np.concatenate([[True], hashes[1:] != hashes[:-1]])  # runs of one hash: a run file's qids
    heads = None if run_starts.all() else np.flatnonzero(run_starts)
    del run_starts
    n = hashes.size if heads is None else heads.size
    bits = np.uint64(max(1, int(n - 1).bit_length()))
    keys = hashes if heads is None else hashes[heads]
    keys >>= bits
    keys <<= bits
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort()
    prefix = keys >> bits
    new = np.flatnonzero(np.concatenate([[True], prefix[1:] != prefix[:-1]]))
    del prefix
    keys &= (np.uint64(1) << bits) - np.uint64(1)
    head = keys.view(np.int64)  # the rows, in order of hash prefix
    earliest = np.empty(n, np.int64)
    earliest[head] = np.repeat(head[new], np.diff(np.append(new, n)))
    if heads is None:
        return earliest
    return np.repeat(heads[earliest], np.diff(np.append(heads, hashes.size)))


def _differing(text: Text, start: np.ndarray, length: np.ndarray, other: np.ndarray,
               words: list[np.ndarray] | None) -> np.ndarray:
    """The rows i whose field holds other bytes than field other[i] (given the fields' words, or reading them)."""
    differ = length != length[other]
    for i in range(-(-int(length.max(initial=0)) // 8)):
        word = words[i] if words is not None else _word(text, start, length, i)
        differ |= word != word[other]
        del word
    return np.flatnonzero(differ)


def intern(text: Text, start: np.ndarray, length: np.ndarray, known: tuple[np.ndarray, np.ndarray]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Number the fields' distinct byte strings after the ``known`` ones (start, length of distinct fields, often
    appended names): (number int64 (n,), row of each new string's first appearance, in number order).

    Known field i is number i; the new strings follow in order of first appearance. Fields are grouped by a hash,
    then each is compared byte for byte with the first of its group; groups where two strings share a hash are
    grouped again by their bytes.
    """
    if known[0].size:
        start, length = (np.concatenate([k.astype(a.dtype), a]) for k, a in zip(known, (start, length)))
    hashes, words = _hashes(text, start, length)
    earliest = _earliest_by_hash(hashes)
    del hashes
    differ = _differing(text, start, length, earliest, words)
    del words
    if differ.size:
        rows = np.flatnonzero(np.isin(earliest, earliest[differ]))
        width = int(length[rows].max()) + 1
        keys = _terminated(text, start[rows], length[rows], width, 1).view(f"S{width}").ravel()
        earliest[rows] = rows[_earliest_by_sort(keys)]
    is_first = earliest == np.arange(earliest.size)
    numbers = np.cumsum(is_first)
    numbers -= 1
    number, first = numbers[earliest], np.flatnonzero(is_first)
    return number[known[0].size:], first[known[0].size:] - known[0].size


# --- numbers: plain C syntax, read exactly as strtod / atol read it ---------------------------------------------

# Byte classes, and the states of an automaton over a field's bytes followed by padding (a space, never in a field).
DIGIT, SIGN, POINT, EXPONENT, END_CLASS, OTHER = range(6)
START, SIGNED, INTEGER, INTEGER_POINT, POINT_ONLY, FRACTION, E, E_SIGNED, EXPONENT_DIGITS, END, BAD = range(11)
PADDING = np.uint8(32)
_CLASS = np.full(256, OTHER, np.uint8)
_CLASS[ord("0"): ord("9") + 1], _CLASS[[ord("+"), ord("-")]], _CLASS[ord(".")] = DIGIT, SIGN, POINT
_CLASS[[ord("e"), ord("E")]], _CLASS[PADDING] = EXPONENT, END_CLASS
_DECIMAL = {  # [+-] (digits [. [digits]] | . digits) [(e|E) [+-] digits]
    START: {DIGIT: INTEGER, SIGN: SIGNED, POINT: POINT_ONLY},
    SIGNED: {DIGIT: INTEGER, POINT: POINT_ONLY},
    INTEGER: {DIGIT: INTEGER, POINT: INTEGER_POINT, EXPONENT: E, END_CLASS: END},
    INTEGER_POINT: {DIGIT: FRACTION, EXPONENT: E, END_CLASS: END},
    POINT_ONLY: {DIGIT: FRACTION},
    FRACTION: {DIGIT: FRACTION, EXPONENT: E, END_CLASS: END},
    E: {DIGIT: EXPONENT_DIGITS, SIGN: E_SIGNED},
    E_SIGNED: {DIGIT: EXPONENT_DIGITS},
    EXPONENT_DIGITS: {DIGIT: EXPONENT_DIGITS, END_CLASS: END},
    END: {END_CLASS: END},
}
_INTEGER = {START: {DIGIT: INTEGER, SIGN: SIGNED}, SIGNED: {DIGIT: INTEGER}, INTEGER: {DIGIT: INTEGER, END_CLASS: END},
            END: {END_CLASS: END}}
_IN_MANTISSA = np.isin(np.arange(16), [INTEGER, FRACTION])
MAX_INTEGER_DIGITS = 18  # below 2**63, so atol reads it exactly; more is refused
_EXACT_DIGITS, _EXACT_POWER = 15, 22  # m * 10**e is one correctly rounded operation for m < 10**15, |e| <= 22
_POWERS = 10.0 ** np.arange(_EXACT_POWER + 1)
_INFINITIES = [sign + word for sign in (b"", b"+", b"-") for word in (b"inf", b"infinity")]


def _table(steps: dict[int, dict[int, int]]) -> np.ndarray:
    """uint16 (16 * 256,): the next state at index state << 8 | byte."""
    table = np.full((16, 256), BAD, np.uint16)
    for state, moves in steps.items():
        table[state] = [moves.get(byte_class, BAD) for byte_class in _CLASS.tolist()]
    return table.ravel()


_DECIMAL_TABLE, _INTEGER_TABLE = _table(_DECIMAL), _table(_INTEGER)


@dataclass(frozen=True)
class _Scan:
    """One pass of an automaton over fields: the final state and the digits it read."""

    state: np.ndarray  # uint16 (n,): END when the whole field has the syntax
    mantissa: np.ndarray  # int64: the digits before any exponent, as an integer (wraps past 18 of them)
    digits: np.ndarray  # int64: how many
    fraction: np.ndarray  # int64: how many of them follow the point
    exponent: np.ndarray  # int64: the exponent's value (capped), sign included


def _scan(fields: np.ndarray, length: np.ndarray, table: np.ndarray, exponents: bool) -> _Scan:
    """Run the automaton over fields (n, width) uint8 whose bytes from ``length`` on are read as padding; the
    exponent is read only when ``exponents``."""
    n, width = fields.shape
    state = np.zeros(n, np.uint16)
    mantissa, digits, fraction, exponent, scratch = (np.zeros(n, np.int64) for _ in range(5))
    negative_exponent = np.zeros(n, bool)
    shortest = int(length.min())
    for j in range(width):
        column = fields[:, j] if j < shortest else np.where(j < length, fields[:, j], PADDING)
        state = table[(state << 8) | column]
        in_mantissa = _IN_MANTISSA[state]
        np.multiply(mantissa, 10, out=scratch)
        scratch += column
        scratch -= ord("0")
        np.copyto(mantissa, scratch, where=in_mantissa)
        digits += in_mantissa
        fraction += state == FRACTION
        if exponents:
            np.multiply(exponent, 10, out=scratch)
            scratch += column
            scratch -= ord("0")
            np.copyto(exponent, np.minimum(scratch, 1 << 20), where=state == EXPONENT_DIGITS)
            negative_exponent |= (state == E_SIGNED) & (column == ord("-"))
    return _Scan(state, mantissa, digits, fraction, np.where(negative_exponent, -exponent, exponent))


def _as_bytes(fields: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(n, width) uint8 -> numpy bytes of each field's first ``length`` bytes (a NUL in it read as 0xFF)."""
    inside = np.arange(fields.shape[1]) < length[:, None]
    return np.where(inside, np.where(fields == 0, 0xFF, fields), 0).astype(np.uint8).view(f"S{fields.shape[1]}").ravel()


def parse_scores(text: Text, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, int | None]:
    """float64 (n,): each field as strtod reads it; and the first row whose field is not plain decimal syntax or
    inf / infinity (any case, signed or not), else None."""
    values, first_bad = np.empty(length.size), None
    for block, width in _blocks(length, extra=1):
        fields, size = text.rows(start[block], width), length[block]
        exponents = bool((((fields | 0x20) == ord("e")) & (np.arange(width) < size[:, None])).any())
        scan = _scan(fields, size, _DECIMAL_TABLE, exponents)
        power = scan.exponent - scan.fraction
        value = scan.mantissa.astype(np.float64)
        value = np.where(power >= 0, value * _POWERS[np.clip(power, 0, _EXACT_POWER)],
                         value / _POWERS[np.clip(-power, 0, _EXACT_POWER)])
        value = np.where(fields[:, 0] == ord("-"), -value, value)
        slow = (scan.state == END) & ((scan.digits > _EXACT_DIGITS) | (np.abs(power) > _EXACT_POWER))
        if slow.any():  # too many digits or too large a power for one exact operation: numpy's exact parser
            with np.errstate(over="ignore"):  # past 1.8e308: infinity, as strtod reads it
                value[slow] = _as_bytes(fields[slow], size[slow]).astype(np.float64)
        bad = scan.state != END
        if bad.any():
            infinite = bad & np.isin(np.char.lower(_as_bytes(fields, size)), _INFINITIES)
            value[infinite] = np.where(fields[infinite, 0] == ord("-"), -np.inf, np.inf)
            bad &= ~infinite
            if bad.any() and first_bad is None:
                first_bad = block.start + int(np.argmax(bad))
        values[block] = value
    return values, first_bad


def parse_integers(text: Text, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, int | None]:
    """int64 (n,): each field as atol reads it; and the first row whose field is not [+-] and at most 18 digits,
    else None."""
    values, first_bad = np.empty(length.size, np.int64), None
    for block, width in _blocks(length, extra=1):
        fields = text.rows(start[block], width)
        scan = _scan(fields, length[block], _INTEGER_TABLE, exponents=False)
        values[block] = np.where(fields[:, 0] == ord("-"), -scan.mantissa, scan.mantissa)
        bad = (scan.state != END) | (scan.digits > MAX_INTEGER_DIGITS)
        if bad.any() and first_bad is None:
            first_bad = block.start + int(np.argmax(bad))
    return values, first_bad


_STRTOD = re.compile(rb"[+-]?(?:0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?|(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
                     rb"(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan(?:\([0-9a-z_]*\))?)", re.IGNORECASE)
_STRTOL = re.compile(rb"[+-]?[0-9]+")
_LONG = 2**63 - 1


def c_reads(field: bytes, integer: bool) -> tuple[bytes, float | int]:
    """What C reads from the start of a field: atol's (integer) or atof's longest prefix, and its value (0 when it
    reads nothing; atol saturates). For messages: the readers refuse a field that C does not read whole."""
    match = (_STRTOL if integer else _STRTOD).match(field)
    if not match:
        return b"", 0 if integer else 0.0
    read = match.group()
    if integer:
        return read, max(-_LONG - 1, min(_LONG, int(read)))
    if read.lower().lstrip(b"+-").startswith(b"0x"):
        sign = -1.0 if read.startswith(b"-") else 1.0
        return read, sign * float.fromhex(read.lstrip(b"+-").decode())
    return read, float(read.split(b"(")[0])


# --- a whole table ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """A file's data lines read: ids numbered (the known names first, then new ones in order of first appearance)."""

    layout: Layout
    offsets: np.ndarray  # (n,): the byte offset of each data line's document field (line_of gives its line)
    query: np.ndarray  # int64 (n,)
    doc: np.ndarray  # int64 (n,); unless docs_numbered, a document not known is len(known names) + its row
    values: np.ndarray  # float64 (n,): scores, or relevance labels
    new_queries: tuple[np.ndarray, np.ndarray, np.ndarray]  # start, length and first row of each new name
    new_docs: tuple[np.ndarray, np.ndarray, np.ndarray]
    bad_number: tuple[int, int] | None  # start and length of the first number not read, else None
    plain_ids: bool  # every name is known to be an id (ASCII without control characters); else check them
    docs_numbered: bool = True  # else only known documents have ids, and repeated is checked
    repeated: tuple[int, int] | None = None  # a row listing its query's document again, and the earlier row
    doc_table: object | None = None  # the native reader's table numbering the known and new documents (keep_doc_table)

    def line(self, text: Text, row: int) -> int:
        """The 1-based line of data row ``row``."""
        return line_of(text, int(self.offsets[row]))


def read_table(path: str | os.PathLike[str], choose: Callable[[Text, list[bytes], int], Layout], expected: str,
               query_names: list[str], doc_names: list[str], known_docs_only: bool = False,
               doc_table: object | None = None, keep_doc_table: bool = False) -> tuple[Text, Parsed]:
    """Every data line of a file: its layout (``choose(text, fields of the first data line, its line number)``),
    its ids numbered after the known names, its numbers parsed; and the file's bytes.

    With ``known_docs_only``, documents may be looked up among the known ones only (a run scored against qrels
    needs no other's name) and each query's repeated document found as it is read: the native reader does so when
    each query's lines come together and every id is plain ASCII (docs_numbered False, then), else every document
    is numbered. The native reader maps a regular file ending in a newline rather than copying it.

    The native reader keeps its table of documents with ``keep_doc_table`` (Parsed.doc_table); given back as
    ``doc_table`` with the names it numbers as doc_names, it spares numbering them again (known_docs_only).
    """
    if _tablescan is None:
        text = read_text(path, _lines(query_names) + _lines(doc_names))
        known_queries, known_docs = text.appended_lines([len(query_names), len(doc_names)])
        return text, _parse_with_numpy(text, lambda first, line: choose(text, first, line), expected, known_queries,
                                       known_docs)
    if doc_table is not None and _tablescan.table_size(doc_table) != len(doc_names):
        raise ValueError("doc_table numbers other documents than doc_names")
    text = map_text(path) or read_text(path)
    return text, _parse_natively(text, lambda first, line: choose(text, first, line), expected, _known(query_names),
                                 doc_names, doc_table if known_docs_only else None, known_docs_only, keep_doc_table)


def _lines(names: list[str]) -> bytes:
    """The names, one per line, in UTF-8."""
    return ("\n".join(names) + "\n").encode() if names else b""


def _known(names: list[str]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Names as the native scan takes them: (how many, their UTF-8 bytes, start and length of each)."""
    data = np.frombuffer(_lines(names), np.uint8)
    end = np.flatnonzero(data == NEWLINE)
    if end.size == len(names):  # encoded at once, each followed by its newline
        start = np.empty_like(end)
        start[:1], start[1:] = 0, end[:-1] + 1
        return len(names), data, start, end - start
    encoded = list(map(str.encode, names))  # a name holds a newline
    length = np.fromiter(map(len, encoded), np.int64, len(encoded))
    return len(names), np.frombuffer(b"".join(encoded), np.uint8), np.cumsum(length) - length, length


def _parse_with_numpy(text: Text, choose: Callable[[list[bytes], int], Layout], expected: str,
                      known_queries: tuple[np.ndarray, np.ndarray], known_docs: tuple[np.ndarray, np.ndarray]) -> Parsed:
    layout, fields = read_fields(text, choose, expected)
    doc, doc_first = intern(text, *fields.column(1), known_docs)  # the largest temporaries first
    query, query_first = intern(text, *fields.column(0), known_queries)
    values, bad = (parse_integers if layout.integers else parse_scores)(text, *fields.column(2))
    new = [(fields.start[i, first].astype(np.int64), fields.length[i, first].astype(np.int64), first)
           for i, first in ((0, query_first), (1, doc_first))]
    bad_number = None if bad is None else (int(fields.start[2, bad]), int(fields.length[2, bad]))
    return Parsed(layout, fields.start[1], query, doc, np.asarray(values, np.float64), *new, bad_number, False)


def _parse_natively(text: Text, choose: Callable[[list[bytes], int], Layout], expected: str,
                    known_queries: tuple[int, np.ndarray, np.ndarray, np.ndarray], doc_names: list[str],
                    doc_table: object | None, known_docs_only: bool, keep_doc_table: bool) -> Parsed:
    capacity, ascii = _check_text(text)
    first = _tablescan.first_data_line(text.data, text.size) if text.size else None
    if first is None:
        raise _empty(text, None, expected)
    line, lo, hi = first
    layout = choose(text.data[lo:hi].tobytes().split(), line + 1)
    query, doc, offsets = (np.empty(capacity, np.int64) for _ in range(3))
    values = np.empty(capacity)
    shape = (layout.n_fields, layout.more_fields_ok, *layout.picked, layout.integers)
    data_start = hi + 1 if layout.header else 0
    known_docs = _known(doc_names) if doc_table is None else doc_table
    while True:
        rows, bad_line, bad_count, bad_number, repeated, grouped, *new, controls, kept = _tablescan.scan(
            text.data, data_start, text.size, shape, known_docs_only, THREADS, PART_BYTES, known_queries, known_docs,
            query, doc, values, offsets, keep_doc_table)
        if not known_docs_only or (grouped and ascii and not controls):
            break
        known_docs_only = False  # a query's lines come apart, or an id may not be one: number every document
        if doc_table is not None:  # a kept table is only looked up
            known_docs, doc_table = _known(doc_names), None
    if bad_line >= 0:
        raise _field_count_problem(text, layout, bad_count, bad_line)
    if not rows:
        raise _empty(text, layout, expected)
    new_queries, new_docs = (tuple(np.frombuffer(column, np.int64) for column in names) for names in new)
    return Parsed(layout, offsets[:rows], query[:rows], doc[:rows], values[:rows], new_queries, new_docs,
                  None if bad_number[0] < 0 else bad_number, ascii and not controls, not known_docs_only,
                  repeated if repeated[0] >= 0 else None, kept)


def fields_at(text: Text, offsets: np.ndarray) -> list[str]:
    """The fields that start at the given byte offsets, each up to the next C whitespace, as str (the names of
    documents a native parse looked up and did not number)."""
    return _tablescan.fields_at(text.data, text.size, np.ascontiguousarray(offsets, np.int64))
