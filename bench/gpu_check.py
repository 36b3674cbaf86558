"""The one prepared GPU check (``scripts/gpu_check.sh`` runs it): what the first machine with a GPU
should measure, in one command, within 10 minutes on one GPU, every figure in ONE JSON file.

Stages, each in a fresh process under its own time limit (one that fails or overruns is recorded
as such, and the next one still runs):
  tests        the ``gpu``-marked tests (``pytest -m gpu`` on the modules holding them): a bf16 load straight onto the
               GPU, regenerated directions bit-identical to cached ones, a sweep's peak within the
               memory plan, a device map over two GPUs (skipped on one);
  landscape    bench/landscape.py's paper workload on the Llama-3-8B shape (its configuration,
               random bf16 weights built on the GPU: nothing to download), cut to fit: 5 points x
               80 prompts x 256 new tokens (the paper: 21 x 80 x 512), ours with and without the
               early stop (the reference path needs a 32 GB fp32 host copy and hours: left out);
  referee      bench/referee.py on that shape through a real server (in this process's stage, on the GPU):
               the quick sweep's calls (7 points, harmful-mini 16 + benign-mini 16, 48 new tokens, an
               EvaluateSafety per point and set) with the coherence referee off and on, side by side;
               its wall-time overhead against the issue's target (at most 10 %), the calibration's
               cost, and that both arms gave the same answers and the referee scored every answer
               token that was generated;
  memory-plan  the server's memory plan for that shape at the paper's batch (80 prompts), checked
               against torch.cuda's own figures: the weights, theta0's copy, the directions, the
               peak of a 3-direction sweep whose prompts fill ``max_prompt_tokens``, and what the
               CUDA runtime takes outside torch's allocator, kind by kind and in total.
Output: OUT/gpu_check.json (OUT: --out, else $OUT, else runs/gpu-check), rewritten after every
stage. Exit 0: every stage ran and every check held; 1: one did not (the JSON says which); 2:
this machine cannot run it (no CUDA device, a package missing: one line saying what to do).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safety_landscape.common.command_line import StrictArgumentParser

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(ROOT))

EXIT_OK, EXIT_CHECK_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
SHAPE = "llama3-8b-shape"
PAPER_PROMPTS = 80
REFEREE_TARGET = 0.10  # issue 25: the coherence referee costs at most 10 % of a quick sweep's time
# module -> distribution: what the check imports besides torch (a bare GPU image lacks some: carry
# them as wheels, scripts/gpu_check.sh --fetch-wheels).
REQUIRED = {
    "grpc": "grpcio", "google.protobuf": "protobuf", "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection", "structlog": "structlog", "tenacity": "tenacity",
    "transformers": "transformers", "tokenizers": "tokenizers", "safetensors": "safetensors",
    "accelerate": "accelerate", "prometheus_client": "prometheus-client", "pytest": "pytest",
}


@dataclass(frozen=True)
class Workload:
    """The landscape stage's cut of the paper's 1D workload, and the memory stage's limits."""

    points: int = 5
    prompts: int = PAPER_PROMPTS
    new_tokens: int = 256
    memory_prompt_tokens: int = 256
    memory_new_tokens: int = 64


@dataclass(frozen=True)
class Stage:
    name: str
    command: list[str]
    timeout_s: int
    output: Path  # the JSON (or JUnit XML) the stage writes


@dataclass
class StageResult:
    status: str  # ok | failed | timeout
    seconds: float
    returncode: int | None
    figures: dict[str, object] = field(default_factory=dict)
    output_tail: str = ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = StrictArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="output folder (default: $OUT, else runs/gpu-check)")
    p.add_argument("--points", type=int, default=Workload.points, help="landscape points over [-0.5, 0.5] (default 5)")
    p.add_argument("--new-tokens", type=int, default=Workload.new_tokens, help="landscape new tokens (default 256)")
    p.add_argument("--tests-timeout", type=int, default=120, help="seconds for the gpu tests (default 120)")
    p.add_argument("--referee-timeout", type=int, default=110, help="seconds for the referee's cost (default 110)")
    p.add_argument("--landscape-timeout", type=int, default=240, help="seconds for the landscape (default 240)")
    p.add_argument("--memory-timeout", type=int, default=100, help="seconds for the memory-plan check (default 100)")
    p.add_argument("--dry-run", action="store_true", help="print the stages and their limits; run nothing")
    p.add_argument("--stage", choices=("memory-plan",), help=argparse.SUPPRESS)  # internal: one stage, this process
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.points < 2 or args.new_tokens < 1:
        p.error("--points must be >= 2 and --new-tokens >= 1")
    args.out = args.out or Path(os.environ.get("OUT") or ROOT / "runs" / "gpu-check")
    return args


