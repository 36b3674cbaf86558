"""Real model folders written by tests: checkpoints and PEFT LoRA adapters of the tiny-random
model, a checkpoint of other shapes and one of another architecture, pickled weights, and a
sparse file that claims terabytes. Each writer makes the folder it is given."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from safety_landscape.server.engine.directions import unique_parameters
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.models.tiny import tiny_config

__all__ = ["write_checkpoint", "write_lora", "write_other_architecture", "write_other_shapes", "write_pickled",
           "write_sparse"]

LORA_MODULES = ("q_proj", "v_proj")


def write_checkpoint(path: Path, seed: int = 1) -> Path:
    """``tiny-random:SEED`` saved as a safetensors checkpoint: the served model's shapes, other weights."""
    loaded = load_model(resolve_model(f"tiny-random:{seed}"), device="cpu", dtype="float32")
    loaded.model.save_pretrained(path, safe_serialization=True)
    return path


def write_lora(path: Path, seed: int = 0, r: int = 4, alpha: float = 8.0) -> Path:
    """A PEFT LoRA adapter of the tiny-random model (q_proj and v_proj of both layers)."""
    base = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").model
    shapes = {name: tuple(p.shape) for name, p in unique_parameters(base)}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(2):
        for mod in LORA_MODULES:
            module = f"model.layers.{layer}.self_attn.{mod}"
            out_f, in_f = shapes[module + ".weight"]
            tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(r, in_f, generator=gen)
            tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(out_f, r, generator=gen) * 0.2
    path.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": list(LORA_MODULES),
              "use_rslora": False, "fan_in_fan_out": False, "bias": "none"}
    (path / "adapter_config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def write_other_shapes(path: Path) -> Path:
    """A LLaMA checkpoint with the tiny model's layers but another hidden size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").tokenizer
    config = tiny_config(len(tokenizer)).to_dict()
    config.update(hidden_size=32, intermediate_size=64, head_dim=8)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(path, safe_serialization=True)
    return path


def write_other_architecture(path: Path) -> Path:
    """A tiny GPT-2 checkpoint (another model_type and architecture)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    return path


def write_pickled(path: Path) -> Path:
    """A checkpoint folder whose weights are only a pickled pytorch_model.bin."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    torch.save({"model.embed_tokens.weight": torch.zeros(4, 4)}, path / "pytorch_model.bin")
    return path


def write_sparse(path: Path, claimed: int = 2 * 2**40) -> Path:
    """A checkpoint folder whose model.safetensors is a sparse file of ``claimed`` bytes (2 TiB)
    with a valid header: it takes no disk, but its size says terabytes."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    header = json.dumps({"big": {"dtype": "F32", "shape": [(claimed - 4096) // 4], "data_offsets": [0, claimed - 4096 - (claimed - 4096) % 4]}}).encode()
    header += b" " * (4096 - 8 - len(header))
    with open(path / "model.safetensors", "wb") as handle:
        handle.write(len(header).to_bytes(8, "little") + header)
    os.truncate(path / "model.safetensors", claimed)
    return path
