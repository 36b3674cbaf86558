"""Request builders: typed, validated protobuf messages from plain Python values, before any RPC.

The names a user writes (``safety_landscape.common.names``) are mapped to the contract's enums
here, once. Every builder raises :class:`~safety_landscape.client.errors.ValidationError` for a
value the server would refuse, so a bad request never leaves the client.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from safety_landscape.common.names import (
    CHAT_FORMATS,
    JUDGES,
    NORMALIZATIONS,
    SELECTIONS,
    STREAMS,
    SYSTEM_PROMPT_PRESETS,
    TIED_RULES,
)
from safety_landscape.v1 import landscape_pb2 as pb

from .errors import ValidationError
from .verdicts import JudgeRow

__all__ = [
    "SYSTEM_PROMPT_PRESETS",
    "adapter_direction",
    "candidate_request",
    "chat_format",
    "evaluation_settings",
    "generation",
    "interpolation_direction",
    "judge_request",
    "message_dict",
    "perturbation",
    "random_direction",
    "random_direction_names",
    "system_prompt",
]

_CHAT_FORMAT_ENUMS: dict[str, pb.ChatFormat] = dict(zip(CHAT_FORMATS, (
    pb.CHAT_FORMAT_TOKENIZER, pb.CHAT_FORMAT_NONE, pb.CHAT_FORMAT_LLAMA2, pb.CHAT_FORMAT_VICUNA,
    pb.CHAT_FORMAT_MISTRAL, pb.CHAT_FORMAT_LLAMA3), strict=True))
_NORMALIZATION_ENUMS: dict[str, pb.Normalization] = dict(zip(NORMALIZATIONS, (
    pb.NORMALIZATION_LAYER, pb.NORMALIZATION_FILTER, pb.NORMALIZATION_NONE), strict=True))
_SELECTION_ENUMS: dict[str, pb.TensorSelection] = dict(zip(SELECTIONS, (
    pb.TENSOR_SELECTION_REFERENCE, pb.TENSOR_SELECTION_BIASBN, pb.TENSOR_SELECTION_ALL), strict=True))
_STREAM_ENUMS: dict[str, pb.RandomStream] = dict(zip(STREAMS, (
    pb.RANDOM_STREAM_PER_TENSOR, pb.RANDOM_STREAM_REFERENCE), strict=True))


def message_dict(msg: Message) -> dict[str, Any]:
    """A message as plain JSON values: proto field names, every field written (defaults too)."""
    out: dict[str, Any] = MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return out


def system_prompt(value: str | None) -> pb.SystemPrompt:
    """A preset name (``SYSTEM_PROMPT_PRESETS``: default, empty, llama2, roleplay, ...) or else a custom text.

    Example::

        request = pb.GenerateRequest(prompts=["Hi"], system_prompt=system_prompt("llama2"))
    """
    if value is None:
        return pb.SystemPrompt(preset="default")
    if value in SYSTEM_PROMPT_PRESETS:
        return pb.SystemPrompt(preset=value)
    return pb.SystemPrompt(text=value)


def chat_format(name: str) -> pb.ChatFormat:
    """The contract's enum for a chat format's name (``CHAT_FORMATS``: tokenizer, none, llama2, ...).

    Example::

        request = pb.GenerateRequest(prompts=["Hi"], chat_format=chat_format("llama3"))
    """
    try:
        return _CHAT_FORMAT_ENUMS[name]
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
    tied: str = "once",
) -> pb.DirectionSpec:
    """A seeded random direction. ``tied = "reference"`` (reference stream only) draws for every
    state-dict name of a tied tensor, as the authors do; "once" leaves the field unset, so the
    message (and every content key built from it) is what it was before the field existed.

    Example::

        d1 = random_direction(123, stream="reference")              # the authors' first draw
        r = c.evaluate(prompt_set="harmful-mini", at=[(d1, 0.25)])
    """
    for value, names, what in ((normalization, NORMALIZATIONS, "normalization"), (selection, SELECTIONS, "selection"),
                               (stream, STREAMS, "stream"), (tied, TIED_RULES, "tied")):
        if value not in names:
            raise ValidationError(f"unknown {what} {value!r}; use one of {', '.join(names)}")
    if not 0 <= seed < 2**63 or index < 0:
        raise ValidationError("seed must be in [0, 2**63) and index >= 0")
    if tied == "reference" and stream != "reference":
        raise ValidationError('tied = "reference" reproduces the authors\' draws: it needs stream = "reference"')
    return pb.DirectionSpec(
        random=pb.RandomDirectionSpec(
            seed=seed, normalization=_NORMALIZATION_ENUMS[normalization], selection=_SELECTION_ENUMS[selection],
            include=list(include), exclude=list(exclude), stream=_STREAM_ENUMS[stream], index=index,
            tied=pb.TIED_PARAMETERS_REFERENCE if tied == "reference" else None,
        )
    )


def random_direction_names(spec: pb.RandomDirectionSpec) -> tuple[str, str, str, str]:
    """(normalization, selection, stream, tied) of a random direction by the names a user writes
    (:func:`random_direction`'s arguments); an unset enum reads as what the server takes it for."""
    def name(enums: dict[str, Any], value: int, default: str) -> str:
        return next((n for n, v in enums.items() if v == value), default)

    tied = "reference" if spec.HasField("tied") and spec.tied == pb.TIED_PARAMETERS_REFERENCE else "once"
    return (name(_NORMALIZATION_ENUMS, spec.normalization, "layer"), name(_SELECTION_ENUMS, spec.selection, "reference"),
            name(_STREAM_ENUMS, spec.stream, "per_tensor"), tied)


def interpolation_direction(target: str) -> pb.DirectionSpec:
    """The direction from the served model toward the registered checkpoint ``target`` (1.0 = its weights).

    Example::

        r = c.evaluate(prompt_set="harmful-mini", at=[(interpolation_direction("finetuned"), 0.5)])
    """
    return pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target=target))


