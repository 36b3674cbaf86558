"""Progress of a running sweep: the callback's :class:`Progress`, and what stderr shows.

:func:`progress_display` picks the display: on a terminal, :class:`ProgressBar` redraws one line
(``[#####.....] 12/40 30% ETA 1m05s``); elsewhere (a CI log, a file), :class:`ProgressLines`
writes a line at the first finished task and then at most every ``interval`` seconds
(``points 12/63 on 3 servers, ETA 4 min``), and a last line at the end. Both write to stderr only.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ..records import PointRecord

__all__ = ["Progress", "ProgressBar", "ProgressLines", "progress_display"]

#: Seconds between two progress lines off a terminal.
LINE_INTERVAL = 5.0


@dataclass(frozen=True)
class Progress:
    """Handed to the progress callback after each evaluated task (in the caller's thread)."""

    done: int  # tasks finished in this run
    total: int  # tasks this run must evaluate
    records: tuple[PointRecord, ...]  # written for this task
    target: str
    elapsed: float


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ProgressBar:
    """A one-line progress bar with ETA; silent unless ``stream`` is a terminal (or ``enabled``)."""

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool | None = None, width: int = 30,
                 servers: int = 0) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled if enabled is not None else _is_terminal(self.stream)
        self.total, self.width, self.started, self.done = total, width, time.monotonic(), 0
        self.servers = servers

    def eta(self) -> float | None:
        """Seconds left at the pace so far (None before the first task)."""
        if not self.done:
            return None
        return (time.monotonic() - self.started) / self.done * max(0, self.total - self.done)

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled or self.total <= 0:
            return
        frac = min(1.0, done / self.total)
        eta = self.eta()
        filled = int(frac * self.width)
        line = (f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {frac:4.0%} "
                f"ETA {'?' if eta is None else _fmt(eta)} {note}")
        self.stream.write(line[: 120].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total > 0:
            self.stream.write(f"\r{' ' * 110}\r{self.done}/{self.total} points in {_fmt(time.monotonic() - self.started)}\n")
            self.stream.flush()


class ProgressLines(ProgressBar):
    """Plain progress lines for a stream that is not a terminal: one at the first finished task,
    then one at most every ``interval`` seconds, and a summary at ``close``."""

    def __init__(self, total: int, *, stream: TextIO | None = None, interval: float = LINE_INTERVAL,
                 servers: int = 0) -> None:
        super().__init__(total, stream=stream, enabled=True, servers=servers)
        self.interval = interval
        self._last: float | None = None

    def _where(self) -> str:
        return f" on {self.servers} server{'s' * (self.servers != 1)}" if self.servers else ""

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if self.total <= 0 or done >= self.total or (self._last is not None and now - self._last < self.interval):
            return  # the last task is reported by close()
        self._last = now
        eta = self.eta()
        left = "" if eta is None else f", ETA {_minutes(eta)}"
        self.stream.write(f"points {done}/{self.total}{self._where()}{left}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.total > 0:
            self.stream.write(f"points {self.done}/{self.total}{self._where()} done in "
                              f"{_fmt(time.monotonic() - self.started)}\n")
            self.stream.flush()


def _minutes(seconds: float) -> str:
    return "under 1 min" if seconds < 60 else f"{round(seconds / 60)} min"


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_display(total: int, *, enabled: bool | None = None, servers: int = 0,
                     stream: TextIO | None = None) -> ProgressBar:
    """The display for a sweep of ``total`` tasks on ``servers`` servers: ``enabled=False`` shows
    nothing; otherwise a bar on a terminal and plain lines elsewhere (``enabled=True`` forces the bar)."""
    stream = stream or sys.stderr
    if enabled is False:
        return ProgressBar(total, stream=stream, enabled=False, servers=servers)
    if enabled or _is_terminal(stream):
        return ProgressBar(total, stream=stream, enabled=True, servers=servers)
    return ProgressLines(total, stream=stream, servers=servers)
