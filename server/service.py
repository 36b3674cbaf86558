"""The gRPC servicers: protobuf in, one ``ModelHost`` call, protobuf out (translation only).

Errors: the ``_rpc`` wrapper is the one place that maps the domain error tree to status codes;
anything unexpected becomes INTERNAL with the traceback logged (never sent).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import grpc
import structlog

from safety_landscape import __version__
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from . import convert
from .auth import request_id_var, tenant_var
from .config import Limits, ServerConfig
from .engine.evaluation import EvalSettings
from .engine.prompts import inline_prompt_set
from .errors import InvalidArgument, LandscapeError, ResourceExhausted
from .host import ModelHost

log = structlog.get_logger("safety_landscape.service")


def _abort(context: grpc.ServicerContext, exc: LandscapeError):
    if isinstance(exc, ResourceExhausted) and exc.retry_after_seconds:
        context.set_trailing_metadata((("grpc-retry-pushback-ms", str(int(exc.retry_after_seconds * 1000))),))
    context.abort(getattr(grpc.StatusCode, exc.code_name), exc.message)


def _fail(context: grpc.ServicerContext, exc: Exception, method_name: str):
    """The one mapping from an exception to a status: domain errors keep their code and message;
    anything else is INTERNAL with the traceback logged, never sent. Call inside ``except``."""
    if isinstance(exc, LandscapeError):
        _abort(context, exc)
    log.exception("internal error", method=method_name)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id_var.get()}); see the server log")


def _rpc(method: Callable) -> Callable:
    """A unary handler: check the request size limit, run, map errors with ``_fail``."""

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            self._check_size(request)
            return method(self, request, context)
        except Exception as exc:
            _fail(context, exc, method.__name__)

    return unary


def _rpc_stream(method: Callable) -> Callable:
    """The same for a server-streaming handler."""

    @functools.wraps(method)
    def stream(self, request, context):
        try:
            self._check_size(request)
            yield from method(self, request, context)
        except Exception as exc:
            _fail(context, exc, method.__name__)

    return stream


class _Base:
    def __init__(self, host: ModelHost, config: ServerConfig) -> None:
        self.host = host
        self.config = config
        self.limits: Limits = config.limits

    def _check_size(self, request) -> None:
        size = request.ByteSize()
        if size > self.limits.max_message_bytes:
            raise InvalidArgument(
                f"the request is {size} bytes; the limit is {self.limits.max_message_bytes} (max_message_bytes): "
                "split it into several requests"
            )

    def _run(self, context, work, *, terms=None):
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining if remaining is not None else None
        return self.host.run(work, tenant=tenant_var.get(), terms=terms, deadline=deadline, on_cancel=context.add_callback)


class LandscapeServicer(_Base, pb_grpc.LandscapeServiceServicer):
    @_rpc
    def GetInfo(self, request, context):
        engine = self.host.engine
        loaded = engine.loaded
        facts = engine.tokenizer_facts
        mem = engine.memory()
        lim = self.limits
        import torch

        return pb.ModelInfo(
            model_name=loaded.source.name,
            architecture=type(loaded.model).__name__,
            parameter_count=engine.parameter_count,
            dtype=str(loaded.dtype).removeprefix("torch."),
            device=str(loaded.device),
            model_fingerprint=engine.fingerprint,
            tokenizer=pb.TokenizerInfo(
                tokenizer_class=facts.tokenizer_class,
                vocab_size=facts.vocab_size,
                has_chat_template=facts.has_chat_template,
                chat_template_sha256=facts.chat_template_sha256,
                default_system_prompt=facts.default_system_prompt,
                eos_token=facts.eos_token,
                pad_token=facts.pad_token,
                tokenizer_fingerprint=facts.fingerprint,
            ),
            server_version=__version__,
            limits=pb.ServerLimits(
                max_batch_size=lim.max_batch_size,
                max_new_tokens=lim.max_new_tokens,
                max_prompts_per_request=lim.max_prompts_per_request,
                max_prompt_tokens=lim.max_prompt_tokens,
                max_message_bytes=lim.max_message_bytes,
                max_directions=lim.max_directions,
                max_abs_coefficient=lim.max_abs_coefficient,
                direction_storage=self.config.direction_storage,
                max_queued_jobs_per_tenant=lim.max_queued_jobs_per_tenant,
                max_queued_jobs=lim.max_queued_jobs,
                max_directions_per_tenant=lim.max_directions_per_tenant,
            ),
            memory=pb.MemoryReport(
                model_bytes=mem["model"], pristine_bytes=mem["pristine"], directions_bytes=mem["directions"],
                device_bytes_in_use=mem["device"],
            ),
            torch_version=torch.__version__,
            device_type=loaded.device.type,
            load_seconds=loaded.load_seconds,
        )

    def _check_prompts(self, prompts) -> None:
        if not prompts:
            raise InvalidArgument("no prompts: send at least one prompt")
        if len(prompts) > self.limits.max_prompts_per_request:
            raise InvalidArgument(
                f"{len(prompts)} prompts; the limit is {self.limits.max_prompts_per_request} per request "
                "(max_prompts_per_request): split them over several requests"
            )

    @_rpc
    def Generate(self, request, context):
        started = time.perf_counter()
        self._check_prompts(request.prompts)
        system, _ = convert.system_prompt_from_pb(request.system_prompt)
        fmt = convert.chat_format_from_pb(request.chat_format)
        params = convert.generation_from_pb(request.generation)
        terms = convert.terms_from_pb(request.perturbation)
        self.host.engine.check_generation(params)
        prompts = list(request.prompts)
        encoded = self.host.engine.admit(prompts, system, fmt)  # a too-long prompt fails here, not after the queue

        def work(engine, cancel):
            return engine.generate(
                prompts, system_prompt=system, chat_format=fmt, params=params, should_cancel=cancel, encoded=encoded
            )

        (results, stats), job = self._run(context, work, terms=terms)
        self._observe(stats)
        return pb.GenerateResponse(
            completions=[
                pb.Completion(
                    text=r.text, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                    finish_reason=convert.finish_to_pb(r.finish_reason),
                )
                for r in results
            ],
            weight_state=convert.weight_state_to_pb(job.state),
            timings=convert.timings_to_pb(
                stats, queue=job.queue_seconds, apply=job.state.apply_seconds if job.state else 0.0,
                total=time.perf_counter() - started,
            ),
            generated_tokens=stats.generated_tokens,
        )

    def _eval_settings(self, msg: pb.EvaluationSettings) -> tuple[EvalSettings, str]:
        engine = self.host.engine
        source = msg.prompts
        kind = source.WhichOneof("kind")
        if kind == "inline":
            self._check_prompts(source.inline.prompts)
            prompt_set = inline_prompt_set(list(source.inline.prompts))
        elif kind == "set_name":
            prompt_set = engine.prompt_sets.get(source.set_name)
        else:
            raise InvalidArgument("no prompts: set settings.prompts.inline or settings.prompts.set_name")
        if source.limit < 0:
            raise InvalidArgument(f"prompts.limit is {source.limit}; use 0 (all) or a positive count")
        prompt_set = prompt_set.head(source.limit)
        self._check_prompts(prompt_set.prompts)
        system, _ = convert.system_prompt_from_pb(msg.system_prompt)
        judge_kind = msg.judge.WhichOneof("kind") or "keyword"
        keywords = tuple(msg.judge.keyword.keywords) if judge_kind == "keyword" else ()
        if any(not k for k in keywords):
            raise InvalidArgument("judge.keyword.keywords contains an empty string; remove it")
        settings = EvalSettings(
            prompt_set=prompt_set,
            system_prompt=system,
            chat_format=convert.chat_format_from_pb(msg.chat_format),
            params=convert.generation_from_pb(msg.generation, msg.generation_preset),
            judge=judge_kind,
            keywords=keywords,
            return_completions=msg.return_completions,
            early_stop=not msg.disable_early_stop,
            classifier_name=msg.judge.classifier.name if judge_kind == "classifier" else "",
        )
        engine.check_generation(settings.params)
        # Encoded now, on the request's thread: a too-long prompt fails before the request queues.
        encoded = engine.admit(prompt_set.prompts, system, settings.chat_format)
        settings = dataclasses.replace(settings, encoded=tuple(tuple(ids) for ids in encoded))
        return settings, convert.system_prompt_sha256(system, engine.tokenizer_facts.chat_template_sha256)

    def _evaluate_one(self, context, settings: EvalSettings, system_sha: str, perturbation: pb.Perturbation):
        started = time.perf_counter()
        terms = convert.terms_from_pb(perturbation)
        work = lambda engine, cancel: engine.evaluate(settings, should_cancel=cancel)  # noqa: E731
        outcome, job = self._run(context, work, terms=terms)
        self._observe(outcome.stats, saved=outcome.tokens_saved)
        if self.host.metrics is not None:
            self.host.metrics.points_evaluated_total.inc()
        return pb.EvaluateSafetyResponse(
            asr=outcome.asr,
            jailbroken=outcome.jailbroken,
            total=len(outcome.verdicts),
            verdicts=convert.verdicts_to_pb(outcome, with_completions=settings.return_completions),
            weight_state=convert.weight_state_to_pb(job.state),
            timings=convert.timings_to_pb(
                outcome.stats, queue=job.queue_seconds, apply=job.state.apply_seconds if job.state else 0.0,
                judge=outcome.judge_seconds, total=time.perf_counter() - started,
            ),
            prompt_set=convert.prompt_set_to_pb(settings.prompt_set),
            system_prompt_sha256=system_sha,
            generated_tokens=outcome.stats.generated_tokens,
            tokens_saved=outcome.tokens_saved,
            judge=outcome.judge_name,
        )

    @_rpc
    def EvaluateSafety(self, request, context):
        settings, system_sha = self._eval_settings(request.settings)
        return self._evaluate_one(context, settings, system_sha, request.perturbation)

    @_rpc_stream
    def EvaluatePoints(self, request, context):
        if not request.points:
            raise InvalidArgument("no points: send at least one perturbation in points")
        if len(request.points) > self.limits.max_points_per_request:
            raise InvalidArgument(
                f"{len(request.points)} points; the limit is {self.limits.max_points_per_request} per call: split them"
            )
        settings, system_sha = self._eval_settings(request.settings)
        # Points at the weights already applied first, then in the order sent.
        order = sorted(range(len(request.points)), key=lambda i: (not _is_origin(request.points[i]), i))
        for index in order:
            if not context.is_active():
                return
            result = self._evaluate_one(context, settings, system_sha, request.points[index])
            yield pb.PointResult(index=index, result=result)

    @_rpc
    def Score(self, request, context):
        started = time.perf_counter()
        if not request.items:
            raise InvalidArgument("no items to score: send at least one (context, continuation)")
        if len(request.items) > self.limits.max_prompts_per_request:
            raise InvalidArgument(
                f"{len(request.items)} items; the limit is {self.limits.max_prompts_per_request} (max_prompts_per_request)"
            )
        items = [(item.context, item.continuation) for item in request.items]
        candidates = list(request.next_token_candidates)
        terms = convert.terms_from_pb(request.perturbation)
        work = lambda engine, cancel: engine.score(items, candidates=candidates, should_cancel=cancel)  # noqa: E731
        outcomes, job = self._run(context, work, terms=terms)
        return pb.ScoreResponse(
            results=[
                pb.ScoreResult(
                    logprob=o.logprob, num_tokens=o.num_tokens, token_logprobs=list(o.token_logprobs),
                    is_greedy=o.is_greedy, candidate_logits=list(o.candidate_logits),
                )
                for o in outcomes
            ],
            weight_state=convert.weight_state_to_pb(job.state),
            timings=convert.timings_to_pb(
                None, queue=job.queue_seconds, apply=job.state.apply_seconds if job.state else 0.0,
                total=time.perf_counter() - started,
            ),
        )

    @_rpc
    def ListPromptSets(self, request, context):
        return pb.ListPromptSetsResponse(sets=[convert.prompt_set_to_pb(ps) for ps in self.host.engine.prompt_sets.list()])

    def _observe(self, stats, saved: int = 0) -> None:
        metrics = self.host.metrics
        if metrics is None:
            return
        metrics.generated_tokens_total.inc(stats.generated_tokens)
        metrics.tokens_saved_total.inc(saved)
        metrics.prefill_seconds.observe(stats.prefill_seconds)
        metrics.decode_seconds.observe(stats.decode_seconds)
        metrics.observe_decode(tokens=stats.generated_tokens, seconds=stats.decode_seconds)
        metrics.oom_splits_total.inc(stats.oom_splits)
        for size in stats.batches:
            metrics.batch_size.observe(size)


class DirectionServicer(_Base, pb_grpc.DirectionServiceServicer):
    @_rpc
    def CreateDirection(self, request, context):
        spec = convert.direction_spec_from_pb(request.spec)
        tenant = tenant_var.get()
        (held, created), _ = self._run(context, lambda engine, _: engine.create_direction(spec, tenant=tenant))
        return convert.direction_to_pb(held, created=created)

    @_rpc
    def ListDirections(self, request, context):
        engine = self.host.engine
        mem = engine.memory()
        return pb.ListDirectionsResponse(
            directions=[convert.direction_to_pb(h) for h in engine.weights.list()],
            memory=pb.MemoryReport(
                model_bytes=mem["model"], pristine_bytes=mem["pristine"], directions_bytes=mem["directions"],
                device_bytes_in_use=mem["device"],
            ),
        )

    @_rpc
    def DeleteDirection(self, request, context):
        if not request.direction_id:
            raise InvalidArgument("direction_id is empty: name the direction to delete")
        did = request.direction_id
        self._run(context, lambda engine, _: engine.weights.delete(did))
        return pb.DeleteDirectionResponse(deleted=True)

    @_rpc
    def SetCoefficients(self, request, context):
        terms = convert.terms_from_pb(request.perturbation)
        verify = request.verify
        digest, job = self._run(context, lambda engine, _: engine.weights.weights_sha256() if verify else "", terms=terms)
        return convert.weight_state_to_pb(job.state, weights_sha256=digest)

    @_rpc
    def ListRegistry(self, request, context):
        entries = self.host.engine.registry.list()
        return pb.ListRegistryResponse(entries=[pb.RegistryEntry(name=e.name, kind=e.kind) for e in entries])


def _is_origin(p: pb.Perturbation) -> bool:
    return all(t.coefficient == 0.0 for t in p.terms)
