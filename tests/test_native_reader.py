"""The native table reader (evalfast.data._tablescan, C) against the numpy one (evalfast.data.trec_parse), on random
files.

Random lines of tricky fields (ids of 15, 16 and 17 bytes sharing their first 16, control characters, non-UTF-8
bytes, numbers of every syntax, comments, blank lines, C whitespace of every kind, too few or too many fields) are
read both ways, as qrels and as a run, with and without known names: both must read the same names, numbers and
lines, or refuse with the same message; and read_run_to_score (which looks documents up among the known ones
only) must give what read_run gives, but for the ids of documents absent from the qrels. test_trec_readers.py holds both to trec_eval's rules.
"""

from __future__ import annotations

import mmap
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from evalfast.data import trec_parse
from evalfast.data.trec import TREC_RUN, read_qrels_file, read_run, read_run_to_score
from evalfast.errors import EvalfastError

pytestmark = pytest.mark.skipif(trec_parse._tablescan is None, reason="evalfast.data._tablescan is not built")

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


def to_score(path: Path, query_names: list[str], doc_names: list[str], doc_table: object = None):
    """read_run_to_score's Run and query names, its documents absent from doc_names all -2 (unjudged), as a
    read_run result."""
    run, names = read_run_to_score(path, query_names, doc_names, doc_table)
    run.doc_ids[run.doc_ids >= len(doc_names)] = -2
    return run, names, doc_names


def read_to_score(path: Path, query_names: list[str], doc_names: list[str]):
    """read_run's result with the same documents -2: what read_run_to_score must give."""
    run, names, _ = read_run(path, query_names, doc_names)
    run.doc_ids[run.doc_ids >= len(doc_names)] = -2
    return run, names, doc_names


@contextmanager
def in_parts():
    """The native reader's threads given a few bytes each: files of a few lines are read in up to four parts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trec_parse, "THREADS", 4)
        patch.setattr(trec_parse, "PART_BYTES", 1)
        yield


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
        known = ["q2", "a"], ["d", PREFIX.decode()]
        for read in (read_qrels_file, lambda p: read_run(p, [], []), lambda p: read_run(p, *known)):
            native, numpy = both_ways(read, path)
            assert native == numpy
        expected = both_ways(lambda p: read_to_score(p, *known), path)
        assert both_ways(lambda p: to_score(p, *known), path) == expected
        with in_parts():
            assert outcome(lambda p: to_score(p, *known), path) == expected[0]


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


@pytest.mark.parametrize("doc", ["d7", PREFIX.decode() + "unjudged", "unjudged"], ids=["judged", "17 bytes", "short"])
def test_a_document_listed_twice_in_a_grouped_run_is_refused_alike(tmp_path: Path, doc: str) -> None:
    """read_run_to_score finds a query's repeated document as it reads (the run is grouped by query), judged or not,
    and says what read_run says."""
    lines = [f"q1 Q0 {name} {rank} {10 - rank} run\n" for rank, name in enumerate(["d7", "x", doc, "y"], 1)]
    lines[2:2] = [f"q1 Q0 {doc} 9 0.5 run\n"] if doc != "d7" else []
    path = tmp_path / "run.txt"
    path.write_text("".join(["q0 Q0 d7 1 1 run\n", *lines, "q2 Q0 d7 1 1 run\n"]))
    with pytest.raises(EvalfastError) as scored:
        read_run_to_score(path, ["q1"], ["d7"])
    with pytest.raises(EvalfastError) as read:
        read_run(path, ["q1"], ["d7"])
    assert str(scored.value) == str(read.value)
    assert "repeats line" in str(scored.value)


def test_a_run_whose_query_comes_back_is_read_whole(tmp_path: Path) -> None:
    """When a query's lines come apart, its document repeated across them is still found (the lines are read again,
    every document numbered), and an unrepeated run reads as read_run reads it."""
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 a 1 3 run\nq2 Q0 b 1 2 run\nq1 Q0 a 2 1 run\n")
    with pytest.raises(EvalfastError, match="line 3: query q1 doc a repeats line 1"):
        read_run_to_score(path, [], ["b"])
    path.write_text("q1 Q0 a 1 3 run\nq2 Q0 b 1 2 run\nq1 Q0 c 2 1 run\n")
    assert both_ways(lambda p: to_score(p, [], ["b"]), path) == both_ways(lambda p: read_to_score(p, [], ["b"]), path)


@pytest.mark.parametrize("last_doc_bytes", [1, 8, 9, 16, 17, 40])
def test_a_mapped_file_ending_at_a_page_boundary_reads_the_same_both_ways(tmp_path: Path, last_doc_bytes: int) -> None:
    """The native reader maps a file that ends in a newline and reads nothing past its end: a last line ending
    exactly at a page boundary (where reading on would fault) with an id of each length reads as numpy reads it."""
    last = f"q9 Q0 {'z' * last_doc_bytes} 1 2.5 run\n"
    first = "q1 Q0 d1 1 1 run\n"
    filler = 4 * mmap.PAGESIZE - len(first) - len(last)
    path = tmp_path / "run.txt"
    path.write_text(first + f"# {'c' * (filler - 3)}\n" + last)
    assert path.stat().st_size % mmap.PAGESIZE == 0
    assert trec_parse.map_text(path) is not None
    native, numpy = both_ways(lambda p: read_run(p, ["q9"], ["z" * last_doc_bytes]), path)
    assert native == numpy and native[0] == ["q9", "q1"]


def test_a_file_without_a_last_newline_or_a_pipe_is_copied_and_reads_alike(tmp_path: Path) -> None:
    path = tmp_path / "run.txt"
    path.write_text("q1 Q0 d1 1 1 run\nq1 Q0 d2 2 0.5 run")
    assert trec_parse.map_text(path) is None
    native, numpy = both_ways(lambda p: read_run(p, [], []), path)
    assert native == numpy and native[1] == ["d1", "d2"]


def test_a_large_grouped_run_read_by_several_threads_reads_as_by_one(tmp_path: Path) -> None:
    """Parts cut where the query changes; new queries, unjudged documents (whose names settle ties with judged
    ones), exact-reader scores, and a repeat, a refused score and a short line in a later part: all as one thread
    reads them."""
    rng = np.random.default_rng(9)

    def score() -> str:  # half of them 0, 1 or 2: many ties
        return f"{rng.integers(0, 3)}" if rng.random() < 0.5 else f"{rng.normal():.{int(rng.integers(3, 19))}g}"

    lines = [f"q{q} Q0 {'d' if rng.random() < 0.3 else 'u'}{d} {rank} {score()} r\n"
             for q in rng.permutation(4000).tolist()
             for rank, d in enumerate(rng.choice(3000, int(rng.integers(1, 30)), replace=False).tolist(), 1)]
    judged = [f"d{d}" for d in range(0, 3000, 2)]
    path = tmp_path / "run.txt"
    for spoil in ("", "repeat", "score", "short", "apart"):
        spoilt = list(lines)
        if spoil == "repeat":
            spoilt.insert(-3, spoilt[-4])
        elif spoil == "score":
            spoilt[-2] = spoilt[-2].replace(" r\n", "x r\n")
        elif spoil == "short":
            spoilt[-5] = "q1 Q0 d1\n"
        elif spoil == "apart":
            spoilt.append(spoilt[0].replace(" Q0 ", " Q0 z"))
        path.write_text("".join(spoilt))
        one = outcome(lambda p: to_score(p, ["q7"], judged), path)
        with in_parts():
            several = outcome(lambda p: to_score(p, ["q7"], judged), path)
        assert several == one == outcome(lambda p: read_to_score(p, ["q7"], judged), path), spoil
        assert (one[0] == "refused") == (spoil not in ("", "apart")), spoil


QRELS_IDS = st.sampled_from(["q1", "q2", "d", "a", PREFIX.decode(), PREFIX.decode() + "a", "café"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(QRELS_IDS, QRELS_IDS, st.integers(-1, 2)), min_size=1, max_size=8),
       st.lists(lines(), min_size=0, max_size=12))
def test_the_qrels_table_kept_for_the_run_reads_as_names_do(judgments, run_lines: list[bytes]) -> None:
    """read_run_to_score given the qrels' kept documents table (QrelsFile.doc_table) reads what it reads given
    their names, on one thread or in parts, the run grouped or not."""
    with tempfile.TemporaryDirectory() as folder:
        qrels_path, run_path = Path(folder) / "qrels.txt", Path(folder) / "run.txt"
        distinct = {(q, d): rel for q, d, rel in judgments}
        qrels_path.write_text("".join(f"{q} 0 {d} {rel}\n" for (q, d), rel in distinct.items()))
        run_path.write_bytes(b"".join(run_lines))
        qrels = read_qrels_file(qrels_path)
        assert qrels.doc_table is not None
        names = list(qrels.query_names), list(qrels.doc_names)
        expected = outcome(lambda p: to_score(p, *names), run_path)
        kept = lambda p: to_score(p, qrels.query_names, qrels.doc_names, qrels.doc_table)  # noqa: E731
        assert outcome(kept, run_path) == expected
        with in_parts():
            assert outcome(kept, run_path) == expected


def test_a_kept_table_is_checked_against_its_names_and_only_looked_up(tmp_path: Path) -> None:
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq1 0 d2 0\n")
    (tmp_path / "run.txt").write_text("q1 Q0 d2 1 2 run\nq1 Q0 d3 2 1 run\n")
    qrels = read_qrels_file(tmp_path / "qrels.txt")
    assert trec_parse._tablescan.table_size(qrels.doc_table) == 2
    with pytest.raises(ValueError, match="other documents"):
        read_run_to_score(tmp_path / "run.txt", qrels.query_names, ["d1"], qrels.doc_table)
    known_queries = trec_parse._known(["q1"])
    outputs = [np.empty(2, np.int64) for _ in range(3)]
    with pytest.raises(ValueError, match="only looked up"):  # numbering documents would change the qrels' table
        trec_parse._tablescan.scan(np.frombuffer(b"q1 Q0 d3 1 1 run\n", np.uint8), 0, 17, (6, True, 0, 2, 4, False),
                                   False, 1, 1, known_queries, qrels.doc_table, *outputs[:2], np.empty(2), outputs[2])


def test_file_names_are_decoded_when_first_used(tmp_path: Path) -> None:
    """A qrels file's names stay bytes until used (ids of ASCII need no check): scoring a run against the kept table
    decodes none of the documents'; they compare, index, slice, concatenate and pick as the list of the same names
    does."""
    (tmp_path / "qrels.txt").write_text("q1 0 cafe 1\nq1 0 d2 0\nq2 0 d3 2\n")
    (tmp_path / "run.txt").write_text("q1 Q0 d2 1 2 run\nq1 Q0 x 2 1 run\n")
    qrels = read_qrels_file(tmp_path / "qrels.txt")
    docs = qrels.doc_names
    read_run_to_score(tmp_path / "run.txt", qrels.query_names, docs, qrels.doc_table)
    assert docs._names is None
    assert docs.pick(np.array([2, 0])) == ["d3", "cafe"] and docs._names is None
    assert docs == ["cafe", "d2", "d3"] and docs != ["cafe", "d2"] and len(docs) == 3
    assert (docs[1], docs[-1], docs[:2]) == ("d2", "d3", ["cafe", "d2"])
    assert docs + ["e"] == ["cafe", "d2", "d3", "e"] and ["e"] + docs == ["e", "cafe", "d2", "d3"]
    assert docs.pick(np.array([1])) == ["d2"] and "d3" in docs


@contextmanager
def before_a_guard_page(data: bytes):
    """``data`` as a uint8 array ending where a page that cannot be read begins: a read past its end faults."""
    import ctypes

    page = mmap.PAGESIZE
    pages = -(-len(data) // page) + 1
    memory = mmap.mmap(-1, pages * page)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(address + (pages - 1) * page, page, 0) == 0  # PROT_NONE
    start = (pages - 1) * page - len(data)
    memory[start:start + len(data)] = data
    view = np.frombuffer(memory, np.uint8)[start:(pages - 1) * page]
    try:
        yield view
    finally:
        del view
        libc.mprotect(address + (pages - 1) * page, page, mmap.PROT_READ | mmap.PROT_WRITE)


@pytest.mark.parametrize("last_line_bytes", range(16, 84, 3))
def test_the_scan_reads_nothing_past_a_text_that_ends_at_a_guard_page(last_line_bytes: int) -> None:
    """The tokeniser reads 64 bytes at a time where there is room: a text ending at a page that cannot be read,
    last lines of every length, reads as numpy reads it, and does not fault."""
    doc = "z" * (last_line_bytes - len("q9 Q0  1 2.5 r\n"))
    data = f"q1 Q0 d1 1 1 r\nq9 Q0 {doc} 1 2.5 r\n".encode()
    with before_a_guard_page(data) as view:
        text = trec_parse.Text("guarded", view, view.size, view.size, 0)
        parsed = trec_parse._parse_natively(text, lambda first, line: TREC_RUN, "", trec_parse._known(["q9"]),
                                            [doc], None, True, False)
        assert parsed.query.tolist() == [1, 0] and parsed.doc.tolist() == [1, 0]  # d1 unknown: 1 known + row 0
        assert trec_parse.fields_at(text, parsed.offsets) == ["d1", doc]
