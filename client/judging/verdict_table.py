"""Verdicts given to stored answers after the sweep, per judge, in the store's own SQLite file.

Two tables beside the store's (created when first opened, ``CREATE TABLE IF NOT EXISTS``, so a store
without them, and clients that predate them, are untouched):

- ``judges``: one row per judge identity (:class:`JudgeIdentity`): its fingerprint (the content id of
  everything that decides its verdicts), its kind (``keyword``, ``referee``, ``classifier``), the
  server's own name of its deciding judge, the refusal keywords, the referee's thresholds id, the
  model that scored, and when it was first used.
- ``judge_verdicts``: one row per (point key, prompt index, judge fingerprint): the judge's verdict
  (``success``: counts toward the attack success rate under this judge), the outcome, the keyword
  refusal, the classifier's raw output, the referee's figures, and the sha256 of the answer it judged.

Rows are only ever inserted (``INSERT OR IGNORE``): a verdict, once stored, is never replaced, and
the generation-time verdicts in ``completions`` are never touched. Re-judging resumes by asking
:meth:`VerdictTable.judged` which (key, prompt index) pairs a judge already has.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError

__all__ = ["JudgeIdentity", "StoredVerdict", "VerdictTable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judges (
    fingerprint TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    server_judge TEXT NOT NULL,
    keywords TEXT NOT NULL,
    referee TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judge_verdicts (
    key TEXT NOT NULL,
    prompt_index INTEGER NOT NULL,
    judge TEXT NOT NULL REFERENCES judges (fingerprint),
    success INTEGER NOT NULL,
    outcome TEXT,
    refused INTEGER NOT NULL,
    matched_keyword TEXT NOT NULL,
    unsafe INTEGER NOT NULL,
    classifier_output TEXT NOT NULL,
    coherent INTEGER,
    nll REAL,
    repetition REAL,
    longest_run INTEGER,
    failed TEXT,
    completion_sha256 TEXT NOT NULL,
    judged_at REAL NOT NULL,
    PRIMARY KEY (key, prompt_index, judge)
);
CREATE INDEX IF NOT EXISTS judge_verdicts_judge ON judge_verdicts (judge, key);
"""


@dataclass(frozen=True)
class JudgeIdentity:
    """Everything that decides a judge's verdicts. ``kind``: ``keyword`` (no refusal string), ``referee``
    (no refusal string and coherent at theta0: "complied") or ``classifier`` (the guard says unsafe);
    ``server_judge`` the server's name of its deciding judge (``keyword``, ``classifier:...``);
    ``keywords`` the refusal strings (empty: the paper's 29); ``referee`` the thresholds id that decided
    coherence ("" when the referee's figures are not this store's model's: then no outcome is kept);
    ``model_fingerprint`` the model that scored. ``fingerprint`` is their content id."""

    kind: str
    server_judge: str
    keywords: tuple[str, ...]
    referee: str
    model_fingerprint: str

    @property
    def fingerprint(self) -> str:
        from ..store import point_key

        parts = {"kind": self.kind, "server_judge": self.server_judge, "keywords": list(self.keywords),
                 "referee": self.referee}
        if self.referee:
            parts["model_fingerprint"] = self.model_fingerprint
        return "judge-" + point_key(**parts)[:16]

    @property
    def name(self) -> str:
        """A short name for tables: the kind and the fingerprint's first hex digits."""
        return f"{self.kind}@{self.fingerprint.removeprefix('judge-')[:8]}"


@dataclass(frozen=True)
class StoredVerdict:
    """One judge's verdict on one stored answer. ``outcome``, ``coherent`` and the figures are None when
    the referee's figures were not the store's model's (another model scored them)."""

    key: str
    prompt_index: int
    success: bool
    outcome: str | None
    refused: bool
    matched_keyword: str
    unsafe: bool
    classifier_output: str
    coherent: bool | None
    nll: float | None
    repetition: float | None
    longest_run: int | None
    failed: tuple[str, ...] | None
    completion_sha256: str


class VerdictTable:
    """The ``judges`` and ``judge_verdicts`` tables of one store file; a context manager."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        """``create=False`` (for readers): the tables are not created, and a store without them reads as
        holding no judge."""
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no results store at {self.path}: give the output folder of a sweep (it holds results.sqlite)")
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            if create:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot keep re-judged verdicts in it ({exc})") from None
        self._present = {"judges", "judge_verdicts"} <= tables

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> VerdictTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if not self._present:
            return []
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read re-judged verdicts ({exc})") from None

    def add_judge(self, judge: JudgeIdentity) -> None:
        """Record a judge (once; a second call with the same identity changes nothing)."""
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO judges VALUES (?, ?, ?, ?, ?, ?, ?)",
                (judge.fingerprint, judge.kind, judge.server_judge, json.dumps(list(judge.keywords)), judge.referee,
                 judge.model_fingerprint, time.time()))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record a judge ({exc})") from None

    def judges(self) -> list[JudgeIdentity]:
        """Every judge that has verdicts here, oldest first."""
        rows = self._rows("SELECT kind, server_judge, keywords, referee, model_fingerprint FROM judges ORDER BY created_at")
        return [JudgeIdentity(str(k), str(s), tuple(json.loads(str(w))), str(r), str(m)) for k, s, w, r, m in rows]

    def judged(self, judge: JudgeIdentity) -> set[tuple[str, int]]:
        """The (point key, prompt index) pairs ``judge`` has a verdict on."""
        rows = self._rows("SELECT key, prompt_index FROM judge_verdicts WHERE judge = ?", (judge.fingerprint,))
        return {(str(k), int(str(i))) for k, i in rows}

    def put(self, judge: JudgeIdentity, verdicts: Iterable[StoredVerdict]) -> int:
        """Store verdicts of ``judge`` in one transaction; those it already has stay as they were.
        Returns how many were new."""
        now = time.time()
        rows = [(v.key, v.prompt_index, judge.fingerprint, int(v.success), v.outcome, int(v.refused), v.matched_keyword,
                 int(v.unsafe), v.classifier_output, None if v.coherent is None else int(v.coherent), v.nll, v.repetition,
                 v.longest_run, None if v.failed is None else ",".join(v.failed), v.completion_sha256, now)
                for v in verdicts]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO judge_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 rows)
            added = self._db.total_changes - before
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot store re-judged verdicts ({exc})") from None
        return added

    def verdicts(self, judge: JudgeIdentity) -> Iterator[StoredVerdict]:
        """``judge``'s verdicts, by point key and prompt index."""
        rows = self._rows(
            "SELECT key, prompt_index, success, outcome, refused, matched_keyword, unsafe, classifier_output, coherent, nll,"
            " repetition, longest_run, failed, completion_sha256 FROM judge_verdicts WHERE judge = ?"
            " ORDER BY key, prompt_index", (judge.fingerprint,))
        for k, i, s, o, r, kw, u, co, coh, nll, rep, run, failed, sha in rows:
            yield StoredVerdict(
                key=str(k), prompt_index=int(str(i)), success=bool(s), outcome=None if o is None else str(o), refused=bool(r),
                matched_keyword=str(kw), unsafe=bool(u), classifier_output=str(co),
                coherent=None if coh is None else bool(coh), nll=None if nll is None else float(str(nll)),
                repetition=None if rep is None else float(str(rep)), longest_run=None if run is None else int(str(run)),
                failed=None if failed is None else tuple(t for t in str(failed).split(",") if t), completion_sha256=str(sha))
