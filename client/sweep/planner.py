"""Which points a sweep measures next: every missing point (the full grid), or adaptively.

An adaptive sweep (``[grid] adaptive = true``, docs/sweeps.md "Adaptive sweeps") measures each
ASR series from its centre outward and stops where the model is broken: a series' grid is a
graph (1D: a line; 2D: the 4-neighbour lattice), and

- the **centre** is the grid point nearest the origin (the model measured, theta0 + base) on
  every axis; on a tie (an even number of points around 0) the one above it, index ``N // 2`` of
  a symmetric axis, the reference VISAGE rule's centre;
- a measured point is **on the plateau** when its ASR is 100 % (``> 100 - 0.01``, the
  reference VISAGE rule's test);
- the **depth** of a measured point is 0 below the plateau; on the plateau it is 1 + the least
  depth of its measured neighbours (the centre counts 1 on its own), i.e. the number of
  consecutive plateau points on the shortest way back to a point below 100 % or to the centre;
- the next points are the centre, while unmeasured, then every unmeasured neighbour of a
  measured point of depth < ``stop_after`` (k). The walk is done when there are none: in 1D a side
  stops after k consecutive points at 100 % (a 100 % point inside the basin with fewer than k
  such neighbours in a row, a spike, does not stop it); in 2D growth stops at a wall of plateau
  points k steps thick. Every grid point left unmeasured is **assumed** on the plateau (ASR
  100 %), never measured: the summary, plots and VISAGE say so.
- with **probes** (``probe_every`` m > 0, ``probe_ends``), the assumption is tested before it is
  made: once the walk is done, every unmeasured probe site is measured, the sites being the
  points whose index on every axis is a multiple of m counted from that axis' end on its side of
  the centre (the ends included), and with ``probe_ends`` the ends themselves (1D: the grid's two
  outermost points; 2D: its corners). A probe below 100 % has depth 0, so the walk reopens
  around it; the sweep stops only when the walk is done and every probe site is measured (every
  probe still assumed-looking reads 100 %).
- with ``edge_resolution`` r > 0 (1D only), each side's edge, between the last grid point below
  100 % and the first of the k that stopped the side, is then bisected off the grid until its two
  ends are at most r apart; those points are measured (keyed like grid points would be) and only
  locate the edge: VISAGE stays a grid score.

The grid functions (:func:`frontier`, :func:`probes`, :func:`assumed`, :func:`edges`,
:func:`refinements`) are
pure over (grid, measured values). :class:`AdaptivePlanner` applies them to a
:class:`~.points.Plan`; benign and capability points follow the ASR walk (measured at every site
where an ASR point is; nothing is assumed about them).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import VisageError
from ..records import Series
from .points import Plan, Point, Task, off_grid_point
from .spec.schema import DEFAULT_STOP_AFTER

__all__ = ["AdaptivePlanner", "AdaptiveRule", "Edge", "FullGrid", "GridShape", "Measured", "Planner", "assumed",
           "edges", "frontier", "next_points", "planner_for", "probes", "refinements"]

Coords = tuple[float, ...]

#: The reference VISAGE rule's plateau test: ASR > 100 - 0.01.
PLATEAU_MARGIN = 0.01


@dataclass(frozen=True)
class AdaptiveRule:
    """When a side stops (``stop_after`` consecutive plateau points), which skipped points are
    probed before they are assumed (every ``probe_every``-th from each end, 0 = none; the ends
    with ``probe_ends``) and how finely an edge is located off the grid (``edge_resolution``,
    coefficient units; 0 = not)."""

    stop_after: int = DEFAULT_STOP_AFTER
    edge_resolution: float = 0.0
    s_max: float = 100.0
    probe_every: int = 0
    probe_ends: bool = False

    @classmethod
    def of_grid(cls, grid: Mapping[str, Any] | Any) -> AdaptiveRule:
        """The rule of a spec's grid (a :class:`~.spec.Grid` or its stored dict)."""
        get = grid.get if isinstance(grid, Mapping) else lambda name, default: getattr(grid, name, default)
        return cls(int(get("stop_after", DEFAULT_STOP_AFTER)), float(get("edge_resolution", 0.0)))

    def on_plateau(self, value: float) -> bool:
        return value > self.s_max - PLATEAU_MARGIN


