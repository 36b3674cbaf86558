"""The answers a store keeps, with everything needed to judge them again exactly as they were given.

A :class:`StoredAnswer` is one prompt's completion at one point of an ``asr`` sweep: the completion's
text, the prompt (its text when the client sent it inline, else its set's name, index and content
hash), the system prompt and chat format it was answered under, the generation length (it picks the
referee's calibration), the model it was measured on and the verdict the sweep's judge gave at
generation time (with the refusal keywords the sweep named; empty: the paper's), and its outcome
when the server's coherence referee judged it then ("" otherwise). Answers stored
without their text (stores older than completions) cannot be judged again; :func:`stored_answers`
counts them instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import StoreError
from ..store import ResultStore
from ..sweep_meta import RecordedEvaluation, SweepMeta

__all__ = ["AnswerSet", "StoredAnswer", "stored_answers"]

#: The metric whose points hold answers to harmful prompts (the landscape's ASR).
ASR_METRIC = "asr"


@dataclass(frozen=True)
class StoredAnswer:
    """One stored completion and the context it was generated in (see the module docstring).
    ``prompt_set``: (name, sha256, size) of the prompts the sweep took from a server's set (its first
    ``size``, the content hash of those) when ``prompt`` is None; ``prompt_tokens`` the prompt's length
    as the model saw it at generation time (None when not recorded)."""

    key: str
    sweep: str
    series: str
    coords: tuple[float, ...]
    prompt_index: int
    completion: str
    prompt: str | None
    prompt_set: tuple[str, str, int] | None
    system: str | None
    chat: str
    max_new_tokens: int
    model_fingerprint: str
    jailbroken: bool
    judge: str
    keywords: tuple[str, ...] = ()
    prompt_tokens: int | None = None
    outcome: str = ""

    @property
    def completion_sha256(self) -> str:
        return hashlib.sha256(self.completion.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AnswerSet:
    """The answers of the selected points (by series, coordinates, prompt index), and how many
    stored verdicts had no text to judge."""

    answers: tuple[StoredAnswer, ...]
    without_text: int

    @property
    def points(self) -> dict[str, list[StoredAnswer]]:
        """The answers by point key (in the order of ``answers``)."""
        out: dict[str, list[StoredAnswer]] = {}
        for a in self.answers:
            out.setdefault(a.key, []).append(a)
        return out


def _generation(meta: SweepMeta | None, sweep: str, path: object) -> RecordedEvaluation:
    """How a sweep's answers were generated and judged (chat format, max_new_tokens, keywords), from its spec."""
    if meta is None or "max_new_tokens" not in meta.spec.data:
        raise StoreError(f"{path}: sweep {sweep!r} has no recorded spec, so how its answers were generated (chat "
                         "format, max_new_tokens) is unknown; it cannot be judged again")
    return meta.spec.evaluation


def stored_answers(store: ResultStore, sweep: str | None = None) -> AnswerSet:
    """Every answer of the ``asr`` points of ``sweep`` (of every sweep when None) that has its text."""
    answers: list[StoredAnswer] = []
    without_text = 0
    generation: dict[str, RecordedEvaluation] = {}
    for record in store.records(sweep, metric=ASR_METRIC):
        if record.sweep not in generation:
            generation[record.sweep] = _generation(store.sweep_meta(record.sweep), record.sweep, store.path)
        evaluation = generation[record.sweep]
        detail = record.detail
        for c in store.completions(record.key):
            if c.text is None:
                without_text += 1
                continue
            prompt_set = None
            if c.prompt is None:
                if not detail.prompt_set_name or not detail.prompt_set_sha256:
                    raise StoreError(f"{store.path}: point {record.key[:12]} keeps neither its prompts' text nor the "
                                     "prompt set they came from; its answers cannot be judged again")
                prompt_set = (detail.prompt_set_name, detail.prompt_set_sha256, int(detail.prompt_set_size or 0))
            answers.append(StoredAnswer(
                key=record.key, sweep=record.sweep, series=record.series, coords=record.coords, prompt_index=c.index,
                completion=c.text, prompt=c.prompt, prompt_set=prompt_set, system=detail.system_prompt,
                chat=evaluation.chat_format, max_new_tokens=evaluation.max_new_tokens,
                model_fingerprint=record.model.fingerprint if record.model is not None else "", jailbroken=c.jailbroken,
                judge=detail.judge or "keyword", keywords=evaluation.keywords, prompt_tokens=c.prompt_tokens,
                outcome=c.outcome))
    return AnswerSet(tuple(answers), without_text)
