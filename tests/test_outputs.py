"""Outputs: special targets written through, never replaced; '-' is standard output; all of a command's outputs
appear or none changes; a failed write names its file; temporaries a killed process left are swept."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_user_error, invoke, ok

from evalfast import atomic
from evalfast.atomic import all_or_none, remove_stale_temporaries, write_text

from conftest import HANDWRITTEN, REPO


def evalfast(*args: object, cache: Path, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """``python -m evalfast ARGS`` as a separate process, as a shell would run it."""
    env = os.environ | {"EVALFAST_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "evalfast", *map(str, args)], cwd=REPO, env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def eval_args(model: Path, *outputs: object) -> list[object]:
    return ["eval", "-m", model, "-g", HANDWRITTEN, "--k", "1,10", *outputs]


def test_json_to_dash_is_standard_output_and_the_table_moves_to_stderr(tiny_export, tmp_path):
    result = ok(invoke(*eval_args(tiny_export, "--json", "-"), "--cache-dir", tmp_path))
    document = json.loads(result.stdout)
    assert document["metrics"]["ndcg@10"] > 0
    assert "ndcg" in result.stderr  # the people's table, out of the JSON's way


def test_dev_stdout_is_written_through_not_replaced(tiny_export, tmp_path):
    redirected = tmp_path / "stdout.log"
    with redirected.open("w") as log:
        done = evalfast(*eval_args(tiny_export, "--json", "/dev/stdout"), "--cache-dir", tmp_path / "c",
                        cache=tmp_path, stdout=log)
    assert done.returncode == 0, done.stderr
    assert json.loads(redirected.read_text())["metrics"]["ndcg@10"] > 0  # the stream got it, not a new file


def test_a_symlinks_target_is_replaced_and_the_link_kept(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


def test_embed_into_a_fifo_streams_the_array_and_keeps_the_fifo(tiny_export, tmp_path):
    (tmp_path / "texts.txt").write_text("a lighthouse\na haunted ship\n")
    fifo = tmp_path / "vectors.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    ok(invoke("embed", "-m", tiny_export, "-i", tmp_path / "texts.txt", "-o", fifo, "--cache-dir", tmp_path))
    reader.join(timeout=30)
    assert fifo.is_fifo()
    vectors = np.load(__import__("io").BytesIO(received[0]))
    assert vectors.shape == (2, 32)


def test_embed_to_dash_writes_the_npy_on_stdout(tiny_export, tmp_path):
    (tmp_path / "texts.txt").write_text("a lighthouse\n")
    done = subprocess.run([sys.executable, "-m", "evalfast", "embed", "-m", str(tiny_export), "-i",
                           str(tmp_path / "texts.txt"), "-o", "-", "--cache-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.load(__import__("io").BytesIO(done.stdout)).shape == (1, 32)
    assert b"embedded 1 texts" in done.stderr


def test_two_dashes_are_refused(tiny_export, tmp_path):
    assert_user_error(invoke(*eval_args(tiny_export, "--json", "-", "--markdown", "-"), "--cache-dir", tmp_path),
                      "only one output can be '-'")


def test_a_failing_late_output_leaves_the_earlier_ones_unchanged(tiny_export, tmp_path):
    report = tmp_path / "out.json"
    report.write_text("the earlier report")
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    result = invoke(*eval_args(tiny_export, "--json", report, "--markdown", tmp_path / "out.md",
                               "--run", tmp_path / "blocker" / "run.trec"), "--cache-dir", tmp_path / "c")
    assert_user_error(result, "blocker")
    assert report.read_text() == "the earlier report"
    assert not (tmp_path / "out.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "c", "out.json"]  # no temporaries either


def test_a_full_disk_names_the_file(tiny_export, tmp_path):
    assert_user_error(invoke(*eval_args(tiny_export, "--json", "/dev/full"), "--cache-dir", tmp_path),
                      "/dev/full", "No space left on device")


def test_all_or_none_writes_nothing_when_the_block_fails(tmp_path):
    (tmp_path / "a.txt").write_text("kept")
    with pytest.raises(RuntimeError):
        with all_or_none() as out:
            out.write_text(tmp_path / "a.txt", "replaced")
            out.write_text(tmp_path / "b.txt", "new")
            raise RuntimeError("a later step failed")
    assert (tmp_path / "a.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_stale_temporaries_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = atomic._HOST
    stale = tmp_path / f".vectors.npy.{host}-{int(dead.stdout)}.a1b2c3.tmp"
    live = tmp_path / f".vectors.npy.{host}-{os.getpid()}.d4e5f6.tmp"
    elsewhere = tmp_path / f".vectors.npy.other-host-{int(dead.stdout)}.g7h8i9.tmp"
    stale_folder = tmp_path / f".export.{host}-{int(dead.stdout)}.j0k1l2.tmp"
    user_file = tmp_path / ".notes.tmp"
    for path in (stale, live, elsewhere, user_file):
        path.write_text("x")
    stale_folder.mkdir()
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, elsewhere, user_file))


def test_temporaries_carry_host_and_pid(tmp_path):
    with all_or_none() as out:
        staged = out.path(tmp_path / "report.json")
        staged.write_text("{}")
        match = atomic._TEMPORARY.match(staged.name)
        assert match and int(match["pid"]) == os.getpid() and match["host"] == atomic._HOST


def test_a_huge_cutoff_is_one_line(tiny_export, tmp_path):
    assert_user_error(invoke("eval", "-m", tiny_export, "-g", HANDWRITTEN, "--k", "99999999999999999999",
                             "--cache-dir", tmp_path), "--k", "cutoffs must be integers from 1 to")


def test_an_impossible_load_is_refused_before_any_work(tiny_export, tmp_path):
    result = invoke("latency", "-m", tiny_export, "-g", HANDWRITTEN, "--qps", "1e12", "--cache-dir", tmp_path)
    assert_user_error(result, "--qps 1e+12", "lower --qps or --duration")
    assert not (tmp_path / "embeddings").exists()  # refused before the corpus was embedded


def test_metrics_refuses_qrels_with_nothing_relevant(tmp_path):
    (tmp_path / "qrels.txt").write_text("q1 0 d1 0\nq2 0 d2 0\n")
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 0.9 x\n")
    assert_user_error(invoke("metrics", "--qrels", tmp_path / "qrels.txt", "--run", tmp_path / "run.trec"),
                      "qrels.txt: no query has a relevant document")


def test_embed_claims_no_rate_when_everything_came_from_the_cache(tiny_export, tmp_path):
    (tmp_path / "texts.txt").write_text("a lighthouse\na haunted ship\n")
    args = ("embed", "-m", tiny_export, "-i", tmp_path / "texts.txt", "-o", tmp_path / "v.npy", "--cache-dir", tmp_path)
    first = ok(invoke(*args)).stdout
    assert "(2 encoded, 0 from cache" in first and "sentences/s" in first
    again = ok(invoke(*args)).stdout
    assert "(0 encoded, 2 from cache" in again and "nothing encoded, so no rate measured" in again
    assert "sentences/s" not in again


def test_a_killed_writes_temporary_beside_an_output_is_swept_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".out.npy.{atomic._HOST}-{int(dead.stdout)}.q1w2e3.tmp"
    orphan.write_bytes(b"\0" * 1024)
    write_text(tmp_path / "report.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_reader_that_stops_reading_ends_the_command_quietly(tiny_export, tmp_path):
    (tmp_path / "texts.txt").write_text("".join(f"text number {i}\n" for i in range(3000)))  # ~400 KB of vectors
    command = (f"{shlex.quote(sys.executable)} -m evalfast embed -m {shlex.quote(str(tiny_export))} "
               f"-i {shlex.quote(str(tmp_path / 'texts.txt'))} -o - --cache-dir {shlex.quote(str(tmp_path))} | head -c 10")
    done = subprocess.run(["bash", "-c", f"{command} > /dev/null; echo ${{PIPESTATUS[0]}}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "141"  # as a process killed by SIGPIPE
    assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr
