"""Tied parameters: ``tied = "reference"`` reproduces the authors' rule bit for bit on a tiny
Llama with tied embeddings (a draw for every state-dict name, each added to the shared tensor),
``tied = "once"`` stays the default and keeps every existing id, and the rule travels over the
real gRPC server."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from safety_landscape.client import client as C
from safety_landscape.client.builders import message_dict
from safety_landscape.client.errors import InvalidArgumentError, ValidationError
from safety_landscape.server.convert import direction_spec_from_pb, direction_spec_to_pb
from safety_landscape.server.engine.directions import (
    RandomSpec,
    Stream,
    Tied,
    direction_id,
    parameter_aliases,
    random_direction,
    reference_tied_direction,
    unique_parameters,
)
from safety_landscape.server.engine.weights import WeightManager, model_fingerprint
from safety_landscape.server.errors import FailedPrecondition, InvalidArgument

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
REF = dict(stream=Stream.REFERENCE)


def tiny_llama(*, tied: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg).eval()


def authors_directions(model: torch.nn.Module, seed: int, ndirs: int) -> list[dict[str, torch.Tensor]]:
    """The reference's ``rand_norm_gaussian_like`` re-expressed: after ``torch.manual_seed(seed)``,
    each direction walks ``state_dict()`` (both tied names included) drawing ``torch.randn`` per
    name, zeroing names containing "norm", else ``dir / torch.norm(dir)`` then ``*= ||W||.item()``."""
    weights = model.state_dict()
    torch.manual_seed(seed)
    out = []
    for _ in range(ndirs):
        dirs = {}
        for name in weights:
            d = torch.randn(size=weights[name].size())
            if "norm" in name.lower():
                d = d.fill_(0)
            else:
                d = d / torch.norm(d)
                d *= weights[name].norm().item()
            dirs[name] = d
        out.append(dirs)
    return out


def applied_by_authors(dirs: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What one unit step of the reference adds to each underlying tensor: ``weights[name] +=
    dirs[name]`` for every name, on a state dict whose tied names share one tensor."""
    step = {name: torch.zeros_like(w) for name, w in unique_parameters(model)}
    owner = dict(parameter_aliases(model))
    for name, d in dirs.items():
        step[owner[name]] += d
    return step


@pytest.fixture(scope="module")
def tied_model():
    return tiny_llama()


def test_state_dict_names_map_to_the_tensor_they_share(tied_model):
    aliases = parameter_aliases(tied_model)
    assert [n for n, _ in aliases] == list(tied_model.state_dict())
    assert dict(aliases)[HEAD] == EMBED
    assert all(owner == name for name, owner in aliases if name != HEAD)
    assert [n for n, _ in unique_parameters(tied_model)] == [n for n, _ in aliases if n != HEAD]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_tied_reference_equals_the_authors_rule_bit_for_bit(tied_model, index):
    authors = authors_directions(tied_model, seed=123, ndirs=3)[index]
    expected = applied_by_authors(authors, tied_model)
    ours = reference_tied_direction(unique_parameters(tied_model), parameter_aliases(tied_model),
                                    RandomSpec(seed=123, tied=Tied.REFERENCE, **REF, index=index))
    assert list(ours) == list(expected)
    for name in ours:
        assert torch.equal(ours[name], expected[name]), name
    # the shared tensor moves by the sum of two independent draws, each of norm ||W||: ~sqrt(2)
    ratio = float(ours[EMBED].norm() / tied_model.model.embed_tokens.weight.detach().norm())
    assert 1.3 < ratio < 1.5


def test_once_shifts_the_stream_after_the_first_draw(tied_model):
    """With "once" draw 0 equals the authors' on every tensor but the shared one (whose lm_head
    draw is missing); draw 1 starts one tensor early, so its tensors all differ."""
    authors = [applied_by_authors(d, tied_model) for d in authors_directions(tied_model, seed=123, ndirs=2)]
    params = unique_parameters(tied_model)
    once = [random_direction(params, RandomSpec(seed=123, **REF, index=i)) for i in (0, 1)]
    assert not torch.equal(once[0][EMBED], authors[0][EMBED])
    assert all(torch.equal(once[0][n], authors[0][n]) for n, _ in params if n != EMBED)
    differ = [n for n, _ in params if "norm" not in n and not torch.equal(once[1][n], authors[1][n])]
    assert differ == [n for n, _ in params if "norm" not in n]


