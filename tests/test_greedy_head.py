"""The screened greedy LM head picks exactly the fp32 head's argmax: random heads, built near-ties,
exact ties, non-finite states, and whole greedy generations on a real tiny Llama with a 8192-token
vocabulary, token for token against the plain head. Nothing is mocked.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from safety_landscape.server.engine.generation import BatchGenerator, GenerationParams
from safety_landscape.server.engine.greedy_head import (
    PAD,
    GreedyHeadScreen,
    ScreenedGreedyHead,
    gemm_is_size_invariant,
)

VOCAB = 8192

needs_bf16 = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no bf16 matmul; the screen stays off"
)


def _full_argmax(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The plain head's argmax, computed at >= PAD rows (the size where MKL's results are size-invariant)."""
    rows = hidden.shape[0]
    padded = torch.cat([hidden, hidden.new_zeros(max(0, PAD - rows), hidden.shape[1])])
    return F.linear(padded, weight)[:rows].argmax(dim=-1)


@pytest.fixture(scope="module")
def weight() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(16384, 576, generator=generator) * 0.05
    w[:500] *= 3  # some rows much larger, as a real vocabulary's frequent tokens
    return w


@pytest.mark.parametrize("rows", [1, 3, 11, 12, 16, 40])
def test_random_hidden_states_give_the_full_heads_argmax(weight, rows):
    assert gemm_is_size_invariant(weight)  # this machine's BLAS: the premise of the exact step
    head = ScreenedGreedyHead(weight)
    generator = torch.Generator().manual_seed(rows)
    for scale in (0.1, 1.0, 10.0, 100.0):  # flat logits (many candidates) to peaked ones
        hidden = torch.randn(rows, 576, generator=generator) * scale
        assert torch.equal(head.argmax(hidden), _full_argmax(hidden, weight))
    assert head.steps == 4 and head.fallbacks == 0


def test_columns_equal_in_bf16_are_told_apart_by_the_exact_logits(weight):
    w = weight.clone()
    low, high = 7000, 9000
    w[high] = w[low] * (1 + 2.0**-20)  # the same in bf16; its logit larger by ~30 fp32 ulps
    assert torch.equal(w[high].bfloat16(), w[low].bfloat16())
    hidden = torch.stack([w[low] * 20, w[low] * 20 + 1e-3, -w[low] * 20])
    head = ScreenedGreedyHead(w)
    picked = head.argmax(hidden)
    assert torch.equal(picked, _full_argmax(hidden, w))
    assert picked[:2].tolist() == [high, high]  # the screen saw a tie; the exact logits did not


def test_an_exact_tie_goes_to_the_first_column(weight):
    w = weight.clone()
    w[5] = w[9000]
    hidden = (w[9000] * 30)[None]
    picked = ScreenedGreedyHead(w).argmax(hidden)
    assert picked.item() == 5 == _full_argmax(hidden, w).item()


def test_a_non_finite_hidden_state_runs_the_full_head(weight):
    hidden = torch.randn(4, 576)
    hidden[1, 7] = float("nan")
    head = ScreenedGreedyHead(weight)
    assert torch.equal(head.argmax(hidden), _full_argmax(hidden, weight))
    assert head.fallbacks == 1


# -- in generation -----------------------------------------------------------------------------------


def _word_tokenizer() -> PreTrainedTokenizerFast:
    """8192 whitespace-separated words, no files: w0 pads, w1 ends."""
    backend = Tokenizer(models.WordLevel({f"w{i}": i for i in range(VOCAB)}, unk_token="w0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="w1", pad_token="w0")
    tokenizer.padding_side = "left"
    return tokenizer


@pytest.fixture(scope="module")
def wide_llama():
    torch.manual_seed(0)  # HF's initialiser draws from the global generator
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, bos_token_id=None, eos_token_id=1, pad_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = 1
    return model, _word_tokenizer()


@needs_bf16
def test_greedy_generation_is_token_for_token_the_plain_heads(wide_llama):
    model, tokenizer = wide_llama
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, VOCAB, (int(n),), generator=generator).tolist() for n in torch.randint(4, 20, (20,), generator=generator)]
    params = GenerationParams(max_new_tokens=24)
    screened, stats = BatchGenerator(model, tokenizer, max_batch_size=20).generate(prompts, params)
    plain, plain_stats = BatchGenerator(model, tokenizer, max_batch_size=20, screened_head=False).generate(prompts, params)
    assert [r.token_ids for r in screened] == [r.token_ids for r in plain]
    assert stats.screened_steps > 0 and plain_stats.screened_steps == 0
    # The random model's logits are nearly flat: the screen had real near-ties to settle.
    assert len({tuple(r.token_ids) for r in screened}) > 1


def test_the_screen_stays_off_where_it_cannot_pay_or_is_not_exact(wide_llama):
    model, _ = wide_llama
    cpu = torch.device("cpu")
    assert GreedyHeadScreen(model, cpu).head_for(steps=4) is None  # too few steps to pay for the bf16 copy
    small = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    assert GreedyHeadScreen(small, cpu).head_for(steps=64) is None  # a small vocabulary: the full head is cheap
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2))
    assert GreedyHeadScreen(gpt2, cpu).head_for(steps=64) is None  # not a model type known to end at the head
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        head = GreedyHeadScreen(model, cpu).head_for(steps=64)
        live = model.get_output_embeddings().weight
        assert head is not None and head.weight.data_ptr() == live.data_ptr()  # the live tensor, not a copy
