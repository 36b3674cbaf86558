"""The command that evaluates a stored point again: ``visage evaluate`` with everything the sweep used.

:func:`reproduce_command` writes, for a safety point (``asr`` or ``refusal``) of a sweep, the
``visage evaluate`` command line that measures it again on a server holding the same model: the
server that measured it, ``--expect-model`` with the model's fingerprint (the command refuses a
server that holds another model), the prompts (the set and limit, or the file and column), the
system prompt, chat format, judge and keywords, generation, and one ``--at`` per non-zero term of
the point's weights: the sweep's base terms, then its axes at the point's coordinates, each
direction written in full in :mod:`.direction_text`'s grammar (``seed:123,stream:reference,
index:0``), so the command names exactly the weights the sweep evaluated. Run with ``--json``, its
``verdicts`` are the stored point's. A capability point (accuracy, perplexity) is a Score
measurement, which ``visage evaluate`` does not make: it has no command (None).
"""

from __future__ import annotations

import shlex

from safety_landscape.common.names import SYSTEM_PROMPT_PRESETS
from safety_landscape.v1 import landscape_pb2 as pb

from .builders import interpolation_direction, random_direction
from .direction_text import parse_direction, term_text
from .records import MeasuredModel, PointRecord, system_label
from .sweep_meta import RecordedPrompts, RecordedSpec

__all__ = ["SAFETY_METRICS", "point_terms", "reproduce_command"]

#: The metrics ``visage evaluate`` measures (a harmful set's ASR, a benign set's over-refusal).
SAFETY_METRICS = ("asr", "refusal")
#: Where the command names the server when the record does not say which one measured the point.
ANY_SERVER = "HOST:PORT"


def _random_axis(spec: RecordedSpec, index: int) -> pb.DirectionSpec:
    d = spec.direction
    return random_direction(d.seed, normalization=d.normalization, selection=d.selection, include=d.include,
                            exclude=d.exclude, stream=d.stream, index=index, tied=d.tied)


def _axes(spec: RecordedSpec, direction: str) -> list[pb.DirectionSpec]:
    """The directions of a series' coordinates, in order (a, then b)."""
    grid, kind = spec.grid, spec.kind
    if kind == "1d-random" and direction[1:].isdigit():
        return [_random_axis(spec, int(direction[1:]))]
    if kind == "1d-interpolation":
        return [interpolation_direction(grid.target)]
    if kind == "2d-random":
        return [_random_axis(spec, 0), _random_axis(spec, 1)]
    if kind == "2d-interpolation":
        return [interpolation_direction(grid.target), interpolation_direction(grid.target_b)]
    if kind == "2d-interpolation-random":
        return [interpolation_direction(grid.target), _random_axis(spec, 0)]
    raise ValueError(f"series direction {direction!r} of a {kind or 'unknown'} sweep")


def point_terms(record: PointRecord, spec: RecordedSpec) -> list[tuple[str | pb.DirectionSpec, float]]:
    """The non-zero terms of the point's weights, as the sweep applied them: its base terms, then
    its axes at its coordinates."""
    terms: list[tuple[str | pb.DirectionSpec, float]] = [(parse_direction(t.direction), float(t.coefficient))
                                                         for t in spec.base]
    terms += list(zip(_axes(spec, record.curve.direction), record.coords, strict=True))
    return [(d, c) for d, c in terms if c != 0.0]


def _system_prompt(record: PointRecord, spec: RecordedSpec) -> list[str]:
    system = record.detail.system_prompt
    if system is None:  # a record that did not keep it: the spec's prompt with the series' label
        label = record.curve.system
        system = next((s for s in (*spec.system_prompts, *spec.system_prompt_texts) if system_label(s) == label), None)
        if system is None:
            raise ValueError(f"the system prompt of series {record.series!r} is not in the sweep's spec")
    return ["--system-prompt", system] if system in SYSTEM_PROMPT_PRESETS else [f"--system-prompt-text={system}"]


def _prompts(source: RecordedPrompts) -> list[str]:
    args = ["--set", source.set] if source.set else ["--prompts", source.file]
    if source.file and source.column:
        args += ["--column", source.column]
    return args + (["--limit", str(source.limit)] if source.limit else [])


def reproduce_command(record: PointRecord, spec: RecordedSpec, *, model: MeasuredModel | None = None) -> str | None:
    """The ``visage evaluate`` command that measures ``record`` again (see the module docstring);
    None for a capability point, or a point whose settings the spec does not hold (a record of an
    early client, a pattern --at cannot write). ``model``: the sweep's, for a record that does not
    name its own."""
    source = spec.prompts if record.metric == "asr" else spec.benign
    measured = record.model or model
    if record.metric not in SAFETY_METRICS or source is None or not (source.set or source.file) or not spec.kind:
        return None
    try:
        terms = point_terms(record, spec)
        system = _system_prompt(record, spec)
        at = [arg for direction, c in terms for arg in ("--at", term_text(direction, c))]
    except ValueError:
        return None
    e = spec.evaluation
    args = ["visage", "evaluate", "--server", record.detail.server or ANY_SERVER]
    args += ["--expect-model", measured.fingerprint] if measured is not None and measured.fingerprint else []
    args += [*_prompts(source), *system, "--chat-format", e.chat_format, "--judge", e.judge]
    args += [f"--keyword={keyword}" for keyword in e.keywords] if e.judge == "keyword" else []  # = : a value may start with -
    args += ["--max-new-tokens", str(e.max_new_tokens)]
    if e.do_sample:
        args += ["--sample", "--sample-seed", str(e.sample_seed), "--temperature", repr(e.temperature),
                 "--top-p", repr(e.top_p)]
    if not e.early_stop:
        args.append("--no-early-stop")
    if not e.referee:
        args.append("--no-referee")
    return shlex.join(args + at)
