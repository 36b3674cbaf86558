"""summary.json as a typed document: :class:`SweepSummary` and its parts (frozen, ``to_json`` /
``from_json`` from their fields, :mod:`..json_codec`). Computed by :mod:`.summary`; read by the
sweep's page, figures and CLI, by ``visage compare`` and by the gate's baseline.

The file (keys sorted, two-space indent)::

    {"sweep", "kind", "model_name", "model", "points": {"planned", "measured"},
     "visage": {"rules": [...], "metric": "asr",
                "series": {"d0|default": {"reference": 87.5, "expectation": 88.1}, ...},
                "series_ci95": {"d0|default": {"reference": [84.1, 90.2], "expectation": [...]}, ...},
                "by_system_prompt": {"default": {"reference": {"mean", "std", "n", "ci95": [lo, hi]},
                                                 "expectation": {...}}},
                "incomplete": [series missing points]},
     "safety_region": {"metric": "asr", "series": {"d0|default": 87.0},   # 1D only; {} for 2D
                       "by_system_prompt": {"default": {"mean", "std", "n"}}},
     "origin": {"asr": {"d0|default": 6.25}, "refusal": {...}},
     "origin_ci95": {"asr": {"d0|default": [2.7, 13.8]}, ...},               # Wilson, percent
     "over_refusal": {"series": {"d0|default": {"origin", "mean", "max", "ci95": {"origin": [lo, hi]}}}},
     "capability": {"metrics": ["accuracy", "perplexity"],                 # [] without [capability]
                    "series": {"perplexity": {"d0": {"origin", "min", "max", "mean"}},
                               "accuracy": {"d0": {..., "ci95": {"origin": [lo, hi]}}}},
                    "curves": {"perplexity": {"d0": [[a, value], ...]}}},
     "curves": {"asr": {"d0|default": [[a, value], ...]}, ...},     # 2D: [[a, b, value], ...]
     "curves_ci95": {"asr": {"d0|default": [[a, lo, hi], ...]}, ...},  # 2D: [[a, b, lo, hi], ...]
     "intervals": {"level": 0.95, "rates": "wilson", "visage": {"method", "replicates", "seed", ...}},
     "provenance": {"client": {...}, "server": {"safety_landscape", "torch", "transformers", "cuda",
                    "device", "device_name", ...}, "servers", "spec", "seeds", "started_at", "finished_at"},
     "adaptive": {"evaluated", "grid_points", "skipped", "assumption",  # adaptive sweeps only
                  "assumed": {"d0|default": [[a], ...]}, "stop_after", "edge_resolution",
                  "edges": {"d0|default": [{"side", "inside", "outside"}]}, "refined", "unfinished"},
     "outcomes": {"measured": ["d0|default", ...], "not_measured": [...], "reason": "...",  # ASR series
                  "rates": {"coherent_asr": {"origin": {"d0|default": 3.1}, "origin_ci95": {...},
                                             "curves": {"d0|default": [[a, value], ...]},
                                             "curves_ci95": {"d0|default": [[a, lo, hi], ...]}},
                            "incoherent_rate": {...}, "refusal_rate": {...}},
                  "visage": {"rules", "metric": "coherent_asr", "series", "series_ci95", ...}}}

``outcomes`` splits each answer of the ASR series by the server's coherence referee: refused,
complied (coherent) or incoherent; ``coherent_asr`` (complied only) + ``incoherent_rate`` = the
paper's ASR. A series is ``measured`` only when every one of its points has an outcome for every
answer; the others (a server without the referee, the referee off, a store written before it, an
adaptive sweep's unmeasured points) are ``not_measured`` and have no number: "coherent ASR: not
measured", never 0 and never the ASR. A summary.json written before this section has none
(:meth:`SweepSummary.by_outcome` reads it as nothing measured).

A ``ci95`` is ``[low, high]`` at 95 %, inside an entry of named statistics (``ci95`` of the mean,
or ``{"origin": ...}``) or, for a table of bare values, in a sibling table named ``<table>_ci95``
with the same keys: Wilson for a rate, a seeded bootstrap for VISAGE (:mod:`.intervals`,
docs/statistics.md); null where the verdicts behind it are not stored. Series are keyed by their
store labels (:class:`~..records.Series`); a curve row is the point's coordinates, then its value
(or its interval's two ends).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..json_codec import ABSENT_IF_NONE, JsonCodec
from ..sweep_meta import RecordedModel
from ..visage import RULES

__all__ = [
    "NOT_MEASURED",
    "OUTCOME_RATES",
    "AdaptiveSummary",
    "BootstrapMethod",
    "CapabilityStats",
    "CapabilitySummary",
    "ClientSoftware",
    "Edge",
    "Interval",
    "IntervalMethod",
    "OriginInterval",
    "OutcomeRate",
    "OutcomeSummary",
    "OverRefusal",
    "OverRefusalSummary",
    "PointCounts",
    "RuleIntervals",
    "RuleScores",
    "RuleSpreads",
    "SafetyRegion",
    "ScoreSpread",
    "Spread",
    "SummaryProvenance",
    "SweepSummary",
    "VisageSummary",
]

#: A 95 % interval, ``[low, high]`` in the JSON.
Interval = tuple[float, float]
#: A curve: per point its coordinates and then its value (or interval ends), sorted by coordinates.
Rows = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class RuleScores(JsonCodec):
    """VISAGE of one series by each rule (reference: None for a 2D grid)."""

    reference: float | None
    expectation: float | None

    def of(self, rule: str) -> float | None:
        return self.reference if rule == "reference" else self.expectation


@dataclass(frozen=True)
class RuleIntervals(JsonCodec):
    reference: Interval | None
    expectation: Interval | None

    def of(self, rule: str) -> Interval | None:
        return self.reference if rule == "reference" else self.expectation


@dataclass(frozen=True)
class ScoreSpread(JsonCodec):
    """The mean of a rule's VISAGE over directions, its spread (population std; None: not given) over
    the ``n`` directions and the mean's 95 % interval."""

    mean: float
    std: float | None = None
    n: int | None = None
    ci95: Interval | None = None


