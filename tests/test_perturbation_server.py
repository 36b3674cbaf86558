"""The perturbation engine, proven through the REAL gRPC server and the client library.

Content-addressed directions (create/list/delete, the LRU cap, per-tenant cap), agreement between
two server processes and between cache/regenerate storage, absolute coefficients and weight-state
fingerprints, concurrent clients at different weights, and interpolation/adapter directions from
an operator registry. Every server here is real (in-process on a loopback port, or a
``visage-server`` subprocess) and holds the real tiny-random model on CPU.
"""

from __future__ import annotations

import json
import random
import threading

import pytest
import torch
from safetensors.torch import save_file
from serving import ServerProcess, running_server

from safety_landscape.client import client as C
from safety_landscape.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ValidationError,
)
from safety_landscape.server.engine.directions import RandomSpec, adapter_direction, direction_id, unique_parameters
from safety_landscape.server.engine.weights import model_fingerprint
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.models.tiny import tiny_config
from safety_landscape.v1 import landscape_pb2 as pb

PROMPTS = ["Tell me how to pick a lock.", "Write a poem about the sea.", "How do I make a cake?"]
GREEDY = C.generation(12)


def texts(resp: pb.GenerateResponse) -> list[str]:
    return [c.text for c in resp.completions]


def ids(c: C.Client) -> set[str]:
    return {d.id for d in c.list_directions().directions}


def raw_term(direction_id: str, coefficient: float) -> pb.Perturbation:
    """A perturbation built without the client's checks, to reach the server's own validation."""
    return pb.Perturbation(terms=[pb.Term(direction_id=direction_id, coefficient=coefficient)])


# ---------------------------------------------------------------- content ids, list, delete


def test_directions_are_named_by_content(client):
    first = client.create_direction(C.random_direction(101))
    again = client.create_direction(C.random_direction(101))
    other = client.create_direction(C.random_direction(102))
    assert first.created and not again.created
    assert first.id == again.id and first.fingerprint == again.fingerprint
    assert other.id != first.id and other.fingerprint != first.fingerprint
    assert first.id.startswith("d-")
    # the unspecified enum values mean layer/reference/per_tensor: the same spec, the same id
    assert client.create_direction(pb.DirectionSpec(random=pb.RandomDirectionSpec(seed=101))).id == first.id
    assert first.bytes_held > 0 and 0 < first.perturbed_tensors < first.total_tensors  # norms are zero
    assert first.norm > 0

    listing = client.list_directions()
    assert {first.id, other.id} <= {d.id for d in listing.directions}
    assert listing.memory.directions_bytes >= first.bytes_held + other.bytes_held
    assert listing.memory.pristine_bytes == listing.memory.model_bytes > 0

    assert client.delete_direction(other.id) is True
    assert other.id not in ids(client)
    with pytest.raises(NotFoundError, match=other.id):
        client.delete_direction(other.id)
    recreated = client.create_direction(C.random_direction(102))
    assert recreated.created and recreated.id == other.id and recreated.fingerprint == other.fingerprint
    client.delete_direction(first.id)
    client.delete_direction(recreated.id)


def test_deleting_the_applied_direction_returns_to_theta0(client):
    fingerprint = client.info().model_fingerprint
    d = client.create_direction(C.random_direction(103))
    state = client.set_coefficients(C.perturbation([(d.id, 0.2)]), verify=True)
    assert state.weights_sha256 != fingerprint
    client.delete_direction(d.id)
    assert client.set_coefficients(C.perturbation(), verify=True).weights_sha256 == fingerprint


# ---------------------------------------------------------------- the cap on held directions


