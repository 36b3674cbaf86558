"""Capability and fluency controls (docs/method.md section 6): MMLU-style questions and perplexity.

Torch-free. Owns the question files, the prompt format, and the maths on ``Score`` results:

  - :func:`load_mc_file` reads multiple-choice questions from MMLU's CSV (headerless
    ``question,A,B,C,D,answer-letter``, or the same with a ``question,A,B,C,D,answer`` header and
    an optional ``subject`` column) or from JSONL (``{"question", "choices", "answer", "subject"?}``).
  - :func:`mc_prompt` renders MMLU's few-shot format (the paper's control is 5-shot); the server
    is asked for the next-token logits of :func:`mc_candidates`. Two variants (``MC_FORMATS``):
    ``"harness"`` (the default, lm-evaluation-harness's: a header ending in ``"\n\n"`` and the
    letters ``" A"``, ``" B"``, ... with a leading space after the closing ``"Answer:"``) and
    ``"reference"`` (the authors' code: a header ending in a single ``"\n"`` and the letters
    ``"A"``, ``"B"``, ... without a space; the same tokens as harness's on SentencePiece
    vocabularies only). docs/method.md section 6.
  - :func:`mc_accuracy` takes the argmax of those logits (ties -> the lowest letter), in percent.
  - :func:`perplexity_items` / :func:`perplexity` score whole texts: each text is the continuation
    of an EMPTY context, so when the model's tokenizer has no BOS token the first token of each
    text is not scored (nothing predicts it) and ``num_tokens`` is one less than its length.
"""

from __future__ import annotations

import csv
import json
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MC_FORMATS",
    "MCQuestion",
    "load_mc_file",
    "mc_accuracy",
    "mc_candidates",
    "mc_prompt",
    "perplexity",
    "perplexity_items",
]

LETTERS = string.ascii_uppercase
#: The MMLU prompt variants: lm-evaluation-harness's (the default) and the reference code's.
MC_FORMATS = ("harness", "reference")
_MMLU_SPLIT_SUFFIXES = ("_test", "_dev", "_val")


@dataclass(frozen=True)
class MCQuestion:
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    subject: str = ""


def _check_format(mc_format: str) -> None:
    if mc_format not in MC_FORMATS:
        raise ValueError(f"unknown MMLU format {mc_format!r}; use one of {', '.join(MC_FORMATS)}")