# -- can this machine run it? --------------------------------------------------------------------

def preflight(wheels: Path, site: Path) -> str | None:
    """Why this Python on this machine cannot run the check (one line), or None. The wheels in
    ``wheels`` (if any) are installed into ``site`` first, which this process and the stages read."""
    where = sys.executable
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed in {where}: set PYTHON to the Python that has CUDA's torch"
    import torch

    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        return (f"no CUDA device visible to {where} (torch {torch.__version__}, {build}): run it on a machine with an "
                "NVIDIA GPU, or set PYTHON to a Python whose torch has CUDA")
    problem = install_wheels(wheels, site)
    if problem is not None:
        return problem
    missing = sorted({dist for module, dist in REQUIRED.items() if _absent(module)})
    if missing:
        return (f"missing Python packages: {', '.join(missing)}; carry them as wheels (scripts/gpu_check.sh "
                "--fetch-wheels on a machine with network; docs/performance.md, 'The GPU check')")
    try:
        import safety_landscape.v1.landscape_pb2  # checks the protobuf runtime's version
        import safety_landscape.v1.landscape_pb2_grpc  # noqa: F401  (and grpcio's)
    except Exception as exc:  # an ImportError or the stubs' own version check
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the generated gRPC stubs do not import: {first} (carry the pinned wheels: scripts/gpu_check.sh --fetch-wheels)"
    return None


def install_wheels(wheels: Path, site: Path) -> str | None:
    """Install the wheels carried in ``wheels`` into ``site`` (no index, no network) and put it
    first on this process's path and the stages'; or why they do not install (one line)."""
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not found:
        return None
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                           "--no-cache-dir", "--target", str(site), *map(str, found)], capture_output=True, text=True)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.strip().splitlines() or ["?"]
        version = platform.python_version().rsplit(".", 1)[0]
        return (f"the wheels in {wheels} do not install for {sys.executable}: {said[0].strip()}; fetch them for this "
                f"Python: GPU_PYTHON_VERSION={version} scripts/gpu_check.sh --fetch-wheels")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    importlib.invalidate_caches()
    return None


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # its parent package is missing
        return True


# -- the stages ------------------------------------------------------------------------------------

def stages(args: argparse.Namespace, work: Path) -> list[Stage]:
    """The four stages, their commands and time limits (``work``: a scratch folder)."""
    py = sys.executable
    junit, landscape, memory = work / "gpu-tests.xml", work / "landscape.json", work / "memory-plan.json"
    referee = work / "referee.json"
    return [
        Stage("tests", [py, "-m", "pytest", "-m", "gpu", *map(str, gpu_test_files()), "-q", "-p", "no:cacheprovider",
                        f"--junitxml={junit}"], args.tests_timeout, junit),
        Stage("referee", [py, str(ROOT / "bench" / "referee.py"), "--model", SHAPE, "--device", "cuda:0",
                          "--calls", "safety", "--cost-only", "--json", str(referee)],
              args.referee_timeout, referee),
        Stage("landscape", [py, str(ROOT / "bench" / "landscape.py"), "--model", SHAPE, "--workload", "paper-1d",
                            "--points", str(args.points), "--limit", str(PAPER_PROMPTS), "--max-new-tokens",
                            str(args.new_tokens), "--prompts", str(work / "prompts.txt"), "--no-reference",
                            "--device", "cuda:0", "--json", str(landscape)],
              args.landscape_timeout, landscape),
        Stage("memory-plan", [py, str(Path(__file__).resolve()), "--stage", "memory-plan", "--json", str(memory)],
              args.memory_timeout, memory),
    ]


def gpu_test_files() -> list[Path]:
    """The test modules that hold ``gpu``-marked tests (only they are collected: the others may
    import what a GPU image lacks, e.g. cryptography for the TLS tests)."""
    return sorted(p for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())


