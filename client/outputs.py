"""Writing result files safely when several processes share an output folder.

- :func:`write_atomically` replaces a file in one step (a reader never sees half a file, two
  writers never interleave: the last complete one wins).
- :func:`output_lock` holds an exclusive advisory lock on ``DIR/.outputs.lock`` while a process
  writes the folder's summary, plots and report (two sweep clients on one ``--out`` take turns).
  Where the platform has no ``fcntl`` (Windows) it only writes atomically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["output_lock", "write_atomically"]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Exclusive use of ``folder``'s outputs for the duration (blocks while another process has it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".outputs.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
