"""The prepared GPU check (``scripts/gpu_check.sh``), as far as a machine without a GPU can run it:
it refuses at once, in one line, where no CUDA device is; its arguments are checked; its stages
fit the 10 minutes; the memory-plan stage's own steps (the plan, prompts that fill the plan's
prompt length, a sweep through admission) run on a CPU-sized shape; and its test stage, run here,
reports every gpu test as skipped and says that none passed, rather than counting it a pass.
No GPU figure is produced or faked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is not installed: read it from the checkout

from bench.gpu_check import (
    Workload,
    checks_of,
    gpu_test_files,
    parse_args,
    plan_for_shape,
    prompts_at_the_limit,
    run_stage,
    stages,
    sweep,
)
from safety_landscape.server.engine.generation import GenerationParams
from safety_landscape.server.models.placement import host_space

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "gpu_check.sh")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs the whole check")
def test_without_a_gpu_it_refuses_at_once_in_one_line(tmp_path):
    out = subprocess.run([SCRIPT, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device visible to"), out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()  # no figures without a GPU


def test_its_arguments_are_checked():
    out = subprocess.run([SCRIPT, "--points", "1"], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 2 and "--points must be >= 2" in out.stderr


def test_the_stages_fit_ten_minutes_and_run_the_paper_shape(tmp_path):
    out = subprocess.run([SCRIPT, "--dry-run"], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert [name.split(" ")[0] for name in lines] == ["tests", "landscape", "memory-plan"]
    plan = stages(parse_args([]), tmp_path)
    assert sum(s.timeout_s for s in plan) <= 600 - 30  # the rest: starting Python, the machine's facts
    landscape = " ".join(plan[1].command)
    assert "--model llama3-8b-shape" in landscape and "--limit 80" in landscape and "--no-reference" in landscape
    assert "test_gpu_memory.py" in " ".join(plan[0].command) and ROOT / "tests" / "test_gpu_memory.py" in gpu_test_files()


def test_the_memory_stage_steps_run_on_a_cpu_sized_shape():
    w = Workload(prompts=4, memory_prompt_tokens=128, memory_new_tokens=2)
    plan, build_engine = plan_for_shape("llama-tiny-shape", "cpu", w, capacity=host_space().capacity)
    assert plan.fits and plan.settings.max_batch_size == 4
    engine = build_engine()
    fmt, prompts = prompts_at_the_limit(engine, w)
    assert {len(ids) for ids in engine.admission.encode(prompts, None, fmt)} == {128}  # the plan's prompt length
    assert sweep(engine, fmt, prompts, GenerationParams(max_new_tokens=2)) == [4] * 6  # one batch of all, six points


def test_the_test_stage_run_here_says_nothing_passed(tmp_path):
    tests = stages(parse_args([]), tmp_path)[0]
    result = run_stage(tests)
    assert result.status == "ok" and result.figures["passed"] == 0 and result.figures["failed"] == 0
    assert result.figures["skipped"] == len(result.figures["cases"]) > 0
    checks = checks_of({"tests": result})
    assert checks["gpu_tests_none_failed"] and not checks["gpu_tests_some_passed"]
