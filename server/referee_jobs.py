"""The coherence referee's jobs on the model host: a point's answers, a group of points', a Judge call.

The referee judges answers at theta0 (``engine/referee.py``), so it must never run inside a point's
job at that point's weights. Each pass is a job of its own, submitted through the host like every
other (its queue, fair share, deadline and cancellation), with the weights the engine names for it
(``Engine.referee_terms``: theta0, or none in particular when theta0's tensors are resident); the
first pass at a calibration length is preceded by a calibration job at theta0. A point's own job,
and so its ``weight_state``, stays the point's.

The pass is cheap because it is shared: ``evaluate_points`` runs a bounded group of points (at
most ``GROUP_POINTS``, and ``GROUP_ANSWERS`` answers), then one referee pass over all their
answers, then streams the group's results; the host's own order (theta0 first, then as sent) and
its check that the caller is still there apply point by point. A point's ``referee_seconds`` is its
share (by answers) of the pass, calibration and weight switch included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .engine.engine import Engine, TermRequest
from .engine.evaluation import EvalOutcome, EvalSettings
from .engine.judging import JudgeInput, JudgeOutcome, judge_answers
from .engine.referee import CoherenceVerdict, RefereeItem, RefereeResult
from .engine.referee_calibration import Thresholds
from .host import Call, Job, ModelHost

__all__ = [
    "GROUP_ANSWERS", "GROUP_POINTS", "Evaluated", "Judged", "PointReferee", "evaluate", "evaluate_points", "judge",
]

GROUP_POINTS = 8
GROUP_ANSWERS = 1024


@dataclass(frozen=True)
class PointReferee:
    """The referee's verdicts on one point's answers (in verdict order) and what decided them."""

    verdicts: list[CoherenceVerdict]
    thresholds: Thresholds
    mode: str  # "resident" | "switch"
    seconds: float  # this point's share of the pass


@dataclass(frozen=True)
class Evaluated:
    """One point's evaluation: ``job`` ran it at the point's weights; ``referee`` is None when off."""

    index: int
    outcome: EvalOutcome
    job: Job[Any]
    referee: PointReferee | None


@dataclass(frozen=True)
class Judged:
    """A Judge call's outcome, its referee seconds (a calibration included) and its job's queue time."""

    outcome: JudgeOutcome
    referee_seconds: float
    queue_seconds: float


def group_points(prompts: int) -> int:
    """Points per referee pass for ``prompts`` prompts per point."""
    return max(1, min(GROUP_POINTS, GROUP_ANSWERS // max(1, prompts)))


def _items(settings: EvalSettings, outcome: EvalOutcome) -> list[RefereeItem]:
    encoded = settings.encoded
    if encoded is None:
        raise RuntimeError("the referee needs the prompts as admission encoded them")
    return [RefereeItem(encoded[v.index], v.result.text) for v in outcome.verdicts]


def _calibrated(host: ModelHost, max_new_tokens: int, call: Call) -> float:
    """Seconds of the calibration job run at theta0 when the thresholds for ``max_new_tokens`` are new, else 0."""
    if host.engine.referee.has_thresholds(max_new_tokens):
        return 0.0
    started = time.perf_counter()
    _, job = host.run_call(lambda e, cancel: e.calibrate_referee(max_new_tokens, should_cancel=cancel), call, terms=[])
    return time.perf_counter() - started - job.queue_seconds


def _pass(host: ModelHost, items: list[RefereeItem], max_new_tokens: int, call: Call) -> tuple[RefereeResult, float]:
    """One referee pass (its calibration first if new); its seconds, calibration and weight switch included."""
    seconds = _calibrated(host, max_new_tokens, call)
    started = time.perf_counter()
    result, job = host.run_call(
        lambda e, cancel: e.referee_answers(items, max_new_tokens, should_cancel=cancel), call,
        terms=host.engine.referee_terms,
    )
    return result, seconds + time.perf_counter() - started - job.queue_seconds


def _refereed(
    host: ModelHost, settings: EvalSettings, done: Sequence[tuple[int, EvalOutcome, Job[Any]]], call: Call
) -> list[Evaluated]:
    if not settings.referee:
        return [Evaluated(index, outcome, job, None) for index, outcome, job in done]
    items = [_items(settings, outcome) for _, outcome, _ in done]
    flat = [item for point in items for item in point]
    result, seconds = _pass(host, flat, settings.params.max_new_tokens, call)
    out, start = [], 0
    for (index, outcome, job), point in zip(done, items, strict=True):
        share = PointReferee(result.verdicts[start : start + len(point)], result.thresholds, host.engine.referee.mode,
                             seconds * len(point) / max(1, len(flat)))
        out.append(Evaluated(index, outcome, job, share))
        start += len(point)
    return out


def evaluate(host: ModelHost, settings: EvalSettings, terms: Sequence[TermRequest], call: Call) -> Evaluated:
    """One point (EvaluateSafety): its job at its weights, then the referee's pass over its answers."""
    outcome, job = host.evaluate(settings, terms, call)
    return _refereed(host, settings, [(0, outcome, job)], call)[0]


def evaluate_points(
    host: ModelHost, settings: EvalSettings, points: Sequence[Sequence[TermRequest]], call: Call
) -> Iterator[Evaluated]:
    """Every point, in the host's order, judged and streamed a group at a time (see the module doc)."""
    size = group_points(len(settings.prompt_set.prompts)) if settings.referee else 1
    group: list[tuple[int, EvalOutcome, Job[Any]]] = []
    for done in host.evaluate_points(settings, points, call):
        group.append(done)
        if len(group) == size:
            yield from _refereed(host, settings, group, call)
            group = []
    if group and call.is_active():
        yield from _refereed(host, settings, group, call)


def judge(host: ModelHost, request: JudgeInput, call: Call) -> Judged:
    """A Judge call: its calibration first if new, then one job judging every row."""
    seconds = _calibrated(host, request.max_new_tokens, call)

    def work(engine: Engine, cancel: Callable[[], bool]) -> JudgeOutcome:
        return judge_answers(engine.evaluator, engine.referee, request, should_cancel=cancel)

    outcome, job = host.run_call(work, call, terms=host.engine.referee_terms)
    return Judged(outcome, seconds + outcome.referee.seconds, job.queue_seconds)
