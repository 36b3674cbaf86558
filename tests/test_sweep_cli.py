"""``visage sweep`` end to end on a real tiny-random server, then rescore/replot/report/export
from the output folder with no server at all."""

from __future__ import annotations

import csv
import json

import pytest
from serving import running_server

from safety_landscape.client.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    with running_server() as server:
        code = main(["sweep", "--preset", "quick", "--server", server.target, "--out", str(out)])
        evaluations = server.app.metrics.points_evaluated_total._value.get()
    assert code == 0
    return out, evaluations


def test_sweep_quick_writes_store_summary_plots_and_report(quick_run, capsys):
    out, evaluations = quick_run
    assert evaluations == 7 * 2  # 7 weight states x (harmful, benign)
    summary = json.loads((out / "summary.json").read_text())
    visage = summary["visage"]
    assert set(visage["series"]) == {"d0|default"}
    assert set(visage["series"]["d0|default"]) == {"reference", "expectation"}
    assert set(visage["by_system_prompt"]["default"]) == {"reference", "expectation"}
    assert summary["points"] == {"planned": 14, "measured": 14}
    assert len(summary["curves"]["asr"]["d0|default"]) == 7 and "refusal" in summary["curves"]
    for name in ("asr_1d", "refusal_1d", "asr_vs_refusal_1d", "outcomes_1d"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
        assert (out / "plots" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "VISAGE" in html and "harmful-mini" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained


def test_commands_work_from_the_store_without_a_server(quick_run, capsys):
    out, _ = quick_run
    (out / "summary.json").unlink()
    for png in (out / "plots").glob("*"):
        png.unlink()
    (out / "report.html").unlink()
    assert main(["rescore", str(out)]) == 0
    assert "d0|default" in capsys.readouterr().out
    assert "visage" in json.loads((out / "summary.json").read_text())
    assert main(["replot", str(out)]) == 0
    assert (out / "plots" / "asr_1d.png").is_file()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["--json", "export", str(out), "--format", "csv"]) == 0
    path = json.loads(capsys.readouterr().out)["export"]
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 14 and {r["metric"] for r in rows} == {"asr", "refusal"}
    assert main(["export", str(out), "--format", "json", "--output", str(out / "all.json")]) == 0
    doc = json.loads((out / "all.json").read_text())
    assert len(doc["points"]) == 14 and doc["sweeps"]["quick"]["spec"]["name"] == "quick"
    assert doc["points"][0]["provenance"]["model"]["model_fingerprint"]
    assert main(["replot", str(out / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sweep_spec_file_with_overrides_and_a_2d_grid(tmp_path, capsys):
    spec = tmp_path / "plane.toml"
    spec.write_text('name = "plane"\nkind = "2d-random"\n[grid]\npoints = 5\n[prompts]\nset = "harmful-mini"\n'
                    '[evaluation]\nkeywords = ["BBB", "GG"]\n[generation]\nmax_new_tokens = 8\n')
    with running_server() as server:
        code = main(["--json", "sweep", str(spec), "--server", server.target, "--out", str(tmp_path / "o"),
                     "--points", "3", "--limit", "4", "--system-prompt", "default", "--system-prompt", "empty"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["evaluated"] == 9 * 2 and doc["written"] == 18
    assert set(doc["visage"]["series"]) == {"plane|default", "plane|empty"}
    assert doc["visage"]["series"]["plane|default"]["reference"] is None  # the reference rule is 1D only
    plots = {p.name for p in (tmp_path / "o" / "plots").iterdir()}
    assert {"asr_2d_plane_default.png", "asr_2d_plane_default_surface.svg", "asr_2d_plane_empty.png"} <= plots


def test_bad_spec_reports_every_error_and_exits_2(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('kind = "1d-random"\n[grid]\npoints = 1\nrange = [1, 0]\n[generation]\nmax_new_tokens = 0\nfoo = 1\n')
    assert main(["sweep", str(spec), "--server", "127.0.0.1:1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    for field in ("grid.points", "grid.range", "generation.max_new_tokens", "generation.foo", "prompts:"):
        assert field in err
    assert main(["sweep", "--preset", "paper", "--server", "127.0.0.1:1", "--out", str(tmp_path / "o")]) == 2
    assert "prompts" in capsys.readouterr().err


def test_sweep_figures_are_titled_and_labelled_in_a_readers_words(quick_run):
    from test_plots_report import svg_text

    out, _ = quick_run
    for name in ("asr_1d", "refusal_1d", "asr_vs_refusal_1d", "outcomes_1d"):
        text = svg_text(out / "plots" / f"{name}.svg")
        assert "direction 1" in text and "tiny-random" in text and "system prompt: default" in text, name
        assert "d0|default" not in text and "(quick)" not in text and "d0" not in text, name
        assert (out / "plots" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
