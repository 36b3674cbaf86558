"""Direction maths on a tiny real Llama built in code: normalisation, selection, tied weights,
determinism (incl. the authors' reference stream), ids, interpolation, LoRA adapters, bf16."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from safety_landscape.server.engine.directions import (
    AdapterSpec,
    InterpolationSpec,
    Normalization,
    RandomSpec,
    Selection,
    Stream,
    adapter_direction,
    direction_fingerprint,
    direction_id,
    direction_norm,
    interpolation_direction,
    is_perturbed,
    load_safetensors_checkpoint,
    random_direction,
    random_tensor,
    unique_parameters,
)
from safety_landscape.server.errors import FailedPrecondition, InvalidArgument

REL = 1e-5


def tiny_llama(seed: int = 0, **extra) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        **extra,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture(scope="module")
def params(model):
    return unique_parameters(model)


@pytest.fixture(scope="module")
def biased_params():
    m = tiny_llama(attention_bias=True, mlp_bias=True)
    # HF zero-initialises biases, and a layer-normalised direction of a zero tensor is zero:
    # give them values so that "perturbed" and "zeroed" differ.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.02)
    return unique_parameters(m)


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def fnorm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach().double()))


# ---------------------------------------------------------------- normalisation and selection


@pytest.mark.parametrize("stream", [Stream.PER_TENSOR, Stream.REFERENCE])
def test_layer_normalised_and_norms_zero(params, stream):
    d = random_direction(params, RandomSpec(seed=123, stream=stream))
    assert list(d) == [n for n, _ in params]
    n_norm = 0
    for name, w in params:
        assert d[name].dtype == torch.float32 and d[name].shape == w.shape
        if "norm" in name:
            n_norm += 1
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            assert rel_err(fnorm(d[name]), fnorm(w)) <= REL, name
    assert n_norm == 2 * 2 + 1  # two per layer + the final norm


def test_filter_normalised_per_row(params):
    d = random_direction(params, RandomSpec(seed=7, normalization=Normalization.FILTER))
    for name, w in params:
        if "norm" in name:
            assert torch.count_nonzero(d[name]) == 0
            continue
        assert w.dim() == 2
        for i in range(w.shape[0]):
            assert rel_err(fnorm(d[name][i]), fnorm(w[i])) <= REL, (name, i)


def test_filter_on_1d_tensor_is_layer(biased_params):
    spec = RandomSpec(seed=7, normalization="filter", selection="all")
    for name, w in biased_params:
        if w.dim() == 1:
            assert rel_err(fnorm(random_tensor(name, w, spec)), fnorm(w)) <= REL, name


def test_normalization_none_is_raw_gaussian(params):
    name, w = params[1]
    d = random_tensor(name, w, RandomSpec(seed=1, normalization="none"))
    assert abs(d.mean().item()) < 0.2 and abs(d.std().item() - 1.0) < 0.2


def test_biasbn_zeroes_exactly_the_1d_tensors(biased_params):
    one_d = [n for n, w in biased_params if w.dim() <= 1]
    assert any("bias" in n for n in one_d) and any("norm" in n for n in one_d)
    d = random_direction(biased_params, RandomSpec(seed=3, selection=Selection.BIASBN))
    for name, w in biased_params:
        if w.dim() <= 1:
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            assert rel_err(fnorm(d[name]), fnorm(w)) <= REL, name


def test_reference_selection_perturbs_biases_all_perturbs_norms(biased_params):
    ref = random_direction(biased_params, RandomSpec(seed=3))
    every = random_direction(biased_params, RandomSpec(seed=3, selection="all"))
    for name, w in biased_params:
        assert torch.count_nonzero(every[name]) == w.numel(), name
        if "bias" in name:
            assert rel_err(fnorm(ref[name]), fnorm(w)) <= REL
        # per-tensor stream: selection does not change a selected tensor's numbers
        if "norm" not in name:
            assert torch.equal(ref[name], every[name])


def test_include_exclude_patterns(params):
    spec = RandomSpec(seed=5, include=("model.layers.*",), exclude=("*.mlp.*", "*.k_proj.*"))
    d = random_direction(params, spec)
    for name, w in params:
        expected = name.startswith("model.layers.") and ".mlp." not in name and ".k_proj." not in name
        expected = expected and "norm" not in name
        assert is_perturbed(name, w, spec) == expected, name
        assert (torch.count_nonzero(d[name]) > 0) == expected, name
    assert is_perturbed("model.layers.0.self_attn.q_proj.weight", params[1][1], spec)
    # exclude alone
    only_ex = RandomSpec(seed=5, exclude=["model.embed_tokens.weight"])
    assert only_ex.exclude == ("model.embed_tokens.weight",)
    assert not is_perturbed("model.embed_tokens.weight", params[0][1], only_ex)


# ---------------------------------------------------------------- tied embeddings


def test_tied_embedding_once_and_lm_head_follows(model, params):
    names = [n for n, _ in params]
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert "lm_head.weight" not in names and names.count("model.embed_tokens.weight") == 1
    assert names == [n for n, _ in model.named_parameters()]

    d = random_direction(params, RandomSpec(seed=11))
    emb = model.model.embed_tokens.weight
    assert rel_err(fnorm(d["model.embed_tokens.weight"]), fnorm(emb)) <= REL

    m = tiny_llama()
    before = m.lm_head.weight.detach().clone()
    with torch.no_grad():
        for name, p in unique_parameters(m):
            p.add_(d[name] * 0.5)
    # perturbed once: the change seen through lm_head is exactly 0.5 * d, not 1.0 * d
    change = m.lm_head.weight.detach() - before
    torch.testing.assert_close(change, 0.5 * d["model.embed_tokens.weight"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- determinism


def test_same_spec_bit_identical(params):
    names = [n for n, _ in params]
    for stream in Stream:
        spec = RandomSpec(seed=42, stream=stream, index=1)
        a, b = random_direction(params, spec), random_direction(params, spec)
        assert all(torch.equal(a[n], b[n]) for n in names)
        assert direction_fingerprint(a, names) == direction_fingerprint(b, names)


@pytest.mark.parametrize("stream", list(Stream))
def test_seed_and_index_change_the_direction(params, stream):
    names = [n for n, _ in params]
    base = random_direction(params, RandomSpec(seed=42, stream=stream))
    other_seed = random_direction(params, RandomSpec(seed=43, stream=stream))
    other_index = random_direction(params, RandomSpec(seed=42, stream=stream, index=1))
    fp = direction_fingerprint(base, names)
    for other in (other_seed, other_index):
        assert direction_fingerprint(other, names) != fp
        assert not torch.equal(other[names[0]], base[names[0]])


def test_per_tensor_component_regenerates_alone(params):
    spec = RandomSpec(seed=9, index=2)
    full = random_direction(params, spec)
    for name, w in reversed(params):  # any order, one at a time
        assert torch.equal(random_tensor(name, w, spec), full[name])


def test_reference_stream_matches_authors_loop(params):
    seed = 123
    # The reference: torch.manual_seed(seed) once, then each direction draws torch.randn for EVERY
    # parameter in order (norms too), layer-normalises, and zeroes the norm tensors.
    torch.manual_seed(seed)
    draws = []
    for _ in range(2):
        draw = {}
        for name, w in params:
            g = torch.randn(w.shape)
            g = torch.zeros_like(g) if "norm" in name else g / torch.norm(g) * torch.norm(w.detach())
            draw[name] = g
        draws.append(draw)
    torch.manual_seed(0)  # our draw must not depend on the global generator state
    for index in (0, 1):
        ours = random_direction(params, RandomSpec(seed=seed, stream=Stream.REFERENCE, index=index))
        for name, _ in params:
            torch.testing.assert_close(ours[name], draws[index][name], rtol=1e-6, atol=1e-7)


def test_reference_stream_refused_per_tensor(params):
    name, w = params[0]
    with pytest.raises(InvalidArgument):
        random_tensor(name, w, RandomSpec(seed=1, stream="reference"))


def test_spec_validation():
    with pytest.raises(InvalidArgument):
        RandomSpec(seed=-1)
    with pytest.raises(InvalidArgument):
        RandomSpec(seed=1, index=-1)
    with pytest.raises(InvalidArgument):
        RandomSpec(seed=1, normalization="sphere")
    assert RandomSpec(seed=1, normalization="filter").normalization is Normalization.FILTER


# ---------------------------------------------------------------- ids


def test_direction_id_stable_and_distinct():
    a = RandomSpec(seed=123)
    assert direction_id(a) == direction_id(RandomSpec(seed=123, normalization="layer"))
    assert direction_id(a).startswith("d-") and len(direction_id(a)) == 18
    assert a.canonical()["kind"] == "random"
    ids = {
        direction_id(s)
        for s in [
            a,
            RandomSpec(seed=124),
            RandomSpec(seed=123, index=1),
            RandomSpec(seed=123, normalization="filter"),
            RandomSpec(seed=123, selection="biasbn"),
            RandomSpec(seed=123, stream="reference"),
            RandomSpec(seed=123, include=("model.*",)),
            RandomSpec(seed=123, exclude=("model.*",)),
            InterpolationSpec("chat"),
            InterpolationSpec("base"),
            AdapterSpec("lora-1"),
            AdapterSpec("chat"),
        ]
    }
    assert len(ids) == 12
    # pinned: a change to the canonical form changes every stored id, so it must be deliberate
    assert direction_id(a) == "d-2ed389096875f97d"
    assert direction_id(InterpolationSpec("chat")) == "d-dd65fd9b49d55f71"


# ---------------------------------------------------------------- interpolation


def test_interpolation_reaches_target(params, tmp_path):
    target_model = tiny_llama(seed=1)
    target_model.save_pretrained(tmp_path / "target")  # a real safetensors checkpoint
    target = load_safetensors_checkpoint(tmp_path / "target")
    d = interpolation_direction(params, target)
    for name, w in params:
        assert d[name].dtype == torch.float32
        assert torch.equal(d[name], target[name].float() - w.detach().float()), name
    m = tiny_llama()
    with torch.no_grad():
        for name, p in unique_parameters(m):
            p.add_(1.0 * d[name])
    for name, p in target_model.named_parameters():
        torch.testing.assert_close(dict(m.named_parameters())[name], p, rtol=0, atol=1e-6)
    # the tied lm_head: absent from the checkpoint, or present and equal to the embedding
    with_head = dict(target, **{"lm_head.weight": target["model.embed_tokens.weight"].clone()})
    interpolation_direction(params, with_head)


def test_interpolation_shape_mismatch_and_missing(params):
    target = {n: w.detach().clone() for n, w in params}
    bad = dict(target)
    bad["model.layers.1.mlp.up_proj.weight"] = torch.zeros(64, 31)
    with pytest.raises(FailedPrecondition, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*\(64, 31\).*\(64, 32\)"):
        interpolation_direction(params, bad)
    missing = dict(target)
    del missing["model.layers.0.self_attn.o_proj.weight"]
    with pytest.raises(FailedPrecondition, match=r"model\.layers\.0\.self_attn\.o_proj\.weight"):
        interpolation_direction(params, missing)
    extra = dict(target, **{"model.layers.2.mlp.up_proj.weight": torch.ones(3)})
    with pytest.raises(FailedPrecondition, match=r"model\.layers\.2\.mlp\.up_proj\.weight"):
        interpolation_direction(params, extra)


# ---------------------------------------------------------------- checkpoints


def test_sharded_checkpoint_and_pickle_refused(params, tmp_path):
    m = tiny_llama(seed=2)
    m.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    loaded = load_safetensors_checkpoint(tmp_path / "sharded")
    for name, p in m.named_parameters():
        assert torch.equal(loaded[name], p.detach()), name

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"x": torch.zeros(1)}, pickled / "pytorch_model.bin")
    with pytest.raises(FailedPrecondition, match="only safetensors"):
        load_safetensors_checkpoint(pickled)
    with pytest.raises(FailedPrecondition, match="only safetensors"):
        load_safetensors_checkpoint(pickled / "pytorch_model.bin")
    with pytest.raises(FailedPrecondition):
        load_safetensors_checkpoint(tmp_path / "nowhere")


# ---------------------------------------------------------------- LoRA adapters


def write_adapter(path, params, *, r=4, alpha=8, modules=("q_proj", "v_proj"), rslora=False, seed=0):
    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    shapes = dict((n, tuple(w.shape)) for n, w in params)
    tensors, expected = {}, {}
    for layer in range(2):
        for mod in modules:
            module = f"model.layers.{layer}.self_attn.{mod}"
            out_f, in_f = shapes[module + ".weight"]
            a = torch.randn(r, in_f, generator=gen)
            b = torch.randn(out_f, r, generator=gen)
            tensors[f"base_model.model.{module}.lora_A.weight"] = a
            tensors[f"base_model.model.{module}.lora_B.weight"] = b
            scale = alpha / (r**0.5) if rslora else alpha / r
            expected[module + ".weight"] = (b @ a) * scale
    config = {
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": alpha,
        "target_modules": list(modules),
        "use_rslora": rslora,
        "fan_in_fan_out": False,
        "bias": "none",
    }
    (path / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return expected


@pytest.mark.parametrize("rslora", [False, True])
def test_adapter_delta(params, tmp_path, rslora):
    expected = write_adapter(tmp_path / "lora", params, rslora=rslora)
    assert len(expected) == 4
    d = adapter_direction(params, tmp_path / "lora")
    assert list(d) == [n for n, _ in params]
    for name, w in params:
        assert d[name].dtype == torch.float32 and d[name].shape == w.shape
        if name in expected:
            torch.testing.assert_close(d[name], expected[name], rtol=1e-6, atol=1e-6)
        else:
            assert torch.count_nonzero(d[name]) == 0, name


def test_adapter_fan_in_fan_out_transposes(params, tmp_path):
    expected = write_adapter(tmp_path / "lora", params, modules=("q_proj",))  # q_proj is square
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    (tmp_path / "lora" / "adapter_config.json").write_text(json.dumps(dict(config, fan_in_fan_out=True)))
    d = adapter_direction(params, tmp_path / "lora")
    for name, delta in expected.items():
        torch.testing.assert_close(d[name], delta.T, rtol=1e-6, atol=1e-6)


def test_adapter_errors(params, tmp_path):
    only_bin = tmp_path / "bin"
    only_bin.mkdir()
    (only_bin / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    torch.save({}, only_bin / "adapter_model.bin")
    with pytest.raises(FailedPrecondition, match="only safetensors"):
        adapter_direction(params, only_bin)

    unknown = tmp_path / "unknown"
    write_adapter(unknown, params)
    tensors = {
        "base_model.model.model.layers.0.self_attn.qq_proj.lora_A.weight": torch.zeros(4, 32),
        "base_model.model.model.layers.0.self_attn.qq_proj.lora_B.weight": torch.zeros(32, 4),
    }
    save_file(tensors, str(unknown / "adapter_model.safetensors"))
    with pytest.raises(FailedPrecondition, match=r"qq_proj"):
        adapter_direction(params, unknown)

    wrong = tmp_path / "wrong"
    write_adapter(wrong, params)
    tensors = {
        "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": torch.zeros(4, 32),
        "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": torch.zeros(32, 4),  # k_proj is 16 x 32
    }
    save_file(tensors, str(wrong / "adapter_model.safetensors"))
    with pytest.raises(FailedPrecondition, match=r"k_proj.*\(32, 32\).*\(16, 32\)"):
        adapter_direction(params, wrong)

    with pytest.raises(FailedPrecondition, match=r"adapter_config.json"):
        adapter_direction(params, tmp_path / "empty")


# ---------------------------------------------------------------- bf16 and helpers


def test_bf16_weights_give_fp32_directions(tmp_path):
    m = tiny_llama().to(torch.bfloat16)
    params = unique_parameters(m)
    for stream in Stream:
        spec = RandomSpec(seed=123, stream=stream, index=1, normalization="filter" if stream is Stream.REFERENCE else "layer")
        d = random_direction(params, spec)
        for name, w in params:
            assert d[name].dtype == torch.float32
            if "norm" in name:
                continue
            if spec.normalization is Normalization.LAYER:
                assert rel_err(fnorm(d[name]), fnorm(w)) <= 1e-3, name
            else:
                for i in range(0, w.shape[0], 7):
                    assert rel_err(fnorm(d[name][i]), fnorm(w[i])) <= 1e-3, (name, i)
    names = [n for n, _ in params]
    bf = {n: w.detach() for n, w in params}
    assert direction_fingerprint(bf, names) == direction_fingerprint({k: v.clone() for k, v in bf.items()}, names)
    assert direction_fingerprint(bf, names) != direction_fingerprint({k: v.float() for k, v in bf.items()}, names)


def test_direction_norm_and_fingerprint_order(params):
    d = random_direction(params, RandomSpec(seed=1))
    expected = sum(fnorm(w) ** 2 for n, w in params if "norm" not in n) ** 0.5
    assert rel_err(direction_norm(d), expected) <= REL
    names = [n for n, _ in params]
    assert direction_fingerprint(d, names) != direction_fingerprint(d, list(reversed(names)))
    with pytest.raises(FailedPrecondition, match="nope"):
        direction_fingerprint(d, ["nope"])
