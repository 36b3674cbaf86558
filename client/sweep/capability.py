"""A sweep's capability controls (docs/method.md section 6): inputs, their key, and one score.

- :func:`load_capability` reads what ``spec.capability`` names, on the client and before any
  RPC: an MMLU-style question file (:func:`~safety_landscape.client.capability.load_mc_file`;
  the first ``shots`` questions are the few-shot examples and are NOT scored, then at most
  ``limit`` are), and/or the perplexity texts (a file of one text per line, a JSONL file with a
  ``"text"`` field, or the built-in fluency set ``data/fluency.txt``).
- Each becomes a :class:`CapabilityMetric` (``"accuracy"`` or ``"perplexity"``) with ``desc``:
  the JSON-able part of the point keys (content hashes of the questions/shots/texts, never a
  path), so a renamed file reuses results and an edited one does not.
- :meth:`CapabilityMetric.score` measures one weight state through the ``Score`` RPC
  (:mod:`~safety_landscape.client.capability_eval`). The worker pool calls it on the server
  that has just evaluated the point's safety, so the weights are already in place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safety_landscape.v1 import landscape_pb2 as pb

from ..capability import MCQuestion, load_mc_file
from ..capability_eval import mc_accuracy_at, perplexity_at
from ..client import Client
from ..errors import ValidationError
from .spec import Capability

__all__ = ["FLUENCY_FILE", "CapabilityMetric", "fluency_texts", "load_capability", "read_texts"]

#: The built-in fluency texts (20 short benign sentences; package data).
FLUENCY_FILE = Path(__file__).resolve().parent / "data" / "fluency.txt"


# The accuracy rule of each MMLU variant, as written into the point keys.
_MC_RULES = {
    "harness": "argmax next-token logits of ' A'..; ties -> lowest letter",
    "reference": "argmax next-token logits of 'A'.. (no space) after a header ending in one newline; ties -> lowest letter",
}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def read_texts(path: str | Path) -> list[str]:
    """Texts for perplexity: ``.jsonl`` -> each line's ``"text"``; anything else -> one text per
    line. Blank lines are skipped; ValidationError naming the file and line otherwise."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot read the perplexity texts ({exc})") from None
    texts = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".jsonl":
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}, line {lineno}: not valid JSON ({exc.msg}); one object per line") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or not rec["text"]:
                raise ValidationError(f'{path}, line {lineno}: needs a non-empty "text" string')
            texts.append(rec["text"])
        else:
            texts.append(line)
    if not texts:
        raise ValidationError(f"{path}: no texts; give one text per line (or JSONL with a \"text\" field)")
    return texts


def fluency_texts() -> list[str]:
    """The built-in fluency set."""
    return read_texts(FLUENCY_FILE)


def _question(q: MCQuestion) -> list[Any]:
    return [q.question, list(q.choices), q.answer, q.subject]


@dataclass(frozen=True)
class CapabilityMetric:
    """One capability metric of a sweep: what to score, and its key description."""

    metric: str  # "accuracy" | "perplexity"
    desc: dict[str, Any]
    texts: tuple[str, ...] = ()
    questions: tuple[MCQuestion, ...] = ()
    shots: tuple[MCQuestion, ...] = ()
    mc_format: str = "harness"

    @property
    def total(self) -> int:
        return len(self.questions) if self.metric == "accuracy" else len(self.texts)

    def score(self, client: Client, at: pb.Perturbation) -> float:
        """Accuracy (%) or perplexity of the model at ``at`` on ``client``'s server."""
        if self.metric == "accuracy":
            return mc_accuracy_at(client, self.questions, self.shots, at, mc_format=self.mc_format)
        return perplexity_at(client, self.texts, at)


def load_capability(cap: Capability | None) -> list[CapabilityMetric]:
    """The metrics ``cap`` asks for (accuracy first), inputs read and checked here."""
    if cap is None:
        return []
    out = []
    if cap.mc_file:
        try:
            questions = load_mc_file(cap.mc_file)
        except ValueError as exc:
            raise ValidationError(f"capability.mc_file: {exc}") from None
        if cap.shots >= len(questions):
            raise ValidationError(f"capability.shots: {cap.shots} shots leave none of the {len(questions)} questions "
                                  f"of {cap.mc_file} to score; use fewer shots or more questions")
        shots, scored = questions[: cap.shots], questions[cap.shots:]
        if cap.limit:
            scored = scored[: cap.limit]
        desc = {"metric": "accuracy", "rule": _MC_RULES[cap.mc_format],
                "questions_sha256": _sha([_question(q) for q in scored]), "questions": len(scored),
                "shots_sha256": _sha([_question(q) for q in shots]), "shots": len(shots)}
        if cap.mc_format != "harness":  # the harness variant's keys stay as they were before the choice existed
            desc["format"] = cap.mc_format
        out.append(CapabilityMetric("accuracy", desc, questions=tuple(scored), shots=tuple(shots),
                                    mc_format=cap.mc_format))
    if cap.perplexity_file or cap.fluency:
        texts = fluency_texts() if cap.fluency else read_texts(cap.perplexity_file)
        desc = {"metric": "perplexity", "rule": "exp(-sum logprob / sum tokens), each text after an empty context",
                "texts_sha256": _sha(texts), "texts": len(texts)}
        out.append(CapabilityMetric("perplexity", desc, texts=tuple(texts)))
    return out