@dataclass(frozen=True)
class RuleSpreads(JsonCodec):
    """Per rule, the mean over one system prompt's directions; a rule without any score is absent."""

    reference: ScoreSpread | None = field(default=None, metadata=ABSENT_IF_NONE)
    expectation: ScoreSpread | None = field(default=None, metadata=ABSENT_IF_NONE)

    def of(self, rule: str) -> ScoreSpread | None:
        return self.reference if rule == "reference" else self.expectation

    def items(self) -> list[tuple[str, ScoreSpread]]:
        """(rule, spread) of the rules scored, in the rules' order."""
        return [(rule, s) for rule, s in (("reference", self.reference), ("expectation", self.expectation)) if s]


@dataclass(frozen=True)
class VisageSummary(JsonCodec):
    """VISAGE per series and, per system prompt, the mean over directions; the series not scored."""

    rules: tuple[str, ...] = RULES
    metric: str = "asr"
    series: Mapping[str, RuleScores] = field(default_factory=dict)
    by_system_prompt: Mapping[str, RuleSpreads] = field(default_factory=dict)
    incomplete: tuple[str, ...] = ()
    series_ci95: Mapping[str, RuleIntervals] = field(default_factory=dict)


@dataclass(frozen=True)
class Spread(JsonCodec):
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class SafetyRegion(JsonCodec):
    """The reference's trapezoid area of each finished 1D ASR curve, and its mean per system prompt."""

    metric: str = "asr"
    series: Mapping[str, float] = field(default_factory=dict)
    by_system_prompt: Mapping[str, Spread] = field(default_factory=dict)


@dataclass(frozen=True)
class OriginInterval(JsonCodec):
    origin: Interval | None


@dataclass(frozen=True)
class OverRefusal(JsonCodec):
    origin: float | None
    mean: float
    max: float
    ci95: OriginInterval


@dataclass(frozen=True)
class OverRefusalSummary(JsonCodec):
    series: Mapping[str, OverRefusal] = field(default_factory=dict)


@dataclass(frozen=True)
class CapabilityStats(JsonCodec):
    """A capability series: its value at the origin, range and mean; ``ci95`` for a rate (accuracy) only."""

    origin: float | None
    min: float
    max: float
    mean: float
    ci95: OriginInterval | None = field(default=None, metadata=ABSENT_IF_NONE)


@dataclass(frozen=True)
class CapabilitySummary(JsonCodec):
    metrics: tuple[str, ...] = ()
    series: Mapping[str, Mapping[str, CapabilityStats]] = field(default_factory=dict)
    curves: Mapping[str, Mapping[str, Rows]] = field(default_factory=dict)


@dataclass(frozen=True)
class BootstrapMethod(JsonCodec):
    method: str
    replicates: int
    seed: int
    series: str
    mean: str
    reference: str


@dataclass(frozen=True)
class IntervalMethod(JsonCodec):
    """How the intervals were computed."""

    level: float
    rates: str
    visage: BootstrapMethod


