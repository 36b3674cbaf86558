"""The gate's verdict and its files: checks against thresholds, the baseline, gate.json,
junit.xml and summary.md.

Exit codes (``EXIT_*``): 0 every check passed, 1 some check failed, 2 the gate could not evaluate
(unreachable server, bad config or baseline, any error). An error never yields a pass: the error
report has verdict ``"error"``, and its junit.xml holds an ``<error>`` per configured check.

``gate.json`` records the sha256 of every input (``inputs``: model/tokenizer fingerprints, the
candidate's weight state, direction specs and fingerprints, prompt-set hashes, evaluation
settings, config file bytes, baseline file bytes) and ``attestation_sha256``, the sha256 of the
canonical JSON of (inputs, measurements, checks, verdict): recompute it to attest a verdict.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..store import provenance
from .config import GateConfig
from .measure import Measurements, sha256_json

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "FORMAT",
    "Baseline",
    "BaselineError",
    "Check",
    "error_document",
    "evaluate_checks",
    "gate_document",
    "load_baseline",
    "write_outputs",
]

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
FORMAT = "safety-landscape-gate/1"

LABELS = {
    "min_visage": ("VISAGE", ">="),
    "max_origin_asr": ("ASR at the candidate (%)", "<="),
    "max_over_refusal": ("over-refusal on benign prompts (%)", "<="),
    "max_visage_drop": ("VISAGE drop vs baseline (points)", "<="),
    "max_perplexity": ("perplexity at the candidate", "<="),
    "min_accuracy": ("multiple-choice accuracy at the candidate (%)", ">="),
}


class BaselineError(ValidationError):
    pass


@dataclass(frozen=True)
class Baseline:
    file: str
    visage: float
    kind: str  # "gate" | "sweep-summary" | "number"
    sha256: str


@dataclass(frozen=True)
class Check:
    name: str
    label: str
    value: float
    threshold: float
    comparison: str  # ">=" or "<="
    passed: bool
    message: str


def _number(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def load_baseline(path: str | Path, *, rule: str, system_prompt: str = "default") -> Baseline:
    """The baseline VISAGE from a previous gate.json or a sweep summary.json (``visage`` key)."""
    import hashlib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path}: not valid JSON ({exc})") from None
    sha = hashlib.sha256(raw).hexdigest()
    if not isinstance(doc, dict) or "visage" not in doc:
        raise BaselineError(f"baseline {path}: no 'visage' key; give a previous gate.json or a sweep summary.json")
    v = doc["visage"]
    if doc.get("format") == FORMAT:
        if doc.get("verdict") == "error" or not isinstance(v, dict) or _number(v.get("mean")) is None:
            raise BaselineError(f"baseline {path}: that gate run measured no VISAGE (verdict {doc.get('verdict')!r})")
        if v.get("rule") != rule:
            raise BaselineError(f"baseline {path}: VISAGE rule {v.get('rule')!r}, this gate uses {rule!r}; "
                                "compare like with like")
        return Baseline(str(path), float(v["mean"]), "gate", sha)
    if _number(v) is not None:
        return Baseline(str(path), float(v), "number", sha)
    if isinstance(v, dict):
        by_sp = v.get("by_system_prompt")
        if isinstance(by_sp, dict) and by_sp:
            label = system_prompt if system_prompt in by_sp else (next(iter(by_sp)) if len(by_sp) == 1 else None)
            if label is None:
                raise BaselineError(f"baseline {path}: several system prompts ({', '.join(by_sp)}) and none is {system_prompt!r}")
            entry = by_sp[label].get(rule) if isinstance(by_sp[label], dict) else None
            mean = _number(entry.get("mean")) if isinstance(entry, dict) else _number(entry)
            if mean is None:
                raise BaselineError(f"baseline {path}: no {rule!r} VISAGE for system prompt {label!r}")
            return Baseline(str(path), mean, "sweep-summary", sha)
        series = v.get("series")
        if isinstance(series, dict) and series:
            vals = [_number(s.get(rule) if isinstance(s, dict) else s) for s in series.values()]
            if all(x is not None for x in vals):
                return Baseline(str(path), sum(vals) / len(vals), "sweep-summary", sha)  # type: ignore[arg-type]
        if _number(v.get("mean")) is not None:
            return Baseline(str(path), float(v["mean"]), "sweep-summary", sha)
    raise BaselineError(f"baseline {path}: cannot read a {rule!r} VISAGE from its 'visage' value")


def evaluate_checks(config: GateConfig, m: Measurements, baseline: Baseline | None) -> list[Check]:
    t = config.thresholds
    out: list[Check] = []

    def add(name: str, value: float, threshold: float) -> None:
        label, cmp = LABELS[name]
        passed = value >= threshold if cmp == ">=" else value <= threshold
        verdict = "passes" if passed else "FAILS"
        out.append(Check(name, label, value, threshold, cmp, passed,
                         f"{label} = {value:.2f}, threshold {cmp} {threshold:g}: {verdict}"))

    if t.min_visage is not None:
        add("min_visage", m.visage, t.min_visage)
    if t.max_origin_asr is not None:
        add("max_origin_asr", m.origin_asr, t.max_origin_asr)
    if t.max_over_refusal is not None:
        add("max_over_refusal", m.over_refusal, t.max_over_refusal)
    if t.max_visage_drop is not None:
        if baseline is None:
            raise BaselineError("thresholds.max_visage_drop needs a baseline file")
        add("max_visage_drop", baseline.visage - m.visage, t.max_visage_drop)
    if t.max_perplexity is not None:
        add("max_perplexity", m.capability["perplexity"], t.max_perplexity)
    if t.min_accuracy is not None:
        add("min_accuracy", m.capability["accuracy"], t.min_accuracy)
    return out


def _attest(doc: dict[str, Any]) -> str:
    return sha256_json({k: doc.get(k) for k in ("format", "name", "verdict", "checks", "visage", "origin_asr",
                                                "over_refusal", "capability", "curves", "points", "model", "baseline",
                                                "config", "inputs")})


def gate_document(config: GateConfig, m: Measurements, checks: list[Check], baseline: Baseline | None,
                  *, config_file: str, config_sha256: str) -> dict[str, Any]:
    passed = all(c.passed for c in checks) and bool(checks)
    inputs = dict(m.inputs)
    inputs["config_file"] = {"path": config_file, "sha256": config_sha256}
    inputs["baseline_file"] = {"path": baseline.file, "sha256": baseline.sha256} if baseline else None
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": config.name,
        "verdict": "pass" if passed else "fail",
        "exit_code": EXIT_PASS if passed else EXIT_FAIL,
        "error": None,
        "checks": [asdict(c) for c in checks],
        "failed": [c.name for c in checks if not c.passed],
        "visage": {"rule": config.rule, "mean": m.visage, "std": m.visage_std, "per_direction": m.visage_per_direction},
        "origin_asr": m.origin_asr,
        "over_refusal": m.over_refusal,
        "capability": m.capability,
        "capability_curves": m.capability_curves,
        "curves": m.curves,
        "points": m.points,
        "model": m.model,
        "servers": m.servers,
        "baseline": asdict(baseline) if baseline else None,
        "config": config.to_dict(),
        "inputs": inputs,
        "inputs_sha256": sha256_json(inputs),
    }
    doc["attestation_sha256"] = _attest(doc)
    doc["provenance"] = provenance()
    return doc


def error_document(message: str, *, config: GateConfig | None, config_file: str, config_sha256: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": config.name if config else "gate",
        "verdict": "error",
        "exit_code": EXIT_ERROR,
        "error": message,
        "checks": [],
        "failed": [],
        "planned_checks": [n for n in LABELS if config and getattr(config.thresholds, n) is not None],
        "config": config.to_dict() if config else None,
        "inputs": {"config_file": {"path": config_file, "sha256": config_sha256}},
    }
    doc["provenance"] = provenance()
    return doc


# -- files ---------------------------------------------------------------------------------------


def _junit(doc: dict[str, Any]) -> bytes:
    name = doc["name"]
    suites = ET.Element("testsuites", name="visage-gate")
    suite = ET.SubElement(suites, "testsuite", name=f"visage-gate.{name}")
    classname = f"visage.gate.{name}"
    failures = errors = 0
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
            out = ET.SubElement(case, "system-out")
            out.text = c["message"]
            if not c["passed"]:
                fail = ET.SubElement(case, "failure", message=f"{c['name']}: {c['message']}", type="ThresholdExceeded")
                fail.text = f"{c['label']}: value {c['value']:.4f}, threshold {c['comparison']} {c['threshold']:g}"
                failures += 1
        tests = len(doc["checks"])
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ET.indent(suites)
    text: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _markdown(doc: dict[str, Any]) -> str:
    name = doc["name"]
    if doc["verdict"] == "error":
        return (f"## :warning: VISAGE gate `{name}`: could not evaluate (exit 2)\n\n"
                f"```\n{doc['error']}\n```\n\nNo check ran; this is not a pass.\n")
    icon = ":white_check_mark:" if doc["verdict"] == "pass" else ":x:"
    lines = [f"## {icon} VISAGE gate `{name}`: {doc['verdict'].upper()} (exit {doc['exit_code']})", "",
             "| check | value | threshold | result |", "|---|---:|---:|---|"]
    for c in doc["checks"]:
        result = ":white_check_mark: pass" if c["passed"] else ":x: **fail**"
        lines.append(f"| {c['label']} (`{c['name']}`) | {_fmt(c['value'])} | {c['comparison']} {c['threshold']:g} | {result} |")
    v = doc["visage"]
    lines += ["", f"VISAGE ({v['rule']} rule) {_fmt(v['mean'])} ± {_fmt(v['std'])} over {len(v['per_direction'])} "
              f"direction(s); ASR at the candidate {_fmt(doc['origin_asr'])}%, over-refusal {_fmt(doc['over_refusal'])}%."]
    for metric, value in sorted((doc.get("capability") or {}).items()):
        lines.append(f"Capability at the candidate: {metric} {_fmt(value)}.")
    if doc.get("baseline"):
        b = doc["baseline"]
        lines.append(f"Baseline `{b['file']}` ({b['kind']}): VISAGE {_fmt(b['visage'])}.")
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
    paths["gate.json"].write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    paths["junit.xml"].write_bytes(_junit(doc))
    paths["summary.md"].write_text(_markdown(doc), encoding="utf-8")
    return paths
