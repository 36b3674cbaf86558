"""``Client``: a typed, torch-free handle on one server (one channel; a context manager).

Methods take plain keyword arguments and return the typed replies of :mod:`.server_state` and
:mod:`.call_results` (frozen dataclasses; each keeps the protobuf message as ``.proto``)::

    with Client("127.0.0.1:50051") as c:          # or Client() with VISAGE_SERVER set
        r = c.evaluate(prompt_set="harmful-mini", limit=8, max_new_tokens=32,
                       at=[(random_direction(123, stream="reference"), 0.25)])
        print(r.asr, r.weight_state.fingerprint)

Every call has a deadline. Calls are idempotent by design (absolute weight states, content-
addressed directions, deterministic generation), so UNAVAILABLE is retried with exponential
backoff, and RESOURCE_EXHAUSTED is retried only when the server's queue sent a retry hint.
gRPC errors become the exceptions of ``client.errors``. The request builders live in
:mod:`.builders`; they are re-exported here, where callers have long imported them from, and the
protobuf settings they build are still accepted (``settings=``), as an alternative to the keywords.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import structlog
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from .builders import (
    SYSTEM_PROMPT_PRESETS,
    adapter_direction,
    candidate_request,
    chat_format,
    evaluation_settings,
    generation,
    interpolation_direction,
    judge_request,
    perturbation,
    random_direction,
    system_prompt,
)
from .call_results import Evaluation, Generation, PointEvaluation, PromptSetInfo, PromptSetPage, Scores, WeightState
from .call_sequences import poll_candidate, read_prompt_set
from .credentials import channel_credentials, resolve_token, with_token
from .errors import DeadlineExceededError, ResourceExhaustedError, UnavailableError, ValidationError, from_rpc
from .request_options import GENERATION_DEFAULTS, At, evaluation, one_of, to_perturbation
from .server_state import CandidateInfo, CandidateList, DirectionInfo, DirectionList, RegistryEntry, ServerInfo
from .verdicts import JudgeResult, JudgeRow

__all__ = [
    "SERVER_ENV",
    "SYSTEM_PROMPT_PRESETS",
    "Client",
    "Timeouts",
    "TlsConfig",
    "adapter_direction",
    "chat_format",
    "evaluation_settings",
    "generation",
    "interpolation_direction",
    "judge_request",
    "perturbation",
    "random_direction",
    "server_from_environment",
    "system_prompt",
]

log = structlog.get_logger("safety_landscape.client")

Reply = TypeVar("Reply", bound=Message)


#: The environment variable naming the server when ``Client`` is given none.
SERVER_ENV = "VISAGE_SERVER"

@dataclass(frozen=True)
class TlsConfig:
    """TLS for the channel: ``ca_file`` (None trusts the system roots), and for mutual TLS the
    client's ``cert_file`` and ``key_file``.

    Example::

        c = Client("visage.internal:443", tls=TlsConfig(ca_file="ca.pem"))
    """

    ca_file: str | None = None
    cert_file: str | None = None  # with key_file: mutual TLS
    key_file: str | None = None


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds: ``info`` for quick calls, ``generate`` for each generation or
    evaluation, ``direction`` for creating directions and setting weights.

    Example::

        c = Client("127.0.0.1:50051", timeouts=Timeouts(generate=600.0))
    """

    info: float = 30.0
    generate: float = 3600.0
    direction: float = 600.0


def server_from_environment() -> str:
    """The server ``VISAGE_SERVER`` names; a ValidationError saying what to do when it is unset."""
    target = os.environ.get(SERVER_ENV, "").strip()
    if not target:
        raise ValidationError(f"no server: give one (Client(\"HOST:PORT\"), server=\"HOST:PORT\") or set "
                              f"{SERVER_ENV}=HOST:PORT")
    return target


# -- the client ----------------------------------------------------------------------------------


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, UnavailableError):
        return True
    return isinstance(exc, ResourceExhaustedError) and exc.retry_after_seconds > 0


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ResourceExhaustedError) and exc.retry_after_seconds > 0:
        return min(float(exc.retry_after_seconds), 30.0)
    return min(0.5 * 2.0 ** (state.attempt_number - 1), 10.0)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying", attempt=state.attempt_number, error=str(exc))


