"""The command line: help, eval (qrels and pairs), the embedding cache, embed, compare, metrics, user errors.

Every model is the tiny random export (conftest's ``tiny_export``), and every cache lives under tmp_path.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from click.testing import CliRunner, Result

from evalfast.cli import cli

from conftest import HANDWRITTEN, write_file

DIMENSION = 32  # the tiny model's hidden size
SIMILARITY_KEYS = {"similarity", "simulated_context_precision", "simulated_context_recall", "simulated_faithfulness",
                   "simulated_answer_relevancy"}
RANKING = ("hit_rate", "precision", "recall", "mrr", "ndcg", "map")


@pytest.fixture(autouse=True)
def _no_home_cache(monkeypatch, tmp_path_factory) -> None:
    """Belt and braces: even a command that forgot --cache-dir would not write under the home folder."""
    monkeypatch.setenv("EVALFAST_CACHE", str(tmp_path_factory.mktemp("default-cache")))


def invoke(*args: object) -> Result:
    """Run the CLI in-process with stdout and stderr kept apart."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:  # click < 8.2
        runner = CliRunner(mix_stderr=False)
    else:  # click >= 8.2 always separates result.stderr
        runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=True)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result


def assert_user_error(result: Result, *fragments: str) -> str:
    """Exit status 2 and exactly one line on stderr, ``error: ...``, holding each fragment; no traceback."""
    assert result.exit_code == 2, (result.output, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


write = write_file


def shard_count(cache_dir: Path) -> int:
    return len(list((cache_dir / "embeddings").glob("*/*.keys.npy")))


# --- help ----------------------------------------------------------------------------------------------------


def test_group_help_lists_every_command() -> None:
    """The Commands section has one line per registered command, naming it and the first words of its help."""
    from evalfast.cli import cli

    result = ok(invoke("--help"))
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.startswith("  ") and line.strip()]
    assert names == sorted(cli.commands) and len(names) >= 9
    for line in listed:
        if line.strip():
            name, summary = line.split(maxsplit=1)
            assert cli.commands[name].get_short_help_str(limit=200).startswith(summary.rstrip(".").rstrip())


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_command_help_has_an_example(command: str) -> None:
    result = ok(invoke(command, "--help"))
    assert result.output.startswith("Usage:") and f" {command} [OPTIONS]" in result.output
    assert "Example" in result.output


# --- eval on the bundled demo --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_runs(tiny_export: Path, tmp_path_factory) -> dict:
    """The demo evaluated three times: fresh cache, same cache again, then --no-cache."""
    folder = tmp_path_factory.mktemp("demo-eval")
    cache = folder / "cache"
    runs: dict = {"cache": cache, "markdown": folder / "first.md"}
    for name, extra in [("first", ["--markdown", runs["markdown"]]), ("cached", []), ("no_cache", ["--no-cache"])]:
        json_path = folder / f"{name}.json"
        result = invoke("eval", "--model", tiny_export, "--golden", HANDWRITTEN, "--cache-dir", cache,
                        "--json", json_path, *extra)
        runs[name] = (result, json.loads(json_path.read_text()) if json_path.is_file() else None)
        runs[f"shards_after_{name}"] = shard_count(cache)
    return runs


def rag_keys(k: int) -> set[str]:
    return {f"context_precision@{k}", f"context_recall@{k}", f"context_precision@{k} (cosine >= 0.5)",
            f"context_recall@{k} (cosine >= 0.5)"}


