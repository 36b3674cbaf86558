"""Protobuf <-> domain conversions for the servicers (``from_pb`` / ``to_pb``), and the checks
that belong to the wire itself (a request's size, a message that names nothing, a name too long
to look up or to quote in an error: ``max_name_chars``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from safety_landscape.v1 import landscape_pb2 as pb

from .config import Limits
from .engine.admission import TermRequest, check_length, check_pattern_count, check_term_count
from .engine.chat import ChatFormat, resolve_system_prompt
from .engine.directions import AdapterSpec, DirectionSpec, InterpolationSpec, Normalization, RandomSpec, Selection, Stream, Tied
from .engine.evaluation import EvalOutcome, EvalSettings
from .engine.facts import MemoryFacts, ModelFacts
from .engine.generation import FINISH_EOS, FINISH_KEYWORD, FINISH_LENGTH, GenerationParams, GenerationStats, SequenceResult
from .engine.guards import GuardVerdict
from .engine.memory_plan import MemoryPlan
from .engine.prompts import PromptSet
from .engine.scoring import ScoreOutcome
from .engine.weights import AppliedState, HeldDirection
from .errors import InvalidArgument, NotFound, did_you_mean
from .registry import RegistryEntry

E = TypeVar("E")
K = TypeVar("K")


class _Sized(Protocol):
    def ByteSize(self) -> int: ...

_CHAT_FORMATS = {
    pb.CHAT_FORMAT_UNSPECIFIED: ChatFormat.TOKENIZER,
    pb.CHAT_FORMAT_TOKENIZER: ChatFormat.TOKENIZER,
    pb.CHAT_FORMAT_NONE: ChatFormat.NONE,
    pb.CHAT_FORMAT_LLAMA2: ChatFormat.LLAMA2,
    pb.CHAT_FORMAT_VICUNA: ChatFormat.VICUNA,
    pb.CHAT_FORMAT_MISTRAL: ChatFormat.MISTRAL,
    pb.CHAT_FORMAT_LLAMA3: ChatFormat.LLAMA3,
}
_NORMALIZATIONS = {
    pb.NORMALIZATION_UNSPECIFIED: Normalization.LAYER,
    pb.NORMALIZATION_LAYER: Normalization.LAYER,
    pb.NORMALIZATION_FILTER: Normalization.FILTER,
    pb.NORMALIZATION_NONE: Normalization.NONE,
}
_SELECTIONS = {
    pb.TENSOR_SELECTION_UNSPECIFIED: Selection.REFERENCE,
    pb.TENSOR_SELECTION_REFERENCE: Selection.REFERENCE,
    pb.TENSOR_SELECTION_BIASBN: Selection.BIASBN,
    pb.TENSOR_SELECTION_ALL: Selection.ALL,
}
_STREAMS = {
    pb.RANDOM_STREAM_UNSPECIFIED: Stream.PER_TENSOR,
    pb.RANDOM_STREAM_PER_TENSOR: Stream.PER_TENSOR,
    pb.RANDOM_STREAM_REFERENCE: Stream.REFERENCE,
}
_TIED = {
    pb.TIED_PARAMETERS_UNSPECIFIED: Tied.ONCE,
    pb.TIED_PARAMETERS_ONCE: Tied.ONCE,
    pb.TIED_PARAMETERS_REFERENCE: Tied.REFERENCE,
}
_FINISH = {FINISH_EOS: pb.FINISH_REASON_EOS, FINISH_LENGTH: pb.FINISH_REASON_LENGTH, FINISH_KEYWORD: pb.FINISH_REASON_KEYWORD}
GENERATION_PRESETS = {"paper": GenerationParams(max_new_tokens=512)}


def check_size(request: _Sized, limits: Limits) -> None:
    size = request.ByteSize()
    if size > limits.max_message_bytes:
        raise InvalidArgument(
            f"the request is {size} bytes; the limit is {limits.max_message_bytes} (max_message_bytes): "
            "split it into several requests"
        )


def _enum(table: dict[Any, E], value: int, what: str) -> E:
    if value not in table:
        raise InvalidArgument(f"unknown {what} value {value}; see the v1 contract for the valid values")
    return table[value]


def chat_format_from_pb(value: int) -> ChatFormat:
    return _enum(_CHAT_FORMATS, value, "chat_format")


def _name(value: str, what: str, limits: Limits) -> str:
    check_length(value, limits.max_name_chars, what, "max_name_chars")
    return value


def system_prompt_from_pb(msg: pb.SystemPrompt, limits: Limits) -> tuple[str | None, str]:
    """(the text, None for the default; a label for logs and hashes)."""
    kind = msg.WhichOneof("kind")
    if kind == "text":
        check_length(msg.text, limits.max_text_chars, "the system prompt", "max_text_chars")
        return resolve_system_prompt(text=msg.text), "custom"
    preset = _name(msg.preset, "system_prompt.preset", limits) if kind == "preset" else "default"
    return resolve_system_prompt(preset=preset), preset


def generation_from_pb(msg: pb.GenerationSettings, limits: Limits, preset: str = "") -> GenerationParams:
    if preset:
        _name(preset, "generation_preset", limits)
        if preset not in GENERATION_PRESETS:
            raise NotFound(f"unknown generation preset {preset!r}." + did_you_mean(preset, GENERATION_PRESETS))
        return GENERATION_PRESETS[preset]
    return GenerationParams(
        max_new_tokens=msg.max_new_tokens,
        do_sample=msg.do_sample,
        seed=msg.seed,
        temperature=msg.temperature or 1.0,
        top_p=msg.top_p or 1.0,
    )


def prompt_source_from_pb(msg: pb.PromptSource) -> tuple[list[str] | None, str, int]:
    """(the inline prompts or None, the set name, the limit) of a request's prompts."""
    kind = msg.WhichOneof("kind")
    if kind == "inline":
        return list(msg.inline.prompts), "", msg.limit
    if kind == "set_name":
        return None, msg.set_name, msg.limit
    raise InvalidArgument("no prompts: set settings.prompts.inline or settings.prompts.set_name")


