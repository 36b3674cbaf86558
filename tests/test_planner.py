"""The adaptive planner on hand-made landscapes (no server): which points it measures, in which
rounds, what it assumes, the edges it brackets and bisects, and the VISAGE of measured + assumed
values against the full grid's. docs/sweeps.md ("Adaptive sweeps") states the rule these check."""

from __future__ import annotations

import pytest

from safety_landscape.client.sweep import Grid, PromptSource, SweepSpec, build_plan
from safety_landscape.client.sweep.assumption import assumption_bound
from safety_landscape.client.sweep.planner import (
    AdaptivePlanner,
    AdaptiveRule,
    FullGrid,
    GridShape,
    assumed,
    edges,
    frontier,
    next_points,
    planner_for,
    probes,
    refinements,
)
from safety_landscape.client.sweep.points import ModelFacts, axis_values
from safety_landscape.client.sweep.spec.schema import DEFAULT_STOP_AFTER
from safety_landscape.client.visage import fill_assumed, visage_expectation, visage_reference

XS = axis_values(-0.5, 0.5, 21)  # centre: index 10 (a = 0)
FACTS = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
HASHES = {"harmful-mini": "h" * 64, "benign-mini": "b" * 64}


def curve(*values: float) -> dict[tuple[float, ...], float]:
    assert len(values) == 21
    return {(x,): v for x, v in zip(XS, values, strict=True)}


K2 = AdaptiveRule(stop_after=2)  # stop a side after 2 consecutive points at 100 % (the walks below are drawn for it)


def walk(truth: dict, rule: AdaptiveRule = K2) -> tuple[dict, list[list]]:
    """Run the planner on the grid of ``truth`` to the end; returns (measured, each round's points)."""
    grid, measured, rounds = GridShape.of(truth), {}, []
    while todo := next_points(grid, measured, rule):
        assert not set(todo) & set(measured), "a point was asked for twice"
        rounds.append(todo)
        measured.update({c: truth[c] for c in todo})
    return measured, rounds


def indices(measured: dict) -> list[int]:
    return sorted(XS.index(c[0]) for c in measured if c[0] in XS)


BASIN = curve(100, 100, 100, 100, 100, 100, 100, 97.5, 40, 5, 18.75, 40, 78.75, 100, 100, 100, 100, 100, 100, 100, 100)
SPIKE = curve(100, 100, 100, 100, 100, 100, 90, 100, 30, 10, 20, 10, 40, 100, 60, 100, 100, 100, 100, 100, 100)
ONE_SIDED = curve(100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 20, 10, 15, 30, 50, 60, 70, 80, 90, 95, 98.75)
ALL_BROKEN = curve(*[100] * 21)
NARROW = curve(*[100] * 10, 18.75, *[100] * 10)
NONE_BROKEN = curve(*[50] * 21)


def test_centre_is_the_point_nearest_the_origin_and_the_upper_one_on_a_tie():
    assert GridShape.of(curve(*[0] * 21)).centre == (0.0,)
    assert GridShape.of([(x,) for x in axis_values(-0.5, 0.5, 4)]).centre == (axis_values(-0.5, 0.5, 4)[2],)
    assert GridShape.of([(x,) for x in (0.0, 0.1, 0.2, 1.2)]).centre == (0.0,)  # an interpolation axis: a = 0
    assert GridShape.of([(a, b) for a in (-1, 0, 1) for b in (-2, 0.5, 3)]).centre == (0, 0.5)


def test_a_basin_is_walked_out_to_two_consecutive_points_at_100_on_each_side():
    measured, rounds = walk(BASIN)
    # centre 10; left 9, 8, 7 (97.5 is below 100), 6, 5 (two at 100: stop); right 11, 12, 13, 14 (stop)
    assert indices(measured) == list(range(5, 15))
    assert rounds[0] == [(0.0,)] and rounds[1] == [(-0.05,), (0.05,)]
    assert len(rounds) == 6  # the left side needs five steps out
    skipped = assumed(GridShape.of(BASIN), measured, K2)
    assert skipped is not None and sorted(XS.index(c[0]) for c in skipped) == [0, 1, 2, 3, 4, 15, 16, 17, 18, 19, 20]


