"""Capability through the Score RPC (client/capability_eval.py) on a real tiny-random server,
against a direct transformers computation on the same model (same tokenisation rule as
server/engine/scoring.py: [BOS] + tok(context) + tok(continuation), each encoded on its own)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from scoring_reference import encode

from safety_landscape.client import client as C
from safety_landscape.client.capability import MCQuestion, mc_accuracy, mc_candidates, mc_prompt
from safety_landscape.client.capability_eval import mc_accuracy_at, mc_logits_at, perplexity_at
from safety_landscape.client.errors import ValidationError
from safety_landscape.server.models.tiny import build_tiny_random

REL = 1e-4

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Perplexity is the exponential of the mean negative log-likelihood.",
    "abc",
    "A somewhat longer sentence, with punctuation; and numbers: 1, 2, 3.",
]

QUESTIONS = [
    MCQuestion("What is 2 + 2?", ("3", "4", "5", "22"), 1, "elementary_mathematics"),
    MCQuestion("Which planet is known as the red planet?", ("Venus", "Mars", "Jupiter", "Saturn"), 1, "astronomy"),
    MCQuestion("Water boils at sea level at", ("50 C", "90 C", "100 C", "120 C"), 2, "physics"),
    MCQuestion("The capital of France is", ("Paris", "Rome", "Berlin", "Madrid"), 0, "geography"),
    MCQuestion("Which is a mammal?", ("Shark", "Trout", "Dolphin", "Octopus"), 2, "biology"),
    MCQuestion("Pick the prime", ("4", "6", "8", "7"), 3, ""),
    MCQuestion("Two-choice: up or down?", ("up", "down"), 0, ""),
]
SHOTS = [
    MCQuestion("What is 1 + 1?", ("1", "2", "3", "4"), 1),
    MCQuestion("What colour is the sky on a clear day?", ("Blue", "Green", "Red", "Black"), 0),
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_random()


@torch.inference_mode()
def direct_perplexity(model, tokenizer, texts) -> float:
    total_lp, total_n = 0.0, 0
    for text in texts:
        ids, c = encode(tokenizer, "", text)
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        first = max(c, 1)
        total_lp += sum(float(lp[j - 1, ids[j]]) for j in range(first, len(ids)))
        total_n += len(ids) - first
    return math.exp(-total_lp / total_n)


@torch.inference_mode()
def direct_letter_logits(model, tokenizer, questions, shots, mc_format="harness") -> list[list[float]]:
    out = []
    for q in questions:
        ids, c = encode(tokenizer, mc_prompt(q, shots=shots, mc_format=mc_format), " A")
        logits = model(torch.tensor([ids[:c]])).logits[0, -1].float()
        cands = [tokenizer.encode(s, add_special_tokens=False)[0]
                 for s in mc_candidates(len(q.choices), mc_format=mc_format)]
        out.append([float(logits[t]) for t in cands])
    return out


def test_perplexity_matches_direct_computation(client, tiny):
    model, tok = tiny
    got = perplexity_at(client, TEXTS)
    assert got == pytest.approx(direct_perplexity(model, tok, TEXTS), rel=REL)
    assert got > 1.0
    # chunking does not change the number
    assert perplexity_at(client, TEXTS, chunk=1) == pytest.approx(got, rel=1e-6)


def test_mc_accuracy_matches_direct_computation(client, tiny):
    model, tok = tiny
    expected_logits = direct_letter_logits(model, tok, QUESTIONS, SHOTS)
    got_logits = mc_logits_at(client, QUESTIONS, SHOTS, chunk=3)
    assert len(got_logits) == len(QUESTIONS)
    for got, exp, q in zip(got_logits, expected_logits, QUESTIONS, strict=True):
        assert len(got) == len(q.choices)
        assert got == pytest.approx(exp, rel=REL, abs=1e-4)
    expected = mc_accuracy(QUESTIONS, expected_logits)
    assert mc_accuracy_at(client, QUESTIONS, SHOTS) == pytest.approx(expected)
    # zero-shot is a different prompt, still the same computation
    zero = mc_accuracy(QUESTIONS, direct_letter_logits(model, tok, QUESTIONS, ()))
    assert mc_accuracy_at(client, QUESTIONS) == pytest.approx(zero)


def test_mc_reference_format_reads_the_unspaced_letters(client, tiny):
    """The reference variant sends its own prompt and the letters "A".."D" (each encoded as given:
    on this byte-level vocabulary other tokens than " A".." D"), matching a direct computation."""
    model, tok = tiny
    assert [tok.encode(s, add_special_tokens=False)[0] for s in mc_candidates()] != [
        tok.encode(s, add_special_tokens=False)[0] for s in mc_candidates(mc_format="reference")]
    expected = direct_letter_logits(model, tok, QUESTIONS, SHOTS, mc_format="reference")
    got = mc_logits_at(client, QUESTIONS, SHOTS, mc_format="reference")
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, rel=REL, abs=1e-4)
    assert got != mc_logits_at(client, QUESTIONS, SHOTS)
    with pytest.raises(ValidationError, match="unknown MMLU format"):
        mc_logits_at(client, QUESTIONS, mc_format="lm-eval")


def test_perplexity_at_a_perturbation_matches_the_perturbed_model(client, tiny_server, tiny):
    model, tok = tiny
    at = C.perturbation([(C.random_direction(7), 0.3)])
    origin = perplexity_at(client, TEXTS)
    perturbed = perplexity_at(client, TEXTS, at=at)
    assert perturbed != pytest.approx(origin, rel=1e-3)
    # The host applies the request's weights right before the work; read them back once idle.
    client.set_coefficients(at)
    try:
        live = tiny_server.engine.model
        twin = copy.deepcopy(model)
        twin.load_state_dict({k: v.detach().clone() for k, v in live.state_dict().items()})
    finally:
        client.set_coefficients(C.perturbation())
    assert perturbed == pytest.approx(direct_perplexity(twin, tok, TEXTS), rel=REL)
    # the MC path evaluates at the perturbation too
    perturbed_logits = mc_logits_at(client, QUESTIONS[:3], at=at)
    assert perturbed_logits[0] == pytest.approx(direct_letter_logits(twin, tok, QUESTIONS[:1], ())[0], rel=REL, abs=1e-4)
    # and back at the origin the numbers are the origin's again (absolute coefficients)
    assert perplexity_at(client, TEXTS) == pytest.approx(origin, rel=1e-6)


def test_bad_input_is_a_validation_error(client):
    with pytest.raises(ValidationError):
        perplexity_at(client, [])
    with pytest.raises(ValidationError):
        perplexity_at(client, ["ok", ""])
    with pytest.raises(ValidationError):
        mc_accuracy_at(client, [])
