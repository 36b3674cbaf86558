"""Answers given in a file (not in a store), judged through a server's Judge RPC: ``visage judge``.

:func:`read_given` reads rows of ``prompt`` and ``completion`` (optional ``system_prompt``: a preset
name or a text) from JSONL (one object a line) or CSV (a header naming the columns); every row is
checked before any call, and a bad one is an error naming its line. :func:`judge_given` judges them
in batches of the server's ``max_prompts_per_request`` and returns one :class:`GivenVerdict` a row:
the keyword refusal, the referee's coherence and figures, the outcome, and the classifier's verdict
when the classifier judge decides (``unsafe`` is None otherwise).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..client import Client
from ..errors import ValidationError
from ..verdicts import JudgedRow, JudgeRow, RefereeThresholds

__all__ = ["MAX_GIVEN_ROWS", "GivenVerdict", "judge_given", "read_given"]

#: The most rows one file may hold (each is judged; split a larger file).
MAX_GIVEN_ROWS = 100_000


@dataclass(frozen=True)
class GivenVerdict:
    """One row's verdicts (``index``: its position in the file, from 0)."""

    index: int
    refused: bool
    coherent: bool
    outcome: str
    unsafe: bool | None
    matched_keyword: str
    classifier_output: str
    nll: float
    scored_tokens: int
    repeated_ngram_fraction: float
    repeated_token_ngram_fraction: float
    longest_word_run: int
    longest_token_run: int
    failed: tuple[str, ...]

    @classmethod
    def of(cls, index: int, row: JudgedRow, classifier: bool) -> GivenVerdict:
        c = row.coherence
        return cls(index=index, refused=row.refused, coherent=c.coherent, outcome=row.outcome,
                   unsafe=row.unsafe if classifier else None, matched_keyword=row.matched_keyword,
                   classifier_output=row.classifier_output, nll=c.nll, scored_tokens=c.scored_tokens,
                   repeated_ngram_fraction=c.repeated_ngram_fraction,
                   repeated_token_ngram_fraction=c.repeated_token_ngram_fraction, longest_word_run=c.longest_word_run,
                   longest_token_run=c.longest_token_run, failed=c.failed)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"index": self.index, "refused": self.refused, "coherent": self.coherent,
                                  "outcome": self.outcome, "matched_keyword": self.matched_keyword, "nll": self.nll,
                                  "scored_tokens": self.scored_tokens,
                                  "repeated_ngram_fraction": self.repeated_ngram_fraction,
                                  "repeated_token_ngram_fraction": self.repeated_token_ngram_fraction,
                                  "longest_word_run": self.longest_word_run, "longest_token_run": self.longest_token_run,
                                  "failed": list(self.failed)}
        if self.unsafe is not None:
            out.update(unsafe=self.unsafe, classifier_output=self.classifier_output)
        return out


def _row(data: object, where: str, chat: str) -> JudgeRow:
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: not an object with prompt and completion")
    prompt, completion, system = data.get("prompt"), data.get("completion"), data.get("system_prompt")
    if not isinstance(prompt, str) or not prompt:
        raise ValidationError(f"{where}: prompt must be a non-empty text")
    if not isinstance(completion, str):
        raise ValidationError(f"{where}: completion must be a text (it may be empty)")
    if system is not None and not isinstance(system, str):
        raise ValidationError(f"{where}: system_prompt must be a text (a preset name or the prompt itself)")
    return JudgeRow(completion, prompt=prompt, system=system or None, chat=chat)


def read_given(path: str | Path, *, chat: str = "tokenizer", system: str | None = None) -> list[JudgeRow]:
    """The rows of a JSONL or CSV file (by its suffix; ``.csv`` is CSV, anything else JSONL). ``system``:
    the system prompt of rows that name none (None: the server's default preset)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path} ({exc})") from None
    rows: list[JudgeRow] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"prompt", "completion"} <= set(reader.fieldnames):
            raise ValidationError(f"{path}: the CSV header must name the columns prompt and completion, got "
                                  f"{reader.fieldnames}")
        for number, record in enumerate(reader, 2):
            rows.append(_row({k: v for k, v in record.items() if v is not None and (k != "system_prompt" or v)},
                             f"{path}:{number}", chat))
            if len(rows) > MAX_GIVEN_ROWS:
                break
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ValidationError(f"{path}:{number}: not a JSON object ({exc})") from None
            rows.append(_row(data, f"{path}:{number}", chat))
            if len(rows) > MAX_GIVEN_ROWS:
                break
    if not rows:
        raise ValidationError(f"{path} holds no rows to judge")
    if len(rows) > MAX_GIVEN_ROWS:
        raise ValidationError(f"{path} holds more than {MAX_GIVEN_ROWS} rows: split it")
    if system is not None:
        rows = [r if r.system is not None else JudgeRow(r.completion, prompt=r.prompt, system=system, chat=r.chat)
                for r in rows]
    return rows


def judge_given(
    client: Client, rows: Sequence[JudgeRow], *, judge: str = "keyword", keywords: Sequence[str] = (),
    max_new_tokens: int = 0, progress: Callable[[int, int], None] | None = None,
) -> tuple[list[GivenVerdict], str, RefereeThresholds]:
    """Every row judged (in batches the server accepts): the verdicts in row order, the deciding judge's
    name and the referee's thresholds, one calibration for all rows. ``max_new_tokens``: the answers'
    generation length, which picks the calibration; 0: the first batch's longest completion picks it,
    and later batches are judged with the same calibration."""
    size = max(1, client.info().limits.max_prompts_per_request)
    out: list[GivenVerdict] = []
    name, thresholds = "", None
    for start in range(0, len(rows), size):
        length = max_new_tokens or (thresholds.calibration_max_new_tokens if thresholds is not None else 0)
        result = client.judge(rows[start:start + size], judge=judge, keywords=keywords, max_new_tokens=length)
        if thresholds is not None and (result.thresholds.id != thresholds.id or result.judge != name):
            raise ValidationError(f"the server's judge changed between batches ({name}, {thresholds.id} -> {result.judge}, "
                                  f"{result.thresholds.id}): judge the file again")
        name, thresholds = result.judge, result.thresholds
        out.extend(GivenVerdict.of(start + row.index, row, judge == "classifier") for row in result.rows)
        if progress is not None:
            progress(len(out), len(rows))
    assert thresholds is not None
    return out, name, thresholds
