"""The memory plan: per device, the bytes of the model, theta0, directions, scratch, KV cache and
activations at the configured limits, made before loading (planned on the meta device for
shapes too large for this machine), printed by ``visage-server --memory-plan``, enforced at start
(a plan that does not fit is refused, naming the setting to change), and reported by GetInfo,
``visage info`` and the metrics."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from serving import running_server

from safety_landscape.client.cli import main as visage
from safety_landscape.server.cli import EXIT_BAD_CONFIG, EXIT_PLAN_DOES_NOT_FIT, EXIT_PLANNED
from safety_landscape.server.engine.memory_plan import GiB, PlanSettings, geometry, plan_memory
from safety_landscape.server.models.placement import DeviceSpace
from safety_landscape.server.models.shapes import meta_model, shape_config

GPU_80GB = DeviceSpace("cuda:0", 81559 * 2**20)  # an 80 GB card as nvidia-smi counts it
HOST = DeviceSpace("cpu", 512 * GiB)


def paper(**changes) -> PlanSettings:
    """The paper preset's server limits: batch 80 (its 80 prompts at once), 512 new tokens, 3 directions."""
    base = dict(dtype=torch.bfloat16, max_batch_size=80, max_prompt_tokens=2048, max_new_tokens=512, max_directions=3,
                checkpoint=True)
    return PlanSettings(**{**base, **changes})


def shaped(name: str):
    config = shape_config(name)
    model = meta_model(config, torch.bfloat16)
    return geometry(model, config, torch.bfloat16), model


def test_llama3_8b_at_the_paper_preset_fits_one_80gb_gpu():
    g, _ = shaped("llama3-8b-shape")
    plan = plan_memory(g, paper(), [GPU_80GB], HOST)
    gpu = plan.devices[0]
    assert plan.fits and plan.storage == "stream" and plan.pristine == "device"
    assert gpu.model == gpu.pristine == 8_030_261_248 * 2  # LLaMA-3-8B's parameters, bf16
    assert gpu.kv_cache == 80 * (2048 + 512) * 32 * 2 * 8 * 128 * 2  # 25 GiB: GQA, 8 KV heads of 128
    assert gpu.directions == 0 and gpu.scratch == 128256 * 4096 * 8  # the embedding: an fp32 sum and one term
    assert gpu.total < gpu.capacity


def test_a_70b_model_fits_four_80gb_gpus_sharded_and_one_gpu_is_refused():
    g, model = shaped("llama3-70b-shape")
    four = [DeviceSpace(f"cuda:{i}", GPU_80GB.capacity) for i in range(4)]
    settings = paper(max_prompt_tokens=256)  # AdvBench prompts with a chat template and system prompt
    for strategy in ("auto", "balanced"):
        plan = plan_memory(g, settings, four, HOST, strategy=strategy, model=model)
        assert plan.fits, plan.table()
        assert {d.device for d in plan.devices} == {"cuda:0", "cuda:1", "cuda:2", "cuda:3", "host"}
        assert sum(d.model for d in plan.devices) == 70_553_706_496 * 2
    one = plan_memory(g, settings, [GPU_80GB], HOST)
    assert not one.fits and "--device-map auto" in one.refusal()
    # at the server's default prompt length the prefill of 80 x 2048 tokens does not fit beside the 70B layers
    assert "--max-batch-size or --max-prompt-tokens" in plan_memory(g, paper(), four, HOST, strategy="auto",
                                                                      model=model).refusal()


def test_auto_storage_and_theta0_place():
    tiny, _ = shaped("llama-tiny-shape")
    cpu = [DeviceSpace("cpu", 16 * GiB)]
    assert plan_memory(tiny, paper(max_directions=1), cpu, cpu[0]).storage == "cache"  # 1 x 96 MiB: under 5%
    streamed = plan_memory(tiny, paper(max_directions=16), cpu, cpu[0])
    assert streamed.storage == "stream" and streamed.pristine == "checkpoint"  # a CPU re-reads the checkpoint
    assert plan_memory(tiny, paper(checkpoint=False), cpu, cpu[0]).pristine == "device"
    g, _ = shaped("llama3-8b-shape")
    tight = plan_memory(g, paper(max_prompt_tokens=3072), [GPU_80GB], HOST)  # no room for theta0 beside the KV cache
    assert tight.fits and tight.pristine == "host"
    assert tight.devices[-1].device == "host" and tight.devices[-1].pristine == tight.devices[0].model
    held = plan_memory(g, paper(storage="cache"), [GPU_80GB], HOST)
    assert not held.fits and "--direction-storage stream" in held.refusal()