def test_eval_demo_json_report(demo_runs: dict) -> None:
    result, report = demo_runs["first"]
    ok(result)
    assert report["schema_version"] == 3 and report["protocol"] == "qrels"
    assert report["conventions"] == {"similarity": "cosine", "query_prompt": "", "document_prompt": "",
                                     "dimension": DIMENSION, "max_seq_length": 24, "normalized": True}
    assert "ranked  by cosine, 32 dimensions, 24 tokens, no query prompt, no document prompt" in result.output
    expected = {f"{m}@{k}" for m in RANKING for k in (1, 3, 5, 10, 100)} | {"r_precision"} | SIMILARITY_KEYS | rag_keys(10)
    assert set(report["metrics"]) == expected
    assert set(report["intervals"]) == expected - SIMILARITY_KEYS
    for key, interval in report["intervals"].items():
        assert interval["low"] <= report["metrics"][key] <= interval["high"], key
    assert {"ndcg@10", "r_precision", "similarity", "simulated_faithfulness"} <= set(report["metrics"])
    for key in expected - SIMILARITY_KEYS:
        assert 0.0 <= report["metrics"][key] <= 1.0, key
    # hit_rate@k counts a query once, precision@1 = hit_rate@1, and everything is monotone in k.
    assert report["metrics"]["precision@1"] == pytest.approx(report["metrics"]["hit_rate@1"])
    for metric in ("hit_rate", "recall"):
        values = [report["metrics"][f"{metric}@{k}"] for k in (1, 3, 5, 10, 100)]
        assert values == sorted(values), metric
    counts = report["counts"]
    assert (counts["queries"], counts["documents"], counts["queries_skipped_no_relevant"]) == (340, 320, 24)
    assert counts["queries_evaluated"] == 316 and counts["similarity_pairs"] == 1859
    assert {"embed_seconds", "search_seconds", "metrics_seconds"} <= set(report["timings"])
    assert report["embedding"]["encoded"] > 0 and report["embedding"]["cached"] == 0


def test_eval_demo_terminal_and_markdown(demo_runs: dict) -> None:
    result, _ = demo_runs["first"]
    assert "340 queries, 320 documents" in result.output and "24 skipped" in result.output
    assert "not RAGAS" in result.output
    markdown = demo_runs["markdown"].read_text()
    assert markdown.startswith("# evalfast evaluation") and "not RAGAS" in markdown
    assert "| ndcg |" in markdown and "| r_precision |" in markdown


def test_eval_second_run_is_served_from_the_cache(demo_runs: dict) -> None:
    (_, first), (result, cached) = demo_runs["first"], demo_runs["cached"]
    ok(result)
    assert demo_runs["shards_after_first"] > 0  # the cache lives under --cache-dir
    # 320 documents + 340 queries, all distinct: every one of them comes back from the cache.
    assert cached["embedding"]["encoded"] == 0
    assert cached["embedding"]["cached"] == first["embedding"]["encoded"] > 0
    assert demo_runs["shards_after_cached"] == demo_runs["shards_after_first"]  # nothing new was written
    assert cached["metrics"] == pytest.approx(first["metrics"], abs=1e-9)
    assert cached["counts"] == first["counts"]


def test_eval_no_cache_recomputes_the_same_metrics(demo_runs: dict) -> None:
    (_, first), (result, fresh) = demo_runs["first"], demo_runs["no_cache"]
    ok(result)
    assert fresh["embedding"]["cached"] == 0 and fresh["embedding"]["encoded"] == first["embedding"]["encoded"]
    assert demo_runs["shards_after_no_cache"] == demo_runs["shards_after_cached"]  # --no-cache writes nothing
    assert fresh["metrics"] == pytest.approx(first["metrics"], abs=1e-6)


@pytest.mark.parametrize("ks", ["1,5", "5,1", "5, 1,5"])
def test_eval_cutoffs(tiny_export: Path, tmp_path: Path, ks: str) -> None:
    json_path = tmp_path / "out.json"
    ok(invoke("eval", "-m", tiny_export, "-g", HANDWRITTEN, "--cache-dir", tmp_path / "cache", "--k", ks,
              "--json", json_path))
    metrics = json.loads(json_path.read_text())["metrics"]
    # the RAG-style metrics' cutoff (10) is capped at the run's depth, the largest k
    assert set(metrics) == {f"{m}@{k}" for m in RANKING for k in (1, 5)} | {"r_precision"} | SIMILARITY_KEYS | rag_keys(5)