def adapter_direction(adapter: str) -> pb.DirectionSpec:
    """The merged delta of the registered LoRA adapter ``adapter`` (1.0 = the adapted model).

    Example::

        r = c.evaluate(prompt_set="harmful-mini", at=[(adapter_direction("safety-lora"), 1.0)])
    """
    return pb.DirectionSpec(adapter=pb.AdapterDirectionSpec(adapter=adapter))


def perturbation(terms: Iterable[tuple[str | pb.DirectionSpec, float]] = ()) -> pb.Perturbation:
    """theta0 + sum c_i d_i: each term is (direction id or spec, coefficient).

    Example::

        at = perturbation([(random_direction(123), 0.25), (random_direction(123, stream="reference", index=1), -0.1)])
    """
    out = pb.Perturbation()
    for direction, coef in terms:
        coef = float(coef)
        if not math.isfinite(coef):
            raise ValidationError(f"coefficient {coef} is not finite")
        if isinstance(direction, pb.DirectionSpec):
            out.terms.append(pb.Term(spec=direction, coefficient=coef))
        else:
            out.terms.append(pb.Term(direction_id=direction, coefficient=coef))
    return out


def generation(max_new_tokens: int = 128, *, do_sample: bool = False, seed: int = 0, temperature: float = 1.0,
               top_p: float = 1.0) -> pb.GenerationSettings:
    """Generation settings: greedy unless ``do_sample`` (then ``seed``, ``temperature``, ``top_p``).

    Example::

        out = c.generate(["Hi"], settings=generation(64, do_sample=True, seed=1))
    """
    if max_new_tokens < 1:
        raise ValidationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return pb.GenerationSettings(max_new_tokens=max_new_tokens, do_sample=do_sample, seed=seed, temperature=temperature,
                                 top_p=top_p)


def _prompt_source(prompts: Sequence[str] | None, prompt_set: str | None, limit: int) -> pb.PromptSource:
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
    return source


