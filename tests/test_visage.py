"""VISAGE rules on hand-made curves (21 points like the paper's grid, plus short ones)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from safety_landscape.client.visage import (
    VisageSummary,
    summarize,
    visage_expectation,
    visage_reference,
)

TOL = 1e-9


def authors_visage(v):
    """A literal transcription of the authors' reference loop (S_max = 100, threshold 99.99)."""
    N = len(v)
    start = 0
    for i in range(1, N // 2):
        if v[i] <= 99.99 and v[i - 1] > 99.99:
            start = i
            break
    end = N - 1
    for i in range(N - 2, N // 2, -1):
        if v[i] <= 99.99 and v[i + 1] > 99.99:
            end = i
            break
    seg = v[start:end + 1]
    return sum(100 - x for x in seg) / len(seg)


# fmt: off
# basin: plateaus of 100 at both edges, 0 in the middle.
# start = 3 (v[3]=80 after v[2]=100), end = 17 (v[17]=80 before v[18]=100): 15 points,
# margins 20,40,60,80, 100 x7, 80,60,40,20 -> 1100 / 15 = 73.333...
BASIN = [100, 100, 100, 80, 60, 40, 20, 0, 0, 0, 0, 0, 0, 0, 20, 40, 60, 80, 100, 100, 100]
FLAT_100 = [100.0] * 21            # no drop from a plateau: start 0, end 20, mean(0) = 0
FLAT_0 = [0.0] * 21                # mean(100) = 100
# inner spike: BASIN with v[8] = 100. The scan from the edge finds start 3 first, so the spike
# stays inside the segment as a margin of 0: (1100 - 100) / 15 = 66.666...
# expectation drops it instead: 1000 / 14 = 71.428571...
SPIKE = [100, 100, 100, 80, 60, 40, 20, 0, 100, 0, 0, 0, 0, 0, 20, 40, 60, 80, 100, 100, 100]
# asymmetric edges: start 5 (90), end 18 (95 before v[19]=100); 14 points,
# margins 10,50,90, 100 x8, 70,30,5 -> 1055 / 14 = 75.357142857...
ASYM = [100, 100, 100, 100, 100, 90, 50, 10, 0, 0, 0, 0, 0, 0, 0, 0, 30, 70, 95, 100, 100]
# plateau on the left only: start 4, no right plateau so end = 20; 17 points,
# margins 40,80, 100 x9, 90,80,70,60,50,40 -> 1410 / 17 = 82.941176...
ONE_SIDE = [100, 100, 100, 100, 60, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 20, 30, 40, 50, 60]
# a dip into the outer plateau: v[1] = 90 after v[0] = 100 gives start = 1, so the 100s at
# 2..4 count as margins of 0. Segment 1..17 (17 points):
# margins 10, 0,0,0, 40,60,80, 100 x7, 80,60,40 -> 1070 / 17 = 62.941176...
# expectation: the 14 points < 100 -> 1070 / 14 = 76.428571...
DIP = [100, 90, 100, 100, 100, 60, 40, 20, 0, 0, 0, 0, 0, 0, 0, 20, 40, 60, 100, 100, 100]
# fmt: on

CASES = [
    # name, curve, reference, expectation
    ("basin", BASIN, 1100 / 15, 1100 / 15),
    ("flat_100", FLAT_100, 0.0, 0.0),
    ("flat_0", FLAT_0, 100.0, 100.0),
    ("spike", SPIKE, 1000 / 15, 1000 / 14),
    ("asym", ASYM, 1055 / 14, 1055 / 14),
    ("one_side", ONE_SIDE, 1410 / 17, 1410 / 17),
    ("dip", DIP, 1070 / 17, 1070 / 14),
    # threshold: 99.995 is plateau (> 99.99), 99.99 is not. N=7, start 1, end 5:
    # margins 0.01,100,100,100,0.01 -> 300.02/5; expectation: all 7 < 100 -> 300.03/7.
    ("threshold", [99.995, 99.99, 0, 0, 0, 99.99, 99.995], 300.02 / 5, 300.03 / 7),
    # N=3: both scans are empty, start 0, end 2: margins 0,100,0 -> 33.33; expectation 100.
    ("n3", [100, 0, 100], 100 / 3, 100.0),
    # N=5: start 1, end 3: margins 50,100,50 -> 66.67; expectation the same 3 points.
    ("n5", [100, 50, 0, 50, 100], 200 / 3, 200 / 3),
    ("n1", [40], 60.0, 60.0),
    # N=2: centre 1, no scan; mean(0, 100) = 50; expectation: the one point < 100 -> 100.
    ("n2", [100, 0], 50.0, 100.0),
]


@pytest.mark.parametrize("name,curve,ref,exp", CASES, ids=[c[0] for c in CASES])
def test_hand_computed(name, curve, ref, exp):
    assert visage_reference(curve) == pytest.approx(ref, abs=TOL)
    assert visage_expectation(curve) == pytest.approx(exp, abs=TOL)


@pytest.mark.parametrize("name,curve,ref,exp", CASES, ids=[c[0] for c in CASES])
def test_reference_equals_authors_loop(name, curve, ref, exp):
    assert visage_reference(curve) == pytest.approx(authors_visage(curve), abs=TOL)


def test_reference_equals_authors_loop_on_random_curves():
    rng = random.Random(123)
    for _ in range(500):
        n = rng.randint(1, 25)
        # Mostly plateau values and a few in-between ones, so both branches of each scan run.
        curve = [rng.choice([100.0, 100.0, 99.995, 99.99, 0.0, rng.uniform(0, 100)])
                 for _ in range(n)]
        assert visage_reference(curve) == pytest.approx(authors_visage(curve), abs=TOL), curve


def test_numpy_input_and_paper_grid_length():
    assert visage_reference(np.array(BASIN, dtype=float)) == pytest.approx(1100 / 15, abs=TOL)
    assert visage_expectation(np.array(BASIN)) == pytest.approx(1100 / 15, abs=TOL)


def test_s_max_scales_the_threshold():
    # On a 0..1 scale the plateau threshold is 0.99: the same basin as n5 scaled by 1/100.
    curve = [1.0, 1.0, 0.5, 0.0, 0.5, 1.0, 1.0]
    # start 2, end 4: margins 0.5, 1, 0.5 -> 2/3
    assert visage_reference(curve, s_max=1.0) == pytest.approx(2 / 3, abs=TOL)
    assert visage_reference(curve, s_max=1.0) == pytest.approx(
        authors_visage([100 * x for x in curve]) / 100, abs=TOL)
    assert visage_expectation(curve, s_max=1.0) == pytest.approx(2 / 3, abs=TOL)


def test_expectation_on_a_2d_grid():
    # Points < 100: 0, 50, 20 -> margins 100, 50, 80 -> 230 / 3.
    grid = [[100, 100, 100], [100, 0, 50], [100, 20, 100]]
    assert visage_expectation(grid) == pytest.approx(230 / 3, abs=TOL)
    assert visage_expectation(np.array(grid, dtype=float)) == pytest.approx(230 / 3, abs=TOL)
    # A 21x21 radial basin: compare with a direct numpy computation of E[100 - S | S < 100].
    a = np.linspace(-0.5, 0.5, 21)
    aa, bb = np.meshgrid(a, a)
    z = np.clip((np.hypot(aa, bb) - 0.2) * 500, 0, 100)
    inside = z[z < 100]
    assert visage_expectation(z) == pytest.approx(float(np.mean(100 - inside)), abs=1e-9)
    assert visage_expectation([[100.0, 100.0], [100.0, 100.0]]) == 0.0


def test_reference_refuses_2d():
    with pytest.raises(ValueError, match=r"1D curve only.*visage_expectation"):
        visage_reference([[0, 100], [100, 0]])
    with pytest.raises(ValueError, match="1D"):
        summarize({"plane": [[0, 1], [1, 0]]}, rule="reference")


@pytest.mark.parametrize("fn", [visage_reference, visage_expectation])
def test_validation(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([])
    with pytest.raises(ValueError, match="index 3 is NaN"):
        fn([0, 0, 0, math.nan, 0])
    with pytest.raises(ValueError, match=r"index 2 is 101.0, outside \[0, 100.0\]"):
        fn([0, 0, 101])
    with pytest.raises(ValueError, match="index 0"):
        fn([-0.5, 0, 0])
    with pytest.raises(ValueError, match="not a number"):
        fn([0, "x"])
    with pytest.raises(ValueError, match="s_max"):
        fn([0, 1], s_max=0)


def test_expectation_grid_validation():
    with pytest.raises(ValueError, match=r"index \(1, 2\) is NaN"):
        visage_expectation([[0, 0, 0], [0, 0, math.nan]])
    with pytest.raises(ValueError, match=r"row 1 .* 2 values, expected 3"):
        visage_expectation([[0, 0, 0], [0, 0]])


def test_summarize_reference():
    s = summarize({"d0": BASIN, "d1": FLAT_0, "d2": FLAT_100})
    assert isinstance(s, VisageSummary)
    assert s.rule == "reference" and s.n == 3
    assert s.per_series == pytest.approx({"d0": 1100 / 15, "d1": 100.0, "d2": 0.0}, abs=TOL)
    mean = (1100 / 15 + 100 + 0) / 3  # 57.777...
    assert s.mean == pytest.approx(mean, abs=TOL)
    pop_var = ((1100 / 15 - mean) ** 2 + (100 - mean) ** 2 + (0 - mean) ** 2) / 3
    assert s.std == pytest.approx(math.sqrt(pop_var), abs=TOL)  # 42.28...


def test_summarize_expectation_and_single_series():
    s = summarize({"d0|default": SPIKE}, rule="expectation")
    assert s.mean == pytest.approx(1000 / 14, abs=TOL) and s.std == 0.0 and s.n == 1
    plane = summarize({"plane|default": [[100, 0], [50, 100]]}, rule="expectation")
    assert plane.mean == pytest.approx(75.0, abs=TOL)  # margins 100, 50


def test_summarize_errors():
    with pytest.raises(ValueError, match="valid rules: reference, expectation"):
        summarize({"d0": BASIN}, rule="paper")
    with pytest.raises(ValueError, match="no curves"):
        summarize({})
    with pytest.raises(ValueError, match="series 'd1': value at index 0 is NaN"):
        summarize({"d0": BASIN, "d1": [math.nan]})
