"""Progress bars for long work: on stderr, and only when stderr is a terminal."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, unit: str = "text"):
    """A tqdm bar counting to ``total``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), leave=False)
