"""Checkpoint directions: safetensors checkpoints (pickle formats refused) and the interpolation
direction d = target - theta0 between the model and a checkpoint of the same architecture."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from safety_landscape.server.errors import FailedPrecondition, did_you_mean

__all__ = ["interpolation_direction", "load_safetensors_checkpoint"]


def interpolation_direction(
    params: Sequence[tuple[str, torch.Tensor]], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """d = target - theta0 in fp32 (unnormalised), on each param's device.

    Every param must be in ``target`` with the same shape. A target tensor the model does not
    hold is refused, unless it is a tied duplicate: equal in shape and value to the target
    tensor of a kept param (e.g. lm_head.weight saved beside a tied embedding).
    """
    out: dict[str, torch.Tensor] = {}
    for name, w in params:
        if name not in target:
            raise FailedPrecondition(
                f"interpolation target has no tensor {name!r} (shape {tuple(w.shape)}); the target must "
                f"be a checkpoint of the same architecture.{did_you_mean(name, target.keys())}"
            )
        t = target[name]
        if tuple(t.shape) != tuple(w.shape):
            raise FailedPrecondition(
                f"interpolation target tensor {name!r} has shape {tuple(t.shape)} but the model's has "
                f"shape {tuple(w.shape)}; the target must be a checkpoint of the same architecture"
            )
        wf = w.detach().float()
        out[name] = t.detach().to(device=wf.device, dtype=torch.float32) - wf
    kept = {name for name, _ in params}
    for name, t in target.items():
        if name in kept:
            continue
        tied = any(
            tuple(target[k].shape) == tuple(t.shape)
            and target[k].dtype == t.dtype
            and torch.equal(target[k].detach().cpu(), t.detach().cpu())
            for k in kept
        )
        if not tied:
            raise FailedPrecondition(
                f"interpolation target has tensor {name!r} (shape {tuple(t.shape)}) that the model does "
                "not have; the target must be a checkpoint of the same architecture"
            )
    return out


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_CONVERT_HINT = (
    "only safetensors are loaded; convert with `AutoModelForCausalLM.from_pretrained(path)"
    ".save_pretrained(path, safe_serialization=True)` on a trusted machine"
)


def load_safetensors_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint: a .safetensors file, or a directory with model.safetensors
    or sharded model-0000x-of-0000y.safetensors listed in model.safetensors.index.json.
    Pickle formats (.bin/.pt/.pth) are refused: loading them can run arbitrary code."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise FailedPrecondition(f"checkpoint {str(path)!r}: {_CONVERT_HINT}")
        return load_file(str(path))
    if not path.is_dir():
        raise FailedPrecondition(f"checkpoint {str(path)!r} does not exist")
    single = path / "model.safetensors"
    index = path / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        try:
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise FailedPrecondition(f"checkpoint index {str(index)!r} is unreadable: {e}") from None
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = path / shard
            if not shard_path.is_file():
                raise FailedPrecondition(f"checkpoint shard {shard!r} listed in {index.name} is missing in {str(path)!r}")
            out.update(load_file(str(shard_path)))
        missing = [k for k in weight_map if k not in out]
        if missing:
            raise FailedPrecondition(f"checkpoint tensor {missing[0]!r} is listed in {index.name} but in no shard")
        return out
    if any(p.suffix in _PICKLE_SUFFIXES for p in path.iterdir()):
        raise FailedPrecondition(f"checkpoint {str(path)!r} holds no safetensors: {_CONVERT_HINT}")
    raise FailedPrecondition(f"checkpoint {str(path)!r} has no model.safetensors nor model.safetensors.index.json")