class Client:
    """One server: typed calls with deadlines and safe retries; a context manager.

    ``target`` is "host:port" (None: ``VISAGE_SERVER``); the token is ``token``, else the file ``token_file``,
    else ``VISAGE_TOKEN``, else the file named by ``VISAGE_TOKEN_FILE`` (the CLI's order: :func:`.credentials.resolve_token`).

    Example::

        from safety_landscape.client import Client, random_direction

        with Client("127.0.0.1:50051") as c:
            print(c.info().model_name)
            r = c.evaluate(prompt_set="harmful-mini", limit=8, max_new_tokens=32,
                           at=[(random_direction(123, stream="reference"), 0.25)])
            print(f"ASR {r.asr:.1f} %")
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        token_file: str | None = None,
        tls: TlsConfig | None = None,
        timeouts: Timeouts = Timeouts(),
        retries: int = 4,
        options: Sequence[tuple[str, object]] = (),
    ) -> None:
        target = target or server_from_environment()
        try:
            token = resolve_token(token, token_file)
        except ValueError as exc:  # an unreadable or empty token file
            raise ValidationError(str(exc)) from None
        self.target = target
        self.timeouts = timeouts
        self.retries = retries
        opts = [("grpc.max_receive_message_length", 256 * 1024 * 1024), *options]
        if tls is not None:
            creds = channel_credentials(tls.ca_file, tls.cert_file, tls.key_file)
            channel = grpc.secure_channel(target, creds, options=opts)
        else:
            channel = grpc.insecure_channel(target, options=opts)
        self._raw_channel = channel
        self.channel = with_token(channel, token)
        # The generated service stubs carry no type hints: each call below names its reply type.
        self._landscape: Any = pb_grpc.LandscapeServiceStub(self.channel)
        self._directions: Any = pb_grpc.DirectionServiceStub(self.channel)
        self._candidates: Any = pb_grpc.CandidateServiceStub(self.channel)
        self._health: Any = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._raw_channel.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _call(self, stub_method: Callable[..., Any], request: Message, reply: type[Reply], *, timeout: float, name: str,
              retry: bool = True) -> Reply:
        """``stub_method(request)`` with a deadline, gRPC errors translated, retried when safe."""
        def once() -> Reply:
            try:
                return cast(Reply, stub_method(request, timeout=timeout))
            except grpc.RpcError as exc:
                raise from_rpc(exc, name) from None

        if not retry or self.retries <= 1:
            return once()
        for attempt in Retrying(
            retry=retry_if_exception(_retryable), stop=stop_after_attempt(self.retries), wait=_wait,
            before_sleep=_log_retry, reraise=True,
        ):
            with attempt:
                return once()
        raise AssertionError("unreachable")

    # -- information ---------------------------------------------------------------------------

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """"SERVING", "NOT_SERVING", ... for the server (or one service)."""
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service),
                          health_pb2.HealthCheckResponse, timeout=timeout or self.timeouts.info, name="Health/Check",
                          retry=False)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def wait_until_serving(self, timeout: float = 600.0, poll: float = 0.5) -> None:
        """Return once the server is SERVING (a server still loading answers NOT_SERVING or not at all)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.health(timeout=min(5.0, poll * 10))
                if last == "SERVING":
                    return
            except (UnavailableError, DeadlineExceededError) as exc:  # not up yet, or too busy loading to answer
                last = str(exc)
            time.sleep(poll)
        raise UnavailableError(f"{self.target} did not become SERVING within {timeout:.0f} s (last: {last})",
                               code=grpc.StatusCode.UNAVAILABLE)

    def info(self) -> ServerInfo:
        """The model, tokenizer, fingerprints, limits and memory of the server."""
        return ServerInfo.from_proto(self._call(self._landscape.GetInfo, pb.GetInfoRequest(), pb.ModelInfo,
                                                timeout=self.timeouts.info, name="GetInfo"))

    def list_prompt_sets(self) -> list[PromptSetInfo]:
        """The named prompt sets the server holds, with their content hashes."""
        resp = self._call(self._landscape.ListPromptSets, pb.ListPromptSetsRequest(), pb.ListPromptSetsResponse,
                          timeout=self.timeouts.info, name="ListPromptSets")
        return [PromptSetInfo.from_proto(s) for s in resp.sets]

    def get_prompt_set(self, name: str, *, offset: int = 0, limit: int = 0) -> PromptSetPage:
        """One page of the named set's prompts: ``limit`` of them from ``offset`` (0, or more than
        the server's ``max_prompt_set_page``: that many). An unknown name: NotFoundError with
        "did you mean"."""
        request = pb.GetPromptSetRequest(name=name, offset=offset, limit=limit)
        return PromptSetPage.from_proto(self._call(self._landscape.GetPromptSet, request, pb.GetPromptSetResponse,
                                                   timeout=self.timeouts.info, name="GetPromptSet"))

    def prompt_texts(self, name: str) -> PromptSetPage:
        """Every prompt of the named set, read page by page and checked against the set's
        ``sha256`` (a set that changed while it was read is an error, never a mixed list)."""
        return read_prompt_set(self.get_prompt_set, name, self.target)

    def list_registry(self) -> list[RegistryEntry]:
        """The checkpoints and adapters the server's operator registered."""
        resp = self._call(self._directions.ListRegistry, pb.ListRegistryRequest(), pb.ListRegistryResponse,
                          timeout=self.timeouts.info, name="ListRegistry")
        return [RegistryEntry.from_proto(e) for e in resp.entries]

    # -- work ----------------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        chat: str = "tokenizer",
        max_new_tokens: int = 128,
        do_sample: bool = False,
        seed: int = 0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        at: At = None,
        settings: pb.GenerationSettings | None = None,
        timeout: float | None = None,
    ) -> Generation:
        """Completions of ``prompts`` at ``at`` (None: theta0): greedy unless ``do_sample``.
        ``system`` is a preset name or a text (None: the default preset); ``chat`` a chat format.
        ``settings`` (a ``generation(...)`` message) replaces the generation keywords."""
        if isinstance(prompts, str) or not prompts:
            raise ValidationError("prompts: give a list of at least one prompt")
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "seed": seed,
                                   "temperature": temperature, "top_p": top_p}
        one_of(settings, options, GENERATION_DEFAULTS)
        request = pb.GenerateRequest(
            prompts=list(prompts), system_prompt=system_prompt(system), chat_format=chat_format(chat),
            generation=settings or generation(**options), perturbation=to_perturbation(at),
        )
        return Generation.from_proto(self._call(self._landscape.Generate, request, pb.GenerateResponse,
                                                timeout=timeout or self.timeouts.generate, name="Generate"))

    def evaluate(
        self,
        settings: pb.EvaluationSettings | None = None,
        *,
        prompt_set: str | None = None,
        prompts: Sequence[str] | None = None,
        limit: int = 0,
        system: str | None = None,
        chat: str = "tokenizer",
        max_new_tokens: int = 128,
        generation_preset: str = "",
        keywords: Sequence[str] = (),
        judge: str = "keyword",
        return_completions: bool = False,
        disable_early_stop: bool = False,
        referee: bool = True,
        at: At = None,
        timeout: float | None = None,
    ) -> Evaluation:
        """The attack success rate at ``at`` (None: theta0) of ``prompt_set`` (a set the server
        holds) or ``prompts`` (sent inline), the first ``limit`` (0: all), judged by ``judge``
        ("keyword": the paper's refusal keywords, or ``keywords``; "classifier": the server's guard);
        ``referee=False`` turns the server's coherence referee off (no outcomes).
        ``settings`` (an ``evaluation_settings(...)`` message) replaces the keywords."""
        request = pb.EvaluateSafetyRequest(settings=evaluation(settings, locals()), perturbation=to_perturbation(at))
        return Evaluation.from_proto(self._call(self._landscape.EvaluateSafety, request, pb.EvaluateSafetyResponse,
                                                timeout=timeout or self.timeouts.generate, name="EvaluateSafety"))

    def evaluate_points(
        self,
        settings: pb.EvaluationSettings | None = None,
        points: Sequence[At] = (),
        *,
        prompt_set: str | None = None,
        prompts: Sequence[str] | None = None,
        limit: int = 0,
        system: str | None = None,
        chat: str = "tokenizer",
        max_new_tokens: int = 128,
        generation_preset: str = "",
        keywords: Sequence[str] = (),
        judge: str = "keyword",
        return_completions: bool = False,
        disable_early_stop: bool = False,
        referee: bool = True,
        timeout: float | None = None,
    ) -> Iterator[PointEvaluation]:
        """:meth:`evaluate` at each of ``points`` with the same settings, streamed one result per
        point as the server finishes it (in the server's order; each carries its ``index``)."""
        if not points:
            raise ValidationError("points: give at least one point")
        request = pb.EvaluatePointsRequest(settings=evaluation(settings, locals()),
                                           points=[to_perturbation(p) for p in points])
        deadline = timeout or self.timeouts.generate * max(1, len(points))
        return self._stream_points(request, deadline)

    def _stream_points(self, request: pb.EvaluatePointsRequest, deadline: float) -> Iterator[PointEvaluation]:
        try:
            for reply in self._landscape.EvaluatePoints(request, timeout=deadline):
                yield PointEvaluation.from_proto(reply)
        except grpc.RpcError as exc:
            raise from_rpc(exc, "EvaluatePoints") from None

    def score(self, items: Sequence[tuple[str, str]], *, candidates: Sequence[str] = (), at: At = None,
              timeout: float | None = None) -> Scores:
        """Log-probabilities of each (context, continuation) item at ``at``; with ``candidates``,
        each item's next-token logits of those strings too (multiple choice)."""
        if not items:
            raise ValidationError("no items to score")
        request = pb.ScoreRequest(
            items=[pb.ScoreItem(context=c, continuation=x) for c, x in items],
            perturbation=to_perturbation(at), next_token_candidates=list(candidates),
        )
        return Scores.from_proto(self._call(self._landscape.Score, request, pb.ScoreResponse,
                                            timeout=timeout or self.timeouts.generate, name="Score"))

    def judge(self, rows: Sequence[JudgeRow], *, judge: str = "keyword", keywords: Sequence[str] = (),
              classifier: str = "", max_new_tokens: int = 0, timeout: float | None = None) -> JudgeResult:
        """Judge given answers at theta0 (nothing is generated): each row's refusal, the classifier's
        verdict when ``judge="classifier"``, the referee's coherence and the outcome. Rows beyond the
        server's ``max_prompts_per_request`` must be split over several calls."""
        request = judge_request(rows, judge=judge, keywords=keywords, classifier=classifier,
                                max_new_tokens=max_new_tokens)
        response = self._call(self._landscape.Judge, request, pb.JudgeResponse, timeout=timeout or self.timeouts.generate,
                              name="Judge")
        return JudgeResult.from_proto(response)

    # -- directions (admin) --------------------------------------------------------------------

    def create_direction(self, spec: pb.DirectionSpec) -> DirectionInfo:
        """Create (or find: the id is a content hash) the direction ``spec`` (``random_direction(...)``, ...)."""
        return DirectionInfo.from_proto(self._call(self._directions.CreateDirection, pb.CreateDirectionRequest(spec=spec),
                                                   pb.Direction, timeout=self.timeouts.direction, name="CreateDirection"))

    def list_directions(self) -> DirectionList:
        """The directions the server holds, and its memory."""
        return DirectionList.from_proto(self._call(self._directions.ListDirections, pb.ListDirectionsRequest(),
                                                   pb.ListDirectionsResponse, timeout=self.timeouts.info,
                                                   name="ListDirections"))

    def delete_direction(self, direction_id: str) -> bool:
        """Forget a direction (NotFoundError when the server does not hold it)."""
        resp = self._call(self._directions.DeleteDirection, pb.DeleteDirectionRequest(direction_id=direction_id),
                          pb.DeleteDirectionResponse, timeout=self.timeouts.direction, name="DeleteDirection")
        return resp.deleted

    def set_coefficients(self, at: At = None, *, verify: bool = False) -> WeightState:
        """Set the interactive weight state to ``at`` (absolute; None: theta0); ``verify`` hashes the
        live weights too. Evaluations never depend on it: each names its own weights."""
        request = pb.SetCoefficientsRequest(perturbation=to_perturbation(at), verify=verify)
        return WeightState.from_proto(self._call(self._directions.SetCoefficients, request, pb.WeightState,
                                                 timeout=self.timeouts.direction, name="SetCoefficients"))

    # -- candidates (checkpoints and adapters registered at run time) ----------------------------

    def add_candidate(self, name: str, source: str, *, kind: str = "") -> CandidateInfo:
        """Register ``source`` as ``name`` (:func:`.builders.candidate_request`); answers at once, loading:
        :meth:`wait_for_candidate`. Not retried (a lost answer's retry meets ALREADY_EXISTS)."""
        return CandidateInfo.from_proto(self._call(self._candidates.AddCandidate, candidate_request(name, source, kind),
                                                   pb.Candidate, timeout=self.timeouts.info, name="AddCandidate", retry=False))

    def list_candidates(self, *, fingerprint: str = "") -> CandidateList:
        """The candidates this caller sees (``fingerprint``: only those with that content) and the limits."""
        return CandidateList.from_proto(self._call(
            self._candidates.ListCandidates, pb.ListCandidatesRequest(fingerprint=fingerprint),
            pb.ListCandidatesResponse, timeout=self.timeouts.info, name="ListCandidates"))

    def remove_candidate(self, name: str, *, wait: bool = False, owner: str = "", timeout: float | None = None) -> bool:
        """Unregister ``name``; ``wait``: for the calls using it (else refused while in use); ``owner``: admins, another's."""
        return self._call(self._candidates.RemoveCandidate, pb.RemoveCandidateRequest(name=name, wait=wait, owner=owner),
                          pb.RemoveCandidateResponse, timeout=timeout or self.timeouts.direction,
                          name="RemoveCandidate", retry=False).removed

    def wait_for_candidate(self, name: str, *, timeout: float = 600.0, poll: float = 0.5) -> CandidateInfo:
        """The candidate ``name`` once it is no longer loading (ready or failed: check ``state``);
        NotFoundError if it is gone, DeadlineExceededError if still loading after ``timeout`` s."""
        return poll_candidate(self.list_candidates, name, self.target, timeout=timeout, poll=poll)