def eval_settings_from_pb(msg: pb.EvaluationSettings, prompt_set: PromptSet, limits: Limits) -> EvalSettings:
    """The evaluation settings of ``msg`` over ``prompt_set`` (resolved by ``Engine.admission``)."""
    system, _ = system_prompt_from_pb(msg.system_prompt, limits)
    judge_kind = msg.judge.WhichOneof("kind") or "keyword"
    return EvalSettings(
        prompt_set=prompt_set,
        system_prompt=system,
        chat_format=chat_format_from_pb(msg.chat_format),
        params=generation_from_pb(msg.generation, limits, msg.generation_preset),
        judge=judge_kind,
        keywords=tuple(msg.judge.keyword.keywords) if judge_kind == "keyword" else (),
        return_completions=msg.return_completions,
        early_stop=not msg.disable_early_stop,
        classifier_name=msg.judge.classifier.name if judge_kind == "classifier" else "",
        referee=not msg.disable_referee,
        classifier_fingerprint=msg.judge.classifier.fingerprint if judge_kind == "classifier" else "",
    )


def direction_id_from_pb(value: str, limits: Limits) -> str:
    if not value:
        raise InvalidArgument("direction_id is empty: name the direction to delete")
    return _name(value, "direction_id", limits)


def direction_spec_from_pb(msg: pb.DirectionSpec) -> DirectionSpec:
    kind = msg.WhichOneof("kind")
    if kind == "random":
        r = msg.random
        return RandomSpec(
            seed=r.seed,
            normalization=_enum(_NORMALIZATIONS, r.normalization, "normalization"),
            selection=_enum(_SELECTIONS, r.selection, "selection"),
            include=tuple(r.include),
            exclude=tuple(r.exclude),
            stream=_enum(_STREAMS, r.stream, "stream"),
            index=r.index,
            tied=_enum(_TIED, r.tied, "tied"),
        )
    if kind == "interpolation":
        if not msg.interpolation.target:
            raise InvalidArgument("an interpolation direction needs a target: a registry name (see ListRegistry)")
        return InterpolationSpec(target=msg.interpolation.target)
    if kind == "adapter":
        if not msg.adapter.adapter:
            raise InvalidArgument("an adapter direction needs an adapter: a registry name (see ListRegistry)")
        return AdapterSpec(adapter=msg.adapter.adapter)
    raise InvalidArgument("a direction spec needs one of random, interpolation or adapter")


