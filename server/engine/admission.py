"""Admission: the checks a request passes on its own thread, before it queues for the device.

Owns every per-request bound (docs/operations.md, "Limits"), each checked before the work it
guards and refused with INVALID_ARGUMENT naming the setting and the value, never echoing more
than the setting allows: counts (prompts, points, Score items and candidates, keywords, terms,
patterns), sizes (characters per text BEFORE tokenising, then tokens; keyword bytes; characters
per id or name), the reference stream's draw index, and the sampling settings. It also resolves
the prompts a request names (inline or a registered set, with its ``limit``), encodes them under
the chat format (a prompt over ``max_prompt_tokens`` is refused here, not after waiting in the
queue), and turns the encoded lengths into rows per batch that fit the job's memory
(``job_memory.py``), or a RESOURCE_EXHAUSTED refusal. ``TermRequest``, one term of a requested
perturbation, is defined here, where its bounds are checked; the engine and the host import it.

Any gRPC thread may call it: it encodes with its own copy of the tokenizer behind a lock (an HF
fast tokenizer must not be used by two threads at once, and the worker's copy is busy
generating), taken per prompt so one large request never holds other callers' admission for
long; between prompts it checks ``should_cancel`` (the caller's deadline).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Limits
from ..errors import Cancelled, InvalidArgument
from .chat import ChatFormat
from .directions import AdapterSpec, DirectionSpec, InterpolationSpec, RandomSpec, Stream, direction_id
from .evaluation import EvalSettings, PromptEncoder
from .generation import GenerationParams
from .job_memory import JobMemory
from .judging import JudgeInput, JudgeRowRequest
from .prompts import PromptSet, PromptSetRegistry, inline_prompt_set
from .scoring import ScoreInput, candidate_token_ids, check_items, encode_item

__all__ = [
    "Admission", "AdmittedPrompts", "AdmittedScore", "TermRequest", "check_length", "check_pattern_count",
    "check_term_count", "system_prompt_sha256",
]

Cancel = Callable[[], bool]


def _never() -> bool:
    return False


def system_prompt_sha256(text: str | None, template_sha: str) -> str:
    """Names the system prompt a request ran under: its text, or the template's default (None)."""
    material = f"default:{template_sha}" if text is None else f"text:{text}"
    return hashlib.sha256(material.encode()).hexdigest()


def _check_count(count: int, limit: int, when_none: str, when_over: str) -> None:
    if not count:
        raise InvalidArgument(when_none)
    if count > limit:
        raise InvalidArgument(when_over)


def check_length(value: str, limit: int, what: str, setting: str) -> None:
    """InvalidArgument when ``value`` is longer than ``limit`` characters (the value is not echoed)."""
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters; the limit is {limit} ({setting})")


def check_term_count(count: int, limits: Limits) -> None:
    if count > limits.max_terms:
        raise InvalidArgument(f"the perturbation has {count} terms; the limit is {limits.max_terms} (max_terms)")


def check_pattern_count(count: int, index: int, limits: Limits) -> None:
    if count > limits.max_direction_patterns:
        raise InvalidArgument(
            f"term {index}'s direction has {count} include/exclude patterns; the limit is "
            f"{limits.max_direction_patterns} (max_direction_patterns)"
        )


@dataclass(frozen=True)
class TermRequest:
    """One term of a requested perturbation: a held direction's id, or its spec."""

    coefficient: float
    direction_id: str = ""
    spec: DirectionSpec | None = None

    @property
    def key(self) -> str:
        return direction_id(self.spec) if self.spec is not None else self.direction_id


@dataclass(frozen=True)
class AdmittedPrompts:
    encoded: list[list[int]]
    rows: int  # sequences per batch that fit the memory budget


@dataclass(frozen=True)
class AdmittedScore:
    prepared: ScoreInput
    rows: int  # items per batch that fit the memory budget