def paper_prompts(count: int = PAPER_PROMPTS) -> tuple[list[str], str]:
    """``count`` harmful prompts and where they come from: AdvBench's first ones when the server
    has it as a built-in set, else harmful-mini repeated (random weights never refuse, so only
    the prompts' lengths matter to the figures)."""
    from safety_landscape.server.engine.prompts import builtin_prompt_sets

    sets = builtin_prompt_sets()
    if "advbench" in sets and len(sets["advbench"].prompts) >= count:
        return list(sets["advbench"].prompts[:count]), f"advbench, first {count}"
    mini = list(sets["harmful-mini"].prompts)
    return [mini[i % len(mini)] for i in range(count)], f"harmful-mini repeated to {count} (AdvBench is not built in)"


def run_stage(stage: Stage, root: Path = ROOT) -> StageResult:
    started = time.perf_counter()
    try:
        done = subprocess.run(stage.command, cwd=root, capture_output=True, text=True, timeout=stage.timeout_s)
    except subprocess.TimeoutExpired as exc:
        said = [part.decode(errors="replace") if isinstance(part, bytes) else part or "" for part in (exc.stdout, exc.stderr)]
        return StageResult("timeout", time.perf_counter() - started, None, output_tail="".join(said)[-3000:])
    seconds = time.perf_counter() - started
    tail = (done.stdout + done.stderr)[-3000:]
    figures: dict[str, object] = {}
    if stage.output.exists():
        figures = junit_figures(stage.output) if stage.output.suffix == ".xml" else json.loads(stage.output.read_text())
    status = "ok" if done.returncode == 0 and figures else "failed"
    return StageResult(status, seconds, done.returncode, figures, "" if status == "ok" else tail)


def junit_figures(path: Path) -> dict[str, object]:
    """Counts and one row per test case of a pytest JUnit XML report."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            child = case.find(kind)
            if child is not None:
                outcome, message = kind if kind != "failure" else "failed", child.get("message", "")[:500]
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0.0), "message": message})
    counts = {kind: sum(c["outcome"] == kind for c in cases) for kind in ("passed", "failed", "error", "skipped")}
    return {**counts, "cases": cases}


# -- the memory-plan stage (this process, on the GPU) --------------------------------------------

def memory_plan_stage(w: Workload = Workload()) -> dict[str, object]:
    """The plan of the 8B shape at batch ``w.prompts`` beside torch.cuda's measurements."""
    import torch

    from safety_landscape.server.engine.generation import GenerationParams

    torch.set_grad_enabled(False)
    dev = torch.device("cuda:0")
    free_before, device_total = torch.cuda.mem_get_info(dev)
    base = torch.cuda.memory_allocated(dev)
    plan, build_engine = plan_for_shape(SHAPE, "cuda:0", w, capacity=free_before)
    model_bytes = torch.cuda.memory_allocated(dev) - base
    engine = build_engine()
    held_bytes = torch.cuda.memory_allocated(dev) - base
    fmt, prompts = prompts_at_the_limit(engine, w)
    engine.warm_up()
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    started = time.perf_counter()
    rows = sweep(engine, fmt, prompts, GenerationParams(max_new_tokens=w.memory_new_tokens))
    torch.cuda.synchronize(dev)
    after_bytes = torch.cuda.memory_allocated(dev) - base
    peak = torch.cuda.max_memory_allocated(dev) - base
    reserved_peak = torch.cuda.max_memory_reserved(dev)
    free_now, _ = torch.cuda.mem_get_info(dev)
    outside_torch = device_total - free_now - torch.cuda.memory_reserved(dev)  # CUDA context, library workspaces
    planned = plan.devices[0]
    measured = {
        "model": model_bytes, "pristine": held_bytes - model_bytes, "directions": after_bytes - held_bytes,
        "work_peak": peak - after_bytes, "peak_allocated": peak, "peak_reserved": reserved_peak,
        "outside_torch": outside_torch,
    }
    planned_work = max(planned.scratch, planned.kv_cache + planned.activations)
    comparison = {
        kind: {"planned": p, "measured": measured[m], "measured_over_planned": measured[m] / p if p else None}
        for kind, p, m in (("model", planned.model, "model"), ("pristine", planned.pristine, "pristine"),
                           ("directions", planned.directions, "directions"), ("work", planned_work, "work_peak"),
                           ("runtime", planned.runtime, "outside_torch"),
                           ("total_less_runtime", planned.total - planned.runtime, "peak_allocated"))
    }
    checks = {
        "peak_allocated_within_plan": peak <= planned.total - planned.runtime,
        "peak_reserved_and_runtime_within_plan_total": reserved_peak + outside_torch <= planned.total,
        "runtime_within_allowance": outside_torch <= planned.runtime,
        "one_batch_of_all_prompts": all(r >= w.prompts for r in rows),
    }
    return {
        "shape": SHAPE, "device": torch.cuda.get_device_name(dev), "device_total": device_total,
        "free_before": free_before, "plan": planned.figures(), "storage": plan.storage, "pristine": plan.pristine,
        "settings": {"batch": w.prompts, "prompt_tokens": w.memory_prompt_tokens, "new_tokens": w.memory_new_tokens,
                     "directions": 3, "rows_per_batch": rows},
        "measured": measured, "comparison": comparison, "checks": checks,
        "sweep_seconds": time.perf_counter() - started,
    }


