"""The native table reader (evalfast._tablescan, C) against the numpy one (evalfast.trec_parse), on random files.

Random lines of tricky fields (ids of 15, 16 and 17 bytes sharing their first 16, control characters, non-UTF-8
bytes, numbers of every syntax, comments, blank lines, C whitespace of every kind, too few or too many fields) are
read both ways, as qrels and as a run, with and without known names: both must read the same names, numbers and
lines, or refuse with the same message. test_trec_readers.py holds both to trec_eval's rules.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalfast import trec_parse
from evalfast.errors import EvalfastError
from evalfast.trec import read_qrels_file, read_run

pytestmark = pytest.mark.skipif(trec_parse._tablescan is None, reason="evalfast._tablescan is not built")

PREFIX = b"x" * 16
IDS = [b"q1", b"q2", b"Q0", b"d", b"#d", b"doc\x01", b"\x7f", b"caf\xc3\xa9", b"\xff", PREFIX[:15], PREFIX,
       PREFIX + b"a", PREFIX + b"b", PREFIX * 2, b"a\x00", b"a", b"\xe2\x80\xa8"]
NUMBERS = [b"0", b"1", b"-1", b"+2", b"007", b"1.5", b".5", b"5.", b"-.5e+2", b"1e400", b"1e-400", b"1e", b"nan",
           b"inf", b"-Infinity", b"0x1A", b"1_0", b"99999999999999999999", b"123456789012345678", b"3.14159265358979323",
           b"\xd9\xa3", b"", b"1.1.1"]
SEPARATORS = [b" ", b"\t", b"  ", b" \r", b"\v", b"\f"]


@st.composite
def lines(draw) -> bytes:
    kind = draw(st.sampled_from(["qrels", "run", "run", "short", "long", "comment", "blank"]))
    if kind == "comment":
        return b"#" + draw(st.sampled_from(IDS)) + b"\n"
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t\r"])) + b"\n"
    ids, numbers = st.sampled_from(IDS), st.sampled_from(NUMBERS)
    if kind == "qrels":
        fields = [draw(ids), b"0", draw(ids), draw(numbers)]
    else:
        fields = [draw(ids), b"Q0", draw(ids), b"1", draw(numbers), b"tag"]
        fields = fields[:draw(st.integers(2, 5))] if kind == "short" else fields
        fields += [b"extra"] * (kind == "long")
    separators = [draw(st.sampled_from(SEPARATORS)) for _ in fields]
    lead = draw(st.sampled_from([b"", b" "]))
    return lead + b"".join(field + separator for field, separator in zip(fields, separators)).rstrip(b" ") + b"\n"


def outcome(read, path: Path):
    """What reading gives: its names and arrays, or the error's message."""
    try:
        result = read(path)
    except EvalfastError as error:
        return "refused", str(error)
    if hasattr(result, "qrels"):
        judged = result.qrels
        return result.query_names, result.doc_names, result.format, judged.query.tolist(), judged.doc.tolist(), \
            judged.relevance.tolist()
    run, query_names, doc_names = result
    return query_names, doc_names, run.doc_ids.tolist(), np.where(np.isnan(run.scores), 0, run.scores).tolist()


def both_ways(read, path: Path):
    native = outcome(read, path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trec_parse, "_tablescan", None)
        numpy = outcome(read, path)
    return native, numpy


@settings(max_examples=400, deadline=None)
@given(st.lists(lines(), min_size=0, max_size=12), st.booleans())
def test_random_files_read_the_same_both_ways(file_lines: list[bytes], ends_in_newline: bool) -> None:
    text = b"".join(file_lines)
    text = text if ends_in_newline else text.rstrip(b"\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.txt"
        path.write_bytes(text)
        for read in (read_qrels_file, lambda p: read_run(p, [], []), lambda p: read_run(p, ["q2", "a"], ["d", PREFIX.decode()])):
            native, numpy = both_ways(read, path)
            assert native == numpy


def test_a_large_file_reads_the_same_both_ways(tmp_path: Path) -> None:
    """Tables that grow many times over, ids of every length up to 40 bytes, scores needing the exact reader."""
    rng = np.random.default_rng(5)
    docs = [f"d{'x' * int(rng.integers(0, 40))}{i}" for i in range(30_000)]
    rows = [f"q{q} Q0 {docs[d]} 1 {rng.normal():.17g} run\n" for q in range(300)
            for d in rng.choice(len(docs), 100, replace=False).tolist()]
    path = tmp_path / "run.txt"
    path.write_text("".join(rows))
    native, numpy = both_ways(lambda p: read_run(p, ["q7"], docs[:50]), path)
    assert native[0] != "refused"
    assert native == numpy
