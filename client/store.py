"""The local result store: content-addressed point results in one SQLite file (docs/design.md, invariants 5 and 6).

- :func:`point_key` names a point by the sha256 of the canonical JSON of everything that
  determines it, so resuming a sweep or reusing another run's points is a key lookup.
- :class:`ResultStore` keeps :class:`~safety_landscape.client.records.PointRecord` rows (WAL mode,
  one commit per ``put`` so a crash loses nothing already reported), per-sweep metadata (spec and
  provenance), and exports to JSON and CSV. One connection guarded by a lock: safe from threads.
- :func:`provenance` collects what a result file must record about the software that made it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib.metadata
import json
import math
import platform
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .records import PointRecord

__all__ = ["CSV_COLUMNS", "PANDAS_COLUMNS", "SCHEMA_VERSION", "ResultStore", "point_key", "provenance"]

SCHEMA_VERSION = 1
CSV_COLUMNS = ("sweep", "series", "metric", "a", "b", "value", "total", "key", "created_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    series TEXT NOT NULL,
    metric TEXT NOT NULL,
    a REAL NOT NULL,
    b REAL,
    value REAL NOT NULL,
    total INTEGER NOT NULL,
    record TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_sweep ON points (sweep, metric, series, a, b);
CREATE TABLE IF NOT EXISTS sweep_meta (sweep TEXT PRIMARY KEY, meta TEXT NOT NULL);
"""


