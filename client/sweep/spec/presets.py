"""The named sweeps a user can start from: ``quick`` (a laptop-CPU landscape), ``paper`` (the
reference's configuration for one model family) and ``paper-template`` (the paper's landscape
for today's models, through the tokenizer's chat template). docs/sweeps.md compares them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from safety_landscape.common.names import PAPER_FAMILIES

from ...errors import ValidationError
from .schema import Capability, DirectionRecipe, Grid, PromptSource, SweepSpec

__all__ = ["DEFAULT_FAMILY", "PRESETS", "preset", "preset_tables"]

PRESETS = ("quick", "paper", "paper-template")
#: The family of ``paper`` when none is named: the reference's own default (its ``llama2-base``).
DEFAULT_FAMILY = "llama2"
# The reference's `<family>-base` system prompt, as a preset name (llama3 has none: its
# `llama3-empty`, whose empty system block the llama3 format writes).
_BASE_SYSTEM_PROMPT = MappingProxyType({"llama2": "llama2", "vicuna": "vicuna", "mistral": "mistral", "llama3": "empty"})
# What a preset's optional tables start from when a spec adds them.
_TABLES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"paper": MappingProxyType({"capability": Capability(mc_format="reference")})})


def _paper_landscape(name: str, **changes: Any) -> SweepSpec:
    """docs/method.md's 1D landscape: 3 directions (the seed-123 reference stream, draws 0..2), 21
    points over [-0.5, 0.5], greedy, 512 new tokens, the first 80 prompts (AdvBench: the user's)."""
    return SweepSpec(name=name, kind="1d-random", grid=Grid(directions=3, points=21, range=(-0.5, 0.5)),
                     direction=DirectionRecipe(seed=123, stream="reference"), prompts=PromptSource(limit=80),
                     max_new_tokens=512).replace(**changes)


def preset(name: str, *, family: str | None = None) -> SweepSpec:
    """``quick``: a laptop-CPU landscape (1 direction, 7 points, harmful-mini 16 + benign-mini 16,
    48 new tokens).

    ``paper``: the reference's configuration for ``family`` (llama2 | vicuna | mistral | llama3;
    default llama2, the reference's own default): the paper's landscape with the family's literal
    chat format and its ``-base`` system prompt, and the authors' rule for tied parameters; a
    ``[capability]`` table added to it starts from the reference's MMLU prompt and letters.

    ``paper-template``: the same landscape for today's models: the tokenizer's own chat template
    with the model's default system prompt, tied tensors perturbed once (what ``paper`` was
    before the family presets; its points and keys are unchanged).

    Both paper presets need AdvBench, which the user gives (``prompts.file`` or ``prompts.set``).
    For speed on a GPU replace ``direction.stream`` by "per_tensor" (other directions, same law;
    with ``paper`` also ``direction.tied = "once"``). ``visage sweep --print-spec NAME`` prints
    each as a TOML file to edit.

    Example::

        quick = preset("quick")
        paper = preset("paper", family="llama3").replace(prompts=PromptSource(set="advbench", limit=80))
    """
    if family is not None and name != "paper":
        raise ValidationError(f"family {family!r}: only the paper preset is per model family")
    if name == "quick":
        return SweepSpec(
            name="quick", kind="1d-random", grid=Grid(directions=1, points=7, range=(-0.5, 0.5)),
            prompts=PromptSource(set="harmful-mini", limit=16),
            benign=PromptSource(set="benign-mini", limit=16), max_new_tokens=48,
        )
    if name == "paper":
        family = DEFAULT_FAMILY if family is None else family
        if family not in PAPER_FAMILIES:
            raise ValidationError(f"family {family!r} is not one of {', '.join(PAPER_FAMILIES)}")
        return _paper_landscape(f"paper-{family}", chat_format=family, system_prompts=(_BASE_SYSTEM_PROMPT[family],),
                                direction=DirectionRecipe(seed=123, stream="reference", tied="reference"))
    if name == "paper-template":
        return _paper_landscape("paper-template")
    raise ValidationError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")


def preset_tables(name: str | None) -> Mapping[str, Any]:
    """The values a preset's optional tables start from when a spec adds them (``paper``:
    ``[capability]`` with ``mc_format = "reference"``); empty for other names."""
    return _TABLES.get(name or "", MappingProxyType({}))