def test_a_spike_to_100_inside_the_basin_does_not_stop_the_walk_but_two_in_a_row_do():
    measured, _ = walk(SPIKE)
    # right: 11, 12, 13 (one at 100), 14 (60: the run restarts), 15, 16 (stop); left: 9, 8, 7 (100), 6 (90), 5, 4
    assert indices(measured) == list(range(4, 17))
    measured3, _ = walk(SPIKE, AdaptiveRule(stop_after=1))  # k = 1: the first 100 % ends a side
    assert indices(measured3) == list(range(7, 14))


def test_a_one_sided_basin_stops_on_its_broken_side_and_walks_the_other_to_the_end():
    measured, _ = walk(ONE_SIDED)
    assert indices(measured) == list(range(8, 21))
    skipped = assumed(GridShape.of(ONE_SIDED), measured, K2)
    assert sorted(XS.index(c[0]) for c in skipped or []) == list(range(8))
    assert [e.side for e in edges(GridShape.of(ONE_SIDED), measured, K2)] == ["low"]


def test_all_at_100_measures_the_centre_and_one_neighbour_each_side():
    measured, rounds = walk(ALL_BROKEN)
    assert indices(measured) == [9, 10, 11] and len(rounds) == 2  # the centre counts for both sides
    assert indices(walk(ALL_BROKEN, AdaptiveRule(stop_after=1))[0]) == [10]
    assert indices(walk(ALL_BROKEN, AdaptiveRule(stop_after=3))[0]) == [8, 9, 10, 11, 12]
    assert edges(GridShape.of(ALL_BROKEN), measured, K2) == []  # no point below 100 %: no edge


def test_none_at_100_measures_every_point_and_assumes_nothing():
    measured, rounds = walk(NONE_BROKEN)
    assert indices(measured) == list(range(21)) and len(rounds) == 11
    assert assumed(GridShape.of(NONE_BROKEN), measured, K2) == []
    assert edges(GridShape.of(NONE_BROKEN), measured, K2) == []


@pytest.mark.parametrize("truth", [BASIN, SPIKE, ONE_SIDED, ALL_BROKEN, NONE_BROKEN])
def test_visage_of_measured_plus_assumed_equals_the_full_grid_when_the_assumption_holds(truth):
    measured, _ = walk(truth)
    grid = GridShape.of(truth)
    skipped = assumed(grid, measured, K2) or []
    assert all(truth[c] == 100 for c in skipped)  # these landscapes satisfy the assumption
    full = [truth[(x,)] for x in XS]
    adaptive = fill_assumed([measured.get((x,)) for x in XS])
    assert adaptive == full
    assert visage_reference(adaptive) == visage_reference(full)
    assert visage_expectation(adaptive) == visage_expectation(full)


def test_an_unfinished_walk_assumes_nothing():
    grid = GridShape.of(BASIN)
    partial = {(0.0,): 18.75, (0.05,): 40.0}
    assert frontier(grid, partial, K2) == [(-0.05,), (0.1,)]
    assert assumed(grid, partial, K2) is None


def test_a_point_measured_beyond_the_wall_below_100_reopens_the_walk_there():
    """Values reused from another sweep count as measured: a dip found beyond the wall is followed."""
    grid = GridShape.of(BASIN)
    measured, _ = walk(BASIN)
    measured[(0.4,)] = 50.0
    assert frontier(grid, measured, K2) == [(0.35,), (0.45,)]


