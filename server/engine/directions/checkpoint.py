"""Checkpoint directions: safetensors checkpoints (pickle formats refused) and the interpolation
direction d = target - theta0 between the model and a checkpoint of the same architecture,
whole (``interpolation_direction``) or one tensor at a time from the checkpoint's files
(``check_interpolation_target`` once, then ``interpolation_tensor`` per tensor: the same bits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from safety_landscape.server.errors import FailedPrecondition, did_you_mean
from safety_landscape.server.models.checkpoint_files import CheckpointFiles, checkpoint_files

__all__ = ["check_interpolation_target", "interpolation_direction", "interpolation_tensor", "load_safetensors_checkpoint"]

Target = Mapping[str, torch.Tensor] | CheckpointFiles


def _shape(target: Target, name: str) -> tuple[int, ...]:
    if isinstance(target, CheckpointFiles):
        return target.entries[name].shape
    return tuple(target[name].shape)


def _tensor(target: Target, name: str) -> torch.Tensor:
    return target.read(name) if isinstance(target, CheckpointFiles) else target[name]


def check_interpolation_target(params: Sequence[tuple[str, torch.Tensor]], target: Target) -> None:
    """Every param must be in ``target`` with the same shape. A target tensor the model does not
    hold is refused, unless it is a tied duplicate: equal in shape and value to the target
    tensor of a kept param (e.g. lm_head.weight saved beside a tied embedding)."""
    keys = list(target.keys())
    for name, w in params:
        if name not in target:
            raise FailedPrecondition(
                f"interpolation target has no tensor {name!r} (shape {tuple(w.shape)}); the target must "
                f"be a checkpoint of the same architecture.{did_you_mean(name, keys)}"
            )
        if _shape(target, name) != tuple(w.shape):
            raise FailedPrecondition(
                f"interpolation target tensor {name!r} has shape {_shape(target, name)} but the model's has "
                f"shape {tuple(w.shape)}; the target must be a checkpoint of the same architecture"
            )
    kept = [name for name, _ in params]
    for name in keys:
        if name in kept:
            continue
        if not _is_tied_duplicate(target, name, kept):
            raise FailedPrecondition(
                f"interpolation target has tensor {name!r} (shape {_shape(target, name)}) that the model does "
                "not have; the target must be a checkpoint of the same architecture"
            )


def _is_tied_duplicate(target: Target, name: str, kept: Sequence[str]) -> bool:
    shape = _shape(target, name)
    candidates = [k for k in kept if _shape(target, k) == shape]
    if not candidates:
        return False
    t = _tensor(target, name).detach().cpu()
    for k in candidates:
        other = _tensor(target, k).detach().cpu()
        if other.dtype == t.dtype and torch.equal(other, t):
            return True
    return False


def interpolation_tensor(target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One tensor of d = target - theta0, in fp32 on w's device (the subtraction in place: the
    same IEEE operation as ``target.float() - w.float()``, one tensor of scratch)."""
    d = target.detach().to(device=w.device, dtype=torch.float32, copy=True)
    return d.sub_(w.detach())


def interpolation_direction(params: Sequence[tuple[str, torch.Tensor]], target: Target) -> dict[str, torch.Tensor]:
    """d = target - theta0 in fp32 (unnormalised), on each param's device (checked first:
    ``check_interpolation_target``)."""
    check_interpolation_target(params, target)
    return {name: interpolation_tensor(_tensor(target, name), w) for name, w in params}


def load_safetensors_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint: a .safetensors file, or a directory with model.safetensors
    or sharded model-0000x-of-0000y.safetensors listed in model.safetensors.index.json.
    Pickle formats (.bin/.pt/.pth) are refused: loading them can run arbitrary code."""
    files = checkpoint_files(Path(path))
    try:
        return {name: files.read(name) for name in files}
    finally:
        files.close()
