"""Human labels of stored answers, read from a JSONL file, to compare judges against.

One JSON object a line, naming the answer and its label:

- the answer: ``"key"`` (or ``"point"``: a point key, or a unique prefix of at least 8 hex digits) and
  ``"prompt_index"``; or ``"prompt"`` and ``"completion"`` (the texts: every stored answer with that
  completion to that prompt gets the label; an answer whose prompt came from a server's set, so the
  store keeps no prompt text, is matched by the completion and ``"prompt_index"``, which the row must
  then give).
- ``"label"``: an outcome, ``"refused"``, ``"complied"`` or ``"incoherent"``; or ``"unsafe"`` /
  ``"safe"``; or ``true`` / ``false``. Success (the attack worked) is ``complied``, ``unsafe`` or ``true``.

A malformed line, an unknown label, an ambiguous key prefix, or two lines giving one answer
different labels is a :class:`~safety_landscape.client.errors.ValidationError` naming the line. Rows
that name no stored answer are counted, not dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ValidationError
from .answers import StoredAnswer

__all__ = ["HumanLabels", "Label", "read_labels"]

_SUCCESS = {"complied": True, "refused": False, "incoherent": False, "unsafe": True, "safe": False}
_OUTCOMES = ("refused", "complied", "incoherent")


@dataclass(frozen=True)
class Label:
    """One answer's human label: ``success`` (the attack worked) and, when the label is an outcome, ``outcome``."""

    success: bool
    outcome: str | None


@dataclass(frozen=True)
class HumanLabels:
    """The labels by (point key, prompt index), and how many file rows matched no stored answer."""

    labels: dict[tuple[str, int], Label]
    unmatched_rows: int
    rows: int


def _label(value: object, where: str) -> Label:
    if isinstance(value, bool):
        return Label(value, None)
    if isinstance(value, str) and value.strip().lower() in _SUCCESS:
        name = value.strip().lower()
        return Label(_SUCCESS[name], name if name in _OUTCOMES else None)
    raise ValidationError(f"{where}: label {value!r} is none of refused, complied, incoherent, unsafe, safe, true, false")


def _index(row: dict[str, object], where: str) -> int | None:
    value = row.get("prompt_index")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(f"{where}: prompt_index must be an integer >= 0, got {value!r}")
    return value


def _by_key(row: dict[str, object], keys: Sequence[str], where: str) -> str:
    given = row.get("key", row.get("point"))
    if not isinstance(given, str) or len(given) < 8:
        raise ValidationError(f"{where}: key must be a point key (or a prefix of at least 8 hex digits), got {given!r}")
    found = [k for k in keys if k.startswith(given)]
    if len(found) > 1:
        raise ValidationError(f"{where}: key prefix {given!r} names {len(found)} points; give more of it")
    return found[0] if found else ""


def _matches(row: dict[str, object], answers: Sequence[StoredAnswer], keys: Sequence[str], where: str) -> list[tuple[str, int]]:
    index = _index(row, where)
    if "key" in row or "point" in row:
        if index is None:
            raise ValidationError(f"{where}: a row naming a point key needs its prompt_index")
        key = _by_key(row, keys, where)
        return [(a.key, a.prompt_index) for a in answers if a.key == key and a.prompt_index == index]
    prompt, completion = row.get("prompt"), row.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise ValidationError(f"{where}: name the answer by key and prompt_index, or by prompt and completion (texts)")
    def same(a: StoredAnswer) -> bool:
        if a.completion != completion:
            return False
        if a.prompt is None:  # a server set's prompt: its text is not in the store
            return index == a.prompt_index
        return a.prompt == prompt and index in (None, a.prompt_index)

    return [(a.key, a.prompt_index) for a in answers if same(a)]


def read_labels(path: str | Path, answers: Sequence[StoredAnswer]) -> HumanLabels:
    """The labels of ``path`` matched to ``answers`` (see the module docstring)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read the labels file {path} ({exc})") from None
    keys = sorted({a.key for a in answers})
    labels: dict[tuple[str, int], Label] = {}
    origin: dict[tuple[str, int], int] = {}
    unmatched = rows = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValidationError(f"{where}: not a JSON object ({exc})") from None
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: not a JSON object")
        rows += 1
        label = _label(row.get("label"), where)
        matched = _matches(row, answers, keys, where)
        if not matched:
            unmatched += 1
        for answer in matched:
            if answer in labels and labels[answer] != label:
                raise ValidationError(f"{where}: labels point {answer[0][:12]} prompt {answer[1]} differently from line "
                                      f"{origin[answer]}")
            labels[answer], origin[answer] = label, number
    if not rows:
        raise ValidationError(f"the labels file {path} has no rows")
    return HumanLabels(labels, unmatched, rows)