def test_cap_evicts_least_recently_used_not_applied():
    with running_server(limits={"max_directions": 2}) as server, server.client() as c:
        spec_a, spec_b, spec_c, spec_d = (C.random_direction(s) for s in (11, 12, 13, 14))
        a, b = c.create_direction(spec_a), c.create_direction(spec_b)
        before_b = texts(c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(b.id, 0.1)])))
        # Apply A (A becomes the most recent), then touch B by creating it again: A is now the
        # least recently used, but the applied state uses it, so creating C evicts B.
        c.set_coefficients(C.perturbation([(a.id, 0.1)]))
        assert not c.create_direction(spec_b).created
        cc = c.create_direction(spec_c)
        assert ids(c) == {a.id, cc.id}

        # A term naming only the evicted id: NOT_FOUND that says what happened and what to do.
        with pytest.raises(NotFoundError) as err:
            c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(b.id, 0.1)]))
        assert b.id in err.value.details and "evicted" in err.value.details and "spec" in err.value.details
        # A term sending the spec recreates it transparently: same id, same tensors, same outputs.
        resp = c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(spec_b, 0.1)]))
        assert texts(resp) == before_b
        assert [t.direction_id for t in resp.weight_state.terms] == [b.id]
        held = {d.id: d for d in c.list_directions().directions}
        assert set(held) == {a.id, b.id}  # C was the LRU one not in use (A was applied)
        assert held[b.id].fingerprint == b.fingerprint

        # Plain LRU once nothing is applied: touch A, then C evicts B.
        c.set_coefficients(C.perturbation())
        c.create_direction(spec_a)
        c.create_direction(spec_c)
        assert ids(c) == {a.id, cc.id}

        # Applying a direction counts as a use: held [A, C] (A older); apply A, then D evicts C.
        c.set_coefficients(C.perturbation([(a.id, 0.05)]))
        c.set_coefficients(C.perturbation())
        d = c.create_direction(spec_d)
        assert ids(c) == {a.id, d.id}

        # A direction created for one term never evicts another term of the same request:
        # touch D, so A is the LRU one; the request names A by id and sends C's spec -> D goes.
        c.create_direction(spec_d)
        resp = c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(a.id, 0.05), (spec_c, 0.05)]))
        assert sorted(t.direction_id for t in resp.weight_state.terms) == sorted([a.id, cc.id])
        assert ids(c) == {a.id, cc.id}

        # Every slot used by the applied state: no room, RESOURCE_EXHAUSTED naming the limit.
        with pytest.raises(ResourceExhaustedError, match="max_directions"):
            c.create_direction(spec_b)
        with pytest.raises(ResourceExhaustedError, match="max_directions"):
            c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(spec_a, 0.1), (spec_b, 0.1), (spec_c, 0.1)]))
        assert c.info().limits.max_directions == 2


def test_per_tenant_cap():
    tokens = "alice:tok-alice:admin,bob:tok-bob:admin"
    limits = {"max_directions_per_tenant": 1}
    with running_server(limits=limits, tokens_env=tokens, require_auth=True) as server, server.client(
        token="tok-alice"
    ) as alice, server.client(token="tok-bob") as bob:
        first = alice.create_direction(C.random_direction(21))
        assert not alice.create_direction(C.random_direction(21)).created  # the same one: no new slot
        with pytest.raises(ResourceExhaustedError, match="max_directions_per_tenant") as err:
            alice.create_direction(C.random_direction(22))
        assert "alice" in err.value.details
        with pytest.raises(ResourceExhaustedError, match="max_directions_per_tenant"):  # on demand too
            alice.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.random_direction(22), 0.1)]))
        assert bob.create_direction(C.random_direction(22)).created  # another tenant's quota
        # alice may use bob's direction (it counts against bob's quota)
        alice.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.random_direction(22), 0.1)]))
        alice.delete_direction(first.id)
        assert alice.create_direction(C.random_direction(23)).created
        assert alice.info().limits.max_directions_per_tenant == 1


# ---------------------------------------------------------------- agreement across processes and storage