def _canonical(obj: Any) -> Any:
    """Plain JSON types: dict keys as strings, tuples as lists, numpy values via ``tolist``."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"point_key: non-finite float {obj!r} cannot name a point")
        return float(obj)  # json writes float.__repr__: shortest round-trip, 0.1 -> "0.1"
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy
        return _canonical(obj.tolist())
    if isinstance(obj, (set, frozenset)):
        raise ValueError("point_key: sets have no order; pass a sorted list")
    raise ValueError(f"point_key: cannot hash a {type(obj).__name__}; pass JSON-able values")


def point_key(**parts: Any) -> str:
    """The content address of a landscape point: sha256 hex of the canonical JSON of ``parts``.

    Pass everything that determines the result: model fingerprint, direction specs,
    coefficients, prompt-set hash, system prompt, chat format, generation and judge settings.
    Any change in any part (a value, a nested value, an added or removed part) gives a new key;
    dict ordering does not matter (keys are sorted); floats are written by ``repr`` so ``0.1``
    is ``0.1``, not ``0.1000000000000000055...``, and ``1.0`` differs from ``1``; tuples and
    lists are the same JSON array. NaN/inf and non-JSON types raise ``ValueError``.
    """
    text = json.dumps(
        _canonical(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _git_revision() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def provenance(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What produced a result: package versions, Python, platform, git revision, host, time.

    Packages not installed are left out; the git revision is that of the current working
    directory's repository, "" outside a repository or without git. ``extra`` (settings, seeds,
    fingerprints, ...) is merged on top.
    """
    packages: dict[str, str] = {}
    for name in ("safety-landscape", "grpcio", "protobuf"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    info: dict[str, Any] = {
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": _git_revision(),
        "hostname": socket.gethostname(),
        "time": time.time(),
    }
    info.update(extra or {})
    return info


#: The columns of :meth:`ResultStore.to_pandas`.
PANDAS_COLUMNS = ("sweep", "series", "direction", "system_prompt", "metric", "a", "b", "value", "total",
                  "jailbroken", "generated_tokens", "tokens_saved", "prompt_set_name", "prompt_set_size",
                  "prompt_set_sha256", "judge", "seconds", "server", "weight_state", "key", "created_at")


def _pandas_row(r: PointRecord) -> dict[str, Any]:
    detail = r.detail.to_dict()
    series = r.curve
    row = {"sweep": r.sweep, "series": r.series, "direction": series.direction, "system_prompt": series.system or None,
           "metric": r.metric, "a": r.a, "b": math.nan if r.b is None else r.b, "value": r.value, "total": r.total, "key": r.key,
           "created_at": r.created_at}
    row.update({name: detail.get(name) for name in PANDAS_COLUMNS if name not in row})
    return row


class ResultStore:
    """Point records and sweep metadata in one SQLite file; a context manager, thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                self._db.close()
                raise ValueError(
                    f"{self.path} has store schema version {row[0]}; this client reads "
                    f"version {SCHEMA_VERSION}: export it with a matching client or use a new file"
                )
            self._db.commit()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- points ----------------------------------------------------------------------------
    def put(self, record: PointRecord) -> bool:
        """Store ``record`` and commit at once. False (and nothing changed) if its key exists."""
        b = record.coords[1] if len(record.coords) > 1 else None
        blob = json.dumps(record.to_dict(), sort_keys=True)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO points (key, sweep, series, metric, a, b, value, total,"
                " record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.key, record.sweep, record.series, record.metric, record.coords[0], b,
                 record.value, record.total, blob, record.created_at),
            )
            self._db.commit()
            return cur.rowcount == 1

    def get(self, key: str) -> PointRecord | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM points WHERE key = ?", (key,)).fetchone()
        return PointRecord.from_dict(json.loads(row[0])) if row else None

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM points WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT key FROM points")}

    def records(self, sweep: str | None = None, metric: str | None = None) -> list[PointRecord]:
        """Records, optionally of one sweep and/or metric, ordered by series then coords."""
        clauses, args = [], []
        if sweep is not None:
            clauses.append("sweep = ?")
            args.append(sweep)
        if metric is not None:
            clauses.append("metric = ?")
            args.append(metric)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(f"SELECT record FROM points{where}", args).fetchall()
        out = [PointRecord.from_dict(json.loads(r[0])) for r in rows]
        # Sorted in Python: coords are tuples, and the order must not depend on SQL's NULLs.
        out.sort(key=lambda r: (r.series, r.coords, r.sweep, r.metric))
        return out

    def sweeps(self) -> list[str]:
        """Names of the sweeps with points or metadata, sorted."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sweep FROM points UNION SELECT sweep FROM sweep_meta ORDER BY sweep"
            ).fetchall()
        return [r[0] for r in rows]

    # -- sweep metadata ----------------------------------------------------------------------
    def put_meta(self, sweep: str, meta: Mapping[str, Any]) -> None:
        """Record (or replace) a sweep's spec and provenance; must be JSON-able."""
        text = json.dumps(dict(meta), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO sweep_meta (sweep, meta) VALUES (?, ?)"
                " ON CONFLICT (sweep) DO UPDATE SET meta = excluded.meta",
                (sweep, text),
            )
            self._db.commit()

    def get_meta(self, sweep: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT meta FROM sweep_meta WHERE sweep = ?", (sweep,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- notebooks ---------------------------------------------------------------------------
    def to_pandas(self, sweep: str | None = None) -> Any:
        """The points (of ``sweep``, else every point) as a ``pandas.DataFrame``, one row per point
        with :data:`PANDAS_COLUMNS`: the CSV export's columns, the series split into ``direction`` and
        ``system_prompt``, and the server's facts (``b``, ``jailbroken``, ... are missing where they do
        not apply). pandas is optional: without it an ImportError says how to install it."""
        try:
            import pandas
        except ImportError:
            raise ImportError("ResultStore.to_pandas needs pandas, which safety-landscape does not install: "
                              "pip install pandas") from None
        return pandas.DataFrame([_pandas_row(r) for r in self.records(sweep)], columns=list(PANDAS_COLUMNS))

    # -- export ----------------------------------------------------------------------------
    def export_json(self, path: str | Path, sweep: str | None = None) -> Path:
        """Write ``{"schema_version", "sweeps": {name: meta}, "points": [record dicts]}``."""
        path = Path(path)
        records = self.records(sweep)
        names = [sweep] if sweep is not None else self.sweeps()
        doc = {
            "schema_version": SCHEMA_VERSION,
            "sweeps": {name: self.get_meta(name) for name in names},
            "points": [r.to_dict() for r in records],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def export_csv(self, path: str | Path, sweep: str | None = None) -> Path:
        """Write one row per point with :data:`CSV_COLUMNS` (``b`` empty for 1D points)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for r in self.records(sweep):
                b = "" if r.b is None else repr(r.b)
                writer.writerow([r.sweep, r.series, r.metric, repr(r.a), b, repr(r.value),
                                 r.total, r.key, repr(r.created_at)])
        return path
