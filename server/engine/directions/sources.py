"""Where a held direction's tensors come from at each switch, one tensor at a time.

A source is built once, tensor by tensor in model order (``first``: the component computed for
the first time, recording what a later redraw needs), then answers ``tensor(name, base)`` at
every switch: the fp32 component on the device of ``base`` (the pristine tensor of that param).

- ``HeldTensors``: the whole fp32 tensors kept in host memory (pinned when the model is on a
  GPU), copied to the device tensor by tensor (storage "host").
- ``PerTensorRandom``: the spec and each tensor's norms; the raw Gaussian is redrawn on the
  device from its own seed (storage "regenerate" and "stream").
- ``ReferenceRandom``: the authors' single CPU stream, walked once; each perturbed tensor's
  generator state (5 KiB) and norms are recorded, so it is redrawn alone on the CPU (storage
  "stream"): the stream is never replayed from its start again.
- ``StreamedInterpolation``: the target checkpoint's files; each tensor is read and theta0
  subtracted (storage "stream").
- ``StreamedAdapter``: the LoRA factors; each module's delta is merged when it is needed
  (storage "stream").

Each source's tensors are bit-identical to the whole direction its spec defines
(``random_direction``, ``interpolation_direction``, ``adapter_direction``): the same draws, the
same IEEE operations in the same order. Storage "cache" keeps the tensors ``first`` returns on
the device and needs no source (``weights.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from safety_landscape.server.models.checkpoint_files import CheckpointFiles

from .adapter import AdapterModule
from .checkpoint import interpolation_tensor
from .gaussian import ReferenceStream, Scale, StreamPositions, draw_per_tensor, is_perturbed, redraw, weight_norm
from .specs import RandomSpec

__all__ = [
    "DirectionSource", "HeldTensors", "PerTensorRandom", "ReferenceRandom", "StreamedAdapter", "StreamedInterpolation",
]


class DirectionSource(Protocol):
    """Produces one direction's fp32 tensors, one at a time."""

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        """The component of ``name`` (None where the direction is zero); called once per param, in
        model order, before any ``tensor`` call."""
        ...

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        """The same component again, on base.device; only for names ``first`` returned a tensor for."""
        ...

    def finish(self) -> None:
        """Called once after the last ``first``."""
        ...

    @property
    def bytes_held(self) -> int:
        """Memory the source keeps (beyond the few scalars of each tensor)."""
        ...


class _Finished:
    """``finish`` for sources that have nothing left to do after their first pass."""

    def finish(self) -> None:
        return None


@dataclass
class HeldTensors(_Finished):
    """Whole fp32 tensors in host memory, copied to each param's device at every switch."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    pin: bool = False

    def keep(self, name: str, t: torch.Tensor) -> None:
        host = t.to("cpu")
        self.tensors[name] = host.pin_memory() if self.pin else host

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        return self.tensor(name, base) if name in self.tensors else None

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        return self.tensors[name].to(base.device, non_blocking=True)

    @property
    def bytes_held(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass
class PerTensorRandom(_Finished):
    """A PER_TENSOR random direction: each tensor redrawn from its seed on the device, rescaled by
    the norms recorded when it was first drawn."""

    spec: RandomSpec
    scales: dict[str, Scale | None] = field(default_factory=dict)

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        if not is_perturbed(name, base, self.spec):
            return None
        factor = weight_norm(base, self.spec.normalization, device=base.device)
        g = draw_per_tensor(name, base, self.spec)
        scale = self.scales[name] = Scale.fit(g, factor)
        return scale.apply(g) if scale is not None else g

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        g = draw_per_tensor(name, base, self.spec)
        scale = self.scales[name]
        return scale.apply(g) if scale is not None else g

    @property
    def bytes_held(self) -> int:
        return 0


@dataclass
class _Recorded:
    state: torch.Tensor  # the CPU generator's state before this tensor's draw
    shape: tuple[int, ...]
    scale: Scale | None


class ReferenceRandom:
    """A REFERENCE-stream random direction: the stream walked once in model order, each
    perturbed tensor's generator state recorded; later redrawn alone on the CPU."""

    def __init__(self, spec: RandomSpec, shapes: Sequence[tuple[str, tuple[int, ...]]],
                 positions: StreamPositions | None = None, *, should_cancel: Callable[[], bool] = lambda: False) -> None:
        self.spec = spec
        perturbed = {name for name, shape in shapes if is_perturbed(name, torch.empty(shape, device="meta"), spec)}
        self._draws: Iterator[tuple[str, torch.Tensor | None, Callable[[], torch.Tensor]]] = ReferenceStream(
            shapes, spec, positions, should_cancel=should_cancel
        ).draws(perturbed)
        self.recorded: dict[str, _Recorded] = {}

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        for drawn in self._draws:  # a name the model does not hold is drawn and passed over
            if drawn[0] == name:
                break
        else:
            raise KeyError(f"the reference stream has no tensor {name!r}")
        _, state, draw = drawn
        if state is None:
            return None
        factor = weight_norm(base, self.spec.normalization, device=torch.device("cpu"))  # before the draw: its
        g = draw()  # fp32 copy of the weight is freed first
        scale = Scale.fit(g, factor)
        self.recorded[name] = _Recorded(state, tuple(g.shape), scale)
        return (scale.apply(g) if scale is not None else g).to(base.device)

    def finish(self) -> None:
        """Walk the rest of the stream (so its end is known to the next draw of the seed)."""
        for _ in self._draws:
            pass

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        rec = self.recorded[name]
        g = redraw(rec.state, rec.shape)
        return (rec.scale.apply(g) if rec.scale is not None else g).to(base.device)

    @property
    def bytes_held(self) -> int:
        return sum(r.state.numel() for r in self.recorded.values())


@dataclass
class StreamedInterpolation(_Finished):
    """d = target - theta0, each tensor read from the target checkpoint's files when needed."""

    files: CheckpointFiles

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        return self.tensor(name, base)

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        self.files.check_unchanged()
        return interpolation_tensor(self.files.read(name), base)

    @property
    def bytes_held(self) -> int:
        return 0


@dataclass
class StreamedAdapter(_Finished):
    """A LoRA adapter's delta, each module merged from its factors when needed."""

    modules: dict[str, AdapterModule]

    def first(self, name: str, base: torch.Tensor) -> torch.Tensor | None:
        return self.tensor(name, base) if name in self.modules else None

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        return self.modules[name].delta().to(base.device)

    @property
    def bytes_held(self) -> int:
        return sum(m.nbytes for m in self.modules.values())
