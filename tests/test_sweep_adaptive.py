"""Adaptive sweeps on a real tiny-random server: what is measured, what is assumed (and never
stored), what every output says, and a later full sweep that reuses every measured point.

The tiny model writes random characters; with the refusal keywords "BBB" and "GG" (frequent near
the origin and along negative a) its 1D landscapes over [-1, 1] have points at 100 % on both
sides of a non-flat middle, so the walk stops early on some sides.
"""

from __future__ import annotations

import json

import pytest
from serving import running_server

from safety_landscape.client.cli import main
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import (
    Grid,
    PromptSource,
    SweepSpec,
    load_sweep,
    run_sweep,
    summarize_sweep,
    validate,
    write_outputs,
)
from safety_landscape.client.sweep.assumption import assumption_bound
from safety_landscape.client.sweep.planner import GridShape

KEYWORDS = ("BBB", "GG")


def spec_1d(**grid) -> SweepSpec:
    return validate(SweepSpec(name="walk", kind="1d-random",
                              grid=Grid(**{"directions": 2, "points": 11, "range": (-1.0, 1.0), **grid}),
                              prompts=PromptSource(set="harmful-mini", limit=6),
                              benign=PromptSource(set="benign-mini", limit=4), keywords=KEYWORDS, max_new_tokens=8))


def evaluated(server) -> float:
    return server.app.metrics.points_evaluated_total._value.get()


@pytest.fixture(scope="module")
def server():
    with running_server() as s:
        yield s


@pytest.fixture(scope="module")
def adaptive_then_full(server, tmp_path_factory):
    """An adaptive sweep, then the same spec on the full grid into the same store."""
    out = tmp_path_factory.mktemp("adaptive")
    with ResultStore(out / "results.sqlite") as store:
        first = run_sweep(spec_1d(adaptive=True, stop_after=2), store, targets=[server.target])
        write_outputs(out, store, "walk")
        after_adaptive = {r.key: r for r in store.records()}
        summary = summarize_sweep(load_sweep(store, "walk"))
        before = evaluated(server)
        second = run_sweep(spec_1d(), store, targets=[server.target])
        full = summarize_sweep(load_sweep(store, "walk"))
        after_full = {r.key: r for r in store.records()}
    return {"out": out, "first": first, "second": second, "adaptive": summary, "full": full,
            "records": after_adaptive, "all": after_full, "server_evaluations": evaluated(server) - before}


def test_the_adaptive_sweep_measures_part_of_the_grid_and_never_stores_an_assumed_point(adaptive_then_full):
    first, summary, records = adaptive_then_full["first"], adaptive_then_full["adaptive"], adaptive_then_full["records"]
    plan_keys = {p.key: p for p in first.plan.points}
    adaptive = summary["adaptive"]
    assert adaptive["grid_points"] == len(plan_keys) == 2 * 11 * 2
    assert adaptive["evaluated"] == sum(1 for k in plan_keys if k in records) == summary["points"]["measured"]
    assert 0 < adaptive["skipped"] == first.skipped == adaptive["grid_points"] - adaptive["evaluated"]
    assert first.rounds >= 3 and adaptive["stop_after"] == 2 and adaptive["unfinished"] == []
    assumed = {(label, tuple(c)) for label, coords in adaptive["assumed"].items() for c in coords}
    assert assumed and "NOT measured" in adaptive["assumption"] and "100 %" in adaptive["assumption"]
    by_place = {(p.series, p.coords): k for k, p in plan_keys.items() if p.metric == "asr"}
    assert all(by_place[place] not in records for place in assumed)  # assumed points are never written
    assert set(summary["visage"]["series"]) == {"d0|default", "d1|default"} and summary["visage"]["incomplete"] == []
    # Benign points are measured exactly at the sites where ASR points were.
    asr_sites = {p.site for k, p in plan_keys.items() if p.metric == "asr" and k in records}
    benign_sites = {p.site for k, p in plan_keys.items() if p.metric == "refusal" and k in records}
    assert benign_sites == asr_sites


def test_every_output_of_an_adaptive_sweep_says_which_points_were_assumed(adaptive_then_full):
    out = adaptive_then_full["out"]
    written = json.loads((out / "summary.json").read_text())
    assert set(written["adaptive"]) >= {"evaluated", "grid_points", "skipped", "assumption", "assumed"}
    curves = written["curves"]["asr"]
    for label, coords in written["adaptive"]["assumed"].items():  # curves hold the measured points only
        assert not {tuple(c) for c in coords} & {tuple(p[:-1]) for p in curves[label]}
    html = (out / "report.html").read_text()
    assert "ADAPTIVE sweep" in html and "NOT measured" in html
    assert "Worst case of the assumption" in html and "d0|default: reference +-" in html
    assert (out / "plots" / "asr_1d.png").stat().st_size > 1000
    assert "assumed 100 (not measured)" in (out / "plots" / "asr_1d.svg").read_text()


