"""Progress on long work, on stderr: a bar on a terminal; in a log, a line now and then with the time left."""

from __future__ import annotations

import sys
import time

LOG_INTERVAL_SECONDS = 30.0


class LogProgress:
    """The part of tqdm's interface evalfast uses, as plain lines: at most one every ``interval`` seconds with the
    count, the share done and the time left, so a log shows a long step moving and a short one stays quiet."""

    def __init__(self, total: int, desc: str, unit: str, interval: float = LOG_INTERVAL_SECONDS, stream=None):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.stream = stream or sys.stderr
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def close(self) -> None:
        """Nothing to clear: lines already written stay."""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval and self.n < self.total:
            self.last = now
            elapsed = now - self.start
            left = elapsed * (self.total - self.n) / self.n
            print(f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}s ({self.n / max(self.total, 1):.0%}), "
                  f"{elapsed:.0f} s so far, about {left:.0f} s left{self.postfix}", file=self.stream, flush=True)

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = "; " + ", ".join(f"{key} {value}" for key, value in values.items())


def progress_bar(total: int, desc: str, unit: str = "text"):
    """A tqdm bar counting to ``total`` when stderr is a terminal, else a :class:`LogProgress`."""
    if not sys.stderr.isatty():
        return LogProgress(total, desc, unit)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)
