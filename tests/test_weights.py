"""Weight application at the engine level (no gRPC): fingerprints, memory reports, apply maths.

The server-level behaviour (caps, agreement, concurrency) is in test_perturbation_server.py;
the direction maths in test_directions.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from safety_landscape.server.config import Limits
from safety_landscape.server.engine.admission import TermRequest
from safety_landscape.server.engine.directions import InterpolationSpec, RandomSpec, unique_parameters
from safety_landscape.server.engine.engine import Engine
from safety_landscape.server.engine.weights import WeightManager, model_fingerprint
from safety_landscape.server.errors import InvalidArgument
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.registry import ModelRegistry


def tiny(dtype: str = "float32"):
    return load_model(resolve_model("tiny-random"), device="cpu", dtype=dtype)


def manual_sha256(model: torch.nn.Module) -> str:
    """sha256 of the weights, written out independently of the module under test."""
    h = hashlib.sha256()
    seen = set()
    for name, p in model.named_parameters():  # drops the tied lm_head name
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        t = p.detach().contiguous()
        h.update(f"{name}\x00{tuple(t.shape)}\x00{t.dtype}\x00".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_model_fingerprint_is_the_sha256_of_the_pristine_weights():
    loaded = tiny()
    fp = model_fingerprint(loaded.model)
    assert fp == manual_sha256(loaded.model)
    assert fp == model_fingerprint(tiny().model)  # deterministic across loads
    assert fp != model_fingerprint(load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32").model)
    wm = WeightManager(loaded.model, model_fingerprint=fp)
    assert wm.weights_sha256() == fp and wm.state_fingerprint(()) == fp
    d, _ = wm.create(RandomSpec(1))
    wm.apply(wm.canonical_terms([(d.id, 0.3)]))
    assert wm.weights_sha256() == manual_sha256(loaded.model) != fp
    wm.apply(())
    assert wm.weights_sha256() == fp
    # the pristine copy never aliases the live weights
    assert all(p.data_ptr() != wm.pristine[n].data_ptr() for n, p in wm.params)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_memory_report_in_both_storage_modes(dtype, tmp_path: Path):
    loaded = tiny(dtype)
    params = unique_parameters(loaded.model)
    element = torch.finfo(getattr(torch, dtype)).bits // 8
    model_bytes = sum(p.numel() for _, p in params) * element
    second = load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32")
    second.model.save_pretrained(tmp_path / "second", safe_serialization=True)
    (tmp_path / "reg.toml").write_text('[checkpoints]\nsecond = "second"\n')
    registry = ModelRegistry.from_file(tmp_path / "reg.toml")
    spec = RandomSpec(5)
    perturbed_numel = sum(p.numel() for n, p in params if "norm" not in n)
    reports = {}
    for storage in ("cache", "regenerate"):
        engine = Engine(loaded, limits=Limits(), direction_storage=storage, registry=registry)
        mem = engine.memory()
        assert mem.model == mem.pristine == model_bytes
        assert mem.directions == 0 and mem.device > 0
        held, created = engine.create_direction(spec)
        assert created
        expected = perturbed_numel * 4 if storage == "cache" else 0  # fp32 tensors, norms not stored
        assert held.bytes_held == expected and engine.memory().directions == expected
        # the reference stream and interpolation directions are cached in both modes
        ref, _ = engine.create_direction(RandomSpec(5, stream="reference"))
        interp, _ = engine.create_direction(InterpolationSpec("second"))
        assert ref.bytes_held == perturbed_numel * 4
        assert interp.bytes_held == sum(p.numel() for _, p in params) * 4
        assert engine.memory().directions == expected + ref.bytes_held + interp.bytes_held
        engine.weights.delete(held.id)
        assert engine.memory().directions == ref.bytes_held + interp.bytes_held
        assert engine.memory().model == model_bytes  # applying never grows the model
        reports[storage] = (held.fingerprint, held.norm)
    assert reports["cache"] == reports["regenerate"]


def test_cache_and_regenerate_apply_the_same_bits():
    shas = {}
    for storage in ("cache", "regenerate"):
        loaded = tiny()
        engine = Engine(loaded, limits=Limits(), direction_storage=storage)
        terms = [TermRequest(0.07, spec=RandomSpec(9)), TermRequest(-0.02, spec=RandomSpec(10, normalization="filter"))]
        state = engine.at(terms)
        shas[storage] = (state.fingerprint, engine.weights.weights_sha256())
        engine.at([])
        assert engine.weights.weights_sha256() == engine.fingerprint
    assert shas["cache"] == shas["regenerate"]


def test_bfloat16_weights_accumulate_in_fp32_and_return_exactly():
    loaded = tiny("bfloat16")
    fp = model_fingerprint(loaded.model)
    wm = WeightManager(loaded.model, model_fingerprint=fp)
    d, _ = wm.create(RandomSpec(3))
    name, param = next((n, p) for n, p in wm.params if n.endswith("q_proj.weight"))
    wm.apply(wm.canonical_terms([(d.id, 0.25)]))
    expected = (wm.pristine[name].float() + 0.25 * d.tensors[name]).to(torch.bfloat16)
    assert param.dtype == torch.bfloat16 and torch.equal(param, expected)
    for _ in range(20):  # many states, never accumulated
        wm.apply(wm.canonical_terms([(d.id, 0.01)]))
        wm.apply(wm.canonical_terms([(d.id, -0.3)]))
    wm.apply(())
    assert wm.weights_sha256() == fp


def test_a_failed_apply_is_not_mistaken_for_the_state_it_left():
    loaded = tiny()
    wm = WeightManager(loaded.model, model_fingerprint=model_fingerprint(loaded.model))
    d, _ = wm.create(RandomSpec(4))
    terms = wm.canonical_terms([(d.id, 0.1)])
    wm.apply(terms)
    good = wm.weights_sha256()
    tensors = d.tensors
    d.tensors = {"model.layers.1.mlp.down_proj.weight": "not a tensor"}  # fails midway through
    with pytest.raises(TypeError):
        wm.apply(wm.canonical_terms([(d.id, 0.2)]))
    d.tensors = tensors
    state = wm.apply(terms)  # the same terms as before the failure: must be re-applied
    assert state.switched and wm.weights_sha256() == good


def test_canonical_terms():
    loaded = tiny()
    wm = WeightManager(loaded.model, model_fingerprint=model_fingerprint(loaded.model), max_abs_coefficient=1.0)
    assert wm.canonical_terms([("d-b", 0.5), ("d-a", 0.25), ("d-c", 0.0), ("d-a", 0.25)]) == (("d-a", 0.5), ("d-b", 0.5))
    assert wm.canonical_terms([("d-a", 0.5), ("d-a", -0.5)]) == ()
    for bad in (float("nan"), float("inf"), 1.5):
        with pytest.raises(InvalidArgument):
            wm.canonical_terms([("d-a", bad)])
    with pytest.raises(InvalidArgument, match="sum"):
        wm.canonical_terms([("d-a", 0.75), ("d-a", 0.75)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n_terms", [1, 2, 3])
def test_fused_apply_is_bit_identical_to_fp32_accumulation(dtype, n_terms):
    """The one-pass write equals: copy theta0 to fp32, add each c_i d_i, cast once."""
    from safety_landscape.server.engine.weights import _write_sum

    g = torch.Generator().manual_seed(n_terms)
    base = torch.randn(64, 33, generator=g).to(dtype)
    components = [(0.37 / (i + 1) * (-1) ** i, torch.randn(64, 33, generator=g)) for i in range(n_terms)]
    expected = base.to(torch.float32, copy=True)
    for coef, d in components:
        expected.add_(d, alpha=coef)
    expected = expected.to(dtype)
    out = torch.empty_like(base)
    before = base.clone()
    _write_sum(out, base, components)
    as_int = torch.int16 if dtype == torch.bfloat16 else torch.int32
    assert torch.equal(out.view(as_int), expected.view(as_int))
    assert torch.equal(base.view(as_int), before.view(as_int))  # the pristine copy is untouched
