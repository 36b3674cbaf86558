"""``Client``: a typed, torch-free handle on one server (one channel; a context manager).

Every call has a deadline. Calls are idempotent by design (absolute weight states, content-
addressed directions, deterministic generation), so UNAVAILABLE is retried with exponential
backoff, and RESOURCE_EXHAUSTED is retried only when the server's queue sent a retry hint.
gRPC errors become the exceptions of ``client.errors``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from .credentials import channel_credentials, with_token
from .errors import ResourceExhaustedError, UnavailableError, ValidationError, from_rpc

log = structlog.get_logger("safety_landscape.client")

SYSTEM_PROMPT_PRESETS = ("default", "empty", "llama2", "roleplay", "vicuna", "mistral")
CHAT_FORMATS = {
    "tokenizer": pb.CHAT_FORMAT_TOKENIZER,
    "none": pb.CHAT_FORMAT_NONE,
    "llama2": pb.CHAT_FORMAT_LLAMA2,
    "vicuna": pb.CHAT_FORMAT_VICUNA,
    "mistral": pb.CHAT_FORMAT_MISTRAL,
    "llama3": pb.CHAT_FORMAT_LLAMA3,
}
NORMALIZATIONS = {"layer": pb.NORMALIZATION_LAYER, "filter": pb.NORMALIZATION_FILTER, "none": pb.NORMALIZATION_NONE}
SELECTIONS = {"reference": pb.TENSOR_SELECTION_REFERENCE, "biasbn": pb.TENSOR_SELECTION_BIASBN, "all": pb.TENSOR_SELECTION_ALL}
STREAMS = {"per_tensor": pb.RANDOM_STREAM_PER_TENSOR, "reference": pb.RANDOM_STREAM_REFERENCE}


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


# -- request builders (validated before any RPC) -------------------------------------------------


def system_prompt(value: str | None) -> pb.SystemPrompt:
    """A preset name (default, empty, llama2, roleplay, vicuna, mistral) or else a custom text."""
    if value is None:
        return pb.SystemPrompt(preset="default")
    if value in SYSTEM_PROMPT_PRESETS:
        return pb.SystemPrompt(preset=value)
    return pb.SystemPrompt(text=value)


def chat_format(name: str) -> int:
    try:
        return CHAT_FORMATS[name]
    except KeyError:
        raise ValidationError(f"unknown chat format {name!r}; use one of {', '.join(CHAT_FORMATS)}") from None


def random_direction(
    seed: int,
    *,
    normalization: str = "layer",
    selection: str = "reference",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    stream: str = "per_tensor",
    index: int = 0,
) -> pb.DirectionSpec:
    for value, table, what in ((normalization, NORMALIZATIONS, "normalization"), (selection, SELECTIONS, "selection"), (stream, STREAMS, "stream")):
        if value not in table:
            raise ValidationError(f"unknown {what} {value!r}; use one of {', '.join(table)}")
    if not 0 <= seed < 2**63 or index < 0:
        raise ValidationError("seed must be in [0, 2**63) and index >= 0")
    return pb.DirectionSpec(
        random=pb.RandomDirectionSpec(
            seed=seed, normalization=NORMALIZATIONS[normalization], selection=SELECTIONS[selection],
            include=list(include), exclude=list(exclude), stream=STREAMS[stream], index=index,
        )
    )


def interpolation_direction(target: str) -> pb.DirectionSpec:
    return pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target=target))


def adapter_direction(adapter: str) -> pb.DirectionSpec:
    return pb.DirectionSpec(adapter=pb.AdapterDirectionSpec(adapter=adapter))


def perturbation(terms: Iterable[tuple[str | pb.DirectionSpec, float]] = ()) -> pb.Perturbation:
    """theta0 + sum c_i d_i: each term is (direction id or spec, coefficient)."""
    out = pb.Perturbation()
    for direction, coef in terms:
        coef = float(coef)
        if coef != coef or coef in (float("inf"), float("-inf")):
            raise ValidationError(f"coefficient {coef} is not finite")
        if isinstance(direction, pb.DirectionSpec):
            out.terms.append(pb.Term(spec=direction, coefficient=coef))
        else:
            out.terms.append(pb.Term(direction_id=direction, coefficient=coef))
    return out


def generation(max_new_tokens: int = 128, *, do_sample: bool = False, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0) -> pb.GenerationSettings:
    if max_new_tokens < 1:
        raise ValidationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return pb.GenerationSettings(max_new_tokens=max_new_tokens, do_sample=do_sample, seed=seed, temperature=temperature, top_p=top_p)


def evaluation_settings(
    *,
    prompts: Sequence[str] | None = None,
    prompt_set: str | None = None,
    limit: int = 0,
    system: str | None = None,
    chat: str = "tokenizer",
    max_new_tokens: int = 128,
    generation_preset: str = "",
    keywords: Sequence[str] = (),
    judge: str = "keyword",
    return_completions: bool = False,
    disable_early_stop: bool = False,
) -> pb.EvaluationSettings:
    if (prompts is None) == (prompt_set is None):
        raise ValidationError("give exactly one of prompts (inline) or prompt_set (a named set)")
    if prompts is not None and not prompts:
        raise ValidationError("prompts is empty: give at least one prompt")
    if limit < 0:
        raise ValidationError("limit must be >= 0 (0 = all)")
    source = pb.PromptSource(limit=limit)
    if prompts is not None:
        source.inline.prompts.extend(prompts)
    else:
        source.set_name = prompt_set or ""
    if judge == "keyword":
        judge_pb = pb.JudgeSpec(keyword=pb.KeywordJudge(keywords=list(keywords)))
    elif judge == "classifier":
        judge_pb = pb.JudgeSpec(classifier=pb.ClassifierJudge())
    else:
        raise ValidationError(f"unknown judge {judge!r}; use keyword or classifier")
    return pb.EvaluationSettings(
        prompts=source,
        system_prompt=system_prompt(system),
        chat_format=chat_format(chat),
        generation=pb.GenerationSettings() if generation_preset else generation(max_new_tokens),
        generation_preset=generation_preset,
        judge=judge_pb,
        return_completions=return_completions,
        disable_early_stop=disable_early_stop,
    )


# -- the client ----------------------------------------------------------------------------------


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, UnavailableError):
        return True
    return isinstance(exc, ResourceExhaustedError) and exc.retry_after_seconds > 0


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ResourceExhaustedError) and exc.retry_after_seconds > 0:
        return min(exc.retry_after_seconds, 30.0)
    return min(0.5 * 2 ** (state.attempt_number - 1), 10.0)


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
        self._landscape = pb_grpc.LandscapeServiceStub(self.channel)
        self._directions = pb_grpc.DirectionServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._raw_channel.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def _call(self, stub_method, request, *, timeout: float, name: str, retry: bool = True):
        def once():
            try:
                return stub_method(request, timeout=timeout)
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
                          timeout=timeout or self.timeouts.info, name="Health/Check", retry=False)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def wait_until_serving(self, timeout: float = 600.0, poll: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.health(timeout=min(5.0, poll * 10))
                if last == "SERVING":
                    return
            except UnavailableError as exc:
                last = str(exc)
            time.sleep(poll)
        raise UnavailableError(f"{self.target} did not become SERVING within {timeout:.0f} s (last: {last})",
                               code=grpc.StatusCode.UNAVAILABLE)

    def info(self) -> pb.ModelInfo:
        return self._call(self._landscape.GetInfo, pb.GetInfoRequest(), timeout=self.timeouts.info, name="GetInfo")

    def list_prompt_sets(self) -> list[pb.PromptSetInfo]:
        return list(self._call(self._landscape.ListPromptSets, pb.ListPromptSetsRequest(), timeout=self.timeouts.info, name="ListPromptSets").sets)

    def list_registry(self) -> list[pb.RegistryEntry]:
        return list(self._call(self._directions.ListRegistry, pb.ListRegistryRequest(), timeout=self.timeouts.info, name="ListRegistry").entries)

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
        return self._call(self._landscape.Generate, request, timeout=timeout or self.timeouts.generate, name="Generate")

    def evaluate(self, settings: pb.EvaluationSettings, *, at: pb.Perturbation | None = None, timeout: float | None = None) -> pb.EvaluateSafetyResponse:
        request = pb.EvaluateSafetyRequest(settings=settings, perturbation=at or pb.Perturbation())
        return self._call(self._landscape.EvaluateSafety, request, timeout=timeout or self.timeouts.generate, name="EvaluateSafety")

    def evaluate_points(self, settings: pb.EvaluationSettings, points: Sequence[pb.Perturbation], *, timeout: float | None = None) -> Iterator[pb.PointResult]:
        """Stream one result per point (in the server's order; each carries its index)."""
        request = pb.EvaluatePointsRequest(settings=settings, points=list(points))
        try:
            yield from self._landscape.EvaluatePoints(request, timeout=timeout or self.timeouts.generate * max(1, len(points)))
        except grpc.RpcError as exc:
            raise from_rpc(exc, "EvaluatePoints") from None

    def score(self, items: Sequence[tuple[str, str]], *, candidates: Sequence[str] = (), at: pb.Perturbation | None = None, timeout: float | None = None) -> pb.ScoreResponse:
        if not items:
            raise ValidationError("no items to score")
        request = pb.ScoreRequest(
            items=[pb.ScoreItem(context=c, continuation=x) for c, x in items],
            perturbation=at or pb.Perturbation(), next_token_candidates=list(candidates),
        )
        return self._call(self._landscape.Score, request, timeout=timeout or self.timeouts.generate, name="Score")

    # -- directions (admin) --------------------------------------------------------------------

    def create_direction(self, spec: pb.DirectionSpec) -> pb.Direction:
        return self._call(self._directions.CreateDirection, pb.CreateDirectionRequest(spec=spec), timeout=self.timeouts.direction, name="CreateDirection")

    def list_directions(self) -> pb.ListDirectionsResponse:
        return self._call(self._directions.ListDirections, pb.ListDirectionsRequest(), timeout=self.timeouts.info, name="ListDirections")

    def delete_direction(self, direction_id: str) -> bool:
        return self._call(self._directions.DeleteDirection, pb.DeleteDirectionRequest(direction_id=direction_id), timeout=self.timeouts.direction, name="DeleteDirection").deleted

    def set_coefficients(self, at: pb.Perturbation, *, verify: bool = False) -> pb.WeightState:
        return self._call(self._directions.SetCoefficients, pb.SetCoefficientsRequest(perturbation=at, verify=verify), timeout=self.timeouts.direction, name="SetCoefficients")
