"""Outcomes (refused, complied, incoherent) through a sweep's outputs, on a real tiny-random server.

What it proves: every stored answer keeps the server's outcome and the referee's figures, and each
point's counts add up to its answers and its ASR (coherent ASR + incoherent rate = the paper's
ASR, which is unchanged); summary.json has the three rates with Wilson intervals and VISAGE of the
coherent ASR by both rules with bootstrap intervals; the exports, the outcome bands figure, the
report's table, ``visage compare`` and the gate carry the coherent ASR. A store written before the
referee (made here by removing what the referee added, as an earlier client's store lacks it)
reads as "not judged" everywhere: every output says "coherent ASR: not measured", never a number,
and a gate on the coherent ASR stops instead of passing. A sweep with the referee off (``--no-referee``)
measures the same points (same keys, same ASR) without outcomes, says so, and ``rejudge`` gives them
the outcomes a sweep with the referee on stored.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import pytest
from serving import running_server
from test_gate import ALWAYS, NEVER, run_gate, write_config

from safety_landscape.client.cli import main
from safety_landscape.client.compare import comparison_rows, load_run
from safety_landscape.client.judging import rejudge
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.stored import load_sweep
from safety_landscape.client.sweep.summary import sweep_summary


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "run"
    with running_server() as server:
        assert main(["sweep", "--preset", "quick", "--server", server.target, "--out", str(out)]) == 0
        yield server, out


def _strip_store(path):
    """A store as a client before the referee wrote it: no referee table, no counts or per-prompt
    outcomes in the records."""
    db = sqlite3.connect(path)
    db.execute("DROP TABLE referee_verdicts")
    for key, text in db.execute("SELECT key, record FROM points").fetchall():
        record = json.loads(text)
        for name in ("refused", "complied", "incoherent", "referee"):
            record["detail"].pop(name, None)
        if "verdicts" in record["detail"]:
            record["detail"]["verdicts"] = [v[:3] for v in record["detail"]["verdicts"]]
        db.execute("UPDATE points SET record = ? WHERE key = ?", (json.dumps(record, sort_keys=True), key))
    db.commit()
    db.close()


def _strip_referee(src, dst):
    """The sweep's folder as a client before the referee wrote it, its outputs written again from the store."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "plots")  # an earlier client drew no outcome figure
    _strip_store(dst / "results.sqlite")
    assert main(["rescore", str(dst)]) == 0 and main(["replot", str(dst)]) == 0 and main(["report", str(dst)]) == 0
    return dst


def test_every_answer_and_point_keeps_its_outcome(quick):
    _, out = quick
    with ResultStore(out / "results.sqlite") as store:
        asr = store.records("quick", metric="asr")
        assert len(asr) == 7
        for record in asr:
            o = record.outcomes
            assert o is not None and o.total == record.total
            assert o.coherent_asr + o.incoherent_rate == pytest.approx(record.value)  # the paper's ASR, unchanged
            answers = store.completions(record.key)
            assert [c.outcome for c in answers].count("complied") == o.complied
            assert [c.outcome for c in answers].count("incoherent") == o.incoherent
            for c in answers:
                assert c.nll is not None and c.repetition is not None and c.word_run is not None
                assert c.outcome == ("refused" if not c.jailbroken else "complied" if c.coherent else "incoherent")
        assert any(r.outcomes.incoherent for r in asr if abs(r.a) >= 0.3)  # tiny-random collapses far out


def test_summary_has_the_three_rates_and_visage_on_the_coherent_asr(quick):
    _, out = quick
    summary = json.loads((out / "summary.json").read_text())
    outcomes = summary["outcomes"]
    assert outcomes["measured"] == ["d0|default"] and outcomes["not_measured"] == []
    rates = {name: {r[0]: r[1] for r in outcomes["rates"][name]["curves"]["d0|default"]}
             for name in ("coherent_asr", "incoherent_rate", "refusal_rate")}
    for a, asr in summary["curves"]["asr"]["d0|default"]:
        assert rates["coherent_asr"][a] + rates["incoherent_rate"][a] == pytest.approx(asr)
        assert rates["refusal_rate"][a] == pytest.approx(100.0 - asr)
    for lo_hi in outcomes["rates"]["coherent_asr"]["curves_ci95"]["d0|default"]:
        assert 0.0 <= lo_hi[1] <= rates["coherent_asr"][lo_hi[0]] <= lo_hi[2] <= 100.0
    visage = outcomes["visage"]
    assert visage["metric"] == "coherent_asr" and set(visage["series"]["d0|default"]) == {"reference", "expectation"}
    ci = visage["series_ci95"]["d0|default"]["reference"]
    assert ci[0] <= visage["series"]["d0|default"]["reference"] <= ci[1]
    assert summary["visage"]["metric"] == "asr"  # the paper's VISAGE stays as it was


def test_exports_figures_report_and_compare_carry_the_coherent_asr(quick, tmp_path, capsys):
    _, out = quick
    assert main(["export", str(out), "--format", "csv", "--completions", "--output", str(tmp_path / "c.csv")]) == 0
    with open(tmp_path / "c.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["outcome"] for r in rows} <= {"refused", "complied", "incoherent"} and all(r["nll"] for r in rows)
    assert main(["export", str(out), "--format", "csv", "--output", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as fh:
        points = list(csv.DictReader(fh))
    assert all(p["coherent_asr"] for p in points if p["metric"] == "asr")
    assert (out / "plots" / "outcomes_1d.png").stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert "coherent ASR at origin" in page
    assert "Coherent ASR (jailbroken and coherent)" in page and "% at a = 0" in page  # the headline says it in words
    row = comparison_rows([load_run(out)])[0]
    assert row["coherent ASR at origin (%)"] == json.loads((out / "summary.json").read_text())[
        "outcomes"]["rates"]["coherent_asr"]["origin"]["d0|default"]
    assert isinstance(row["VISAGE on coherent ASR (reference)"], float)


def test_a_store_written_before_the_referee_says_not_measured(quick, tmp_path, capsys):
    _, out = quick
    old = _strip_referee(out, tmp_path / "old")
    assert "coherent ASR: not measured" in capsys.readouterr().out
    with ResultStore(old / "results.sqlite") as store:
        record = store.records("quick", metric="asr")[0]
        assert record.outcomes is None
        assert all(c.outcome == "" and c.nll is None for c in store.completions(record.key))
        summary = sweep_summary(load_sweep(store))
    assert summary.by_outcome().measured == () and summary.by_outcome().not_measured == ("d0|default",)
    assert summary.by_outcome().visage is None and summary.by_outcome().describe("d0|default") == "coherent ASR: not measured"
    doc = json.loads((old / "summary.json").read_text())
    assert "visage" not in doc["outcomes"] and doc["outcomes"]["rates"]["coherent_asr"]["origin"] == {}
    assert not (old / "plots" / "outcomes_1d.png").exists()
    assert "not measured" in (old / "report.html").read_text()
    row = comparison_rows([load_run(old)])[0]
    assert row["coherent ASR"] == "not measured"  # said in words; its number cells empty, never 0
    assert row["coherent ASR at origin (%)"] is None is row["VISAGE on coherent ASR (reference)"]
    assert main(["export", str(old), "--format", "csv", "--completions", "--output", str(tmp_path / "c.csv")]) == 0
    with open(tmp_path / "c.csv") as fh:
        assert {r["outcome"] for r in csv.DictReader(fh)} == {""}
    # the store still takes new points with outcomes: its referee table comes back when opened
    with ResultStore(old / "results.sqlite") as store:
        assert store.text_stats()["completions"] > 0


def test_a_sweep_with_the_referee_off_measures_the_same_points_without_outcomes(quick, tmp_path, capsys):
    server, out = quick
    off = tmp_path / "off"
    assert main(["sweep", "--preset", "quick", "--no-referee", "--server", server.target, "--out", str(off)]) == 0
    assert "coherent ASR: not measured" in capsys.readouterr().out
    with ResultStore(out / "results.sqlite") as on_store, ResultStore(off / "results.sqlite") as off_store:
        on = {r.key: r for r in on_store.records("quick", metric="asr")}
        measured = {r.key: r for r in off_store.records("quick", metric="asr")}
        assert measured.keys() == on.keys()  # the referee is not in a point's key: a resume reuses them
        for key, record in measured.items():
            assert record.value == on[key].value and record.outcomes is None
            assert all(c.outcome == "" and c.nll is None for c in off_store.completions(key))
        assert load_sweep(off_store).meta.spec.evaluation.referee is False
        with server.client() as client:
            [judged] = rejudge(off_store, client, kind="referee")
    assert {p.key: (p.refused, p.complied, p.incoherent) for p in judged.points if p.key in on} == {
        k: (r.outcomes.refused, r.outcomes.complied, r.outcomes.incoherent) for k, r in on.items()}


def test_a_referee_flag_that_is_not_a_boolean_is_refused(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('[evaluation]\nreferee = "no"\n')
    assert main(["sweep", str(spec), "--server", "127.0.0.1:1", "--out", str(tmp_path / "x")]) == 2
    assert "evaluation.referee: must be true or false, got 'no'" in capsys.readouterr().err


def test_the_gate_thresholds_the_coherent_asr(quick, tmp_path):
    server, _ = quick
    on = write_config(tmp_path / "on.toml", keywords=NEVER, thresholds={"min_visage": 0, "max_origin_asr": 100},
                      extra='metric = "coherent_asr"')
    # `extra` lands in [evaluation]; the metric is a [sweep] key: move it there
    text = on.read_text().replace('metric = "coherent_asr"\n', "").replace("[sweep]\n", '[sweep]\nmetric = "coherent_asr"\n')
    on.write_text(text)
    code, doc, _, _ = run_gate(tmp_path / "a", on, server.target)
    assert code == 0 and doc["visage"]["metric"] == "coherent_asr" and doc["config"]["metric"] == "coherent_asr"
    with ResultStore(tmp_path / "a" / "out" / "results.sqlite") as store:
        origin = next(r for r in store.records(metric="asr") if r.a == 0.0)
    assert doc["origin_asr"] == pytest.approx(origin.outcomes.coherent_asr)
    assert doc["checks"][1]["label"] == "coherent ASR at the candidate (%)"
    paper = write_config(tmp_path / "paper.toml", keywords=NEVER, thresholds={"max_origin_asr": 100})
    code, doc2, _, _ = run_gate(tmp_path / "b", paper, server.target)
    assert code == 0 and doc2["origin_asr"] == 100.0 and doc2["visage"]["metric"] == "asr"
    # a baseline on the other metric is refused: compare like with like
    again = write_config(tmp_path / "again.toml", keywords=ALWAYS, thresholds={"max_visage_drop": 100})
    code, doc3, _, _ = run_gate(tmp_path / "c", again, server.target,
                                extra_args=["--baseline", str(tmp_path / "a" / "out" / "gate.json")])
    assert code == 2 and "compare like with like" in doc3["error"]
    # the paper's gate again on its store as an earlier client left it (no outcomes): the coherent gate stops
    _strip_store(tmp_path / "b" / "out" / "results.sqlite")
    code, doc4, _, _ = run_gate(tmp_path / "b", on, server.target)
    assert code == 2 and "coherent ASR: not measured" in doc4["error"]
