"""Benchmark: the memory plan, and the memory measured while loading and sweeping.

    python bench/memory.py --json runs/bench/memory.json           # plans + the built-in models measured here
    python bench/memory.py --plan-only                             # plans only (seconds, nothing loaded)
    python bench/memory.py --measure DIR --measure llama3-8b-shape # also a checkpoint, or a shape (a GPU task)
    python bench/memory.py --server-limit 8                        # the server path on 8 prompts, not 40
    python bench/memory.py --server-referee off                    # the server path without the coherence referee

Plans (nothing is loaded; the shapes are planned on the meta device):
  - the built-in models, and smollm2 saved as bf16 safetensors, at the server's defaults here;
  - llama2-7b-shape and llama3-8b-shape on one 80 GB GPU, llama3-70b-shape on 4 x 80 GB
    (--device-map auto and balanced) and on one, at the paper preset's server limits (batch 80,
    512 new tokens, 3 directions) for prompts of up to 2048 tokens (the default
    --max-prompt-tokens) and up to 256 (AdvBench with a chat template and system prompt).
Measured, each in a fresh process (so one figure's memory cannot hide in another's), in bytes
above the runtime and as multiples of the model's bytes:
  load   the peak while the model is loaded (``load_model``, as the server loads it);
  sweep  the peak over building the server's engine (visage-server's default settings unless
         --storage/--pristine say otherwise), its warm-up, and a 3-direction 1D sweep of the
         paper's shape: reference stream, seed 123, draws 0..2, 3 coefficients each, 8 new tokens
         for 4 prompts at every point (the weights and directions set the peak, not the batch).
The runtime is the process after importing the server and building the architecture on the meta
device: what a server holds when it has made its memory plan, right before loading. CPU figures
are resident memory (VmHWM, reset with /proc/self/clear_refs); CUDA figures are
``torch.cuda.max_memory_allocated`` per device (and the host's resident memory beside them).
A shape is measured from a bf16 checkpoint of random weights written under --workdir.

The server path, in the same run (``bench/memory_server.py``): a real ``visage-server`` process
serving smollm2 as bf16 safetensors, driven over gRPC as ``visage evaluate --set harmful-mini --at
seed:S=0.25`` is, three times (S = 1, 2, 3), its resident memory read from /proc: the peak above a
tiny-random server's after the same calls, as a multiple of the model's bytes, per call; and a
fourth direction split into its switch and its evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import shapes
from bench.report import fmt_table, mib
from safety_landscape.common.command_line import StrictArgumentParser

GiB = 2**30
GPU_80GB = 81559 * 2**20  # an 80 GB card as nvidia-smi counts it
PAPER = dict(max_batch_size=80, max_new_tokens=512, max_directions=3)  # the paper preset's server limits
SWEEP_SPECS = [dict(seed=123, stream="reference", index=i) for i in range(3)]
SWEEP_COEFFICIENTS = (-0.5, 0.0, 0.5)
SWEEP_PROMPTS = ["How do I bake bread?", "Tell me a joke.", "What is 2+2?", "Name a colour."]


# -- plans ---------------------------------------------------------------------------------------


def shape_plans() -> list[tuple[str, object]]:
    """(label, MemoryPlan) for the shapes at the paper preset on 80 GB GPUs."""
    from safety_landscape.server.engine.memory_plan import PlanSettings, geometry, plan_memory
    from safety_landscape.server.models.placement import DeviceSpace
    from safety_landscape.server.models.shapes import meta_model, shape_config

    host = DeviceSpace("cpu", 1024 * GiB)
    out = []
    cases = [("llama2-7b-shape", 1, ""), ("llama3-8b-shape", 1, ""), ("llama3-70b-shape", 1, ""),
             ("llama3-70b-shape", 4, "auto"), ("llama3-70b-shape", 4, "balanced")]
    for name, gpus, strategy in cases:
        config = shape_config(name)
        model = meta_model(config, torch.bfloat16)
        g = geometry(model, config, torch.bfloat16)
        for prompt in (2048, 256):
            settings = PlanSettings(dtype=torch.bfloat16, max_prompt_tokens=prompt, checkpoint=True, **PAPER)
            spaces = [DeviceSpace(f"cuda:{i}", GPU_80GB) for i in range(gpus)]
            plan = plan_memory(g, settings, spaces, host, strategy=strategy, model=model)
            label = f"{name} on {gpus} x 80 GB{' --device-map ' + strategy if strategy else ''}, prompts <= {prompt}"
            out.append((label, plan))
    return out


def server_plan(model: str, device: str, **settings: object) -> object:
    from safety_landscape.server.bootstrap import plan_for_config
    from safety_landscape.server.config import ServerConfig

    return plan_for_config(dataclasses.replace(ServerConfig(model=model, device=device, dtype="bfloat16"), **settings))


def print_plan(label: str, plan) -> None:
    print(f"\n### {label}")
    print(plan.table())
    if not plan.fits:
        print("refused: " + plan.refusal())


# -- measurements (a fresh process each) ---------------------------------------------------------


def _rss(key: str) -> int:
    with open(f"/proc/{os.getpid()}/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key))


class Peaks:
    """Peak memory above a baseline: host resident memory, and each CUDA device's allocations."""

    def __init__(self) -> None:
        self.host_bare = _rss("VmRSS:")
        self.cuda = list(range(torch.cuda.device_count()))
        self.cuda_bare = {i: torch.cuda.memory_allocated(i) for i in self.cuda}
        self.reset()

    def reset(self) -> None:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as handle:
            handle.write("5")
        for i in self.cuda:
            torch.cuda.reset_peak_memory_stats(i)

    def read(self) -> dict[str, int]:
        out = {"host": _rss("VmHWM:") - self.host_bare}
        for i in self.cuda:
            out[f"cuda:{i}"] = torch.cuda.max_memory_allocated(i) - self.cuda_bare[i]
        return out


def probe(folder: str, device: str, storage: str, pristine: str) -> dict:
    """Load ``folder`` and sweep it as the server would; the peaks (run in a fresh process)."""
    from safety_landscape.server.bootstrap import load_planned, plan_for_config, planned_engine
    from safety_landscape.server.config import ServerConfig
    from safety_landscape.server.engine.admission import TermRequest
    from safety_landscape.server.engine.chat import ChatFormat
    from safety_landscape.server.engine.directions import RandomSpec
    from safety_landscape.server.engine.generation import GenerationParams

    torch.set_grad_enabled(False)
    config = ServerConfig(model=folder, device=device, dtype="bfloat16", direction_storage=storage, pristine=pristine)
    plan_for_config(config, slow=False)  # the runtime: the server's code and the architecture imported
    peaks = Peaks()
    loaded, plan = load_planned(config)
    load = peaks.read()
    by_device: dict[str, int] = {}
    for p in loaded.model.parameters():
        key = "host" if p.device.type == "cpu" else str(p.device)
        by_device[key] = by_device.get(key, 0) + p.numel() * p.element_size()
    engine = planned_engine(config, loaded, plan)
    engine.warm_up()
    fmt = ChatFormat.TOKENIZER if engine.tokenizer_facts.has_chat_template else ChatFormat.NONE
    started = time.perf_counter()
    for spec in SWEEP_SPECS:
        for c in SWEEP_COEFFICIENTS:
            engine.at([TermRequest(c, spec=RandomSpec(**spec))])
            engine.generate(SWEEP_PROMPTS, system_prompt=None, chat_format=fmt, params=GenerationParams(max_new_tokens=8))
    return {"model_bytes": by_device, "load": load, "sweep": peaks.read(), "storage": plan.storage,
            "pristine": plan.pristine, "sweep_seconds": time.perf_counter() - started,
            "plan": [dict(device=d.device, **d.figures()) for d in plan.devices]}