def mc_candidates(num_choices: int = 4, *, mc_format: str = "harness") -> tuple[str, ...]:
    """The candidate strings for the next-token logits: ``(" A", " B", " C", " D")`` for 4 choices
    (``"reference"``: ``("A", "B", "C", "D")``, no leading space)."""
    _check_format(mc_format)
    space = " " if mc_format == "harness" else ""
    return tuple(space + LETTERS[i] for i in range(num_choices))


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def load_mc_file(path: str | Path) -> list[MCQuestion]:
    """Questions from a ``.csv`` (MMLU) or ``.jsonl`` file; ValueError naming the file and line.

    A headerless MMLU CSV named ``<subject>_test.csv`` (or ``_dev``/``_val``) gets that subject.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give the path of a .csv or .jsonl question file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        questions = _load_csv(path)
    elif suffix in (".jsonl", ".json"):
        questions = _load_jsonl(path)
    else:
        raise ValueError(f"{path}: unknown question file type {path.suffix!r}; use .csv (MMLU) or .jsonl")
    if not questions:
        raise ValueError(f"{path}: no questions in the file; add at least one question")
    return questions


def _parse_answer(value: object, num_choices: int, where: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}: answer {value!r} is not a letter or an index; give e.g. \"B\" or 1")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS:
        index = LETTERS.index(value.strip().upper())
    else:
        raise ValueError(
            f"{where}: answer {value!r} is not a letter or an index; give a letter "
            f"{LETTERS[0]}..{LETTERS[num_choices - 1]} or a 0-based index"
        )
    if not 0 <= index < num_choices:
        raise ValueError(
            f"{where}: answer {value!r} is out of range for {num_choices} choices; give "
            f"{LETTERS[0]}..{LETTERS[num_choices - 1]} (or 0..{num_choices - 1})"
        )
    return index


def _default_subject(path: Path) -> str:
    stem = path.stem
    for suffix in _MMLU_SPLIT_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return ""


def _load_csv(path: Path) -> list[MCQuestion]:
    questions: list[MCQuestion] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None and not questions and row[0].strip().lower() == "question":
                header = [cell.strip().lower() for cell in row]
                missing = [c for c in ("question", "a", "b", "c", "d", "answer") if c not in header]
                if missing:
                    raise ValueError(
                        f"{where}: the header lacks {', '.join(missing)}; use question,A,B,C,D,answer"
                        " (optionally subject), or no header (MMLU: question,A,B,C,D,answer-letter)"
                    )
                continue
            if header is not None:
                if len(row) != len(header):
                    raise ValueError(
                        f"{where}: {len(row)} fields, the header has {len(header)}; quote fields that "
                        "contain commas"
                    )
                rec = dict(zip(header, row, strict=True))
                choices = tuple(rec[c] for c in ("a", "b", "c", "d"))
                questions.append(
                    MCQuestion(
                        question=rec["question"],
                        choices=choices,
                        answer=_parse_answer(rec["answer"], 4, where),
                        subject=rec.get("subject", "") or _default_subject(path),
                    )
                )
            else:
                if len(row) != 6:
                    raise ValueError(
                        f"{where}: {len(row)} fields, expected 6 (question,A,B,C,D,answer-letter as in "
                        "MMLU); quote fields that contain commas"
                    )
                questions.append(
                    MCQuestion(
                        question=row[0],
                        choices=tuple(row[1:5]),
                        answer=_parse_answer(row[5], 4, where),
                        subject=_default_subject(path),
                    )
                )
    return questions


def _load_jsonl(path: Path) -> list[MCQuestion]:
    questions: list[MCQuestion] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            where = f"{path}, line {lineno}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg}); write one JSON object per line") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object with question, choices, answer")
            missing = [k for k in ("question", "choices", "answer") if k not in rec]
            if missing:
                raise ValueError(
                    f"{where}: missing {', '.join(missing)}; each line needs "
                    '{"question": str, "choices": [str, ...], "answer": index or letter}'
                )
            question, choices = rec["question"], rec["choices"]
            if not isinstance(question, str):
                raise ValueError(f"{where}: question must be a string")
            if (
                not isinstance(choices, list)
                or not 2 <= len(choices) <= len(LETTERS)
                or not all(isinstance(c, str) for c in choices)
            ):
                raise ValueError(f"{where}: choices must be a list of 2 to {len(LETTERS)} strings")
            subject = rec.get("subject", "")
            if not isinstance(subject, str):
                raise ValueError(f"{where}: subject must be a string")
            questions.append(
                MCQuestion(
                    question=question,
                    choices=tuple(choices),
                    answer=_parse_answer(rec["answer"], len(choices), where),
                    subject=subject,
                )
            )
    return questions


# ---------------------------------------------------------------------------------------------
# Prompt and maths
# ---------------------------------------------------------------------------------------------


def _format_question(q: MCQuestion) -> str:
    lines = [q.question] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(q.choices)]
    return "\n".join(lines) + "\nAnswer:"


def mc_prompt(question: MCQuestion, *, shots: Sequence[MCQuestion] = (), subject: str = "",
              mc_format: str = "harness") -> str:
    """MMLU's prompt: a header, each shot with its answer, then ``question`` ending in ``"Answer:"``.

    ``subject`` (default: the question's own) is written with underscores as spaces; with no
    subject the header is ``"The following are multiple choice questions (with answers).\\n\\n"``.
    ``mc_format = "reference"`` ends the header in one ``"\\n"`` instead, as the authors' code.
    """
    _check_format(mc_format)
    subject = (subject or question.subject).replace("_", " ").strip()
    about = f" about {subject}" if subject else ""
    header_end = "\n\n" if mc_format == "harness" else "\n"
    parts = [f"The following are multiple choice questions (with answers){about}.{header_end}"]
    for shot in shots:
        parts.append(f"{_format_question(shot)} {LETTERS[shot.answer]}\n\n")
    parts.append(_format_question(question))
    return "".join(parts)


def mc_accuracy(questions: Sequence[MCQuestion], candidate_logits: Sequence[Sequence[float]]) -> float:
    """Percent of questions whose highest letter logit is the answer (ties -> the lowest index)."""
    if len(questions) != len(candidate_logits):
        raise ValueError(f"{len(questions)} questions but {len(candidate_logits)} rows of candidate logits")
    if not questions:
        raise ValueError("no questions; accuracy needs at least one")
    correct = 0
    for i, (q, logits) in enumerate(zip(questions, candidate_logits, strict=True)):
        if len(logits) != len(q.choices):
            raise ValueError(
                f"question {i}: {len(logits)} candidate logits for {len(q.choices)} choices; ask the "
                f"server for mc_candidates({len(q.choices)})"
            )
        best = max(range(len(logits)), key=lambda j: (logits[j], -j))
        correct += best == q.answer
    return 100.0 * correct / len(questions)


def perplexity(logprobs: Sequence[float], num_tokens: Sequence[int]) -> float:
    """``exp(-sum(logprob) / sum(num_tokens))`` over scored texts (natural-log logprobs)."""
    if len(logprobs) != len(num_tokens):
        raise ValueError(f"{len(logprobs)} logprobs but {len(num_tokens)} token counts")
    total = sum(num_tokens)
    if total <= 0:
        raise ValueError("no scored tokens; perplexity needs texts of at least two tokens (one without a BOS)")
    return math.exp(-sum(logprobs) / total)


def perplexity_items(texts: Sequence[str]) -> list[tuple[str, str]]:
    """``(context, continuation)`` items for perplexity: ``("", text)`` per text.

    Without a BOS token the first token of each text is not scored (see the module docstring).
    """
    for i, text in enumerate(texts):
        if not text:
            raise ValueError(f"texts[{i}] is empty; perplexity needs non-empty texts")
    return [("", text) for text in texts]
