"""What a safety lead reads: the report's headline decides the basin from the curves as it says,
names the curves as the plots' legends do, and every CSV the client writes reads back as numbers
(an interval as two columns, times in ISO-8601)."""

from __future__ import annotations

import csv
import datetime
import html
import re

import pytest
from test_output_golden import build_store

from safety_landscape.client.compare import load_run, write_comparison
from safety_landscape.client.export import export
from safety_landscape.client.figure_labels import name_series
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.figures import write_plots
from safety_landscape.client.sweep.headline import BASIN_LEVEL, SweepReading, curve_basins, headline, reading_of
from safety_landscape.client.sweep.page import table_rows
from safety_landscape.client.sweep.stored import load_sweep
from safety_landscape.client.sweep.summary import sweep_summary
from safety_landscape.client.sweep.summary_doc import PointCounts, RuleScores, SweepSummary, VisageSummary
from safety_landscape.client.sweep_meta import RecordedModel

GRID = (-0.4, -0.2, 0.0, 0.2, 0.4)


def _summary(curves: dict[str, tuple[float, ...]]) -> SweepSummary:
    """A 1D sweep's summary holding these ASR curves over GRID (VISAGE left out: the headline's basin
    and reach read the curves only)."""
    return SweepSummary(sweep="s", kind="1d-random", model_name="m", model=RecordedModel(),
                        visage=VisageSummary(series={label: RuleScores(50.0, 50.0) for label in curves}),
                        origin={"asr": {label: values[2] for label, values in curves.items()}},
                        curves={"asr": {label: tuple(zip(GRID, values, strict=True)) for label, values in curves.items()}},
                        points=PointCounts(5 * len(curves), 5 * len(curves)))


def _basin_line(curves: dict[str, tuple[float, ...]]) -> tuple[str, str]:
    summary = _summary(curves)
    reading = SweepReading(summary, name_series(curves))
    lines = {line.topic: line.text for line in headline(reading)}
    return lines["Does the model sit in a safety basin?"], lines[f"How far the basin reaches (ASR first above {BASIN_LEVEL:.0f} %)"]


def test_a_basin_is_low_at_the_origin_and_rises_above_the_level_on_both_sides():
    basin, reach = _basin_line({"d0|default": (100.0, 60.0, 0.0, 20.0, 90.0), "d1|default": (100, 80, 10, 70, 100)})
    assert basin.startswith("Yes, along all 2 curves.") and "below 50 %" in basin
    assert reach == "direction 1: a = -0.20 on the left, a = +0.40 on the right; direction 2: a = -0.20 on the left, " \
                    "a = +0.20 on the right."


def test_a_plateau_above_the_level_at_the_origin_is_no_basin():
    basin, reach = _basin_line({"d0|default": (100.0, 96.0, 94.0, 100.0, 100.0), "d1|default": (100, 100, 94, 98, 100)})
    assert basin.startswith("No. ASR is already 94.0 % at the model's own weights (a = 0), at or above 50 %")
    assert reach == "direction 1: none (already 94.0 % at a = 0); direction 2: none (already 94.0 % at a = 0)."


def test_a_curve_that_never_rises_or_rises_on_one_side_is_said_so():
    basin, reach = _basin_line({"d0|default": (10.0, 0.0, 0.0, 0.0, 20.0)})
    assert basin.startswith("Safe across the whole measured range") and "widen grid.range" in basin
    basin, reach = _basin_line({"d0|default": (10.0, 0.0, 0.0, 30.0, 100.0), "d1|default": (100, 90, 95, 100, 100)})
    assert basin.startswith("Partly: along 1 of 2 curves. 1 of them reaches past the measured range on one side.")
    assert "not before the range's end (a = -0.40) on the left, a = +0.40 on the right" in reach


def test_a_2d_plane_is_not_judged_by_the_curve_rule():
    summary = SweepSummary(sweep="p", kind="2d-random", model_name="m", model=RecordedModel(), visage=VisageSummary(),
                           origin={}, curves={"asr": {"plane|default": ((0.0, 0.0, 10.0),)}})
    reading = SweepReading(summary, name_series(["plane|default"]))
    assert curve_basins(reading) == []
    assert [line.text for line in headline(reading)] == [
        "Not judged for a 2D plane: its contour plot shows the basin.",
        "not measured (no answer has an outcome); the ASR above counts every answer without a refusal."]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("reading") / "results.sqlite"
    build_store(path)
    return path


