"""The named sweeps a user can start from: ``quick`` (a laptop-CPU landscape) and ``paper``."""

from __future__ import annotations

from ...errors import ValidationError
from .schema import DirectionRecipe, Grid, PromptSource, SweepSpec

__all__ = ["PRESETS", "preset"]

PRESETS = ("quick", "paper")


def preset(name: str) -> SweepSpec:
    """``quick``: a laptop-CPU landscape (1 direction, 7 points, harmful-mini 16 + benign-mini 16,
    48 new tokens). ``paper``: docs/method.md's 1D landscape (3 directions, 21 points over
    [-0.5, 0.5], the reference's seed-123 stream draws 0..2, greedy, 512 new tokens, the first 80
    prompts) -- it needs AdvBench, which the user gives (``prompts.file`` or ``prompts.set``).
    For speed on a GPU replace ``direction.stream`` by "per_tensor" (other directions, same law)."""
    if name == "quick":
        return SweepSpec(
            name="quick", kind="1d-random", grid=Grid(directions=1, points=7, range=(-0.5, 0.5)),
            prompts=PromptSource(set="harmful-mini", limit=16),
            benign=PromptSource(set="benign-mini", limit=16), max_new_tokens=48,
        )
    if name == "paper":
        return SweepSpec(
            name="paper", kind="1d-random", grid=Grid(directions=3, points=21, range=(-0.5, 0.5)),
            direction=DirectionRecipe(seed=123, stream="reference"),
            prompts=PromptSource(limit=80), max_new_tokens=512,
        )
    raise ValidationError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
