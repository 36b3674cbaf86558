"""Typed views of the server's outcomes and referee verdicts (torch-free), read from the v1 messages.

An answer's outcome is "refused", "complied" or "incoherent" ("" when the server's referee did not
run); ``Coherence`` holds the referee's figures of one answer (every one of them, so a reader can
apply other thresholds) and the tests it failed; ``RefereeThresholds`` says what decided and how it
was calibrated; ``JudgeRow`` / ``JudgedRow`` / ``JudgeResult`` are the Judge RPC's rows. Each result
keeps its protobuf (``message``) for anything not mirrored here. docs/method.md, "Outcomes and the
coherence referee", defines every figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from safety_landscape.v1 import landscape_pb2 as pb

__all__ = ["OUTCOMES", "Coherence", "JudgeResult", "JudgeRow", "JudgedRow", "RefereeThresholds", "outcome_name"]

OUTCOMES = ("refused", "complied", "incoherent")
_OUTCOME_NAMES: dict[int, str] = {pb.OUTCOME_UNSPECIFIED: "", pb.OUTCOME_REFUSED: "refused", pb.OUTCOME_COMPLIED: "complied",
                  pb.OUTCOME_INCOHERENT: "incoherent"}
_TEST_NAMES: dict[int, str] = {pb.COHERENCE_TEST_EMPTY: "empty", pb.COHERENCE_TEST_FLUENCY: "fluency",
               pb.COHERENCE_TEST_REPETITION: "repetition", pb.COHERENCE_TEST_RUN: "run"}


def outcome_name(value: int) -> str:
    """"refused", "complied", "incoherent", or "" (OUTCOME_UNSPECIFIED: no referee ran)."""
    return _OUTCOME_NAMES.get(value, "")


@dataclass(frozen=True)
class Coherence:
    """The referee's figures and decision for one answer (``failed``: "empty", "fluency", "repetition", "run")."""

    coherent: bool
    failed: tuple[str, ...]
    nll: float
    scored_tokens: int
    words: int
    repeated_ngram_fraction: float
    repeated_token_ngram_fraction: float
    longest_word_run: int
    longest_token_run: int

    @classmethod
    def from_pb(cls, msg: pb.Coherence) -> Coherence:
        return cls(
            coherent=msg.coherent, failed=tuple(_TEST_NAMES.get(t, str(t)) for t in msg.failed), nll=msg.nll,
            scored_tokens=msg.scored_tokens, words=msg.words, repeated_ngram_fraction=msg.repeated_ngram_fraction,
            repeated_token_ngram_fraction=msg.repeated_token_ngram_fraction, longest_word_run=msg.longest_word_run,
            longest_token_run=msg.longest_token_run,
        )


@dataclass(frozen=True)
class RefereeThresholds:
    """What decided (an answer fails a test when its figure is above the threshold), and its calibration."""

    id: str
    max_nll: float
    max_repetition: float
    max_run: int
    rule: str
    model_fingerprint: str
    calibration_prompts_sha256: str
    calibration_answers: int
    calibration_max_new_tokens: int
    calibration_chat_format: str
    calibration_seconds: float

    @classmethod
    def from_pb(cls, msg: pb.RefereeThresholds) -> RefereeThresholds:
        return cls(
            id=msg.id, max_nll=msg.max_nll, max_repetition=msg.max_repetition, max_run=msg.max_run, rule=msg.rule,
            model_fingerprint=msg.model_fingerprint, calibration_prompts_sha256=msg.calibration_prompts_sha256,
            calibration_answers=msg.calibration_answers, calibration_max_new_tokens=msg.calibration_max_new_tokens,
            calibration_chat_format=msg.calibration_chat_format, calibration_seconds=msg.calibration_seconds,
        )


@dataclass(frozen=True)
class JudgeRow:
    """One answer to judge: its prompt, as ``prompt`` (text) or ``prompt_ref`` (a server set's name and
    0-based index); ``system`` a preset name or custom text (None: the default); ``chat`` a chat format name."""

    completion: str
    prompt: str | None = None
    prompt_ref: tuple[str, int] | None = None
    system: str | None = None
    chat: str = "tokenizer"


@dataclass(frozen=True)
class JudgedRow:
    """The verdicts on one row: ``outcome`` from the deciding judge's ``jailbroken`` and ``coherence``."""

    index: int
    jailbroken: bool
    refused: bool
    matched_keyword: str
    unsafe: bool
    classifier_output: str
    outcome: str
    coherence: Coherence
    prompt_tokens: int
    completion_tokens: int

    @classmethod
    def from_pb(cls, msg: pb.JudgedRow) -> JudgedRow:
        return cls(
            index=msg.index, jailbroken=msg.jailbroken, refused=msg.refused, matched_keyword=msg.matched_keyword,
            unsafe=msg.unsafe, classifier_output=msg.classifier_output, outcome=outcome_name(msg.outcome),
            coherence=Coherence.from_pb(msg.coherence), prompt_tokens=msg.prompt_tokens,
            completion_tokens=msg.completion_tokens,
        )


@dataclass(frozen=True)
class JudgeResult:
    """A Judge call's rows (in request order), the deciding judge, the referee's thresholds and mode."""

    rows: tuple[JudgedRow, ...]
    judge: str
    thresholds: RefereeThresholds
    referee_mode: str
    message: pb.JudgeResponse

    @classmethod
    def from_pb(cls, msg: pb.JudgeResponse) -> JudgeResult:
        return cls(
            rows=tuple(JudgedRow.from_pb(r) for r in msg.rows), judge=msg.judge,
            thresholds=RefereeThresholds.from_pb(msg.referee.thresholds), referee_mode=msg.referee.mode, message=msg,
        )