# --- the seed's pairs protocol -------------------------------------------------------------------------------

# Two contexts, so both are always in every query's top 3 and top 5.
PAIRS_CSV = """\
query,context,relevance
dragon story,A dragon hoards books in a mountain,1.0
dragon story,A cozy bakery on a rainy street,0.0
baking,A cozy bakery on a rainy street,1
bread,A cozy bakery on a rainy street,1
"""


def test_eval_pairs_protocol(tiny_export: Path, tmp_path: Path) -> None:
    golden, json_path = write(tmp_path / "pairs.csv", PAIRS_CSV), tmp_path / "pairs.json"
    result = ok(invoke("eval", "-m", tiny_export, "-g", golden, "--protocol", "pairs", "--cache-dir", tmp_path / "c",
                       "--json", json_path))
    assert "4 scored one by one (3 positive)" in result.output
    report = json.loads(json_path.read_text())
    metrics = report["metrics"]
    assert set(metrics) == {"precision@1", "precision@3", "precision@5", "mrr", "ndcg@5"} | SIMILARITY_KEYS
    assert report["counts"]["rows"] == 4 and report["counts"]["positive_rows"] == 3
    assert report["counts"]["similarity_pairs"] == 3  # the positive rows
    # Both contexts are in every top 3: positive rows score 1/3 (top 3) and 1/5 (top 5), the negative row 0.
    assert metrics["precision@3"] == pytest.approx((3 * (1 / 3) + 0) / 4)  # 0.25
    assert metrics["precision@5"] == pytest.approx((3 * (1 / 5) + 0) / 4)  # 0.15
    # Each positive row ranks 1st or 2nd: with h of them 1st, mrr = (h + (3 - h) / 2) / 4 and
    # ndcg@5 = (h + (3 - h) / log2(3)) / 4, whichever way the random model ranks.
    h = 8 * metrics["mrr"] - 3
    assert h == pytest.approx(round(h)) and 0 <= round(h) <= 3
    assert metrics["ndcg@5"] == pytest.approx((round(h) + (3 - round(h)) / math.log2(3)) / 4)


def test_eval_pairs_protocol_needs_a_pairs_file(tiny_export: Path, tmp_path: Path) -> None:
    result = invoke("eval", "-m", tiny_export, "-g", HANDWRITTEN, "--protocol", "pairs", "--cache-dir", tmp_path)
    assert_user_error(result, "pairs protocol", "--protocol qrels")


# --- embed ---------------------------------------------------------------------------------------------------

TEXTS = [
    "a haunted lighthouse",
    "dragon",
    "a very long text about rivers and mountains and the people who live between them " * 4,  # > 24 tokens
]


def embed_file(model: Path, tmp_path: Path, name: str, text: str, *extra: object) -> tuple[Result, Path]:
    source, output = write(tmp_path / name, text), tmp_path / f"{name}.npy"
    result = invoke("embed", "--model", model, "--input", source, "-o", output, "--cache-dir", tmp_path / "cache",
                    *extra)
    return result, output


