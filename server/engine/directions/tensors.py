"""Direction tensors as named sets: the model's unique parameters (tied tensors once), and the
bit-exact fingerprint and global norm of a direction (also fed one tensor at a time: a zero
tensor is hashed without being built, a norm is summed in fp64 over bounded chunks)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from safety_landscape.server.errors import FailedPrecondition

__all__ = [
    "direction_fingerprint", "direction_norm", "squared_norm", "unique_parameters", "update_tensor_hash", "update_zeros_hash",
]

NORM_CHUNK = 1 << 22  # elements per fp64 chunk of a streamed norm: 32 MiB of scratch


def unique_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The model's parameters in model order, each underlying tensor once (tied names dropped).

    ``named_parameters()`` already drops the second name of a tied Parameter; we also drop a
    distinct Parameter that shares the same storage view (same pointer, shape, stride, dtype).
    """
    seen: set[tuple[Any, ...]] = set()
    out: list[tuple[str, torch.nn.Parameter]] = []
    for name, p in model.named_parameters():
        if p.device.type != "meta" and p.numel() > 0:
            key = (p.device, p.data_ptr(), tuple(p.shape), p.stride(), p.dtype)
            if key in seen:
                continue
            seen.add(key)
        out.append((name, p))
    return out


def direction_fingerprint(direction: Mapping[str, torch.Tensor], names: Sequence[str]) -> str:
    """sha256 hex over (name, shape, dtype, raw bytes) of each tensor in ``names`` order.

    Bit-exact: equal fingerprints mean bit-identical tensors (any dtype, bf16 included).
    """
    h = hashlib.sha256()
    for name in names:
        if name not in direction:
            raise FailedPrecondition(f"direction has no tensor {name!r} to fingerprint")
        update_tensor_hash(h, name, direction[name])
    return h.hexdigest()


def update_tensor_hash(h: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    """Feed one named tensor into a running sha256 (streamed fingerprints use the same bytes)."""
    t = tensor.detach().contiguous().cpu()
    h.update(f"{name}\x00{tuple(t.shape)}\x00{t.dtype}\x00".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().data)  # the bytes themselves, not a copy


def update_zeros_hash(h: hashlib._Hash, name: str, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
    """``update_tensor_hash`` of an all-zero tensor, without building it."""
    h.update(f"{name}\x00{tuple(shape)}\x00{dtype}\x00".encode())
    remaining = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    zeros = bytes(min(remaining, 1 << 24))
    while remaining:
        step = min(remaining, len(zeros))
        h.update(memoryview(zeros)[:step])
        remaining -= step


def squared_norm(tensor: torch.Tensor) -> float:
    """sum(t^2) accumulated in fp64, chunk by chunk (at most ``NORM_CHUNK`` elements in fp64 at once)."""
    flat = tensor.detach().reshape(-1)
    total = 0.0
    for start in range(0, flat.numel(), NORM_CHUNK):
        total += float(torch.linalg.vector_norm(flat[start : start + NORM_CHUNK].double()) ** 2)
    return total


def direction_norm(direction: Mapping[str, torch.Tensor]) -> float:
    """Global L2 norm over all tensors (accumulated in fp64)."""
    total = 0.0
    for t in direction.values():
        total += float(torch.linalg.vector_norm(t.detach().double()) ** 2)
    return math.sqrt(total)
