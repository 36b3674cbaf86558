"""The local result store: content-addressed point results in one SQLite file (docs/design.md, invariants 5 and 6).

- :func:`point_key` names a point by the sha256 of the canonical JSON of everything that
  determines it, so resuming a sweep or reusing another run's points is a key lookup.
- :class:`ResultStore` keeps :class:`~safety_landscape.client.records.PointRecord` rows (WAL mode,
  one transaction per ``put`` so a crash loses nothing already reported), each point's
  :class:`~safety_landscape.client.records.Completion` rows (every distinct text once, zlib-
  compressed, in ``texts``), per-sweep metadata (spec and provenance), and the claims by which
  several sweep processes on one store split the work (``claim``: a point held by a live client is
  left to it; a crashed client's claims expire). Exports: :mod:`safety_landscape.client.export`,
  of the rows :meth:`ResultStore.point_rows` reads (:mod:`.point_rows`: each names its model).
  One connection guarded by a lock: safe from threads; WAL and SQLite's locks make it safe from
  several processes on one machine.
- A file that is not a readable store (damaged, truncated, another kind of file) raises
  :class:`~safety_landscape.client.errors.StoreError` naming the file and what to do.

Schema: ``schema_version`` counts incompatible changes (still 1). Tables added since (``texts``,
``completions``, ``claims``, the referee's ``referee_verdicts``: :mod:`.store_outcomes`) are created
when a store is opened, keeping every existing row, and clients that predate them ignore them; a
point stored without completions reads its verdicts back from its record, and an answer stored
without a referee verdict reads back as not judged (outcome ``""``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .errors import StoreError
from .point_rows import CSV_COLUMNS, PANDAS_COLUMNS, PointRow, point_rows
from .provenance import provenance
from .records import Completion, PointRecord
from .store_outcomes import COLUMNS as OUTCOME_COLUMNS
from .store_outcomes import JOIN as OUTCOME_JOIN
from .store_outcomes import SCHEMA as OUTCOME_SCHEMA
from .store_outcomes import completion_fields, put_outcomes
from .sweep_meta import SweepMeta

__all__ = ["CSV_COLUMNS", "PANDAS_COLUMNS", "SCHEMA_VERSION", "STORE_NAME", "ClaimState", "ResultStore", "point_key",
           "provenance"]

SCHEMA_VERSION = 1
#: The store's file name in a sweep's (or a gate's) output folder.
STORE_NAME = "results.sqlite"

#: What :meth:`ResultStore.claim` found: ``mine`` (claimed: evaluate it), ``done`` (every point is
#: stored), ``held`` (another live client holds a point of it).
ClaimState = Literal["mine", "done", "held"]

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
CREATE TABLE IF NOT EXISTS texts (sha256 TEXT PRIMARY KEY, zlib BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS completions (
    key TEXT NOT NULL,
    prompt_index INTEGER NOT NULL,
    jailbroken INTEGER NOT NULL,
    matched_keyword TEXT NOT NULL,
    classifier_output TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    finish_reason TEXT NOT NULL,
    text_sha256 TEXT,
    prompt_sha256 TEXT,
    PRIMARY KEY (key, prompt_index)
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
"""

_WHAT_TO_DO = ("move it aside (mv {path} {path}.broken) and re-run to start a new store, or restore it "
               "from a copy; `sqlite3 {path} .recover` may salvage the points it still holds")


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


def _text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _from_verdicts(record: PointRecord) -> list[Completion]:
    """The per-prompt verdicts a record holds, as completions without text (points stored before
    completions were kept): ``[index, jailbroken, matched_keyword]`` entries, or bare booleans
    (the referee's figures are not in a record: its outcome is read as not judged)."""
    out = []
    for position, v in enumerate(record.detail.verdicts or ()):
        if isinstance(v, (list, tuple)) and len(v) >= 2:
            out.append(Completion(int(v[0]), bool(v[1]), str(v[2]) if len(v) > 2 and v[2] else ""))
        else:
            out.append(Completion(position, bool(v)))
    return out