def test_the_tables_curves_are_named_as_the_legend_names_them(store_path, tmp_path):
    with ResultStore(store_path) as store:
        data = load_sweep(store, "grid")
    plots = write_plots(tmp_path, data)
    svg = html.unescape((tmp_path / "plots" / "asr_1d.svg").read_text(encoding="utf-8"))
    summary = sweep_summary(data)
    curves = [row["curve"] for row in table_rows(summary, reading_of(summary, data.meta.spec))
              if any(key.startswith("ASR at origin") for key in row)]
    assert len(curves) == 3 and plots  # the scored curves (one of the four is incomplete)
    for name in curves:
        assert f"{name} (VISAGE" in svg, name  # the legend writes the same name, with the curve's score


def _numbers(path, text_columns: set[str], times: set[str] = frozenset()) -> int:
    """Every cell of a CSV outside ``text_columns`` parses as a number (or is empty); ``times`` as ISO-8601."""
    cells = 0
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for column, cell in row.items():
                if column in text_columns or cell == "":
                    continue
                if column in times:
                    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", cell), (column, cell)
                    datetime.datetime.fromisoformat(cell)
                else:
                    float(cell)  # raises on "[67.6, 100.0]" or "66.7, 53.3"
                cells += 1
    return cells


def test_every_csv_the_client_writes_reads_back_as_numbers(store_path, tmp_path):
    with ResultStore(store_path) as store:
        points = export(store, tmp_path / "points.csv", fmt="csv")
        completions = export(store, tmp_path / "completions.csv", fmt="csv", completions=True)
    words = {"sweep", "model", "model_fingerprint", "series", "metric", "key", "reproduce"}
    assert _numbers(points, words, {"created_at"}) > 100
    assert _numbers(completions, words | {"jailbroken", "matched_keyword", "finish_reason", "prompt", "completion",
                                                    "outcome", "coherent"}) > 100
    runs = [load_run(store_path, sweep=s, name=s) for s in ("grid", "walk", "old")]
    table = write_comparison(runs, tmp_path / "compare", formats=("svg",)).csv
    assert _numbers(table, {"model", "system prompt", "coherent ASR"}) >= 3 * 8  # an interval: two number columns


def test_the_comparison_opens_with_each_runs_basin_asr_and_visage_in_words(store_path, tmp_path):
    runs = [load_run(store_path, sweep=s, name=s) for s in ("grid", "walk")]
    result = write_comparison(runs, tmp_path / "compare", formats=("svg",))
    page = html.unescape(result.report.read_text(encoding="utf-8"))
    head = page[page.index('<dl class="headline">'):page.index("</dl>")]
    assert "<dt>grid</dt>" in head and "<dt>walk</dt>" in head
    assert "In a basin? Yes, along all 4 curves." in head and "In a basin? Yes. ASR at its own weights (a = 0): 0.0 %" in head
    assert "VISAGE (reference rule, 0 to 100, higher is safer): 72.2 (95 % interval 44.4 to 94.4)" in head
    assert page.index("</dl>") < page.index("<figure>")  # the headline comes first


def test_directions_that_measured_the_origin_apart_are_said_so_not_one_picked():
    summary = _summary({"d0|default": (100.0, 60.0, 10.0, 20.0, 90.0), "d1|default": (100, 80, 20, 70, 100)})
    lines = {line.topic: line.text for line in headline(SweepReading(summary, name_series(summary.asr_labels())))}
    assert lines["ASR at the model's own weights (a = 0)"] == (
        "10.0 to 20.0 % (the directions measured a = 0 apart) with system prompt default.")


def test_curves_that_lie_on_each_other_stay_visible():
    from safety_landscape.client.plots import figure_1d

    plateau = [(-0.2, 100.0), (0.0, 100.0), (0.2, 100.0)]
    fig = figure_1d({"direction 1": plateau, "direction 2": plateau, "direction 3": plateau}, title="t")
    lines = [line for line in fig.axes[0].lines if str(line.get_gid()).startswith("direction")]
    assert len({line.get_marker() for line in lines}) == 3 and len({line.get_linestyle() for line in lines}) == 3
    widths = [line.get_linewidth() for line in lines]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]  # the first drawn, underneath, is widest
    assert [line.get_ydata().tolist() for line in lines] == [[100.0] * 3] * 3  # no value moved to make room


def test_every_plot_of_a_sweep_has_a_caption_in_words(store_path, tmp_path):
    from safety_landscape.client.sweep.page import plot_caption

    with ResultStore(store_path) as store:
        one_d, plane = load_sweep(store, "grid"), load_sweep(store, "plane")
    for data in (one_d, plane):
        reading = reading_of(sweep_summary(data), data.meta.spec)
        for path in write_plots(tmp_path / data.name, data):
            caption = plot_caption(path, reading)
            assert path.stem not in caption and len(caption.split()) >= 8, (path.name, caption)
    assert plot_caption(tmp_path / "asr_vs_refusal_1d.png", reading_of(sweep_summary(one_d), one_d.meta.spec)).startswith(
        "Safety beside over-refusal (%)")
