"""Prompt files and prompt sets, in plain Python: the reader both the client and the server use.

Formats (``fmt``), auto-detected from the file extension when not given:

- ``advbench-csv`` (column ``goal``), ``jailbreakbench-csv`` (column ``Goal``), ``harmbench-csv``
  (column ``Behavior``). A ``.csv`` file (or ``fmt="csv"``) is detected by its header, checked in
  that order: ``goal``, then ``Goal``, then ``Behavior`` (JailbreakBench's CSV also has a short
  ``Behavior`` label column, so ``Goal`` must win). ``column=`` overrides the column.
- HarmBench's behaviours file, read as HarmBench's own DirectRequest baseline forms its test
  cases: when the prompt column is ``Behavior`` and the file has a ``ContextString`` column, a
  row with a non-empty context becomes ``f"{ContextString}\n\n---\n\n{Behavior}"`` (the
  contextual behaviours). Rows whose ``FunctionalCategory`` is ``copyright`` (or whose ``Tags``
  hold ``hash_check``) are kept and *flagged* (:attr:`PromptSet.copyright`, and a line in
  :attr:`PromptSet.warnings`): HarmBench judges them by hashing the completion against the
  original text, which neither refusal keywords nor a classifier does, so their verdicts here
  are not HarmBench's copyright ASR.
- ``jsonl`` (``.jsonl``): one JSON value per line: an object with a ``prompt`` (else ``goal``,
  else ``messages``) field, or a bare JSON string; ``column=`` names another field. Blank lines
  are skipped. A chat-style ``messages`` list (``[{"role": ..., "content": ...}, ...]``, roles
  ``system``/``user``/``assistant``, string contents) gives the content of its **one** user turn;
  assistant turns after it (a reference answer) are ignored; a system turn before it is ignored
  too (the evaluation's system prompt applies) and flagged (:attr:`PromptSet.system_turns`, a
  line in :attr:`PromptSet.warnings`); a conversation with an earlier user or assistant turn is
  an error (the server evaluates single-turn prompts; dropping turns would change the attack).
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
from dataclasses import dataclass, field
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
_JSONL_FIELDS = ("prompt", "goal", "messages")
_ROLES = ("system", "user", "assistant")


class PromptFileError(ValueError):
    """A prompt file, inline list or prompt-set argument that cannot be used; the message says why."""


class PromptFileNotFoundError(PromptFileError):
    """The prompt file does not exist."""


@dataclass(frozen=True)
class PromptSet:
    """A named, ordered, immutable list of prompts. ``copyright`` and ``system_turns`` are the
    0-based positions of the prompts the reader flagged (see the module docstring); they do not
    enter :attr:`sha256`."""

    name: str
    prompts: tuple[str, ...]
    source_format: str
    kind: str  # "harmful" | "benign"
    copyright: tuple[int, ...] = ()  # HarmBench copyright behaviours (judged by hashing there)
    system_turns: tuple[int, ...] = ()  # chat-style lines whose system turn was ignored

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a user must know about these prompts before trusting their verdicts (one line each)."""
        out = []
        if self.copyright:
            out.append(
                f"{self.name}: {_count(self.copyright, len(self))} are HarmBench copyright behaviours "
                f"(prompts {_positions(self.copyright)}); HarmBench judges them by hashing the completion "
                "against the original text, which the keyword judge and the classifier do not, so their "
                "verdicts are not HarmBench's copyright ASR (drop those rows to leave them out)."
            )
        if self.system_turns:
            out.append(
                f"{self.name}: {_count(self.system_turns, len(self))} carry a system turn, which is ignored "
                f"(prompts {_positions(self.system_turns)}); the evaluation's system prompt applies "
                "(--system-prompt / --system-prompt-text, or evaluation.system_prompts in a sweep spec)."
            )
        return tuple(out)

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
        return dataclasses.replace(self, prompts=self.prompts[:limit], copyright=_below(self.copyright, limit),
                                   system_turns=_below(self.system_turns, limit))

    def __len__(self) -> int:
        return len(self.prompts)


def _count(positions: tuple[int, ...], total: int) -> str:
    return f"{len(positions)} of {total} prompts"


def _positions(positions: tuple[int, ...], shown: int = 8) -> str:
    """1-based prompt numbers, the first ``shown`` of them."""
    text = ", ".join(str(i + 1) for i in positions[:shown])
    return text + (f", ... ({len(positions) - shown} more)" if len(positions) > shown else "")