def visage_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "safety_landscape.server.cli", "--model", "tiny-random", "--device", "cpu",
                           "--listen", "127.0.0.1:0", *args], capture_output=True, text=True, timeout=300)


def test_a_plan_that_does_not_fit_is_refused_at_start_naming_the_setting():
    out = visage_server("--max-batch-size", "200000")
    assert out.returncode == EXIT_BAD_CONFIG
    assert "the memory plan does not fit cpu" in out.stderr
    assert "lower --max-batch-size" in out.stderr and "--max-prompt-tokens" in out.stderr and "Traceback" not in out.stderr


def test_the_memory_plan_flag_prints_the_plan_and_exits():
    out = visage_server("--memory-plan")
    assert out.returncode == EXIT_PLANNED, out.stderr
    assert out.stdout.splitlines()[0].split()[:4] == ["device", "model", "pristine", "directions"]
    assert "kv_cache" in out.stdout and "storage cache, pristine device" in out.stdout and ": fits" in out.stdout
    over = visage_server("--memory-plan", "--max-batch-size", "200000")
    assert over.returncode == EXIT_PLAN_DOES_NOT_FIT
    assert "DOES NOT FIT" in over.stdout and "--max-batch-size" in over.stderr


def test_the_plan_is_in_get_info_the_metrics_and_visage_info(capsys):
    with running_server() as server, server.client() as c:
        plan = c.info().memory_plan
        engine = server.engine
        assert plan.fits and plan.direction_storage == engine.weights.storage == "cache"
        assert plan.batch_size == 64 and plan.new_tokens == 1024 and plan.max_directions == 16
        (cpu,) = plan.devices
        assert cpu.device == "cpu" and cpu.model_bytes == engine.memory().model and cpu.kv_cache_bytes > 0
        assert cpu.total_bytes <= cpu.capacity_bytes and cpu.fits
        samples = server.app.metrics.registry
        assert samples.get_sample_value("visage_memory_plan_bytes", {"device": "cpu", "kind": "kv_cache"}) == cpu.kv_cache_bytes
        assert samples.get_sample_value("visage_memory_plan_fits", {"device": "cpu"}) == 1
        assert visage(["info", "--server", server.target]) == 0
    out = capsys.readouterr().out
    assert "memory plan  directions cache, pristine device, batch 64" in out
    assert "  cpu " in out and "KV cache" in out


@pytest.mark.parametrize("storage", ["stream", "host", "cache"])
def test_the_plan_counts_the_directions_each_storage_holds(storage):
    g, _ = shaped("llama-tiny-shape")
    cpu = [DeviceSpace("cpu", 64 * GiB)]
    plan = plan_memory(g, paper(storage=storage), cpu, cpu[0])
    row = plan.devices[0]
    assert row.model == 2 * g.numel  # bf16
    assert row.directions == (0 if storage == "stream" else 3 * 4 * g.numel)  # 3 whole fp32 directions


def test_the_referees_rows_hold_no_logits_per_position():
    """LLaMA-3-8B's shape: a referee batch of 80 answers x 512 tokens (prompt included) holds its KV cache,
    activations and final hidden states, not 80 x 512 x 128,256 logits (about 63 GB in fp32 alone);
    the one slice of logits it takes at a time comes off the budget first."""
    from safety_landscape.server.engine.job_memory import JobMemory
    from safety_landscape.server.engine.scoring import HEAD_SLICE_BYTES
    from safety_landscape.server.errors import ResourceExhausted

    g, _ = shaped("llama3-8b-shape")
    memory = JobMemory(g, budget=8 * GiB, max_batch_size=80, max_batch_tokens=1 << 20)
    assert memory.score_row(512) > 512 * g.vocab * 8  # the Score RPC's rows: every position's logits
    assert memory.continuation_row(512) < memory.score_row(512) / 2
    slice_tokens = max(1, HEAD_SLICE_BYTES // (g.vocab * 12))
    rows = memory.continuation_rows(512, slice_tokens)
    assert rows * memory.continuation_row(512) + slice_tokens * g.vocab * 12 <= memory.budget
    assert rows > memory.score_rows(512)
    tight = JobMemory(g, budget=slice_tokens * g.vocab * 12 + memory.continuation_row(512) - 1, max_batch_size=80,
                      max_batch_tokens=1 << 20)
    with pytest.raises(ResourceExhausted, match="max_job_memory_bytes"):  # one row must fit beside the slice
        tight.continuation_rows(512, slice_tokens)
