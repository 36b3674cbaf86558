"""The gRPC servicers: protobuf in, one ``ModelHost`` call, protobuf out (translation only).

The servicers get the host from a provider (``HostSlot``): it raises UNAVAILABLE while the model
loads. Request checks live in the engine's admission, which the servicers reach through
``ModelHost.admission`` only, and in ``convert``; scheduling, ordering and metrics in the host.

Errors: the ``_rpc`` wrapper is the one place that maps the domain error tree to status codes;
an out-of-memory anywhere (the device's, or a CPU allocation) becomes RESOURCE_EXHAUSTED naming
``max_job_memory_bytes``; anything else unexpected becomes INTERNAL with the traceback logged
(never sent). A status message is cut to ``MAX_STATUS_CHARS``, so it always fits the metadata.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from safety_landscape import __version__
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from . import convert, convert_judging, referee_jobs
from .config import Limits, ServerConfig
from .context import admin_var, request_id_var, tenant_var
from .engine.admission import TermRequest
from .engine.direction_slots import Caller
from .engine.evaluation import EvalOutcome, EvalSettings
from .errors import LandscapeError, ResourceExhausted
from .host import Call, Job, ModelHost
from .referee_jobs import Evaluated

__all__ = ["DirectionServicer", "HostProvider", "LandscapeServicer"]

log = structlog.get_logger("safety_landscape.service")
HostProvider = Callable[[], ModelHost]  # the host, or Unavailable while the model loads
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp")
S = TypeVar("S", bound="_Base")
NO_DEADLINE_SECONDS = 1e8  # a deadline further away than three years is no deadline
MAX_STATUS_CHARS = 2000  # well under gRPC's 16 KiB of metadata, whatever a message quotes
_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def _abort(context: grpc.ServicerContext, exc: LandscapeError) -> NoReturn:
    if isinstance(exc, ResourceExhausted) and exc.retry_after_seconds:
        context.set_trailing_metadata((("grpc-retry-pushback-ms", str(int(exc.retry_after_seconds * 1000))),))
    message = exc.message if len(exc.message) <= MAX_STATUS_CHARS else exc.message[:MAX_STATUS_CHARS] + " [...]"
    context.abort(getattr(grpc.StatusCode, exc.code_name), message)
    raise AssertionError("context.abort returns only by raising")  # pragma: no cover


def _out_of_memory(exc: Exception) -> ResourceExhausted | None:
    """A device or CPU allocation failure as RESOURCE_EXHAUSTED (torch raises OutOfMemoryError on a
    device, a RuntimeError saying it "can't allocate memory" on a CPU, Python a MemoryError)."""
    if not (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS))):
        return None
    log.warning("out of memory", error=str(exc)[:300])
    return ResourceExhausted(
        "the server ran out of memory for this call; send fewer or shorter prompts or items, or ask the operator "
        "to lower max_job_memory_bytes so that such calls are split or refused before they start",
        limit="max_job_memory_bytes",
    )


def _fail(context: grpc.ServicerContext, exc: Exception, method_name: str) -> NoReturn:
    """The one mapping from an exception to a status: domain errors keep their code and message;
    an out-of-memory is RESOURCE_EXHAUSTED; anything else is INTERNAL with the traceback logged,
    never sent. Call inside ``except``."""
    if isinstance(exc, LandscapeError):
        _abort(context, exc)
    oom = _out_of_memory(exc)
    if oom is not None:
        _abort(context, oom)
    log.exception("internal error", method=method_name)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id_var.get()}); see the server log")
    raise AssertionError("context.abort returns only by raising")  # pragma: no cover


Unary = Callable[[S, Req, grpc.ServicerContext], Resp]
Streaming = Callable[[S, Req, grpc.ServicerContext], Iterator[Resp]]


def _rpc(method: Unary[S, Req, Resp]) -> Unary[S, Req, Resp]:
    """A unary handler: check the request size limit, run, map errors with ``_fail``."""

    @functools.wraps(method)
    def unary(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
        try:
            convert.check_size(request, self.limits)
            return method(self, request, context)
        except Exception as exc:
            _fail(context, exc, method.__name__)

    return unary


def _rpc_stream(method: Streaming[S, Req, Resp]) -> Streaming[S, Req, Resp]:
    """The same for a server-streaming handler."""

    @functools.wraps(method)
    def stream(self: S, request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
        try:
            convert.check_size(request, self.limits)
            yield from method(self, request, context)
        except Exception as exc:
            _fail(context, exc, method.__name__)

    return stream


def _remaining(context: grpc.ServicerContext) -> float | None:
    """Seconds left to the call's deadline; None without one (grpc then reports a huge number)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > NO_DEADLINE_SECONDS else float(remaining)


def _call(context: grpc.ServicerContext) -> Call:
    remaining = _remaining(context)
    deadline = time.monotonic() + remaining if remaining is not None else None
    return Call(tenant=tenant_var.get(), admin=admin_var.get(), deadline=deadline, on_cancel=context.add_callback,
                is_active=context.is_active)