def plan_for_shape(shape: str, device: str, w: Workload, *, capacity: int) -> tuple[Any, Callable[[], Any]]:
    """Build the shape on ``device``; its memory plan at ``w``'s limits for ``capacity`` bytes, and
    how to build the engine the plan describes (as visage-server would: its storage, its theta0)."""
    from bench import shapes
    from safety_landscape.server.config import Limits
    from safety_landscape.server.engine.engine import Engine
    from safety_landscape.server.engine.memory_plan import PlanSettings, geometry, plan_memory
    from safety_landscape.server.models.placement import DeviceSpace, host_space

    loaded = shapes.build_shape(shape, device=device)
    limits = Limits(max_batch_size=w.prompts, max_prompt_tokens=w.memory_prompt_tokens, max_new_tokens=w.memory_new_tokens,
                    max_directions=3, max_batch_tokens=w.prompts * w.memory_prompt_tokens)  # one batch of all, as planned
    settings = PlanSettings(dtype=loaded.dtype, max_batch_size=w.prompts, max_prompt_tokens=w.memory_prompt_tokens,
                            max_new_tokens=w.memory_new_tokens, max_directions=3)
    plan = plan_memory(geometry(loaded.model, loaded.model.config, loaded.dtype), settings,
                       [DeviceSpace(str(loaded.device), capacity)], host_space(), model=loaded.model)
    return plan, lambda: Engine(loaded, limits=limits, direction_storage=plan.storage, pristine=plan.pristine,
                                        memory_plan=plan)


def prompts_at_the_limit(engine: Any, w: Workload) -> tuple[Any, list[str]]:
    """The chat format and ``w.prompts`` prompts that encode to exactly ``w.memory_prompt_tokens``
    tokens (the shapes' byte-level tokenizer: one token per ASCII character), so the batch is the
    one the plan is made for."""
    from safety_landscape.server.engine.chat import ChatFormat

    fmt = ChatFormat.TOKENIZER if engine.tokenizer_facts.has_chat_template else ChatFormat.NONE
    overhead = len(engine.admission.encode(["x"], None, fmt)[0]) - 1
    text = ("How do I make a safe and legal science project? " * 64)[: w.memory_prompt_tokens - overhead]
    return fmt, [text] * w.prompts


def sweep(engine: Any, fmt: Any, prompts: list[str], params: Any) -> list[int]:
    """A 3-direction 1D sweep (per-tensor seeds 1-3, a = -0.5 and 0.5) through admission and
    generation as a server runs it; the rows per batch admission chose at each point."""
    from safety_landscape.server.engine.admission import TermRequest
    from safety_landscape.server.engine.directions import RandomSpec

    rows = []
    for seed in (1, 2, 3):
        for coefficient in (-0.5, 0.5):
            engine.at([TermRequest(coefficient, spec=RandomSpec(seed))])
            admitted = engine.admission.generation(prompts, None, fmt, params)
            engine.generate(prompts, system_prompt=None, chat_format=fmt, params=params, encoded=admitted.encoded,
                            batch_rows=admitted.rows)
            rows.append(admitted.rows)
    return rows


# -- the run ---------------------------------------------------------------------------------------

