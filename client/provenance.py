"""What produced a result: the client's software, the server's (from GetInfo), the spec and the times.

- :func:`provenance` collects the client side: package versions, Python, platform, host, time and
  two git revisions (the working directory's repository: the user's experiment; and this package's
  source checkout, when it is one).
- :func:`server_provenance` turns a server's ``ModelInfo`` facts into the flat table every result
  document records: this project's version on the server, torch, transformers, CUDA, the device.
- :func:`iso_time` writes a POSIX time as an ISO-8601 UTC string.

The documents that carry them (summary.json, gate.json) nest only dicts of scalars (and lists of
strings), so ``pandas.json_normalize`` reads each into one row of dotted columns.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["iso_time", "provenance", "server_provenance"]

_PACKAGES = ("safety-landscape", "grpcio", "protobuf")


def _git(*args: str, cwd: str | Path | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _source_revision() -> str:
    """HEAD of the git checkout this package runs from (an editable install), "" otherwise; a
    ``+dirty`` suffix when its tracked files have uncommitted changes."""
    here = Path(__file__).resolve().parent
    top = _git("rev-parse", "--show-toplevel", cwd=here)
    if not top or not (Path(top) / "pyproject.toml").is_file():
        return ""
    revision = _git("rev-parse", "HEAD", cwd=top)
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=top)
    return f"{revision}+dirty" if revision and dirty else revision


def iso_time(seconds: float) -> str:
    """``2026-12-01T21:59:03.123Z`` for a POSIX time."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def provenance(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What produced a result on the client: package versions, Python, platform, git revisions, host, time.

    Packages not installed are left out. ``git_revision`` is that of the current working
    directory's repository ("" outside one or without git); ``source_revision`` that of this
    package's own checkout ("" for an installed wheel). ``extra`` (settings, seeds, fingerprints,
    server facts, ...) is merged on top.
    """
    packages: dict[str, str] = {}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    now = time.time()
    info: dict[str, Any] = {
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": _git("rev-parse", "HEAD"),
        "source_revision": _source_revision(),
        "hostname": socket.gethostname(),
        "time": now,
        "time_iso": iso_time(now),
    }
    info.update(extra or {})
    return info


def server_provenance(facts: Any) -> dict[str, str]:
    """The server's software and device, flat, from a ``ServerFacts`` (or anything with its fields):
    ``safety_landscape``, ``torch``, ``transformers``, ``cuda`` ("" on a CPU build), ``device``,
    ``device_name``, ``device_type``, ``dtype``, ``model_name``. A server too old to report a field
    gives ""."""
    names = {"safety_landscape": "server_version", "torch": "torch_version", "transformers": "transformers_version",
             "cuda": "cuda_version", "device": "device", "device_name": "device_name", "device_type": "device_type",
             "dtype": "dtype", "model_name": "model_name"}
    return {key: str(getattr(facts, attr, "") or "") for key, attr in names.items()}
