"""``Client``: a typed, torch-free handle on one server (one channel; a context manager).

Every call has a deadline. Calls are idempotent by design (absolute weight states, content-
addressed directions, deterministic generation), so UNAVAILABLE is retried with exponential
backoff, and RESOURCE_EXHAUSTED is retried only when the server's queue sent a retry hint.
gRPC errors become the exceptions of ``client.errors``. The request builders live in
:mod:`.builders`; they are re-exported here, where callers have long imported them from.
"""

from __future__ import annotations

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
    chat_format,
    evaluation_settings,
    generation,
    interpolation_direction,
    perturbation,
    random_direction,
    system_prompt,
)
from .credentials import channel_credentials, with_token
from .errors import DeadlineExceededError, ResourceExhaustedError, UnavailableError, ValidationError, from_rpc

__all__ = [
    "SYSTEM_PROMPT_PRESETS",
    "Client",
    "Timeouts",
    "TlsConfig",
    "adapter_direction",
    "chat_format",
    "evaluation_settings",
    "generation",
    "interpolation_direction",
    "perturbation",
    "random_direction",
    "system_prompt",
]

log = structlog.get_logger("safety_landscape.client")

Reply = TypeVar("Reply", bound=Message)


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None
    cert_file: str | None = None  # with key_file: mutual TLS
    key_file: str | None = None