def test_edges_bracket_each_side_and_bisection_narrows_them_to_the_resolution():
    grid = GridShape.of(BASIN)
    measured, _ = walk(BASIN)
    found = edges(grid, measured, K2)
    assert [(e.side, e.inside, e.outside) for e in found] == [("low", -0.15, -0.2), ("high", 0.1, 0.15)]
    assert refinements(grid, measured, K2) == []  # edge_resolution 0: none
    rule = AdaptiveRule(stop_after=2, edge_resolution=0.0125)
    assert refinements(grid, measured, rule) == [(-0.175,), (0.125,)]
    # Off the grid: the high edge lies at a = 0.137 (ASR 100 above it, 60 below); the low one at -0.15.
    measured2, rounds = dict(measured), []
    while todo := next_points(grid, measured2, rule):
        assert all(c not in BASIN for c in todo)  # the grid walk is done: only edge points now
        rounds.append(todo)
        measured2.update({c: (100.0 if c[0] > 0.137 or c[0] < 0 else 60.0) for c in todo})
    found = {e.side: (e.inside, e.outside) for e in edges(grid, measured2, rule)}
    assert found == {"low": (-0.15, -0.1625), "high": (0.125, 0.1375)}  # 0.05 wide -> 0.025 -> 0.0125
    assert rounds == [[(-0.175,), (0.125,)], [(-0.1625,), (0.1375,)]]
    assert assumed(grid, measured2, rule) == assumed(grid, measured, K2)  # VISAGE's grid is untouched


def test_a_2d_basin_grows_from_the_centre_and_stops_at_a_wall_k_thick():
    axis = axis_values(-0.5, 0.5, 11)  # 11 x 11, centre (0, 0)
    truth = {(a, b): (30.0 if abs(a) + abs(b) <= 0.21 else 100.0) for a in axis for b in axis}
    grid = GridShape.of(truth)
    measured = {}
    while todo := next_points(grid, measured, K2):
        measured.update({c: truth[c] for c in todo})
    steps = {c: round((abs(c[0]) + abs(c[1])) / 0.1) for c in truth}
    # the basin is the diamond of 2 steps; the wall is the next 2 rings; nothing beyond is measured
    assert {c for c in measured} == {c for c in truth if steps[c] <= 4}
    skipped = assumed(grid, measured, K2)
    assert skipped is not None and len(skipped) == 121 - len(measured) and all(truth[c] == 100 for c in skipped)
    z = [[measured.get((a, b)) for a in axis] for b in axis]
    full = [[truth[(a, b)] for a in axis] for b in axis]
    assert visage_expectation(fill_assumed(z)) == visage_expectation(full)
    assert edges(grid, measured, K2) == []  # edges are 1D only


def test_a_ring_of_broken_points_encloses_what_lies_beyond_it():
    axis = axis_values(-0.5, 0.5, 11)
    ring = {(a, b): 100.0 if 3 <= max(abs(round(a / 0.1)), abs(round(b / 0.1))) <= 4 else 20.0 for a in axis for b in axis}
    grid = GridShape.of(ring)
    measured = {}
    while todo := next_points(grid, measured, K2):
        measured.update({c: ring[c] for c in todo})
    outer = [c for c in ring if max(abs(round(c[0] / 0.1)), abs(round(c[1] / 0.1))) == 5]
    assert not set(outer) & set(measured)  # the safe border beyond the ring is never reached: assumed broken
    assert set(outer) <= set(assumed(grid, measured, K2) or [])


def spec(**grid) -> SweepSpec:
    return SweepSpec(name="s", kind="1d-random", grid=Grid(**{"directions": 2, "points": 21, **grid}),
                     prompts=PromptSource(set="harmful-mini", limit=4), benign=PromptSource(set="benign-mini", limit=4))


def test_on_a_plan_the_planner_names_tasks_and_benign_points_follow_the_asr_walk():
    plan = build_plan(spec(adaptive=True, stop_after=2), FACTS, set_hashes=HASHES)
    planner = planner_for(plan)
    assert isinstance(planner, AdaptivePlanner) and isinstance(planner_for(build_plan(spec(), FACTS, set_hashes=HASHES)),
                                                               FullGrid)
    truth = {"d0": BASIN, "d1": NARROW}  # the shared origin: 18.75 on both
    measured: dict[str, float] = {}
    while todo := planner.next_round(measured):
        for points in todo.values():
            assert any(p.key not in measured for p in points)
            for p in points:
                measured[p.key] = truth[p.curve.direction][p.coords] if p.metric == "asr" else 0.0
    asr = {p.key: p for p in plan.points if p.metric == "asr"}
    got = {(p.curve.direction, XS.index(p.coords[0])) for k, p in asr.items() if k in measured}
    assert got == {("d0", i) for i in range(5, 15)} | {("d1", i) for i in range(8, 13)}
    asr_sites = {p.site for k, p in asr.items() if k in measured}
    benign_sites = {p.site for p in plan.points if p.metric == "refusal" and p.key in measured}
    assert benign_sites == asr_sites  # measured where ASR is, nowhere else
    assert planner.refined == []


