"""Scoring on the real tiny-random model: against a direct one-text-at-a-time transformers
computation (same tokenisation rule: [BOS] + tok(context) + tok(continuation), each encoded on its
own), batching independence, candidate logits, multiple-choice accuracy, errors and cancellation."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from scoring_reference import encode

from safety_landscape.client.capability import MCQuestion, mc_accuracy, mc_candidates, mc_prompt, perplexity
from safety_landscape.server.engine.scoring import ScoreOutcome, output_head, score
from safety_landscape.server.errors import Cancelled, InvalidArgument
from safety_landscape.server.models.tiny import build_tiny_random, build_tiny_tokenizer

REL = 1e-4

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hi",
    "Perplexity is the exponential of the mean negative log-likelihood.",
    "abc",
    "A somewhat longer sentence, with punctuation; and numbers: 1, 2, 3.",
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_random()


@torch.inference_mode()
def direct(model, tokenizer, context: str, continuation: str) -> tuple[list[float], torch.Tensor]:
    """Per-token logprobs of the continuation, and all logits, for one unpadded sequence."""
    ids, c = encode(tokenizer, context, continuation)
    logits = model(torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    first = max(c, 1)
    return [float(lp[j - 1, ids[j]]) for j in range(first, len(ids))], logits


def test_perplexity_matches_direct_computation(tiny):
    model, tok = tiny
    out = score(model, tok, [("", t) for t in TEXTS], max_batch_size=8)
    total_lp, total_n = 0.0, 0
    for text, o in zip(TEXTS, out, strict=True):
        lps, _ = direct(model, tok, "", text)
        # No BOS in tiny-random: the first byte of each text is not scored.
        assert o.num_tokens == len(tok.encode(text, add_special_tokens=False)) - 1 == len(lps)
        assert o.logprob == pytest.approx(sum(lps), rel=REL)
        assert o.token_logprobs == pytest.approx(lps, rel=REL, abs=1e-6)
        total_lp += sum(lps)
        total_n += len(lps)
    expected = math.exp(-total_lp / total_n)
    got = perplexity([o.logprob for o in out], [o.num_tokens for o in out])
    assert got == pytest.approx(expected, rel=REL)
    assert got > 1.0


def test_batched_equals_unbatched_and_sums(tiny):
    model, tok = tiny
    items = [("Q: what is 2+2?\nA:", " 4"), ("", TEXTS[0]), ("Hello", " world, again and again"), ("x", "y")]
    items += [("", t) for t in TEXTS[1:]]
    one = score(model, tok, items, max_batch_size=1)
    three = score(model, tok, items, max_batch_size=3)
    assert len(one) == len(three) == len(items)
    for a, b, (ctx, cont) in zip(one, three, items, strict=True):
        assert a.num_tokens == b.num_tokens
        assert b.logprob == pytest.approx(a.logprob, rel=1e-5, abs=1e-5)
        assert b.token_logprobs == pytest.approx(a.token_logprobs, rel=1e-5, abs=1e-5)
        assert a.is_greedy == b.is_greedy
        assert math.fsum(b.token_logprobs) == pytest.approx(b.logprob, rel=1e-9, abs=1e-9)
        assert all(x <= 0.0 for x in b.token_logprobs)
        # A non-empty context: every continuation token is scored.
        if ctx:
            assert b.num_tokens == len(tok.encode(cont, add_special_tokens=False))
    assert isinstance(one[0], ScoreOutcome)


def test_is_greedy(tiny):
    model, tok = tiny
    context = "Once upon a time"
    ids = tok.encode(context, add_special_tokens=False)
    with torch.inference_mode():
        for _ in range(4):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    greedy_cont = tok.decode(ids[-4:])
    assert tok.encode(greedy_cont, add_special_tokens=False) == ids[-4:]  # byte-level: round-trips
    # Replace the last greedy token by a different byte: no longer the argmax.
    other_id = tok.convert_tokens_to_ids("~") if ids[-1] != tok.convert_tokens_to_ids("~") else tok.convert_tokens_to_ids("!")
    not_greedy_cont = tok.decode([*ids[-4:-1], other_id])
    g, ng = score(model, tok, [(context, greedy_cont), (context, not_greedy_cont)], max_batch_size=2)
    assert g.is_greedy and not ng.is_greedy
    assert g.num_tokens == ng.num_tokens == 4


def test_candidate_logits_match_direct(tiny):
    model, tok = tiny
    cands = [" A", " B", "C", " yes"]
    first_ids = [tok.encode(c, add_special_tokens=False)[0] for c in cands]
    items = [("Answer:", " A"), ("The capital of France is", " Paris"), ("Z", "z")]
    out = score(model, tok, items, max_batch_size=2, candidates=cands)
    for (ctx, _cont), o in zip(items, out, strict=True):
        with torch.inference_mode():
            ctx_ids = tok.encode(ctx, add_special_tokens=False)
            logits = model(torch.tensor([ctx_ids])).logits[0, -1].float()
        assert len(o.candidate_logits) == len(cands)
        assert o.candidate_logits == pytest.approx([float(logits[i]) for i in first_ids], rel=REL, abs=1e-5)
    # No candidates asked: none returned.
    assert score(model, tok, items[:1], max_batch_size=1)[0].candidate_logits == ()


def test_mc_accuracy_matches_direct(tiny):
    model, tok = tiny
    qs = [
        MCQuestion("What is 1+1?", ("1", "2", "3", "4"), 1, "arithmetic"),
        MCQuestion("Which is a colour?", ("red", "dog", "run", "seven"), 0, "arithmetic"),
        MCQuestion("What is 3*3?", ("6", "8", "9", "12"), 2, "arithmetic"),
        MCQuestion("Which is a prime?", ("4", "6", "8", "7"), 3, "arithmetic"),
    ]
    cands = mc_candidates(4)
    prompts = [mc_prompt(q, shots=[qs[(i + 1) % len(qs)]]) for i, q in enumerate(qs)]
    out = score(model, tok, [(p, cands[q.answer]) for p, q in zip(prompts, qs, strict=True)], max_batch_size=3, candidates=cands)
    got = mc_accuracy(qs, [o.candidate_logits for o in out])
    first_ids = [tok.encode(c, add_special_tokens=False)[0] for c in cands]
    correct = 0
    for p, q, o in zip(prompts, qs, out, strict=True):
        _, logits = direct(model, tok, p, cands[q.answer])
        ctx_len = len(tok.encode(p, add_special_tokens=False))
        letter_logits = logits[ctx_len - 1, first_ids]
        assert o.candidate_logits == pytest.approx(letter_logits.tolist(), rel=REL, abs=1e-5)
        correct += int(letter_logits.argmax()) == q.answer
    assert got == pytest.approx(100.0 * correct / len(qs))


def test_bos_tokenizer_scores_first_token_and_empty_context_candidates(tiny):
    model, _ = tiny
    tok = build_tiny_tokenizer()
    tok.bos_token = "<|im_start|>"
    assert tok.bos_token_id is not None
    text = "Hello there"
    out = score(model, tok, [("", text)], max_batch_size=1, candidates=[" A"])[0]
    lps, logits = direct(model, tok, "", text)
    assert out.num_tokens == len(tok.encode(text, add_special_tokens=False)) == len(lps)
    assert out.logprob == pytest.approx(sum(lps), rel=REL)
    a_id = tok.encode(" A", add_special_tokens=False)[0]
    assert out.candidate_logits == pytest.approx([float(logits[0, a_id])], rel=REL, abs=1e-5)


def test_errors(tiny):
    model, tok = tiny
    with pytest.raises(InvalidArgument, match="items is empty"):
        score(model, tok, [], max_batch_size=2)
    with pytest.raises(InvalidArgument, match=r"items\[1\]\.continuation is empty"):
        score(model, tok, [("a", "b"), ("context", "")], max_batch_size=2)
    with pytest.raises(InvalidArgument, match=r"next_token_candidates\[1\]"):
        score(model, tok, [("a", "b")], max_batch_size=2, candidates=[" A", ""])
    # No BOS and an empty context: no next-token logits to read candidates from.
    with pytest.raises(InvalidArgument, match=r"items\[0\]\.context is empty"):
        score(model, tok, [("", "b")], max_batch_size=2, candidates=[" A"])
    with pytest.raises(InvalidArgument, match="max_batch_size"):
        score(model, tok, [("a", "b")], max_batch_size=0)


def test_cancel_between_batches(tiny):
    model, tok = tiny
    items = [("", t) for t in TEXTS]
    with pytest.raises(Cancelled):
        score(model, tok, items, max_batch_size=2, should_cancel=lambda: True)
    calls = []

    def cancel_on_second_check() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        score(model, tok, items, max_batch_size=2, should_cancel=cancel_on_second_check)
    assert len(calls) == 2


def test_continuations_of_shared_contexts_score_as_each_item_alone(tiny):
    """The referee's scorer (each context run once, its cache copied to its continuations, a prefix
    all contexts share run once) gives score_prepared's figures."""
    from safety_landscape.server.engine.scoring import ScoreInput, score_continuations, score_prepared, token_item

    model, tok = tiny
    system = tok.encode("<|im_start|>system\nYou are a careful assistant.<|im_end|>\n", add_special_tokens=False)
    contexts = [system + tok.encode(f"user: {q}\nassistant:", add_special_tokens=False)
                for q in ("Hi", "How do tides work?", "Name a colour")]
    answers = ["Sure.", "The moon pulls the sea, twice a day.", "Blue", "x" * 30, "a"]
    items = [token_item(ctx, tok.encode(a, add_special_tokens=False)) for ctx in contexts for a in answers]
    prepared = ScoreInput.of(items, ())
    alone = score_prepared(model, tok, prepared, rows=64)
    head = output_head(model)
    assert head is not None and head.slice_tokens >= 1
    narrow = dataclasses.replace(head, slice_tokens=7)  # slices that cut rows apart
    for rows, with_head in ((64, None), (4, None), (64, head), (4, narrow), (1, narrow)):  # contexts split over batches too
        shared = score_continuations(model, tok, prepared, rows=rows, head=with_head)
        for a, b in zip(alone, shared, strict=True):
            assert b.num_tokens == a.num_tokens
            assert b.is_greedy == a.is_greedy
            assert b.logprob == pytest.approx(a.logprob, rel=REL, abs=1e-4)
            assert b.token_logprobs == pytest.approx(a.token_logprobs, rel=REL, abs=1e-4)
    with pytest.raises(Cancelled):
        score_continuations(model, tok, prepared, rows=4, should_cancel=lambda: True)


class _SoftCapped(torch.nn.Module):
    """A model whose logits are more than its output embedding of the decoder's states (Gemma 2's soft cap)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.config = model.config

    def get_decoder(self):
        return self.inner.get_decoder()

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, **inputs):
        out = self.inner(**inputs)
        out.logits = 3.0 * torch.tanh(out.logits / 3.0)
        return out


def test_a_head_that_is_not_the_output_embedding_alone_gets_every_positions_logits(tiny):
    """The probe refuses the sliced head for a soft-capped model, and scoring stays right without it."""
    from safety_landscape.server.engine.scoring import ScoreInput, score_continuations, score_prepared, token_item

    model, tok = tiny
    capped = _SoftCapped(model)
    assert output_head(capped) is None
    context = tok.encode("<|im_start|>system\nBe brief.<|im_end|>\nuser: Hi\nassistant:", add_special_tokens=False)
    prepared = ScoreInput.of([token_item(context, tok.encode(a, add_special_tokens=False)) for a in ("Hello there.", "Hi")], ())
    alone = score_prepared(capped, tok, prepared, rows=8)
    for a, b in zip(alone, score_continuations(capped, tok, prepared, rows=8, head=None), strict=True):
        assert b.token_logprobs == pytest.approx(a.token_logprobs, rel=REL, abs=1e-4)
    with pytest.raises(RuntimeError, match="other logits than the model"):  # a wrong head is caught, never used
        score_continuations(capped, tok, prepared, rows=8, head=output_head(model))


def test_the_referees_stand_in_scores_with_its_own_tensors_through_the_sliced_head(tiny):
    """The resident referee's model-at-other-tensors: its head projects with those tensors (not the live
    weights), and the sliced scorer agrees with every position's logits at them."""
    from safety_landscape.server.engine.referee import _AtTensors
    from safety_landscape.server.engine.scoring import ScoreInput, score_continuations, score_prepared, token_item

    model, tok = tiny
    scaled: dict[int, torch.Tensor] = {}  # tied names (embedding and head) keep one tensor
    tensors = {name: scaled.setdefault(id(t), (1.5 * t if t.is_floating_point() else t).clone())
               for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]}
    other = _AtTensors(model, tensors)
    head = output_head(other)
    assert head is not None
    hidden = torch.randn(2, model.config.hidden_size)
    with torch.inference_mode():
        assert torch.allclose(other.project_hidden(hidden), model.get_output_embeddings()(hidden) * 1.5, rtol=1e-5, atol=1e-5)
    context = tok.encode("<|im_start|>system\nBe brief.<|im_end|>\nuser: Hi\nassistant:", add_special_tokens=False)
    prepared = ScoreInput.of([token_item(context, tok.encode(a, add_special_tokens=False)) for a in ("Hello there.", "Hi")], ())
    at_other = score_prepared(other, tok, prepared, rows=8)
    live = score_prepared(model, tok, prepared, rows=8)
    assert at_other[0].token_logprobs != pytest.approx(live[0].token_logprobs, rel=1e-3)  # the tensors matter
    for a, b in zip(at_other, score_continuations(other, tok, prepared, rows=8, head=head), strict=True):
        assert b.token_logprobs == pytest.approx(a.token_logprobs, rel=REL, abs=1e-4)


