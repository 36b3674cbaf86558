"""Protobuf <-> domain conversions for the servicers (``from_pb`` / ``to_pb``), nothing else."""

from __future__ import annotations

import hashlib

from safety_landscape.v1 import landscape_pb2 as pb

from .engine.chat import ChatFormat, resolve_system_prompt
from .engine.directions import AdapterSpec, DirectionSpec, InterpolationSpec, Normalization, RandomSpec, Selection, Stream
from .engine.engine import TermRequest
from .engine.evaluation import EvalOutcome
from .engine.generation import FINISH_EOS, FINISH_KEYWORD, FINISH_LENGTH, GenerationParams, GenerationStats
from .engine.prompts import PromptSet
from .engine.weights import AppliedState, HeldDirection
from .errors import InvalidArgument, NotFound, did_you_mean

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
_FINISH = {FINISH_EOS: pb.FINISH_REASON_EOS, FINISH_LENGTH: pb.FINISH_REASON_LENGTH, FINISH_KEYWORD: pb.FINISH_REASON_KEYWORD}
GENERATION_PRESETS = {"paper": GenerationParams(max_new_tokens=512)}


def _enum(table: dict, value: int, what: str):
    if value not in table:
        raise InvalidArgument(f"unknown {what} value {value}; see the v1 contract for the valid values")
    return table[value]


def chat_format_from_pb(value: int) -> ChatFormat:
    return _enum(_CHAT_FORMATS, value, "chat_format")


def system_prompt_from_pb(msg: pb.SystemPrompt) -> tuple[str | None, str]:
    """(the text, None for the default; a label for logs and hashes)."""
    kind = msg.WhichOneof("kind")
    if kind == "text":
        return resolve_system_prompt(text=msg.text), "custom"
    preset = msg.preset if kind == "preset" else "default"
    return resolve_system_prompt(preset=preset), preset


def system_prompt_sha256(text: str | None, template_sha: str) -> str:
    material = f"default:{template_sha}" if text is None else f"text:{text}"
    return hashlib.sha256(material.encode()).hexdigest()


def generation_from_pb(msg: pb.GenerationSettings, preset: str = "") -> GenerationParams:
    if preset:
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


def direction_spec_to_pb(spec: DirectionSpec) -> pb.DirectionSpec:
    if isinstance(spec, RandomSpec):
        inv = lambda table, value: next(k for k, v in table.items() if v == value and k != 0)  # noqa: E731
        return pb.DirectionSpec(
            random=pb.RandomDirectionSpec(
                seed=spec.seed,
                normalization=inv(_NORMALIZATIONS, spec.normalization),
                selection=inv(_SELECTIONS, spec.selection),
                include=list(spec.include),
                exclude=list(spec.exclude),
                stream=inv(_STREAMS, spec.stream),
                index=spec.index,
            )
        )
    if isinstance(spec, InterpolationSpec):
        return pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target=spec.target))
    return pb.DirectionSpec(adapter=pb.AdapterDirectionSpec(adapter=spec.adapter))


def terms_from_pb(msg: pb.Perturbation) -> list[TermRequest]:
    terms = []
    for i, term in enumerate(msg.terms):
        kind = term.WhichOneof("direction")
        if kind == "spec":
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
    )


def finish_to_pb(reason: str) -> int:
    return _FINISH.get(reason, pb.FINISH_REASON_UNSPECIFIED)


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
        )
        for v in outcome.verdicts
    ]