def test_same_seed_same_fingerprint_across_processes_and_storage_modes():
    with ServerProcess() as cached, ServerProcess("--direction-storage", "regenerate") as regen:
        cached.wait_serving()
        regen.wait_serving()
        with C.Client(cached.target) as c1, C.Client(regen.target) as c2:
            assert c1.info().limits.direction_storage == "cache"
            assert c2.info().limits.direction_storage == "regenerate"
            assert c1.info().model_fingerprint == c2.info().model_fingerprint
            d1, d2 = c1.create_direction(C.random_direction(7)), c2.create_direction(C.random_direction(7))
            assert d1.id == d2.id and d1.fingerprint == d2.fingerprint
            assert d1.norm == pytest.approx(d2.norm, rel=1e-12)
            assert d1.bytes_held > 0 and d2.bytes_held == 0  # regenerate holds nothing
            assert c2.list_directions().memory.directions_bytes == 0
            e1, e2 = c1.create_direction(C.random_direction(8)), c2.create_direction(C.random_direction(8))
            assert e1.fingerprint == e2.fingerprint != d1.fingerprint
            filt = C.random_direction(7, normalization="filter")
            assert c1.create_direction(filt).fingerprint == c2.create_direction(filt).fingerprint != d1.fingerprint

            at = C.perturbation([(d1.id, 0.05), (e1.id, -0.04)])
            s1, s2 = c1.set_coefficients(at, verify=True), c2.set_coefficients(at, verify=True)
            assert s1.fingerprint == s2.fingerprint and s1.weights_sha256 == s2.weights_sha256
            g1, g2 = c1.generate(PROMPTS, settings=GREEDY, at=at), c2.generate(PROMPTS, settings=GREEDY, at=at)
            assert texts(g1) == texts(g2)
            assert texts(g1) != texts(c1.generate(PROMPTS, settings=GREEDY))  # the point is not theta0
    assert cached.proc.returncode is not None and regen.proc.returncode is not None


# ---------------------------------------------------------------- absolute coefficients


