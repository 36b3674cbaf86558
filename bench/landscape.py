"""Benchmark: one 1D landscape sweep done our way and the reference way, in ONE run.

    python bench/landscape.py --model smollm2-135m-instruct --workload quick --json runs/bench/quick.json

Runs, on the same model object, the same direction tensors, the same prompts and chat format:
  1. ours, early stop: ``weights.apply`` (absolute, from the pristine copy) + ``Engine.evaluate``
     with all prompts in one batch and the keyword early stop (the server's fast path);
  2. ours, no early stop: the same, full length (its verdicts must equal run 1's);
  3. the reference way (bench/reference.py): cumulative ``w += step*d`` on a CPU fp32 copy copied
     to the model, HF ``generate`` batch 4, greedy, full length, judged afterwards;
then prints per-point and per-path tables, the speed ratio, the verdict check, this machine's
decode bounds (matmul throughput and memory bandwidth), and writes everything to --json.
Timings are best read on an otherwise idle machine: the CPU is shared, so run it once.

On a GPU (the paper's models at the paper's settings, random weights of their shapes):

    python bench/landscape.py --model llama3-8b-shape --workload paper-1d --no-reference --json runs/bench/8b.json
    python bench/landscape.py --model llama3-70b-shape --workload paper-1d --device-map auto --max-prompt-tokens 256 \
        --no-reference --json runs/bench/70b-4gpu.json

``--device-map`` (auto, balanced or a JSON file) loads the model the way visage-server does
(a bf16 checkpoint of the shape written once under --workdir, the memory plan, accelerate's map
over every visible GPU) and prints the plan; every direction is perturbed on the device each
tensor lives on. A 7B+ shape's direction is stored "stream" (regenerated tensor by tensor on the
device), never held whole.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import fastpath, hardware, reference, report, shapes
from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.bootstrap import load_planned, planned_engine
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.engine import Engine
from safety_landscape.server.engine.judges import KeywordJudge
from safety_landscape.server.engine.prompts import builtin_prompt_sets, load_prompt_file

WORKLOADS = {  # points, prompts, max new tokens
    "quick": (5, 16, 64),
    "tiny": (3, 4, 16),
    "paper-1d": (21, 80, 512),  # docs/method.md: 21 points x 80 AdvBench prompts x up to 512 tokens
}


def parse_args(argv=None) -> argparse.Namespace:
    p = StrictArgumentParser(
        prog="bench/landscape.py",
        description="Time a 1D landscape sweep our way (absolute weights, one batch, early stop) and the "
        "reference way (cumulative +=, HF generate batch 4, full length) in one run; compare verdicts "
        "and place our tokens/s against this machine's matmul and memory-bandwidth bounds.",
    )
    p.add_argument("--model", default="tiny-random", choices=shapes.MODELS, help="model to sweep (default tiny-random)")
    p.add_argument("--workload", choices=sorted(WORKLOADS), help="preset: quick = 5 points x 16 prompts x 64 tokens; "
                   "paper-1d = 21 x 80 x 512 (a GPU workload); explicit flags override it")
    p.add_argument("--prompts", type=Path, help="prompt file (AdvBench CSV: column goal); default the built-in harmful-mini")
    p.add_argument("--limit", type=int, help="use the first N prompts")
    p.add_argument("--points", type=int, help="grid points over [-0.5, 0.5] (1D)")
    p.add_argument("--max-new-tokens", type=int, help="max new tokens per completion")
    p.add_argument("--batch-size", type=int, help="our batch size (default: all prompts in one batch)")
    p.add_argument("--reference-batch-size", type=int, default=4, help="the reference's batch (4)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--device-map", default="", help="auto, balanced or a JSON file: shard the model over the GPUs as "
                   "visage-server --device-map does (a shape is written once as a bf16 checkpoint under --workdir)")
    p.add_argument("--workdir", type=Path, default=Path("runs/bench/checkpoints"), help="where shape checkpoints go")
    p.add_argument("--max-prompt-tokens", type=int, default=2048, help="the server limit the memory plan assumes")
    p.add_argument("--stream", default="per_tensor", choices=("per_tensor", "reference"),
                   help="random stream of the direction (reference: the authors' CPU stream, redrawn tensor by tensor)")
    p.add_argument("--seed", type=int, default=123, help="seed of the random direction (the reference's 123)")
    p.add_argument("--chat-format", default="auto", help="auto (the tokenizer's template when it has one), or a ChatFormat")
    p.add_argument("--storage", default="auto", choices=("auto", "cache", "regenerate", "stream", "host"),
                   help="direction storage (auto: cache, stream for the 7B+ shapes so their fp32 direction is never "
                   "held whole on the GPU)")
    p.add_argument("--threads", default="auto", help="torch CPU threads: auto = all cores on an idle machine, 1 when "
                   "the load average says the cores are taken (2 OpenMP threads on a busy 2-core machine run 20x slower)")
    p.add_argument("--no-reference", action="store_true", help="skip the reference run (development only)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="after the timed runs, cProfile one more "
                   "early-stop sweep and print the top N functions by own time")
    p.add_argument("--json", type=Path, help="write all figures here")
    args = p.parse_args(argv)
    points, limit, tokens = WORKLOADS.get(args.workload or "", (5, 16, 64))
    args.points = args.points or points
    args.limit = args.limit or limit
    args.max_new_tokens = args.max_new_tokens or tokens
    if args.points < 2:
        p.error("--points must be >= 2")
    return args


def server_engine(args: argparse.Namespace, limits: Limits, storage: str) -> Engine:
    """The engine as visage-server builds it (memory plan, device map), for ``--device-map``."""
    folder = shapes.shape_checkpoint(args.model, args.workdir) if args.model in shapes.SHAPES else Path(args.model)
    config = ServerConfig(model=str(folder), device=args.device, dtype="bfloat16", device_map=args.device_map,
                          direction_storage=storage, limits=limits)
    loaded, plan = load_planned(config)
    print("# memory plan\n" + plan.table())
    return planned_engine(config, loaded, plan)


def choose_threads(value: str) -> int:
    cpus = os.cpu_count() or 1
    if value != "auto":
        return max(1, int(value))
    load = os.getloadavg()[0]
    busy = int(load + 0.5)  # runnable processes besides us, roughly
    threads = max(1, min(cpus, cpus - busy)) if busy else cpus
    print(f"# threads: {threads} (1-minute load average {load:.1f} on {cpus} CPUs; --threads N to force)")
    return threads


def grid(points: int) -> list[float]:
    return [round(-0.5 + i / (points - 1), 12) for i in range(points)]


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    prompt_set = load_prompt_file(args.prompts) if args.prompts else builtin_prompt_sets()["harmful-mini"]
    prompt_set = prompt_set.head(args.limit)
    n = len(prompt_set)
    batch = args.batch_size or n
    storage = args.storage if args.storage != "auto" else ("stream" if args.model in shapes.GPU_ONLY else "cache")
    limits = Limits(max_batch_size=batch, max_new_tokens=max(1024, args.max_new_tokens), max_prompts_per_request=max(1024, n),
                    max_prompt_tokens=args.max_prompt_tokens)
    if args.device_map:
        engine = server_engine(args, limits, storage)
        loaded = engine.loaded
    else:
        loaded = shapes.load(args.model, device=args.device)
        engine = Engine(loaded, limits=limits, direction_storage=storage)
    device = loaded.device
    fmt = ChatFormat(args.chat_format) if args.chat_format != "auto" else (
        ChatFormat.TOKENIZER if engine.tokenizer_facts.has_chat_template else ChatFormat.NONE
    )
    held, _ = engine.create_direction(RandomSpec(seed=args.seed, stream=args.stream))
    coefs = grid(args.points)
    encoded = engine.evaluator.encode(prompt_set.prompts, None, fmt)
    params = engine.weights.params
    weight_bytes = sum(p.numel() * p.element_size() for _, p in params)
    machine = hardware.describe_machine(device)
    print(f"# {args.model}: {engine.parameter_count / 1e6:.1f}M parameters, {loaded.dtype}, {device}; "
          f"{machine.cpu_model}, {machine.logical_cpus} CPUs, torch threads {machine.torch_threads}, GPU {machine.gpu}")
    print(f"# workload: {args.points} points in [-0.5, 0.5] x {n} prompts ({prompt_set.name}) x {args.max_new_tokens} "
          f"new tokens; ours batch {batch}, reference batch {args.reference_batch_size}; chat format {fmt.value}")

    rates = hardware.measure_rates(device, loaded.dtype, gemm_shape=hardware.dominant_linear(loaded.model), batch=batch)
    bounds = hardware.decode_bounds(rates, parameters=engine.parameter_count, weight_bytes=weight_bytes, batch=batch)

    engine.warm_up()
    runs: dict[str, dict] = {name: {"wall_s": 0.0, "peak_bytes": 0} for name in ("ours", "ours-full", "reference")}

    def timed(name, fn):
        report.reset_peak(device)
        t0 = time.perf_counter()
        out = fn()
        runs[name]["wall_s"] += time.perf_counter() - t0
        runs[name]["peak_bytes"] = max(runs[name]["peak_bytes"], report.peak_bytes(device))
        return out

    sweep = None
    if not args.no_reference:
        sweep = reference.ReferenceSweep(
            loaded.model, loaded.tokenizer, params, reference.direction_source(engine.weights, held.id),
            batch_size=args.reference_batch_size,
        )
        sweep.generate(encoded[:1], 2)  # warm HF generate up (untimed), as ours was
    judge = KeywordJudge()
    # Interleaved point by point, so a change in the load of this shared machine hits every path alike.
    early, full, ref_points = [], [], [] if sweep else None
    for c in coefs:
        ours = functools.partial(fastpath.run_fast, engine, held.id, [c], prompt_set, fmt, args.max_new_tokens)
        early += timed("ours", functools.partial(ours, early_stop=True))
        full += timed("ours-full", functools.partial(ours, early_stop=False))
        if sweep is not None:
            ref_points.append(timed("reference", functools.partial(sweep.run_point, c, encoded, args.max_new_tokens, judge)))
            reference.mark_overwritten(engine.weights)
    if sweep is not None:
        reference.restore_pristine(engine.weights)
        del sweep
    check = report.check_verdicts(early, full, ref_points)

    summary = {"ours": fastpath.summarise(early), "ours-full": fastpath.summarise(full)}
    if ref_points:
        summary["reference"] = reference.summarise(ref_points)
    for name, s in summary.items():
        s.update(runs[name])
        gen_s = s.get("prefill_s", 0.0) + s.get("decode_s", 0.0) or s.get("generate_s", 0.0)
        s["tokens_per_s"] = s["computed_tokens"] / gen_s if gen_s else 0.0
        if "decode_s" in s:
            decode_tokens = s["computed_tokens"] - n * len(coefs)  # the first token of each row comes from prefill
            s["decode_tokens_per_s"] = decode_tokens / s["decode_s"] if s["decode_s"] else 0.0

    print()
    print("## per point (seconds; ASR in %)")
    rows = []
    for i, c in enumerate(coefs):
        e, f = early[i], full[i]
        r = ref_points[i] if ref_points else None
        rows.append([
            f"{c:+.3f}", e.apply_seconds, e.prefill_seconds, e.decode_seconds, e.judge_seconds, e.seconds,
            f.seconds, r.apply_seconds if r else "-", r.seconds if r else "-",
            e.asr, f.asr, r.asr if r else "-", e.tokens_saved,
            sum(a != b for a, b in zip(f.jailbroken, r.jailbroken, strict=True)) if r else "-",
            f"{r.max_abs_drift:.1e}" if r else "-",
        ])
    print(report.fmt_table(
        ["a", "apply", "prefill", "decode", "judge", "ours", "ours-full", "ref apply", "ref", "ASR ours", "ASR full",
         "ASR ref", "saved tok", "diff verdicts", "ref drift"], rows))

    print()
    print("## per path")
    rows = []
    for name, s in summary.items():
        rows.append([
            name, s["total_s"], s["apply_s"], s.get("prefill_s", "-"), s.get("decode_s", s.get("generate_s")),
            s["judge_s"], s["computed_tokens"], s["tokens_per_s"], report.mib(s["peak_bytes"]),
        ])
    print(report.fmt_table(["path", "total s", "apply s", "prefill s", "decode/gen s", "judge s", "tokens run",
                            "tokens/s", "peak MiB"], rows))
    print(f"greedy steps picked by the screened LM head (greedy_head.py): ours {summary['ours']['screened_steps']}, "
          f"ours-full {summary['ours-full']['screened_steps']} (0: the plain fp32 head ran)")
    ratio = summary["reference"]["total_s"] / summary["ours"]["total_s"] if ref_points else None
    if ratio:
        print(f"\nratio reference / ours = {ratio:.2f}x   (reference / ours-full = "
              f"{summary['reference']['total_s'] / summary['ours-full']['total_s']:.2f}x)")

    print("\n## verdicts")
    print(f"ours early stop vs ours full length: {'IDENTICAL' if check.early_stop_equals_full else 'DIFFERENT'} "
          f"({len(check.early_stop_mismatches)} mismatches; verdicts and matched keywords over {n * len(coefs)})")
    if ref_points:
        print(f"ours (full) vs reference: {check.differing_verdicts} of {check.compared} verdicts differ; "
              f"{check.differing_texts} completions differ in text")
        for d in check.disagreements[:10]:
            print(f"  a={d.coefficient:+.3f} prompt {d.prompt}: ours jailbroken={d.ours_jailbroken}, reference "
                  f"jailbroken={d.reference_jailbroken}; texts part at char {d.first_text_difference}; {d.reason}")

    print("\n## hardware bounds (decode)")
    print(f"matmul {rates.matmul_gflops:.1f} GFLOP/s ({rates.matmul_size}^2, {rates.dtype}); decode-shaped GEMM "
          f"{rates.decode_gemm_gflops:.1f} GFLOP/s (batch {batch}); copy bandwidth {rates.copy_gb_per_s:.1f} GB/s")
    print(f"matmul bound: {bounds.matmul_tokens_per_s:.0f} tokens/s (= GFLOP/s / 2N, N = {engine.parameter_count:,})")
    print(f"memory bound: step >= {bounds.memory_step_seconds * 1e3:.1f} ms ({weight_bytes / 1e6:.0f} MB of weights) "
          f"-> {bounds.memory_tokens_per_s:.0f} tokens/s at batch {batch}")
    decode_gemm_tps = rates.decode_gemm_gflops * 1e9 / (2 * engine.parameter_count)
    print(f"decode-shaped GEMM rate -> {decode_gemm_tps:.0f} tokens/s (what batch-{batch} matmuls reach here)")
    # The model's own matmuls at this workload's shapes: a decode step at `batch` rows, and each
    # batch's prefill (its tokens through the body, its last positions through the LM head).
    batches = -(-n // batch) * len(coefs)
    prefill_rows = max(1, round(summary["ours"]["prefill_tokens"] / batches))
    decode_floor = hardware.model_matmul_seconds(loaded.model, batch)
    prefill_floor = hardware.model_matmul_seconds(loaded.model, prefill_rows, head_rows=min(batch, n))
    print(f"model-shaped matmul floor: a decode step at batch {batch} {decode_floor.seconds * 1e3:.1f} ms, a prefill "
          f"of {prefill_rows} tokens {prefill_floor.seconds * 1e3:.0f} ms (every Linear shape of the model timed "
          f"at those rows; the floor assumes the batch never shrinks)")
    for shape, sec in decode_floor.by_shape.items():
        print(f"    decode {shape}: {sec * 1e3:.2f} ms")
    for name in ("ours", "ours-full"):
        s = summary[name]
        floor_s = batches * prefill_floor.seconds + (s["computed_tokens"] - n * len(coefs)) * decode_floor.seconds / batch
        s["model_matmul_floor_s"] = floor_s
        s["model_matmul_bound_tokens_per_s"] = s["computed_tokens"] / floor_s
        print(f"{name}: {s['tokens_per_s']:.0f} tokens/s (decode only {s['decode_tokens_per_s']:.0f}) = "
              f"{bounds.matmul_tokens_per_s / s['tokens_per_s']:.2f}x below the peak matmul bound, "
              f"{s['model_matmul_bound_tokens_per_s'] / s['tokens_per_s']:.2f}x below the model-shaped matmul bound "
              f"({s['model_matmul_bound_tokens_per_s']:.0f} tokens/s: prefill + decode in {floor_s:.1f} s), "
              f"{bounds.roofline_tokens_per_s / s['tokens_per_s']:.2f}x below min(peak matmul, memory)")

    full_tps = summary["ours-full"]["tokens_per_s"]
    targets = {
        "speedup_ge_5x": bool(ratio and ratio >= 5),
        "early_stop_verdicts_identical": check.early_stop_equals_full,
        "tokens_per_s_within_1_5x_of_peak_matmul_bound": bounds.matmul_tokens_per_s / full_tps <= 1.5,
        "tokens_per_s_within_1_5x_of_model_shaped_matmul_bound":
            summary["ours-full"]["model_matmul_bound_tokens_per_s"] / full_tps <= 1.5,
    }
    if device.type == "cuda":
        targets["apply_lt_50ms"] = max(p.apply_seconds for p in early) < 0.05
        targets["sweep_21_points_lt_2min_extrapolated"] = summary["ours"]["total_s"] / len(coefs) * 21 < 120
    print("\n## targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in targets.items()))

    profile_text = ""
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        fastpath.run_fast(engine, held.id, coefs, prompt_set, fmt, args.max_new_tokens, early_stop=True)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.profile)
        profile_text = buf.getvalue()
        print("\n## profile of ours (early stop), by own time\n" + profile_text)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join(sys.argv),
            "model": args.model,
            "dtype": str(loaded.dtype),
            "machine": machine.as_dict(),
            "workload": {"points": coefs, "prompts": n, "prompt_set": prompt_set.name, "max_new_tokens": args.max_new_tokens,
                         "batch": batch, "reference_batch": args.reference_batch_size, "chat_format": fmt.value},
            "summary": summary,
            "ratio_reference_over_ours": ratio,
            "verdicts": check.as_dict(),
            "rates": rates.as_dict(),
            "bounds": bounds.as_dict(),
            "model_matmul_floor": {"decode": decode_floor.as_dict(), "prefill": prefill_floor.as_dict()},
            "targets": targets,
            "points": {
                "ours": [_point_dict(p) for p in early],
                "ours-full": [_point_dict(p) for p in full],
                "reference": [_point_dict(p) for p in ref_points or []],
            },
            "profile": profile_text,
            "wall_seconds": time.perf_counter() - started,
        }
        args.json.write_text(json.dumps(doc, indent=1))
        print(f"wrote {args.json}")
    print(f"# total wall time {time.perf_counter() - started:.0f} s")
    return 0


def _point_dict(p) -> dict:
    d = dict(p.__dict__)
    d.pop("texts", None)
    return d


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
