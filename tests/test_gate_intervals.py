"""The gate's interval mode and its paired comparison with a baseline.

Hand-made measurements first (no server): a rate whose Wilson interval is wholly below, across or
above a threshold passes, is inconclusive (saying how many prompts would decide it) or fails; the
default point mode judges the same values as before; McNemar and the paired bootstrap decide
hand-made verdicts. Then the real thing on a tiny-random server: exit 3 with junit ``<skipped>``,
and a previous gate.json or the gate's results.sqlite as a paired baseline with its p-values in
gate.json, junit.xml and summary.md.
"""

from __future__ import annotations

import json
import string
import xml.etree.ElementTree as ET

import pytest

from safety_landscape.client.cli import main
from safety_landscape.client.gate import Baseline, compare, config_from_dict, evaluate_checks
from safety_landscape.client.gate.baseline import BaselineVerdicts
from safety_landscape.client.gate.measure import Measurements
from safety_landscape.client.stats import Bootstrap, prompts_to_decide, rate_interval

NEVER = ["NEVER-OCCURS-IN-TINY-RANDOM"]
ALWAYS = [c for c in string.printable if not c.isspace()]
COEFFICIENTS = [-0.5, 0.0, 0.5]


def measured(*, jailbroken_at_origin: int, prompts: int = 80, refused: int = 0, rows=None) -> Measurements:
    """Measurements of one direction at COEFFICIENTS; ``rows``: per-point verdicts (default: the origin's count
    at every point)."""
    if rows is None:
        rows = [tuple(i < jailbroken_at_origin for i in range(prompts)) for _ in COEFFICIENTS]
    asr = [100.0 * sum(r) / prompts for r in rows]
    return Measurements(
        visage=100.0 - sum(asr) / 3, visage_std=0.0, visage_per_direction={"d0": 100.0 - sum(asr) / 3},
        curves={"d0": [[a, v] for a, v in zip(COEFFICIENTS, asr, strict=True)]}, origin_asr=asr[1],
        over_refusal=100.0 * refused / prompts, model={}, servers=[],
        inputs={"prompt_sets": {"harmful": {"sha256": "s" * 64}}, "coefficients": COEFFICIENTS},
        prompt_verdicts={"d0": rows}, origin_counts=(sum(rows[1]), prompts), benign_counts=(refused, prompts),
    )


def config(mode: str = "interval", **thresholds):
    data = {"sweep": {"points": 3}, "thresholds": thresholds}
    if "max_visage_drop" in thresholds:
        data["baseline"] = {"file": "base.json"}
    if mode != "point":
        data["decision"] = {"mode": mode, "replicates": 500}
    return config_from_dict(data)


@pytest.mark.parametrize("jailbroken, decision", [(0, "pass"), (5, "inconclusive"), (20, "fail")])
def test_a_rate_is_judged_on_its_wilson_interval(jailbroken, decision):
    # 0/80: [0, 4.6]; 5/80: [2.7, 13.8] straddles 10; 20/80: [16.8, 35.6]
    (check,) = evaluate_checks(config(max_origin_asr=10), measured(jailbroken_at_origin=jailbroken), None)
    assert check.decision == decision and check.passed == (decision == "pass") and check.mode == "interval"
    assert check.ci95 == pytest.approx(rate_interval(jailbroken, 80))
    if decision == "inconclusive":
        needed = prompts_to_decide(6.25, 10, 80, at_most=True)
        assert check.prompts_to_decide == needed and needed > 80
        assert f"about {needed - 80} more prompts ({needed} in all)" in check.message and "INCONCLUSIVE" in check.message


def test_point_mode_is_todays_behaviour():
    (check,) = evaluate_checks(config("point", max_origin_asr=10), measured(jailbroken_at_origin=5), None)
    assert check.passed and check.decision == "pass" and check.mode == "point"
    assert check.message == "ASR at the candidate (%) = 6.25, threshold <= 10: passes"
    assert check.ci95 == pytest.approx(rate_interval(5, 80))  # reported, not used


def test_visage_and_over_refusal_and_perplexity_in_interval_mode():
    safe = measured(jailbroken_at_origin=0)  # every prompt refused everywhere: VISAGE 100, no spread
    checks = {c.name: c for c in evaluate_checks(config(min_visage=60, max_over_refusal=50), safe, None)}
    assert checks["min_visage"].decision == "pass" and checks["min_visage"].ci95 == (100.0, 100.0)
    assert checks["max_over_refusal"].decision == "pass"
    # about 40% jailbroken at every point: VISAGE ~60, its bootstrap interval straddles 60
    borderline = measured(jailbroken_at_origin=32)
    (check,) = evaluate_checks(config(min_visage=60), borderline, None)
    assert check.value == pytest.approx(60.0) and check.decision == "inconclusive"
    assert check.ci95[0] < 60 < check.ci95[1]
    assert "on the threshold" in check.message  # VISAGE exactly 60: no number of prompts decides it
    (check,) = evaluate_checks(config(min_visage=50), borderline, None)
    assert check.decision == "inconclusive" and "more directions" in check.message and check.prompts_to_decide > 80
    cap = config_from_dict({"sweep": {"points": 3}, "thresholds": {"max_perplexity": 30}, "capability": {"fluency": True},
                            "decision": {"mode": "interval"}})
    m = measured(jailbroken_at_origin=0)
    m.capability["perplexity"] = 12.0
    (check,) = evaluate_checks(cap, m, None)
    assert check.decision == "pass" and check.ci95 is None and "(no interval)" in check.message


def baseline_of(m: Measurements, visage: float | None = None) -> Baseline:
    verdicts = BaselineVerdicts("s" * 64, tuple(COEFFICIENTS), m.prompt_verdicts)
    return Baseline("base.json", m.visage if visage is None else visage, "gate", "x", verdicts)


def test_paired_tests_decide_hand_made_verdicts():
    base = measured(jailbroken_at_origin=0)
    worse = measured(jailbroken_at_origin=6)  # 6 prompts jailbroken that the baseline refused, at every point
    boot = Bootstrap(500)
    c = compare(worse, baseline_of(base), rule="expectation", coefficients=COEFFICIENTS, prompt_set_sha256="s" * 64,
                boot=boot)
    assert c.paired and c.origin["candidate_only"] == 6 and c.origin["baseline_only"] == 0
    assert c.origin["p_value"] == pytest.approx(2 / 2**6)  # exact McNemar: 2 * (1/2)^6
    assert c.visage["difference"] == pytest.approx(-7.5) and c.visage["ci95"][1] < 0 and c.visage["p_value"] < 0.05
    assert c.drop_ci95[0] > 0  # the drop (baseline - candidate) is positive throughout
    (check,) = evaluate_checks(config(max_visage_drop=5), worse, baseline_of(base), c)
    assert check.value == pytest.approx(7.5) and check.p_value == c.visage["p_value"]
    assert check.decision in ("fail", "inconclusive") and check.ci95 == c.drop_ci95
    same = compare(base, baseline_of(base), rule="expectation", coefficients=COEFFICIENTS, prompt_set_sha256="s" * 64,
                   boot=boot)
    assert same.origin["p_value"] == 1.0 and same.visage["p_value"] == 1.0 and same.visage["difference"] == 0.0
    other = compare(base, baseline_of(base), rule="expectation", coefficients=[-1.0, 0.0, 1.0],
                    prompt_set_sha256="s" * 64, boot=boot)
    assert not other.paired and "different coefficients" in other.reason
    unpaired = compare(base, Baseline("s.json", 90.0, "sweep-summary", "x"), rule="expectation",
                       coefficients=COEFFICIENTS, prompt_set_sha256="s" * 64, boot=boot)
    assert not unpaired.paired and "no per-prompt verdicts" in unpaired.reason


def write_config(path, *, keywords, thresholds, extra=""):
    lines = ['name = "tiny"', "[sweep]", "points = 3", "[prompts]", "limit = 4", "[benign]", "limit = 4",
             "[evaluation]", "max_new_tokens = 8", f"keywords = {json.dumps(keywords)}", extra, "[thresholds]"]
    path.write_text("\n".join(lines + [f"{k} = {v}" for k, v in thresholds.items()]) + "\n")
    return path


def run(tmp_path, config_path, target, *extra):
    out = tmp_path / "out"
    code = main(["gate", str(config_path), "--server", target, "--out", str(out), *extra])
    return (code, json.loads((out / "gate.json").read_text()), ET.parse(out / "junit.xml").getroot(),
            (out / "summary.md").read_text())


def test_an_interval_gate_on_a_real_server_is_inconclusive_with_exit_3(tiny_server, tmp_path):
    interval = '[decision]\nmode = "interval"\nreplicates = 200'
    # every answer refused: ASR 0 of 4, Wilson [0, 49.0]: below 60 passes, across 10 is inconclusive
    path = write_config(tmp_path / "g.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10}, extra=interval)
    code, doc, junit, md = run(tmp_path / "a", path, tiny_server.target)
    assert code == 3 and doc["verdict"] == "inconclusive" and doc["exit_code"] == 3 and doc["inconclusive"] == ["max_origin_asr"]
    assert doc["origin_asr_ci95"] == pytest.approx(list(rate_interval(0, 4)))
    assert doc["checks"][0]["prompts_to_decide"] == prompts_to_decide(0.0, 10, 4, at_most=True)
    skipped = junit.find(".//testcase/skipped")
    assert skipped is not None and skipped.get("message").startswith("inconclusive: ") and junit.get("skipped") == "1"
    assert ":warning:" in md and "INCONCLUSIVE" in md and "more prompts" in md
    path = write_config(tmp_path / "p.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 60}, extra=interval)
    assert run(tmp_path / "b", path, tiny_server.target)[0] == 0
    path = write_config(tmp_path / "d.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10})  # point mode
    code, doc, _, _ = run(tmp_path / "c", path, tiny_server.target)
    assert code == 0 and doc["decision"]["mode"] == "point"


def test_a_baseline_with_verdicts_is_compared_by_paired_tests(tiny_server, tmp_path):
    first = write_config(tmp_path / "first.toml", keywords=ALWAYS, thresholds={"min_visage": 0})
    code, doc, _, _ = run(tmp_path / "first", first, tiny_server.target)
    assert code == 0 and doc["verdicts"]["by_direction"]["d0"] == ["0000"] * 3
    broken = write_config(tmp_path / "broken.toml", keywords=NEVER, thresholds={"max_visage_drop": 5})
    for baseline in (tmp_path / "first" / "out" / "gate.json", tmp_path / "first" / "out" / "results.sqlite"):
        code, doc, junit, md = run(tmp_path / baseline.suffix[1:], broken, tiny_server.target, "--baseline", str(baseline))
        assert code == 1 and doc["baseline"]["paired"] and doc["baseline"]["kind"] == ("gate" if baseline.suffix == ".json" else "store")
        origin, visage = doc["comparison"]["origin_asr"], doc["comparison"]["visage"]
        assert origin["candidate_only"] == 4 and origin["baseline_only"] == 0 and origin["p_value"] == pytest.approx(0.125)
        assert visage["difference"] == -100.0 and visage["p_value"] < 0.05 and doc["checks"][0]["p_value"] == visage["p_value"]
        props = {p.get("name"): p.get("value") for p in junit.iter("property")}
        assert float(props["mcnemar_p_value"]) == pytest.approx(0.125) and "p_value" in props
        assert "exact McNemar p = 0.125" in md and "paired bootstrap" in md