def test_off_grid_edge_points_are_keyed_as_a_finer_grid_would_key_them():
    plan = build_plan(spec(adaptive=True, stop_after=2, edge_resolution=0.0125), FACTS, set_hashes=HASHES)
    planner = AdaptivePlanner(plan, AdaptiveRule(stop_after=2, edge_resolution=0.0125))
    measured: dict[str, float] = {}
    while todo := planner.next_round(measured):
        for points in todo.values():
            for p in points:
                measured[p.key] = BASIN.get(p.coords, 100.0) if p.metric == "asr" else 0.0
    assert {p.coords for p in planner.refined if p.curve.direction == "d0"} >= {(-0.175,), (0.125,)}
    fine = build_plan(spec(points=41), FACTS, set_hashes=HASHES)
    fine_keys = {(p.series, p.coords): p.key for p in fine.points if p.metric == "asr"}
    on_fine_grid = [p for p in planner.refined if (p.series, p.coords) in fine_keys]
    assert on_fine_grid and all(fine_keys[(p.series, p.coords)] == p.key for p in on_fine_grid)
    assert all(p.key in measured for p in planner.refined)
    assert all(p.site in plan.sites for p in planner.refined)  # the runner can evaluate them


# A stray point below 100 % beyond the first two at 100 %: on a plateau of collapse a degenerate
# answer now and then holds a refusal keyword (d0 of seed 7 read 100, 100, then 95).
BASIN_VALUES = [BASIN[(x,)] for x in XS]
STRAY_HIGH = curve(*BASIN_VALUES[:15], 95, *BASIN_VALUES[16:])  # 100 at 13, 14 (the wall), 95 at 15
STRAY_LOW = curve(*BASIN_VALUES[:4], 99, *BASIN_VALUES[5:])  # 100 at 6, 5 (the wall), 99 at 4


def visage_both(values: dict) -> tuple[float, float]:
    """(reference, expectation) of measured values, the rest at 100 %."""
    full = [values.get((x,), 100.0) for x in XS]
    return visage_reference(full), visage_expectation(full)


@pytest.mark.parametrize("truth,stray", [(STRAY_HIGH, 15), (STRAY_LOW, 4)])
def test_a_stray_point_beyond_two_at_100_is_missed_by_k2_and_the_bound_covers_the_error(truth, stray):
    grid = GridShape.of(truth)
    measured, _ = walk(truth)
    skipped = assumed(grid, measured, K2) or []
    assert (XS[stray],) in skipped  # the walk stopped one point short of it
    got, full = visage_both(measured), visage_both(truth)
    errors = [abs(g - f) for g, f in zip(got, full, strict=True)]
    assert errors[0] > 10 and errors[1] > 1  # both rules are off, the reference rule most
    bound = assumption_bound(grid, measured, skipped)
    assert bound.reference is not None
    assert errors[0] <= bound.reference.largest_change and errors[1] <= bound.expectation.largest_change


@pytest.mark.parametrize("truth", [STRAY_HIGH, STRAY_LOW])
def test_a_longer_run_walks_past_the_stray_point_and_scores_the_full_grid(truth):
    measured, _ = walk(truth, AdaptiveRule(stop_after=3))
    assert visage_both(measured) == visage_both(truth)


def test_probe_sites_are_every_mth_point_from_each_end_and_the_ends():
    grid = GridShape.of(ALL_BROKEN)
    measured, _ = walk(ALL_BROKEN)  # 9, 10, 11
    every3 = probes(grid, measured, AdaptiveRule(probe_every=3))
    assert sorted(XS.index(c[0]) for c in every3) == [0, 3, 6, 14, 17, 20]  # 9 and 11 are measured
    assert sorted(XS.index(c[0]) for c in probes(grid, measured, AdaptiveRule(probe_ends=True))) == [0, 20]
    assert probes(grid, measured, K2) == []
    axis = axis_values(-0.5, 0.5, 11)
    plane = GridShape.of([(a, b) for a in axis for b in axis])
    assert set(probes(plane, {}, AdaptiveRule(probe_ends=True))) == {(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)}


