"""Prompt files and prompt sets, in plain Python: the reader both the client and the server use.

Formats (``fmt``), auto-detected from the file extension when not given:

- ``advbench-csv`` (column ``goal``), ``jailbreakbench-csv`` (column ``Goal``), ``harmbench-csv``
  (column ``Behavior``). A ``.csv`` file (or ``fmt="csv"``) is detected by its header, checked in
  that order: ``goal``, then ``Goal``, then ``Behavior`` (JailbreakBench's CSV also has a short
  ``Behavior`` label column, so ``Goal`` must win). ``column=`` overrides the column.
- ``jsonl`` (``.jsonl``): one JSON value per line, an object with a ``prompt`` (else ``goal``)
  field, or a bare JSON string; ``column=`` names another field. Blank lines are skipped.
- ``text`` (``.txt``): one prompt per line; blank lines are skipped.

Every prompt is stripped of surrounding whitespace. A bad file raises :class:`PromptFileError`
(a ``ValueError``) naming the file, the line and what to change; a missing file raises its
subclass :class:`PromptFileNotFoundError`. Each side maps these to its own errors (the server:
INVALID_ARGUMENT / NOT_FOUND; the client: a validation error before any RPC).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

__all__ = [
    "MAX_PROMPT_CHARS",
    "PROMPT_FILE_FORMATS",
    "PROMPT_KINDS",
    "PromptFileError",
    "PromptFileNotFoundError",
    "PromptSet",
    "inline_prompt_set",
    "load_prompt_file",
    "text_prompt_set",
]

PROMPT_KINDS = ("harmful", "benign")
PROMPT_FILE_FORMATS = ("advbench-csv", "harmbench-csv", "jailbreakbench-csv", "csv", "jsonl", "text")
#: The default bound on one prompt's length (characters).
MAX_PROMPT_CHARS = 20000
_CSV_COLUMNS = {"advbench-csv": "goal", "jailbreakbench-csv": "Goal", "harmbench-csv": "Behavior"}
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".txt": "text"}
_JSONL_FIELDS = ("prompt", "goal")


class PromptFileError(ValueError):
    """A prompt file, inline list or prompt-set argument that cannot be used; the message says why."""


class PromptFileNotFoundError(PromptFileError):
    """The prompt file does not exist."""


@dataclass(frozen=True)
class PromptSet:
    """A named, ordered, immutable list of prompts."""

    name: str
    prompts: tuple[str, ...]
    source_format: str
    kind: str  # "harmful" | "benign"

    @cached_property
    def sha256(self) -> str:
        """sha256 hex of the canonical JSON of the prompts (order matters; name/kind do not)."""
        blob = json.dumps(list(self.prompts), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def head(self, limit: int) -> PromptSet:
        """The first ``limit`` prompts (0 = all; more than there are = all), name unchanged."""
        if limit < 0:
            raise PromptFileError(f"prompt limit must be >= 0 (0 = all), got {limit}.")
        if limit == 0 or limit >= len(self.prompts):
            return self
        return dataclasses.replace(self, prompts=self.prompts[:limit])

    def __len__(self) -> int:
        return len(self.prompts)


def _check_kind(kind: str) -> None:
    if kind not in PROMPT_KINDS:
        raise PromptFileError(f'prompt set kind must be one of {", ".join(PROMPT_KINDS)}, got "{kind}".')


def _finish(where: str, items: list[tuple[str, str]], max_chars: int, *, what: str = "line") -> tuple[str, ...]:
    """Validate (location, prompt) pairs: non-empty, within the length limit, at least one."""
    out = []
    for loc, raw in items:
        prompt = raw.strip()
        if not prompt:
            raise PromptFileError(f"{where}: {loc} has an empty prompt; fill it in or remove the {what}.")
        if len(prompt) > max_chars:
            raise PromptFileError(
                f"{where}: {loc} is {len(prompt)} characters; the limit is {max_chars}. "
                "Shorten it or raise max_prompt_chars."
            )
        out.append(prompt)
    if not out:
        raise PromptFileError(f"{where}: contains no prompts; add at least one.")
    return tuple(out)


def _decode(where: str, data: bytes) -> str:
    bom = b"\xef\xbb\xbf"
    skip = len(bom) if data.startswith(bom) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptFileError(
            f"{where}: is not UTF-8 (invalid byte 0x{data[skip + exc.start]:02x} at byte offset "
            f"{skip + exc.start}); re-save the file as UTF-8."
        ) from None


def _text_lines(text: str) -> list[tuple[str, str]]:
    return [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _csv_column(where: str, header: list[str], fmt: str, column: str | None) -> tuple[str, str]:
    """(format, column): the given column, the format's own, or (``csv``) the first known in the header."""
    if column is None:
        if fmt != "csv":
            return fmt, _CSV_COLUMNS[fmt]
        for candidate, col in _CSV_COLUMNS.items():
            if col in header:
                return candidate, col
        raise PromptFileError(
            f"{where}: no prompt column found; expected one of "
            f"{', '.join(_CSV_COLUMNS.values())} in the header, found columns: "
            f"{', '.join(header) or '(none)'}. Rename the column or pass column=."
        )
    return fmt, column


