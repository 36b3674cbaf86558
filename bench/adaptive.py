"""Benchmark: an adaptive sweep beside the full grid and beside the reference way, in ONE run.

    python bench/adaptive.py --model runs/aligned --prompts harmful_behaviors.csv --json runs/bench/adaptive.json

One process, one model, one in-process server on a loopback port (as ``visage-server`` builds it),
the same prompts (the file given, first ``--limit``), chat template, directions (the reference
stream of seed 123, draws 0..``--directions``-1) and generation length, in three phases:

  1. **adaptive**: ``run_sweep`` of a 1D spec with ``grid.adaptive = true`` into a fresh store;
  2. **full**: the same spec on the full grid into another fresh store;
  3. **reference** (bench/reference.py): every point of every direction, the weights walked by
     cumulative ``w += step*d``, HF ``generate`` at batch 4, full length, judged afterwards.

For each phase: server evaluations, generated tokens, wall and process-CPU seconds, VISAGE by
both rules per direction and their mean. Then the ratios, the check that every adaptively
measured point equals the full grid's (value and verdicts), and a replay of the planner on the
full grid's measured values for other ``stop_after`` (derived from measurements, not run).
Each phase's figures are written to ``--json`` as soon as it ends (the reference's after every
point), so a crash loses only the phase in progress; ``--skip-done`` reruns only the phases the
JSON lacks. The machine may be shared: ratios of one run are the figures to quote, and process CPU
seconds are the ones that its load does not distort. Where the reference's full walk does not fit the
machine's time, ``--reference-directions N`` walks its first N directions and scales its cost to all
of them (``reference_cost_scaled_by`` in the JSON says by how much).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import hardware, reference, report
from bench.landscape import choose_threads
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import (
    DirectionRecipe,
    Grid,
    PromptSource,
    SweepSpec,
    load_sweep,
    run_sweep,
    summarize_sweep,
    validate,
)
from safety_landscape.client.sweep.planner import AdaptiveRule, GridShape, next_points
from safety_landscape.client.sweep.points import axis_values
from safety_landscape.client.visage import RULES, visage_expectation, visage_reference
from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.app import create_server
from safety_landscape.server.bootstrap import build_engine_factory
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.judges import KeywordJudge
from safety_landscape.server.engine.prompts import load_prompt_file

PHASES = ("adaptive", "full", "reference")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = StrictArgumentParser(prog="bench/adaptive.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the model to sweep (a folder, e.g. the aligned SmolLM2)")
    p.add_argument("--prompts", required=True, type=Path, help="harmful prompts (AdvBench harmful_behaviors.csv)")
    p.add_argument("--limit", type=int, default=80, help="the first N prompts (80)")
    p.add_argument("--directions", type=int, default=3, help="random directions (3)")
    p.add_argument("--points", type=int, default=21, help="points per direction over [-0.5, 0.5] (21)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--stop-after", type=int, default=2, help="the adaptive rule's k (2)")
    p.add_argument("--reference-batch-size", type=int, default=4)
    p.add_argument("--reference-directions", type=int, default=0,
                   help="walk only the first N directions the reference way (0: all); its cost is then scaled "
                        "to all directions and every output says so (for machines where the full walk does not fit)")
    p.add_argument("--threads", default="auto", help="torch CPU threads (auto: 1 when the load says the cores are taken)")
    p.add_argument("--phases", default=",".join(PHASES), help="which phases to run, in this order")
    p.add_argument("--work", type=Path, default=Path("runs/bench/adaptive-work"), help="the sweeps' stores")
    p.add_argument("--json", type=Path, required=True, help="all figures, written as each phase ends")
    p.add_argument("--skip-done", action="store_true", help="keep the phases --json already holds")
    return p.parse_args(argv)


class Recorder:
    """The JSON document, rewritten whole after every change (a crash loses only what is in flight)."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.path)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sweep_spec(args: argparse.Namespace, *, adaptive: bool) -> SweepSpec:
    grid = Grid(directions=args.directions, points=args.points, range=(-0.5, 0.5), adaptive=adaptive,
                stop_after=args.stop_after if adaptive else 2)
    return validate(SweepSpec(name="bench-adaptive" if adaptive else "bench-full", kind="1d-random", grid=grid,
                              direction=DirectionRecipe(seed=123, stream="reference"),
                              prompts=PromptSource(set="advbench", limit=args.limit),
                              max_new_tokens=args.max_new_tokens, points_per_call=1))


