"""Result records: one measured landscape point, as the client stores and exports it.

A :class:`PointRecord` is immutable and JSON-able (``to_dict`` / ``from_dict``); the result store
(:mod:`safety_landscape.client.store`) keys it by :attr:`PointRecord.key`, the content hash of
everything that determined the measurement (see ``store.point_key``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["METRICS", "PointRecord"]

#: The metrics a point may carry. ``asr``: attack success rate on the harmful set (0..100);
#: ``refusal``: over-refusal on the benign set (0..100); ``accuracy``: capability (0..100);
#: ``perplexity``: fluency (>= 0, unbounded).
METRICS = ("asr", "refusal", "accuracy", "perplexity")


@dataclass(frozen=True)
class PointRecord:
    """One measured point of a landscape sweep.

    ``series`` names the curve the point belongs to, e.g. ``"d0|default"`` (direction index |
    system-prompt label) for 1D sweeps or ``"plane|default"`` for 2D ones. ``coords`` is ``(a,)``
    for 1D and ``(a, b)`` for 2D. ``detail`` holds per-point JSON-able extras (verdicts, timings,
    the server's weight-state fingerprint); ``provenance`` the settings, seeds, fingerprints,
    package versions and git revision that produced it.
    """

    key: str
    sweep: str
    series: str
    coords: tuple[float, ...]
    metric: str
    value: float
    total: int
    detail: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def __post_init__(self) -> None:
        # Normalise so records read back from JSON/SQLite compare equal to the ones written.
        object.__setattr__(self, "coords", tuple(float(c) for c in self.coords))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "total", int(self.total))
        object.__setattr__(self, "created_at", float(self.created_at))
        object.__setattr__(self, "detail", dict(self.detail))
        object.__setattr__(self, "provenance", dict(self.provenance))
        problems = []
        if not self.key:
            problems.append("key must be a non-empty content hash")
        if not self.sweep:
            problems.append("sweep must be a non-empty name")
        if not self.series:
            problems.append("series must be a non-empty label")
        if len(self.coords) not in (1, 2):
            problems.append(f"coords must be (a,) or (a, b), got {len(self.coords)} values")
        if self.metric not in METRICS:
            problems.append(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if math.isnan(self.value):
            problems.append("value is NaN")
        if self.total < 0:
            problems.append(f"total must be >= 0, got {self.total}")
        if problems:
            raise ValueError("invalid PointRecord: " + "; ".join(problems))

    # Equality compares every field; hashing by the content key alone keeps records usable in
    # sets although detail/provenance are dicts (equal records always share a key).
    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def a(self) -> float:
        return self.coords[0]

    @property
    def b(self) -> float | None:
        return self.coords[1] if len(self.coords) > 1 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (coords as a list); ``from_dict(to_dict(r)) == r``."""
        return {
            "key": self.key,
            "sweep": self.sweep,
            "series": self.series,
            "coords": list(self.coords),
            "metric": self.metric,
            "value": self.value,
            "total": self.total,
            "detail": dict(self.detail),
            "provenance": dict(self.provenance),
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PointRecord":
        """Inverse of :meth:`to_dict`; a missing required field raises ``ValueError`` naming it."""
        required = ("key", "sweep", "series", "coords", "metric", "value", "total")
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"PointRecord dict lacks field(s): {', '.join(missing)}")
        return cls(
            key=data["key"],
            sweep=data["sweep"],
            series=data["series"],
            coords=tuple(data["coords"]),
            metric=data["metric"],
            value=data["value"],
            total=data["total"],
            detail=data.get("detail") or {},
            provenance=data.get("provenance") or {},
            created_at=data.get("created_at", 0.0),
        )