def _parse_csv(where: str, text: str, fmt: str, column: str | None) -> tuple[str, list[tuple[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise PromptFileError(f"{where}: line 1 is not valid CSV ({exc}).") from None
    fmt, column = _csv_column(where, header, fmt, column)
    if column not in header:
        raise PromptFileError(
            f'{where}: has no column "{column}" (format {fmt}); found columns: '
            f"{', '.join(header) or '(none)'}. Rename the column or pass column=."
        )
    idx = header.index(column)
    items = []
    try:
        for row_no, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue  # blank line
            loc = f"row {row_no} (line {reader.line_num})"
            items.append((loc, row[idx] if idx < len(row) else ""))
    except csv.Error as exc:
        raise PromptFileError(f"{where}: line {reader.line_num} is not valid CSV ({exc}).") from None
    return fmt, items


def _parse_jsonl(where: str, text: str, column: str | None) -> list[tuple[str, str]]:
    fields = (column,) if column is not None else _JSONL_FIELDS
    items = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        loc = f"line {line_no}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(
                f"{where}: {loc} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "write one JSON object or string per line."
            ) from None
        if isinstance(value, dict):
            field = next((f for f in fields if f in value), None)
            if field is None:
                raise PromptFileError(
                    f"{where}: {loc} has no {' or '.join(repr(f) for f in fields)} field; "
                    f"found fields: {', '.join(value) or '(none)'}."
                )
            value = value[field]
        if not isinstance(value, str):
            raise PromptFileError(
                f"{where}: {loc} is not a string prompt (got {type(value).__name__}); "
                'write {"prompt": "..."} or a JSON string.'
            )
        items.append((loc, value))
    return items


def _file_format(where: str, path: Path, fmt: str | None) -> str:
    if fmt is None:
        detected = _EXTENSIONS.get(path.suffix.lower())
        if detected is None:
            raise PromptFileError(
                f'{where}: cannot tell the format from the extension "{path.suffix}"; use .csv, '
                f".jsonl or .txt, or pass one of: {', '.join(PROMPT_FILE_FORMATS)}."
            )
        return detected
    if fmt not in PROMPT_FILE_FORMATS:
        raise PromptFileError(f'unknown prompt file format "{fmt}"; use one of: {", ".join(PROMPT_FILE_FORMATS)}.')
    return fmt


def _read_bytes(where: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PromptFileNotFoundError(f"{where} does not exist; check the path.") from None
    except IsADirectoryError:
        raise PromptFileError(f"{where} is a directory; give a file.") from None
    if not data.strip():
        raise PromptFileError(f"{where}: is empty; add prompts, one per line or row.")
    return data


def load_prompt_file(
    path: str | Path,
    *,
    name: str | None = None,
    kind: str = "harmful",
    fmt: str | None = None,
    column: str | None = None,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> PromptSet:
    """Load a prompt file (see the module docstring for formats); the name defaults to the stem."""
    _check_kind(kind)
    if max_prompt_chars <= 0:
        raise PromptFileError(f"max_prompt_chars must be > 0, got {max_prompt_chars}.")
    path = Path(path)
    where = f"prompt file {path}"
    fmt = _file_format(where, path, fmt)
    text = _decode(where, _read_bytes(where, path))
    what = "line"
    if fmt == "text":
        items = _text_lines(text)
    elif fmt == "jsonl":
        items = _parse_jsonl(where, text, column)
    else:
        fmt, items = _parse_csv(where, text, fmt, column)
        what = "row"
    prompts = _finish(where, items, max_prompt_chars, what=what)
    return PromptSet(name=name or path.stem, prompts=prompts, source_format=fmt, kind=kind)


def inline_prompt_set(prompts: Sequence[str], *, kind: str = "harmful", max_prompt_chars: int = MAX_PROMPT_CHARS) -> PromptSet:
    """A prompt set named "inline" from prompts given in a request."""
    _check_kind(kind)
    if isinstance(prompts, str):
        raise PromptFileError("inline prompts must be a list of strings, not one string.")
    items = [(f"prompt {i}", p) for i, p in enumerate(prompts, start=1)]
    return PromptSet("inline", _finish("inline prompts", items, max_prompt_chars, what="prompt"), "inline", kind)


def text_prompt_set(name: str, text: str, *, kind: str, where: str, max_prompt_chars: int = MAX_PROMPT_CHARS) -> PromptSet:
    """A ``text``-format prompt set (one prompt per non-blank line) from text already read;
    ``where`` names its source in messages."""
    _check_kind(kind)
    return PromptSet(name, _finish(where, _text_lines(text), max_prompt_chars), "text", kind)
