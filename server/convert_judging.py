"""Protobuf <-> domain conversions of outcomes, the coherence referee and the Judge RPC.

Beside ``convert.py`` (which it builds on), for the messages of the v1 contract's section
"Outcomes, the coherence referee, and Judge": a verdict's outcome and coherence, a response's three
counts and rates (unset, never zero, when no referee ran: a client must not read "0 % coherent"
where nothing was judged), the thresholds that decided, GetInfo's referee, and Judge's rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from safety_landscape.v1 import landscape_pb2 as pb

from . import convert
from .config import Limits
from .engine.engine import Engine
from .engine.evaluation import EvalOutcome
from .engine.judging import JudgeRowRequest
from .engine.referee import CoherenceVerdict, Outcome, outcome
from .engine.referee_calibration import RULE, TESTS, Thresholds
from .errors import InvalidArgument
from .referee_jobs import Judged, PointReferee

__all__ = [
    "coherence_to_pb", "judge_response_to_pb", "judge_rows_from_pb", "outcome_to_pb", "referee_info_to_pb",
    "referee_report_to_pb", "set_outcomes", "thresholds_to_pb", "verdicts_to_pb",
]

_OUTCOMES = {Outcome.REFUSED: pb.OUTCOME_REFUSED, Outcome.COMPLIED: pb.OUTCOME_COMPLIED,
             Outcome.INCOHERENT: pb.OUTCOME_INCOHERENT}
_TESTS = dict(zip(TESTS, (pb.COHERENCE_TEST_EMPTY, pb.COHERENCE_TEST_FLUENCY, pb.COHERENCE_TEST_REPETITION,
                          pb.COHERENCE_TEST_RUN), strict=True))


def outcome_to_pb(value: Outcome) -> pb.Outcome:
    return _OUTCOMES[value]


def coherence_to_pb(verdict: CoherenceVerdict) -> pb.Coherence:
    f, rep = verdict.figures, verdict.figures.repetition
    return pb.Coherence(
        coherent=verdict.coherent, failed=[_TESTS[t] for t in verdict.failed], nll=f.nll, scored_tokens=f.scored_tokens,
        words=rep.words, repeated_ngram_fraction=rep.repeated_ngram_fraction,
        repeated_token_ngram_fraction=rep.repeated_token_ngram_fraction, longest_word_run=rep.longest_word_run,
        longest_token_run=rep.longest_token_run,
    )


def thresholds_to_pb(t: Thresholds) -> pb.RefereeThresholds:
    c = t.calibration
    return pb.RefereeThresholds(
        id=t.id, max_nll=t.max_nll, max_repetition=t.max_repetition, max_run=t.max_run, rule=t.rule,
        model_fingerprint=c.model_fingerprint, calibration_prompts_sha256=c.prompt_set_sha256,
        calibration_answers=c.answers, calibration_max_new_tokens=c.max_new_tokens, calibration_chat_format=c.chat_format,
        calibration_seconds=c.seconds,
    )


def referee_report_to_pb(thresholds: Thresholds | None, mode: str) -> pb.RefereeReport:
    if thresholds is None:
        return pb.RefereeReport(ran=False, mode=mode)
    return pb.RefereeReport(ran=True, thresholds=thresholds_to_pb(thresholds), mode=mode)


def referee_info_to_pb(engine: Engine) -> pb.RefereeInfo:
    referee = engine.referee
    return pb.RefereeInfo(
        rule=RULE, calibration_prompts=convert.prompt_set_to_pb(referee.calibration_prompts),
        calibrations=[thresholds_to_pb(t) for t in referee.calibrations()], mode=referee.mode,
    )


def verdicts_to_pb(outcome_: EvalOutcome, referee: PointReferee | None, *, with_completions: bool) -> list[pb.Verdict]:
    """The verdicts, each with its outcome and coherence when the referee ran."""
    verdicts = convert.verdicts_to_pb(outcome_, with_completions=with_completions)
    if referee is not None:
        for msg, row, coherence in zip(verdicts, outcome_.verdicts, referee.verdicts, strict=True):
            msg.outcome = outcome_to_pb(outcome(row.jailbroken, coherence.coherent))
            msg.coherence.CopyFrom(coherence_to_pb(coherence))
    return verdicts


def set_outcomes(response: pb.EvaluateSafetyResponse, outcome_: EvalOutcome, referee: PointReferee | None,
                 mode: str) -> pb.EvaluateSafetyResponse:
    """Write the three outcomes' counts and rates and the referee report into ``response``; with no
    referee, complied / incoherent and their rates stay unset."""
    total = len(outcome_.verdicts)
    response.refused = total - outcome_.jailbroken
    response.refusal_rate = 100.0 * response.refused / total
    if referee is None:
        response.referee.CopyFrom(referee_report_to_pb(None, mode))
        return response
    complied = sum(row.jailbroken and v.coherent for row, v in zip(outcome_.verdicts, referee.verdicts, strict=True))
    response.complied = complied
    response.incoherent = outcome_.jailbroken - complied
    response.coherent_asr = 100.0 * complied / total
    response.incoherent_rate = 100.0 * response.incoherent / total
    response.referee.CopyFrom(referee_report_to_pb(referee.thresholds, referee.mode))
    return response


def judge_rows_from_pb(msg: pb.JudgeRequest, limits: Limits) -> list[JudgeRowRequest]:
    """The rows (their count checked before any is copied; each row's prompting resolved)."""
    if len(msg.rows) > limits.max_prompts_per_request:
        raise InvalidArgument(
            f"{len(msg.rows)} rows; the limit is {limits.max_prompts_per_request} per request (max_prompts_per_request): "
            "split them over several requests"
        )
    rows = []
    for i, row in enumerate(msg.rows):
        system, _ = convert.system_prompt_from_pb(row.system_prompt, limits)
        fmt = convert.chat_format_from_pb(row.chat_format)
        kind = row.WhichOneof("prompt")
        if kind == "prompt_text":
            rows.append(JudgeRowRequest(row.completion, system, fmt, prompt_text=row.prompt_text))
        elif kind == "prompt_ref":
            rows.append(JudgeRowRequest(row.completion, system, fmt, set_name=row.prompt_ref.set_name,
                                        set_index=row.prompt_ref.index))
        else:
            raise InvalidArgument(f"rows[{i}] has no prompt: set prompt_text or prompt_ref")
    return rows


def judge_response_to_pb(judged: Judged, mode: str, *, model_fingerprint: str, started: float) -> pb.JudgeResponse:
    rows: Sequence[pb.JudgedRow] = [
        pb.JudgedRow(
            index=a.index, jailbroken=a.jailbroken, refused=a.refused, matched_keyword=a.matched_keyword, unsafe=a.unsafe,
            classifier_output=a.classifier_output, outcome=outcome_to_pb(a.outcome), coherence=coherence_to_pb(a.coherence),
            prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
        )
        for a in judged.outcome.answers
    ]
    timings = pb.Timings(queue_seconds=judged.queue_seconds, judge_seconds=judged.outcome.judge_seconds,
                         referee_seconds=judged.referee_seconds, total_seconds=time.perf_counter() - started)
    return pb.JudgeResponse(
        rows=rows, judge=judged.outcome.judge_name, referee=referee_report_to_pb(judged.outcome.referee.thresholds, mode),
        weight_state=pb.WeightState(fingerprint=model_fingerprint), timings=timings,
    )
