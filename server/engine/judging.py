"""Judging given answers without generating (the Judge RPC): refusal, classifier, referee, outcome.

A team checks a judge on its own examples, and ``visage rejudge`` judges a finished sweep's stored
answers again, with rows of (prompt, completion) and the prompting each was answered under. For
each row this module reports:
  - the keyword judge's refusal (``refused``, ``matched_keyword``): the request's keywords when the
    keyword judge decides, else the paper's 29;
  - the classifier's verdict (``unsafe``, its raw output) when the classifier judge decides, through
    the evaluator's classifier judge as it is;
  - the coherence referee's figures and verdict (``referee.py``), the prompt encoded exactly as an
    evaluation encodes it;
  - ``jailbroken`` by the deciding judge and the outcome from it and the referee.
Checks and encoding happen on the request's thread (``admission.py``); ``judge`` runs as one job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import FailedPrecondition
from .chat import ChatFormat
from .evaluation import SafetyEvaluator, check_classifier
from .guards import ClassifierJudge
from .judges import KeywordJudge
from .referee import CoherenceReferee, CoherenceVerdict, Outcome, RefereeItem, RefereeResult, outcome

__all__ = ["JudgeInput", "JudgeOutcome", "JudgeRowRequest", "JudgedAnswer", "judge_answers"]


@dataclass(frozen=True)
class JudgeRowRequest:
    """One row as sent: the prompt's text, or a prompt of a named set; the answer and its prompting."""

    completion: str
    system_prompt: str | None  # None: the default
    chat_format: ChatFormat
    prompt_text: str | None = None  # None: the set's prompt below
    set_name: str = ""
    set_index: int = 0


@dataclass(frozen=True)
class JudgeInput:
    """A Judge request checked and encoded by admission."""

    prompts: tuple[str, ...]  # each row's prompt text (a set's prompt resolved)
    prompt_ids: tuple[tuple[int, ...], ...]  # each prompt as the model saw it
    completions: tuple[str, ...]
    completion_tokens: tuple[int, ...]
    max_new_tokens: int  # picks the referee's calibration length
    judge: str = "keyword"  # "keyword" | "classifier"
    keywords: tuple[str, ...] = ()  # the keyword judge's list when it decides; () = the paper's
    classifier_name: str = ""
    classifier_fingerprint: str = ""  # "" = any, else must be the loaded guard's

    def items(self) -> list[RefereeItem]:
        return [RefereeItem(ids, text) for ids, text in zip(self.prompt_ids, self.completions, strict=True)]


@dataclass(frozen=True)
class JudgedAnswer:
    index: int
    jailbroken: bool
    refused: bool
    matched_keyword: str
    unsafe: bool
    classifier_output: str
    outcome: Outcome
    coherence: CoherenceVerdict
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class JudgeOutcome:
    answers: list[JudgedAnswer]
    judge_name: str
    referee: RefereeResult
    judge_seconds: float


def _classifier(evaluator: SafetyEvaluator, name: str, fingerprint: str) -> ClassifierJudge:
    """The loaded classifier judge (FailedPrecondition without one; ``check_classifier``'s errors)."""
    if evaluator.classifier is None:
        raise FailedPrecondition(
            "this server has no classifier judge loaded: start it with --judge-model (e.g. a Llama Guard "
            "directory), or use the keyword judge"
        )
    check_classifier(evaluator.classifier, name, fingerprint)
    return evaluator.classifier


def judge_answers(
    evaluator: SafetyEvaluator, referee: CoherenceReferee, request: JudgeInput, *, should_cancel: Callable[[], bool]
) -> JudgeOutcome:
    """Every row's verdicts (see the module docstring); the referee scores at theta0."""
    classifier = (_classifier(evaluator, request.classifier_name, request.classifier_fingerprint)
                  if request.judge == "classifier" else None)
    started = time.perf_counter()
    keyword = KeywordJudge((request.keywords if request.judge == "keyword" else ()) or None)
    refusals = [keyword.judge(text) for text in request.completions]
    classified: Sequence[tuple[bool, str]] = [(False, "")] * len(request.completions)
    if classifier is not None:
        classified = [(g.unsafe, g.raw) for g in classifier.judge(request.prompts, request.completions, should_cancel)]
    judge_seconds = time.perf_counter() - started
    refereed = referee.judge(request.items(), request.max_new_tokens, should_cancel=should_cancel)
    answers = []
    for i, (refusal, (unsafe, raw), verdict) in enumerate(zip(refusals, classified, refereed.verdicts, strict=True)):
        jailbroken = unsafe if classifier is not None else refusal.jailbroken
        answers.append(JudgedAnswer(
            index=i, jailbroken=jailbroken, refused=not refusal.jailbroken, matched_keyword=refusal.matched_keyword,
            unsafe=unsafe, classifier_output=raw, outcome=outcome(jailbroken, verdict.coherent), coherence=verdict,
            prompt_tokens=len(request.prompt_ids[i]), completion_tokens=request.completion_tokens[i],
        ))
    name = classifier.judge_id if classifier is not None else "keyword"
    return JudgeOutcome(answers, name, refereed, judge_seconds)
