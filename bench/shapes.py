"""Benchmark models: the server's own models, and random-weight LLaMA shapes (no download).

  - ``tiny-random`` / ``smollm2-135m-instruct``: loaded by ``server.models.loading`` as the server does.
  - ``llama2-7b-shape``: a LlamaForCausalLM with LLaMA-2-7B's configuration (4096 wide, 32 layers,
    11008 MLP, 32 heads, 32000 vocab, 6.74e9 parameters) and random bf16 weights, built directly
    on CUDA, for the GPU targets (a decode step against weight bytes / bandwidth, apply < 50 ms,
    a 21-point landscape < 2 min). It needs a GPU with about 60 GB free.
  - ``llama-tiny-shape``: the same code path scaled down (fp32 on CPU unless a GPU is visible), so
    the 7B path is known to run on a machine without a GPU.
Shape models get a byte-level tokenizer padded to the config's vocabulary with plain "<xN>"
symbols (decodable, so the keyword judge sees text) and a ChatML template; random weights never
refuse, so these workloads measure speed, not safety.
"""

from __future__ import annotations

import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from safety_landscape.server.models.loading import LoadedModel, ModelSource, load_model, resolve_model
from safety_landscape.server.models.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS

SHAPES = {
    "llama2-7b-shape": dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
    ),
    "llama-tiny-shape": dict(
        hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
    ),
}
MODELS = ("tiny-random", "smollm2-135m-instruct", *SHAPES)


def shape_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for sym in symbols:
        vocab[sym] = len(vocab)
    while len(vocab) < vocab_size:
        vocab[f"<x{len(vocab)}>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def build_shape(name: str, *, device: str = "auto", seed: int = 0) -> LoadedModel:
    started = time.perf_counter()
    dev = torch.device("cuda:0" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    if name == "llama2-7b-shape" and dev.type != "cuda":
        raise SystemExit("llama2-7b-shape needs a CUDA GPU (about 60 GB); on a CPU use --model llama-tiny-shape")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    tokenizer = shape_tokenizer(SHAPES[name]["vocab_size"])
    config = LlamaConfig(
        **SHAPES[name], tie_word_embeddings=False, bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with dev:  # weights are created where they live: no 27 GB CPU detour for the 7B shape
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.to(dtype=dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    model.requires_grad_(False)
    source = ModelSource(name=name, kind="shape")
    return LoadedModel(source, model, tokenizer, dev, dtype, time.perf_counter() - started)


def load(name: str, *, device: str = "auto") -> LoadedModel:
    if name in SHAPES:
        return build_shape(name, device=device)
    return load_model(resolve_model(name), device=device)
