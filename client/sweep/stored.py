"""A sweep read back from its store: :func:`load_sweep` gives a :class:`SweepData`. No server.

Everything reads a sweep's metadata (:class:`~..sweep_meta.SweepMeta`: the spec and the plan's
point list) and the records by key, so records reused from another sweep (same content key) are
found, and points of other sweeps in the same store are ignored. An adaptive sweep's off-grid
edge points (``refined_points``) are read beside the grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError, ValidationError
from ..records import PointRecord, Series
from ..store import ResultStore
from ..sweep_meta import SweepMeta
from .planner import AdaptiveRule, GridShape, assumed

__all__ = ["Coords", "SweepData", "load_sweep", "pick_sweep"]

Coords = tuple[float, ...]


@dataclass
class SweepData:
    """A sweep read back from its store: ``values`` (metric -> series -> {coords: value}, the
    measured points), ``planned`` (metric -> series -> [coords], every point of the plan) and
    ``records`` (metric -> series -> {coords: record} of the measured grid points, for the verdicts
    behind the values). ``meta`` may be given as the stored JSON (a dict), which is read into a
    :class:`SweepMeta`."""

    name: str
    meta: SweepMeta
    values: dict[str, dict[Series, dict[Coords, float]]]
    planned: dict[str, dict[Series, list[Coords]]]
    refined: dict[Series, dict[Coords, float]] = field(default_factory=dict)  # adaptive: off-grid ASR edge points
    records: dict[str, dict[Series, dict[Coords, PointRecord]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        meta: object = self.meta
        if isinstance(meta, Mapping):
            self.meta = SweepMeta.from_json(meta)

    @property
    def two_d(self) -> bool:
        return self.meta.spec.two_d

    @property
    def rule(self) -> AdaptiveRule | None:
        """The adaptive rule of an adaptive sweep, None for a full grid."""
        grid = self.meta.spec.grid
        return AdaptiveRule.of_grid(grid) if grid.adaptive else None

    def asr_measured(self, series: Series) -> dict[Coords, float]:
        """The series' measured ASR points, grid and off-grid (edge refinement)."""
        return {**self.values.get("asr", {}).get(series, {}), **self.refined.get(series, {})}

    def assumed(self) -> dict[Series, list[Coords] | None]:
        """Adaptive sweeps: per ASR series, the grid points assumed at 100 % (None: walk unfinished)."""
        rule = self.rule
        if rule is None:
            return {}
        return {s: assumed(GridShape.of(coords), self.asr_measured(s), rule)
                for s, coords in self.planned.get("asr", {}).items()}

    @property
    def measured(self) -> int:
        return sum(len(s) for m in self.values.values() for s in m.values())

    @property
    def planned_count(self) -> int:
        return sum(len(s) for m in self.planned.values() for s in m.values())

    def grid(self, metric: str, series: Series,
             missing: float | None = math.nan) -> tuple[list[float], list[float], list[list[float | None]]]:
        """A 2D series as axes ``a``, ``b`` and values ``z[b][a]`` (``missing`` where not measured)."""
        coords = self.planned[metric][series]
        a = sorted({c[0] for c in coords})
        b = sorted({c[1] for c in coords})
        vals = self.values.get(metric, {}).get(series, {})
        return a, b, [[vals.get((x, y), missing) for x in a] for y in b]

    def complete(self, metric: str, series: Series) -> bool:
        return len(self.values.get(metric, {}).get(series, {})) == len(self.planned[metric][series])


def pick_sweep(store: ResultStore, name: str | None = None) -> str:
    """``name``, or the store's only sweep; ValidationError otherwise (naming the choices)."""
    names = [n for n in store.sweeps() if store.get_meta(n) is not None]
    if name is not None:
        if name not in names:
            raise ValidationError(f"no sweep {name!r} in {store.path}; it holds: {', '.join(names) or 'none'}")
        return name
    if len(names) != 1:
        raise ValidationError(f"{store.path} holds {len(names)} sweeps ({', '.join(names) or 'none'}): pick one with --sweep")
    return names[0]


def read_meta(store: ResultStore, name: str) -> SweepMeta:
    """The metadata of sweep ``name`` (empty if it has none); a StoreError naming the file when unreadable."""
    raw: Any = store.get_meta(name) or {}
    try:
        return SweepMeta.from_json(raw)
    except ValueError as exc:
        raise StoreError(f"{store.path} holds unreadable metadata of sweep {name!r} ({exc}): move the file aside "
                         "and re-run the sweep, or read it with the client version that wrote it") from None


def load_sweep(store: ResultStore, name: str | None = None) -> SweepData:
    name = pick_sweep(store, name)
    meta = read_meta(store, name)
    values: dict[str, dict[Series, dict[Coords, float]]] = {}
    planned: dict[str, dict[Series, list[Coords]]] = {}
    records: dict[str, dict[Series, dict[Coords, PointRecord]]] = {}
    for point in meta.points:
        series, coords = point.curve, point.coords
        planned.setdefault(point.metric, {}).setdefault(series, []).append(coords)
        record = store.get(point.key)
        if record is not None:
            values.setdefault(point.metric, {}).setdefault(series, {})[coords] = record.value
            records.setdefault(point.metric, {}).setdefault(series, {})[coords] = record
    refined: dict[Series, dict[Coords, float]] = {}
    for point in meta.refined_points or ():
        record = store.get(point.key)
        if record is not None:
            refined.setdefault(point.curve, {})[point.coords] = record.value
    return SweepData(name, meta, values, planned, refined, records)
