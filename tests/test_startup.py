"""The command line starts fast: importing it, asking for help, or scoring a TREC run with `evalfast metrics`
loads none of the model side's heavy packages (each costs a tenth of a second or more to import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, write_file

HEAVY = ("onnxruntime", "faiss", "scipy", "torch", "transformers", "tokenizers", "tqdm", "sentence_transformers",
         "optimum", "numpy.ma")  # numpy.ma: 0.02 s, imported by np.unique
# Runs ``setup`` in a fresh interpreter, then prints the heavy packages it imported as the last line of stdout.
PROBE = """
import json, sys
{setup}
print(json.dumps(sorted(m for m in sys.modules if m in {heavy!r} or m.split('.')[0] in {heavy!r})))
"""
RUN_CLI = """
import runpy
sys.argv = ["evalfast", *{argv!r}]
try:
    runpy.run_module("evalfast", run_name="__main__", alter_sys=True)
except SystemExit as done:
    if done.code:
        raise
"""


def heavy_modules_after(setup: str) -> list[str]:
    """The heavy modules in sys.modules once ``setup`` has run in a new Python process."""
    code = PROBE.format(setup=setup, heavy=set(HEAVY))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_package() -> None:
    assert heavy_modules_after("import evalfast.cli") == []


@pytest.mark.parametrize("argv", [["--help"], ["metrics", "--help"], ["eval", "--help"], ["golden", "--help"]],
                         ids=" ".join)
def test_help_loads_no_heavy_package(argv: list[str]) -> None:
    assert heavy_modules_after(RUN_CLI.format(argv=argv)) == []


def test_metrics_on_trec_files_loads_no_heavy_package(tmp_path: Path) -> None:
    qrels = write_file(tmp_path / "qrels.txt", "q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\nq2 0 d4 1\n")
    run = write_file(tmp_path / "run.txt", "q1 Q0 d2 1 2.0 t\nq1 Q0 d1 2 1.0 t\nq2 Q0 d4 1 1.5 t\nq2 Q0 d5 2 1.5 t\n")
    scores = tmp_path / "scores.json"
    argv = ["metrics", "--qrels", str(qrels), "--run", str(run), "--json", str(scores)]
    assert heavy_modules_after(RUN_CLI.format(argv=argv)) == []
    assert json.loads(scores.read_text())["metrics"]  # the command ran to the end


def test_package_names_are_imported_on_first_use() -> None:
    """`import evalfast` loads no submodule; its names still resolve, and `evaluate` stays the function even once
    the submodule of that name was imported."""
    code = ("import sys, evalfast\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('evalfast.'))\n"
            "from evalfast.evaluate import EvalConfig\n"
            "from evalfast import Encoder, evaluate\n"
            "print(loaded, evaluate.__module__, evaluate.__name__, evalfast.evaluate is evaluate, Encoder.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "evalfast.evaluate", "evaluate", "True", "Encoder"]


@pytest.mark.parametrize("settings", [{}, {"OPENBLAS_THREAD_TIMEOUT": "7", "NUMPY_MADVISE_HUGEPAGE": "1"}],
                         ids=["defaults", "the user's"])
def test_the_cli_settles_numpys_threads_and_pages_before_numpy_loads(settings: dict[str, str]) -> None:
    """OpenBLAS's idle threads sleep at once (no spinning on a core the readers need) and numpy's arrays are not
    advised into huge pages, unless the user said otherwise: numpy reads both as it loads."""
    code = ("import os, evalfast.cli, numpy._core.multiarray as arrays\n"
            "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], arrays._get_madvise_hugepage())")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "NUMPY_MADVISE_HUGEPAGE")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**env, **settings})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == (["7", "True"] if settings else ["4", "False"])
