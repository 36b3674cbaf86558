"""On CUDA (the ``gpu`` marker; skipped without a GPU): a bf16 checkpoint loads straight onto the
device with no fp32 copy and no host copy, regenerated directions are bit-identical to cached
ones on the device, a device map over two GPUs gives the single GPU's outputs, and a sweep's
device peak stays within the memory plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_model_loading import engine_outputs, save_bf16_llama

from safety_landscape.server.bootstrap import load_planned, planned_engine
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.engine.admission import TermRequest
from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.engine import Engine
from safety_landscape.server.engine.generation import GenerationParams
from safety_landscape.server.engine.weights import WeightManager, model_fingerprint
from safety_landscape.server.models.loading import load_model, resolve_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
PROMPTS = ["Hello there", "What is the capital of France?", "Tell me a story."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A 47M-parameter Llama in bf16 safetensors, with the tiny tokenizer."""
    folder = tmp_path_factory.mktemp("gpu-bf16")
    save_bf16_llama(folder, kv_heads=4)
    return folder


def _anon() -> int:
    with open(f"/proc/{os.getpid()}/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("RssAnon:"))


def test_a_bf16_load_goes_straight_onto_the_gpu(checkpoint):
    torch.cuda.reset_peak_memory_stats(0)
    before, anon = torch.cuda.memory_allocated(0), _anon()
    loaded = load_model(resolve_model(str(checkpoint)), device="cuda:0", dtype="bfloat16")
    model_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert torch.cuda.max_memory_allocated(0) - before <= 1.1 * model_bytes  # no fp32 copy on the device
    assert _anon() - anon <= 0.25 * model_bytes  # no copy in host memory


@pytest.mark.parametrize("pristine", ["device", "host", "checkpoint"])
def test_regenerated_directions_on_the_gpu_are_bit_identical_to_cached(checkpoint, pristine):
    specs = [RandomSpec(3), RandomSpec(4, normalization="filter"), RandomSpec(123, stream="reference", index=1)]
    shas = {}
    for storage in ("cache", "stream", "host"):
        loaded = load_model(resolve_model(str(checkpoint)), device="cuda:0", dtype="bfloat16")
        wm = WeightManager(loaded.model, model_fingerprint=model_fingerprint(loaded.model), storage=storage,
                           pristine=pristine, checkpoint=loaded.checkpoint)
        held = [wm.create(s)[0] for s in specs]
        wm.apply(wm.canonical_terms([(h.id, 0.1 * (i + 1)) for i, h in enumerate(held)]))
        shas[storage] = ([h.fingerprint for h in held], wm.weights_sha256())
        wm.apply(())
        assert wm.weights_sha256() == wm.model_fingerprint
    assert shas["cache"] == shas["stream"] == shas["host"]


def _outputs(engine: Engine) -> list[list[list[int]]]:
    return engine_outputs(engine, seed=5, coefficients=(0.0, 0.2), max_new_tokens=16, prompts=PROMPTS)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_a_device_map_over_two_gpus_gives_the_single_gpus_outputs(checkpoint, tmp_path):
    single = load_model(resolve_model(str(checkpoint)), device="cuda:0", dtype="bfloat16")
    config = ServerConfig(model=str(checkpoint), device="cuda", dtype="bfloat16", device_map="balanced")
    loaded, plan = load_planned(config)
    assert len(set(plan.device_map.values())) == 2 and loaded.devices == ("cuda:0", "cuda:1")
    assert model_fingerprint(loaded.model) == model_fingerprint(single.model)
    sharded = planned_engine(config, loaded, plan)
    assert _outputs(sharded) == _outputs(Engine(single, limits=Limits(), direction_storage="stream"))
    assert {str(p.device) for p in loaded.model.parameters()} == {"cuda:0", "cuda:1"}  # perturbed where they live


def test_a_sweeps_device_peak_stays_within_the_plan(checkpoint):
    limits = Limits(max_batch_size=8, max_prompt_tokens=64, max_new_tokens=32)
    config = ServerConfig(model=str(checkpoint), device="cuda:0", dtype="bfloat16", limits=limits)
    torch.cuda.reset_peak_memory_stats(0)
    loaded, plan = load_planned(config)
    engine = planned_engine(config, loaded, plan)
    for index in range(3):
        for c in (-0.5, 0.5):
            engine.at([TermRequest(c, spec=RandomSpec(123, stream="reference", index=index))])
            engine.generate(PROMPTS * 2, system_prompt=None, chat_format=ChatFormat.TOKENIZER,
                            params=GenerationParams(max_new_tokens=32))
    gpu = plan.devices[0]
    assert gpu.device == "cuda:0" and torch.cuda.max_memory_allocated(0) <= gpu.total - gpu.runtime