def test_without_tied_tensors_both_rules_give_the_same_bits():
    model = tiny_llama(tied=False)
    params, aliases = unique_parameters(model), parameter_aliases(model)
    for index in (0, 1):
        once = random_direction(params, RandomSpec(seed=7, **REF, index=index))
        ref = reference_tied_direction(params, aliases, RandomSpec(seed=7, **REF, index=index, tied="reference"))
        assert all(torch.equal(once[n], ref[n]) for n, _ in params)
        authors = authors_directions(model, seed=7, ndirs=2)[index]
        assert all(torch.equal(once[n], authors[n]) for n, _ in params)


def test_weight_manager_applies_the_sum_to_the_shared_tensor(tied_model):
    model = tiny_llama()
    wm = WeightManager(model, model_fingerprint=model_fingerprint(model))
    held, _ = wm.create(RandomSpec(seed=123, tied="reference", **REF))
    authors = applied_by_authors(authors_directions(model, seed=123, ndirs=1)[0], model)
    assert held.tensors is not None and torch.equal(held.tensors[EMBED], authors[EMBED])
    w0 = model.lm_head.weight.detach().clone()
    wm.apply(wm.canonical_terms([(held.id, 0.5)]))
    change = float((model.lm_head.weight.detach() - w0).norm() / w0.norm())
    assert 0.65 < change < 0.76  # the 0.707 at |a| = 0.5, against 0.5 for "once"
    once, _ = wm.create(RandomSpec(seed=123, **REF))
    wm.apply(wm.canonical_terms([(once.id, 0.5)]))
    assert abs(float((model.lm_head.weight.detach() - w0).norm() / w0.norm()) - 0.5) < 1e-5


def test_spec_rules_and_ids():
    with pytest.raises(InvalidArgument, match="stream"):
        RandomSpec(seed=1, tied="reference")  # per_tensor stream
    with pytest.raises(InvalidArgument):
        RandomSpec(seed=1, tied="twice")
    once = RandomSpec(seed=123)
    assert "tied" not in once.canonical() and direction_id(once) == "d-2ed389096875f97d"  # ids stay as they were
    assert direction_id(RandomSpec(seed=123, **REF, tied="reference")) != direction_id(RandomSpec(seed=123, **REF))
    with pytest.raises(InvalidArgument, match="reference_tied_direction"):
        random_direction(unique_parameters(tiny_llama()), RandomSpec(seed=1, **REF, tied="reference"))


def test_a_state_dict_buffer_is_refused():
    model = tiny_llama()
    model.register_buffer("scale", torch.ones(3))  # persistent: the reference would draw for it
    with pytest.raises(FailedPrecondition, match="buffer"):
        reference_tied_direction(unique_parameters(model), parameter_aliases(model),
                                 RandomSpec(seed=1, **REF, tied="reference"))


def test_the_wire_field_has_presence_and_round_trips():
    once = C.random_direction(123, stream="reference")
    assert not once.random.HasField("tied") and "tied" not in message_dict(once.random)  # content keys unchanged
    ref = C.random_direction(123, stream="reference", tied="reference")
    spec = direction_spec_from_pb(ref)
    assert spec == RandomSpec(seed=123, stream="reference", tied="reference")
    assert direction_spec_to_pb(spec) == ref
    assert not direction_spec_to_pb(direction_spec_from_pb(once)).random.HasField("tied")
    with pytest.raises(ValidationError, match="stream"):
        C.random_direction(1, tied="reference")


def test_over_grpc_the_rule_changes_the_direction(client):
    once = client.create_direction(C.random_direction(123, stream="reference"))
    ref = client.create_direction(C.random_direction(123, stream="reference", tied="reference"))
    assert ref.id != once.id and ref.fingerprint != once.fingerprint
    assert ref.norm > once.norm  # the tied embedding carries two draws
    bad = C.random_direction(123, stream="reference", tied="reference")
    bad.random.stream = C.pb.RANDOM_STREAM_PER_TENSOR
    with pytest.raises(InvalidArgumentError, match="stream"):
        client.create_direction(bad)
