"""The gate's measurements, on the sweep machinery: a small 1D random sweep around the candidate,
the candidate's ASR, its over-refusal on benign prompts and, when configured, its capability
(perplexity, multiple-choice accuracy) scored at every point of the sweep.

:func:`gate_spec` turns the gate config into a :class:`~..sweep.spec.SweepSpec`:

- the candidate is theta0 (the server's model) or, with ``checkpoint = NAME``, the registered
  checkpoint: the spec's ``base`` term ``interp:NAME`` at 1.0 (theta0 + 1 * (theta_NAME -
  theta0)), added to every point and part of every key;
- each random point adds ``a * d_i`` to that (kind ``1d-random``, draws 0..n-1 of ``seed``); the
  points with ``a = 0`` are the candidate itself, one weight state, evaluated once;
- the benign prompts are judged at the candidate only (``benign.at = "origin"``).

:func:`measure` runs it with :func:`~..sweep.runner.run_sweep` on the given servers (fleet
agreement checks on model, tokenizer, chat template, dtype, device, torch version, prompt sets and
direction fingerprints; a shared queue with failover) into a result store (the gate keeps it as
``results.sqlite`` in its output folder, so a re-run of the same gate evaluates only what is
missing), then reads the curves, the candidate's numbers and the input hashes from the records.
With ``metric = "coherent_asr"`` the ASR points are read as their coherent ASR (each prompt
"jailbroken" only when its answer complied: :func:`~..sweep.outcomes.coherent_record`), so VISAGE,
the candidate's ASR, their intervals and the verdicts kept for a later baseline are all on it; a
point the server's coherence referee did not judge stops the gate (coherent ASR not measured).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..builders import message_dict
from ..client import Client
from ..errors import VisageError
from ..provenance import server_provenance
from ..records import PointRecord
from ..store import STORE_NAME, ResultStore
from ..sweep.fleet import Fleet
from ..sweep.intervals import counts_of, prompt_verdicts
from ..sweep.outcomes import coherent_record
from ..sweep.points import Plan
from ..sweep.runner import SweepResult, run_sweep
from ..sweep.spec import BaseTerm, SweepSpec, validate
from ..visage import summarize
from .config import GateConfig

__all__ = ["Measurements", "gate_spec", "measure", "sha256_json"]


def sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Measurements:
    visage: float
    visage_std: float
    visage_per_direction: dict[str, float]
    curves: dict[str, list[list[float]]]  # series -> [[a, asr], ...]
    origin_asr: float
    over_refusal: float
    model: dict[str, Any]
    servers: list[str]
    inputs: dict[str, Any]  # what determined the numbers, with sha256s
    points: list[dict[str, Any]] = field(default_factory=list)
    capability: dict[str, float] = field(default_factory=dict)  # metric -> value at the candidate
    capability_curves: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)  # metric -> series -> [[a, v]]
    # The counts and per-prompt verdicts behind the numbers (intervals, the paired test with a baseline):
    prompt_verdicts: dict[str, list[tuple[bool, ...]]] = field(default_factory=dict)  # direction -> per point, by a
    origin_counts: tuple[int, int] = (0, 0)  # (jailbroken, prompts) at the candidate
    benign_counts: tuple[int, int] = (0, 0)  # (refused, benign prompts) at the candidate
    accuracy_counts: tuple[int, int] | None = None  # (right, questions) at the candidate
    server: dict[str, str] = field(default_factory=dict)  # the first server's software and device (provenance)


def gate_spec(config: GateConfig) -> SweepSpec:
    """The sweep the gate measures (see the module docstring)."""
    base = (BaseTerm(f"interp:{config.checkpoint}", 1.0),) if config.checkpoint else ()
    return validate(config.sweep.replace(base=base))


def _prompt_set(record: PointRecord) -> dict[str, Any]:
    d = record.detail
    return {"name": d.prompt_set_name or "", "size": record.total if d.prompt_set_size is None else d.prompt_set_size,
            "sha256": d.prompt_set_sha256 or ""}


@dataclass
class _Readings:
    """The gate's numbers, read from the records of its plan's points."""

    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # direction -> [[a, asr], ...]
    points: list[dict[str, Any]] = field(default_factory=list)
    candidate: PointRecord | None = None  # ASR at a = 0
    benign: PointRecord | None = None  # over-refusal at the candidate
    capability: dict[str, float] = field(default_factory=dict)
    capability_curves: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    capability_records: dict[str, PointRecord] = field(default_factory=dict)  # metric -> record at the candidate
    verdicts: dict[str, list[tuple[bool, ...] | None]] = field(default_factory=dict)  # direction -> per point

    @classmethod
    def of(cls, plan: Plan, records: dict[str, PointRecord]) -> _Readings:
        out = cls()
        for p in plan.points:
            r, a = records[p.key], p.coords[0]
            if p.metric == "refusal":
                out.benign = r
            elif p.metric != "asr":  # a capability metric, scored at every point
                out.capability_curves.setdefault(p.metric, {}).setdefault(p.series, []).append([a, r.value])
                if a == 0.0:
                    out.capability.setdefault(p.metric, r.value)
                    out.capability_records.setdefault(p.metric, r)
            else:
                direction = p.curve.direction
                out.curves.setdefault(direction, []).append([a, r.value])
                out.verdicts.setdefault(direction, []).append(prompt_verdicts(r))
                out.points.append({"direction": direction, "a": a, "asr": r.value, "jailbroken": r.detail.jailbroken,
                                   "total": r.total, "weight_state": r.detail.weight_state})
                if a == 0.0 and out.candidate is None:
                    out.candidate = r
        return out


def _check(readings: _Readings, records: dict[str, PointRecord]) -> tuple[PointRecord, PointRecord]:
    """(candidate, benign) records, after the checks that the numbers belong together."""
    candidate, benign = readings.candidate, readings.benign
    if candidate is None or benign is None:
        raise VisageError("the gate's sweep has no point at the candidate (a = 0)")
    harmful_sets = {r.detail.prompt_set_sha256 for r in records.values() if r.metric == "asr"}
    if len(harmful_sets) != 1 or any(r.total == 0 for r in records.values()):
        raise VisageError(f"the points were evaluated on different or empty prompt sets ({sorted(map(str, harmful_sets))})")
    if benign.detail.weight_state != candidate.detail.weight_state:
        raise VisageError("the benign prompts were evaluated at other weights than the candidate's; a server bug")
    return candidate, benign


def _inputs(config: GateConfig, result: SweepResult, readings: _Readings, candidate: PointRecord,
            benign: PointRecord) -> dict[str, Any]:
    """What determined the numbers, with sha256s."""
    plan = result.plan
    variants = {v.metric: v for v in plan.variants}
    direction_specs = [message_dict(s) for s in plan.directions.values()]
    settings: dict[str, Any] = {"harmful": message_dict(variants["asr"].evaluation),
                                "benign": message_dict(variants["refusal"].evaluation)}
    if readings.capability:  # what the capability numbers were computed from (file hashes included)
        settings["capability"] = {m: variants[m].desc for m in sorted(readings.capability)}
    return {
        "model_fingerprint": plan.facts.model_fingerprint,
        "tokenizer_fingerprint": plan.facts.tokenizer_fingerprint,
        "chat_template_sha256": plan.facts.chat_template_sha256,
        "candidate": {"checkpoint": config.checkpoint, "weight_state": candidate.detail.weight_state},
        "directions": {
            "specs": direction_specs,
            "specs_sha256": sha256_json(direction_specs),
            "fingerprints": dict(result.direction_fingerprints),
        },
        "prompt_sets": {"harmful": _prompt_set(candidate), "benign": _prompt_set(benign)},
        "system_prompt_sha256": candidate.detail.system_prompt_sha256,
        "judge": candidate.detail.judge,
        "settings": settings,
        "settings_sha256": sha256_json(settings),
        "coefficients": [c for c, _ in next(iter(readings.curves.values()))],
    }


def _run(config: GateConfig, clients: Sequence[Client],
         store_path: str | Path | None) -> tuple[SweepResult, dict[str, PointRecord]]:
    """Run the gate's sweep into the store; (result, key -> record of every planned point)."""
    with contextlib.ExitStack() as stack:
        if store_path is None:
            store_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="visage-gate-"))) / STORE_NAME
        store = stack.enter_context(ResultStore(store_path))
        result = run_sweep(gate_spec(config), store, fleet=Fleet(list(clients)), bar=False)
        records = {p.key: store.get(p.key) for p in result.plan.points}
    found = {k: r for k, r in records.items() if r is not None}
    if len(found) != len(records):
        raise VisageError("the sweep finished with points missing from the store; a bug")
    return result, found