def test_a_full_sweep_after_it_reuses_every_measured_point_and_fills_in_the_rest(adaptive_then_full):
    first, second = adaptive_then_full["first"], adaptive_then_full["second"]
    records, after = adaptive_then_full["records"], adaptive_then_full["all"]
    measured = [p for p in first.plan.points if p.key in records]
    assert [p.key for p in second.plan.points] == [p.key for p in first.plan.points]  # the same content keys
    assert second.reused == len(measured)
    assert second.written == len(second.plan.points) - len(measured) == first.skipped
    missing_tasks = {t for t, pts in second.plan.tasks.items() if any(p.key not in records for p in pts)}
    assert second.evaluated == len(missing_tasks) == adaptive_then_full["server_evaluations"]
    assert all(after[k] == r for k, r in records.items())  # the adaptive run's records, untouched
    full = adaptive_then_full["full"]
    assert "adaptive" not in full and full["points"]["measured"] == full["points"]["planned"]
    # Where the skipped points really are at 100 %, the adaptive VISAGE is the full grid's.
    keys = {(p.series, p.coords): p.key for p in second.plan.points if p.metric == "asr"}
    held = [label for label, coords in adaptive_then_full["adaptive"]["adaptive"]["assumed"].items()
            if all(after[keys[(label, tuple(c))]].value == 100.0 for c in coords)]
    assert held
    for label in held:
        assert adaptive_then_full["adaptive"]["visage"]["series"][label] == full["visage"]["series"][label]


def test_the_stated_worst_case_is_the_assumption_bound_and_covers_a_single_failed_assumption(adaptive_then_full):
    """summary.json's worst case per series is the bound of its measured and assumed points; after
    the full grid, a series with at most one assumed point below 100 % is off by no more than it."""
    adaptive, full = adaptive_then_full["adaptive"], adaptive_then_full["full"]
    records, after = adaptive_then_full["records"], adaptive_then_full["all"]
    plan = adaptive_then_full["first"].plan
    asr = [p for p in plan.points if p.metric == "asr"]
    worst = adaptive["adaptive"]["worst_case"]
    assert set(worst) == set(adaptive["visage"]["series"])  # every finished series states one
    checked = 0
    for label, case in worst.items():
        points = [p for p in asr if p.series == label]
        measured = {p.coords: records[p.key].value for p in points if p.key in records}
        skipped = [tuple(c) for c in adaptive["adaptive"]["assumed"].get(label, [])]
        bound = assumption_bound(GridShape.of([p.coords for p in points]), measured, skipped)
        assert case == bound.to_dict()["bound"]
        failed = [p for p in points if p.coords in skipped and after[p.key].value < 100.0 - 0.01]
        if len(failed) <= 1:
            checked += 1
            for rule in ("reference", "expectation"):
                error = abs(adaptive["visage"]["series"][label][rule] - full["visage"]["series"][label][rule])
                assert error <= case[rule]["largest_change"] + 1e-9, (label, rule)
    assert checked


def test_an_adaptive_sweep_after_a_full_one_evaluates_nothing(server, adaptive_then_full, tmp_path):
    with ResultStore(adaptive_then_full["out"] / "results.sqlite") as store:
        again = run_sweep(spec_1d(adaptive=True, stop_after=2), store, targets=[server.target])
        summary = summarize_sweep(load_sweep(store, "walk"))
    assert again.evaluated == 0 and again.skipped == 0 and again.reused == len(again.plan.points)
    assert summary["adaptive"]["skipped"] == 0 and summary["adaptive"]["assumed"] == {}


def test_the_cli_flags_make_an_adaptive_sweep(server, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["sweep", "--preset", "quick", "--server", server.target, "--out", str(out), "--no-benign",
                 "--points", "11", "--range", "-1", "1", "--keyword", "BBB", "--keyword", "GG", "--limit", "6",
                 "--max-new-tokens", "8", "--adaptive", "--stop-after", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adaptive"]["stop_after"] == 1 and summary["adaptive"]["skipped"] > 0
    assert f"adaptive: {summary['adaptive']['evaluated']} of 11 grid points measured" in printed
    worst = summary["adaptive"]["worst_case"]["d0|default"]
    assert "worst case of the assumption, the largest change of VISAGE" in printed
    assert f"  d0|default: reference +-{worst['reference']['largest_change']:.2f}" in printed
    assert main(["sweep", "--preset", "quick", "--server", server.target, "--out", str(tmp_path / "bad"),
                 "--stop-after", "0", "--adaptive"]) == 2
    assert "grid.stop_after" in capsys.readouterr().err


def test_a_2d_adaptive_sweep_is_scored_and_plotted_with_its_assumed_cells(server, tmp_path):
    spec = validate(SweepSpec(name="plane", kind="2d-random", grid=Grid(points=7, range=(-1.5, 1.5), adaptive=True),
                              prompts=PromptSource(set="harmful-mini", limit=6), keywords=KEYWORDS, max_new_tokens=8))
    with ResultStore(tmp_path / "results.sqlite") as store:
        result = run_sweep(spec, store, targets=[server.target])
        paths = write_outputs(tmp_path, store, "plane")
        summary = summarize_sweep(load_sweep(store, "plane"))
    adaptive = summary["adaptive"]
    assert adaptive["grid_points"] == 49 and adaptive["evaluated"] == result.evaluated < 49
    assert adaptive["skipped"] == result.skipped == len(adaptive["assumed"].get("plane|default", []))
    assert summary["visage"]["series"]["plane|default"]["expectation"] is not None
    assert any(p.name == "asr_2d_plane_default.png" for p in paths["plots"])
