"""Admission: the checks a request passes on its own thread, before it queues for the device.

Owns the per-request limits (prompts, points and scored items per request, ``max_new_tokens``,
the sampling settings), the keyword list's check, the prompts a request names (inline or a
registered set, with its ``limit``), and their encoding under the chat format: a prompt over
``max_prompt_tokens`` is refused here, not after waiting in the queue. Any gRPC thread may call
it: it encodes with its own copy of the tokenizer, behind a lock (an HF fast tokenizer must not be
used by two threads at once, and the worker's copy is busy generating).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections.abc import Sequence
from typing import Any

from ..config import Limits
from ..errors import InvalidArgument
from .chat import ChatFormat
from .evaluation import EvalSettings, PromptEncoder
from .generation import GenerationParams
from .prompts import PromptSet, PromptSetRegistry, inline_prompt_set

__all__ = ["Admission", "system_prompt_sha256"]


def system_prompt_sha256(text: str | None, template_sha: str) -> str:
    """Names the system prompt a request ran under: its text, or the template's default (None)."""
    material = f"default:{template_sha}" if text is None else f"text:{text}"
    return hashlib.sha256(material.encode()).hexdigest()


def _check_count(count: int, limit: int, when_none: str, when_over: str) -> None:
    if not count:
        raise InvalidArgument(when_none)
    if count > limit:
        raise InvalidArgument(when_over)


class Admission:
    def __init__(self, tokenizer: Any, limits: Limits, prompt_sets: PromptSetRegistry) -> None:
        self.limits = limits
        self.prompt_sets = prompt_sets
        self._encoder = PromptEncoder(copy.deepcopy(tokenizer), limits.max_prompt_tokens)
        self._lock = threading.Lock()

    # -- counts and settings ------------------------------------------------------------------

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
            f"{count} points; the limit is {limit} per call: split them",
        )

    def check_score_items(self, count: int) -> None:
        limit = self.limits.max_prompts_per_request
        _check_count(
            count, limit, "no items to score: send at least one (context, continuation)",
            f"{count} items; the limit is {limit} (max_prompts_per_request)",
        )

    def check_generation(self, params: GenerationParams) -> None:
        if not 1 <= params.max_new_tokens <= self.limits.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens is {params.max_new_tokens}; it must be between 1 and "
                f"{self.limits.max_new_tokens} (max_new_tokens limit)"
            )
        if params.do_sample and not (params.temperature > 0 and 0 < params.top_p <= 1):
            raise InvalidArgument("sampling needs temperature > 0 and 0 < top_p <= 1")

    # -- prompts ------------------------------------------------------------------------------

    def prompt_set(self, *, inline: Sequence[str] | None = None, set_name: str = "", limit: int = 0) -> PromptSet:
        """The prompts a request names: ``inline`` ones, else the registered set ``set_name``;
        the first ``limit`` of them (0: all)."""
        if inline is not None:
            self.check_prompt_count(len(inline))
            prompt_set = inline_prompt_set(list(inline))
        else:
            prompt_set = self.prompt_sets.get(set_name)
        if limit < 0:
            raise InvalidArgument(f"prompts.limit is {limit}; use 0 (all) or a positive count")
        prompt_set = prompt_set.head(limit)
        self.check_prompt_count(len(prompt_set.prompts))
        return prompt_set

    def encode(self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat) -> list[list[int]]:
        """InvalidArgument for a prompt over ``max_prompt_tokens`` or empty after tokenisation."""
        with self._lock:
            return self._encoder.encode(prompts, system_prompt, chat_format)

    def generation(
        self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat, params: GenerationParams
    ) -> list[list[int]]:
        """A ``Generate`` request's checks; its prompts encoded."""
        self.check_prompt_count(len(prompts))
        self.check_generation(params)
        return self.encode(prompts, system_prompt, chat_format)

    def evaluation(self, settings: EvalSettings) -> EvalSettings:
        """An evaluation's checks; the settings with their prompts encoded."""
        if any(not k for k in settings.keywords):
            raise InvalidArgument("judge.keyword.keywords contains an empty string; remove it")
        self.check_generation(settings.params)
        encoded = self.encode(settings.prompt_set.prompts, settings.system_prompt, settings.chat_format)
        return dataclasses.replace(settings, encoded=tuple(tuple(ids) for ids in encoded))