def test_embed_text_file(tiny_export: Path, tmp_path: Path) -> None:
    result, output = embed_file(tiny_export, tmp_path, "texts.txt", "\n".join(TEXTS) + "\n")
    ok(result)
    assert "embedded 3 texts" in result.output and "1 truncated" in result.output
    vectors = np.load(output)
    assert vectors.shape == (3, DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    # Row i is line i embedded on its own (no cache, so it really is computed alone, without padding).
    for i, text in enumerate(TEXTS):
        alone_result, alone = embed_file(tiny_export, tmp_path, f"line{i}.txt", text + "\n", "--no-cache")
        ok(alone_result)
        np.testing.assert_allclose(np.load(alone)[0], vectors[i], atol=1e-6)


@pytest.mark.parametrize("breaker", ["\f", "\x1c", "\x85", "\u2028", "\v", "\r"])
def test_embed_splits_lines_at_newlines_only(tiny_export: Path, tmp_path: Path, breaker: str) -> None:
    # str.splitlines() also breaks at these; one row per line of the file, BOM and CRLF line ends or not
    text = "\ufeffone" + breaker + "line\r\nsecond\nthird" + breaker + "\n"
    result, output = embed_file(tiny_export, tmp_path, "texts.txt", text)
    ok(result)
    assert np.load(output).shape == (3, DIMENSION), result.output


@pytest.mark.parametrize(("name", "field", "extra"), [("texts.jsonl", "body", ["--field", "body"]),
                                                      ("texts.jsonl", "text", []),
                                                      ("records.json", "body", ["--field", "body"])])
def test_embed_jsonl_field(tiny_export: Path, tmp_path: Path, name: str, field: str, extra: list[str]) -> None:
    records = "".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(TEXTS))
    result, output = embed_file(tiny_export, tmp_path, name, records, *extra)
    ok(result)
    plain_result, plain = embed_file(tiny_export, tmp_path, "plain.txt", "\n".join(TEXTS))
    ok(plain_result)
    np.testing.assert_allclose(np.load(output), np.load(plain), atol=1e-6)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("texts.txt", "first\n\nthird\n", "line 2: empty line"),
    ("texts.txt", "first\nsecond\n   \n", "line 3: empty line"),
    ("texts.jsonl", '{"text": "a"}\n{"body": "b"}\n', "line 2: field 'text' is missing or empty"),
    ("texts.jsonl", '{"text": "a"}\n{"text": "  "}\n', "line 2: field 'text' is missing or empty"),
    ("texts.jsonl", '{"text": "a"}\nnot json\n', "line 2: not valid JSON"),
    ("texts.txt", "", "no texts to embed"),
])
def test_embed_bad_input_writes_nothing(tiny_export: Path, tmp_path: Path, name: str, text: str, message: str) -> None:
    result, output = embed_file(tiny_export, tmp_path, name, text)
    assert_user_error(result, name, message)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output and no temporary file


# --- compare -------------------------------------------------------------------------------------------------


def test_compare_a_model_with_itself(tiny_export: Path, tmp_path: Path) -> None:
    """Identical models: every difference 0, p = 1, nothing significant; every output written."""
    paths = {name: tmp_path / name for name in ("cmp.json", "cmp.md", "cmp.html", "q.jsonl", "runs")}
    result = ok(invoke("compare", "-m", tiny_export, "-m", tiny_export, "-g", HANDWRITTEN, "--k", "1,5",
                       "--cache-dir", tmp_path / "cache", "--json", paths["cmp.json"], "--markdown", paths["cmp.md"],
                       "--html", paths["cmp.html"], "--per-query", paths["q.jsonl"], "--run", paths["runs"],
                       "--resamples", "200", "--permutations", "500"))
    verdict_lines = [line for line in result.output.splitlines() if line.endswith("significant") and "p <" not in line]
    assert verdict_lines and all(line.endswith("not significant") for line in verdict_lines)
    report = json.loads(paths["cmp.json"].read_text())
    assert report["kind"] == "evalfast.compare" and report["schema_version"] == 1
    names = [m["name"] for m in report["models"]]
    assert len(set(names)) == 2  # one folder twice: told apart
    (pair,) = report["comparisons"]
    assert set(pair["metrics"]) >= {f"{m}@{k}" for m in RANKING for k in (1, 5)} | {"r_precision"}
    for metric, test in pair["metrics"].items():
        assert (test["difference"], test["p_randomization"], test["p_t_test"], test["significant"]) == (0, 1, 1, False)
    assert pair["worse"] == pair["better"] == []
    assert report["hardest"] and report["models"][0]["score_histogram"]["relevant"]
    assert "# evalfast comparison" in paths["cmp.md"].read_text()
    assert paths["cmp.html"].read_text().startswith("<!DOCTYPE html>")
    per_query = [json.loads(line) for line in paths["q.jsonl"].read_text().splitlines()]
    assert len(per_query) == 2 * 340 and {"top", "first_relevant_rank", "metrics"} <= set(per_query[0])
    assert len(list(paths["runs"].glob("*.trec"))) == 2