@dataclass(frozen=True)
class Timeouts:
    info: float = 30.0
    generate: float = 3600.0
    direction: float = 600.0


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
    """One server. ``with Client("host:port") as c: c.info()``."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: TlsConfig | None = None,
        timeouts: Timeouts = Timeouts(),
        retries: int = 4,
        options: Sequence[tuple[str, object]] = (),
    ) -> None:
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

    def info(self) -> pb.ModelInfo:
        return self._call(self._landscape.GetInfo, pb.GetInfoRequest(), pb.ModelInfo, timeout=self.timeouts.info,
                          name="GetInfo")

    def list_prompt_sets(self) -> list[pb.PromptSetInfo]:
        resp = self._call(self._landscape.ListPromptSets, pb.ListPromptSetsRequest(), pb.ListPromptSetsResponse,
                          timeout=self.timeouts.info, name="ListPromptSets")
        return list(resp.sets)

    def list_registry(self) -> list[pb.RegistryEntry]:
        resp = self._call(self._directions.ListRegistry, pb.ListRegistryRequest(), pb.ListRegistryResponse,
                          timeout=self.timeouts.info, name="ListRegistry")
        return list(resp.entries)

    # -- work ----------------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        *,
        system: str | None = None,
        chat: str = "tokenizer",
        settings: pb.GenerationSettings | None = None,
        at: pb.Perturbation | None = None,
        timeout: float | None = None,
    ) -> pb.GenerateResponse:
        if not prompts:
            raise ValidationError("no prompts: give at least one")
        request = pb.GenerateRequest(
            prompts=list(prompts), system_prompt=system_prompt(system), chat_format=chat_format(chat),
            generation=settings or generation(), perturbation=at or pb.Perturbation(),
        )
        return self._call(self._landscape.Generate, request, pb.GenerateResponse,
                          timeout=timeout or self.timeouts.generate, name="Generate")

    def evaluate(self, settings: pb.EvaluationSettings, *, at: pb.Perturbation | None = None,
                 timeout: float | None = None) -> pb.EvaluateSafetyResponse:
        request = pb.EvaluateSafetyRequest(settings=settings, perturbation=at or pb.Perturbation())
        return self._call(self._landscape.EvaluateSafety, request, pb.EvaluateSafetyResponse,
                          timeout=timeout or self.timeouts.generate, name="EvaluateSafety")

    def evaluate_points(self, settings: pb.EvaluationSettings, points: Sequence[pb.Perturbation], *,
                        timeout: float | None = None) -> Iterator[pb.PointResult]:
        """Stream one result per point (in the server's order; each carries its index)."""
        request = pb.EvaluatePointsRequest(settings=settings, points=list(points))
        deadline = timeout or self.timeouts.generate * max(1, len(points))
        try:
            yield from self._landscape.EvaluatePoints(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise from_rpc(exc, "EvaluatePoints") from None

    def score(self, items: Sequence[tuple[str, str]], *, candidates: Sequence[str] = (), at: pb.Perturbation | None = None,
              timeout: float | None = None) -> pb.ScoreResponse:
        if not items:
            raise ValidationError("no items to score")
        request = pb.ScoreRequest(
            items=[pb.ScoreItem(context=c, continuation=x) for c, x in items],
            perturbation=at or pb.Perturbation(), next_token_candidates=list(candidates),
        )
        return self._call(self._landscape.Score, request, pb.ScoreResponse, timeout=timeout or self.timeouts.generate,
                          name="Score")

    # -- directions (admin) --------------------------------------------------------------------

    def create_direction(self, spec: pb.DirectionSpec) -> pb.Direction:
        return self._call(self._directions.CreateDirection, pb.CreateDirectionRequest(spec=spec), pb.Direction,
                          timeout=self.timeouts.direction, name="CreateDirection")

    def list_directions(self) -> pb.ListDirectionsResponse:
        return self._call(self._directions.ListDirections, pb.ListDirectionsRequest(), pb.ListDirectionsResponse,
                          timeout=self.timeouts.info, name="ListDirections")

    def delete_direction(self, direction_id: str) -> bool:
        resp = self._call(self._directions.DeleteDirection, pb.DeleteDirectionRequest(direction_id=direction_id),
                          pb.DeleteDirectionResponse, timeout=self.timeouts.direction, name="DeleteDirection")
        return resp.deleted

    def set_coefficients(self, at: pb.Perturbation, *, verify: bool = False) -> pb.WeightState:
        return self._call(self._directions.SetCoefficients, pb.SetCoefficientsRequest(perturbation=at, verify=verify),
                          pb.WeightState, timeout=self.timeouts.direction, name="SetCoefficients")

    # -- candidates (checkpoints and adapters registered at run time) ----------------------------

    def add_candidate(self, name: str, source: str, *, kind: str = "") -> pb.Candidate:
        """Register ``source`` (an absolute path on the server, or ORG/NAME[@REV] in its Hub cache)
        as ``name``; ``kind`` "checkpoint", "adapter" or "" (read from the folder). Answers at once
        with state LOADING: ``wait_for_candidate`` waits for READY. Not retried (a second try
        after a lost answer would meet ALREADY_EXISTS)."""
        kinds = {"": pb.CANDIDATE_KIND_UNSPECIFIED, "checkpoint": pb.CANDIDATE_KIND_CHECKPOINT,
                 "adapter": pb.CANDIDATE_KIND_ADAPTER}
        if kind not in kinds:
            raise ValidationError(f"candidate kind {kind!r}: use checkpoint, adapter or leave it empty")
        request = pb.AddCandidateRequest(name=name, source=source, kind=kinds[kind])
        return self._call(self._candidates.AddCandidate, request, pb.Candidate, timeout=self.timeouts.info,
                          name="AddCandidate", retry=False)

    def list_candidates(self, *, fingerprint: str = "") -> pb.ListCandidatesResponse:
        """The candidates this caller sees (``fingerprint``: only those with that content)."""
        return self._call(self._candidates.ListCandidates, pb.ListCandidatesRequest(fingerprint=fingerprint),
                          pb.ListCandidatesResponse, timeout=self.timeouts.info, name="ListCandidates")

    def remove_candidate(self, name: str, *, wait: bool = False, owner: str = "", timeout: float | None = None) -> bool:
        """Unregister ``name``; with ``wait``, wait (up to ``timeout``) for the calls using it
        instead of FAILED_PRECONDITION; ``owner``: another tenant's (admins only)."""
        request = pb.RemoveCandidateRequest(name=name, wait=wait, owner=owner)
        resp = self._call(self._candidates.RemoveCandidate, request, pb.RemoveCandidateResponse,
                          timeout=timeout or self.timeouts.direction, name="RemoveCandidate", retry=False)
        return resp.removed

    def wait_for_candidate(self, name: str, *, timeout: float = 600.0, poll: float = 0.5) -> pb.Candidate:
        """The candidate ``name`` once it is no longer LOADING (READY or FAILED: check ``state``);
        UnavailableError if it still loads after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found: list[pb.Candidate] = [c for c in self.list_candidates().candidates if c.name == name]
            if found and found[0].state != pb.CANDIDATE_STATE_LOADING:
                return found[0]
            if not found:
                raise ValidationError(f"no candidate named {name!r} on {self.target}")
            if time.monotonic() > deadline:
                raise DeadlineExceededError(f"candidate {name!r} still loading after {timeout:.0f} s",
                                            code=grpc.StatusCode.DEADLINE_EXCEEDED, method="ListCandidates")
            time.sleep(poll)

