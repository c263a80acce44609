"""`evalfast bench`: every contender runs, ratios are per round against sentence-transformers fp32."""

from __future__ import annotations

import functools
import json
import statistics

import numpy as np
import pytest
from click.testing import CliRunner

from evalfast.cli import cli
from evalfast.perf import bench

from conftest import HANDWRITTEN

NO_BF16_CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


@pytest.fixture(scope="module")
def bench_report(tiny_export, tmp_path_factory):
    """A whole bench on a CPU that shows no bf16 instructions."""
    out = tmp_path_factory.mktemp("bench")
    cpuinfo = tmp_path_factory.mktemp("proc") / "cpuinfo"
    cpuinfo.write_text(NO_BF16_CPUINFO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "CPUINFO", cpuinfo)
        result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_export), "--golden", str(HANDWRITTEN), "--n",
                                          "40", "--repeats", "2", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    (report,) = out.glob("bench-*.json")
    return result.output, json.loads(report.read_text()), report.with_suffix(".md").read_text()


def test_every_contender_is_timed_in_every_round(bench_report):
    _, report, _ = bench_report
    names = [row["name"] for row in report["rows"]]
    assert names == ["evalfast fp32", "evalfast int8", "sentence-transformers fp32",
                     "sentence-transformers onnx backend"]
    for row in report["rows"]:
        assert len(row["seconds"]) == 2 and row["rounds"] == [0, 1] and row["sentences_per_second"] > 0
        assert row["note"] == ""
    assert report["n_texts"] == 40 and report["machine"]["cores"] >= 1
    assert report["status"] == "complete" and report["budget"] == "15m"


def test_ratios_and_accuracy_are_against_sentence_transformers_fp32(bench_report):
    _, report, _ = bench_report
    rows = {row["name"]: row for row in report["rows"]}
    reference = rows["sentence-transformers fp32"]
    assert reference["max_one_minus_cos"] < 1e-12
    for row in rows.values():  # each ratio: the median over rounds of the reference's seconds over the row's
        per_round = [ref / own for ref, own in zip(reference["seconds"], row["seconds"])]
        assert row["ratio_median"] == pytest.approx(statistics.median(per_round), rel=1e-12)
        assert row["sentences_per_second"] == pytest.approx(report["n_texts"] / statistics.median(row["seconds"]),
                                                            rel=1e-9)
    fp32 = rows["evalfast fp32"]
    assert fp32["max_one_minus_cos"] < 1e-5 and abs(fp32["ndcg10_delta"]) < 0.01
    assert rows["evalfast int8"]["max_one_minus_cos"] > fp32["max_one_minus_cos"]


@pytest.mark.parametrize("args, message", [
    (["--n", "5"], "exactly one of --texts"),
    (["--golden", str(HANDWRITTEN), "--precision", "fp16"], "none runs on cpu"),
    (["--golden", str(HANDWRITTEN), "--device", "gpu"], "Invalid value for '--device'"),
    (["--golden", str(HANDWRITTEN), "--budget", "soon"], "give a duration such as 30s"),
    (["--golden", str(HANDWRITTEN), "--budget", "0m"], "must be longer than zero"),
])
def test_bad_bench_options_exit_2(tiny_export, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_export), "--output-dir", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_bf16_autocast_is_left_out_on_a_cpu_without_bf16_instructions(bench_report):
    output, report, markdown = bench_report
    (note,) = report["notes"]
    assert note.startswith("sentence-transformers bf16 autocast not run: this CPU has no bf16 instructions")
    assert note in output and f"- {note}" in markdown