def test_compare_needs_two_models(tiny_export: Path, tmp_path: Path) -> None:
    result = invoke("compare", "-m", tiny_export, "-g", HANDWRITTEN, "--cache-dir", tmp_path)
    assert_user_error(result, "at least two --model", "got 1")


def test_compare_precisions_must_match_the_models(tiny_export: Path, tmp_path: Path) -> None:
    result = invoke("compare", "-m", tiny_export, "-m", tiny_export, "-m", tiny_export, "--precision", "fp32,int8",
                    "-g", HANDWRITTEN, "--cache-dir", tmp_path)
    assert_user_error(result, "--precision fp32,int8", "one per --model (3)")


# --- metrics against pytrec_eval -----------------------------------------------------------------------------

QRELS = """\
q1 0 a 2
q1 0 b 1
q1 0 c 0
q1 0 d 1
q2 0 a 1
q2 0 e 1
q3 0 b 0
"""
# q1 ranks a c b z d e (c and b tie at .8: trec_eval puts the larger docid, c, first), q2 ranks f e b a c d
# (e before b on the .5 tie); q3 has no relevant document and q4 no judgments: both are left out.
RUN = """\
q1 Q0 b 1 0.8 sys
q1 Q0 a 2 0.9 sys
q1 Q0 c 3 0.8 sys
q1 Q0 z 4 0.7 sys
q1 Q0 d 5 0.1 sys
q1 Q0 e 6 0.05 sys
q2 Q0 f 1 0.6 sys
q2 Q0 b 2 0.5 sys
q2 Q0 e 3 0.5 sys
q2 Q0 a 4 0.2 sys
q2 Q0 c 5 0.1 sys
q2 Q0 d 6 0.05 sys
q3 Q0 b 1 0.3 sys
q4 Q0 a 1 0.3 sys
"""
PYTREC = {"precision@{k}": "P_{k}", "ndcg@{k}": "ndcg_cut_{k}", "map@{k}": "map_cut_{k}", "recall@{k}": "recall_{k}",
          "hit_rate@{k}": "success_{k}"}


@pytest.mark.parametrize("unretrieved", [False, True])
def test_metrics_match_pytrec_eval(tmp_path: Path, unretrieved: bool) -> None:
    """Means over q1 and q2 equal pytrec_eval's; with ``unretrieved``, q5 is judged relevant to a document but
    absent from the run: pytrec_eval skips it, evalfast scores it 0 (trec_eval -c), so its mean is sum / 3."""
    qrels_text = QRELS + ("q5 0 a 1\n" if unretrieved else "")
    qrels, run = write(tmp_path / "qrels.txt", qrels_text), write(tmp_path / "run.txt", RUN)
    json_path = tmp_path / "scores.json"
    result = ok(invoke("metrics", "--qrels", qrels, "--run", run, "--k", "1,5", "--average", "judged",
                       "--json", json_path))
    scored = 3 if unretrieved else 2
    assert result.output.startswith(f"average judged: {scored} queries, the qrels queries with a relevant document")
    report = json.loads(json_path.read_text())
    assert report["average"]["queries_averaged"] == scored
    assert report["average"]["judged_without_relevant"] == 1 and report["average"]["run_queries_absent_from_qrels"] == 1

    with open(qrels) as q, open(run) as r:
        measures = {"P.1,5", "ndcg_cut.1,5", "map_cut.1,5", "recall.1,5", "success.1,5", "recip_rank", "Rprec"}
        per_query = pytrec_eval.RelevanceEvaluator(pytrec_eval.parse_qrel(q), measures).evaluate(pytrec_eval.parse_run(r))
    names = {ours.format(k=k): theirs.format(k=k) for ours, theirs in PYTREC.items() for k in (1, 5)}
    names.update({"mrr@5": "recip_rank", "r_precision": "Rprec"})  # every first relevant doc is within the top 5
    expected = {ours: sum(per_query[q][theirs] for q in ("q1", "q2")) / scored for ours, theirs in names.items()}
    assert 0 < expected["ndcg@5"] < 1 and expected["mrr@5"] == pytest.approx(0.75 * 2 / scored)  # rr 1 and 1/2
    assert {key: report["metrics"][key] for key in expected} == pytest.approx(expected, abs=1e-12)

    # The printed grid shows the same means to three decimals (columns @1, @5, value).
    grid = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[6:] if line.strip()}
    assert grid["ndcg"] == [f"{expected['ndcg@1']:.3f}", f"{expected['ndcg@5']:.3f}"]
    assert grid["r_precision"] == [f"{expected['r_precision']:.3f}"]


# --- user errors: exit 2, one line "error: ..." on stderr ----------------------------------------------------

GOOD_CSV = "query,context,relevance\ndragon,A dragon hoards books,1\nbaking,A cozy bakery,1\n"


def copy_export(tiny_export: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_export, tmp_path / "broken-export"))


def export_without_model_file(tiny_export: Path, tmp_path: Path) -> Path:
    folder = copy_export(tiny_export, tmp_path)
    (folder / "model.onnx").unlink()
    return folder


def export_without_embedding_output(tiny_export: Path, tmp_path: Path) -> Path:
    """The graph's only output (and the node producing it) renamed from sentence_embedding to embedding_renamed."""
    import onnx

    folder = copy_export(tiny_export, tmp_path)
    model = onnx.load(str(folder / "model.onnx"))
    for node in model.graph.node:
        node.output[:] = ["embedding_renamed" if o == "sentence_embedding" else o for o in node.output]
    (output,) = model.graph.output
    assert output.name == "sentence_embedding"
    output.name = "embedding_renamed"
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    return folder


def eval_args(model, golden) -> list:
    return ["eval", "--model", model, "--golden", golden]


# (build the arguments from (tiny_export, tmp_path), fragments of the error line)
USER_ERRORS = [
    pytest.param(lambda m, d: eval_args(m, d / "missing.csv"), ["missing.csv", "no such file or folder"],
                 id="missing-golden"),
    pytest.param(lambda m, d: eval_args(m, write(d / "g.csv", "query,context\na,b\n")),
                 ["g.csv line 1: missing column(s) relevance"], id="golden-missing-column"),
    pytest.param(lambda m, d: eval_args(m, write(d / "g.csv", GOOD_CSV + "c,d,maybe\n")),
                 ["g.csv line 4: relevance 'maybe'"], id="golden-bad-relevance"),
    pytest.param(lambda m, d: eval_args(d / "no-such-model", write(d / "g.csv", GOOD_CSV)),
                 ["no-such-model", "no such folder"], id="model-missing"),
    pytest.param(lambda m, d: eval_args((d / "empty").mkdir() or d / "empty", write(d / "g.csv", GOOD_CSV)),
                 ["empty: missing config.json"], id="model-without-config"),
    pytest.param(lambda m, d: eval_args(export_without_model_file(m, d), write(d / "g.csv", GOOD_CSV)),
                 ["broken-export: missing model.onnx"], id="export-without-model-onnx"),
    pytest.param(lambda m, d: eval_args(export_without_embedding_output(m, d), write(d / "g.csv", GOOD_CSV)),
                 ["model.onnx: no 'sentence_embedding' output", "embedding_renamed"], id="export-without-output"),
    pytest.param(lambda m, d: ["export", m, "-o", (d / "taken").mkdir() or d / "taken"],
                 ["taken already exists", "--overwrite"], id="export-into-existing-folder"),
    pytest.param(lambda m, d: ["metrics", "--qrels", write(d / "q.txt", "q1 0 a 1\n"),
                               "--run", write(d / "r.txt", "q1 Q0 a 1 0.5 sys\nq1 Q0 b 2 0.4\n")],
                 ["r.txt line 2: expected 6 columns"], id="metrics-malformed-run"),
    pytest.param(lambda m, d: ["metrics", "--qrels", d / "nope.txt", "--run", write(d / "r.txt", "q1 Q0 a 1 1 s\n")],
                 ["nope.txt"], id="metrics-missing-qrels"),
    pytest.param(lambda m, d: eval_args(m, write(d / "g.csv", b"query,context,relevance\ncaf\xe9,c,1\n")),
                 ["g.csv"], id="golden-not-utf8"),
]