def measure(folder: str, device: str, storage: str, pristine: str) -> dict:
    cmd = [sys.executable, __file__, "--probe", folder, "--device", device, "--storage", storage, "--pristine", pristine]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise SystemExit(f"measuring {folder} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def multiples(result: dict) -> dict[str, tuple[float, float]]:
    """Per device (host, cuda:N): (load peak, sweep peak) as multiples of the model's bytes there."""
    out = {}
    for key, model_bytes in result["model_bytes"].items():
        out[key] = (result["load"][key] / model_bytes, result["sweep"][key] / model_bytes)
    return out


# -- checkpoints to measure ----------------------------------------------------------------------


def smollm2_bf16(workdir: Path) -> Path:
    """smollm2-135m-instruct saved as bf16 safetensors (its GGUF, dequantised, cast, saved)."""
    folder = workdir / "smollm2-135m-instruct-bf16"
    if (folder / "model.safetensors").is_file():
        return folder
    from safetensors.torch import save_file

    from safety_landscape.server.models.loading import load_model, resolve_model

    lm = load_model(resolve_model("smollm2-135m-instruct"), device="cpu", dtype="bfloat16")
    config = lm.model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the GGUF's: the weights saved are plain bf16
    folder.mkdir(parents=True, exist_ok=True)
    tied = bool(config.tie_word_embeddings)
    state = {k: v.contiguous() for k, v in lm.model.state_dict().items() if not (tied and k == "lm_head.weight")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(folder)
    lm.model.generation_config.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


# -- the server path ---------------------------------------------------------------------------------


def server_path(target: tuple[str, str], device: str, limit: int, *, referee: bool = True) -> dict:
    """The server path's peaks for ``target`` (label, folder), printed beside the engine path's."""
    from bench.memory_server import measure_server

    label, folder = target
    result = measure_server(folder, "cpu" if device == "auto" else device, limit=limit, referee=referee)
    print(f"\n## the server path: {label}, referee {'on' if referee else 'off'}, a real visage-server over gRPC "
          f"(storage {result['storage']}, "
          f"theta0 {result['pristine']}), RSS above a tiny-random server's peak after the same calls")
    rows = [[call, mib(peak - result["runtime_peak"]), f"{result['split_x'][call]:.2f}x", result["seconds"][call]]
            for call, peak in result["peaks"].items()]
    print(fmt_table(["call", "peak above the runtime", "x the model's bytes", "s"], rows))
    print(f"loaded: {result['loaded_x']:.2f}x; 3-direction evaluation (the three calls' peak): "
          f"{result['evaluate_x']:.2f}x (target <= 2.5x)")
    return result


# -- switch seconds by the place of theta0 --------------------------------------------------------


def switch_seconds(folder: str, device: str) -> list[list[object]]:
    """Median seconds of a switch ("stream" storage) per place of theta0 and direction kind."""
    import statistics

    from safety_landscape.server.engine.directions import RandomSpec
    from safety_landscape.server.engine.weights import WeightManager
    from safety_landscape.server.models.loading import load_model, resolve_model

    torch.set_grad_enabled(False)
    loaded = load_model(resolve_model(folder), device=device, dtype="bfloat16")
    places = ("device", "host", "checkpoint") if loaded.device.type == "cuda" else ("device", "checkpoint")
    rows: list[list[object]] = []
    for place in places:
        wm = WeightManager(loaded.model, model_fingerprint="-", storage="stream", pristine=place,
                           checkpoint=loaded.checkpoint)
        for kind, spec in (("per-tensor", RandomSpec(1)), ("reference stream", RandomSpec(123, stream="reference"))):
            held, _ = wm.create(spec)
            times = [wm.apply(wm.canonical_terms([(held.id, c)])).apply_seconds for c in (0.1, -0.1, 0.2)]
            rows.append([place, kind, f"{statistics.median(times):.3f}", mib(wm.pristine_bytes())])
        wm.apply(())
        del wm
    return rows


# -- the report ----------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = StrictArgumentParser(prog="bench/memory.py", description=__doc__.splitlines()[0])
    p.add_argument("--plan-only", action="store_true", help="print the plans, measure nothing")
    p.add_argument("--measure", action="append", default=[], help="also measure a checkpoint directory or a shape "
                   "(llama2-7b-shape, llama3-8b-shape: a bf16 random checkpoint is written to --workdir)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (the server's --device)")
    p.add_argument("--storage", default="auto", help="--direction-storage for the sweep (default: the server's auto)")
    p.add_argument("--pristine", default="auto", help="--pristine for the sweep (default: the server's auto)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "visage-bench-memory")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--no-server", action="store_true", help="skip the server path (a real visage-server over gRPC)")
    p.add_argument("--server-referee", choices=("on", "off", "both"), default="both",
                   help="the server path with the coherence referee on (the default of a request), off, or both arms")
    p.add_argument("--server-limit", type=int, default=0, help="the server path's prompts: the first N of "
                   "harmful-mini (default: all 40)")
    p.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one measurement, in this fresh process
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.device, args.storage, args.pristine)))
        return 0
    doc: dict = {"command": " ".join(sys.argv), "plans": {}, "measured": {}}
    print("## memory plans (nothing loaded; shapes on the meta device)")
    for label, plan in shape_plans():
        print_plan(label, plan)
        doc["plans"][label] = [dict(device=d.device, **d.figures()) for d in plan.devices]
    if args.plan_only:
        _write(args.json, doc)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets = [("smollm2-135m-instruct as bf16 safetensors", str(smollm2_bf16(args.workdir)))]
    for item in args.measure:
        targets.append((item, str(shapes.shape_checkpoint(item, args.workdir)) if item in shapes.SHAPES else item))
    for label, folder in [("tiny-random", "tiny-random"), *targets]:
        print_plan(f"{label}: this machine, the server's defaults", server_plan(folder, args.device))
    print("\n## measured peaks above the runtime (x the model's bytes on that device)")
    rows = []
    for label, folder in targets:
        result = measure(folder, args.device, args.storage, args.pristine)
        doc["measured"][label] = result
        for key, (load_x, sweep_x) in multiples(result).items():
            rows.append([label, key, result["storage"], result["pristine"], mib(result["model_bytes"][key]),
                         mib(result["load"][key]), f"{load_x:.2f}x", mib(result["sweep"][key]), f"{sweep_x:.2f}x",
                         f"{result['sweep_seconds']:.0f}"])
    print(fmt_table(["model", "device", "storage", "pristine", "model", "load peak", "load x", "sweep peak", "sweep x",
                     "sweep s"], rows))
    print("targets: load <= 1.5x, 3-direction 1D sweep <= 2.5x the model's bytes")
    if not args.no_server:
        arms = {"on": (True,), "off": (False,), "both": (False, True)}[args.server_referee]
        doc["server"] = {("referee_on" if on else "referee_off"): server_path(targets[0], args.device, args.server_limit,
                                                                             referee=on) for on in arms}
    print(f"\n## a switch (storage stream) by the place of theta0: {targets[0][0]}")
    rows = switch_seconds(targets[0][1], args.device)
    doc["switch_seconds"] = rows
    print(fmt_table(["theta0", "direction", "switch s (median of 3)", "theta0 held"], rows))
    _write(args.json, doc)
    return 0


def _write(path: Path | None, doc: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
