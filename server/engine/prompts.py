"""Prompt sets: loading harmful/benign prompt files, the built-in mini sets, and a registry.

Formats (``fmt``), auto-detected from the file extension when not given:

- ``advbench-csv`` (column ``goal``), ``jailbreakbench-csv`` (column ``Goal``), ``harmbench-csv``
  (column ``Behavior``). A ``.csv`` file (or ``fmt="csv"``) is detected by its header, checked in
  that order: ``goal``, then ``Goal``, then ``Behavior`` (JailbreakBench's CSV also has a short
  ``Behavior`` label column, so ``Goal`` must win). ``column=`` overrides the column.
- ``jsonl`` (``.jsonl``): one JSON value per line, an object with a ``prompt`` (else ``goal``)
  field, or a bare JSON string; ``column=`` names another field. Blank lines are skipped.
- ``text`` (``.txt``): one prompt per line; blank lines are skipped.

Every prompt is stripped of surrounding whitespace. Bad files raise ``InvalidArgument`` naming the
file, the line and what to change; a missing file raises ``NotFound``.

Built-in sets (``server/data/``): ``harmful-mini`` (40 AdvBench-style harmful requests across the
usual categories) and ``benign-mini``; line i of ``benign_mini.txt`` is the benign twin of line i
of ``harmful_mini.txt`` (same shape, same order, same count), for paired over-refusal checks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from safety_landscape.server import errors

__all__ = [
    "PROMPT_FILE_FORMATS",
    "PromptSet",
    "PromptSetRegistry",
    "builtin_prompt_sets",
    "inline_prompt_set",
    "load_prompt_file",
]

KINDS = ("harmful", "benign")
_CSV_COLUMNS = {"advbench-csv": "goal", "jailbreakbench-csv": "Goal", "harmbench-csv": "Behavior"}
PROMPT_FILE_FORMATS = (
    "advbench-csv", "harmbench-csv", "jailbreakbench-csv", "csv", "jsonl", "text"
)
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".txt": "text"}
_JSONL_FIELDS = ("prompt", "goal")


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
            raise errors.InvalidArgument(f"prompt limit must be >= 0 (0 = all), got {limit}.")
        if limit == 0 or limit >= len(self.prompts):
            return self
        return PromptSet(self.name, self.prompts[:limit], self.source_format, self.kind)

    def __len__(self) -> int:
        return len(self.prompts)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise errors.InvalidArgument(
            f'prompt set kind must be one of {", ".join(KINDS)}, got "{kind}".'
        )


def _finish(
    where: str, items: list[tuple[str, str]], max_chars: int, *, what: str = "line"
) -> tuple[str, ...]:
    """Validate (location, prompt) pairs: non-empty, within the length limit, at least one."""
    out = []
    for loc, raw in items:
        prompt = raw.strip()
        if not prompt:
            raise errors.InvalidArgument(
                f"{where}: {loc} has an empty prompt; fill it in or remove the {what}."
            )
        if len(prompt) > max_chars:
            raise errors.InvalidArgument(
                f"{where}: {loc} is {len(prompt)} characters; the limit is {max_chars}. "
                "Shorten it or raise max_prompt_chars."
            )
        out.append(prompt)
    if not out:
        raise errors.InvalidArgument(f"{where}: contains no prompts; add at least one.")
    return tuple(out)


def _decode(where: str, data: bytes) -> str:
    bom = b"\xef\xbb\xbf"
    skip = len(bom) if data.startswith(bom) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.InvalidArgument(
            f"{where}: is not UTF-8 (invalid byte 0x{data[skip + exc.start]:02x} at byte offset "
            f"{skip + exc.start}); re-save the file as UTF-8."
        ) from None


def _parse_csv(
    where: str, text: str, fmt: str, column: str | None
) -> tuple[str, list[tuple[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error as exc:
        raise errors.InvalidArgument(f"{where}: line 1 is not valid CSV ({exc}).") from None
    if column is None:
        if fmt == "csv":
            for candidate, col in _CSV_COLUMNS.items():
                if col in header:
                    fmt, column = candidate, col
                    break
            else:
                raise errors.InvalidArgument(
                    f"{where}: no prompt column found; expected one of "
                    f"{', '.join(_CSV_COLUMNS.values())} in the header, found columns: "
                    f"{', '.join(header) or '(none)'}. Rename the column or pass column=."
                )
        else:
            column = _CSV_COLUMNS[fmt]
    if column not in header:
        raise errors.InvalidArgument(
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
        raise errors.InvalidArgument(
            f"{where}: line {reader.line_num} is not valid CSV ({exc})."
        ) from None
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
            raise errors.InvalidArgument(
                f"{where}: {loc} is not valid JSON ({exc.msg} at column {exc.colno}); "
                "write one JSON object or string per line."
            ) from None
        if isinstance(value, dict):
            field = next((f for f in fields if f in value), None)
            if field is None:
                raise errors.InvalidArgument(
                    f"{where}: {loc} has no {' or '.join(repr(f) for f in fields)} field; "
                    f"found fields: {', '.join(value) or '(none)'}."
                )
            value = value[field]
        if not isinstance(value, str):
            raise errors.InvalidArgument(
                f"{where}: {loc} is not a string prompt (got {type(value).__name__}); "
                'write {"prompt": "..."} or a JSON string.'
            )
        items.append((loc, value))
    return items


def load_prompt_file(
    path: str | Path,
    *,
    name: str | None = None,
    kind: str = "harmful",
    fmt: str | None = None,
    column: str | None = None,
    max_prompt_chars: int = 20000,
) -> PromptSet:
    """Load a prompt file (see the module docstring for formats); the name defaults to the stem."""
    _check_kind(kind)
    if max_prompt_chars <= 0:
        raise errors.InvalidArgument(f"max_prompt_chars must be > 0, got {max_prompt_chars}.")
    path = Path(path)
    where = f"prompt file {path}"
    if fmt is None:
        fmt = _EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise errors.InvalidArgument(
                f'{where}: cannot tell the format from the extension "{path.suffix}"; use .csv, '
                f".jsonl or .txt, or pass one of: {', '.join(PROMPT_FILE_FORMATS)}."
            )
    elif fmt not in PROMPT_FILE_FORMATS:
        raise errors.InvalidArgument(
            f'unknown prompt file format "{fmt}"; use one of: {", ".join(PROMPT_FILE_FORMATS)}.'
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise errors.NotFound(f"{where} does not exist; check the path.") from None
    except IsADirectoryError:
        raise errors.InvalidArgument(f"{where} is a directory; give a file.") from None
    if not data.strip():
        raise errors.InvalidArgument(f"{where}: is empty; add prompts, one per line or row.")
    text = _decode(where, data)

    what = "line"
    if fmt == "text":
        items = [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif fmt == "jsonl":
        items = _parse_jsonl(where, text, column)
    else:
        fmt, items = _parse_csv(where, text, fmt, column)
        what = "row"
    prompts = _finish(where, items, max_prompt_chars, what=what)
    return PromptSet(name=name or path.stem, prompts=prompts, source_format=fmt, kind=kind)


def inline_prompt_set(
    prompts: Sequence[str], *, kind: str = "harmful", max_prompt_chars: int = 20000
) -> PromptSet:
    """A prompt set named "inline" from prompts given in a request."""
    _check_kind(kind)
    if isinstance(prompts, str):
        raise errors.InvalidArgument("inline prompts must be a list of strings, not one string.")
    items = [(f"prompt {i}", p) for i, p in enumerate(prompts, start=1)]
    prompts_ = _finish("inline prompts", items, max_prompt_chars, what="prompt")
    return PromptSet("inline", prompts_, "inline", kind)


def builtin_prompt_sets() -> dict[str, PromptSet]:
    """The packaged "harmful-mini" and "benign-mini" (line i of one twins line i of the other)."""
    data = resources.files("safety_landscape.server").joinpath("data")
    out = {}
    for name, filename, kind in (
        ("harmful-mini", "harmful_mini.txt", "harmful"),
        ("benign-mini", "benign_mini.txt", "benign"),
    ):
        text = data.joinpath(filename).read_text(encoding="utf-8")
        items = [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        out[name] = PromptSet(name, _finish(f"built-in {filename}", items, 20000), "text", kind)
    return out


class PromptSetRegistry:
    """Prompt sets by name (not thread-safe for writes: fill it at start-up)."""

    def __init__(self, sets: Iterable[PromptSet] = ()) -> None:
        self._sets: dict[str, PromptSet] = {}
        for ps in sets:
            self.add(ps)

    def add(self, ps: PromptSet) -> None:
        """Register ``ps``; a second set under the same name is an error."""
        if ps.name in self._sets:
            raise errors.InvalidArgument(
                f'a prompt set named "{ps.name}" is already registered; give this one another name.'
            )
        self._sets[ps.name] = ps

    def get(self, name: str) -> PromptSet:
        try:
            return self._sets[name]
        except KeyError:
            raise errors.NotFound(
                f'unknown prompt set "{name}".' + errors.did_you_mean(name, self._sets)
            ) from None

    def list(self) -> list[PromptSet]:
        return [self._sets[n] for n in sorted(self._sets)]

    def __contains__(self, name: object) -> bool:
        return name in self._sets
