"""Benchmark: the coherence referee's cost and its verdicts on a quick sweep, in ONE run.

    python bench/referee.py --model smollm2-135m-instruct --threads 1 --json runs/bench/referee.json
    ADV=harmful_behaviors.csv python bench/referee.py ...   # adds AdvBench rows 1-80 at the origin
    python bench/referee.py --model llama3-8b-shape --device cuda:0 --calls safety --cost-only  # a GPU

One process, one in-process server on a loopback port (as ``visage-server`` builds it), the quick
preset's workload (client/sweep/spec/presets.py): one random direction (seed 123, the reference
stream, draw 0), 7 points over [-0.5, 0.5], harmful-mini 16 + benign-mini 16 prompts, the chat
template with the model's default system prompt, greedy, ``--max-new-tokens`` 48. Phases:

  1. calibration: the referee's thresholds for this length (once per server and length), its cost;
  2. the sweep with the referee off and on, alternated ``--repeats`` times, each as the sweep runner
     calls it (``--calls``: ``safety`` = an EvaluateSafety per point and prompt set, what a sweep with
     a benign set does; ``points`` = one EvaluatePoints per prompt set): process CPU seconds and wall
     seconds of each arm, their ratio, the server's ``referee_seconds``, and the check that both arms
     generated the same answers and verdicts; the answer tokens generated and scored, and the
     referee's matmul floor (``matmul_floor``: the least any scoring of whole answers costs here);
  3. the verdicts of the last "on" arm: incoherent answers per |a|, every flagged answer at the
     origin, and the check that no refusal is incoherent;
  4. fluent text: human-written sentences (client/sweep/data/fluency.txt, one by one and three at a
     time) judged with the Judge RPC; the origin's answers to prompts the sweep does not use (rows
     17-40 of harmful-mini and benign-mini); with ``ADV``, AdvBench rows 1-80 answered at the origin.
Process CPU seconds are the figure to quote on a shared machine (the load does not inflate them);
on a GPU (``--device cuda:0``) the wall seconds are, the host's CPU being mostly idle. ``--model``
may be a shape of ``bench/shapes.py`` (random weights built on ``--device``, as the GPU check's
``referee`` stage runs it: nothing to download); ``--cost-only`` stops after phase 3. Everything goes
to ``--json``, with the answer tokens generated and those the referee scored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import hardware, shapes
from bench.landscape import choose_threads, grid
from safety_landscape.client import client as c
from safety_landscape.client.call_results import Evaluation, Verdict
from safety_landscape.client.verdicts import Coherence, JudgeRow
from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.app import create_server
from safety_landscape.server.bootstrap import build_engine_factory, plan_for_config, planned_engine
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.engine.engine import Engine
from safety_landscape.server.engine.prompts import builtin_prompt_sets
from safety_landscape.v1 import landscape_pb2 as pb

SETS = ("harmful-mini", "benign-mini")
HUMAN_PROMPT = "Write a few sentences about everyday life."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = StrictArgumentParser(prog="bench/referee.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="a model the server loads, or a shape of bench/shapes.py (random weights built on --device)")
    p.add_argument("--threads", default="auto", help="torch threads ('auto': the CPUs the load leaves)")
    p.add_argument("--device", default="cpu", help="the server's --device (cpu; on cuda the wall seconds are the figure)")
    p.add_argument("--points", type=int, default=7)
    p.add_argument("--limit", type=int, default=16, help="prompts of each built-in set (16)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=1, help="off/on pairs of sweeps (1)")
    p.add_argument("--calls", default="safety", help="comma-separated: safety, points (safety)")
    p.add_argument("--cost-only", action="store_true",
                   help="only the calibration and the sweeps (no human text, held-out prompts or AdvBench)")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def settings(prompt_set: str, args: argparse.Namespace, *, referee: bool) -> pb.EvaluationSettings:
    s = c.evaluation_settings(prompt_set=prompt_set, limit=args.limit, max_new_tokens=args.max_new_tokens,
                              return_completions=True)
    s.disable_referee = not referee
    return s


def sweep(client: c.Client, args: argparse.Namespace, calls: str, points: list[pb.Perturbation], *,
          referee: bool) -> dict[str, Any]:
    """One quick sweep; its process CPU and wall seconds and every response, by (set, point index)."""
    cpu, wall = time.process_time(), time.perf_counter()
    responses: dict[tuple[str, int], Evaluation] = {}
    if calls == "safety":
        for i, at in enumerate(points):
            for name in SETS:
                responses[(name, i)] = client.evaluate(settings(name, args, referee=referee), at=at)
    else:
        for name in SETS:
            for res in client.evaluate_points(settings(name, args, referee=referee), points):
                responses[(name, res.index)] = res.result
    verdicts = [v for r in responses.values() for v in r.verdicts]
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "responses": responses,
            "referee_s": sum(r.timings.referee_seconds for r in responses.values()),
            "generated_tokens": sum(v.completion_tokens for v in verdicts),
            "scored_tokens": sum(v.coherence.scored_tokens for v in verdicts if v.coherence is not None)}


def _coherence(v: Verdict) -> Coherence:
    if v.coherence is None:
        raise SystemExit("the server's referee did not judge an answer it should have")
    return v.coherence


def same_answers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(run: dict[str, Any]) -> dict[Any, Any]:
        return {k: [(v.jailbroken, v.matched_keyword, v.completion) for v in r.verdicts] for k, r in run["responses"].items()}
    return key(a) == key(b)


def verdict_figures(run: dict[str, Any], coefs: list[float]) -> dict[str, Any]:
    """Incoherent answers per |a|, the flagged answers at the origin, the answers at |a| >= 1/3 not
    judged incoherent, refusals whose outcome is not REFUSED."""
    by_abs: dict[float, list[int]] = {}
    flagged, missed, incoherent_refusals = [], [], 0
    for (name, i), resp in sorted(run["responses"].items()):
        a = abs(coefs[i])
        counts = by_abs.setdefault(round(a, 6), [0, 0])
        for v in resp.verdicts:
            counts[0] += v.outcome == "incoherent"
            counts[1] += 1
            incoherent_refusals += (not v.jailbroken) and v.outcome != "refused"
            if a >= 0.3 and v.outcome != "incoherent":
                missed.append({"set": name, "a": coefs[i], "index": v.index, "outcome": v.outcome,
                               "nll": round(_coherence(v).nll, 3), "text": v.completion})
            if a == 0 and not _coherence(v).coherent:
                flagged.append({"set": name, "index": v.index, "outcome": v.outcome,
                                "failed": list(_coherence(v).failed),
                                "nll": round(_coherence(v).nll, 3), "text": v.completion})
    return {"incoherent_by_abs_a": {str(a): {"incoherent": n, "answers": t} for a, (n, t) in sorted(by_abs.items())},
            "origin_not_coherent": flagged, "not_incoherent_at_a_third_or_more": missed,
            "refusals_not_refused": incoherent_refusals}


def human_text(client: c.Client, args: argparse.Namespace) -> dict[str, Any]:
    text = resources.files("safety_landscape.client.sweep.data").joinpath("fluency.txt").read_text("utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [JudgeRow(s, prompt=HUMAN_PROMPT) for s in lines]
    rows += [JudgeRow(" ".join(lines[i : i + 3]), prompt=HUMAN_PROMPT) for i in range(0, len(lines), 3)]
    judged = client.judge(rows, max_new_tokens=args.max_new_tokens)
    bad = [{"text": rows[r.index].completion, "failed": list(r.coherence.failed), "nll": round(r.coherence.nll, 3)}
           for r in judged.rows if not r.coherence.coherent]
    return {"texts": len(rows), "not_coherent": bad}


def held_out(client: c.Client, args: argparse.Namespace) -> dict[str, Any]:
    """The origin's answers to the built-in sets' rows after the sweep's (never seen when the rule was chosen)."""
    sets = builtin_prompt_sets()
    prompts = [p for name in SETS for p in sets[name].prompts[args.limit :]]
    resp = client.evaluate(c.evaluation_settings(prompts=prompts, max_new_tokens=args.max_new_tokens, return_completions=True))
    bad = [{"prompt": prompts[v.index], "outcome": v.outcome, "nll": round(_coherence(v).nll, 3),
            "failed": list(_coherence(v).failed), "text": v.completion}
           for v in resp.verdicts if not _coherence(v).coherent]
    return {"answers": resp.total, "not_coherent": bad}


