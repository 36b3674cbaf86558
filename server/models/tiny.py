"""`tiny-random`: a deterministic tiny Llama built in code, with a tokenizer that needs no files.

The always-available test model: the same weights on every machine (drawn from a fixed seed with
an explicit generator, independent of transformers' own init), a byte-level tokenizer whose
vocabulary is the 256 bytes plus chat tokens (any text round-trips), a ChatML chat template with
a default system prompt (as SmolLM2's), and tied embeddings (as SmolLM2's) so that the
"perturb a tied tensor once" rule is exercised.
"""

from __future__ import annotations

import math

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TINY_DEFAULT_SYSTEM_PROMPT = "You are a tiny test assistant."
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + TINY_DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with no merges: ids 0..2 special, then the 256 byte symbols."""
    byte_symbols = list(pre_tokenizers.ByteLevel.alphabet())
    byte_symbols.sort()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for sym in byte_symbols:
        vocab[sym] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:2]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_tiny_random(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The tiny-random model and tokenizer; `seed` picks other weights (a second checkpoint)."""
    tokenizer = build_tiny_tokenizer()
    config = tiny_config(len(tokenizer))
    model = LlamaForCausalLM(config)
    generator = torch.Generator().manual_seed(seed)
    vocab = tokenizer.get_vocab()
    printable = {vocab[chr(b)] for b in range(33, 127)} | {vocab["\u0120"]}  # byte-level "!".."~" and space
    with torch.no_grad():
        for name, param in model.named_parameters():
            draw = torch.randn(param.shape, generator=generator)
            if "norm" in name:
                # Norm gains near 1, not exactly 1, so directions over them are non-trivial.
                param.copy_(1.0 + 0.1 * draw)
            elif "embed" in name:
                # Printable rows large, the rest small: the tied LM head then prefers printable
                # ASCII, so completions are readable text that keyword tests can match.
                row_scale = torch.full((param.shape[0], 1), 0.05)
                row_scale[sorted(printable)] = 0.3
                param.copy_(draw * row_scale)
            else:
                # (out, in): 1/sqrt(in) keeps activations O(1); the residual writers (o_proj,
                # down_proj) 3x stronger so the context, not the last token, drives the output.
                gain = 3.0 if ("o_proj" in name or "down_proj" in name) else 1.0
                param.copy_(draw * gain / math.sqrt(param.shape[-1]))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer
