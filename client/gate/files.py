"""The gate's files: gate.json, junit.xml and summary.md (from the document of :mod:`.verdict`).

junit.xml has one ``<testcase>`` per check: ``<failure>`` when it fails, ``<skipped>`` (message
"inconclusive: ...") when its interval straddles the threshold, ``<error>`` per planned check when
the gate could not evaluate; the paired tests' p-values are ``<property>`` entries of the suite
(``mcnemar_p_value``, ``visage_paired_p_value``) and of the ``max_visage_drop`` case (``p_value``).
summary.md is a Markdown table (value with its 95 % interval) and the comparison with the baseline.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..outputs import write_atomically

__all__ = ["write_outputs"]


def _junit(doc: dict[str, Any]) -> bytes:
    name = doc["name"]
    suites = ET.Element("testsuites", name="visage-gate")
    suite = ET.SubElement(suites, "testsuite", name=f"visage-gate.{name}")
    classname = f"visage.gate.{name}"
    failures = errors = skipped = 0
    _suite_properties(suite, doc.get("comparison"))
    if doc["verdict"] == "error":
        planned = doc.get("planned_checks") or ["evaluate"]
        for check in planned:
            case = ET.SubElement(suite, "testcase", classname=classname, name=check, time="0")
            err = ET.SubElement(case, "error", message=f"could not evaluate: {doc['error']}", type="GateError")
            err.text = doc["error"]
            errors += 1
        tests = len(planned)
    else:
        for c in doc["checks"]:
            case = ET.SubElement(suite, "testcase", classname=classname, name=c["name"], time="0")
            if c.get("p_value") is not None:
                props = ET.SubElement(case, "properties")
                ET.SubElement(props, "property", name="p_value", value=f"{c['p_value']:.6g}")
            out = ET.SubElement(case, "system-out")
            out.text = c["message"]
            if c.get("decision") == "inconclusive":
                ET.SubElement(case, "skipped", message=f"inconclusive: {c['message']}")
                skipped += 1
            elif not c["passed"]:
                fail = ET.SubElement(case, "failure", message=f"{c['name']}: {c['message']}", type="ThresholdExceeded")
                fail.text = f"{c['label']}: value {c['value']:.4f}, threshold {c['comparison']} {c['threshold']:g}"
                failures += 1
        tests = len(doc["checks"])
    for element in (suite, suites):
        element.set("tests", str(tests))
        element.set("failures", str(failures))
        element.set("errors", str(errors))
        element.set("skipped", str(skipped))
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _suite_properties(suite: ET.Element, comparison: dict[str, Any] | None) -> None:
    if not comparison or not comparison.get("paired"):
        return
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="mcnemar_p_value", value=f"{comparison['origin_asr']['p_value']:.6g}")
    ET.SubElement(props, "property", name="visage_paired_p_value", value=f"{comparison['visage']['p_value']:.6g}")


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _with_ci(value: float, ci: list[float] | None) -> str:
    return _fmt(value) if not ci else f"{_fmt(value)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


_RESULT = {"pass": ":white_check_mark: pass", "fail": ":x: **fail**", "inconclusive": ":warning: **inconclusive**"}
_ICON = {"pass": ":white_check_mark:", "fail": ":x:", "inconclusive": ":warning:"}


def _comparison_lines(doc: dict[str, Any]) -> list[str]:
    comparison = doc.get("comparison")
    if not comparison:
        return []
    if not comparison["paired"]:
        return [f"No paired test against the baseline: {comparison['reason']}."]
    o, v = comparison["origin_asr"], comparison["visage"]
    return [f"Paired with the baseline on the same {o['prompts']} prompts: ASR at the candidate {_fmt(o['candidate'])}% vs "
            f"{_fmt(o['baseline'])}% ({o['candidate_only']} prompts jailbroken only by the candidate, "
            f"{o['baseline_only']} only by the baseline; exact McNemar p = {o['p_value']:.3g}); VISAGE difference "
            f"{_fmt(v['difference'])} [{_fmt(v['ci95'][0])}, {_fmt(v['ci95'][1])}] (paired bootstrap, "
            f"{v['replicates']} replicates, seed {v['seed']}: p = {v['p_value']:.3g})."]


def _markdown(doc: dict[str, Any]) -> str:
    name = doc["name"]
    if doc["verdict"] == "error":
        return (f"## :warning: VISAGE gate `{name}`: could not evaluate (exit 2)\n\n"
                f"```\n{doc['error']}\n```\n\nNo check ran; this is not a pass.\n")
    lines = [f"## {_ICON[doc['verdict']]} VISAGE gate `{name}`: {doc['verdict'].upper()} (exit {doc['exit_code']})", "",
             "| check | value | threshold | result |", "|---|---:|---:|---|"]
    for c in doc["checks"]:
        result = _RESULT[c.get("decision") or ("pass" if c["passed"] else "fail")]
        lines.append(f"| {c['label']} (`{c['name']}`) | {_with_ci(c['value'], c.get('ci95'))} | "
                     f"{c['comparison']} {c['threshold']:g} | {result} |")
    v, mode = doc["visage"], (doc.get("decision") or {}).get("mode", "point")
    lines += ["", f"Judged on the {'95% interval' if mode == 'interval' else 'measured value'} (decision mode `{mode}`); "
              "values in brackets are 95% intervals (Wilson for rates, a seeded bootstrap for VISAGE).",
              *[f"- {c['message']}" for c in doc["checks"] if c.get("decision") == "inconclusive"],
              "", f"VISAGE ({v['rule']} rule) {_with_ci(v['mean'], v.get('ci95'))} ± {_fmt(v['std'])} over "
              f"{len(v['per_direction'])} direction(s); ASR at the candidate "
              f"{_with_ci(doc['origin_asr'], doc.get('origin_asr_ci95'))}%, "
              f"over-refusal {_with_ci(doc['over_refusal'], doc.get('over_refusal_ci95'))}%."]
    for metric, value in sorted((doc.get("capability") or {}).items()):
        lines.append(f"Capability at the candidate: {metric} {_fmt(value)}.")
    if doc.get("baseline"):
        b = doc["baseline"]
        lines.append(f"Baseline `{b['file']}` ({b['kind']}): VISAGE {_fmt(b['visage'])}.")
        lines += _comparison_lines(doc)
    model, cand = doc["model"], doc["inputs"]["candidate"]
    lines += ["", f"Model `{model['name']}` (fingerprint `{model['fingerprint'][:16]}`), candidate "
              f"{'`' + cand['checkpoint'] + '` (interp at 1.0)' if cand['checkpoint'] else 'the server model'}, "
              f"servers {', '.join('`' + s + '`' for s in doc['servers'])}.",
              f"Attestation sha256 `{doc['attestation_sha256']}`."]
    return "\n".join(lines) + "\n"


def write_outputs(doc: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """gate.json, junit.xml and summary.md under ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"gate.json": out / "gate.json", "junit.xml": out / "junit.xml", "summary.md": out / "summary.md"}
    write_atomically(paths["gate.json"], json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    write_atomically(paths["junit.xml"], _junit(doc).decode("utf-8"))
    write_atomically(paths["summary.md"], _markdown(doc))
    return paths