def test_a_bf16_model_keeps_its_sliced_head_and_a_soft_cap_is_still_refused(tiny):
    """In bf16 the head check allows the dtype's rounding (two units in the last place: the same product
    through another kernel, as on a GPU, may round an element the other way), so a bf16 model is scored
    through its sliced head; a soft cap is still far beyond it, so a capped bf16 model is refused."""
    from safety_landscape.server.engine.scoring import ScoreInput, score_continuations, score_prepared, token_item

    model, tok = tiny
    half = copy.deepcopy(model).to(torch.bfloat16)
    head = output_head(half)
    assert head is not None
    assert output_head(_SoftCapped(half)) is None
    context = tok.encode("<|im_start|>system\nBe brief.<|im_end|>\nuser: Hi\nassistant:", add_special_tokens=False)
    prepared = ScoreInput.of([token_item(context, tok.encode(a, add_special_tokens=False))
                              for a in ("Hello there.", "Hi", "The tide comes in twice a day.")], ())
    for a, b in zip(score_prepared(half, tok, prepared, rows=8), score_continuations(half, tok, prepared, rows=2, head=head),
                    strict=True):
        assert b.num_tokens == a.num_tokens
        assert b.logprob == pytest.approx(a.logprob, rel=0.05, abs=0.05)  # bf16: two paths, other roundings


def test_the_head_check_allows_a_bf16_rounding_but_not_a_cap_or_a_scale():
    """The check itself: bf16 logits one unit in the last place apart at the largest logit (another
    kernel's rounding) are the same logits; a soft cap or a scale is not, in bf16 or fp32."""
    from safety_landscape.server.engine.scoring import _same_logits

    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        logits = (10 * torch.randn(4, 1000)).to(dtype)
        nudged = logits.clone()
        top = int(logits.abs().argmax())
        nudged.view(-1)[top] = (logits.view(-1)[top].float() * (1 + 2**-7)).to(dtype)
        assert _same_logits(nudged, logits) == (dtype == torch.bfloat16)  # in fp32 that is no rounding
        assert _same_logits(logits, logits)
        assert not _same_logits((30 * torch.tanh(logits.float() / 30)).to(dtype), logits)
        assert not _same_logits(logits * 0.9, logits)
