"""Reading the user's text files: UTF-8 lines, JSONL objects, ids and text fields, each refused with one line
naming the file, the line and the fix when it is not what evalfast can use.

Example::

    for line_no, record in read_jsonl(Path("corpus.jsonl")):
        doc_id = checked_id(f"corpus.jsonl line {line_no}", "_id", record.get("_id"))
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from evalfast.errors import EvalfastError, GoldenSetError

# An id cannot hold whitespace (it separates TREC and qrels columns; a newline would forge a line), control
# characters (invisible, and read differently by other tools) or lone surrogates (UTF-8 cannot encode them).
_NOT_IN_ID = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how one reaches a JSON line, paired or not
_UNDECODED = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as errors="surrogateescape" reads it
Report = Callable[[str, str], None]  # a lenient reader's report of a problem: (finding code, message)
_JSON_TYPES = {dict: "an object", list: "a list", float: "a decimal number", int: "an integer", bool: "true/false",
               type(None): "null"}
SHOWN = 60  # characters of a value quoted in a message


def shown(value: str) -> str:
    """``value`` quoted for a one-line message: escapes for newlines and control characters, cut at SHOWN."""
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "...")


def json_type(value: object) -> str:
    """What a JSON value is, in words: "a list", "an object", "null", ..."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def id_problem(field: str, value: object) -> str | None:
    """Why ``value`` cannot be an id, or None when it can: a string (or a JSON integer) of printable characters."""
    if value is None:
        return f"missing {field}; give every record a unique {field}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"{field} is {json_type(value)}, not a string; give every record a string {field}"
    text = str(value)
    if not text:
        return f"empty {field}; give every record a unique {field}"
    if _NOT_IN_ID.search(text):
        return (f"{field} {shown(text)} holds whitespace or a control character, which TREC and qrels files cannot "
                f"carry; rename it (e.g. {shown(_NOT_IN_ID.sub('_', text))})")
    return None


def first_non_id(names: list[str], start: int = 0) -> int | None:
    """The index of the first of ``names[start:]`` that id_problem refuses, or None (one scan when all are ids)."""
    rest = names[start:]
    if all(rest) and not _NOT_IN_ID.search("".join(rest)):
        return None
    return next((start + i for i, name in enumerate(rest) if id_problem("id", name)), None)


def checked_id(where: str, field: str, value: object, error: type[EvalfastError] = GoldenSetError) -> str:
    """``value`` as an id (a JSON integer as its decimal string); ``error`` "<where>: <why>" when it cannot be one."""
    if type(value) is str and value and not _NOT_IN_ID.search(value):  # the common case, first and fast
        return value
    if problem := id_problem(field, value):
        raise error(f"{where}: {problem}")
    return str(value)


def text_problem(field: str, value: object) -> str | None:
    """Why a JSON field cannot be read as text, or None when it can (a string, or null for no text)."""
    if value is None or isinstance(value, str):
        return None
    return f"{field} is {json_type(value)}, not a string; write the text as one JSON string"


def checked_text(where: str, field: str, value: object, error: type[EvalfastError] = GoldenSetError) -> str:
    """A JSON text field as written ("" for null or missing); ``error`` when it is a list, number, object, ..."""
    if problem := text_problem(field, value):
        raise error(f"{where}: {problem}")
    return value or ""


def not_utf8_at(path: Path, line_no: int, offset: int, byte: int) -> str:
    """The one line for a byte that is not UTF-8, at ``offset`` in line ``line_no`` of ``path``, and the fix."""
    return (f"{path} line {line_no} (byte offset {offset}, 0x{byte:02x}): not UTF-8 text; re-encode the file as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def not_utf8(path: Path) -> str:
    """One line naming the line and byte offset of the first byte of ``path`` that is not UTF-8, and the fix.

    Reads the file again, line by line, so it belongs on the error path only.
    """
    offset = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):  # a b"\n" is never inside a UTF-8 sequence
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return not_utf8_at(path, line_no, offset + err.start, raw[err.start])
            offset += len(raw)
    return f"{path}: not UTF-8 text; re-encode the file as UTF-8"


def utf8_lines(path: Path, error: type[EvalfastError] = GoldenSetError,
               report: Report | None = None) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, line endings kept and a byte-order mark at its start dropped;
    a byte that is not UTF-8 is ``error`` naming its line. Leniently (``report``, as golden check reads), such a
    line is reported ("not-utf8"), read with U+FFFD for its bad bytes, and reading goes on."""
    if report is None:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            try:
                yield from enumerate(handle, start=1)
            except UnicodeDecodeError:
                raise error(not_utf8(path)) from None
        return
    with path.open(encoding="utf-8-sig", newline="", errors="surrogateescape") as handle:
        for line_no, line in enumerate(handle, start=1):
            if _UNDECODED.search(line):
                report("not-utf8", f"{path} line {line_no}: not UTF-8 text; save the file as UTF-8")
                line = _UNDECODED.sub("\ufffd", line)
            yield line_no, line


def json_object(line: str) -> dict:
    """One JSONL line as a dict; ValueError saying what is wrong when it is not a JSON object holding text."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg}); fix or remove the line") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read; flatten the record or remove the line") from None
    except ValueError as err:  # an integer too long to convert, say
        raise ValueError(f"not readable JSON ({str(err).split(';')[0]}); fix or remove the line") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "\\u" in line and _SURROGATE_ESCAPE.search(line) and _SURROGATE.search(json.dumps(record, ensure_ascii=False)):
        raise ValueError("a \\ud800-\\udfff escape without its pair (a lone surrogate), which is no character; "
                         "fix or remove the string")
    return record


def problem(report: Report | None, code: str, message: str) -> None:
    """A reader's problem: a GoldenSetError when it reads strictly (``report`` None), else reported."""
    if report is None:
        raise GoldenSetError(message)
    report(code, message)


def read_jsonl(path: Path, report: Report | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a line that is not a JSON object is a GoldenSetError.
    Leniently (``report``), it is reported ("invalid-json") and skipped, and so is a file of blank lines only
    ("empty-file")."""
    blank = True
    for line_no, line in utf8_lines(path, report=report):
        if not line.strip():
            continue
        blank = False
        try:
            record = json_object(line)
        except ValueError as err:
            problem(report, "invalid-json", f"{path} line {line_no}: {err}")
            continue
        yield line_no, record
    if blank and report is not None:  # the strict reader's callers refuse an empty file in their own words
        report("empty-file", f"{path}: no records; add at least one")


def text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, split at "\n" and "\r\n" only: form feeds, U+2028 and the other characters
    str.splitlines() also breaks at stay inside their line."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise EvalfastError(not_utf8(path)) from None
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def read_texts(path: Path, field: str | None) -> list[str]:
    """Texts from a file, as written: one per line, or the ``field`` of each JSONL object. Blank texts are errors."""
    if not path.is_file():
        raise EvalfastError(f"{path}: no such file; pass a text file (one text per line) or JSONL with --field")
    if field or path.suffix.lower() == ".jsonl":
        field = field or "text"
        texts = []
        for line_no, record in read_jsonl(path):
            value = checked_text(f"{path} line {line_no}", f"field {field!r}", record.get(field), EvalfastError)
            if not value.strip():
                raise EvalfastError(f"{path} line {line_no}: field {field!r} is missing or empty; use --field to pick "
                                    "another")
            texts.append(value)
    else:
        texts = text_lines(path)
        for line_no, text in enumerate(texts, start=1):
            if not text.strip():
                raise EvalfastError(f"{path} line {line_no}: empty line; every line must hold one text")
    if not texts:
        raise EvalfastError(f"{path}: no texts to embed")
    return texts
