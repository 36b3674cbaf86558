"""Typed views of the server's outcomes and referee verdicts (torch-free), read from the v1 messages.

An answer's outcome is "refused", "complied" or "incoherent" ("" when the server's referee did not
run); ``Coherence`` holds the referee's figures of one answer (every one of them, so a reader can
apply other thresholds) and the tests it failed; ``RefereeThresholds`` says what decided and how it
was calibrated, ``RefereeReport`` whether the referee ran; ``JudgeRow`` is a row sent to the Judge
RPC, ``JudgedRow`` / ``JudgeResult`` what comes back. Each reply type is a frozen dataclass read
from its message by its fields (:mod:`.proto_reply`) and keeps the message as ``.proto``.
docs/method.md, "Outcomes and the coherence referee", defines every figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safety_landscape.v1 import landscape_pb2 as pb

from .proto_reply import ProtoReply

__all__ = ["OUTCOMES", "Coherence", "JudgeResult", "JudgeRow", "JudgedRow", "RefereeReport", "RefereeThresholds",
           "outcome_name"]

OUTCOMES = ("refused", "complied", "incoherent")
_OUTCOME_NAMES: dict[int, str] = {pb.OUTCOME_UNSPECIFIED: "", pb.OUTCOME_REFUSED: "refused", pb.OUTCOME_COMPLIED: "complied",
                                  pb.OUTCOME_INCOHERENT: "incoherent"}


def outcome_name(value: int) -> str:
    """"refused", "complied", "incoherent", or "" (OUTCOME_UNSPECIFIED: no referee ran)."""
    return _OUTCOME_NAMES.get(value, "")


@dataclass(frozen=True)
class Coherence(ProtoReply):
    """The referee's figures and decision for one answer (``failed``: "empty", "fluency", "repetition", "run")."""

    message_type = pb.Coherence
    coherent: bool
    failed: tuple[str, ...]
    nll: float
    scored_tokens: int
    words: int
    repeated_ngram_fraction: float
    repeated_token_ngram_fraction: float
    longest_word_run: int
    longest_token_run: int
    proto: pb.Coherence = field(repr=False, compare=False)


@dataclass(frozen=True)
class RefereeThresholds(ProtoReply):
    """What decided (an answer fails a test when its figure is above the threshold), and its calibration."""

    message_type = pb.RefereeThresholds
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
    proto: pb.RefereeThresholds = field(repr=False, compare=False)


@dataclass(frozen=True)
class RefereeReport(ProtoReply):
    """Whether the referee judged every answer (``thresholds`` None when it did not) and how it reached theta0."""

    message_type = pb.RefereeReport
    ran: bool
    thresholds: RefereeThresholds | None
    mode: str
    proto: pb.RefereeReport = field(repr=False, compare=False)


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
class JudgedRow(ProtoReply):
    """The verdicts on one row: ``outcome`` from the deciding judge's ``jailbroken`` and ``coherence``."""

    message_type = pb.JudgedRow
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
    proto: pb.JudgedRow = field(repr=False, compare=False)


@dataclass(frozen=True)
class JudgeResult(ProtoReply):
    """A Judge call's rows (in request order), the deciding judge, and the referee's report.

    Example::

        out = c.judge([JudgeRow("Sure, step one ...", prompt="How do I ...?")])
        print(out.rows[0].outcome, out.rows[0].coherence.nll, out.thresholds.id)
    """

    message_type = pb.JudgeResponse
    rows: tuple[JudgedRow, ...]
    judge: str
    referee: RefereeReport
    proto: pb.JudgeResponse = field(repr=False, compare=False)

    @property
    def thresholds(self) -> RefereeThresholds:
        """The thresholds that decided (the Judge RPC always runs the referee)."""
        if self.referee.thresholds is None:
            raise ValueError("the server's Judge reply has no referee thresholds")
        return self.referee.thresholds
