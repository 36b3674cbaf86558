"""The gate's measurements on one or more servers: a small 1D random sweep around the candidate,
the candidate's ASR, and its over-refusal on benign prompts.

The candidate is theta0 (the server's model) or, with ``checkpoint = NAME``, the registered
checkpoint: the term ``interp:NAME`` with coefficient 1 (theta0 + 1 * (theta_NAME - theta0)).
Each random point adds ``a * d_i`` to that; every point is absolute (a ``Perturbation``), so the
order and the server a point runs on do not matter. Points with ``a = 0`` are the candidate itself
and are evaluated once. Points are split round-robin over the servers (one ``EvaluatePoints``
stream each, in threads); the servers must agree on the model and tokenizer fingerprints first.

Why not ``client/sweep``'s runner: its 1D random sweep is around theta0 only (no base
perturbation to sweep around a registered checkpoint), and it judges the benign prompts at every
point where the gate needs them at the candidate only. Its ``summary.json`` is read as a baseline
(see ``report.load_baseline``); once the runner takes a base perturbation the gate can run on it
(and gain its failover and resumable store).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

from google.protobuf.json_format import MessageToDict

from safety_landscape.v1 import landscape_pb2 as pb

from ..client import Client, evaluation_settings, interpolation_direction, perturbation, random_direction
from ..errors import FleetError, VisageError
from ..visage import summarize
from .config import GateConfig

__all__ = ["Measurements", "measure", "sha256_json"]


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


def _agree(clients: Sequence[Client]) -> tuple[pb.ModelInfo, list[dict[str, str]]]:
    infos = [(c.target, c.info()) for c in clients]
    first = infos[0][1]
    for what in ("model_fingerprint",):
        seen = {t: getattr(i, what) for t, i in infos}
        if len(set(seen.values())) > 1:
            raise FleetError(f"the servers hold different models ({what}: {seen}); point the gate at servers of one model")
    toks = {t: i.tokenizer.tokenizer_fingerprint for t, i in infos}
    if len(set(toks.values())) > 1:
        raise FleetError(f"the servers hold different tokenizers ({toks})")
    return first, [{"target": t, "server_version": i.server_version, "device": i.device, "torch": i.torch_version} for t, i in infos]


def _evaluate_all(clients: Sequence[Client], settings: pb.EvaluationSettings, points: list[pb.Perturbation]) -> list[pb.EvaluateSafetyResponse]:
    shares: list[list[int]] = [list(range(k, len(points), len(clients))) for k in range(len(clients))]

    def run(k: int) -> list[tuple[int, pb.EvaluateSafetyResponse]]:
        idx = shares[k]
        if not idx:
            return []
        out = []
        for res in clients[k].evaluate_points(settings, [points[i] for i in idx]):
            out.append((idx[res.index], res.result))
        if len(out) != len(idx):
            raise VisageError(f"{clients[k].target} returned {len(out)} of {len(idx)} points")
        return out

    results: list[pb.EvaluateSafetyResponse | None] = [None] * len(points)
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        for part in pool.map(run, range(len(clients))):
            for i, r in part:
                results[i] = r
    if any(r is None for r in results):
        raise VisageError("some points got no result")
    return results  # type: ignore[return-value]


def measure(config: GateConfig, clients: Sequence[Client]) -> Measurements:
    """Run the gate's evaluations; raises a :class:`VisageError` subclass on any failure."""
    if not clients:
        raise VisageError("no servers given")
    info, servers = _agree(clients)
    candidate_terms: list[tuple[pb.DirectionSpec, float]] = []
    if config.checkpoint:
        candidate_terms.append((interpolation_direction(config.checkpoint), 1.0))
    specs = [
        random_direction(config.seed, normalization=config.normalization, selection=config.selection,
                         stream=config.stream, index=i)
        for i in range(config.directions)
    ]
    harmful = evaluation_settings(
        prompt_set=config.prompt_set, limit=config.prompt_limit, system=config.system_prompt,
        chat=config.chat_format, max_new_tokens=config.max_new_tokens, keywords=config.keywords,
    )
    # Unique weight states: index 0 is the candidate; (direction, a) -> index.
    states: list[pb.Perturbation] = [perturbation(candidate_terms)]
    where: dict[tuple[int, float], int] = {}
    for d, spec in enumerate(specs):
        for a in config.coefficients:
            if a == 0.0:
                where[(d, a)] = 0
            else:
                where[(d, a)] = len(states)
                states.append(perturbation([*candidate_terms, (spec, a)]))
    results = _evaluate_all(clients, harmful, states)

    set_hashes = {r.prompt_set.sha256 for r in results}
    if len(set_hashes) != 1 or any(r.total == 0 for r in results):
        raise VisageError(f"the points were evaluated on different or empty prompt sets ({sorted(set_hashes)})")
    curves: dict[str, list[list[float]]] = {}
    for d in range(len(specs)):
        curves[f"d{d}"] = [[a, results[where[(d, a)]].asr] for a in config.coefficients]
    summary = summarize({k: [v for _, v in c] for k, c in curves.items()}, rule=config.rule)

    # Over-refusal at the candidate: benign prompts the judge calls refused (not "jailbroken").
    benign = evaluation_settings(
        prompt_set=config.benign_set, limit=config.benign_limit, system=config.system_prompt,
        chat=config.chat_format, max_new_tokens=config.max_new_tokens, keywords=config.keywords,
    )
    benign_resp = clients[0].evaluate(benign, at=states[0])
    if benign_resp.total == 0:
        raise VisageError(f"benign prompt set {config.benign_set!r} is empty")
    over_refusal = 100.0 * (benign_resp.total - benign_resp.jailbroken) / benign_resp.total
    if benign_resp.weight_state.fingerprint != results[0].weight_state.fingerprint:
        raise VisageError("the benign prompts were evaluated at other weights than the candidate's; a server bug")

    # Direction fingerprints (best effort: ListDirections needs no admin token).
    held: dict[str, str] = {}
    try:
        held = {d.id: d.fingerprint for d in clients[0].list_directions().directions}
    except VisageError:
        pass
    used_ids = sorted({t.direction_id for r in results for t in r.weight_state.terms})
    direction_specs = [_msg(s) for s in specs] + ([_msg(t[0]) for t in candidate_terms])
    settings_dict = {"harmful": _msg(harmful), "benign": _msg(benign)}
    inputs = {
        "model_fingerprint": info.model_fingerprint,
        "tokenizer_fingerprint": info.tokenizer.tokenizer_fingerprint,
        "chat_template_sha256": info.tokenizer.chat_template_sha256,
        "candidate": {"checkpoint": config.checkpoint, "weight_state": results[0].weight_state.fingerprint},
        "directions": {
            "specs": direction_specs,
            "specs_sha256": sha256_json(direction_specs),
            "fingerprints": {i: held.get(i, "") for i in used_ids},
        },
        "prompt_sets": {
            "harmful": {"name": results[0].prompt_set.name, "size": results[0].prompt_set.size, "sha256": results[0].prompt_set.sha256},
            "benign": {"name": benign_resp.prompt_set.name, "size": benign_resp.prompt_set.size, "sha256": benign_resp.prompt_set.sha256},
        },
        "system_prompt_sha256": results[0].system_prompt_sha256,
        "judge": results[0].judge,
        "settings": settings_dict,
        "settings_sha256": sha256_json(settings_dict),
        "coefficients": config.coefficients,
    }
    points = [
        {"direction": f"d{d}", "a": a, "asr": results[where[(d, a)]].asr, "jailbroken": results[where[(d, a)]].jailbroken,
         "total": results[where[(d, a)]].total, "weight_state": results[where[(d, a)]].weight_state.fingerprint}
        for d in range(len(specs)) for a in config.coefficients
    ]
    return Measurements(
        visage=summary.mean, visage_std=summary.std, visage_per_direction=dict(summary.per_series), curves=curves,
        origin_asr=results[0].asr, over_refusal=over_refusal,
        model={"name": info.model_name, "architecture": info.architecture, "fingerprint": info.model_fingerprint,
               "dtype": info.dtype, "parameters": info.parameter_count},
        servers=[s["target"] for s in servers], inputs=inputs, points=points,
    )
