"""The coherence referee's verdict on each stored answer, as the result store keeps it.

One row per judged answer in the table ``referee_verdicts`` (its point's key and prompt index, the
outcome, the referee's verdict and figures: :class:`~.records.Completion`'s ``outcome`` ...
``token_run``). A table of its own, not columns of ``completions``: clients that predate it write
and read ``completions`` as before and ignore it, and an answer without a row (a store written
before the referee, a server without one, the referee turned off) reads back with outcome ``""``,
"not judged", never "complied". :class:`~.store.ResultStore` creates the table when it opens a
store, writes the rows in the transaction that stores the point, and reads them joined to the
completions (:data:`JOIN`, :data:`COLUMNS`, :func:`completion_fields`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .records import Completion

__all__ = ["COLUMNS", "JOIN", "SCHEMA", "completion_fields", "put_outcomes"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS referee_verdicts (
    key TEXT NOT NULL,
    prompt_index INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    coherent INTEGER NOT NULL,
    nll REAL NOT NULL,
    repetition REAL NOT NULL,
    token_repetition REAL NOT NULL,
    word_run INTEGER NOT NULL,
    token_run INTEGER NOT NULL,
    PRIMARY KEY (key, prompt_index)
);
"""

#: The columns read beside a completion (alias ``r``), in :func:`completion_fields`' order.
COLUMNS = "r.outcome, r.coherent, r.nll, r.repetition, r.token_repetition, r.word_run, r.token_run"
#: How a completion row (alias ``c``) finds its verdict.
JOIN = " LEFT JOIN referee_verdicts r ON r.key = c.key AND r.prompt_index = c.prompt_index"


def put_outcomes(db: sqlite3.Connection, key: str, completions: Iterable[Completion]) -> None:
    """The judged answers' rows (an answer with outcome ``""`` gets none); the first row of an answer stays."""
    rows = [(key, c.index, c.outcome, int(bool(c.coherent)), c.nll, c.repetition, c.token_repetition, c.word_run,
             c.token_run) for c in completions if c.outcome]
    for row in rows:
        if any(v is None for v in row):
            raise ValueError(f"answer {row[1]} has outcome {row[2]!r} but lacks a referee figure; a bug")
    db.executemany("INSERT OR IGNORE INTO referee_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def completion_fields(cells: Sequence[Any]) -> dict[str, Any]:
    """The :data:`COLUMNS` cells of one row as Completion keywords ({} when the answer was not judged)."""
    outcome, coherent, nll, repetition, token_repetition, word_run, token_run = cells
    if outcome is None:
        return {}
    return {"outcome": outcome, "coherent": bool(coherent), "nll": nll, "repetition": repetition,
            "token_repetition": token_repetition, "word_run": word_run, "token_run": token_run}
