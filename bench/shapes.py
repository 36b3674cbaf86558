"""Benchmark models: the server's own models, and random-weight LLaMA shapes (no download).

  - ``tiny-random`` / ``smollm2-135m-instruct``: loaded by ``server.models.loading`` as the server does.
  - ``llama2-7b-shape``, ``llama3-8b-shape``, ``llama3-70b-shape``: LlamaForCausalLM with those
    models' configurations (``server.models.shapes.SHAPES``) and random bf16 weights, built
    directly on CUDA (``build_shape``: one GPU; a 7B/8B shape needs about 60 GB free), or written
    once as a bf16 safetensors checkpoint (``shape_checkpoint``) that the server's own loader
    reads, e.g. across several GPUs with a device map.
  - ``llama-tiny-shape``: the same code path scaled down (fp32 on CPU unless a GPU is visible), so
    the 7B path is known to run on a machine without a GPU.
Shape models get a byte-level tokenizer padded to the config's vocabulary with plain words (" zqbad")
(decodable, so the keyword judge sees text) and a ChatML template; random weights never refuse, so
these workloads measure speed and memory, not safety. The words are whole-word vocabulary entries
(``ignore_merges``): a generated answer, decoded and encoded again, gives back its own tokens, so
the coherence referee scores as many tokens as were generated (``bench/referee.py`` on a shape);
any other text is one token per byte, as before (a prompt of N ASCII characters is N tokens).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from safety_landscape.server.models.loading import LoadedModel, ModelSource, load_model, resolve_model
from safety_landscape.server.models.shapes import SHAPES, shape_config
from safety_landscape.server.models.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS

MODELS = ("tiny-random", "smollm2-135m-instruct", *SHAPES)
GPU_ONLY = ("llama2-7b-shape", "llama3-8b-shape", "llama3-70b-shape")


def _filler_word(n: int) -> str:
    """The vocabulary entry of filler token ``n``: " zq" and ``n`` in letters (a to z), in byte-level
    symbols. Letters only, so the pre-tokenizer's regex keeps the word whole (it splits letters from
    digits); "zq" begins no English word, so a prompt's words stay bytes."""
    letters = ""
    while True:
        n, digit = divmod(n, 26)
        letters = chr(ord("a") + digit) + letters
        if n == 0:
            return "\u0120zq" + letters  # \u0120: the byte-level symbol of " "


def shape_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for sym in symbols:
        vocab[sym] = len(vocab)
    while len(vocab) < vocab_size:
        vocab[_filler_word(len(vocab))] = len(vocab)
    # Words are looked up whole first (" zqbad" is one token), then split into bytes (no merges).
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def _random_model(name: str, dtype: torch.dtype, device: torch.device, tokenizer: PreTrainedTokenizerFast,
                  seed: int = 0) -> LlamaForCausalLM:
    config = shape_config(name, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:  # weights are created where they live: no CPU detour for a large shape on a GPU
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.to(dtype=dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_shape(name: str, *, device: str = "auto", seed: int = 0) -> LoadedModel:
    started = time.perf_counter()
    dev = torch.device("cuda:0" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    if name in GPU_ONLY and dev.type != "cuda":
        raise SystemExit(f"{name} needs a CUDA GPU (about 60 GB for 7-8B); on a CPU use --model llama-tiny-shape")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    tokenizer = shape_tokenizer(SHAPES[name]["vocab_size"])
    model = _random_model(name, dtype, dev, tokenizer, seed)
    model.eval()
    model.requires_grad_(False)
    source = ModelSource(name=name, kind="shape")
    return LoadedModel(source, model, tokenizer, dev, dtype, time.perf_counter() - started)


def shape_checkpoint(name: str, workdir: Path) -> Path:
    """A bf16 safetensors checkpoint of random weights in the shape ``name``, written once (on the
    CPU: 16 GB of host memory for an 8B shape) and reused."""
    folder = Path(workdir) / f"{name}-bf16"
    if (folder / "config.json").is_file() and list(folder.glob("*.safetensors")):
        return folder
    tokenizer = shape_tokenizer(SHAPES[name]["vocab_size"])
    model = _random_model(name, torch.bfloat16, torch.device("cpu"), tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def load(name: str, *, device: str = "auto") -> LoadedModel:
    if name in SHAPES:
        return build_shape(name, device=device)
    return load_model(resolve_model(name), device=device)
