"""Progress of a running sweep: the callback's :class:`Progress` and the terminal :class:`ProgressBar`.

:class:`ProgressBar` draws ``[#####.....] 12/40 30% ETA 1m05s`` on stderr when it is a terminal
and stays silent otherwise.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ..records import PointRecord

__all__ = ["Progress", "ProgressBar"]


@dataclass(frozen=True)
class Progress:
    """Handed to the progress callback after each evaluated task (in the caller's thread)."""

    done: int  # tasks finished in this run
    total: int  # tasks this run must evaluate
    records: tuple[PointRecord, ...]  # written for this task
    target: str
    elapsed: float


class ProgressBar:
    """A one-line progress bar with ETA; silent unless ``stream`` is a terminal."""

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled if enabled is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.width, self.started, self.done = total, width, time.monotonic(), 0

    @staticmethod
    def _fmt(seconds: float) -> str:
        seconds = int(seconds)
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled or self.total <= 0:
            return
        frac = min(1.0, done / self.total)
        elapsed = time.monotonic() - self.started
        eta = self._fmt(elapsed / done * (self.total - done)) if done else "?"
        filled = int(frac * self.width)
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {frac:4.0%} ETA {eta} {note}"
        self.stream.write(line[: 120].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total > 0:
            self.stream.write(f"\r{' ' * 110}\r{self.done}/{self.total} points in {self._fmt(time.monotonic() - self.started)}\n")
            self.stream.flush()
