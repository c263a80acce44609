"""Hostile input files: every reader refuses them with one line naming the file, the line and the fix (exit 2), and
`golden check` reports them as errors (exit 1); never a traceback, never a silently different set.

Each case writes its files into tmp_path and runs the command line in-process. Cases that fail before a model is
needed name a model folder that does not exist, so a reader that wrongly let the input through fails with another
message; the others use the tiny export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import invoke

from evalfast.data.golden import load_golden
from evalfast.data.golden_check import check_golden
from evalfast.data.run import Run
from evalfast.data.texts import read_texts, text_lines
from evalfast.data.trec import read_qrels, read_run, write_run
from evalfast.errors import EvalfastError, GoldenSetError

from conftest import write_file

CORPUS = [{"_id": "d1", "title": "Dragons", "text": "A dragon hoards books"},
          {"_id": "d2", "title": "", "text": "A cozy bakery"}]
QUERIES = [{"_id": "q1", "text": "dragon"}, {"_id": "q2", "text": "baking"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"
PAIRS_CSV = "query,context,relevance\ndragon,A dragon hoards books,1\nbaking,A cozy bakery,1\n"
PAIRS_RECORD = {"query": "dragon", "context": "A dragon hoards books", "relevance": 1}
PROMPT = {"id": "p1", "genres": ["fantasy"], "themes": ["dragons"], "title": "Hoard", "text": "A dragon hoards books."}
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it
EVAL = ["eval", "-m", "{model}", "-g", "{d}/beir", "--cache-dir", "{d}/cache"]
EVAL_CSV = ["eval", "-m", "{model}", "-g", "{d}/g.csv", "--cache-dir", "{d}/cache"]
EVAL_JSONL = ["eval", "-m", "{model}", "-g", "{d}/g.jsonl", "--cache-dir", "{d}/cache"]
CHECK = ["golden", "check", "{d}/beir"]
METRICS = ["metrics", "--qrels", "{d}/q.txt", "--run", "{d}/r.txt"]
EMBED = ["embed", "-m", "{tiny_export}", "-i", "{d}/texts.txt", "-o", "{d}/out.npy", "--cache-dir", "{d}/cache"]
EMBED_JSONL = ["embed", "-m", "{tiny_export}", "-i", "{d}/texts.jsonl", "-o", "{d}/out.npy", "--cache-dir",
               "{d}/cache"]
HEURISTIC = ["golden", "heuristic", "-p", "{d}/prompts.jsonl", "-o", "{d}/out"]


def lines(records: list[dict]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def beir(corpus: list[dict] | str = CORPUS, queries: list[dict] | str = QUERIES, qrels: str | bytes = QRELS,
         split: str = "test") -> dict[str, str | bytes]:
    """The files of a BEIR folder "beir": records as JSON lines, or the text of the file as given."""
    return {"beir/corpus.jsonl": corpus if isinstance(corpus, str) else lines(corpus),
            "beir/queries.jsonl": queries if isinstance(queries, str) else lines(queries),
            f"beir/qrels/{split}.tsv": qrels}


def with_doc(**fields: object) -> dict[str, str | bytes]:
    """The BEIR folder with a third document, judged relevant to q1."""
    return beir(corpus=[*CORPUS, fields], qrels=QRELS + f"q1\t{fields.get('_id', 'd3')}\t1\n")


# (case, files, command line, exit status, fragment of the one error line, or of stdout for golden check)
CASES = [
    # 1. ids with whitespace or control characters, or that are not strings
    ("query id with a newline", beir(queries=[{"_id": "q1\nq9 Q0 d1 1 9 forged", "text": "dragon"}]), EVAL, 2,
     "queries.jsonl line 1: _id 'q1\\nq9 Q0 d1 1 9 forged' holds whitespace or a control character"),
    ("doc id with a space", with_doc(_id="d 3", text="x"), EVAL, 2,
     "corpus.jsonl line 3: _id 'd 3' holds whitespace"),
    ("doc id with a tab", with_doc(_id="d\t3", text="x"), EVAL, 2, "corpus.jsonl line 3: _id 'd\\t3' holds"),
    ("doc id with a control character", with_doc(_id="d\x073", text="x"), EVAL, 2,
     "corpus.jsonl line 3: _id 'd\\x073' holds whitespace or a control character, which TREC and qrels files "
     "cannot carry; rename it (e.g. 'd_3')"),
    ("doc id a list", with_doc(_id=["d3"], text="x"), EVAL, 2, "corpus.jsonl line 3: _id is a list, not a string"),
    ("doc id a float", with_doc(_id=3.5, text="x"), EVAL, 2, "corpus.jsonl line 3: _id is a decimal number"),
    ("doc id a boolean", with_doc(_id=True, text="x"), EVAL, 2, "corpus.jsonl line 3: _id is true/false"),
    ("doc id null", with_doc(_id=None, text="x"), EVAL, 2, "corpus.jsonl line 3: missing _id"),
    ("query id an object", beir(queries=[{"_id": {"id": 1}, "text": "dragon"}]), EVAL, 2,
     "queries.jsonl line 1: _id is an object"),
    ("judged phantom doc with a control character", beir(qrels=QRELS + "q1\td\x019\t1\n"), EVAL, 2,
     "test.tsv line 4: corpus-id 'd\\x019' holds"),
    ("bad id reported by golden check", with_doc(_id="d 3", text="x"), CHECK, 1, "invalid-id"),
    ("bad qrels id reported by golden check", beir(qrels=QRELS + "q1\td\x019\t1\n"), CHECK, 1, "invalid-id"),
    ("pairs csv query_id with a space", {"g.csv": "query,context,relevance,query_id\ndragon,A dragon,1,q 1\n"},
     EVAL_CSV, 2, "g.csv line 2: query_id 'q 1' holds whitespace"),
    ("pairs jsonl context_id a list", {"g.jsonl": lines([PAIRS_RECORD | {"context_id": ["d1"]}])}, EVAL_JSONL, 2,
     "g.jsonl line 1: context_id is a list"),
    ("trec qrels id with a control character", {"q.txt": "q1 0 d\x7f1 1\n", "r.txt": "q1 Q0 d1 1 0.5 s\n"},
     METRICS, 2, "q.txt line 1: docid 'd\\x7f1' holds"),
    ("trec run id with a control character", {"q.txt": "q1 0 d1 1\n", "r.txt": "q1 Q0 d1 1 0.5 s\nq\x1b 0 d1 1 1 s\n"},
     METRICS, 2, "r.txt line 2: qid 'q\\x1b' holds"),
    ("prompt id with a space", {"prompts.jsonl": lines([PROMPT, PROMPT | {"id": "p 2"}])}, HEURISTIC, 2,
     "prompts.jsonl line 2: prompt id 'p 2' holds whitespace"),
    ("prompt id with a tab", {"prompts.jsonl": lines([PROMPT | {"id": "p\t1"}])}, HEURISTIC, 2,
     "prompts.jsonl line 1: prompt id 'p\\t1' holds whitespace"),
    # 2. text fields that are not strings
    ("pairs context a list", {"g.jsonl": lines([PAIRS_RECORD | {"context": ["haunted", "lighthouse"]}])},
     EVAL_JSONL, 2, "g.jsonl line 1: context is a list, not a string"),
    ("pairs query a number", {"g.jsonl": lines([PAIRS_RECORD | {"query": 42}])}, EVAL_JSONL, 2,
     "g.jsonl line 1: query is an integer, not a string"),
    ("document text an object", with_doc(_id="d3", text={"body": "x"}), EVAL, 2,
     "corpus.jsonl line 3: text is an object, not a string"),
    ("document title a boolean", with_doc(_id="d3", title=False, text="x"), EVAL, 2,
     "corpus.jsonl line 3: title is true/false"),
    ("query text a list", beir(queries=[QUERIES[0], {"_id": "q2", "text": ["baking"]}]), EVAL, 2,
     "queries.jsonl line 2: text is a list"),
    ("text field reported by golden check", with_doc(_id="d3", text=[1, 2]), CHECK, 1, "invalid-field"),
    ("embed --field a list", {"texts.jsonl": lines([{"text": "fine"}, {"text": ["haunted", "lighthouse"]}])},
     EMBED_JSONL, 2, "texts.jsonl line 2: field 'text' is a list, not a string"),
    # 5. JSON that parses to no text, or does not parse
    ("lone surrogate in a document", beir(corpus=lines(CORPUS) + '{"_id": "d3", "text": "broken \\ud800 text"}\n'),
     EVAL, 2, "corpus.jsonl line 3: a \\ud800-\\udfff escape without its pair"),
    ("lone surrogate in a pairs query", {"g.jsonl": '{"query": "\\udfff", "context": "c", "relevance": 1}\n'},
     EVAL_JSONL, 2, "g.jsonl line 1: a \\ud800-\\udfff escape"),
    ("deeply nested JSON", beir(queries=lines(QUERIES) + DEEP + "\n"), EVAL, 2,
     "queries.jsonl line 3: JSON nested too deeply"),
    ("deeply nested JSON in golden check", beir(queries=lines(QUERIES) + DEEP + "\n"), CHECK, 1,
     "queries.jsonl line 3: JSON nested too deeply"),
    ("lone surrogate in golden check", beir(corpus=lines(CORPUS) + '{"_id": "d3", "text": "\\ud800"}\n'), CHECK, 1,
     "corpus.jsonl line 3: a \\ud800-\\udfff escape"),
    # 6. nothing relevant
    ("empty qrels", beir(qrels=""), EVAL, 2, "test.tsv: no query has a relevant document"),
    ("header-only qrels", beir(qrels="query-id\tcorpus-id\tscore\n"), EVAL, 2,
     "test.tsv: no query has a relevant document"),
    ("qrels all 0", beir(qrels="q1\td1\t0\nq2\td2\t0\n"), EVAL, 2, "test.tsv: no query has a relevant document"),
    ("csv all 0", {"g.csv": PAIRS_CSV.replace(",1\n", ",0\n")}, EVAL_CSV, 2,
     "g.csv: no query has a relevant document"),
    ("empty qrels in golden check", beir(qrels=""), CHECK, 1, "no-relevant-judgment"),
    ("qrels all 0 in golden check", beir(qrels="q1\td1\t0\nq2\td2\t0\n"), CHECK, 1, "no-relevant-judgment"),
    ("csv all 0 in golden check", {"g.csv": PAIRS_CSV.replace(",1\n", ",0\n")}, ["golden", "check", "{d}/g.csv"], 1,
     "no-relevant-judgment"),
    # 7. not UTF-8
    ("latin-1 text to embed", {"texts.txt": "fine\ncaf\xe9\n".encode("latin-1")}, EMBED, 2,
     "texts.txt line 2 (byte offset 8, 0xe9): not UTF-8 text; re-encode the file as UTF-8"),
    ("latin-1 jsonl to embed", {"texts.jsonl": '{"text": "caf\xe9"}\n'.encode("latin-1")}, EMBED_JSONL, 2,
     "texts.jsonl line 1 (byte offset 13, 0xe9): not UTF-8"),
    ("latin-1 distractors", {"g.csv": PAIRS_CSV, "more.txt": "caf\xe9\n".encode("latin-1")},
     ["latency", "-m", "{model}", "-g", "{d}/g.csv", "--distractors", "{d}/more.txt"], 2,
     "more.txt line 1 (byte offset 3, 0xe9): not UTF-8"),
    ("latin-1 bench texts", {"more.txt": "ok\ncaf\xe9\n".encode("latin-1")},
     ["bench", "-m", "{model}", "--texts", "{d}/more.txt"], 2, "more.txt line 2 (byte offset 6, 0xe9): not UTF-8"),
    ("latin-1 pairs csv", {"g.csv": (PAIRS_CSV + "caf\xe9,c,1\n").encode("latin-1")}, EVAL_CSV, 2,
     "g.csv line 4 (byte offset 81, 0xe9): not UTF-8"),
    ("latin-1 beir qrels", beir(qrels=(QRELS + "q1\tcaf\xe9\t1\n").encode("latin-1")), EVAL, 2,
     "qrels/test.tsv line 4 (byte offset 47, 0xe9): not UTF-8"),
    ("latin-1 trec run",
     {"q.txt": "q1 0 d1 1\n", "r.txt": "q1 Q0 d1 1 0.5 s\nq1 Q0 caf\xe9 2 0.1 s\n".encode("latin-1")}, METRICS, 2,
     "r.txt line 2 (byte offset 26, 0xe9): not UTF-8"),
    # 8. a split that is not there
    ("beir split missing", beir(split="dev") | {"beir/qrels/train.tsv": QRELS}, EVAL, 2,
     "qrels/test.tsv not found; this folder has split(s) dev, train: pass --split dev"),
    # CSV rows that do not fit their header
    ("csv row with an unquoted comma", {"g.csv": PAIRS_CSV + "dragon,A dragon, with wings,1\n"}, EVAL_CSV, 2,
     "g.csv line 4: 4 fields, but the header names 3 columns; quote a field that holds a comma"),
    ("csv row too short", {"g.csv": PAIRS_CSV + "dragon\n"}, EVAL_CSV, 2, "g.csv line 4: 1 fields"),
    ("csv column named twice", {"g.csv": "query,context,relevance,context\na,b,1,c\n"}, EVAL_CSV, 2,
     "g.csv line 1: column(s) 'context' named twice"),
    ("csv row too long in golden check", {"g.csv": PAIRS_CSV + "dragon,A dragon, with wings,1\n"},
     ["golden", "check", "{d}/g.csv"], 1, "csv-columns"),
]


@pytest.mark.parametrize(("files", "args", "status", "fragment"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_hostile_input(request, tmp_path: Path, files: dict, args: list[str], status: int, fragment: str) -> None:
    for name, content in files.items():
        write_file(tmp_path / name, content)
    model = request.getfixturevalue("tiny_export") if "{tiny_export}" in args else tmp_path / "no-model"
    result = invoke(*(a.format(d=tmp_path, model=model, tiny_export=model) for a in args))
    assert result.exit_code == status, (result.output, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr
    if status == 2:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
        assert fragment in result.stderr, result.stderr
    else:  # golden check: its report on stdout
        assert fragment in result.output, result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.npy").exists()


# --- what must keep working -------------------------------------------------------------------------------


def test_integer_ids_are_read_as_their_decimal_string(tmp_path: Path) -> None:
    for name, content in beir(corpus=[{"_id": 123, "text": "A dragon"}, *CORPUS],
                              queries=[{"_id": 7, "text": "dragon"}], qrels="7\t123\t1\n").items():
        write_file(tmp_path / name, content)
    golden = load_golden(tmp_path / "beir")
    assert golden.doc_ids == ["123", "d1", "d2"] and golden.query_ids == ["7"]
    assert check_golden(tmp_path / "beir").errors == []


def test_a_long_csv_field_reads(tmp_path: Path) -> None:
    document = "word " * 40_000  # 200,000 characters, past the csv module's default limit of 131,072
    path = write_file(tmp_path / "g.csv", f'query,context,relevance\ndragon,"{document}",1\n')
    assert load_golden(path).doc_texts == [document.strip()]
    assert check_golden(path).errors == []


def test_unread_columns_are_warned_about_once(tmp_path: Path) -> None:
    path = write_file(tmp_path / "g.csv", "query,context,relevance,notes,source\n" + "a,b,1,x,y\nc,d,1,,\n")
    assert load_golden(path).warnings == (
        f"{path}: column(s) 'notes', 'source' not read (a pairs file holds query, context, relevance, query_id, "
        "context_id, context_title); rename or drop them",)
    jsonl = write_file(tmp_path / "g.jsonl", lines([PAIRS_RECORD | {"note": "x"}, PAIRS_RECORD | {"extra": 1}]))
    (warning,) = load_golden(jsonl).warnings
    assert "g.jsonl: field(s) 'extra', 'note' not read" in warning
    result = invoke("golden", "check", path)
    assert result.exit_code == 0 and "unread-column" in result.output, result.output


def test_optional_id_columns_raise_no_warning(tmp_path: Path) -> None:
    path = write_file(tmp_path / "g.csv", "query,context,relevance,query_id,context_id,context_title\na,b,1,q1,d1,T\n")
    assert load_golden(path).warnings == ()


def test_a_stray_file_that_is_not_utf8_does_not_stop_a_beir_folder(tmp_path: Path) -> None:
    for name, content in (beir() | {"beir/qrels/train.tsv": b"q1\tcaf\xe9\t1\n", "beir/notes.txt": b"\xff"}).items():
        write_file(tmp_path / name, content)
    assert load_golden(tmp_path / "beir").n_queries == 2
    with pytest.raises(GoldenSetError, match=r"train\.tsv line 1 \(byte offset 6, 0xe9\)"):
        load_golden(tmp_path / "beir", split="train")


def test_text_readers_keep_boms_and_split_at_newlines_only(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t.txt", "\ufeffone\r\ntwo\x0cstill two\u2028and more\n")
    assert text_lines(path) == ["one", "two\x0cstill two\u2028and more"]
    jsonl = write_file(tmp_path / "t.jsonl", "\ufeff" + lines([{"body": "a"}, {"body": "b"}]))
    assert read_texts(jsonl, "body") == ["a", "b"]
    with pytest.raises(EvalfastError, match="line 1: field 'body' is an integer"):
        read_texts(write_file(tmp_path / "n.jsonl", lines([{"body": 1}])), "body")


def test_a_huge_json_integer_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write_file(tmp_path / "g.jsonl", '{"query": "q", "context": "c", "relevance": ' + "1" * 5000 + "}\n")
    with pytest.raises(GoldenSetError, match="g.jsonl line 1: not readable JSON"):
        load_golden(path)


# --- TREC files: names that would shift columns or forge lines --------------------------------------------


@pytest.mark.parametrize("name", ["d 2", "d2\nq9", "d\t2", "d\x002", ""])
def test_write_run_refuses_a_name_that_is_not_an_id_and_writes_nothing(tmp_path: Path, name: str) -> None:
    run = Run(np.array([[0, 1]]), np.array([[0.9, 0.5]], np.float32))
    with pytest.raises(EvalfastError, match="cannot write the run: (empty )?docid"):
        write_run(tmp_path / "run.trec", run, ["q1"], ["d1", name], "tag")
    assert list(tmp_path.iterdir()) == []


def test_write_run_checks_only_the_names_it_writes(tmp_path: Path) -> None:
    run = Run(np.array([[0, -1]]), np.array([[0.5, -np.inf]], np.float32))
    write_run(tmp_path / "run.trec", run, ["q1", "not written"], ["d1", "not written"], "tag")
    assert (tmp_path / "run.trec").read_text() == "q1 Q0 d1 1 0.5 tag\n"


def test_trec_readers_name_the_first_line_with_a_bad_id(tmp_path: Path) -> None:
    qrels = write_file(tmp_path / "q.txt", "q1 0 d1 1\nq2 0 d\x012 1\nq\x013 0 d3 1\n")
    with pytest.raises(EvalfastError, match=r"q\.txt line 2: docid 'd\\x012'"):
        read_qrels(qrels)
    run = write_file(tmp_path / "r.txt", "q1 Q0 d1 1 1 s\nq\x02 Q0 d1 1 1 s\nq1 Q0 d\x03 2 0 s\n")
    with pytest.raises(EvalfastError, match=r"r\.txt line 2: qid 'q\\x02'"):
        read_run(run, ["q1"], ["d1"])