def _enum_to_pb(table: dict[K, E], value: E) -> K:
    return next(k for k, v in table.items() if v == value and k != 0)


def direction_spec_to_pb(spec: DirectionSpec) -> pb.DirectionSpec:
    if isinstance(spec, RandomSpec):
        inv = _enum_to_pb
        return pb.DirectionSpec(
            random=pb.RandomDirectionSpec(
                seed=spec.seed,
                normalization=inv(_NORMALIZATIONS, spec.normalization),
                selection=inv(_SELECTIONS, spec.selection),
                include=list(spec.include),
                exclude=list(spec.exclude),
                stream=inv(_STREAMS, spec.stream),
                index=spec.index,
                tied=inv(_TIED, spec.tied) if spec.tied is not Tied.ONCE else None,
            )
        )
    if isinstance(spec, InterpolationSpec):
        return pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target=spec.target))
    return pb.DirectionSpec(adapter=pb.AdapterDirectionSpec(adapter=spec.adapter))


def terms_from_pb(msg: pb.Perturbation, limits: Limits) -> list[TermRequest]:
    """The terms; their counts (terms, patterns) checked on the wire message, before anything is copied."""
    check_term_count(len(msg.terms), limits)
    terms = []
    for i, term in enumerate(msg.terms):
        kind = term.WhichOneof("direction")
        if kind == "spec":
            if term.spec.WhichOneof("kind") == "random":
                check_pattern_count(len(term.spec.random.include) + len(term.spec.random.exclude), i, limits)
            terms.append(TermRequest(coefficient=term.coefficient, spec=direction_spec_from_pb(term.spec)))
        elif kind == "direction_id" and term.direction_id:
            terms.append(TermRequest(coefficient=term.coefficient, direction_id=term.direction_id))
        else:
            raise InvalidArgument(f"perturbation term {i} names no direction: set direction_id or spec")
    return terms


def weight_state_to_pb(state: AppliedState | None, *, weights_sha256: str = "") -> pb.WeightState:
    if state is None:
        return pb.WeightState()
    return pb.WeightState(
        fingerprint=state.fingerprint,
        terms=[pb.AppliedTerm(direction_id=d, coefficient=c) for d, c in state.terms],
        weights_sha256=weights_sha256,
        apply_seconds=state.apply_seconds,
    )


def direction_to_pb(held: HeldDirection, *, created: bool = False) -> pb.Direction:
    return pb.Direction(
        id=held.id,
        spec=direction_spec_to_pb(held.spec),
        fingerprint=held.fingerprint,
        bytes_held=held.bytes_held,
        perturbed_tensors=held.perturbed_tensors,
        total_tensors=held.total_tensors,
        created=created,
        create_seconds=held.create_seconds,
        norm=held.norm,
        owner=held.owner,
        admin_owned=held.admin,
    )


def finish_to_pb(reason: str) -> pb.FinishReason:
    return _FINISH.get(reason, pb.FINISH_REASON_UNSPECIFIED)


def completions_to_pb(results: Sequence[SequenceResult]) -> list[pb.Completion]:
    return [
        pb.Completion(
            text=r.text, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            finish_reason=finish_to_pb(r.finish_reason),
        )
        for r in results
    ]


def score_results_to_pb(outcomes: Sequence[ScoreOutcome]) -> list[pb.ScoreResult]:
    return [
        pb.ScoreResult(
            logprob=o.logprob, num_tokens=o.num_tokens, token_logprobs=list(o.token_logprobs),
            is_greedy=o.is_greedy, candidate_logits=list(o.candidate_logits),
        )
        for o in outcomes
    ]


def memory_to_pb(memory: MemoryFacts) -> pb.MemoryReport:
    return pb.MemoryReport(
        model_bytes=memory.model, pristine_bytes=memory.pristine, directions_bytes=memory.directions,
        device_bytes_in_use=memory.device,
    )


def memory_plan_to_pb(plan: MemoryPlan | None) -> pb.MemoryPlan | None:
    if plan is None:
        return None
    s = plan.settings
    devices = [
        pb.DeviceMemoryPlan(
            device=d.device, model_bytes=d.model, pristine_bytes=d.pristine, directions_bytes=d.directions,
            scratch_bytes=d.scratch, kv_cache_bytes=d.kv_cache, activation_bytes=d.activations, runtime_bytes=d.runtime,
            total_bytes=d.total, capacity_bytes=d.capacity, fits=d.fits,
        )
        for d in plan.devices
    ]
    return pb.MemoryPlan(
        devices=devices, direction_storage=plan.storage, pristine=plan.pristine, fits=plan.fits,
        batch_size=s.max_batch_size, prompt_tokens=s.max_prompt_tokens, new_tokens=s.max_new_tokens,
        max_directions=s.max_directions,
    )


def _shared_fields(source: Any, message: type[Message], **renamed: str) -> dict[str, Any]:
    """The dataclass ``source``'s fields that ``message`` has too, by name (or ``renamed[name]``)."""
    known = message.DESCRIPTOR.fields_by_name
    pairs = ((renamed.get(f.name, f.name), getattr(source, f.name)) for f in dataclasses.fields(source))
    return {name: value for name, value in pairs if name in known}


def limits_to_pb(limits: Limits, *, direction_storage: str, **effective: int) -> pb.ServerLimits:
    """Every limit the contract reports, under its own name; ``effective`` gives the value in force
    of a setting whose 0 means "derived" (the queue reserve, the job memory budget)."""
    fields = {**_shared_fields(limits, pb.ServerLimits), **effective}
    return pb.ServerLimits(direction_storage=direction_storage, **fields)


def model_info_to_pb(facts: ModelFacts, *, limits: pb.ServerLimits, server_version: str) -> pb.ModelInfo:
    return pb.ModelInfo(
        model_name=facts.model_name,
        architecture=facts.architecture,
        parameter_count=facts.parameter_count,
        dtype=facts.dtype,
        device=facts.device,
        model_fingerprint=facts.fingerprint,
        tokenizer=pb.TokenizerInfo(**_shared_fields(facts.tokenizer, pb.TokenizerInfo, fingerprint="tokenizer_fingerprint")),
        server_version=server_version,
        limits=limits,
        memory=memory_to_pb(facts.memory),
        torch_version=facts.torch_version,
        device_type=facts.device_type,
        load_seconds=facts.load_seconds,
        memory_plan=memory_plan_to_pb(facts.memory_plan),
        transformers_version=facts.software.transformers_version,
        cuda_version=facts.software.cuda_version,
        device_name=facts.software.device_name,
    )


def registry_to_pb(entries: Sequence[RegistryEntry]) -> list[pb.RegistryEntry]:
    return [pb.RegistryEntry(name=e.name, kind=e.kind) for e in entries]


def timings_to_pb(stats: GenerationStats | None, *, queue: float, apply: float, judge: float = 0.0, total: float) -> pb.Timings:
    return pb.Timings(
        queue_seconds=queue,
        apply_weights_seconds=apply,
        prefill_seconds=stats.prefill_seconds if stats else 0.0,
        decode_seconds=stats.decode_seconds if stats else 0.0,
        judge_seconds=judge,
        total_seconds=total,
    )


def prompt_set_to_pb(ps: PromptSet) -> pb.PromptSetInfo:
    return pb.PromptSetInfo(name=ps.name, size=len(ps.prompts), sha256=ps.sha256, source_format=ps.source_format, kind=ps.kind)


def verdicts_to_pb(outcome: EvalOutcome, *, with_completions: bool) -> list[pb.Verdict]:
    return [
        pb.Verdict(
            index=v.index,
            jailbroken=v.jailbroken,
            matched_keyword=v.matched_keyword,
            classifier_output=v.classifier_output,
            prompt_tokens=v.result.prompt_tokens,
            completion_tokens=v.result.completion_tokens,
            finish_reason=finish_to_pb(v.result.finish_reason),
            completion=v.result.text if with_completions else "",
            classifier=classifier_verdict_to_pb(v.guard) if v.guard is not None else None,
        )
        for v in outcome.verdicts
    ]


def classifier_verdict_to_pb(verdict: GuardVerdict) -> pb.ClassifierVerdict:
    """The classifier judge's verdict on one answer, with the judge's format and weights fingerprint."""
    msg = pb.ClassifierVerdict(judge=verdict.judge, fingerprint=verdict.fingerprint, label=verdict.label,
                               categories=list(verdict.categories))
    if verdict.probability is not None:
        msg.probability = verdict.probability
        msg.threshold = verdict.threshold or 0.0
    return msg
