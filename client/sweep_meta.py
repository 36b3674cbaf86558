"""A sweep's metadata: what the store keeps beside its points, as one typed document.

:class:`SweepMeta` is what :func:`~.sweep.runner.run_sweep` records when a sweep starts (and
stamps when it ends): the spec as given, the model facts the servers agreed on, the servers, the
direction fingerprints, the plan's point list (:class:`PlannedPoint`: key, series, metric and
coordinates of every point, so a sweep's points are found by key even when another sweep
measured them), an adaptive sweep's off-grid edge points, and the run's provenance
(:class:`RunProvenance`: client and server software, seeds, start and end times; every record of
the run carries it too). Everything that reads a sweep reads it through this type.

On disk it is the JSON object the store keeps per sweep (``ResultStore.put_meta``), unchanged from
earlier versions: ``{"spec", "model", "model_name", "servers", "direction_fingerprints", "points":
[[key, series, metric, [a, b?]], ...], "refined_points"?, "provenance"}``. A store written by an
early client (the spec and the points alone) reads back with the rest absent (None), and keys this
client does not know are kept (``extra``). The spec is kept whole (:class:`RecordedSpec`: the
dict ``SweepSpec.to_dict`` wrote), with typed views of the parts the outputs read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .json_codec import ABSENT_IF_NONE, JsonCodec
from .records import MeasuredModel, Series

__all__ = ["PlannedPoint", "RecordedBaseTerm", "RecordedDirection", "RecordedEvaluation", "RecordedGrid", "RecordedModel",
           "RecordedPrompts", "RecordedSpec", "RunProvenance", "SweepMeta"]


@dataclass(frozen=True)
class PlannedPoint:
    """One point of a sweep's plan: its content key, series label, metric and coordinates.
    JSON: ``[key, series, metric, [a]]`` (``[a, b]`` for a plane)."""

    key: str
    series: str
    metric: str
    coords: tuple[float, ...]

    @property
    def curve(self) -> Series:
        return Series.parse(self.series)

    def to_json(self) -> list[Any]:
        return [self.key, self.series, self.metric, list(self.coords)]

    @classmethod
    def from_json(cls, data: Any) -> PlannedPoint:
        try:
            key, series, metric, coords = data
            return cls(str(key), str(series), str(metric), tuple(float(c) for c in coords))
        except (TypeError, ValueError):
            raise ValueError(f"a planned point is [key, series, metric, [coords]], got {data!r}") from None


@dataclass(frozen=True)
class RecordedBaseTerm:
    """A fixed term of every point of the sweep (the spec's ``[[base]]``)."""

    direction: str
    coefficient: float


@dataclass(frozen=True)
class RecordedGrid:
    """The parts of the recorded spec's ``grid`` that the outputs read."""

    adaptive: bool = False
    stop_after: int = 2
    edge_resolution: float = 0.0
    target: str = ""  # an interpolation's checkpoint
    target_b: str = ""  # a 2D interpolation's second checkpoint


@dataclass(frozen=True)
class RecordedDirection:
    """The recorded spec's ``direction`` recipe (how its random directions are drawn)."""

    seed: int = 123
    stream: str = "reference"
    normalization: str = "layer"
    selection: str = "reference"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tied: str = "once"


@dataclass(frozen=True)
class RecordedPrompts:
    """A recorded prompt source: a set the server holds (``set``) or a local file (``file``)."""

    set: str = ""
    file: str = ""
    column: str = ""
    limit: int = 0


@dataclass(frozen=True)
class RecordedEvaluation:
    """How the recorded spec evaluates a point: prompting, judge and generation."""

    chat_format: str = "tokenizer"
    judge: str = "keyword"
    keywords: tuple[str, ...] = ()
    max_new_tokens: int = 128
    do_sample: bool = False
    sample_seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    early_stop: bool = True
    referee: bool = True


@dataclass(frozen=True)
class RecordedSpec:
    """The spec a sweep recorded (``SweepSpec.to_dict``), kept whole in ``data`` (it is written back
    unchanged, and :mod:`..compare` compares specs setting by setting); the parts the outputs read
    are typed properties. A key a spec lacks (an early client's) reads as its default."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_json(cls, data: Any) -> RecordedSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"the recorded spec is a JSON object, got {type(data).__name__}")
        return cls(dict(data))

    @property
    def name(self) -> str:
        return str(self.data.get("name", ""))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def two_d(self) -> bool:
        return self.kind.startswith("2d")

    @property
    def grid(self) -> RecordedGrid:
        grid = self.data.get("grid")
        if not isinstance(grid, Mapping):
            return RecordedGrid()
        return RecordedGrid(bool(grid.get("adaptive", False)), int(grid.get("stop_after", 2)),
                            float(grid.get("edge_resolution", 0.0)), str(grid.get("target", "")),
                            str(grid.get("target_b", "")))

    @property
    def system_prompts(self) -> tuple[str, ...]:
        """The presets (and, from early clients, texts) the spec lists."""
        return _strings(self.data.get("system_prompts"))

    @property
    def system_prompt_texts(self) -> tuple[str, ...]:
        return _strings(self.data.get("system_prompt_texts"))

    @property
    def base(self) -> tuple[RecordedBaseTerm, ...]:
        terms = self.data.get("base") or []
        return tuple(RecordedBaseTerm(str(t["direction"]), t["coefficient"]) for t in terms)

    @property
    def direction(self) -> RecordedDirection:
        d = self.data.get("direction")
        if not isinstance(d, Mapping):
            return RecordedDirection()
        default = RecordedDirection()
        return RecordedDirection(int(d.get("seed", default.seed)), str(d.get("stream", default.stream)),
                                 str(d.get("normalization", default.normalization)),
                                 str(d.get("selection", default.selection)), _strings(d.get("include")),
                                 _strings(d.get("exclude")), str(d.get("tied", default.tied)))

    @property
    def prompts(self) -> RecordedPrompts:
        """The harmful prompts."""
        return _prompts(self.data.get("prompts")) or RecordedPrompts()

    @property
    def benign(self) -> RecordedPrompts | None:
        """The benign (over-refusal) prompts, None without them."""
        return _prompts(self.data.get("benign"))

    @property
    def evaluation(self) -> RecordedEvaluation:
        d, default = self.data, RecordedEvaluation()
        return RecordedEvaluation(
            str(d.get("chat_format", default.chat_format)), str(d.get("judge", default.judge)),
            _strings(d.get("keywords")), int(d.get("max_new_tokens", default.max_new_tokens)),
            bool(d.get("do_sample", default.do_sample)), int(d.get("sample_seed", default.sample_seed)),
            float(d.get("temperature", default.temperature)), float(d.get("top_p", default.top_p)),
            bool(d.get("early_stop", default.early_stop)), bool(d.get("referee", default.referee)))


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _prompts(value: object) -> RecordedPrompts | None:
    if not isinstance(value, Mapping):
        return None
    return RecordedPrompts(str(value.get("set") or ""), str(value.get("file") or ""), str(value.get("column") or ""),
                           int(value.get("limit") or 0))


@dataclass(frozen=True)
class RecordedModel(JsonCodec):
    """The model facts the servers agreed on (part of every point's key); None: not recorded."""

    model_fingerprint: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    tokenizer_fingerprint: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    chat_template_sha256: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    dtype: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    device_type: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunProvenance(JsonCodec):
    """What produced a run (``provenance.provenance`` plus the runner's facts): client software and
    host, the model and servers, seeds, fingerprints and times. None: not recorded (left out of the JSON)."""

    packages: Mapping[str, str] | None = field(default=None, metadata=ABSENT_IF_NONE)
    python: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    platform: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    git_revision: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    source_revision: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    hostname: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    time: float | None = field(default=None, metadata=ABSENT_IF_NONE)
    time_iso: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    sweep: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    model: RecordedModel | None = field(default=None, metadata=ABSENT_IF_NONE)
    model_name: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    torch_version: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    servers: tuple[Any, ...] | None = field(default=None, metadata=ABSENT_IF_NONE)  # the targets
    server: Mapping[str, Any] | None = field(default=None, metadata=ABSENT_IF_NONE)  # the first server's software and device
    direction_fingerprints: Mapping[str, str] | None = field(default=None, metadata=ABSENT_IF_NONE)
    seeds: Mapping[str, Any] | None = field(default=None, metadata=ABSENT_IF_NONE)
    started_at: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    finished_at: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepMeta(JsonCodec):
    """A sweep's metadata (see the module docstring); None: not recorded."""

    spec: RecordedSpec = field(default_factory=RecordedSpec)
    model: RecordedModel | None = field(default=None, metadata=ABSENT_IF_NONE)  # the facts the servers agreed on
    model_name: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    servers: tuple[Mapping[str, Any], ...] | None = field(default=None, metadata=ABSENT_IF_NONE)  # each server's facts
    # direction label -> fingerprint
    direction_fingerprints: Mapping[str, str] | None = field(default=None, metadata=ABSENT_IF_NONE)
    points: tuple[PlannedPoint, ...] = ()
    # an adaptive sweep's off-grid edge points (listed when there are any)
    refined_points: tuple[PlannedPoint, ...] | None = field(default=None, metadata=ABSENT_IF_NONE)
    provenance: RunProvenance | None = field(default=None, metadata=ABSENT_IF_NONE)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def measured_model(self) -> MeasuredModel | None:
        """The model the sweep measures (display name and fingerprint), None if not recorded."""
        if self.model is None or not self.model.model_fingerprint:
            return None
        return MeasuredModel(self.model_name or "", self.model.model_fingerprint)

    def with_refined(self, points: tuple[PlannedPoint, ...]) -> SweepMeta:
        return dataclasses.replace(self, refined_points=points)

    def finished(self, at: str) -> SweepMeta:
        """The metadata with the run's end time (``provenance.finished_at``)."""
        provenance = self.provenance or RunProvenance()
        return dataclasses.replace(self, provenance=dataclasses.replace(provenance, finished_at=at))
