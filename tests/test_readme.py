"""The README's commands run as written after `make demo`.

Every ``evalfast`` command in a ```bash block (and every ``$ evalfast`` transcript line) must parse: its command and
options exist and its values pass the options' checks. Blocks marked ``<!-- illustration: ... -->`` use models,
endpoints or clusters of the reader's own and are only parsed; ``<!-- recorded: ... -->`` transcripts likewise.
The rest run for real, in order, from a scratch folder laid out like the repository after `make demo`; the few
that take many minutes (mpnet on SciFact, the fine-tune, the bench) run with the benchmark marker.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfast.cli import cli

from conftest import REPO

README = REPO / "README.md"
SHARED = REPO.parent / "shared"
EXPENSIVE = ("all-mpnet-base-v2 --golden", "evalfast finetune", "evalfast bench")  # minutes each on 2 cores
BLOCK = re.compile(r"(?:<!-- (?P<mark>illustration|recorded):[^>]*-->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


@dataclass(frozen=True)
class Command:
    line: str  # the shell line as written (continuations joined)
    runnable: bool  # False: an illustration or a recorded transcript

    @property
    def args(self) -> list[str]:
        """The evalfast arguments, before any pipe, with a process substitution ``<(...)`` standing as a file."""
        line = re.sub(r"<\((?:[^()]|\([^()]*\))*\)", "/dev/stdin", self.line.split(" | ")[0])
        return shlex.split(line, comments=True)[1:]


def readme_commands() -> list[Command]:
    commands = []
    for block in BLOCK.finditer(README.read_text(encoding="utf-8")):
        if block["lang"] not in ("bash", ""):
            continue
        for line in block["body"].replace("\\\n", " ").splitlines():
            line = line.strip()
            if block["lang"] == "":  # a transcript: only its prompt lines are commands
                if not line.startswith("$ "):
                    continue
                line = line.removeprefix("$ ")
            if line.startswith("evalfast "):
                runnable = block["lang"] == "bash" and block["mark"] is None
                commands.append(Command(" ".join(line.split()), runnable))
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_run():
    assert sum(c.runnable for c in COMMANDS) >= 15


@pytest.mark.parametrize("command", COMMANDS, ids=[c.line[:70] for c in COMMANDS])
def test_every_readme_command_parses(command: Command):
    with cli.make_context("evalfast", command.args) as ctx:
        name, subcommand, rest = cli.resolve_command(ctx, ctx.protected_args + ctx.args)
        while isinstance(subcommand, type(cli)) or hasattr(subcommand, "resolve_command"):
            sub_ctx = subcommand.make_context(name, rest, parent=ctx)
            name, subcommand, rest = subcommand.resolve_command(sub_ctx, sub_ctx.protected_args + sub_ctx.args)
            ctx = sub_ctx
        subcommand.make_context(name, rest, parent=ctx)  # raises on an unknown option or a bad value


@pytest.fixture(scope="module")
def after_make_demo(tmp_path_factory, minilm_export) -> Path:
    """A scratch folder laid out like the repository after `make demo`: data/, export/all-MiniLM-L6-v2, and
    ../shared beside it when this checkout has one."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "evalfast"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")
    shutil.copytree(minilm_export, work / "export" / "all-MiniLM-L6-v2")
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    return work


def run_in(folder: Path, command: Command, cache: Path) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "EVALFAST_CACHE": str(cache),
                        "HF_HUB_OFFLINE": "1"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", command.line], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=3600)


def runnable(expensive: bool) -> list[Command]:
    return [c for c in COMMANDS if c.runnable and any(e in c.line for e in EXPENSIVE) == expensive]


def _run_all(commands: list[Command], folder: Path, cache: Path) -> None:
    for command in commands:
        if "../shared" in command.line and not SHARED.is_dir():
            continue
        done = run_in(folder, command, cache)
        assert done.returncode == 0, (command.line, done.stderr[-3000:])
        assert "Traceback" not in done.stderr, (command.line, done.stderr[-3000:])


@pytest.mark.slow
def test_the_readme_commands_run_as_written(after_make_demo, tmp_path_factory):
    _run_all(runnable(expensive=False), after_make_demo, tmp_path_factory.mktemp("readme-cache"))
    assert (after_make_demo / "out.json").is_file() and (after_make_demo / "run.trec").is_file()


@pytest.mark.benchmark
def test_the_long_readme_commands_run_as_written(after_make_demo, tmp_path_factory):
    _run_all(runnable(expensive=True), after_make_demo, tmp_path_factory.mktemp("readme-cache-long"))