def visage_figures(curves: dict[str, list[float]]) -> dict[str, Any]:
    """Per series and mean over series, both rules."""
    per = {s: {"reference": visage_reference(c), "expectation": visage_expectation(c)} for s, c in curves.items()}
    mean = {rule: sum(v[rule] for v in per.values()) / len(per) for rule in RULES}
    return {"series": per, "mean": mean}


def run_sweep_phase(target: str, spec: SweepSpec, store_path: Path) -> dict[str, Any]:
    """One sweep into a fresh store, with what it cost and what it found."""
    store_path.unlink(missing_ok=True)
    tokens, saved, server_s = [0], [0], [0.0]

    def progress(p: Any) -> None:
        if p.records:  # one task = one server evaluation (its records share the response)
            d = p.records[0].detail
            tokens[0] += d.generated_tokens or 0
            saved[0] += d.tokens_saved or 0
            server_s[0] += d.seconds or 0.0

    load0, cpu0, t0 = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    with ResultStore(store_path) as store:
        result = run_sweep(spec, store, targets=[target], progress=progress, bar=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        summary = summarize_sweep(load_sweep(store, spec.name))
        records = {r.key: {"value": r.value, "verdicts": [list(v) for v in r.detail.verdicts or ()]}
                   for r in store.records(spec.name)}
        tokens_by_point = {f"{r.series}@{r.coords[0]!r}": r.detail.generated_tokens for r in store.records(spec.name)}
    curves = {s: [v for _, v in pts] for s, pts in summary["curves"]["asr"].items()}
    filled = summary["visage"]["series"]
    return {
        "wall_s": wall, "cpu_s": cpu, "load_average": [load0, os.getloadavg()[0]], "evaluations": result.evaluated,
        "points_measured": summary["points"]["measured"], "points_planned": summary["points"]["planned"],
        "generated_tokens": tokens[0], "tokens_saved": saved[0], "server_seconds": server_s[0],
        "rounds": result.rounds, "skipped": result.skipped,
        "visage": {"series": filled, "mean": {rule: sum(v[rule] for v in filled.values()) / len(filled)
                                             for rule in RULES}},
        "adaptive": summary.get("adaptive"), "curves": summary["curves"]["asr"], "measured_curves": curves,
        "records": records, "tokens_by_point": tokens_by_point, "complete": True,
    }


def run_reference(engine: Any, args: argparse.Namespace, rec: Recorder) -> None:
    """Every point of every direction the reference way; figures saved after each point."""
    prompts = load_prompt_file(args.prompts).head(args.limit)
    encoded = engine.evaluator.encode(prompts.prompts, None, ChatFormat.TOKENIZER)  # "default": the template's own
    judge, coefs = KeywordJudge(), axis_values(-0.5, 0.5, args.points)
    phase = rec.doc["phases"]["reference"] = {"points": [], "complete": False, "load_average": [os.getloadavg()[0]]}
    walked = args.reference_directions or args.directions
    phase["directions_walked"] = walked
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for i in range(walked):
        reference.restore_pristine(engine.weights)  # the walk starts at theta0, as the reference's does
        held, _ = engine.create_direction(RandomSpec(seed=123, stream="reference", index=i))
        sweep = reference.ReferenceSweep(engine.model, engine.tokenizer, engine.weights.params,
                                         reference.direction_source(engine.weights, held.id),
                                         batch_size=args.reference_batch_size)
        if i == 0:
            sweep.generate(encoded[:1], 2)  # warm HF generate up (untimed)
        for c in coefs:
            started = time.perf_counter()
            point = sweep.run_point(c, encoded, args.max_new_tokens, judge)
            phase["points"].append({"direction": f"d{i}", "a": c, "asr": point.asr, "seconds": point.seconds,
                                    "wall_s": time.perf_counter() - started, "apply_s": point.apply_seconds,
                                    "computed_tokens": point.computed_tokens, "useful_tokens": point.useful_tokens,
                                    "jailbroken": point.jailbroken, "max_abs_drift": point.max_abs_drift})
            phase.update(wall_s=time.perf_counter() - t0, cpu_s=cpu_seconds() - cpu0)
            rec.save()
        reference.mark_overwritten(engine.weights)
        del sweep
    reference.restore_pristine(engine.weights)
    pts = phase["points"]
    curves = {f"d{i}|default": [p["asr"] for p in pts if p["direction"] == f"d{i}"] for i in range(walked)}
    phase.update(evaluations=len(pts), generated_tokens=sum(p["computed_tokens"] for p in pts),
                 visage=visage_figures(curves), complete=True)
    phase["load_average"].append(os.getloadavg()[0])
    rec.save()


def replay(full: dict[str, Any], points: int) -> list[dict[str, Any]]:
    """The planner replayed on the full grid's measured values for k = 1..3 (evaluation is
    deterministic, so these are the sites an adaptive run would measure; not timed)."""
    xs = axis_values(-0.5, 0.5, points)
    out = []
    for k in (1, 2, 3):
        rule, sites, tokens, curves = AdaptiveRule(stop_after=k), set(), 0, {}
        for label, pts in full["curves"].items():
            truth = {(a,): v for a, v in pts}
            grid, measured = GridShape.of(truth), {}
            while todo := next_points(grid, measured, rule):
                measured.update({c: truth[c] for c in todo})
            for (a,) in measured:
                site = "origin" if a == 0 else f"{label}@{a!r}"
                if site not in sites:
                    sites.add(site)
                    tokens += full["tokens_by_point"][f"{label}@{a!r}"]
            curves[label] = [measured.get((a,), 100.0) for a in xs]
        out.append({"stop_after": k, "evaluations": len(sites), "generated_tokens": tokens,
                    "visage": visage_figures(curves)})
    return out


def compare(doc: dict[str, Any]) -> dict[str, Any]:
    """Ratios, VISAGE differences, agreement checks and the targets, from whatever phases are done."""
    ph = doc["phases"]
    out: dict[str, Any] = {}
    if "adaptive" in ph and "full" in ph:
        a, f = ph["adaptive"], ph["full"]
        out["evaluations_adaptive_over_full"] = a["evaluations"] / f["evaluations"]
        out["tokens_adaptive_over_full"] = a["generated_tokens"] / f["generated_tokens"]
        out["wall_full_over_adaptive"] = f["wall_s"] / a["wall_s"]
        out["cpu_full_over_adaptive"] = f["cpu_s"] / a["cpu_s"]
        out["visage_difference"] = {rule: {s: a["visage"]["series"][s][rule] - v[rule]
                                           for s, v in f["visage"]["series"].items()} | {
                                        "mean": a["visage"]["mean"][rule] - f["visage"]["mean"][rule]}
                                    for rule in RULES}
        shared = [k for k in a["records"] if k in f["records"]]
        out["adaptive_points_found_in_full"] = len(shared)
        out["adaptive_points_equal_to_full"] = sum(a["records"][k] == f["records"][k] for k in shared)
        out["adaptive_points"] = len(a["records"])
        out["replay"] = replay(f, doc["workload"]["points"])
    ref = ph.get("reference")
    if ref and ref.get("complete"):
        # a partial walk (--reference-directions) is scaled to every direction: stated in the output
        scale = doc["workload"]["directions"] / ref.get("directions_walked", doc["workload"]["directions"])
        out["reference_cost_scaled_by"] = scale
        for name in ("adaptive", "full"):
            if name in ph:
                out[f"wall_reference_over_{name}"] = scale * ref["wall_s"] / ph[name]["wall_s"]
                out[f"cpu_reference_over_{name}"] = scale * ref["cpu_s"] / ph[name]["cpu_s"]
        if "full" in ph:
            out["reference_verdicts_differing_from_full"] = _verdict_differences(ref, ph["full"])
    diff = out.get("visage_difference")
    out["targets"] = {
        "visage_within_1_by_both_rules": None if diff is None else all(
            abs(x) <= 1 for rule in RULES for x in diff[rule].values()),
        "evaluations_le_50pct": None if diff is None else out["evaluations_adaptive_over_full"] <= 0.5,
        "tokens_le_40pct": None if diff is None else out["tokens_adaptive_over_full"] <= 0.4,
        "adaptive_ge_12x_faster_than_reference":
            out["wall_reference_over_adaptive"] >= 12 if "wall_reference_over_adaptive" in out else None,
        # process CPU seconds: the figure that a shared machine's load does not distort
        "adaptive_ge_12x_less_cpu_than_reference":
            out["cpu_reference_over_adaptive"] >= 12 if "cpu_reference_over_adaptive" in out else None,
    }
    return out


def _verdict_differences(ref: dict[str, Any], full: dict[str, Any]) -> int:
    """Prompts judged differently by the reference and by the full sweep, over all points."""
    by_place = {}
    for key, label, _, coords in full["plan_points"]:
        by_place[(label.split("|")[0], coords[0])] = full["records"].get(key)
    differ = 0
    for p in ref["points"]:
        mine = by_place.get((p["direction"], p["a"]))
        if mine is not None:
            ours = {i: jb for i, jb, _ in mine["verdicts"]}
            differ += sum(ours.get(i) != jb for i, jb in enumerate(p["jailbroken"]))
    return differ


def start_server(args: argparse.Namespace) -> Any:
    config = ServerConfig(model=args.model, listen="127.0.0.1:0", device="cpu", log_format="json",
                          prompt_sets=(("advbench", str(args.prompts)),), grace_seconds=5.0,
                          limits=Limits(max_batch_size=max(1, args.limit), max_new_tokens=max(1024, args.max_new_tokens)))
    app = create_server(config)
    app.load(build_engine_factory(config))
    return app


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    phases = [p for p in PHASES if p in args.phases.split(",")]  # the reference last: it drains the server
    doc: dict[str, Any] = {"phases": {}}
    if args.skip_done and args.json.is_file():
        doc = json.loads(args.json.read_text())
    rec = Recorder(args.json, doc)
    app = start_server(args)
    target = f"127.0.0.1:{app.port}"
    engine = app.host.engine
    doc.update(command=" ".join(sys.argv), threads=threads, machine=hardware.describe_machine(torch.device("cpu")).as_dict(),
               workload={"model": args.model, "prompts": args.prompts.name, "limit": args.limit,
                         "directions": args.directions, "points": args.points, "max_new_tokens": args.max_new_tokens,
                         "stop_after": args.stop_after, "reference_batch": args.reference_batch_size,
                         "reference_directions": args.reference_directions or args.directions,
                         "ours_batch": args.limit})
    args.work.mkdir(parents=True, exist_ok=True)
    drained = False
    try:
        for name in phases:
            if doc["phases"].get(name, {}).get("complete"):
                print(f"# {name}: kept from {args.json}")
                continue
            print(f"# {name}: started {time.strftime('%H:%M:%S')}", flush=True)
            if name == "reference":
                app.drain(grace=5.0)  # nothing else may touch the model while the reference walks it
                drained = True
                run_reference(engine, args, rec)
            else:
                spec = sweep_spec(args, adaptive=name == "adaptive")
                phase = run_sweep_phase(target, spec, args.work / f"{name}.sqlite")
                with ResultStore(args.work / f"{name}.sqlite") as store:
                    phase["plan_points"] = (store.get_meta(spec.name) or {})["points"]
                doc["phases"][name] = phase
            doc["comparison"] = compare(doc)
            rec.save()
            print(f"# {name}: done {time.strftime('%H:%M:%S')}; {_line(doc['phases'][name])}", flush=True)
    finally:
        if not drained:
            app.drain(grace=1.0)
    print_tables(doc)
    return 0


def print_tables(doc: dict[str, Any]) -> None:
    rows = []
    for name, ph in doc["phases"].items():
        mean = ph.get("visage", {}).get("mean", {})
        rows.append([name, ph.get("evaluations", "-"), ph.get("generated_tokens", "-"), ph.get("wall_s", 0.0),
                     ph.get("cpu_s", 0.0), mean.get("reference", "-"), mean.get("expectation", "-")])
    print(report.fmt_table(["phase", "evaluations", "tokens", "wall s", "CPU s", "VISAGE ref (mean)",
                            "VISAGE exp (mean)"], rows))
    comparison = {k: v for k, v in doc.get("comparison", {}).items() if k != "replay"}
    print(json.dumps(comparison, indent=1, sort_keys=True))
    for r in doc.get("comparison", {}).get("replay", []):
        print(f"replay k={r['stop_after']}: {r['evaluations']} evaluations, {r['generated_tokens']} tokens, "
              f"VISAGE mean {r['visage']['mean']}")


def _line(phase: dict[str, Any]) -> str:
    visage = phase.get("visage", {}).get("mean", {})
    return (f"{phase.get('evaluations')} evaluations, {phase.get('generated_tokens')} tokens, "
            f"{phase.get('wall_s', 0):.0f} s wall, {phase.get('cpu_s', 0):.0f} s CPU, VISAGE "
            + ", ".join(f"{r} {v:.2f}" for r, v in visage.items()))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