class ResultStore:
    """Point records, their completions, sweep metadata and claims in one SQLite file; a context
    manager, thread-safe. Opening a file that is not a readable store raises :class:`StoreError`.

    Example::

        with ResultStore("runs/quick/results.sqlite") as store:
            points = store.to_pandas()          # a DataFrame, a row per point (pandas is optional)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: every write below opens its own transaction (BEGIN IMMEDIATE).
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None
        try:
            self._open()
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        with self._sql() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise StoreError(f"{self.path} is damaged (integrity check: {check[0][0]}): "
                                 + _WHAT_TO_DO.format(path=self.path))
            db.executescript(_SCHEMA + OUTCOME_SCHEMA)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {row[0]}; this client reads "
                    f"version {SCHEMA_VERSION}: export it with a matching client or use a new file"
                )

    def _error(self, exc: BaseException) -> StoreError:
        """A StoreError naming the file: damaged, locked or not openable."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
            return StoreError(f"{self.path} stayed locked by another process for 30 s ({text}); let it finish or "
                              "stop it, then re-run")
        if isinstance(exc, OSError) or "unable to open" in text:
            return StoreError(f"cannot open the results store {self.path} ({text}): check the path and its permissions")
        return StoreError(f"{self.path} is not a readable results store ({text}): " + _WHAT_TO_DO.format(path=self.path))

    @contextlib.contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite errors become a StoreError naming the file."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so concurrent writers queue instead of deadlocking)."""
        with self._sql() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _record(self, text: str) -> PointRecord:
        try:
            return PointRecord.from_dict(json.loads(text))
        except ValueError as exc:  # JSONDecodeError included
            raise StoreError(f"{self.path} holds an unreadable point record ({exc}): "
                             + _WHAT_TO_DO.format(path=self.path)) from None

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- points ----------------------------------------------------------------------------
    def put(self, record: PointRecord, completions: Iterable[Completion] = ()) -> bool:
        """Store ``record`` with its ``completions`` in one transaction and release any claim on
        it. False (and nothing changed) if its key exists: the first result stays."""
        b = record.coords[1] if len(record.coords) > 1 else None
        blob = json.dumps(record.to_dict(), sort_keys=True)
        with self._write() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO points (key, sweep, series, metric, a, b, value, total,"
                " record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.key, record.sweep, record.series, record.metric, record.coords[0], b,
                 record.value, record.total, blob, record.created_at),
            )
            db.execute("DELETE FROM claims WHERE key = ?", (record.key,))
            if cur.rowcount != 1:
                return False
            self._put_completions(db, record.key, completions)
            return True

    @staticmethod
    def _put_completions(db: sqlite3.Connection, key: str, completions: Iterable[Completion]) -> None:
        completions = list(completions)
        rows, texts = [], {}
        for c in completions:
            shas = []
            for text in (c.text, c.prompt):
                sha = None if text is None else _text_sha(text)
                if text is not None and sha is not None:
                    texts[sha] = text
                shas.append(sha)
            rows.append((key, c.index, int(c.jailbroken), c.matched_keyword, c.classifier_output, c.prompt_tokens,
                         c.completion_tokens, c.finish_reason, shas[0], shas[1]))
        db.executemany("INSERT OR IGNORE INTO texts (sha256, zlib) VALUES (?, ?)",
                       [(sha, zlib.compress(text.encode("utf-8"), 6)) for sha, text in texts.items()])
        db.executemany("INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        put_outcomes(db, key, completions)

    def get(self, key: str) -> PointRecord | None:
        with self._sql() as db:
            row = db.execute("SELECT record FROM points WHERE key = ?", (key,)).fetchone()
        return self._record(row[0]) if row else None

    def __contains__(self, key: object) -> bool:
        with self._sql() as db:
            return db.execute("SELECT 1 FROM points WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._sql() as db:
            return int(db.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    def keys(self) -> set[str]:
        with self._sql() as db:
            return {row[0] for row in db.execute("SELECT key FROM points")}

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
        with self._sql() as db:
            rows = db.execute(f"SELECT record FROM points{where}", args).fetchall()
        out = [self._record(r[0]) for r in rows]
        # Sorted in Python: coords are tuples, and the order must not depend on SQL's NULLs.
        out.sort(key=lambda r: (r.series, r.coords, r.sweep, r.metric))
        return out

    def sweeps(self) -> list[str]:
        """Names of the sweeps with points or metadata, sorted."""
        with self._sql() as db:
            rows = db.execute(
                "SELECT sweep FROM points UNION SELECT sweep FROM sweep_meta ORDER BY sweep"
            ).fetchall()
        return [r[0] for r in rows]

    # -- completions -----------------------------------------------------------------------
    def completions(self, key: str) -> list[Completion]:
        """The point's completions by prompt index; for a point stored without them, its
        verdicts (text and token counts None). [] for an unknown key or a capability point."""
        with self._sql() as db:
            rows = db.execute(
                "SELECT c.prompt_index, c.jailbroken, c.matched_keyword, c.prompt_tokens, c.completion_tokens,"
                f" c.finish_reason, t.zlib, p.zlib, c.classifier_output, {OUTCOME_COLUMNS} FROM completions c"
                " LEFT JOIN texts t ON t.sha256 = c.text_sha256 LEFT JOIN texts p ON p.sha256 = c.prompt_sha256"
                f"{OUTCOME_JOIN} WHERE c.key = ? ORDER BY c.prompt_index", (key,)).fetchall()
        if not rows:
            record = self.get(key)
            return _from_verdicts(record) if record is not None else []
        return [Completion(i, bool(jb), kw, pt, ct, fr, self._unzip(text), self._unzip(prompt), cls,
                           **completion_fields(rest))
                for i, jb, kw, pt, ct, fr, text, prompt, cls, *rest in rows]

    def _unzip(self, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        try:
            return zlib.decompress(blob).decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path} holds a damaged completion text ({exc}): "
                             + _WHAT_TO_DO.format(path=self.path)) from None

    def text_stats(self) -> dict[str, int]:
        """``{"completions": rows, "texts": distinct texts, "compressed_bytes": their zlib size}``."""
        with self._sql() as db:
            rows = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
            texts, size = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(zlib)), 0) FROM texts").fetchone()
        return {"completions": int(rows), "texts": int(texts), "compressed_bytes": int(size)}

    # -- claims (several processes on one store) ----------------------------------------------
    def claim(self, keys: Sequence[str], owner: str, ttl: float) -> ClaimState:
        """Claim the points ``keys`` that are not stored yet for ``owner`` until ``ttl`` seconds
        from now, all or none, in one transaction: ``done`` when every key is stored, ``held`` when
        another owner's unexpired claim covers one of them, else ``mine`` (claimed; re-claiming
        one's own claim renews it)."""
        now, wanted = time.time(), sorted(set(keys))
        marks = ", ".join("?" * len(wanted))
        with self._write() as db:
            stored = {r[0] for r in db.execute(f"SELECT key FROM points WHERE key IN ({marks})", wanted)}
            if len(stored) == len(wanted):
                return "done"
            held = db.execute(f"SELECT 1 FROM claims WHERE key IN ({marks}) AND owner != ? AND expires > ? LIMIT 1",
                              [*wanted, owner, now]).fetchone()
            if held:
                return "held"
            db.executemany("INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                           " SET owner = excluded.owner, expires = excluded.expires",
                           [(k, owner, now + ttl) for k in wanted if k not in stored])
            return "mine"

    def renew_claims(self, owner: str, ttl: float) -> int:
        """Extend every claim of ``owner`` to ``ttl`` seconds from now; how many there are."""
        with self._write() as db:
            return db.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + ttl, owner)).rowcount

    def release_claims(self, owner: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    def claims(self) -> dict[str, tuple[str, float]]:
        """key -> (owner, expiry time) of every claim, expired ones included."""
        with self._sql() as db:
            return {k: (o, e) for k, o, e in db.execute("SELECT key, owner, expires FROM claims")}

    # -- sweep metadata ----------------------------------------------------------------------
    def put_meta(self, sweep: str, meta: Mapping[str, Any]) -> None:
        """Record (or replace) a sweep's spec and provenance; must be JSON-able."""
        text = json.dumps(dict(meta), sort_keys=True)
        with self._write() as db:
            db.execute(
                "INSERT INTO sweep_meta (sweep, meta) VALUES (?, ?)"
                " ON CONFLICT (sweep) DO UPDATE SET meta = excluded.meta",
                (sweep, text),
            )

    def get_meta(self, sweep: str) -> dict[str, Any] | None:
        with self._sql() as db:
            row = db.execute("SELECT meta FROM sweep_meta WHERE sweep = ?", (sweep,)).fetchone()
        if not row:
            return None
        try:
            meta: dict[str, Any] = json.loads(row[0])
        except ValueError as exc:
            raise StoreError(f"{self.path} holds unreadable metadata of sweep {sweep!r} ({exc}): "
                             + _WHAT_TO_DO.format(path=self.path)) from None
        return meta

    def sweep_meta(self, sweep: str) -> SweepMeta | None:
        """The typed metadata of ``sweep`` (None if it has none); a StoreError when it is unreadable."""
        raw = self.get_meta(sweep)
        try:
            return SweepMeta.from_json(raw) if raw is not None else None
        except ValueError as exc:
            raise StoreError(f"{self.path} holds unreadable metadata of sweep {sweep!r} ({exc}): "
                             + _WHAT_TO_DO.format(path=self.path)) from None

    # -- exports and notebooks ---------------------------------------------------------------
    def point_rows(self, sweep: str | None = None) -> list[PointRow]:
        """The points (of ``sweep``, else every point) as export rows: each with the model it was
        measured on and the command that measures it again (:mod:`.point_rows`)."""
        return list(point_rows(self.records(sweep), self.sweep_meta))

    def to_pandas(self, sweep: str | None = None) -> Any:
        """The points (of ``sweep``, else every point) as a ``pandas.DataFrame``, one row per point
        with :data:`PANDAS_COLUMNS`: the CSV export's columns (the model's name and fingerprint
        included: a store may hold sweeps of several models), the series split into ``direction``
        and ``system_prompt``, the server's facts (``b``, ``jailbroken``, ... are missing where they
        do not apply) and ``reproduce``, the command that measures the point again. pandas is
        optional: without it an ImportError says how to install it."""
        try:
            import pandas
        except ImportError:
            raise ImportError("ResultStore.to_pandas needs pandas, which safety-landscape does not install: "
                              "pip install pandas") from None
        return pandas.DataFrame([row.pandas_row() for row in self.point_rows(sweep)], columns=list(PANDAS_COLUMNS))
