"""Building a direction one tensor at a time: its fingerprint, norm and coverage, and what is kept.

``build_direction`` walks the model's unique params in order, asks the direction's source for
each component (``sources.py``), feeds it to the fingerprint (``update_tensor_hash``; a zero
tensor is hashed without being built), sums its squared norm in fp64, and keeps it on the
device ("device"), in host memory ("host") or not at all ("none": the source produces it again
at every switch). At most one component is alive at a time, so a build needs about one tensor
of scratch whatever the storage.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from safety_landscape.server.errors import Cancelled

from .sources import DirectionSource, HeldTensors
from .tensors import squared_norm, update_tensor_hash, update_zeros_hash

__all__ = ["KEEP_MODES", "BuiltDirection", "build_direction"]

KEEP_MODES = ("device", "host", "none")


@dataclass
class BuiltDirection:
    fingerprint: str
    norm: float
    covered: frozenset[str]  # the params where the direction is non-zero
    tensors: dict[str, torch.Tensor] | None  # kept on the device ("device"), else None
    source: DirectionSource | None  # produces the tensors again (host copies or regeneration)


def build_direction(
    source: DirectionSource,
    params: Sequence[tuple[str, torch.Tensor]],
    pristine: Callable[[str], torch.Tensor],
    *,
    keep: str,
    should_cancel: Callable[[], bool] = lambda: False,
) -> BuiltDirection:
    """One pass over ``params`` (name, live param) with theta0 from ``pristine(name)``."""
    if keep not in KEEP_MODES:
        raise ValueError(f"keep {keep!r}: use one of {', '.join(KEEP_MODES)}")
    h = hashlib.sha256()
    sq_norm = 0.0
    covered: set[str] = set()
    on_device: dict[str, torch.Tensor] = {}
    on_host = HeldTensors(pin=any(p.device.type == "cuda" for _, p in params))
    for name, param in params:
        if should_cancel():
            raise Cancelled("the call was cancelled or its deadline passed; the direction was not built")
        t = source.first(name, pristine(name))
        if t is None:
            update_zeros_hash(h, name, param.shape)
            continue
        update_tensor_hash(h, name, t)
        if not bool(t.any()):
            continue
        covered.add(name)
        sq_norm += squared_norm(t)
        if keep == "device":
            on_device[name] = t
        elif keep == "host":
            on_host.keep(name, t)
    source.finish()
    return BuiltDirection(
        fingerprint=h.hexdigest(),
        norm=math.sqrt(sq_norm),
        covered=frozenset(covered),
        tensors=on_device if keep == "device" else None,
        source=None if keep == "device" else on_host if keep == "host" else source,
    )