@pytest.mark.parametrize("flags, expected", [("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu avx512f avx512_vnni", False)])
def test_bf16_instructions_are_read_from_cpuinfo(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert bench.cpu_has_bf16(cpuinfo) is expected
    assert bench.cpu_has_bf16(tmp_path / "missing") is None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_skips_what_is_left_and_the_reports_keep_what_was_measured(tiny_export, tmp_path, monkeypatch):
    """The budget runs out during the second contender's accuracy pass: the reports already hold the first
    contender's, and the peer after it and every round are skipped, with notes."""
    clock, seen_at_second_contender = Clock(), {}
    monkeypatch.setattr(bench, "Budget", functools.partial(bench.Budget, clock=clock))
    real_contender = bench._evalfast_contender

    def contender(folder, device, precision):
        made = real_contender(folder, device, precision)
        if precision == "fp32":
            return made

        def encode(texts):
            if not seen_at_second_contender:  # its warm-up: the first contender's pass is on disk
                (report,) = tmp_path.glob("bench-*.json")
                seen_at_second_contender.update(json.loads(report.read_text()))
            else:
                clock.now = 11.0  # its accuracy pass overran the 10 s budget
            return made.encode(texts)

        return bench.Contender(made.name, made.device, encode)

    def never_run(texts):
        raise AssertionError("a contender after the budget ran out was run")

    monkeypatch.setattr(bench, "_evalfast_contender", contender)
    monkeypatch.setattr(bench, "_st_contenders", lambda source, device, notes: [
        bench.Contender(bench.REFERENCE, device, never_run)])
    result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_export), "--golden", str(HANDWRITTEN), "--n", "40",
                                      "--repeats", "2", "--budget", "10s", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output

    first = seen_at_second_contender
    assert first["status"] == "running" and first["rows"][0]["name"] == "evalfast fp32"
    assert first["rows"][0]["ndcg10_delta"] is None  # accuracy needs the reference, which has not run yet
    (report,) = tmp_path.glob("bench-*.json")
    document, markdown = json.loads(report.read_text()), report.with_suffix(".md").read_text()
    assert document["status"] == "stopped by the time budget" and document["budget"] == "10s"
    rows = {row["name"]: row for row in document["rows"]}
    assert rows[bench.REFERENCE]["note"] == "not run: the time budget (10s) was spent before its turn"
    for name in ("evalfast fp32", "evalfast int8"):
        assert rows[name]["seconds"] == [] and rows[name]["sentences_per_second"] is None
        assert rows[name]["note"] == "timed in 0 of 2 rounds: the time budget (10s) ran out"
    budget_note = "the time budget (10s) ran out: 6 of 6 timed runs skipped"
    assert budget_note in document["notes"][-1] and budget_note in markdown and budget_note in result.output
    assert "not run" in result.output and f"- {bench.REFERENCE}* (cpu): not run" in markdown
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_rounds_past_the_budget_are_skipped_and_ratios_pair_rounds():
    """Encodes move the clock: once it passes the budget mid-round, the rest of the round and later rounds are
    skipped, and a ratio is only taken within a round both contenders were timed in."""
    clock = Clock()
    rng = np.random.default_rng(0)

    def encoder(seconds):
        def encode(texts):
            clock.now += seconds
            return rng.normal(size=(len(texts), 4)).astype(np.float32)
        return encode

    contenders = [bench.Contender("evalfast fp32", "cpu", encoder(1.0)),
                  bench.Contender(bench.REFERENCE, "cpu", encoder(2.0))]
    updates = []
    rows = bench.measure(contenders, ["a text"] * 10, None, 3, budget=bench.Budget(10.0, clock=clock),
                         on_update=lambda rows: updates.append([len(row.seconds) for row in rows]))
    # warm-up and accuracy: 2 encodes each, the clock at 6; round 1 (fp32, reference) ends at 9; round 2 starts
    # with the reference (order rotated), which ends at 11, past the budget: fp32 and round 3 are skipped
    fp32, reference = rows
    assert (fp32.rounds, reference.rounds) == ([0], [0, 1])
    assert len(fp32.ratios) == 1 and reference.ratios == [1.0, 1.0]
    assert fp32.note == "timed in 1 of 3 rounds: the time budget (10s) ran out"
    assert reference.note == "timed in 2 of 3 rounds: the time budget (10s) ran out"
    assert updates[0] == [0, 0] and [1, 1] in updates  # after the first contender's pass, and after round 1


def test_a_step_is_skipped_when_its_expected_length_would_overrun_the_budget():
    clock = Clock()
    budget = bench.Budget(10.0, clock=clock)
    clock.now = 9.0
    assert budget.allows() and budget.allows(1.0) and not budget.allows(1.5)
    clock.now = 10.5
    assert not budget.allows()


def test_run_bench_saves_each_step_and_an_interrupt_before_raising_it(tiny_export, monkeypatch):
    """run_bench, the library call behind `evalfast bench`: the document is handed to on_save after each contender
    and round ("running"), and once more when an interrupt stops it ("interrupted"), which is then raised."""
    monkeypatch.setattr(bench, "_st_contenders", lambda source, device, notes: [
        bench.Contender(bench.REFERENCE, device, bench._evalfast_contender(tiny_export, device, "fp32").encode)])
    saved, steps = [], []

    def on_step(label: str, total: int) -> None:
        steps.append((label, total))
        if label.startswith("round 2/"):
            raise KeyboardInterrupt

    config = bench.BenchConfig(precisions=("fp32",), repeats=3, budget_seconds=600)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench(tiny_export, ["a text", "another text"] * 5, config, command="cmd", on_step=on_step,
                        on_save=lambda document: saved.append(json.loads(json.dumps(document))))
    assert [total for _, total in steps] == [8] * len(steps)  # 2 contenders x (warm-up + 3 rounds)
    assert {document["status"] for document in saved[:-1]} == {"running"} and saved[-1]["status"] == "interrupted"
    last = saved[-1]
    assert (last["command"], last["n_texts"], last["repeats"], last["schema_version"]) == ("cmd", 10, 3, 2)
    assert [row["name"] for row in last["rows"]] == ["evalfast fp32", bench.REFERENCE]
    assert [len(row["seconds"]) for row in last["rows"]] == [1, 1]  # round 1 timed, round 2 never started
