"""Safety evaluation: prompts -> chat format -> generation -> judge -> ASR.

Owns prompt encoding under a chat format and system prompt (with the prompt-token limit), the
keyword early stop (a sequence stops once a refusal keyword appears: its verdict can no longer
change, so verdicts and ASR equal a full-length run), the choice of judge (keyword, or the
classifier judge the server loaded: ``guards/``) and the bookkeeping of tokens saved.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FailedPrecondition, InvalidArgument, NotFound, did_you_mean
from .chat import ChatFormat, render_prompt
from .generation import FINISH_KEYWORD, BatchGenerator, GenerationParams, GenerationStats, SequenceResult
from .guards import ClassifierJudge, GuardVerdict
from .judges import KeywordJudge, attack_success_rate
from .prompts import PromptSet

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class EvalSettings:
    prompt_set: PromptSet
    system_prompt: str | None  # None: the model's / format's default
    chat_format: ChatFormat
    params: GenerationParams
    judge: str = "keyword"  # "keyword" | "classifier"
    keywords: tuple[str, ...] = ()  # replaces the paper's list when non-empty
    return_completions: bool = False
    early_stop: bool = True
    classifier_name: str = ""  # classifier judge only: "" = the one loaded, else must name its format
    classifier_fingerprint: str = ""  # classifier judge only: "" = any, else must be the loaded guard's
    # The prompts already encoded under this system prompt and chat format (the server does it when
    # it admits a request, so a too-long prompt is refused before it queues); None: encode here.
    encoded: tuple[tuple[int, ...], ...] | None = None
    batch_rows: int = 0  # sequences per batch that fit the job's memory budget (job_memory.py); 0: the generator's own
    referee: bool = True  # the coherence referee judges every answer at theta0 (referee.py); False: outcomes unknown


@dataclass(frozen=True)
class VerdictRow:
    index: int
    jailbroken: bool
    matched_keyword: str
    classifier_output: str
    result: SequenceResult
    guard: GuardVerdict | None = None  # the classifier judge's verdict (classifier judge only)


@dataclass
class EvalOutcome:
    asr: float
    verdicts: list[VerdictRow]
    stats: GenerationStats
    judge_seconds: float
    tokens_saved: int
    judge_name: str

    @property
    def jailbroken(self) -> int:
        return sum(v.jailbroken for v in self.verdicts)


@dataclass
class PromptEncoder:
    """Chat format + system prompt + tokenisation of user prompts, with the prompt-token limit."""

    tokenizer: Any
    max_prompt_tokens: int

    def encode(self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat) -> list[list[int]]:
        return [self.encode_one(i, prompt, system_prompt, chat_format) for i, prompt in enumerate(prompts)]

    def encode_one(self, index: int, prompt: str, system_prompt: str | None, chat_format: ChatFormat) -> list[int]:
        """Prompt number ``index`` (named in the errors) under the chat format, within the token limit."""
        tok = self.tokenizer
        rendered = render_prompt(chat_format, prompt, system_prompt, tok)
        ids: list[int] = tok(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]
        if len(ids) > self.max_prompt_tokens:
            raise InvalidArgument(
                f"prompt {index} is {len(ids)} tokens after the chat format; the limit is "
                f"{self.max_prompt_tokens} (max_prompt_tokens): shorten it"
            )
        if not ids:
            raise InvalidArgument(f"prompt {index} is empty after tokenisation; send some text")
        return ids


@dataclass
class SafetyEvaluator:
    generator: BatchGenerator
    max_prompt_tokens: int
    classifier: ClassifierJudge | None = None
    default_judge: KeywordJudge = field(default_factory=KeywordJudge)

    def __post_init__(self) -> None:
        self.encoder = PromptEncoder(self.generator.tokenizer, self.max_prompt_tokens)  # the worker's own

    def encode(self, prompts: Sequence[str], system_prompt: str | None, chat_format: ChatFormat) -> list[list[int]]:
        return self.encoder.encode(prompts, system_prompt, chat_format)

    def evaluate(self, settings: EvalSettings, *, should_cancel: Callable[[], bool] = lambda: False) -> EvalOutcome:
        prompts = settings.prompt_set.prompts
        if not prompts:
            raise InvalidArgument("the prompt set is empty; send at least one prompt")
        if settings.encoded is not None:
            if len(settings.encoded) != len(prompts):
                raise InvalidArgument(f"{len(settings.encoded)} encoded prompts for {len(prompts)} prompts")
            encoded = [list(ids) for ids in settings.encoded]
        else:
            encoded = self.encode(prompts, settings.system_prompt, settings.chat_format)
        if settings.judge == "keyword":
            judge = KeywordJudge(settings.keywords or None)
            stop_test = judge.first_match if settings.early_stop else None
        elif settings.judge == "classifier":
            if self.classifier is None:
                raise FailedPrecondition(
                    "this server has no classifier judge loaded: start it with --judge-model "
                    "(e.g. a Llama Guard directory), or use the keyword judge"
                )
            check_classifier(self.classifier, settings.classifier_name, settings.classifier_fingerprint)
            judge, stop_test = None, None
        else:
            raise InvalidArgument(
                f"unknown judge {settings.judge!r}; use keyword or classifier."
                + did_you_mean(settings.judge, ("keyword", "classifier"))
            )
        results, stats = self.generator.generate(
            encoded, settings.params, stop_test=stop_test, should_cancel=should_cancel, batch_size=settings.batch_rows or None
        )
        started = time.perf_counter()
        verdicts: list[VerdictRow] = []
        if judge is not None:
            for i, r in enumerate(results):
                v = judge.judge(r.text)
                verdicts.append(VerdictRow(i, v.jailbroken, v.matched_keyword, "", r))
            judge_name = "keyword"
        else:
            assert self.classifier is not None
            judged = self.classifier.judge(prompts, [r.text for r in results], should_cancel)
            for i, (r, g) in enumerate(zip(results, judged, strict=True)):
                verdicts.append(VerdictRow(i, g.unsafe, "", g.raw, r, g))
            judge_name = self.classifier.judge_id
        judge_seconds = time.perf_counter() - started
        saved = sum(settings.params.max_new_tokens - r.completion_tokens for r in results if r.finish_reason == FINISH_KEYWORD)
        return EvalOutcome(
            asr=attack_success_rate([v.jailbroken for v in verdicts]),
            verdicts=verdicts,
            stats=stats,
            judge_seconds=judge_seconds,
            tokens_saved=saved,
            judge_name=judge_name,
        )


def check_classifier(classifier: ClassifierJudge, name: str, fingerprint: str) -> None:
    """NotFound when a request names another guard format than the loaded one; FailedPrecondition when
    it expects other guard weights (a fleet must judge with one checkpoint)."""
    if name and name != classifier.name:
        raise NotFound(
            f"unknown classifier judge {name!r}; this server has {classifier.name!r} ({classifier.checkpoint}): "
            "name it, or leave the name empty for the one loaded." + did_you_mean(name, (classifier.name,))
        )
    if fingerprint and not _SHA256.fullmatch(fingerprint):
        raise InvalidArgument("judge.classifier.fingerprint must be 64 lower-case hex digits (a sha256), or empty for any")
    if fingerprint and fingerprint != classifier.fingerprint:
        raise FailedPrecondition(
            f"the classifier judge's weights are {classifier.fingerprint}, not the {fingerprint} the request expects: "
            "this server loaded another guard checkpoint"
        )
