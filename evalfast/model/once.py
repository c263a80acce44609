"""Work done once and reused (an export into the cache, reassembled weights, a precision variant): an exclusive
lock so that concurrent first runs build it once and the others use the result, a line of status before and after,
and the building tools' own chatter kept quiet."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

Status = Callable[[str], None]


@contextlib.contextmanager
def exclusive(lock_file: Path, waiting: str, on_status: Status | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing and left in place, as removing a lock file
    races with its next user) across the processes of this machine; ``on_status(waiting)`` is called if another
    process holds it and this one has to wait."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_status:
                on_status(waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def build_once(lock_file: Path, is_built: Callable[[], bool], build: Callable[[], object], doing: str, done: str,
               on_status: Status | None = None) -> None:
    """Run ``build()`` unless ``is_built()``, under :func:`exclusive` on ``lock_file``: a process that waited for
    another's build checks again and uses its result. ``on_status`` gets ``doing`` before the build and ``done``
    with the seconds it took after it (e.g. "exporting ... into ..." and "exported ...")."""
    if is_built():
        return
    with exclusive(lock_file, f"waiting for another evalfast process that is {doing} ...", on_status):
        if is_built():
            return
        if on_status:
            on_status(f"{doing} ...")
        start = time.monotonic()
        build()
        if on_status:
            on_status(f"{done} in {time.monotonic() - start:.0f} s")


@contextlib.contextmanager
def quiet_tools(stdout: bool = False) -> Iterator[None]:
    """Keep torch, transformers, optimum and onnxruntime's tools from reporting on their own work while a graph is
    exported or converted: their warnings (TracerWarning, deprecations) and log records below ERROR (onnxruntime's
    quantiser logs to the root logger), and with ``stdout`` what they print there (the transformer optimizer's
    "failed in shape inference"). Exceptions still propagate and ERROR records still print."""
    previous = logging.root.manager.disable
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        if stdout:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)
