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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from google.protobuf.json_format import MessageToDict

from ..client import Client
from ..errors import VisageError
from ..records import PointRecord
from ..store import ResultStore
from ..sweep.fleet import Fleet
from ..sweep.runner import run_sweep
from ..sweep.spec import BaseTerm, DirectionRecipe, Grid, PromptSource, SweepSpec, validate
from ..visage import summarize
from .config import GateConfig

__all__ = ["STORE_NAME", "Measurements", "gate_spec", "measure", "sha256_json"]

STORE_NAME = "results.sqlite"


def sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _msg(m) -> dict:
    return MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


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


def gate_spec(config: GateConfig) -> SweepSpec:
    """The sweep the gate measures (see the module docstring)."""
    return validate(SweepSpec(
        name=config.name, kind="1d-random",
        grid=Grid(directions=config.directions, points=config.points, range=tuple(config.range)),
        direction=DirectionRecipe(seed=config.seed, stream=config.stream, normalization=config.normalization,
                                  selection=config.selection),
        base=(BaseTerm(f"interp:{config.checkpoint}", 1.0),) if config.checkpoint else (),
        prompts=PromptSource(set=config.prompt_set, limit=config.prompt_limit),
        benign=PromptSource(set=config.benign_set, limit=config.benign_limit, at="origin"),
        system_prompts=(config.system_prompt,), chat_format=config.chat_format, keywords=tuple(config.keywords),
        max_new_tokens=config.max_new_tokens, capability=config.capability,
    ))


def _prompt_set(record: PointRecord) -> dict[str, Any]:
    d = record.detail
    return {"name": d.get("prompt_set_name", ""), "size": d.get("prompt_set_size", record.total),
            "sha256": d.get("prompt_set_sha256", "")}


def measure(config: GateConfig, clients: Sequence[Client], *, store_path: str | Path | None = None) -> Measurements:
    """Run the gate's sweep on ``clients`` (the caller closes them) into the store at
    ``store_path`` (None: a temporary one); raises a :class:`VisageError` subclass on any failure."""
    if not clients:
        raise VisageError("no servers given")
    spec = gate_spec(config)
    with contextlib.ExitStack() as stack:
        if store_path is None:
            store_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="visage-gate-"))) / STORE_NAME
        store = stack.enter_context(ResultStore(store_path))
        result = run_sweep(spec, store, fleet=Fleet(list(clients)), bar=False)
        records = {p.key: store.get(p.key) for p in result.plan.points}
    plan = result.plan
    if any(r is None for r in records.values()):
        raise VisageError("the sweep finished with points missing from the store; a bug")

    curves: dict[str, list[list[float]]] = {}
    points: list[dict[str, Any]] = []
    candidate: PointRecord | None = None
    benign: PointRecord | None = None
    capability: dict[str, float] = {}
    capability_curves: dict[str, dict[str, list[list[float]]]] = {}
    for p in plan.points:
        r = records[p.key]
        if p.metric == "refusal":
            benign = r
            continue
        if p.metric != "asr":  # a capability metric, scored at every point
            capability_curves.setdefault(p.metric, {}).setdefault(p.series, []).append([p.coords[0], r.value])
            if p.coords[0] == 0.0:
                capability.setdefault(p.metric, r.value)
            continue
        direction = p.series.split("|", 1)[0]
        curves.setdefault(direction, []).append([p.coords[0], r.value])
        points.append({"direction": direction, "a": p.coords[0], "asr": r.value, "jailbroken": r.detail["jailbroken"],
                       "total": r.total, "weight_state": r.detail["weight_state"]})
        if p.coords[0] == 0.0 and candidate is None:
            candidate = r
    if candidate is None or benign is None:
        raise VisageError("the gate's sweep has no point at the candidate (a = 0)")
    harmful_sets = {r.detail.get("prompt_set_sha256") for r in records.values() if r.metric == "asr"}
    if len(harmful_sets) != 1 or any(r.total == 0 for r in records.values()):
        raise VisageError(f"the points were evaluated on different or empty prompt sets ({sorted(harmful_sets)})")
    if benign.detail["weight_state"] != candidate.detail["weight_state"]:
        raise VisageError("the benign prompts were evaluated at other weights than the candidate's; a server bug")
    summary = summarize({k: [v for _, v in c] for k, c in curves.items()}, rule=config.rule)

    info = clients[0].info()
    variants = {v.metric: v for v in plan.variants}
    direction_specs = [_msg(s) for s in plan.directions.values()]
    settings_dict = {"harmful": _msg(variants["asr"].settings), "benign": _msg(variants["refusal"].settings)}
    if capability:  # what the capability numbers were computed from (file hashes included)
        settings_dict["capability"] = {m: variants[m].desc for m in sorted(capability)}
    inputs = {
        "model_fingerprint": plan.facts.model_fingerprint,
        "tokenizer_fingerprint": plan.facts.tokenizer_fingerprint,
        "chat_template_sha256": plan.facts.chat_template_sha256,
        "candidate": {"checkpoint": config.checkpoint, "weight_state": candidate.detail["weight_state"]},
        "directions": {
            "specs": direction_specs,
            "specs_sha256": sha256_json(direction_specs),
            "fingerprints": dict(result.direction_fingerprints),
        },
        "prompt_sets": {"harmful": _prompt_set(candidate), "benign": _prompt_set(benign)},
        "system_prompt_sha256": candidate.detail["system_prompt_sha256"],
        "judge": candidate.detail["judge"],
        "settings": settings_dict,
        "settings_sha256": sha256_json(settings_dict),
        "coefficients": [c for c, _ in next(iter(curves.values()))],
    }
    return Measurements(
        visage=summary.mean, visage_std=summary.std, visage_per_direction=dict(summary.per_series), curves=curves,
        origin_asr=candidate.value, over_refusal=benign.value,
        model={"name": info.model_name, "architecture": info.architecture, "fingerprint": info.model_fingerprint,
               "dtype": info.dtype, "parameters": info.parameter_count},
        servers=[s.target for s in result.servers], inputs=inputs, points=points,
        capability=capability, capability_curves=capability_curves,
    )
