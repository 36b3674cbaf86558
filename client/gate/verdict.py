"""The gate's verdict as a document: gate.json's content, for a run that measured and for one that could not.

Exit codes (``EXIT_*``): 0 every check passed, 1 some check failed, 2 the gate could not evaluate
(unreachable server, bad config or baseline, any error), 3 no check failed but some is
inconclusive (interval mode: its interval straddles the threshold). An error never yields a pass:
the error report has verdict ``"error"``, and its junit.xml holds an ``<error>`` per configured check.

``gate.json`` records the sha256 of every input (``inputs``: model/tokenizer fingerprints, the
candidate's weight state, direction specs and fingerprints, prompt-set hashes, evaluation
settings, config file bytes, baseline file bytes) and ``attestation_sha256``, the sha256 of the
canonical JSON of (inputs, measurements, intervals, comparison, checks, verdict): recompute it to
attest a verdict. ``verdicts`` holds the candidate's per-prompt verdicts (per direction, one
``"0110..."`` string per coefficient), so a later gate can use this file as a paired baseline.
``provenance`` (client and server software, git revisions, the spec, start and end times; outside
the attested part) is flat enough for ``pandas.json_normalize``. The files: :mod:`.files`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ..provenance import iso_time, provenance
from .baseline import FORMAT, Baseline, BaselineError, BaselineVerdicts, load_baseline
from .checks import LABELS, Check, evaluate_checks, intervals
from .compare import Comparison
from .config import GateConfig
from .files import write_outputs
from .measure import Measurements, gate_spec, sha256_json

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
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

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_INCONCLUSIVE = 0, 1, 2, 3

_ATTESTED = ("format", "name", "verdict", "checks", "visage", "origin_asr", "origin_asr_ci95", "over_refusal",
             "over_refusal_ci95", "capability", "curves", "points", "verdicts", "comparison", "model", "baseline",
             "config", "inputs")


def _attest(doc: dict[str, Any]) -> str:
    return sha256_json({k: doc.get(k) for k in _ATTESTED})


def _verdict(checks: list[Check]) -> tuple[str, int]:
    if not checks or any(c.decision == "fail" for c in checks):
        return "fail", EXIT_FAIL
    if any(c.decision == "inconclusive" for c in checks):
        return "inconclusive", EXIT_INCONCLUSIVE
    return "pass", EXIT_PASS


def _provenance(config: GateConfig | None, server: dict[str, str] | None, started: float | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"server": server or {}, "spec": gate_spec(config).to_dict() if config else {},
                             "finished_at": iso_time(time.time())}
    if started is not None:
        extra["started_at"] = iso_time(started)
    return provenance(extra)


def _ci(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def gate_document(config: GateConfig, m: Measurements, checks: list[Check], baseline: Baseline | None,
                  *, config_file: str, config_sha256: str, comparison: Comparison | None = None,
                  cis: Mapping[str, tuple[float, float] | None] | None = None, started: float | None = None) -> dict[str, Any]:
    """The document of a run that measured: ``checks`` from :func:`evaluate_checks`, ``cis`` the
    intervals (:func:`~.checks.intervals`; computed here when not given), ``started`` its start time."""
    verdict, code = _verdict(checks)
    cis = cis if cis is not None else intervals(config, m, baseline, comparison)
    inputs = dict(m.inputs)
    inputs["config_file"] = {"path": config_file, "sha256": config_sha256}
    inputs["baseline_file"] = {"path": baseline.file, "sha256": baseline.sha256} if baseline else None
    sha = inputs["prompt_sets"]["harmful"]["sha256"]
    verdicts = (BaselineVerdicts(sha, tuple(inputs["coefficients"]), m.prompt_verdicts).to_json()
                if m.prompt_verdicts else None)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": config.name,
        "verdict": verdict,
        "exit_code": code,
        "error": None,
        "decision": asdict(config.decision),
        "checks": [asdict(c) for c in checks],
        "failed": [c.name for c in checks if c.decision == "fail"],
        "inconclusive": [c.name for c in checks if c.decision == "inconclusive"],
        "visage": {"rule": config.rule, "metric": config.metric, "mean": m.visage, "std": m.visage_std,
                   "per_direction": m.visage_per_direction,
                   "ci95": _ci(cis["min_visage"])},
        "origin_asr": m.origin_asr,
        "origin_asr_ci95": _ci(cis["max_origin_asr"]),
        "over_refusal": m.over_refusal,
        "over_refusal_ci95": _ci(cis["max_over_refusal"]),
        "capability": m.capability,
        "capability_curves": m.capability_curves,
        "curves": m.curves,
        "points": m.points,
        "verdicts": verdicts,
        "comparison": comparison.to_dict() if comparison is not None else None,
        "model": m.model,
        "servers": m.servers,
        "baseline": baseline.to_dict() if baseline else None,
        "config": config.to_dict(),
        "inputs": inputs,
        "inputs_sha256": sha256_json(inputs),
    }
    doc["attestation_sha256"] = _attest(doc)
    doc["provenance"] = _provenance(config, m.server, started)
    return doc


def error_document(message: str, *, config: GateConfig | None, config_file: str, config_sha256: str = "",
                   started: float | None = None) -> dict[str, Any]:
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
    doc["provenance"] = _provenance(config, None, started)
    return doc
