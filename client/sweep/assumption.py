"""How far an adaptive sweep's VISAGE could be off: the worst case of its assumption, per series.

An adaptive sweep (:mod:`.planner`) assumes every point it skipped at ASR 100 % (the broken
plateau) and scores VISAGE on measured + assumed values. The assumption can fail: on a plateau of
collapse a degenerate answer now and then contains a refusal keyword, and a skipped point reads
95 or 99 %. :func:`assumption_bound` states, without the full grid, how much that could matter:
for each VISAGE rule, the least and the greatest VISAGE the series could have if **one** of its
assumed points were below 100 % (any of them, at any value in [0, ``s_max`` - 0.01]), the others
at 100 %, and which point gives the largest change.

One point at a time, because that is the failure the plateau shows (a stray point below 100 %
among many at 100 %); with no limit on how many assumed points fail, any VISAGE would be possible
and the bound would say nothing. The bound is exact for one point: each rule is linear in the one
value while the set of points below 100 % is fixed, so the extremes lie at 0 and at
``s_max`` - 0.01, and every assumed point is tried at both.

The reference rule takes its span from the outermost drop from the plateau on each side, so one
stray point far out can stretch the span over every assumed point between it and the basin (the
largest changes); the expectation rule only adds one margin to its mean. 2D grids have the
expectation rule only (``reference`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..visage import visage_expectation, visage_reference
from .planner import PLATEAU_MARGIN, GridShape

__all__ = ["AssumptionBound", "RuleBound", "assumption_bound", "assumption_bounds"]

Coords = tuple[float, ...]
K = TypeVar("K")


@dataclass(frozen=True)
class RuleBound:
    """One VISAGE rule's worst case: ``visage`` as scored (assumed points at 100 %), ``low`` and
    ``high`` the extremes with one assumed point below 100 %, ``worst_point`` the assumed point
    that moves it most (None when nothing is assumed)."""

    rule: str
    visage: float
    low: float
    high: float
    worst_point: Coords | None

    @property
    def largest_change(self) -> float:
        """The most VISAGE could move (points, >= 0) if one assumed point were below 100 %."""
        return max(self.visage - self.low, self.high - self.visage)

    def to_dict(self) -> dict[str, Any]:
        return {"visage": self.visage, "low": self.low, "high": self.high, "largest_change": self.largest_change,
                "worst_point": None if self.worst_point is None else list(self.worst_point)}


@dataclass(frozen=True)
class AssumptionBound:
    """A series' assumed points and, per rule, the worst case of one of them below 100 %."""

    assumed: tuple[Coords, ...]
    expectation: RuleBound
    reference: RuleBound | None  # None: a 2D grid (the reference rule is 1D only)

    def largest_change(self, rule: str) -> float | None:
        """The bound of ``rule`` ("reference" | "expectation"); None where the rule does not apply."""
        bound = self.reference if rule == "reference" else self.expectation if rule == "expectation" else None
        if bound is None and rule not in ("reference", "expectation"):
            raise ValueError(f"unknown VISAGE rule {rule!r}")
        return None if bound is None else bound.largest_change

    def to_dict(self) -> dict[str, Any]:
        """summary.json's layout: the assumed coordinates and each rule's bound."""
        return {"assumed": [list(c) for c in self.assumed],
                "bound": {"expectation": self.expectation.to_dict(),
                          "reference": None if self.reference is None else self.reference.to_dict()}}


def assumption_bound(grid: GridShape, measured: Mapping[Coords, float], assumed: Sequence[Coords],
                     s_max: float = 100.0) -> AssumptionBound:
    """The worst case of a finished adaptive series (see the module docstring).

    ``grid``: the series' grid; ``measured``: its measured values (points off the grid, an edge's
    bisection, are ignored: VISAGE is a grid score); ``assumed``: the grid points assumed at
    ``s_max`` (:func:`.planner.assumed`). Raises ``ValueError`` when a point is both measured and
    assumed, off the grid, or when a grid point is neither (an unfinished walk has no bound).
    """
    points = grid.points()
    skipped = tuple(sorted(set(assumed)))
    problems = [c for c in skipped if c not in grid or c in measured]
    if problems:
        raise ValueError(f"assumed point(s) {problems[:3]} are off the grid or measured")
    unknown = [c for c in points if c not in measured and c not in skipped]
    if unknown:
        raise ValueError(f"{len(unknown)} grid point(s) neither measured nor assumed (e.g. {unknown[0]}): "
                         "the walk is not finished")
    values = [float(measured[c]) if c in measured else s_max for c in points]  # 1D: in axis order
    index = {c: i for i, c in enumerate(points)}
    rules = ["expectation"] + (["reference"] if len(grid.axes) == 1 else [])
    out = {rule: _rule_bound(rule, values, [index[c] for c in skipped], points, s_max) for rule in rules}
    return AssumptionBound(skipped, out["expectation"], out.get("reference"))


def assumption_bounds(planned: Mapping[K, Sequence[Coords]], measured: Mapping[K, Mapping[Coords, float]],
                      assumed: Mapping[K, Sequence[Coords] | None], s_max: float = 100.0) -> dict[K, AssumptionBound]:
    """:func:`assumption_bound` of every finished series (``assumed[s]`` not None), by series:
    ``planned`` each series' grid points, ``measured`` its measured values, ``assumed`` its assumed
    points (the shapes of a sweep's ASR series as :mod:`.summary` reads them from the store)."""
    return {s: assumption_bound(GridShape.of(coords), measured.get(s, {}), skipped, s_max)
            for s, coords in planned.items() if (skipped := assumed.get(s)) is not None}


def _rule_bound(rule: str, values: list[float], skipped: list[int], points: list[Coords], s_max: float) -> RuleBound:
    score = visage_reference if rule == "reference" else visage_expectation
    base = score(values, s_max)
    low = high = base
    worst, change = None, 0.0
    for i in skipped:
        for v in (0.0, s_max - PLATEAU_MARGIN):  # the extremes of a point below 100 %
            trial = values.copy()
            trial[i] = v
            x = score(trial, s_max)
            low, high = min(low, x), max(high, x)
            if abs(x - base) > change:
                worst, change = points[i], abs(x - base)
    return RuleBound(rule, base, low, high, worst)
