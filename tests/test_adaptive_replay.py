"""bench/adaptive_replay.py on a real results store holding a hand-made full grid: the planner's
walk on stored values, evaluations counted as the sweep counts them (the origin shared by the
directions), VISAGE errors by both rules against the full grid, a series still being written left
out, and the JSON it writes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from safety_landscape.client.records import PointRecord
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.points import axis_values

XS = axis_values(-0.5, 0.5, 21)
BASIN = [100] * 7 + [97.5, 40, 5, 18.75, 40, 78.75] + [100] * 8
STRAY = [*BASIN[:15], 95, *BASIN[16:]]  # 100 at indices 13, 14, then 95 at 15


def load_script():
    path = Path(__file__).resolve().parents[1] / "bench" / "adaptive_replay.py"
    spec = importlib.util.spec_from_file_location("adaptive_replay", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def full_grid_store(path: Path, curves: dict[str, list[float]], missing: int = 0) -> None:
    """A 1D sweep's store as `visage sweep --no-adaptive` leaves it; ``missing`` points of the last
    series not written yet. The origin (a = 0) has one key for every direction, as a sweep keys it."""
    points, records = [], []
    for d, values in curves.items():
        for i, (a, v) in enumerate(zip(XS, values, strict=True)):
            key = "origin" if a == 0 else f"{d}@{i}"
            points.append([key, f"{d}|default", "asr", [a]])
            records.append(PointRecord(key=key, sweep="full", series=f"{d}|default", coords=(a,), metric="asr",
                                       value=v, total=80, detail={"generated_tokens": 10 if v < 100 else 48}))
    with ResultStore(path) as store:
        store.put_meta("full", {"spec": {"kind": "1d-random", "grid": {"points": 21}}, "points": points})
        for r in records[:len(records) - missing]:
            store.put(r)


def test_replay_counts_evaluations_and_visage_errors_against_the_full_grid(tmp_path, capsys):
    replay = load_script()
    full_grid_store(tmp_path / "land" / "results.sqlite", {"d0": BASIN, "d1": STRAY})
    out = tmp_path / "replay.json"
    assert replay.main([str(tmp_path / "land"), "--rules", "k=2,k=3", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    land = doc["landscapes"]["land (full)"]
    k2, k3 = land["replays"]["k=2"], land["replays"]["k=3"]
    assert k2["full_evaluations"] == 41  # 2 x 21 points, the origin once
    # k = 2: both walks measure indices 5-14 (10 points each), the origin shared
    assert k2["evaluations"] == 19
    assert k3["evaluations"] == 12 + 15 - 1  # k = 3: d0 4-15; d1 4-18 (the stray at 15 reopens the walk)
    assert k2["series"]["d0|default"]["error"] == {"reference": 0.0, "expectation": 0.0}
    stray = k2["series"]["d1|default"]
    assert stray["assumed_below_100"] == [[0.25]]
    assert stray["error"]["reference"] > 10 and stray["error"]["expectation"] > 1
    assert k2["series_exact"] == 1 and k2["within_bound"] == 2
    assert k3["series_exact"] == 2 and k3["max_error"] == {"reference": 0.0, "expectation": 0.0}
    assert k2["tokens"] < k2["full_tokens"]
    printed = capsys.readouterr().out
    assert "| land (full) | k=2 | 19 of 41 | 54% | 67% | 6 |" in printed
    assert doc["default"] == "k=3" and "| land (full) | k=3 (default) |" in printed  # the code's default is marked
    assert doc["exact_everywhere"] == ["k=3"]
    assert "every series replayed, fewest evaluations first: k=3 (default)" in printed


def test_a_series_still_being_written_is_left_out_and_named(tmp_path, capsys):
    replay = load_script()
    full_grid_store(tmp_path / "partial.sqlite", {"d0": BASIN, "d1": STRAY}, missing=3)
    assert replay.main([str(tmp_path / "partial.sqlite"), "--rules", "k=2"]) == 0
    printed = capsys.readouterr().out
    assert "1 incomplete series left out: d1|default" in printed
    assert "| 10 of 21 |" in printed  # d0 alone


def test_unknown_rules_and_missing_stores_are_refused(tmp_path):
    replay = load_script()
    full_grid_store(tmp_path / "s.sqlite", {"d0": BASIN})
    assert replay.main([str(tmp_path / "s.sqlite"), "--rules", "k=9"]) == 2
    with pytest.raises(SystemExit, match="no results store"):
        replay.main([str(tmp_path / "nowhere")])
    assert not (tmp_path / "nowhere").exists()  # never created by reading


def test_the_run_each_series_needs_is_one_more_than_its_longest_run_of_100_before_a_drop(tmp_path):
    replay = load_script()
    far = [*BASIN[:17], 90, *BASIN[18:]]  # 100 at 13-16, then 90 at 17: a run of 4
    full_grid_store(tmp_path / "s.sqlite", {"d0": BASIN, "d1": STRAY, "d2": far})
    land = replay.read_landscape(tmp_path / "s.sqlite")
    assert [replay.stop_after_needed(s) for s in land.series] == [1, 3, 5]


def test_a_store_with_no_sweep_yet_replays_nothing(tmp_path, capsys):
    replay = load_script()
    ResultStore(tmp_path / "new.sqlite").close()
    assert replay.main([str(tmp_path / "new.sqlite"), "--rules", "k=2"]) == 0
    printed = capsys.readouterr().out
    assert "(no sweep yet): no complete series yet" in printed and "none: the full grid" in printed


def test_a_sweep_is_picked_per_store_and_a_landscape_reused_by_another_sweep_is_replayed_once(tmp_path, capsys):
    replay = load_script()
    full_grid_store(tmp_path / "a.sqlite", {"d0": BASIN, "d1": STRAY})
    with ResultStore(tmp_path / "a.sqlite") as store:  # a second sweep that reused d0's points, plus its own d2
        points = [[r.key, r.series, "asr", list(r.coords)] for r in store.records() if r.series == "d0|default"]
        for i, (a, v) in enumerate(zip(XS, STRAY, strict=True)):
            key = "origin" if a == 0 else f"d2@{i}"
            points.append([key, "d2|default", "asr", [a]])
            store.put(PointRecord(key=key, sweep="again", series="d2|default", coords=(a,), metric="asr", value=v,
                                  total=80, detail={"generated_tokens": 10}))
        store.put_meta("again", {"spec": {"kind": "1d-random", "grid": {"points": 21}}, "points": points})
    out = tmp_path / "r.json"
    assert replay.main([f"{tmp_path / 'a.sqlite'}@full", f"{tmp_path / 'a.sqlite'}@again", "--rules", "k=3",
                        "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    again = doc["landscapes"]["tmp_path (again)".replace("tmp_path", tmp_path.name)]
    assert again["series"] == ["d2|default"] and again["duplicates"] == [f"d0|default (the points of {tmp_path.name} (full) d0|default)"]
    assert doc["total"]["k=3"]["series_count"] == 3
    assert "1 series already replayed left out" in capsys.readouterr().out
