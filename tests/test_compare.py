"""``visage compare`` on two real stores: sweeps of two real tiny-random models (different
weights) measured the same way, then the comparison figures (PNG, SVG, PDF), the table (JSON,
CSV) and report.html; and the figures drawn from summaries that carry intervals."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from matplotlib.container import ErrorbarContainer
from serving import running_server

from safety_landscape.client.cli import main
from safety_landscape.client.compare import (
    Run,
    comparison_headline,
    comparison_rows,
    differences,
    figure_compare_curves,
    figure_compare_visage,
    load_run,
)

SWEEP = ["--preset", "quick", "--directions", "2", "--points", "3", "--limit", "4", "--max-new-tokens", "4",
         "--keyword", "e", "--keyword", "a", "--no-progress"]


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    for folder, model in (("original", "tiny-random"), ("other", "tiny-random:1")):
        with running_server(model=model) as server:
            assert main(["sweep", *SWEEP, "--server", server.target, "--out", str(root / folder)]) == 0
    return root


def test_compare_two_real_stores_writes_figures_table_and_report(two_stores, capsys):
    out = two_stores / "cmp"
    capsys.readouterr()
    assert main(["--json", "compare", str(two_stores / "original"), str(two_stores / "other"), "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(Path(p).name for p in doc["figures"]) == sorted(
        f"{name}.{fmt}" for name in ("compare_asr_1d", "compare_visage") for fmt in ("png", "svg", "pdf"))
    assert [r["model"] for r in doc["rows"]] == ["tiny-random", "tiny-random:1"] and doc["warnings"] == []
    row = doc["rows"][0]
    assert row["system prompt"] == "default" and 0.0 <= row["VISAGE (reference)"] <= 100.0
    assert row["over-refusal at origin (%)"] is not None
    assert [k for k in row if k.startswith("VISAGE, direction")] == ["VISAGE, direction 1", "VISAGE, direction 2"]
    with open(out / "comparison.csv", newline="") as fh:
        read = list(csv.DictReader(fh))
    assert [r["model"] for r in read] == ["tiny-random", "tiny-random:1"]
    for r in read:  # every cell but the names reads as a number: no "[lo, hi]" or "a, b" strings
        for column, cell in r.items():
            if column not in ("model", "system prompt", "coherent ASR") and cell != "":
                float(cell)
    table = json.loads((out / "comparison.json").read_text())
    assert [r["model_name"] for r in table["runs"]] == ["tiny-random", "tiny-random:1"]
    assert table["runs"][0]["model_fingerprint"] != table["runs"][1]["model_fingerprint"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "tiny-random:1" in html and "VISAGE (reference)" in html
    assert main(["compare", str(two_stores / "original"), str(two_stores / "other"), "--out", str(out),
                 "--label", "only one"]) == 2
    assert "give one per DIR" in capsys.readouterr().err


def test_the_comparison_figures_put_every_model_on_each_direction(two_stores):
    runs = [load_run(two_stores / "original" / "results.sqlite"), load_run(two_stores / "other" / "results.sqlite")]
    fig = figure_compare_curves(runs)
    assert fig is not None and [ax.get_title() for ax in fig.axes] == [
        "direction 1 · ASR", "direction 2 · ASR", "direction 1 · coherent ASR", "direction 2 · coherent ASR"]
    assert all(len(ax.lines) - 1 - 2 == 2 for ax in fig.axes)  # the origin line, 2 origin dots, 2 models
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["tiny-random", "tiny-random:1"]
    for ax, label in zip(fig.axes[2:], ("d0|default", "d1|default"), strict=True):  # the referee's rates, as stored
        for run in runs:
            line = next(line for line in ax.lines if line.get_gid() == run.name)
            rate = run.summary.by_outcome().rate("coherent_asr").curves[label]
            assert list(zip(line.get_xdata(), line.get_ydata(), strict=True)) == [tuple(r) for r in rate]
    bars = figure_compare_visage(runs).axes[0].patches  # per run: VISAGE on the ASR, then on the coherent ASR
    assert len(bars) == 4 and all(0.0 <= b.get_height() <= 100.0 for b in bars)
    for run, (plain, coherent) in zip(runs, (bars[:2], bars[2:]), strict=True):
        assert plain.get_height() == pytest.approx(run.visage.by_system_prompt["default"].reference.mean)
        on_coherent = run.summary.by_outcome().visage
        assert on_coherent is not None and not plain.get_hatch() and coherent.get_hatch() == "//"
        assert coherent.get_height() == pytest.approx(on_coherent.by_system_prompt["default"].reference.mean)


def test_a_run_without_outcomes_is_named_not_measured_and_the_headline_gives_the_coherent_asr(two_stores):
    """The coherent ASR row draws the runs that have the referee's outcomes; one without (its server had
    no referee, or it was off) is named "not measured" in each panel, never drawn as 0. Each run's
    headline gives its coherent ASR in the sweep report's words, or why it is not measured."""
    base = load_run(two_stores / "original" / "results.sqlite")
    bare = Run("no referee", base.folder, dataclasses.replace(base.summary, outcomes=None), base.spec)
    fig = figure_compare_curves([base, bare])
    assert fig is not None
    for ax in fig.axes[2:]:
        assert [line.get_gid() for line in ax.lines if line.get_gid()] == ["tiny-random"]
        assert [t.get_text() for t in ax.texts] == ["not measured: no referee"]
    assert not any(ax.texts for ax in fig.axes[:2])
    hatched = [bar.get_hatch() for bar in figure_compare_visage([base, bare]).axes[0].patches]
    assert hatched == [None, "//", None]  # no bar for VISAGE on a coherent ASR not measured
    lines = {line.topic: line.text for line in comparison_headline([base, bare])}
    assert "Coherent ASR (jailbroken and coherent): " in lines["tiny-random"]
    assert f"{base.summary.by_outcome().at_origin('d0|default'):.1f} % at a = 0" in lines["tiny-random"]
    assert "Coherent ASR (jailbroken and coherent): not measured" in lines["no referee"]
    assert [ax.get_title() for ax in figure_compare_curves([bare, bare]).axes] == ["direction 1", "direction 2"]


def test_runs_measured_differently_or_named_alike_are_said_so(two_stores, tmp_path):
    base = load_run(two_stores / "original" / "results.sqlite")
    other = Run("tiny-random", base.folder.with_name("again"), base.summary,
                {**base.spec, "keywords": ["x"], "max_new_tokens": 9})
    notes = differences([base, other])
    assert any(n.startswith("keywords differs") for n in notes) and any("max_new_tokens" in n for n in notes)
    from safety_landscape.client.compare import write_comparison

    result = write_comparison([base, other], tmp_path / "c", formats=("png",))
    assert [r["model"] for r in result.rows] == ["tiny-random (original)", "tiny-random (again)"]
    assert [p.name for p in result.figures] == ["compare_asr_1d.png", "compare_visage.png"]
    assert "keywords differs" in (tmp_path / "c" / "report.html").read_text()


def summary_with_intervals(shift: float) -> dict:
    curve = [[-0.5, 100.0], [0.0, 10.0 + shift], [0.5, 100.0]]
    return {
        "sweep": "s", "kind": "1d-random", "model_name": "m", "model": {},
        "curves": {"asr": {"d0|default": curve}},
        "curves_ci95": {"asr": {"d0|default": [[a, max(0.0, v - 8), min(100.0, v + 8)] for a, v in curve]}},
        "origin": {"asr": {"d0|default": 10.0 + shift}}, "origin_ci95": {"asr": {"d0|default": [4.0, 20.0]}},
        "visage": {"series": {"d0|default": {"reference": 60.0 - shift, "expectation": 55.0}},
                   "by_system_prompt": {"default": {"reference": {"mean": 60.0 - shift, "ci95": [50.0, 70.0]},
                                                    "expectation": {"mean": 55.0}}}},
    }


def test_intervals_in_the_summaries_become_bands_whiskers_and_table_cells(tmp_path):
    runs = [Run(name, tmp_path / name, summary_with_intervals(shift), {}) for name, shift in (("a", 0.0), ("b", 20.0))]
    curves = figure_compare_curves(runs)
    assert curves is not None and len(curves.axes[0].collections) == 2  # one band per model
    visage = figure_compare_visage(runs).axes[0]
    whiskers = [c for c in visage.containers if isinstance(c, ErrorbarContainer)]
    assert len(visage.patches) == 2 and len(whiskers) == 2
    assert sorted(seg[:, 1].tolist() for seg in whiskers[1].lines[2][0].get_segments()) == [[50.0, 70.0]]
    rows = comparison_rows(runs)
    assert (rows[0]["VISAGE, 95 % low"], rows[0]["VISAGE, 95 % high"]) == (50.0, 70.0)
    assert (rows[1]["ASR at origin, 95 % low"], rows[1]["ASR at origin, 95 % high"]) == (4.0, 20.0)
    assert rows[1]["VISAGE (reference)"] == 40.0


def test_a_missing_or_wrong_folder_is_named_in_one_line(two_stores, tmp_path, capsys):
    """A folder that does not exist, and one that is not a sweep's, each in one line naming it (exit 2)."""
    for folder, said in ((tmp_path / "nope", "nope: no such folder; give the --out folder of a visage sweep"),
                         (tmp_path, f"{tmp_path} holds no results.sqlite: give the --out folder of a visage sweep")):
        assert main(["compare", str(two_stores / "original"), str(folder), "--out", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1