def _judge(judge: str, keywords: Sequence[str]) -> pb.JudgeSpec:
    if judge == "keyword":
        return pb.JudgeSpec(keyword=pb.KeywordJudge(keywords=list(keywords)))
    if judge == "classifier":
        return pb.JudgeSpec(classifier=pb.ClassifierJudge())
    raise ValidationError(f"unknown judge {judge!r}; use {' or '.join(JUDGES)}")


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
    referee: bool = True,
) -> pb.EvaluationSettings:
    """The settings of one safety evaluation: exactly one of ``prompts`` (sent inline) or
    ``prompt_set`` (a set the server holds), the prompting, the generation and the judge;
    ``referee=False`` turns the server's coherence referee off (no outcomes, only the ASR).

    Example::

        settings = evaluation_settings(prompt_set="harmful-mini", limit=8, max_new_tokens=32)
        r = c.evaluate(settings)    # the same as c.evaluate(prompt_set="harmful-mini", limit=8, max_new_tokens=32)
    """
    source, judge_spec = _prompt_source(prompts, prompt_set, limit), _judge(judge, keywords)
    return pb.EvaluationSettings(
        prompts=source,
        system_prompt=system_prompt(system),
        chat_format=chat_format(chat),
        generation=pb.GenerationSettings() if generation_preset else generation(max_new_tokens),
        generation_preset=generation_preset,
        judge=judge_spec,
        return_completions=return_completions,
        disable_early_stop=disable_early_stop,
        disable_referee=not referee,
    )


def _judge_row(i: int, row: JudgeRow) -> pb.JudgeRow:
    if (row.prompt is None) == (row.prompt_ref is None):
        raise ValidationError(f"rows[{i}]: give exactly one of prompt (its text) or prompt_ref (set name, index)")
    msg = pb.JudgeRow(completion=row.completion, system_prompt=system_prompt(row.system), chat_format=chat_format(row.chat))
    if row.prompt is not None:
        msg.prompt_text = row.prompt
    else:
        assert row.prompt_ref is not None
        name, index = row.prompt_ref
        if not name or index < 0:
            raise ValidationError(f"rows[{i}].prompt_ref: a set name and an index >= 0, got {row.prompt_ref!r}")
        msg.prompt_ref.CopyFrom(pb.PromptRef(set_name=name, index=index))
    return msg


def judge_request(
    rows: Sequence[JudgeRow], *, judge: str = "keyword", keywords: Sequence[str] = (), max_new_tokens: int = 0,
    classifier: str = "",
) -> pb.JudgeRequest:
    """A Judge request: the rows, the deciding judge ("keyword" or "classifier"; ``keywords`` replace the
    paper's with the keyword judge; ``classifier`` names the guard format the server must have loaded,
    "" for the one it has) and the generation length the answers came from (0: the longest
    completion's; it picks the referee's calibration)."""
    if not rows:
        raise ValidationError("no rows to judge: give at least one JudgeRow")
    if max_new_tokens < 0:
        raise ValidationError(f"max_new_tokens must be >= 0 (0 = the longest completion's tokens), got {max_new_tokens}")
    if keywords and judge != "keyword":
        raise ValidationError("keywords go with the keyword judge only")
    if classifier and judge != "classifier":
        raise ValidationError("a classifier name goes with judge='classifier' only")
    spec = _judge(judge, keywords)
    if classifier:
        spec.classifier.name = classifier
    return pb.JudgeRequest(rows=[_judge_row(i, r) for i, r in enumerate(rows)], judge=spec,
                           max_new_tokens=max_new_tokens)


_CANDIDATE_KINDS = {"": pb.CANDIDATE_KIND_UNSPECIFIED, "checkpoint": pb.CANDIDATE_KIND_CHECKPOINT,
                    "adapter": pb.CANDIDATE_KIND_ADAPTER}


def candidate_request(name: str, source: str, kind: str = "") -> pb.AddCandidateRequest:
    """AddCandidate's request: ``source`` (a folder on the server, or ORG/NAME[@REV] in its Hub
    cache) as ``name``; ``kind`` "checkpoint", "adapter" or "" (read from the folder)."""
    if kind not in _CANDIDATE_KINDS:
        raise ValidationError(f"candidate kind {kind!r}: use checkpoint, adapter or leave it empty")
    return pb.AddCandidateRequest(name=name, source=source, kind=_CANDIDATE_KINDS[kind])
