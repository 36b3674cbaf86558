"""What a server's work returns, as :class:`~.client.Client` returns it: generations,
evaluations (one point or a stream of points), scores, and the weight state each was computed at.
Frozen dataclasses read from the replies by their fields (:mod:`.proto_reply`); each keeps its
message as ``.proto``. What a server holds and accepts: :mod:`.server_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safety_landscape.v1 import landscape_pb2 as pb

from .proto_reply import ProtoReply
from .verdicts import Coherence, RefereeReport

__all__ = ["AppliedTerm", "ClassifierVerdict", "Evaluation", "GeneratedText", "Generation", "PointEvaluation",
           "PromptSetInfo", "ScoreResult", "Scores", "Timings", "Verdict", "WeightState"]


# -- weights and timings ------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedTerm(ProtoReply):
    """One canonical term of the weights a result was computed at."""

    message_type = pb.AppliedTerm
    direction_id: str
    coefficient: float
    proto: pb.AppliedTerm = field(repr=False, compare=False)


@dataclass(frozen=True)
class WeightState(ProtoReply):
    """The weights a result was computed at (``fingerprint`` names them; at theta0 it is the
    model's fingerprint); :meth:`Client.set_coefficients`'s result.

    Example::

        state = c.set_coefficients([(random_direction(123), 0.25)], verify=True)
        print(state.fingerprint[:16], state.weights_sha256[:16])
    """

    message_type = pb.WeightState
    fingerprint: str
    terms: tuple[AppliedTerm, ...]
    weights_sha256: str
    apply_seconds: float
    proto: pb.WeightState = field(repr=False, compare=False)


@dataclass(frozen=True)
class Timings(ProtoReply):
    """Where a request's seconds went."""

    message_type = pb.Timings
    queue_seconds: float
    apply_weights_seconds: float
    prefill_seconds: float
    decode_seconds: float
    judge_seconds: float
    total_seconds: float
    referee_seconds: float
    proto: pb.Timings = field(repr=False, compare=False)


# -- generation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedText(ProtoReply):
    """One prompt's completion; ``finish_reason``: "eos", "length", "keyword", "cancelled" or ""."""

    message_type = pb.Completion
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    proto: pb.Completion = field(repr=False, compare=False)


@dataclass(frozen=True)
class Generation(ProtoReply):
    """Completions of a batch of prompts at one weight state: :meth:`Client.generate`'s result.

    Example::

        out = c.generate(["Hello"], max_new_tokens=16)
        print(out.texts[0], out.weight_state.fingerprint[:16])
    """

    message_type = pb.GenerateResponse
    completions: tuple[GeneratedText, ...]
    weight_state: WeightState
    timings: Timings
    generated_tokens: int
    proto: pb.GenerateResponse = field(repr=False, compare=False)

    @property
    def texts(self) -> list[str]:
        """The completions' texts, in prompt order."""
        return [c.text for c in self.completions]


# -- safety evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptSetInfo(ProtoReply):
    """A named prompt set the server holds (``kind``: "harmful" or "benign"); what
    :meth:`Client.list_prompt_sets` lists and what an evaluation was run on.

    Example::

        for s in c.list_prompt_sets():
            print(s.name, s.kind, s.size, s.sha256[:12])
    """

    message_type = pb.PromptSetInfo
    name: str
    size: int
    sha256: str
    source_format: str
    kind: str
    proto: pb.PromptSetInfo = field(repr=False, compare=False)


@dataclass(frozen=True)
class ClassifierVerdict(ProtoReply):
    """A guard model's reading of one answer (``probability`` None when the guard gives none)."""

    message_type = pb.ClassifierVerdict
    judge: str
    fingerprint: str
    label: str
    categories: tuple[str, ...]
    probability: float | None
    threshold: float
    proto: pb.ClassifierVerdict = field(repr=False, compare=False)


@dataclass(frozen=True)
class Verdict(ProtoReply):
    """One prompt's verdict (``completion`` is "" unless the request asked for the completions);
    ``outcome`` "refused", "complied" or "incoherent" ("" and ``coherence`` None when no referee ran)."""

    message_type = pb.Verdict
    index: int
    jailbroken: bool
    matched_keyword: str
    classifier_output: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    completion: str
    classifier: ClassifierVerdict | None
    outcome: str
    coherence: Coherence | None
    proto: pb.Verdict = field(repr=False, compare=False)


@dataclass(frozen=True)
class Evaluation(ProtoReply):
    """The attack success rate (percent) of a prompt set at one weight state:
    :meth:`Client.evaluate`'s result. ``refused``, ``refusal_rate`` always; ``complied``,
    ``incoherent``, ``coherent_asr`` (complied only) and ``incoherent_rate`` None when the server's
    coherence referee did not run (turned off, or a server without one): never a guess.

    Example::

        r = c.evaluate(prompt_set="harmful-mini", limit=8, max_new_tokens=32)
        print(f"ASR {r.asr:.1f} % ({r.jailbroken}/{r.total}), judge {r.judge}")
    """

    message_type = pb.EvaluateSafetyResponse
    asr: float
    jailbroken: int
    total: int
    verdicts: tuple[Verdict, ...]
    weight_state: WeightState
    timings: Timings
    prompt_set: PromptSetInfo
    system_prompt_sha256: str
    generated_tokens: int
    tokens_saved: int
    judge: str
    refused: int
    complied: int | None
    incoherent: int | None
    refusal_rate: float
    coherent_asr: float | None
    incoherent_rate: float | None
    referee: RefereeReport | None
    proto: pb.EvaluateSafetyResponse = field(repr=False, compare=False)


@dataclass(frozen=True)
class PointEvaluation(ProtoReply):
    """One point's evaluation from :meth:`Client.evaluate_points` (``index``: its place in the request).

    Example::

        points = [[(random_direction(123), a)] for a in (-0.25, 0.0, 0.25)]
        for p in c.evaluate_points(points=points, prompt_set="harmful-mini", limit=4, max_new_tokens=16):
            print(p.index, p.result.asr)
    """

    message_type = pb.PointResult
    index: int
    result: Evaluation
    proto: pb.PointResult = field(repr=False, compare=False)


# -- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult(ProtoReply):
    """One (context, continuation) item: its summed log-probability and per-token ones."""

    message_type = pb.ScoreResult
    logprob: float
    num_tokens: int
    token_logprobs: tuple[float, ...]
    is_greedy: bool
    candidate_logits: tuple[float, ...]
    proto: pb.ScoreResult = field(repr=False, compare=False)


@dataclass(frozen=True)
class Scores(ProtoReply):
    """Log-probabilities of continuations after contexts: :meth:`Client.score`'s result.

    Example::

        s = c.score([("The capital of France is", " Paris")])
        print(s.results[0].logprob, s.results[0].num_tokens)
    """

    message_type = pb.ScoreResponse
    results: tuple[ScoreResult, ...]
    weight_state: WeightState
    timings: Timings
    proto: pb.ScoreResponse = field(repr=False, compare=False)
