"""The prepared GPU check (``scripts/gpu_check.sh``), as far as a machine without a GPU can run it:
it refuses at once, in one line, where no CUDA device is; its arguments are checked; its stages
fit the 10 minutes; the referee stage's command runs end to end on a CPU-sized shape (its checks
read from what it wrote), and the shapes' tokenizer gives a generated answer back token for token;
the memory-plan stage's own steps (the plan, prompts that fill the plan's
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
    Stage,
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
from bench.shapes import shape_tokenizer
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
    assert [name.split(" ")[0] for name in lines] == ["tests", "referee", "landscape", "memory-plan"]
    plan = stages(parse_args([]), tmp_path)
    assert sum(s.timeout_s for s in plan) <= 600 - 30  # the rest: starting Python, the machine's facts
    referee = " ".join(plan[1].command)
    assert "bench/referee.py --model llama3-8b-shape --device cuda:0 --calls safety --cost-only" in referee
    landscape = " ".join(plan[2].command)
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


def test_the_referee_stage_runs_on_a_cpu_sized_shape(tmp_path):
    """The referee stage's command with the 8B shape swapped for llama-tiny-shape on the CPU and a
    smaller workload: it runs, and the check lines come from what it wrote. The overhead line is
    read, not asserted: a CPU is not where the target is measured (docs/performance.md)."""
    out = tmp_path / "referee.json"
    command = [sys.executable, str(ROOT / "bench" / "referee.py"), "--model", "llama-tiny-shape", "--device", "cpu",
               "--threads", "1", "--points", "3", "--limit", "2", "--max-new-tokens", "8", "--calls", "safety",
               "--cost-only", "--json", str(out)]
    result = run_stage(Stage("referee", command, 300, out))
    assert result.status == "ok", result.output_tail
    row = result.figures["safety"]
    assert row["generated_tokens"] == 3 * 2 * 2 * 8  # 3 points x 2 sets x 2 prompts, random weights never stop
    checks = checks_of({"referee": result})
    assert checks["referee_ran"] and checks["referee_same_answers"] and checks["referee_scored_every_generated_token"]
    assert checks["referee_overhead_at_most_10pct"] == (row["wall_overhead"] <= 0.10)


def test_the_shapes_tokenizer_gives_a_generated_answer_back_token_for_token():
    """Random weights pick filler tokens; decoded and encoded again (as the referee reads an answer)
    they are the same tokens, so the referee scores what was generated. Prompts stay a token per byte."""
    tok = shape_tokenizer(128256)
    generated = [300, 1234, 99999, 128255, 4096, 300]
    text = tok.decode(generated, skip_special_tokens=True)
    assert tok.encode(text, add_special_tokens=False) == generated
    prompt = "How do I make a safe and legal science project? Quickly, zq."
    assert len(tok.encode(prompt, add_special_tokens=False)) == len(prompt)