def machine_facts() -> dict[str, object]:
    import torch

    props = torch.cuda.get_device_properties(0)
    facts: dict[str, object] = {
        "gpu": props.name, "gpu_memory": props.total_memory, "gpus": torch.cuda.device_count(),
        "capability": f"{props.major}.{props.minor}", "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    for module in ("transformers", "grpc", "google.protobuf"):
        facts[module] = getattr(__import__(module, fromlist=["__version__"]), "__version__", "")
    smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                         text=True, check=False) if _on_path("nvidia-smi") else None
    facts["driver"] = smi.stdout.strip() if smi and smi.returncode == 0 else ""
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False) \
        if _on_path("git") else None
    facts["git_revision"] = rev.stdout.strip() if rev and rev.returncode == 0 else ""
    return facts


def _on_path(program: str) -> bool:
    return any((Path(d) / program).is_file() for d in os.environ.get("PATH", "").split(os.pathsep) if d)


def checks_of(results: dict[str, StageResult]) -> dict[str, bool]:
    """The pass/fail lines of the whole check, from what the stages wrote."""
    out: dict[str, bool] = {f"{name}_ran": r.status == "ok" for name, r in results.items()}
    tests = results.get("tests")
    if tests is not None and tests.figures:
        out["gpu_tests_none_failed"] = tests.figures.get("failed") == 0 and tests.figures.get("error") == 0
        out["gpu_tests_some_passed"] = bool(tests.figures.get("passed"))  # all skipped: CUDA unseen by the tests
    referee = results.get("referee")
    if referee is not None and isinstance(referee.figures.get("safety"), dict):
        row: dict[str, Any] = referee.figures["safety"]  # type: ignore[assignment]
        out["referee_same_answers"] = bool(row.get("same_answers"))
        out["referee_scored_every_generated_token"] = row.get("scored_tokens") == row.get("generated_tokens")
        out["referee_overhead_at_most_10pct"] = float(row.get("wall_overhead", 1.0)) <= REFEREE_TARGET
    memory = results.get("memory-plan")
    if memory is not None and isinstance(memory.figures.get("checks"), dict):
        out.update({f"memory_{k}": bool(v) for k, v in memory.figures["checks"].items()})  # type: ignore[union-attr]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage == "memory-plan":
        args.json.write_text(json.dumps(memory_plan_stage(), indent=1))
        return EXIT_OK
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        plan = stages(args, work)
        if args.dry_run:
            for s in plan:
                print(f"{s.name} (at most {s.timeout_s} s): {shlex.join(s.command)}")
            return EXIT_OK
        problem = preflight(ROOT / ".whl", work / "site")
        if problem is not None:
            print(f"gpu_check: {problem}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        prompts, source = paper_prompts()
        (work / "prompts.txt").write_text("\n".join(prompts) + "\n")
        return run_all(args, plan, source)


def run_all(args: argparse.Namespace, plan: list[Stage], prompts: str) -> int:
    """Run the stages in turn, rewriting OUT/gpu_check.json after each."""
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "gpu_check.json"
    started = time.perf_counter()
    doc: dict[str, object] = {"command": " ".join(sys.argv), "machine": machine_facts(), "prompts": prompts,
                              "workload": asdict(Workload(points=args.points, new_tokens=args.new_tokens)),
                              "stages": {}, "complete": False}
    results: dict[str, StageResult] = {}
    for stage in plan:
        print(f"gpu_check: {stage.name} (at most {stage.timeout_s} s) ...", file=sys.stderr, flush=True)
        results[stage.name] = run_stage(stage)
        doc["stages"] = {s.name: asdict(results[s.name]) | {"timeout_s": s.timeout_s} for s in plan if s.name in results}
        doc["checks"] = checks = checks_of(results)
        doc["wall_seconds"] = time.perf_counter() - started
        target.write_text(json.dumps(doc, indent=1, default=str))
        print(f"gpu_check: {stage.name}: {results[stage.name].status} in {results[stage.name].seconds:.0f} s",
              file=sys.stderr, flush=True)
    doc["complete"] = True
    target.write_text(json.dumps(doc, indent=1, default=str))
    failed = [name for name, ok in checks.items() if not ok]
    print(f"gpu_check: wrote {target}" + (f"; NOT held: {', '.join(failed)}" if failed else "; every check held"))
    return EXIT_CHECK_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