@pytest.mark.parametrize(("make_args", "fragments"), USER_ERRORS)
def test_user_error(tiny_export: Path, tmp_path: Path, make_args, fragments: list[str]) -> None:
    args = make_args(tiny_export, tmp_path)
    if args[0] == "eval":
        args += ["--cache-dir", tmp_path / "cache"]
    assert_user_error(invoke(*args), *fragments)


def test_export_into_existing_folder_leaves_it_alone(tiny_export: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "taken" / "keep.txt", "mine").parent
    assert_user_error(invoke("export", tiny_export, "-o", target), "already exists")
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["eval", "metrics"])
@pytest.mark.parametrize("ks", ["0", "abc", "1,0", ",", "-3"])
def test_bad_cutoffs_are_usage_errors(tmp_path: Path, command: str, ks: str) -> None:
    # click reports its own usage errors (exit 2, "Invalid value for '--k'") before anything runs.
    if command == "eval":
        args = eval_args(tmp_path / "model", HANDWRITTEN) + ["--cache-dir", tmp_path]
    else:
        args = ["metrics", "--qrels", tmp_path / "q.txt", "--run", tmp_path / "r.txt"]
    result = invoke(*args, f"--k={ks}")
    assert result.exit_code == 2, (result.output, result.stderr)
    assert isinstance(result.exception, SystemExit)
    assert "Invalid value for '--k'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("failure", ["missing-golden", "bad-model"])
def test_failed_eval_keeps_existing_reports(tiny_export: Path, tmp_path: Path, failure: str) -> None:
    reports = tmp_path / "reports"
    old_json, old_md = write(reports / "out.json", '{"old": true}\n'), write(reports / "out.md", "# old\n")
    golden = tmp_path / "missing" if failure == "missing-golden" else write(tmp_path / "g.csv", GOOD_CSV)
    model = tiny_export if failure == "missing-golden" else tmp_path / "no-model"
    result = invoke(*eval_args(model, golden), "--cache-dir", tmp_path / "cache", "--json", old_json,
                    "--markdown", old_md)
    assert_user_error(result)
    assert old_json.read_text() == '{"old": true}\n' and old_md.read_text() == "# old\n"
    assert sorted(p.name for p in reports.iterdir()) == ["out.json", "out.md"]  # no temporary files either


def test_version_is_the_installed_package_metadata() -> None:
    import importlib.metadata

    import evalfast

    assert evalfast.__version__ == importlib.metadata.version("evalfast")


@pytest.mark.parametrize(("command", "settings", "names"), [
    ("compare", "evalfast.comparison.stats.StatSettings", ("resamples", "permutations", "alpha")),
    ("latency", "evalfast.perf.latency.IndexSpec", ("hnsw_m", "ef_search", "ef_construction", "nprobe")),
    ("latency", "evalfast.perf.latency.LatencyConfig", ("qps", "concurrency", "k")),
])
def test_options_take_their_default_and_help_from_the_library_settings(command, settings, names):
    """A default is written once: these options are made from their dataclass fields, so changing a field's
    default or help changes the option's."""
    import dataclasses
    import importlib

    module, name = settings.rsplit(".", 1)
    fields = {field.name: field for field in dataclasses.fields(getattr(importlib.import_module(module), name))}
    params = {param.name: param for param in cli.commands[command].params}
    for field_name in names:
        param, field = params[field_name], fields[field_name]
        assert (param.default, param.help) == (field.default, field.metadata["help"])
        assert param.opts == [f"--{field_name.replace('_', '-')}"]
