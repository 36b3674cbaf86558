"""Exports of a result store: its points, or one row per point and prompt with the completion.

:func:`export` writes to a file or, for ``"-"``, to stdout, in one of :data:`FORMATS`:

- points, ``json``: ``{"schema_version", "sweeps": {name: meta}, "points": [point dicts]}``;
  ``jsonl``: one point dict per line; ``csv``: :data:`~.point_rows.CSV_COLUMNS`. A point dict is
  the record's, with ``model`` (``{"name", "fingerprint"}``, null if unknown) and ``reproduce`` (the
  ``visage evaluate`` command that measures it again; null for a capability point);
- completions (``completions=True``), one row per (point, prompt) of every safety point with
  :data:`COMPLETION_COLUMNS` (``completion`` is null / empty when it was not kept, ``prompt`` when
  the prompts are a set the server holds; ``outcome`` and the coherence referee's figures ``coherent``,
  ``nll`` (fluency), ``repetition``, ``token_repetition``, ``word_run``, ``token_run`` are null / empty
  when the referee did not judge the answer): ``json`` ``{"schema_version", "completions": [rows]}``,
  ``jsonl`` one row per line, ``csv`` with a header.

Every row names the model it was measured on (a store may hold sweeps of several models).

Rows are written as they are read, point by point, so a large store streams.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .point_rows import CSV_COLUMNS
from .store import SCHEMA_VERSION, ResultStore

__all__ = ["COMPLETION_COLUMNS", "FORMATS", "completion_rows", "export"]

FORMATS = ("json", "jsonl", "csv")
COMPLETION_COLUMNS = ("sweep", "model", "model_fingerprint", "series", "metric", "a", "b", "key", "prompt_index",
                      "jailbroken", "matched_keyword", "finish_reason", "prompt_tokens", "completion_tokens", "prompt",
                      "completion", "outcome", "coherent", "nll", "repetition", "token_repetition", "word_run",
                      "token_run")
_SAFETY = ("asr", "refusal")


def completion_rows(store: ResultStore, sweep: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per (safety point, prompt) of ``sweep`` (None: every sweep), in the store's order."""
    for point in store.point_rows(sweep):
        record = point.record
        if record.metric not in _SAFETY:
            continue
        for c in store.completions(record.key):
            yield {"sweep": record.sweep, "model": point.model_name, "model_fingerprint": point.model_fingerprint,
                   "series": record.series, "metric": record.metric, "a": record.a, "b": record.b, "key": record.key,
                   "prompt_index": c.index, "jailbroken": c.jailbroken, "matched_keyword": c.matched_keyword,
                   "finish_reason": c.finish_reason, "prompt_tokens": c.prompt_tokens,
                   "completion_tokens": c.completion_tokens, "prompt": c.prompt, "completion": c.text,
                   "outcome": c.outcome or None, "coherent": c.coherent, "nll": c.nll, "repetition": c.repetition,
                   "token_repetition": c.token_repetition, "word_run": c.word_run, "token_run": c.token_run}


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def _write_points(store: ResultStore, fh: TextIO, fmt: str, sweep: str | None) -> None:
    rows = store.point_rows(sweep)
    if fmt == "json":
        names = [sweep] if sweep is not None else store.sweeps()
        doc = {"schema_version": SCHEMA_VERSION, "sweeps": {name: store.get_meta(name) for name in names},
               "points": [r.to_dict() for r in rows]}
        fh.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    elif fmt == "jsonl":
        for r in rows:
            fh.write(json.dumps(r.to_dict(), sort_keys=True) + "\n")
    else:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(r.csv_cells() for r in rows)


def _write_completions(store: ResultStore, fh: TextIO, fmt: str, sweep: str | None) -> None:
    rows = completion_rows(store, sweep)
    if fmt == "json":
        fh.write(json.dumps({"schema_version": SCHEMA_VERSION, "completions": list(rows)}, indent=2, sort_keys=True) + "\n")
    elif fmt == "jsonl":
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        writer = csv.writer(fh)
        writer.writerow(COMPLETION_COLUMNS)
        writer.writerows([_csv_cell(row[c]) for c in COMPLETION_COLUMNS] for row in rows)


def export(store: ResultStore, output: str | Path, *, fmt: str = "json", sweep: str | None = None,
           completions: bool = False) -> str:
    """Write the points (or, with ``completions``, one row per point and prompt) of ``sweep``
    (None: all) as ``fmt`` to ``output``: a path (its folders created) or ``"-"`` for stdout.
    Returns what was written to: the path, or ``"-"``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    write = _write_completions if completions else _write_points
    if str(output) == "-":
        try:
            write(store, sys.stdout, fmt, sweep)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (| head): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return "-"
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        write(store, fh, fmt, sweep)
    return str(path)
