"""`evalfast bench`: every contender runs, ratios are per round against sentence-transformers fp32."""

from __future__ import annotations

import json
import statistics

import pytest
from click.testing import CliRunner

from conftest import HANDWRITTEN
from evalfast.cli import cli


@pytest.fixture(scope="module")
def bench_report(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_export), "--golden", str(HANDWRITTEN), "--n", "40",
                                      "--repeats", "2", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    (report,) = out.glob("bench-*.json")
    assert report.with_suffix(".md").is_file()
    return result.output, json.loads(report.read_text())


def test_every_contender_is_timed_in_every_round(bench_report):
    _, report = bench_report
    names = [row["name"] for row in report["rows"]]
    assert names == ["evalfast fp32", "evalfast int8", "sentence-transformers fp32",
                     "sentence-transformers bf16 autocast", "sentence-transformers onnx backend"]
    for row in report["rows"]:
        assert len(row["seconds"]) == 2 and row["sentences_per_second"] > 0
    assert report["n_texts"] == 40 and report["machine"]["cores"] >= 1


def test_ratios_and_accuracy_are_against_sentence_transformers_fp32(bench_report):
    _, report = bench_report
    rows = {row["name"]: row for row in report["rows"]}
    reference = rows["sentence-transformers fp32"]
    assert reference["ratio_median"] == 1.0 and reference["max_one_minus_cos"] < 1e-12
    fp32 = rows["evalfast fp32"]
    assert fp32["max_one_minus_cos"] < 1e-5 and abs(fp32["ndcg10_delta"]) < 0.01
    per_round = [ref / own for ref, own in zip(reference["seconds"], fp32["seconds"])]
    assert fp32["ratio_median"] == pytest.approx(statistics.median(per_round), rel=1e-12)
    assert rows["evalfast int8"]["max_one_minus_cos"] > fp32["max_one_minus_cos"]


@pytest.mark.parametrize("args, message", [
    (["--n", "5"], "exactly one of --texts"),
    (["--golden", str(HANDWRITTEN), "--precision", "fp16"], "none runs on cpu"),
    (["--golden", str(HANDWRITTEN), "--device", "gpu"], "Invalid value for '--device'"),
])
def test_bad_bench_options_exit_2(tiny_export, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_export), "--output-dir", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []
