"""Direction storage and the places of theta0: every storage ("cache", "regenerate", "stream",
"host") builds the same direction as the whole-direction maths (``random_direction``,
``interpolation_direction``, ``adapter_direction``: same fingerprint, bit-identical tensors),
applies the same weights, and returns to theta0 bit for bit, whichever place holds theta0
(device, host, or re-read from the checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_directions import write_adapter

from safety_landscape.server.engine.directions import (
    AdapterSpec,
    InterpolationSpec,
    RandomSpec,
    adapter_direction,
    direction_fingerprint,
    direction_norm,
    interpolation_direction,
    load_safetensors_checkpoint,
    parameter_aliases,
    random_direction,
    reference_tied_direction,
)
from safety_landscape.server.engine.directions.gaussian import ReferenceStream, StreamPositions, redraw
from safety_landscape.server.engine.weights import STORAGE_MODES, WeightManager, model_fingerprint
from safety_landscape.server.errors import Cancelled, FailedPrecondition
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.registry import ModelRegistry

SPECS = {
    "per-tensor": RandomSpec(7),
    "per-tensor filter": RandomSpec(8, normalization="filter", selection="all"),
    "reference": RandomSpec(123, stream="reference", index=1),
    "reference filter": RandomSpec(123, stream="reference", index=2, normalization="filter"),
    "interpolation": InterpolationSpec("second"),
    "adapter": AdapterSpec("lora"),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """tiny-random saved as fp32 and bf16 checkpoints, a second checkpoint and a LoRA adapter."""
    root = tmp_path_factory.mktemp("storage")
    for dtype in ("float32", "bfloat16"):
        lm = load_model(resolve_model("tiny-random"), device="cpu", dtype=dtype)
        lm.model.save_pretrained(root / dtype, safe_serialization=True)
        lm.tokenizer.save_pretrained(root / dtype)
    second = load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32")
    second.model.save_pretrained(root / "second", safe_serialization=True)
    params = [(n, p) for n, p in second.model.named_parameters()]
    write_adapter(root / "lora", params, modules=("q_proj", "v_proj"))
    (root / "reg.toml").write_text('[checkpoints]\nsecond = "second"\n[adapters]\nlora = "lora"\n')
    return root


def manager(workspace: Path, dtype: str, storage: str, pristine: str = "device") -> WeightManager:
    loaded = load_model(resolve_model(str(workspace / dtype)), device="cpu", dtype=dtype)
    return WeightManager(
        loaded.model, model_fingerprint=model_fingerprint(loaded.model), storage=storage, pristine=pristine,
        checkpoint=loaded.checkpoint, registry=ModelRegistry.from_file(workspace / "reg.toml"),
    )


def whole_direction(wm: WeightManager, spec, workspace: Path) -> dict[str, torch.Tensor]:
    """The direction by the whole-direction functions (the maths every storage must reproduce)."""
    params = [(n, wm.pristine[n]) for n in wm.names]
    if isinstance(spec, RandomSpec):
        return random_direction(params, spec)
    if isinstance(spec, InterpolationSpec):
        return interpolation_direction(params, load_safetensors_checkpoint(workspace / "second"))
    return adapter_direction(params, workspace / "lora")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_every_storage_builds_the_whole_directions_fingerprint_and_tensors(workspace, dtype, kind):
    spec = SPECS[kind]
    expected = None
    for storage in STORAGE_MODES:
        wm = manager(workspace, dtype, storage)
        if expected is None:
            expected = whole_direction(wm, spec, workspace)
        held, _ = wm.create(spec)
        assert held.fingerprint == direction_fingerprint(expected, wm.names), storage
        assert held.norm == pytest.approx(direction_norm(expected), rel=1e-12)
        for name in wm.names:
            component = wm._component(held, name)
            if component is None:
                assert not expected[name].any(), (storage, name)
            else:
                assert component.dtype == torch.float32
                assert torch.equal(component.view(torch.int32), expected[name].view(torch.int32)), (storage, name)


@pytest.mark.parametrize("pristine", ["device", "host", "checkpoint"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_states_are_the_same_bits_in_every_storage_and_theta0_place(workspace, dtype, pristine):
    shas = set()
    for storage in STORAGE_MODES:
        wm = manager(workspace, dtype, storage, pristine)
        assert wm.pristine.place == pristine
        ids = [wm.create(SPECS[k])[0].id for k in ("per-tensor", "reference", "interpolation", "adapter")]
        wm.apply(wm.canonical_terms([(ids[0], 0.3), (ids[1], -0.2), (ids[2], 0.5), (ids[3], 0.1)]))
        shas.add(wm.weights_sha256())
        wm.apply(wm.canonical_terms([(ids[3], 0.4)]))  # an adapter touches few tensors: the rest return to theta0
        wm.apply(())
        assert wm.weights_sha256() == wm.model_fingerprint, (storage, pristine)
    assert len(shas) == 1


@pytest.mark.parametrize("pristine", ["device", "checkpoint"])
def test_the_authors_tied_rule_is_the_same_direction_and_bits_in_every_storage(workspace, pristine):
    spec = RandomSpec(123, stream="reference", index=1, tied="reference")
    shas = set()
    for storage in STORAGE_MODES:
        wm = manager(workspace, "bfloat16", storage, pristine)
        whole = reference_tied_direction([(n, wm.pristine[n]) for n in wm.names], parameter_aliases(wm.model), spec)
        held, _ = wm.create(spec)
        assert held.fingerprint == direction_fingerprint(whole, wm.names), storage
        for name in held.covered:
            assert torch.equal(wm._component(held, name), whole[name]), (storage, name)
        wm.apply(wm.canonical_terms([(held.id, 0.4)]))
        shas.add(wm.weights_sha256())
        wm.apply(())
        assert wm.weights_sha256() == wm.model_fingerprint, storage
    assert len(shas) == 1


def test_stream_storage_holds_no_whole_direction(workspace):
    cached, streamed = manager(workspace, "bfloat16", "cache"), manager(workspace, "bfloat16", "stream", "checkpoint")
    assert streamed.pristine_bytes() == 0 and cached.pristine_bytes() == cached.model_bytes()
    for kind in ("per-tensor", "interpolation"):
        assert streamed.create(SPECS[kind])[0].bytes_held == 0
    ref_cached, ref_streamed = cached.create(SPECS["reference"])[0], streamed.create(SPECS["reference"])[0]
    # the reference stream keeps one generator state (5056 bytes) per perturbed tensor
    assert ref_streamed.bytes_held == 5056 * ref_streamed.perturbed_tensors
    lora = streamed.create(SPECS["adapter"])[0]
    assert 0 < lora.bytes_held < cached.create(SPECS["adapter"])[0].bytes_held  # the factors, not the deltas
    assert ref_cached.bytes_held == 4 * sum(cached.pristine[n].numel() for n in ref_cached.covered)


def test_a_reference_tensor_redraws_alone_from_its_recorded_state(workspace):
    wm = manager(workspace, "float32", "stream")
    shapes = [(n, tuple(p.shape)) for n, p in wm.params]
    spec = RandomSpec(5, stream="reference", index=1, selection="all", normalization="none")
    draws = [(name, state, draw()) for name, state, draw in ReferenceStream(shapes, spec).draws({n for n, _ in shapes})]
    whole = random_direction([(n, wm.pristine[n]) for n in wm.names], spec)
    for name, state, g in reversed(draws):  # any order, each alone
        assert state is not None and torch.equal(redraw(state, tuple(g.shape)), g)
        assert torch.equal(g, whole[name])


def test_drawing_the_next_index_starts_where_the_last_one_ended(workspace):
    shapes = [(n, tuple(p.shape)) for n, p in manager(workspace, "float32", "stream").params]
    positions = StreamPositions()
    spec = RandomSpec(9, stream="reference", index=1)
    list(ReferenceStream(shapes, RandomSpec(9, stream="reference", index=0), positions).draws(set()))
    assert positions.nearest(ReferenceStream(shapes, spec).key, 9, 1)[0] == 1  # draw 1's start is known
    remembered = [draw() for _, _, draw in ReferenceStream(shapes, spec, positions).draws(set())]
    replayed = [draw() for _, _, draw in ReferenceStream(shapes, spec, StreamPositions()).draws(set())]
    assert all(torch.equal(a, b) for a, b in zip(remembered, replayed, strict=True))


def test_a_checkpoint_rewritten_on_disk_is_refused_not_read(workspace, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in (workspace / "float32").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    loaded = load_model(resolve_model(str(folder)), device="cpu", dtype="float32")
    before = model_fingerprint(loaded.model)
    wm = WeightManager(loaded.model, model_fingerprint=before, storage="stream", pristine="checkpoint",
                       checkpoint=loaded.checkpoint)
    d, _ = wm.create(RandomSpec(1))
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = bytes(64)  # the last tensor's bytes, rewritten in place
    with weights.open("r+b") as handle:
        handle.write(bytes(data))
    assert model_fingerprint(loaded.model) == before  # the served weights are the process's own memory
    with pytest.raises(FailedPrecondition, match="changed on disk"):
        wm.apply(wm.canonical_terms([(d.id, 0.1)]))


def test_a_checkpoint_that_does_not_hold_the_loaded_weights_is_refused(workspace):
    loaded = load_model(resolve_model(str(workspace / "float32")), device="cpu", dtype="float32")
    with pytest.raises(FailedPrecondition, match="differs from the loaded weight"):
        WeightManager(loaded.model, model_fingerprint="x", pristine="checkpoint", checkpoint=workspace / "second")


def test_builds_and_switches_stop_between_tensors_when_cancelled(workspace):
    wm = manager(workspace, "float32", "stream")
    calls = []

    def after_three() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        wm.create(RandomSpec(3), should_cancel=after_three)
    assert wm.list() == []
    d, _ = wm.create(RandomSpec(3))
    terms = wm.canonical_terms([(d.id, 0.2)])
    calls.clear()
    with pytest.raises(Cancelled):
        wm.apply(terms, should_cancel=after_three)
    state = wm.apply(terms)  # a cancelled switch names no state: it is applied again, in full
    assert state.switched
    reference = manager(workspace, "float32", "cache")
    reference.apply(reference.canonical_terms([(reference.create(RandomSpec(3))[0].id, 0.2)]))
    assert wm.weights_sha256() == reference.weights_sha256() != reference.model_fingerprint
