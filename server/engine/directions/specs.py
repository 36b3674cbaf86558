"""What a direction IS, as a spec: random (seed, normalisation, selection, stream), interpolation
towards a checkpoint, or a LoRA adapter's delta; and its content id.

A spec is small and canonical: servers regenerate a random direction from it, and the id
("d-" + 16 hex of the canonical JSON's sha256) names the same direction on every server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from safety_landscape.server.errors import InvalidArgument

__all__ = [
    "AdapterSpec", "DirectionSpec", "InterpolationSpec", "Normalization", "RandomSpec", "Selection", "Stream", "Tied",
    "direction_id",
]


class Normalization(str, Enum):
    LAYER = "layer"  # the paper's: per tensor
    FILTER = "filter"  # Li et al.: per row (slice along dim 0)
    NONE = "none"


class Selection(str, Enum):
    REFERENCE = "reference"  # the authors': zero every tensor whose name contains "norm"
    BIASBN = "biasbn"  # Li et al. ignore=biasbn: zero every tensor with dim <= 1
    ALL = "all"


class Stream(str, Enum):
    PER_TENSOR = "per_tensor"  # one generator per tensor, seeded from (seed, index, name)
    REFERENCE = "reference"  # the authors': one CPU stream over all params, draw `index`


class Tied(str, Enum):
    ONCE = "once"  # a tensor held under two names (tied embeddings) is drawn and perturbed once
    REFERENCE = "reference"  # the authors': a draw per state-dict name, all added to the shared tensor


@dataclass(frozen=True)
class RandomSpec:
    """A seeded random direction. Strings are accepted for the enums, lists for the patterns."""

    seed: int
    normalization: Normalization = Normalization.LAYER
    selection: Selection = Selection.REFERENCE
    include: tuple[str, ...] = ()  # fnmatch patterns; non-empty -> only matching names
    exclude: tuple[str, ...] = ()  # fnmatch patterns; exclude wins over include
    stream: Stream = Stream.PER_TENSOR
    index: int = 0  # which direction of the seed (the 2nd axis of a 2D landscape is index 1)
    tied: Tied = Tied.ONCE  # REFERENCE needs the reference stream (it reproduces the authors' draws)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "normalization", Normalization(self.normalization))
            object.__setattr__(self, "selection", Selection(self.selection))
            object.__setattr__(self, "stream", Stream(self.stream))
            object.__setattr__(self, "tied", Tied(self.tied))
        except ValueError as e:
            raise InvalidArgument(f"random direction: {e}") from None
        if self.tied is Tied.REFERENCE and self.stream is not Stream.REFERENCE:
            raise InvalidArgument(
                'random direction: tied = "reference" reproduces the authors\' draws, which only the reference '
                'stream makes; use stream = "reference" (or tied = "once")'
            )
        given: tuple[object, ...] = (self.include, self.exclude)  # callers may pass anything
        if any(isinstance(patterns, str) for patterns in given):
            raise InvalidArgument("random direction: include/exclude are lists of patterns, not a string")
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InvalidArgument(f"random direction: seed must be an integer in [0, 2**63), got {self.seed!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise InvalidArgument(f"random direction: index must be an integer >= 0, got {self.index!r}")

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "random",
            "seed": self.seed,
            "normalization": self.normalization.value,
            "selection": self.selection.value,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "stream": self.stream.value,
            "index": self.index,
        }
        if self.tied is not Tied.ONCE:  # written only when set: the ids of every "once" direction stay as they were
            out["tied"] = self.tied.value
        return out


@dataclass(frozen=True)
class InterpolationSpec:
    """d = target - theta0; ``target`` names a checkpoint (path or registry name, caller resolves).

    ``source``: what the name was bound to for the caller (``server/named_sources.py``: a
    registry entry's files, or one tenant's candidate and its content); it enters the id, so
    one name bound to other files (another tenant's candidate, a registry entry changed on
    reload) is another direction. "" = not bound yet (the id of the name alone)."""

    target: str
    source: str = ""

    def canonical(self) -> dict[str, Any]:
        out = {"kind": "interpolation", "target": self.target}
        return out | {"source": self.source} if self.source else out


@dataclass(frozen=True)
class AdapterSpec:
    """d = the merged LoRA delta of a PEFT adapter (path or registry name, caller resolves);
    ``source`` as for ``InterpolationSpec``."""

    adapter: str
    source: str = ""

    def canonical(self) -> dict[str, Any]:
        out = {"kind": "adapter", "adapter": self.adapter}
        return out | {"source": self.source} if self.source else out


DirectionSpec = RandomSpec | InterpolationSpec | AdapterSpec


def direction_id(spec: DirectionSpec) -> str:
    """Content id: "d-" + 16 hex of sha256 of the canonical JSON (sorted keys, compact)."""
    text = json.dumps(spec.canonical(), sort_keys=True, separators=(",", ":"))
    return "d-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