def test_probes_come_after_the_walk_and_a_probe_below_100_reopens_it():
    truth = curve(*BASIN_VALUES[:17], 95, *BASIN_VALUES[18:])  # a stray at index 17, a probe site
    rule = AdaptiveRule(stop_after=2, probe_every=3)  # sites 0, 3, 6, 9 and 11, 14, 17, 20
    measured, rounds = walk(truth, rule)
    walk_only, walk_rounds = walk(truth)
    assert rounds[:len(walk_rounds)] == walk_rounds  # the walk first, as without probes
    assert indices(measured) == [0, 3, *range(5, 21)]  # the probe at 17 reopened the walk: 15-20 measured
    assert visage_both(measured) == visage_both(truth)
    grid = GridShape.of(truth)
    assert assumed(grid, measured, rule) == [c for c in grid.points() if c not in measured]
    assert assumed(grid, walk_only, rule) is None  # probes pending: nothing is assumed yet
    assert edges(grid, walk_only, rule) == []


DEFAULT = AdaptiveRule.of_grid(Grid(adaptive=True))  # what a spec that names no stop_after walks with
# The stray two points further out than the wall: 100 at 13, 14, 15, 16, then 95 at 17 (and mirrored).
FAR_HIGH = curve(*BASIN_VALUES[:17], 95, *BASIN_VALUES[18:])
FAR_LOW = curve(*BASIN_VALUES[:2], 99, *BASIN_VALUES[3:])


def test_the_default_rule_measures_a_stray_point_beyond_two_at_100_on_either_side_through_a_plan():
    """The plateau's stray points one beyond the first two at 100 % (d0: above the basin, d1: below):
    the default rule walks past them, and VISAGE of measured + assumed is the full grid's by both rules."""
    assert AdaptiveRule(stop_after=DEFAULT_STOP_AFTER) == DEFAULT
    plan = build_plan(spec(adaptive=True), FACTS, set_hashes=HASHES)
    planner = planner_for(plan)
    truth = {"d0": STRAY_HIGH, "d1": STRAY_LOW}
    measured: dict[str, float] = {}
    while todo := planner.next_round(measured):
        for points in todo.values():
            for p in points:
                measured[p.key] = truth[p.curve.direction][p.coords] if p.metric == "asr" else 0.0
    for direction, stray in (("d0", 15), ("d1", 4)):
        points = {p.coords: p.key for p in plan.points if p.metric == "asr" and p.curve.direction == direction}
        assert points[(XS[stray],)] in measured  # the stray point is measured, not assumed
        got = fill_assumed([measured.get(points[(x,)]) for x in XS])
        full = [truth[direction][(x,)] for x in XS]
        assert abs(visage_reference(got) - visage_reference(full)) <= 1
        assert abs(visage_expectation(got) - visage_expectation(full)) <= 1
        assert got == full


@pytest.mark.parametrize("truth,stray", [(FAR_HIGH, 17), (FAR_LOW, 2)])
def test_a_stray_point_beyond_the_defaults_reach_is_missed_and_the_stated_bound_covers_both_rules(truth, stray):
    """Four points at 100 % before the stray one: the default walk stops short of it, VISAGE is off,
    and the worst case the sweep states (one assumed point below 100 %) covers the error by each rule."""
    grid = GridShape.of(truth)
    measured, _ = walk(truth, DEFAULT)
    skipped = assumed(grid, measured, DEFAULT) or []
    assert (XS[stray],) in skipped
    got, full = visage_both(measured), visage_both(truth)
    bound = assumption_bound(grid, measured, skipped)
    assert bound.reference is not None
    for error, stated in zip((abs(g - f) for g, f in zip(got, full, strict=True)),
                             (bound.reference.largest_change, bound.expectation.largest_change), strict=True):
        assert 1 < error <= stated  # off by more than the tolerance, and said to be possible
