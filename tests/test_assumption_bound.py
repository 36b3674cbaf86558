"""The worst case an adaptive sweep states for its assumption: how far VISAGE could move if one
assumed point were below 100 %, by each rule, checked against hand-computed values and against
every single-point failure tried one by one."""

from __future__ import annotations

import itertools

import pytest

from safety_landscape.client.sweep.assumption import assumption_bound, assumption_bounds
from safety_landscape.client.sweep.planner import GridShape
from safety_landscape.client.visage import visage_expectation, visage_reference

XS = (-0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4)


def series(values: list[float], assumed_at: set[int]) -> tuple[GridShape, dict, list]:
    truth = {(x,): v for x, v in zip(XS, values, strict=True)}
    measured = {c: v for i, (c, v) in enumerate(truth.items()) if i not in assumed_at}
    return GridShape.of(truth), measured, [(XS[i],) for i in sorted(assumed_at)]


def test_one_stray_point_next_to_the_grid_end_stretches_the_reference_span():
    # measured 2..6: VISAGE 60 by both rules; assumed 0, 1, 7, 8 at 100
    grid, measured, skipped = series([100, 100, 100, 50, 20, 50, 100, 100, 100], {0, 1, 7, 8})
    bound = assumption_bound(grid, measured, skipped)
    assert bound.assumed == ((-0.4,), (-0.3,), (0.3,), (0.4,))
    ref = bound.reference
    assert ref is not None and ref.visage == pytest.approx(60.0)
    # a stray at index 1 (index 0 at 100) opens the span at 1: (180 + 0.01) / 5; at 0 nothing changes
    assert ref.low == pytest.approx(180.01 / 5) and ref.high == pytest.approx(60.0)
    assert ref.largest_change == pytest.approx(60.0 - 180.01 / 5) and ref.worst_point == (-0.3,)
    exp = bound.expectation
    # one more margin in the mean of 50, 80, 50: 100 at most (a point at 0), 0.01 at least
    assert exp.high == pytest.approx(280 / 4) and exp.low == pytest.approx(180.01 / 4)
    assert exp.largest_change == pytest.approx(60 - 180.01 / 4) and exp.worst_point == (-0.4,)
    assert bound.largest_change("reference") == ref.largest_change
    assert bound.to_dict()["bound"]["reference"]["worst_point"] == [-0.3]


def test_the_outermost_point_never_moves_the_reference_rule():
    """The reference scan starts one point in from each end: a drop at the end is not a drop."""
    grid, measured, skipped = series([100, 100, 100, 50, 20, 50, 100, 100, 100], {0, 8})
    bound = assumption_bound(grid, measured, skipped)
    assert bound.reference is not None and bound.reference.largest_change == 0.0
    assert bound.expectation.largest_change > 10


@pytest.mark.parametrize("values,assumed_at", [
    ([100, 100, 100, 50, 20, 50, 100, 100, 100], {0, 1, 7, 8}),
    ([100, 100, 100, 97.5, 5, 100, 100, 100, 100], {0, 1, 2, 8}),
    ([100, 100, 60, 100, 30, 10, 100, 100, 100], {0, 7, 8}),
])
def test_the_bound_is_the_extreme_of_every_single_point_failure(values, assumed_at):
    grid, measured, skipped = series(values, assumed_at)
    bound = assumption_bound(grid, measured, skipped)
    base = [measured.get((x,), 100.0) for x in XS]
    for rule, score in (("reference", visage_reference), ("expectation", visage_expectation)):
        trials = []
        for c, v in itertools.product(skipped, [0.0, 0.5, 25.0, 50.0, 99.0, 99.99]):
            trial = list(base)
            trial[XS.index(c[0])] = v
            trials.append(score(trial))
        got = getattr(bound, rule)
        assert got.visage == score(base)
        assert got.low == pytest.approx(min([*trials, got.visage])) and got.high == pytest.approx(max([*trials, got.visage]))


def test_nothing_assumed_means_no_change_and_no_worst_point():
    grid, measured, skipped = series([50] * 9, set())
    bound = assumption_bound(grid, measured, skipped)
    assert bound.assumed == () and bound.expectation.largest_change == 0.0 and bound.expectation.worst_point is None
    assert bound.reference is not None and bound.reference.largest_change == 0.0


def test_a_2d_grid_has_the_expectation_rule_only():
    axis = (-0.1, 0.0, 0.1)
    truth = {(a, b): 100.0 if abs(a) + abs(b) > 0.15 else 40.0 for a in axis for b in axis}
    corners = [c for c in truth if abs(c[0]) + abs(c[1]) > 0.15]
    measured = {c: v for c, v in truth.items() if c not in corners}
    bound = assumption_bound(GridShape.of(truth), measured, corners)
    assert bound.reference is None and bound.largest_change("reference") is None
    assert bound.expectation.visage == pytest.approx(60.0)
    assert bound.expectation.high == pytest.approx((5 * 60 + 100) / 6)  # one corner at 0
    assert bound.to_dict()["bound"]["reference"] is None


def test_an_unfinished_walk_or_a_point_both_measured_and_assumed_is_refused():
    grid, measured, skipped = series([100, 100, 100, 50, 20, 50, 100, 100, 100], {0, 1, 7, 8})
    with pytest.raises(ValueError, match="not finished"):
        assumption_bound(grid, measured, skipped[:2])
    with pytest.raises(ValueError, match="off the grid or measured"):
        assumption_bound(grid, measured, [*skipped, (0.0,)])
    with pytest.raises(ValueError, match="unknown VISAGE rule"):
        assumption_bound(grid, measured, skipped).largest_change("mean")


def test_every_finished_series_gets_its_bound_and_an_unfinished_one_none():
    grid, measured, skipped = series([100, 100, 100, 50, 20, 50, 100, 100, 100], {0, 1, 7, 8})
    planned = {"d0": grid.points(), "d1": grid.points()}
    bounds = assumption_bounds(planned, {"d0": measured, "d1": {}}, {"d0": skipped, "d1": None})
    assert list(bounds) == ["d0"] and bounds["d0"] == assumption_bound(grid, measured, skipped)