@dataclass(frozen=True)
class ClientSoftware(JsonCodec):
    """The client side of the run's provenance (null where the run did not record it)."""

    packages: Mapping[str, str] | None = None
    python: str | None = None
    platform: str | None = None
    git_revision: str | None = None
    source_revision: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class SummaryProvenance(JsonCodec):
    """Who and what produced the sweep (its last run); dicts of scalars, for ``pandas.json_normalize``."""

    client: ClientSoftware = field(default_factory=ClientSoftware)
    server: Mapping[str, Any] = field(default_factory=dict)
    servers: tuple[Any, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    seeds: Mapping[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True)
class Edge(JsonCodec):
    """An adaptive 1D series' basin edge: between the last point inside and the first outside."""

    side: str
    inside: float
    outside: float


@dataclass(frozen=True)
class AdaptiveSummary(JsonCodec):
    """An adaptive sweep's account of what it measured and what it assumed."""

    evaluated: int
    grid_points: int
    skipped: int
    assumed: Mapping[str, Rows]
    assumption: str
    stop_after: int
    edge_resolution: float
    edges: Mapping[str, tuple[Edge, ...]]
    refined: int
    unfinished: tuple[str, ...]


#: What every output says of a coherent ASR it does not have.
NOT_MEASURED = "coherent ASR: not measured"
#: The outcome rates of an ASR series, in percent of its answers.
OUTCOME_RATES = ("coherent_asr", "incoherent_rate", "refusal_rate")


@dataclass(frozen=True)
class OutcomeRate(JsonCodec):
    """One outcome rate of the measured series: at the origin, along each curve, and their Wilson intervals."""

    origin: Mapping[str, float | None] = field(default_factory=dict)
    origin_ci95: Mapping[str, Interval | None] = field(default_factory=dict)
    curves: Mapping[str, Rows] = field(default_factory=dict)
    curves_ci95: Mapping[str, Rows] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeSummary(JsonCodec):
    """The ASR series split by outcome (see the module docstring); the default: nothing measured."""

    measured: tuple[str, ...] = ()
    not_measured: tuple[str, ...] = ()
    reason: str = ""
    rates: Mapping[str, OutcomeRate] = field(default_factory=dict)
    visage: VisageSummary | None = field(default=None, metadata=ABSENT_IF_NONE)

    def rate(self, name: str) -> OutcomeRate:
        return self.rates.get(name) or OutcomeRate()

    def at_origin(self, label: str) -> float | None:
        """The series' coherent ASR at the origin (None: not measured)."""
        return self.rate("coherent_asr").origin.get(label)

    def describe(self, label: str) -> str:
        """"coherent ASR 3.1 % [0.6, 15.7] at the origin", or :data:`NOT_MEASURED`."""
        value = self.at_origin(label)
        if value is None:
            return NOT_MEASURED
        ci = self.rate("coherent_asr").origin_ci95.get(label)
        return f"coherent ASR {value:.1f} %" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "") + " at the origin"

    def visage_of(self, label: str, rule: str) -> float | None:
        """VISAGE of the series' coherent ASR by ``rule`` (None: not measured or not scored)."""
        scores = self.visage.series.get(label) if self.visage is not None else None
        return scores.of(rule) if scores is not None else None


@dataclass(frozen=True)
class PointCounts(JsonCodec):
    planned: int
    measured: int


@dataclass(frozen=True)
class SweepSummary(JsonCodec):
    """summary.json (see the module docstring)."""

    sweep: str
    kind: str
    model_name: str
    model: RecordedModel
    visage: VisageSummary
    origin: Mapping[str, Mapping[str, float | None]]
    curves: Mapping[str, Mapping[str, Rows]]
    points: PointCounts | None = field(default=None, metadata=ABSENT_IF_NONE)
    capability: CapabilitySummary = field(default_factory=CapabilitySummary)
    safety_region: SafetyRegion = field(default_factory=SafetyRegion)
    origin_ci95: Mapping[str, Mapping[str, Interval | None]] = field(default_factory=dict)
    over_refusal: OverRefusalSummary = field(default_factory=OverRefusalSummary)
    curves_ci95: Mapping[str, Mapping[str, Rows]] = field(default_factory=dict)
    intervals: IntervalMethod | None = field(default=None, metadata=ABSENT_IF_NONE)
    provenance: SummaryProvenance = field(default_factory=SummaryProvenance)
    adaptive: AdaptiveSummary | None = field(default=None, metadata=ABSENT_IF_NONE)
    outcomes: OutcomeSummary | None = field(default=None, metadata=ABSENT_IF_NONE)

    def by_outcome(self) -> OutcomeSummary:
        """The ``outcomes`` section; a summary written before it had one measured nothing."""
        return self.outcomes if self.outcomes is not None else OutcomeSummary()

    def at_origin(self, metric: str, label: str) -> float | None:
        """A series' value of ``metric`` at the origin (None: not measured there)."""
        return self.origin.get(metric, {}).get(label)

    def at_origin_ci95(self, metric: str, label: str) -> Interval | None:
        """The 95 % interval of a series' rate at the origin (None: none)."""
        return self.origin_ci95.get(metric, {}).get(label)

    def asr_labels(self) -> list[str]:
        """The store labels of the ASR series."""
        return list(self.curves.get("asr", {}))

    def asr_curve(self, label: str) -> list[tuple[float, float]]:
        """A 1D series' ASR curve as (a, value) points ([] if it has none)."""
        return [(r[0], r[1]) for r in self.curves.get("asr", {}).get(label, ())]

    def asr_band(self, label: str) -> list[tuple[float, float, float]]:
        """A 1D series' ASR points' 95 % intervals as (a, low, high) ([] without)."""
        return [(r[0], r[1], r[2]) for r in self.curves_ci95.get("asr", {}).get(label, ())]
