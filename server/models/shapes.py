"""A model's shape without its weights: the config of a ``--model`` and the model on the meta device.

The memory plan (``engine/memory_plan.py``) needs every tensor's name and shape, the layers and
the attention geometry, before anything is loaded: ``model_config`` reads the config alone
(tiny-random: built in code; a Hugging Face directory: config.json; a GGUF file: its metadata,
slow for large files, so the plan of a GGUF model is made after loading), and ``meta_model``
instantiates the architecture on the meta device (no memory).

Also the random-weight LLaMA shapes that benchmarks and plans use (``SHAPES``: LLaMA-2-7B,
LLaMA-3-8B, LLaMA-3-70B and a tiny one), as configs; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PreTrainedModel

from ..errors import FailedPrecondition
from .loading import ModelSource

__all__ = ["SHAPES", "meta_model", "model_config", "shape_config"]

_LLAMA2 = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
SHAPES: dict[str, dict[str, Any]] = {
    "llama2-7b-shape": _LLAMA2,  # LLaMA-2-7B(-chat), Vicuna-7B: 6.74e9 parameters
    "llama3-8b-shape": dict(  # LLaMA-3(.1)-8B(-Instruct): 8.03e9 parameters, grouped-query attention
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0,
    ),
    "llama3-70b-shape": dict(  # LLaMA-3(.1)-70B(-Instruct): 70.6e9 parameters
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0,
    ),
    "llama-tiny-shape": dict(  # the 7B code path scaled down, for machines without a GPU
        hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
    ),
}


def shape_config(name: str, **overrides: Any) -> LlamaConfig:
    """The LlamaConfig of a shape in ``SHAPES`` (untied embeddings, as the real models)."""
    if name not in SHAPES:
        raise FailedPrecondition(f"unknown model shape {name!r}; known: {', '.join(SHAPES)}")
    return LlamaConfig(**{**SHAPES[name], "tie_word_embeddings": False, "bos_token_id": None, **overrides})


def model_config(source: ModelSource) -> Any:
    """The transformers config of a resolved model (its weights are not read)."""
    if source.kind == "tiny-random":
        from .tiny import build_tiny_tokenizer, tiny_config

        return tiny_config(len(build_tiny_tokenizer()))
    if source.kind == "shape":
        return shape_config(source.name)
    assert source.path is not None
    try:
        if source.kind == "gguf":
            return AutoConfig.from_pretrained(str(source.path.parent), gguf_file=source.path.name)
        return AutoConfig.from_pretrained(str(source.path), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise FailedPrecondition(f"{source.path}: its config could not be read: {exc}") from exc


def meta_model(config: Any, dtype: torch.dtype) -> PreTrainedModel:
    """The architecture of ``config`` on the meta device, in ``dtype`` (tied weights tied)."""
    with torch.device("meta"):
        model: PreTrainedModel = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    return model
