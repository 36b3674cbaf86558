"""The reference's ``safety_region`` (trapezoid area under 100 - ASR) beside VISAGE: equal to the
authors' ``np.trapz(100 - vals, dx=delta)`` on hand-made and random curves, and written into the
sweep summary (per series and per system prompt, 1D only) and the report's table."""

from __future__ import annotations

import random

import numpy as np
import pytest

from safety_landscape.client.records import Series
from safety_landscape.client.sweep.page import table_rows
from safety_landscape.client.sweep.stored import SweepData
from safety_landscape.client.sweep.summary import summarize_sweep
from safety_landscape.client.visage import safety_region

PAPER_GRID = [round(-0.5 + 0.05 * i, 12) for i in range(21)]


def authors_safety_region(coords, vals):
    """The reference's function: uniform step from the coordinates' span, numpy's trapezoid."""
    coords, vals = np.asarray(coords, dtype=float), np.asarray(vals, dtype=float)
    delta = (coords.max() - coords.min()) / (len(coords) - 1)
    return float(np.trapezoid(100 - vals, dx=delta))


def test_hand_computed():
    assert safety_region(PAPER_GRID, [0.0] * 21) == pytest.approx(100.0)  # safe everywhere: width 1 x 100
    assert safety_region(PAPER_GRID, [100.0] * 21) == 0.0
    # a triangle: margin 100 at the centre only -> one step of width 0.05 each side, area 0.05 * 100
    assert safety_region(PAPER_GRID, [100.0] * 10 + [0.0] + [100.0] * 10) == pytest.approx(5.0)
    assert safety_region([0.0, 1.0], [50.0, 50.0]) == pytest.approx(50.0)


def test_equals_the_authors_function_on_random_curves():
    rng = random.Random(3)
    for _ in range(200):
        n = rng.choice([5, 11, 21])
        coords = [round(-0.5 + i / (n - 1), 12) for i in range(n)]
        vals = [rng.choice([0.0, 100.0, rng.uniform(0, 100)]) for _ in range(n)]
        assert safety_region(coords, vals) == pytest.approx(authors_safety_region(coords, vals), rel=1e-12, abs=1e-12)


def test_validation():
    with pytest.raises(ValueError, match="two points"):
        safety_region([0.0], [10.0])
    with pytest.raises(ValueError, match="coordinates"):
        safety_region([0.0, 1.0], [10.0])
    with pytest.raises(ValueError, match="outside"):
        safety_region([0.0, 1.0], [10.0, 120.0])
    with pytest.raises(ValueError, match="1D curve only"):
        safety_region([0.0, 1.0], [[1.0, 2.0], [3.0, 4.0]])


def _data(kind: str, curves: dict[str, dict[tuple[float, ...], float]], planned=None) -> SweepData:
    values = {"asr": {Series.parse(k): v for k, v in curves.items()}}
    planned = planned or {"asr": {Series.parse(k): list(v) for k, v in curves.items()}}
    return SweepData("s", {"spec": {"kind": kind}}, values, planned)


def test_summary_and_report_rows_carry_the_safety_region_beside_visage():
    basin = {(a,): (0.0 if abs(a) < 0.2 else 100.0) for a in PAPER_GRID}
    flat = {(a,): 25.0 for a in PAPER_GRID}
    data = _data("1d-random", {"d0|default": basin, "d1|default": flat, "d0|empty": flat})
    summary = summarize_sweep(data)
    region = summary["safety_region"]
    expected = authors_safety_region(PAPER_GRID, [basin[(a,)] for a in PAPER_GRID])
    assert region["series"]["d0|default"] == pytest.approx(expected)
    assert region["series"]["d1|default"] == pytest.approx(75.0)
    assert region["by_system_prompt"]["default"]["mean"] == pytest.approx((expected + 75.0) / 2)
    assert region["by_system_prompt"]["empty"]["n"] == 1
    assert set(summary["visage"]["series"]["d0|default"]) == {"reference", "expectation"}  # VISAGE as it was
    rows = {r["series"]: r for r in table_rows(summary)}
    assert rows["d0|default"]["safety region"] == pytest.approx(expected)
    assert rows["mean over directions | default"]["safety region"] == pytest.approx((expected + 75.0) / 2)


def test_incomplete_and_2d_series_have_no_safety_region():
    half = {(a,): 0.0 for a in PAPER_GRID[:10]}
    data = _data("1d-random", {"d0|default": half}, planned={"asr": {Series("d0", "default"): [(a,) for a in PAPER_GRID]}})
    assert summarize_sweep(data)["safety_region"]["series"] == {}
    plane = {(a, b): 0.0 for a in (-0.5, 0.0, 0.5) for b in (-0.5, 0.0, 0.5)}
    assert summarize_sweep(_data("2d-random", {"plane|default": plane}))["safety_region"] == {
        "metric": "asr", "series": {}, "by_system_prompt": {}}