def _below(positions: tuple[int, ...], limit: int) -> tuple[int, ...]:
    return tuple(i for i in positions if i < limit)


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


@dataclass
class _Parsed:
    """What a parser read: (location, prompt) pairs and the positions it flagged."""

    items: list[tuple[str, str]] = field(default_factory=list)
    copyright: list[int] = field(default_factory=list)
    system_turns: list[int] = field(default_factory=list)


def _harmbench_row(row: list[str], header: list[str], prompt: str, parsed: _Parsed) -> str:
    """The prompt of a HarmBench row as HarmBench's DirectRequest forms it; flags copyright rows."""
    cell = {name: row[i] if i < len(row) else "" for i, name in enumerate(header)}
    tags = {t.strip() for t in cell.get("Tags", "").split(",")}
    if cell.get("FunctionalCategory", "").strip() == "copyright" or "hash_check" in tags:
        parsed.copyright.append(len(parsed.items))
    context = cell.get("ContextString", "")
    return f"{context}\n\n---\n\n{prompt}" if context.strip() else prompt


def _parse_csv(where: str, text: str, fmt: str, column: str | None) -> tuple[str, _Parsed]:
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
    harmbench = column == "Behavior" and "ContextString" in header
    parsed = _Parsed()
    try:
        for row_no, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue  # blank line
            loc = f"row {row_no} (line {reader.line_num})"
            prompt = row[idx] if idx < len(row) else ""
            if harmbench and prompt.strip():
                prompt = _harmbench_row(row, header, prompt, parsed)
            parsed.items.append((loc, prompt))
    except csv.Error as exc:
        raise PromptFileError(f"{where}: line {reader.line_num} is not valid CSV ({exc}).") from None
    return fmt, parsed


def _user_turn(where: str, loc: str, messages: list[object], parsed: _Parsed) -> str:
    """The content of the one user turn of a chat-style ``messages`` list (see the module docstring)."""
    roles, contents = [], []
    for i, turn in enumerate(messages):
        if not isinstance(turn, dict) or turn.get("role") not in _ROLES or not isinstance(turn.get("content"), str):
            raise PromptFileError(
                f"{where}: {loc} messages[{i}] must be {{\"role\": \"system\"|\"user\"|\"assistant\", "
                '"content": "<text>"}.'
            )
        roles.append(str(turn["role"]))
        contents.append(str(turn["content"]))
    if "user" not in roles:
        raise PromptFileError(f"{where}: {loc} has no user turn in its messages; give one.")
    last = len(roles) - 1 - roles[::-1].index("user")
    if any(role != "system" for role in roles[:last]) or any(role != "assistant" for role in roles[last + 1:]):
        raise PromptFileError(
            f"{where}: {loc} is a multi-turn conversation (roles {', '.join(roles)}); the evaluation takes "
            "one user turn (optionally after a system turn, optionally followed by assistant turns). "
            "Write the earlier turns into the prompt, or leave the line out."
        )
    if last > 0:
        parsed.system_turns.append(len(parsed.items))
    return contents[last]


def _parse_jsonl(where: str, text: str, column: str | None) -> _Parsed:
    fields = (column,) if column is not None else _JSONL_FIELDS
    parsed = _Parsed()
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
            name = next((f for f in fields if f in value), None)
            if name is None:
                wanted = f"{column!r} field" if column else "'prompt' or 'goal' field, nor a chat-style 'messages' list"
                raise PromptFileError(f"{where}: {loc} has no {wanted}; found fields: {', '.join(value) or '(none)'}.")
            value = value[name]
            if isinstance(value, list):
                value = _user_turn(where, loc, value, parsed)
        if not isinstance(value, str):
            raise PromptFileError(
                f"{where}: {loc} is not a string prompt (got {type(value).__name__}); "
                'write {"prompt": "..."}, {"messages": [{"role": "user", "content": "..."}]} or a JSON string.'
            )
        parsed.items.append((loc, value))
    return parsed


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
        parsed = _Parsed(_text_lines(text))
    elif fmt == "jsonl":
        parsed = _parse_jsonl(where, text, column)
    else:
        fmt, parsed = _parse_csv(where, text, fmt, column)
        what = "row"
    prompts = _finish(where, parsed.items, max_prompt_chars, what=what)
    return PromptSet(name=name or path.stem, prompts=prompts, source_format=fmt, kind=kind,
                     copyright=tuple(parsed.copyright), system_turns=tuple(parsed.system_turns))


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