def _gone(context: grpc.ServicerContext) -> Callable[[], bool]:
    """For work on the request's own thread (admission): whether the caller left or its deadline passed."""
    return lambda: not context.is_active() or (_remaining(context) or 1.0) <= 0


def _timings(job: Job[Any], started: float, outcome: EvalOutcome | None = None, referee: float = 0.0) -> pb.Timings:
    timings = convert.timings_to_pb(
        outcome.stats if outcome else None, queue=job.queue_seconds, apply=job.state.apply_seconds if job.state else 0.0,
        judge=outcome.judge_seconds if outcome else 0.0, total=time.perf_counter() - started,
    )
    timings.referee_seconds = referee
    return timings


class _Base:
    def __init__(self, host: HostProvider, config: ServerConfig) -> None:
        self.host = host
        self.config = config
        self.limits: Limits = config.limits

    def _terms(self, host: ModelHost, msg: pb.Perturbation) -> list[TermRequest]:
        terms = convert.terms_from_pb(msg, self.limits)
        host.admission.check_terms(terms)
        return terms


class LandscapeServicer(_Base, pb_grpc.LandscapeServiceServicer):
    @_rpc
    def GetInfo(self, request: pb.GetInfoRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        engine = self.host().engine
        limits = convert.limits_to_pb(
            self.limits, direction_storage=engine.weights.storage,  # "auto" as resolved
            queue_reserve=self.limits.queue_reserve_effective(), max_job_memory_bytes=engine.job_memory.budget,
        )
        info = convert.model_info_to_pb(engine.facts(), limits=limits, server_version=__version__)
        info.referee.CopyFrom(convert_judging.referee_info_to_pb(engine))
        return info

    @_rpc
    def Generate(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> pb.GenerateResponse:
        started = time.perf_counter()
        host = self.host()
        system, _ = convert.system_prompt_from_pb(request.system_prompt, self.limits)
        fmt = convert.chat_format_from_pb(request.chat_format)
        params = convert.generation_from_pb(request.generation, self.limits)
        terms = self._terms(host, request.perturbation)
        prompts = list(request.prompts)
        # Checked and encoded now, on the request's thread: a too-long prompt fails before it queues.
        admitted = host.admission.generation(prompts, system, fmt, params, should_cancel=_gone(context))
        results, stats, job = host.generate(
            prompts, admitted=admitted, system_prompt=system, chat_format=fmt, params=params, terms=terms,
            call=_call(context),
        )
        timings = convert.timings_to_pb(
            stats, queue=job.queue_seconds, apply=job.state.apply_seconds if job.state else 0.0,
            total=time.perf_counter() - started,
        )
        return pb.GenerateResponse(
            completions=convert.completions_to_pb(results), weight_state=convert.weight_state_to_pb(job.state),
            timings=timings, generated_tokens=stats.generated_tokens,
        )

    def _eval_settings(self, host: ModelHost, msg: pb.EvaluationSettings, context: grpc.ServicerContext) -> EvalSettings:
        admission = host.admission
        inline, set_name, limit = convert.prompt_source_from_pb(msg.prompts)
        admission.check_keywords(msg.judge.keyword.keywords)  # bounded before they are copied
        prompt_set = admission.prompt_set(inline=inline, set_name=set_name, limit=limit)
        # Encoded now, on the request's thread: a too-long prompt fails before the request queues.
        settings = convert.eval_settings_from_pb(msg, prompt_set, self.limits)
        return admission.evaluation(settings, should_cancel=_gone(context))

    def _evaluation_to_pb(
        self, host: ModelHost, settings: EvalSettings, evaluated: Evaluated, started: float
    ) -> pb.EvaluateSafetyResponse:
        outcome, job, referee = evaluated.outcome, evaluated.job, evaluated.referee
        response = pb.EvaluateSafetyResponse(
            asr=outcome.asr,
            jailbroken=outcome.jailbroken,
            total=len(outcome.verdicts),
            verdicts=convert_judging.verdicts_to_pb(outcome, referee, with_completions=settings.return_completions),
            weight_state=convert.weight_state_to_pb(job.state),
            timings=_timings(job, started, outcome, referee.seconds if referee else 0.0),
            prompt_set=convert.prompt_set_to_pb(settings.prompt_set),
            system_prompt_sha256=host.engine.system_prompt_sha256(settings.system_prompt),
            generated_tokens=outcome.stats.generated_tokens,
            tokens_saved=outcome.tokens_saved,
            judge=outcome.judge_name,
        )
        return convert_judging.set_outcomes(response, outcome, referee, host.engine.referee.mode)

    @_rpc
    def EvaluateSafety(self, request: pb.EvaluateSafetyRequest, context: grpc.ServicerContext) -> pb.EvaluateSafetyResponse:
        host = self.host()
        terms = self._terms(host, request.perturbation)
        settings = self._eval_settings(host, request.settings, context)
        started = time.perf_counter()
        evaluated = referee_jobs.evaluate(host, settings, terms, _call(context))
        return self._evaluation_to_pb(host, settings, evaluated, started)

    @_rpc_stream
    def EvaluatePoints(self, request: pb.EvaluatePointsRequest, context: grpc.ServicerContext) -> Iterator[pb.PointResult]:
        host = self.host()
        host.admission.check_points(len(request.points))
        points = [self._terms(host, p) for p in request.points]
        settings = self._eval_settings(host, request.settings, context)
        started = time.perf_counter()
        for evaluated in referee_jobs.evaluate_points(host, settings, points, _call(context)):
            yield pb.PointResult(index=evaluated.index, result=self._evaluation_to_pb(host, settings, evaluated, started))
            started = time.perf_counter()

    @_rpc
    def Score(self, request: pb.ScoreRequest, context: grpc.ServicerContext) -> pb.ScoreResponse:
        started = time.perf_counter()
        host = self.host()
        host.admission.check_score_items(len(request.items))
        terms = self._terms(host, request.perturbation)
        items = [(item.context, item.continuation) for item in request.items]
        admitted = host.admission.score(items, list(request.next_token_candidates), should_cancel=_gone(context))
        outcomes, job = host.run_call(
            lambda engine, cancel: engine.score(admitted, should_cancel=cancel), _call(context), terms=terms
        )
        return pb.ScoreResponse(
            results=convert.score_results_to_pb(outcomes),
            weight_state=convert.weight_state_to_pb(job.state),
            timings=_timings(job, started),
        )

    @_rpc
    def Judge(self, request: pb.JudgeRequest, context: grpc.ServicerContext) -> pb.JudgeResponse:
        started = time.perf_counter()
        host = self.host()
        rows = convert_judging.judge_rows_from_pb(request, self.limits)
        host.engine.admission.check_keywords(request.judge.keyword.keywords)  # bounded before they are copied
        judge_kind = request.judge.WhichOneof("kind") or "keyword"
        admitted = host.engine.admission.judge(
            rows, judge=judge_kind, keywords=list(request.judge.keyword.keywords), max_new_tokens=request.max_new_tokens,
            classifier_name=request.judge.classifier.name if judge_kind == "classifier" else "",
            classifier_fingerprint=request.judge.classifier.fingerprint if judge_kind == "classifier" else "",
            should_cancel=_gone(context),
        )
        judged = referee_jobs.judge(host, admitted, _call(context))
        return convert_judging.judge_response_to_pb(judged, host.engine.referee.mode,
                                                    model_fingerprint=host.engine.fingerprint, started=started)

    @_rpc
    def ListPromptSets(self, request: pb.ListPromptSetsRequest, context: grpc.ServicerContext) -> pb.ListPromptSetsResponse:
        return pb.ListPromptSetsResponse(sets=[convert.prompt_set_to_pb(ps) for ps in self.host().engine.prompt_sets.list()])


class DirectionServicer(_Base, pb_grpc.DirectionServiceServicer):
    @_rpc
    def CreateDirection(self, request: pb.CreateDirectionRequest, context: grpc.ServicerContext) -> pb.Direction:
        host = self.host()
        spec = convert.direction_spec_from_pb(request.spec)
        host.admission.check_terms([TermRequest(coefficient=0.0, spec=spec)])
        call = _call(context)
        (held, created), _ = host.run_call(
            lambda engine, cancel: engine.create_direction(spec, tenant=call.tenant, admin=call.admin, should_cancel=cancel),
            call,
        )
        return convert.direction_to_pb(held, created=created)

    @_rpc
    def ListDirections(self, request: pb.ListDirectionsRequest, context: grpc.ServicerContext) -> pb.ListDirectionsResponse:
        engine = self.host().engine
        viewer = Caller(tenant_var.get(), admin_var.get())  # a tenant sees its own and the admins' directions
        return pb.ListDirectionsResponse(
            directions=[convert.direction_to_pb(h) for h in engine.list_directions(viewer)],
            memory=convert.memory_to_pb(engine.memory()),
        )

    @_rpc
    def DeleteDirection(self, request: pb.DeleteDirectionRequest, context: grpc.ServicerContext) -> pb.DeleteDirectionResponse:
        did = convert.direction_id_from_pb(request.direction_id, self.limits)
        self.host().run_call(lambda engine, _: engine.delete_direction(did), _call(context))
        return pb.DeleteDirectionResponse(deleted=True)

    @_rpc
    def SetCoefficients(self, request: pb.SetCoefficientsRequest, context: grpc.ServicerContext) -> pb.WeightState:
        host = self.host()
        terms = self._terms(host, request.perturbation)
        verify = request.verify
        digest, job = host.run_call(
            lambda engine, _: engine.weights_sha256() if verify else "", _call(context), terms=terms
        )
        return convert.weight_state_to_pb(job.state, weights_sha256=digest)

    @_rpc
    def ListRegistry(self, request: pb.ListRegistryRequest, context: grpc.ServicerContext) -> pb.ListRegistryResponse:
        return pb.ListRegistryResponse(entries=convert.registry_to_pb(self.host().engine.registry.list()))