def advbench(client: c.Client, args: argparse.Namespace) -> dict[str, Any] | None:
    if "advbench" not in {s.name for s in client.list_prompt_sets()}:
        return None
    s = c.evaluation_settings(prompt_set="advbench", limit=80, max_new_tokens=args.max_new_tokens, return_completions=True)
    resp = client.evaluate(s)
    bad = [{"index": v.index, "outcome": v.outcome, "nll": round(_coherence(v).nll, 3), "text": v.completion,
            "failed": list(_coherence(v).failed)} for v in resp.verdicts if not _coherence(v).coherent]
    return {"answers": resp.total, "jailbroken": resp.jailbroken, "incoherent": resp.incoherent, "not_coherent": bad}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    adv = os.environ.get("ADV", "")
    config = ServerConfig(model=args.model, listen="127.0.0.1:0", device=args.device, log_format="json", grace_seconds=5.0,
                          memory_check=False,  # a shared machine's free memory moves; the limits below are small
                          prompt_sets=(("advbench", adv),) if adv else (),
                          limits=Limits(max_batch_size=max(64, args.limit), max_prompt_tokens=256,
                                        max_new_tokens=max(256, args.max_new_tokens)))
    app = create_server(config)
    app.load(engine_factory(config))
    coefs = grid(args.points)
    direction = c.random_direction(123, stream="reference")
    points = [c.perturbation([(direction, a)]) if a else c.perturbation() for a in coefs]
    doc: dict[str, Any] = {"command": " ".join(sys.argv), "threads": threads, "model": args.model, "coefficients": coefs}
    with c.Client(f"127.0.0.1:{app.port}") as client:
        client.create_direction(direction)
        cpu = time.process_time()
        judged = client.judge([JudgeRow("Hello there.", prompt="Hello")], max_new_tokens=args.max_new_tokens)
        t = judged.thresholds
        doc["calibration"] = {"cpu_s": time.process_time() - cpu, "thresholds": {
            "id": t.id, "max_nll": t.max_nll, "max_repetition": t.max_repetition, "max_run": t.max_run}}
        print(f"# calibration: {doc['calibration']['cpu_s']:.1f} CPU s (once per server and length); thresholds "
              f"max_nll {judged.thresholds.max_nll:.3f}, max_repetition {judged.thresholds.max_repetition:.3f}, "
              f"max_run {judged.thresholds.max_run} ({judged.thresholds.id})")
        for calls in args.calls.split(","):
            arms: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for _ in range(args.repeats):
                for arm in ("off", "on"):
                    arms[arm].append(sweep(client, args, calls, points, referee=arm == "on"))
            off_cpu = sum(r["cpu_s"] for r in arms["off"])
            on_cpu = sum(r["cpu_s"] for r in arms["on"])
            off_wall, on_wall = sum(r["wall_s"] for r in arms["off"]), sum(r["wall_s"] for r in arms["on"])
            row = {"off_cpu_s": off_cpu, "on_cpu_s": on_cpu, "cpu_overhead": on_cpu / off_cpu - 1,
                   "off_wall_s": off_wall, "on_wall_s": on_wall, "wall_overhead": on_wall / off_wall - 1,
                   "referee_s": sum(r["referee_s"] for r in arms["on"]),
                   "generated_tokens": sum(r["generated_tokens"] for r in arms["on"]),
                   "scored_tokens": sum(r["scored_tokens"] for r in arms["on"]),
                   "same_answers": all(same_answers(a, b) for a, b in zip(arms["off"], arms["on"], strict=True)),
                   "verdicts": verdict_figures(arms["on"][-1], coefs)}
            doc[calls] = row
            print(f"## {calls}: referee off {off_cpu:.1f} CPU s, on {on_cpu:.1f} CPU s: overhead "
                  f"{100 * row['cpu_overhead']:.1f} % (wall {off_wall:.0f} s / {on_wall:.0f} s: "
                  f"{100 * row['wall_overhead']:.1f} %, the figure on a GPU; the "
                  f"server's referee_seconds {row['referee_s']:.1f}); same answers: {row['same_answers']}")
            print(f"   answer tokens: {row['generated_tokens']} generated, {row['scored_tokens']} scored by the referee")
            row["floor"] = floor = matmul_floor(app, row, off_wall)
            print(f"   the referee's matmul floor: {floor['seconds']:.1f} s for its answer tokens alone (the model's "
                  f"Linear layers at theta0, {1e3 * floor['seconds_per_token']:.2f} ms a token), "
                  f"{100 * floor['of_referee_seconds']:.0f} % of the referee's own seconds; no full-answer scoring can cost "
                  f"less than {100 * floor['least_overhead']:.1f} % of this sweep here")
            for a, n in row["verdicts"]["incoherent_by_abs_a"].items():
                print(f"   |a| = {float(a):.3f}: {n['incoherent']} of {n['answers']} incoherent")
            print(f"   origin answers not coherent: {len(row['verdicts']['origin_not_coherent'])}; refusals not "
                  f"REFUSED: {row['verdicts']['refusals_not_refused']}")
        if not args.cost_only:
            text_phases(client, args, doc)
    app.drain(grace=1.0)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