@dataclass(frozen=True)
class GridShape:
    """The axes of one series' grid (sorted values per axis; 1 or 2 axes, every combination a point)."""

    axes: tuple[tuple[float, ...], ...]

    @classmethod
    def of(cls, coords: Iterable[Coords]) -> GridShape:
        points = list(coords)
        if not points:
            raise ValueError("a grid needs at least one point")
        return cls(tuple(tuple(sorted({c[i] for c in points})) for i in range(len(points[0]))))

    @property
    def centre(self) -> Coords:
        """Per axis the value nearest 0; on a tie the larger (index N // 2 of a symmetric axis)."""
        return tuple(min(axis, key=lambda x: (abs(x), -x)) for axis in self.axes)

    def index(self, c: Coords) -> tuple[int, ...] | None:
        try:
            return tuple(axis.index(x) for axis, x in zip(self.axes, c, strict=True))
        except ValueError:
            return None

    def __contains__(self, c: object) -> bool:
        return isinstance(c, tuple) and len(c) == len(self.axes) and self.index(c) is not None

    def points(self) -> list[Coords]:
        return list(itertools.product(*self.axes))

    def neighbours(self, c: Coords) -> list[Coords]:
        """The grid points one step away along one axis."""
        idx = self.index(c)
        if idx is None:
            return []
        out = []
        for axis, i in enumerate(idx):
            for j in (i - 1, i + 1):
                if 0 <= j < len(self.axes[axis]):
                    out.append((*c[:axis], self.axes[axis][j], *c[axis + 1:]))
        return out

    def steps_from_centre(self, c: Coords) -> int:
        idx, mid = self.index(c), self.index(self.centre)
        return sum(abs(a - b) for a, b in zip(idx or (), mid or (), strict=True))


def _depths(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> dict[Coords, int]:
    """The depth of each measured grid point (see the module docstring); cells deeper than
    ``stop_after`` are left out (they expand nothing either way)."""
    values = {c: v for c, v in measured.items() if c in grid}
    heap = [(0, c) for c, v in values.items() if not rule.on_plateau(v)]
    centre = grid.centre
    if centre in values and rule.on_plateau(values[centre]):
        heap.append((1, centre))
    heapq.heapify(heap)
    depth: dict[Coords, int] = {}
    while heap:
        d, c = heapq.heappop(heap)
        if c in depth:
            continue
        depth[c] = d
        if d >= rule.stop_after:
            continue
        for n in grid.neighbours(c):
            if n in values and n not in depth and rule.on_plateau(values[n]):
                heapq.heappush(heap, (d + 1, n))
    return depth


def frontier(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Coords]:
    """The unmeasured grid points the walk measures next, nearest the centre first; [] = done."""
    if grid.centre not in measured:
        return [grid.centre]
    depth = _depths(grid, measured, rule)
    out = {n for c, d in depth.items() if d < rule.stop_after for n in grid.neighbours(c) if n not in measured}
    return sorted(out, key=lambda c: (grid.steps_from_centre(c), c))


def _probe_indices(n: int, centre: int, rule: AdaptiveRule) -> set[int]:
    """The probe sites' indices on an axis of ``n`` points whose centre is index ``centre``."""
    out = {0, n - 1} if rule.probe_ends else set()
    if rule.probe_every > 0:  # counted from the axis' end on the index's side of the centre
        out |= {i for i in range(n) if (i if i < centre else n - 1 - i) % rule.probe_every == 0}
    return out


def probes(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Coords]:
    """The probe sites not measured yet (see the module docstring), nearest the centre first;
    [] = none, or the rule probes nothing. Asked for once the walk is done (:func:`next_points`)."""
    if rule.probe_every <= 0 and not rule.probe_ends:
        return []
    centre = grid.index(grid.centre) or ()
    per_axis = [sorted(_probe_indices(len(axis), mid, rule)) for axis, mid in zip(grid.axes, centre, strict=True)]
    sites = (tuple(axis[i] for axis, i in zip(grid.axes, idx, strict=True)) for idx in itertools.product(*per_axis))
    return sorted((c for c in sites if c not in measured), key=lambda c: (grid.steps_from_centre(c), c))


def assumed(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Coords] | None:
    """The grid points assumed on the plateau (the unmeasured ones) once the walk and its probes
    are done; None before."""
    if frontier(grid, measured, rule) or probes(grid, measured, rule):
        return None
    return [c for c in grid.points() if c not in measured]


@dataclass(frozen=True)
class Edge:
    """One side of a 1D basin: ``inside`` is the outermost measured point below 100 % before the
    plateau, ``outside`` the first at 100 % after it (``side``: "low" below the centre, "high" above)."""

    side: str
    inside: float
    outside: float

    @property
    def width(self) -> float:
        return abs(self.outside - self.inside)


def _side_edge(axis: tuple[float, ...], measured: Mapping[Coords, float], rule: AdaptiveRule, step: int) -> Edge | None:
    """The edge of one side of a finished 1D walk: the run that stopped it, bracketed, then narrowed
    by the off-grid points measured inside the bracket (bisection)."""
    centre = min(range(len(axis)), key=lambda i: (abs(axis[i]), -axis[i]))
    inside, run, i = None, 0, centre
    run_start = None
    while 0 <= i < len(axis) and (axis[i],) in measured:
        if rule.on_plateau(measured[(axis[i],)]):
            run_start = run_start if run else i
            run += 1
            if run >= rule.stop_after:
                break
        else:
            inside, run = i, 0
        i += step
    if run < rule.stop_after or inside is None or run_start is None:
        return None  # the side ran to the grid's end, or has no point below 100 %
    lo, hi = axis[inside], axis[run_start]
    between = sorted((c[0] for c in measured if len(c) == 1 and min(lo, hi) < c[0] < max(lo, hi)),
                     key=lambda x: abs(x - lo))
    for x in between:  # from the inside out: the first plateau point closes the bracket
        if rule.on_plateau(measured[(x,)]):
            hi = x
            break
        lo = x
    return Edge("high" if step > 0 else "low", lo, hi)


def edges(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Edge]:
    """The basin's edges of a finished 1D walk (none for 2D grids or before the walk is done)."""
    if len(grid.axes) != 1 or frontier(grid, measured, rule) or probes(grid, measured, rule):
        return []
    found = (_side_edge(grid.axes[0], measured, rule, step) for step in (-1, 1))
    return [e for e in found if e is not None]


def _clean(x: float) -> float:
    x = round(x, 12)  # as the grid's own values (points.axis_values): stable keys
    return 0.0 if x == 0 else x


def refinements(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Coords]:
    """The off-grid midpoints that narrow each edge wider than ``edge_resolution`` (1D); [] = done."""
    if rule.edge_resolution <= 0:
        return []
    out: list[Coords] = []
    for edge in edges(grid, measured, rule):
        mid = _clean((edge.inside + edge.outside) / 2)
        if edge.width > rule.edge_resolution * (1 + 1e-9) and mid not in (edge.inside, edge.outside):
            out.append((mid,))
    return out


def next_points(grid: GridShape, measured: Mapping[Coords, float], rule: AdaptiveRule) -> list[Coords]:
    """The walk's next grid points, then (once it is done) its probes, then the edge refinements;
    [] = done."""
    return frontier(grid, measured, rule) or probes(grid, measured, rule) or refinements(grid, measured, rule)


# -- applied to a plan ------------------------------------------------------------------------


class Measured(Protocol):
    """The point values known so far, by point key (a plain dict is one)."""

    def __contains__(self, key: object) -> bool: ...

    def get(self, key: str) -> float | None: ...


Round = dict[Task, list[Point]]


class Planner(Protocol):
    refined: list[Point]  # off-grid points made so far (listed in the sweep's metadata)

    def next_round(self, measured: Measured) -> Round:
        """The tasks to evaluate next (each with the points it records); {} = the sweep is done."""
        ...


@dataclass
class FullGrid:
    """Every task with a point missing, in one round."""

    plan: Plan
    refined: list[Point] = field(default_factory=list)  # none: the grid only

    def next_round(self, measured: Measured) -> Round:
        return {t: pts for t, pts in self.plan.tasks.items() if any(p.key not in measured for p in pts)}


@dataclass
class _SeriesGrid:
    series: Series
    grid: GridShape
    points: dict[Coords, Point]
    refined: dict[Coords, Point] = field(default_factory=dict)


@dataclass
class AdaptivePlanner:
    """The adaptive rule over a plan's ASR series (see the module docstring). ``refined``: the
    off-grid points created for edges so far (the runner lists them in the sweep's metadata)."""

    plan: Plan
    rule: AdaptiveRule
    refined: list[Point] = field(default_factory=list)

    def __post_init__(self) -> None:
        by_series: dict[Series, dict[Coords, Point]] = {}
        for p in self.plan.points:
            if p.metric == "asr":
                by_series.setdefault(p.curve, {})[p.coords] = p
        self._series = [_SeriesGrid(s, GridShape.of(pts), pts) for s, pts in by_series.items()]
        asr_sites = {p.site for pts in by_series.values() for p in pts.values()}
        self._others = [(t, pts) for t, pts in self.plan.tasks.items() if pts[0].metric != "asr"]
        # A benign point off the ASR grid (benign.at = "origin" on a grid without a = 0) is always measured.
        self._always = {t for t, _ in self._others if t.site not in asr_sites}

    def next_round(self, measured: Measured) -> Round:
        asr: Round = {}
        for one in self._series:
            for point in self._next_of(one, measured):
                asr.setdefault(Task(point.site, point.variant), self.plan.tasks[Task(point.site, point.variant)])
        active = {t.site for t in asr} | {p.site for one in self._series for p in one.points.values()
                                          if p.key in measured}
        others = {t: pts for t, pts in self._others
                  if (t.site in active or t in self._always) and any(p.key not in measured for p in pts)}
        return {**asr, **others}

    def _values(self, one: _SeriesGrid, measured: Measured) -> dict[Coords, float]:
        values = {}
        for c, p in [*one.points.items(), *one.refined.items()]:
            v = measured.get(p.key) if p.key in measured else None
            if v is not None:
                values[c] = v
        return values

    def _next_of(self, one: _SeriesGrid, measured: Measured) -> list[Point]:
        """The points of one series to measure next: grid points, else off-grid edge points (made
        here, and looked up first: a resumed sweep finds the bisection it had done)."""
        while True:
            values = self._values(one, measured)
            coords = next_points(one.grid, values, self.rule)
            if not coords or coords[0] in one.grid:
                return [one.points[c] for c in coords]
            fresh = [self._refined_point(one, c) for c in coords]
            todo = [p for p in fresh if p.key not in measured]
            if todo:
                return todo

    def _refined_point(self, one: _SeriesGrid, c: Coords) -> Point:
        if c not in one.refined:
            if len(c) != 1:
                raise VisageError(f"edge refinement asked for {c}, off a 1D grid; a bug")
            anchor = next(iter(one.points.values()))
            point = off_grid_point(self.plan, anchor, c)
            one.refined[c] = point
            self.refined.append(point)
        return one.refined[c]


def planner_for(plan: Plan) -> Planner:
    """The adaptive planner when the spec's grid says ``adaptive = true``, else the full grid."""
    grid = plan.spec.grid
    return AdaptivePlanner(plan, AdaptiveRule.of_grid(grid)) if grid.adaptive else FullGrid(plan)