def _coherent(records: dict[str, PointRecord]) -> dict[str, PointRecord]:
    """The ASR points as their coherent ASR (the other points as they are); VisageError when one was not judged."""
    out = {}
    for key, record in records.items():
        coherent = coherent_record(record) if record.metric == "asr" else record
        if coherent is None:
            raise VisageError("coherent ASR: not measured: the server did not judge the answers' coherence (a server "
                              "without the coherence referee, or with it off); set sweep.metric = \"asr\" or use a "
                              "server with the referee")
        out[key] = coherent
    return out


def measure(config: GateConfig, clients: Sequence[Client], *, store_path: str | Path | None = None) -> Measurements:
    """Run the gate's sweep on ``clients`` (the caller closes them) into the store at
    ``store_path`` (None: a temporary one); raises a :class:`VisageError` subclass on any failure."""
    if not clients:
        raise VisageError("no servers given")
    result, records = _run(config, clients, store_path)
    if config.metric == "coherent_asr":
        records = _coherent(records)
    readings = _Readings.of(result.plan, records)
    candidate, benign = _check(readings, records)
    summary = summarize({k: [v for _, v in c] for k, c in readings.curves.items()}, rule=config.rule)
    info = clients[0].info()
    verdicts = {d: [v for v in rows if v is not None] for d, rows in readings.verdicts.items()}
    complete = all(len(v) == len(readings.verdicts[d]) for d, v in verdicts.items())
    return Measurements(
        visage=summary.mean, visage_std=summary.std, visage_per_direction=dict(summary.per_series),
        curves=readings.curves, origin_asr=candidate.value, over_refusal=benign.value,
        model={"name": info.model_name, "architecture": info.architecture, "fingerprint": info.model_fingerprint,
               "dtype": info.dtype, "parameters": info.parameter_count},
        servers=[s.target for s in result.servers], inputs=_inputs(config, result, readings, candidate, benign),
        points=readings.points, capability=readings.capability, capability_curves=readings.capability_curves,
        prompt_verdicts=verdicts if complete else {}, origin_counts=counts_of(candidate) or (0, 0),
        benign_counts=counts_of(benign) or (0, 0),
        accuracy_counts=counts_of(readings.capability_records["accuracy"]) if "accuracy" in readings.capability_records else None,
        server=server_provenance(result.servers[0]),
    )