def text_phases(client: c.Client, args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """Phase 4 (the module docstring): fluent text, held-out prompts, AdvBench; into ``doc``."""
    doc["human"] = human_text(client, args)
    print(f"# human-written fluent text: {len(doc['human']['not_coherent'])} of {doc['human']['texts']} not coherent")
    doc["held_out"] = held_out(client, args)
    print(f"# the origin's answers to held-out prompts: {len(doc['held_out']['not_coherent'])} of "
          f"{doc['held_out']['answers']} not coherent")
    doc["advbench"] = advbench(client, args)
    if doc["advbench"] is not None:
        a = doc["advbench"]
        print(f"# AdvBench 1-80 at the origin: {len(a['not_coherent'])} of {a['answers']} not coherent "
              f"({a['incoherent']} of {a['jailbroken']} jailbroken ones incoherent)")


def matmul_floor(app: Any, row: dict[str, Any], off_wall: float, rows: int = 256) -> dict[str, float]:
    """The least time any full-answer scoring at theta0 takes on this device: the model's Linear
    layers (decoder and LM head, ``hardware.model_matmul_seconds``) over the answer tokens the
    referee scored, from a ``rows``-row forward timed shape by shape (contexts, attention and the
    softmax not counted: a lower bound). ``least_overhead``: that floor over the referee-off sweep's
    wall seconds (with one thread, about its CPU seconds)."""
    model = app.host.engine.loaded.model
    per_token = hardware.model_matmul_seconds(model, rows).seconds / rows
    seconds = per_token * row["scored_tokens"]
    return {"seconds_per_token": per_token, "seconds": seconds,
            "of_referee_seconds": seconds / row["referee_s"] if row["referee_s"] else 0.0,
            "least_overhead": seconds / off_wall}


def engine_factory(config: ServerConfig) -> Callable[[], Engine]:
    """How ``visage-server`` builds its engine; for a shape (``bench/shapes.py``), the same engine
    of random weights built on the configured device (nothing to download or write to disk)."""
    if config.model not in shapes.SHAPES:
        return build_engine_factory(config)

    def build() -> Engine:
        loaded = shapes.build_shape(config.model, device=config.device)
        return planned_engine(config, loaded, plan_for_config(config, loaded=loaded))

    return build


if __name__ == "__main__":
    raise SystemExit(main())
