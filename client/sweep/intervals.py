"""The 95 % intervals of a sweep's numbers, from the per-prompt verdicts its records hold.

- every rate (ASR, over-refusal, MC accuracy) at every point: Wilson (:func:`~..stats.rate_interval`)
  on ``k`` of ``n`` prompts (jailbroken, refused, answered right);
- VISAGE of each complete ASR series: a bootstrap over the prompts; the mean over directions of
  each system prompt: a bootstrap over prompts and directions (:func:`~..stats.bootstrap_visage`,
  docs/statistics.md), the default :class:`~..stats.Bootstrap` (2000 replicates, seed 0) unless
  told otherwise. An adaptive sweep's assumed points (not measured: on the broken plateau) are
  jailbroken on every prompt in every resample, as VISAGE assumes them. A series whose points
  lack per-prompt verdicts gets no VISAGE interval (None).

:func:`sweep_intervals` returns them keyed like the summary (see :mod:`.summary`), which writes
each beside its value as ``ci95``; :func:`method` describes the procedure in the summary.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ..records import PointRecord, Series
from ..stats import DEFAULT_BOOTSTRAP, LEVEL, Bootstrap, Interval, bootstrap_visage, rate_interval
from ..visage import RULES, rule_score
from .summary_doc import BootstrapMethod, IntervalMethod

__all__ = ["SweepIntervals", "counts_of", "method", "prompt_verdicts", "sweep_intervals"]

Coords = tuple[float, ...]


def method(boot: Bootstrap) -> IntervalMethod:
    """The procedure, as summary.json records it (``intervals``)."""
    return IntervalMethod(LEVEL, "wilson", BootstrapMethod("percentile bootstrap", boot.replicates, boot.seed,
                                                           "prompts resampled", "prompts and directions resampled",
                                                           "docs/statistics.md"))


def counts_of(record: PointRecord) -> tuple[int, int] | None:
    """(k, n) behind a point's rate: jailbroken (asr), refused (refusal) or right (accuracy) of
    ``total``; None for perplexity or a record without the count."""
    n = record.total
    if record.metric == "accuracy":
        return round(record.value * n / 100.0), n
    jailbroken = record.detail.jailbroken
    if record.metric not in ("asr", "refusal") or jailbroken is None:
        return None
    return (jailbroken, n) if record.metric == "asr" else (n - jailbroken, n)


def prompt_verdicts(record: PointRecord) -> tuple[bool, ...] | None:
    """Jailbroken per prompt, by prompt index; None when the record holds no usable verdicts."""
    rows = record.detail.verdicts
    if not rows or not all(isinstance(v, (list, tuple)) and len(v) >= 2 for v in rows):
        return None
    ordered = sorted((int(v[0]), bool(v[1])) for v in rows)
    if [i for i, _ in ordered] != list(range(len(ordered))):
        return None
    return tuple(jb for _, jb in ordered)


@dataclass
class SweepIntervals:
    """``points``: metric -> series -> coords -> Wilson interval; ``visage``: series -> rule ->
    interval (None: not available); ``mean``: system label -> rule -> interval."""

    points: dict[str, dict[Series, dict[Coords, Interval]]] = field(default_factory=dict)
    visage: dict[Series, dict[str, Interval | None]] = field(default_factory=dict)
    mean: dict[str, dict[str, Interval]] = field(default_factory=dict)


def _series_verdicts(points: Mapping[Coords, PointRecord], coords: Sequence[Coords],
                     assumed: Collection[Coords]) -> list[tuple[bool, ...]] | None:
    """Per point of ``coords`` its verdicts (an assumed point: every prompt jailbroken); None when
    a point has no usable verdicts or the points were judged on different prompt counts."""
    measured = {c: prompt_verdicts(points[c]) for c in coords if c in points}
    sizes = {len(v) for v in measured.values() if v is not None}
    if len(sizes) != 1 or any(v is None for v in measured.values()):
        return None
    n = sizes.pop()
    rows = [measured.get(c) or ((True,) * n if c in assumed else None) for c in coords]
    return None if any(r is None for r in rows) else [r for r in rows if r is not None]


def _visage(records: Mapping[Series, Mapping[Coords, PointRecord]], scored: Mapping[Series, Sequence[Coords]],
            assumed: Mapping[Series, Collection[Coords]], two_d: bool, boot: Bootstrap, out: SweepIntervals) -> None:
    """Per series and per system prompt, for each rule that applies (the reference rule: 1D only)."""
    for label in sorted({s.system for s in scored}):
        group = {s: _series_verdicts(records.get(s, {}), coords, assumed.get(s, ()))
                 for s, coords in scored.items() if s.system == label}
        usable = {s.label: rows for s, rows in group.items() if rows is not None}
        for s in group:
            out.visage[s] = dict.fromkeys(RULES)
        if len(usable) != len(group) or len({len(r[0]) for r in usable.values()}) != 1:
            continue  # some series lacks verdicts, or they were judged on different prompt counts
        for rule in RULES:
            if rule == "reference" and two_d:
                continue
            result = bootstrap_visage(usable, rule_score(rule), boot)
            for s in group:
                out.visage[s][rule] = result.per_series[s.label]
            out.mean.setdefault(label, {})[rule] = result.mean


def sweep_intervals(records: Mapping[str, Mapping[Series, Mapping[Coords, PointRecord]]],
                    scored: Mapping[Series, Sequence[Coords]], *, two_d: bool, boot: Bootstrap = DEFAULT_BOOTSTRAP,
                    assumed: Mapping[Series, Collection[Coords]] | None = None) -> SweepIntervals:
    """Intervals of the measured points ``records`` (metric -> series -> coords -> record); VISAGE
    ones for the ``scored`` ASR series (series -> its grid coords, in order), with an adaptive
    sweep's ``assumed`` points (series -> coords) at 100 %."""
    out = SweepIntervals()
    for metric, by_series in records.items():
        for series, points in by_series.items():
            for coords, record in points.items():
                counts = counts_of(record)
                if counts is not None:
                    out.points.setdefault(metric, {}).setdefault(series, {})[coords] = rate_interval(*counts)
    _visage(records.get("asr", {}), scored, assumed or {}, two_d, boot, out)
    return out