class Admission:
    def __init__(
        self, tokenizer: Any, limits: Limits, prompt_sets: PromptSetRegistry, memory: JobMemory | None = None
    ) -> None:
        self.limits = limits
        self.prompt_sets = prompt_sets
        self.memory = memory
        self._tokenizer = copy.deepcopy(tokenizer)
        self._encoder = PromptEncoder(self._tokenizer, limits.max_prompt_tokens)
        self._lock = threading.Lock()

    # -- counts, sizes and settings -----------------------------------------------------------

    def check_prompt_count(self, count: int) -> None:
        limit = self.limits.max_prompts_per_request
        _check_count(
            count, limit, "no prompts: send at least one prompt",
            f"{count} prompts; the limit is {limit} per request (max_prompts_per_request): split them over several requests",
        )

    def check_points(self, count: int) -> None:
        limit = self.limits.max_points_per_request
        _check_count(
            count, limit, "no points: send at least one perturbation in points",
            f"{count} points; the limit is {limit} per call (max_points_per_request): split them",
        )

    def check_score_items(self, count: int) -> None:
        limit = self.limits.max_prompts_per_request
        _check_count(
            count, limit, "no items to score: send at least one (context, continuation)",
            f"{count} items; the limit is {limit} (max_prompts_per_request)",
        )

    def check_text(self, text: str, what: str) -> None:
        check_length(text, self.limits.max_text_chars, what, "max_text_chars")

    def check_name(self, name: str, what: str) -> None:
        check_length(name, self.limits.max_name_chars, what, "max_name_chars")

    def check_generation(self, params: GenerationParams) -> None:
        if not 1 <= params.max_new_tokens <= self.limits.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens is {params.max_new_tokens}; it must be between 1 and "
                f"{self.limits.max_new_tokens} (max_new_tokens limit)"
            )
        if params.do_sample and not (params.temperature > 0 and 0 < params.top_p <= 1):
            raise InvalidArgument("sampling needs temperature > 0 and 0 < top_p <= 1")

    def check_keywords(self, keywords: Sequence[str]) -> None:
        limits = self.limits
        if len(keywords) > limits.max_keywords:
            raise InvalidArgument(
                f"judge.keyword.keywords has {len(keywords)} keywords; the limit is {limits.max_keywords} (max_keywords)"
            )
        size = sum(len(k.encode("utf-8", "surrogatepass")) for k in keywords)
        if size > limits.max_keyword_bytes:
            raise InvalidArgument(
                f"judge.keyword.keywords is {size} bytes; the limit is {limits.max_keyword_bytes} (max_keyword_bytes)"
            )
        if any(not k for k in keywords):
            raise InvalidArgument("judge.keyword.keywords contains an empty string; remove it")

    def check_terms(self, terms: Sequence[TermRequest]) -> None:
        """A perturbation's bounds: terms, id lengths, and each spec's names, patterns and draw index."""
        check_term_count(len(terms), self.limits)
        for i, term in enumerate(terms):
            self.check_name(term.direction_id, f"term {i}'s direction_id")
            spec = term.spec
            if isinstance(spec, RandomSpec):
                self._check_random(i, spec)
            elif isinstance(spec, InterpolationSpec):
                self.check_name(spec.target, f"term {i}'s interpolation target")
            elif isinstance(spec, AdapterSpec):
                self.check_name(spec.adapter, f"term {i}'s adapter")

    def _check_random(self, i: int, spec: RandomSpec) -> None:
        limits = self.limits
        check_pattern_count(len(spec.include) + len(spec.exclude), i, limits)
        for pattern in (*spec.include, *spec.exclude):
            self.check_name(pattern, f"a pattern of term {i}'s direction")
        if spec.stream is Stream.REFERENCE and spec.index > limits.max_reference_index:
            raise InvalidArgument(
                f"term {i}'s direction draws index {spec.index} of the reference stream; the limit is "
                f"{limits.max_reference_index} (max_reference_index): drawing costs one model-sized draw per index"
            )

    # -- prompts ------------------------------------------------------------------------------

    def prompt_set(self, *, inline: Sequence[str] | None = None, set_name: str = "", limit: int = 0) -> PromptSet:
        """The prompts a request names: ``inline`` ones, else the registered set ``set_name``;
        the first ``limit`` of them (0: all)."""
        if inline is not None:
            self.check_prompt_count(len(inline))
            for i, prompt in enumerate(inline):
                self.check_text(prompt, f"prompt {i}")
            prompt_set = inline_prompt_set(list(inline))
        else:
            self.check_name(set_name, "prompts.set_name")
            prompt_set = self.prompt_sets.get(set_name)
        if limit < 0:
            raise InvalidArgument(f"prompts.limit is {limit}; use 0 (all) or a positive count")
        prompt_set = prompt_set.head(limit)
        self.check_prompt_count(len(prompt_set.prompts))
        return prompt_set

    def encode(
        self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat, *, should_cancel: Cancel = _never
    ) -> list[list[int]]:
        """InvalidArgument for a prompt over ``max_text_chars`` (checked first) or ``max_prompt_tokens``,
        or empty after tokenisation."""
        if system_prompt is not None:
            self.check_text(system_prompt, "the system prompt")
        for i, prompt in enumerate(prompts):
            self.check_text(prompt, f"prompt {i}")
        encoded = []
        for i, prompt in enumerate(prompts):
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed while its prompts were encoded")
            with self._lock:
                encoded.append(self._encoder.encode_one(i, prompt, system_prompt, chat_format))
        return encoded

    def generation(
        self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat, params: GenerationParams,
        *, should_cancel: Cancel = _never,
    ) -> AdmittedPrompts:
        """A ``Generate`` request's checks; its prompts encoded, and the rows per batch that fit."""
        self.check_prompt_count(len(prompts))
        self.check_generation(params)
        encoded = self.encode(prompts, system_prompt, chat_format, should_cancel=should_cancel)
        return AdmittedPrompts(encoded, self._generation_rows(encoded, params))

    def evaluation(self, settings: EvalSettings, *, should_cancel: Cancel = _never) -> EvalSettings:
        """An evaluation's checks; the settings with their prompts encoded and their rows per batch."""
        self.check_keywords(settings.keywords)
        self.check_name(settings.classifier_name, "judge.classifier.name")
        self.check_name(settings.classifier_fingerprint, "judge.classifier.fingerprint")
        self.check_generation(settings.params)
        encoded = self.encode(settings.prompt_set.prompts, settings.system_prompt, settings.chat_format,
                              should_cancel=should_cancel)
        return dataclasses.replace(settings, encoded=tuple(tuple(ids) for ids in encoded),
                                   batch_rows=self._generation_rows(encoded, settings.params))

    def _generation_rows(self, encoded: Sequence[Sequence[int]], params: GenerationParams) -> int:
        if self.memory is None:
            return self.limits.max_batch_size
        return self.memory.generation_rows(max(len(ids) for ids in encoded), params.max_new_tokens)

    # -- scoring ------------------------------------------------------------------------------

    def score(
        self, items: Sequence[tuple[str, str]], candidates: Sequence[str], *, should_cancel: Cancel = _never
    ) -> AdmittedScore:
        """A ``Score`` request's checks (characters, then tokens per item; candidates), encoded."""
        limits = self.limits
        self.check_score_items(len(items))
        if len(candidates) > limits.max_score_candidates:
            raise InvalidArgument(
                f"{len(candidates)} next_token_candidates; the limit is {limits.max_score_candidates} (max_score_candidates)"
            )
        for i, candidate in enumerate(candidates):
            self.check_name(candidate, f"next_token_candidates[{i}]")
        check_items(items)
        encoded = []
        for i, (context, continuation) in enumerate(items):
            self.check_text(context, f"items[{i}].context")
            self.check_text(continuation, f"items[{i}].continuation")
        for i, (context, continuation) in enumerate(items):
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed while its items were encoded")
            with self._lock:
                item = encode_item(self._tokenizer, context, continuation)
            if len(item.ids) > limits.max_score_tokens:
                raise InvalidArgument(
                    f"items[{i}] is {len(item.ids)} tokens; the limit is {limits.max_score_tokens} (max_score_tokens)"
                )
            encoded.append(item)
        with self._lock:
            prepared = ScoreInput.of(encoded, candidate_token_ids(self._tokenizer, candidates))
        rows = self.memory.score_rows(prepared.longest) if self.memory is not None else limits.max_batch_size
        return AdmittedScore(prepared, rows)

    # -- judging given answers ------------------------------------------------------------------

    def judge(
        self, rows: Sequence[JudgeRowRequest], *, judge: str, keywords: Sequence[str], classifier_name: str,
        max_new_tokens: int, classifier_fingerprint: str = "", should_cancel: Cancel = _never,
    ) -> JudgeInput:
        """A ``Judge`` request's checks (counts and sizes first, then prompts and tokens), encoded."""
        limits = self.limits
        _check_count(
            len(rows), limits.max_prompts_per_request, "no rows: send at least one (prompt, completion) row to judge",
            f"{len(rows)} rows; the limit is {limits.max_prompts_per_request} per request (max_prompts_per_request): "
            "split them over several requests",
        )
        self.check_keywords(keywords)
        self.check_name(classifier_name, "judge.classifier.name")
        self.check_name(classifier_fingerprint, "judge.classifier.fingerprint")
        if not 0 <= max_new_tokens <= limits.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens is {max_new_tokens}; it must be between 0 (the longest completion's tokens) and "
                f"{limits.max_new_tokens} (max_new_tokens limit)"
            )
        for i, row in enumerate(rows):
            self.check_text(row.completion, f"rows[{i}].completion")
            if row.prompt_text is not None:
                self.check_text(row.prompt_text, f"rows[{i}].prompt_text")
            else:
                self.check_name(row.set_name, f"rows[{i}].prompt_ref.set_name")
            if row.system_prompt is not None:
                self.check_text(row.system_prompt, f"rows[{i}].system_prompt")
        prompts = [self._row_prompt(i, row) for i, row in enumerate(rows)]
        prompt_ids, completion_tokens = [], []
        for i, (row, prompt) in enumerate(zip(rows, prompts, strict=True)):
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed while its rows were encoded")
            with self._lock:
                ids = self._encoder.encode_one(i, prompt, row.system_prompt, row.chat_format)
                answer = len(self._tokenizer.encode(row.completion, add_special_tokens=False)) if row.completion else 0
            if answer > limits.max_new_tokens:
                raise InvalidArgument(
                    f"rows[{i}].completion is {answer} tokens; the limit is {limits.max_new_tokens} (max_new_tokens)"
                )
            prompt_ids.append(tuple(ids))
            completion_tokens.append(answer)
        if self.memory is not None:  # RESOURCE_EXHAUSTED when one row's scoring does not fit the budget
            self.memory.score_rows(max(len(p) + c for p, c in zip(prompt_ids, completion_tokens, strict=True)))
        return JudgeInput(
            prompts=tuple(prompts), prompt_ids=tuple(prompt_ids), completions=tuple(row.completion for row in rows),
            completion_tokens=tuple(completion_tokens), max_new_tokens=max_new_tokens or max(1, *completion_tokens),
            judge=judge, keywords=tuple(keywords), classifier_name=classifier_name,
            classifier_fingerprint=classifier_fingerprint,
        )

    def _row_prompt(self, i: int, row: JudgeRowRequest) -> str:
        if row.prompt_text is not None:
            return row.prompt_text
        prompts = self.prompt_sets.get(row.set_name).prompts  # NotFound names the set
        if not 0 <= row.set_index < len(prompts):
            raise InvalidArgument(
                f"rows[{i}].prompt_ref.index is {row.set_index}; set {row.set_name!r} has prompts 0..{len(prompts) - 1}"
            )
        return prompts[row.set_index]
