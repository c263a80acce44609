"""`evalfast golden check` and `convert` from the command line: exit statuses and what they write."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from evalfast.cli import cli
from evalfast.data.golden import load_golden

from conftest import HANDWRITTEN, REPO, SEED_CSV, needs_seed_csv


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_check_passes_on_every_golden_set_in_data(tmp_path):
    generated = tmp_path / "heuristic"
    assert invoke("golden", "heuristic", "-p", REPO / "data" / "prompts" / "prompts.jsonl", "-o", generated,
                  "--split", "0.8/0.1/0.1").exit_code == 0
    golden_sets = [*(REPO / "data" / "golden").iterdir(), generated]
    assert HANDWRITTEN in golden_sets
    for folder in golden_sets:
        result = invoke("golden", "check", folder)
        assert result.exit_code == 0, result.output
        assert "0 errors" in result.output.splitlines()[-1]


def test_check_exits_1_on_errors_and_writes_json(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(HANDWRITTEN, broken)
    with (broken / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q001\tp999\t2\n")
    result = invoke("golden", "check", broken, "--json", tmp_path / "report.json")
    assert result.exit_code == 1
    assert "unknown-document" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exit_status"] == 1 and report["counts"]["errors"] == 1


@needs_seed_csv
def test_convert_the_seed_csv_to_beir_and_back(tmp_path):
    assert invoke("golden", "convert", SEED_CSV, "-o", tmp_path / "seed", "--to", "beir").exit_code == 0
    seed = load_golden(tmp_path / "seed")
    assert seed.n_queries == load_golden(SEED_CSV).n_queries
    assert invoke("golden", "convert", tmp_path / "seed", "-o", tmp_path / "seed.csv", "--to", "csv").exit_code == 0
    again = invoke("golden", "convert", tmp_path / "seed", "-o", tmp_path / "seed.csv", "--to", "csv")
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_convert_refuses_what_a_pairs_file_cannot_hold(tmp_path):
    result = invoke("golden", "convert", HANDWRITTEN, "-o", tmp_path / "out.csv", "--to", "csv")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "24 queries" in result.output
    assert not (tmp_path / "out.csv").exists()
