"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Regular files are written to a temporary file beside them and renamed into place; a symlink's target is
replaced, never the link. Targets that are not regular files (``/dev/stdout``, a FIFO, a device) and ``-``
(standard output) are written directly, once everything else has been staged. :func:`all_or_none` stages
several outputs so that either all of them appear or none changes. Temporaries carry this host's name and
this process's id, so a later run can remove those a killed process left (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

STDOUT = "-"
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", os.uname().nodename)[:40] or "host"  # the host name, as gethostname()
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tag(name: str) -> str:
    return f".{name}.{_HOST}-{os.getpid()}."


def _is_special(final: Path) -> bool:
    """True for ``-``, for names under /dev and /proc (``/dev/stdout`` redirected to a file is still the stream),
    and for existing targets (links followed) that are not regular files or folders."""
    if str(final) == STDOUT or os.path.abspath(final).startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(final).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


_swept: set[str] = set()


def _prepare_folder(folder: Path) -> None:
    """Create ``folder`` if needed and, the first time this process writes there, remove what killed evalfast
    processes left in it (see :func:`remove_stale_temporaries`)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    if key not in _swept:
        _swept.add(key)
        remove_stale_temporaries(folder)


def _with_filename(err: OSError, final: Path) -> OSError:
    """``err`` naming ``final`` when it names no file (a write that hit a full disk names none)."""
    if err.filename:
        return err
    return OSError(err.errno, err.strerror or os.strerror(err.errno or errno.EIO), os.fspath(final))


class Outputs:
    """Outputs staged by :func:`all_or_none`: write each into :meth:`path`, they appear together at the end."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def path(self, final: str | os.PathLike) -> Path:
        """A temporary path to write ``final``'s content into; it becomes ``final`` when the block succeeds."""
        final = Path(final)
        if _is_special(final):
            fd, tmp = tempfile.mkstemp(prefix=_tag("evalfast-output"), suffix=".tmp")
        else:
            if final.is_symlink():
                final = Path(os.path.realpath(final))
            _prepare_folder(final.parent)
            fd, tmp = tempfile.mkstemp(prefix=_tag(final.name), suffix=".tmp", dir=final.parent)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual file mode
        os.close(fd)
        self._staged.append((Path(tmp), final))
        return Path(tmp)

    def write_text(self, final: str | os.PathLike, text: str) -> None:
        """Stage ``text`` (UTF-8) for ``final``."""
        self.write(final, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write(self, final: str | os.PathLike, writer: Callable[[Path], object]) -> None:
        """Stage ``final`` by ``writer(temporary_path)``; a failing write names ``final``."""
        tmp = self.path(final)
        try:
            writer(tmp)
        except OSError as err:
            raise _with_filename(err, Path(final)) from err

    def _commit(self) -> None:
        for tmp, final in self._staged:
            if _is_special(final):
                _copy_into(tmp, final)
            else:
                os.replace(tmp, final)

    def _discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)


def _copy_into(tmp: Path, final: Path) -> None:
    """Write ``tmp``'s bytes to a special target (``-``: standard output) without replacing it."""
    try:
        with tmp.open("rb") as source:
            if str(final) == STDOUT:
                sys.stdout.flush()
                shutil.copyfileobj(source, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                with open(final, "wb") as target:
                    shutil.copyfileobj(source, target)
    except OSError as err:
        raise _with_filename(err, final) from err


@contextlib.contextmanager
def all_or_none() -> Iterator[Outputs]:
    """Stage several outputs; all of them appear if the block succeeds, none changes if it fails.

    Example::

        with all_or_none() as out:
            out.write_text("report.json", document)
            write_run(out.path("run.trec"), ...)
    """
    outputs = Outputs()
    try:
        yield outputs
        outputs._commit()
    finally:
        outputs._discard()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for ``final``; it becomes ``final`` only if the block succeeds."""
    with all_or_none() as outputs:
        tmp = outputs.path(final)
        try:
            yield tmp
        except OSError as err:
            raise _with_filename(err, Path(final)) from err


def write_text(final: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``final`` atomically (UTF-8)."""
    with all_or_none() as outputs:
        outputs.write_text(final, text)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; it replaces ``final`` only if the block succeeds."""
    final = Path(final)
    _prepare_folder(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_tag(final.name), suffix=".tmp", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if final.exists() and overwrite:
            replace_dir(tmp, final)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete folder ``new`` to ``final``, replacing an existing ``final`` only at that moment."""
    new, final = Path(new), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        os.replace(new, final)
        return
    old = final.with_name(f"{_tag(final.name)}old.tmp")
    os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporaries in ``folder`` that a process of this host left when it was killed; returns how many.

    Only names made by this module count, and only when their process is gone, so a concurrent run's
    temporaries (or another host's, in a shared folder) are left alone.
    """
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if not match or match["host"] != _HOST or _alive(int(match["pid"])):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed += 1
    return removed