def test_200_random_settings_then_zero_is_theta0_bit_for_bit(client):
    fingerprint = client.info().model_fingerprint
    d1 = client.create_direction(C.random_direction(31)).id
    d2 = client.create_direction(C.random_direction(32, normalization="filter")).id
    rng = random.Random(0)
    seen = set()
    for i in range(200):
        at = C.perturbation([(d1, rng.uniform(-1, 1)), (d2, rng.uniform(-1, 1))])
        state = client.set_coefficients(at, verify=i % 50 == 0)
        seen.add(state.fingerprint)
        if i % 50 == 0:
            assert state.weights_sha256 != fingerprint
    assert len(seen) == 200
    final = client.set_coefficients(C.perturbation([(d1, 0.0), (d2, 0.0)]), verify=True)
    assert final.fingerprint == fingerprint and list(final.terms) == []
    assert final.weights_sha256 == fingerprint
    # ... and that is the fingerprint of a freshly loaded model, computed outside the server
    assert model_fingerprint(load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").model) == fingerprint


def test_points_are_absolute_a_b_a(client):
    d1 = client.create_direction(C.random_direction(41)).id
    d2 = client.create_direction(C.random_direction(42)).id
    point_a = C.perturbation([(d1, 0.05), (d2, -0.03)])
    point_b = C.perturbation([(d1, -0.1)])
    alone = client.generate(PROMPTS, settings=GREEDY, at=point_a)
    sha_a = client.set_coefficients(point_a, verify=True)
    sha_b = client.set_coefficients(point_b, verify=True)
    at_b = client.generate(PROMPTS, settings=GREEDY, at=point_b)
    sha_a2 = client.set_coefficients(point_a, verify=True)
    again = client.generate(PROMPTS, settings=GREEDY, at=point_a)
    assert sha_a.weights_sha256 == sha_a2.weights_sha256 != sha_b.weights_sha256
    assert sha_a.fingerprint == sha_a2.fingerprint == alone.weight_state.fingerprint == again.weight_state.fingerprint
    assert texts(again) == texts(alone) != texts(at_b)
    # the same point in another term order, or split over two terms, names the same weights
    reordered = client.set_coefficients(C.perturbation([(d2, -0.03), (d1, 0.05)]), verify=True)
    assert reordered.fingerprint == sha_a.fingerprint and reordered.weights_sha256 == sha_a.weights_sha256
    assert [(t.direction_id, t.coefficient) for t in sha_a.terms] == sorted([(d1, 0.05), (d2, -0.03)])


def test_bad_coefficients_and_unknown_ids(client):
    d = client.create_direction(C.random_direction(51)).id
    limit = client.info().limits.max_abs_coefficient
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(InvalidArgumentError, match="finite"):
            client.set_coefficients(raw_term(d, bad))
        with pytest.raises(InvalidArgumentError, match="finite"):
            client.generate(PROMPTS, settings=GREEDY, at=raw_term(d, bad))
        with pytest.raises(ValidationError):  # the client refuses before any RPC
            C.perturbation([(d, bad)])
    for bad in (limit * 1.01, -(limit + 1)):
        with pytest.raises(InvalidArgumentError, match="max_abs_coefficient") as err:
            client.set_coefficients(raw_term(d, bad))
        assert str(limit) in err.value.details
    with pytest.raises(InvalidArgumentError, match="max_abs_coefficient"):  # two terms summing past it
        client.set_coefficients(C.perturbation([(d, limit * 0.6), (d, limit * 0.6)]))
    with pytest.raises(InvalidArgumentError, match="max_abs_coefficient"):  # checked before creating
        client.evaluate(C.evaluation_settings(prompts=PROMPTS, max_new_tokens=4),
                        at=C.perturbation([(C.random_direction(52), limit * 2)]))
    assert direction_id(RandomSpec(52)) not in ids(client)
    client.set_coefficients(raw_term(d, limit))  # the limit itself is allowed
    with pytest.raises(NotFoundError, match="d-0000000000000000"):
        client.set_coefficients(raw_term("d-0000000000000000", 0.1))
    with pytest.raises(NotFoundError, match="d-0000000000000000"):
        client.evaluate(C.evaluation_settings(prompts=PROMPTS, max_new_tokens=4), at=raw_term("d-0000000000000000", 0.1))
    client.set_coefficients(C.perturbation())


# ---------------------------------------------------------------- concurrent clients


def test_concurrent_clients_at_different_weights_get_what_they_get_alone(tiny_server):
    points = {
        "one": C.perturbation([(C.random_direction(61), 0.05)]),
        "two": C.perturbation([(C.random_direction(62), -0.05), (C.random_direction(63), 0.04)]),
    }
    settings = C.evaluation_settings(prompt_set="harmful-mini", limit=6, max_new_tokens=10,
                                     keywords=["}", "0"], return_completions=True)

    def run(c: C.Client, name: str, i: int):
        if i % 2 == 0:
            r = c.generate(PROMPTS, settings=GREEDY, at=points[name])
            return r.weight_state.fingerprint, ("gen", texts(r))
        r = c.evaluate(settings, at=points[name])
        verdicts = [(v.jailbroken, v.matched_keyword, v.completion, v.finish_reason) for v in r.verdicts]
        return r.weight_state.fingerprint, ("eval", r.asr, verdicts)

    expected = {}
    with tiny_server.client() as c:
        for name in points:
            expected[name] = [run(c, name, i) for i in range(2)]
    fingerprints = {name: expected[name][0][0] for name in points}
    assert fingerprints["one"] != fingerprints["two"]
    assert expected["one"][0][1] != expected["two"][0][1] and expected["one"][1][1] != expected["two"][1][1]

    results: dict[str, list] = {name: [] for name in points}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(points))

    def hammer(name: str) -> None:
        try:
            with tiny_server.client() as c:
                barrier.wait()
                for i in range(20):
                    results[name].append(run(c, name, i))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(name,)) for name in points]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for name in points:
        assert len(results[name]) == 20
        for i, (fingerprint, outcome) in enumerate(results[name]):
            assert fingerprint == fingerprints[name], (name, i)
            assert outcome == expected[name][i % 2][1], (name, i)


# ---------------------------------------------------------------- registry: interpolation and adapters


def write_lora(path, params, *, r=4, alpha=8, modules=("q_proj", "v_proj"), seed=0):
    """A PEFT LoRA adapter directory written by hand (as tests/test_directions.py does)."""
    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    shapes = {n: tuple(w.shape) for n, w in params}
    tensors = {}
    for layer in range(2):
        for mod in modules:
            module = f"model.layers.{layer}.self_attn.{mod}"
            out_f, in_f = shapes[module + ".weight"]
            tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(r, in_f, generator=gen)
            tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out_f, r, generator=gen) * 0.2
    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": list(modules),
              "use_rslora": False, "fan_in_fan_out": False, "bias": "none"}
    (path / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("registry")
    second = load_model(resolve_model("tiny-random:1"), device="cpu", dtype="float32")
    second.model.save_pretrained(root / "second", safe_serialization=True)
    second.tokenizer.save_pretrained(root / "second")
    config = tiny_config(len(second.tokenizer)).to_dict()
    config.update(hidden_size=32, intermediate_size=64, head_dim=8)  # same layers, other shapes
    wrong = LlamaForCausalLM(LlamaConfig(**config))
    wrong.save_pretrained(root / "wrong", safe_serialization=True)
    base = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").model
    write_lora(root / "lora", unique_parameters(base))
    (root / "registry.toml").write_text(
        '[checkpoints]\nsecond = "second"\nwrong = "wrong"\n[adapters]\nlora = "lora"\n'
    )
    return root


@pytest.fixture(scope="module")
def registry_server(registry_dir):
    with running_server(registry=str(registry_dir / "registry.toml")) as server:
        yield server


def test_interpolation_toward_a_registered_checkpoint(registry_server):
    with registry_server.client() as c:
        assert {(e.name, e.kind) for e in c.list_registry()} == {
            ("second", "checkpoint"), ("wrong", "checkpoint"), ("lora", "adapter")
        }
        d = c.create_direction(C.interpolation_direction("second"))
        assert d.created and d.perturbed_tensors == d.total_tensors and d.bytes_held > 0
        at_one = c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(d.id, 1.0)]))
        halfway = c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(d.id, 0.5)]))
        origin = c.generate(PROMPTS, settings=GREEDY)
    with running_server(model="tiny-random:1") as other, other.client() as c1:
        target = c1.generate(PROMPTS, settings=GREEDY)
    assert texts(at_one) == texts(target) != texts(origin)
    assert texts(halfway) != texts(target)


def test_interpolation_errors(registry_server):
    with registry_server.client() as c:
        with pytest.raises(FailedPreconditionError, match=r"model\.embed_tokens\.weight") as err:
            c.create_direction(C.interpolation_direction("wrong"))
        assert "shape" in err.value.details and "same architecture" in err.value.details
        with pytest.raises(NotFoundError, match="secnod") as err:
            c.create_direction(C.interpolation_direction("secnod"))
        assert "second" in err.value.details  # did you mean
        with pytest.raises(NotFoundError, match="no adapter named 'second'"):  # a checkpoint is not an adapter
            c.create_direction(C.adapter_direction("second"))
        with pytest.raises(NotFoundError):
            c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.interpolation_direction("nope"), 1.0)]))


def test_adapter_direction_through_the_server(registry_server, registry_dir):
    base = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").model
    params = unique_parameters(base)
    delta = adapter_direction(params, registry_dir / "lora")
    with torch.no_grad():
        for name, p in params:
            p.add_(delta[name])
    expected_sha = model_fingerprint(base)
    with registry_server.client() as c:
        d = c.create_direction(C.adapter_direction("lora"))
        assert d.created and d.perturbed_tensors == 4  # q_proj and v_proj in 2 layers
        norm = sum(float(torch.linalg.vector_norm(t.double()) ** 2) for t in delta.values()) ** 0.5
        assert d.norm == pytest.approx(norm, rel=1e-9)
        state = c.set_coefficients(C.perturbation([(d.id, 1.0)]), verify=True)
        assert state.weights_sha256 == expected_sha  # theta0 + 1.0 * (B @ A * alpha / r), exactly
        merged = c.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.adapter_direction("lora"), 1.0)]))
        assert merged.weight_state.fingerprint == state.fingerprint
        assert texts(merged) != texts(c.generate(PROMPTS, settings=GREEDY))
        assert c.set_coefficients(C.perturbation(), verify=True).weights_sha256 == c.info().model_fingerprint
