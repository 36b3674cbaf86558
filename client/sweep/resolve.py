"""A spec's local inputs, read once and before any RPC: the prompt files and the capability files.

:func:`resolve` turns a validated :class:`~.spec.SweepSpec` into a :class:`ResolvedSpec`: the spec
with the prompts of each prompt file it names (sent inline) and its capability metrics (questions
and texts read, with their content hashes). The plan is built from a resolved spec alone, so a
sweep reads each file once and fails on a bad file before it touches a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..prompt_files import read_prompts
from .capability import CapabilityMetric, load_capability
from .spec import PromptSource, SweepSpec

__all__ = ["ResolvedSpec", "resolve"]


@dataclass(frozen=True)
class ResolvedSpec:
    """A spec with its local inputs read: ``inline`` maps each prompt file to its prompts (in
    order, before the source's limit); ``capability`` holds the metrics of ``spec.capability``."""

    spec: SweepSpec
    inline: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    capability: tuple[CapabilityMetric, ...] = ()

    @property
    def sources(self) -> list[tuple[str, PromptSource]]:
        """(metric, source): the harmful prompts (``asr``), then the benign ones (``refusal``)."""
        benign = [("refusal", self.spec.benign)] if self.spec.benign is not None else []
        return [("asr", self.spec.prompts), *benign]

    @property
    def prompt_set_names(self) -> list[str]:
        """The server-side sets the spec names (the fleet must hold each, with one content)."""
        return [src.set for _, src in self.sources if src.set]


def resolve(spec: SweepSpec, *, inline: Mapping[str, list[str]] | None = None) -> ResolvedSpec:
    """Read what ``spec`` names on this machine. ``inline`` gives prompt files already read (file
    -> prompts); the others are read here. Bad files raise ValidationError naming them."""
    given = dict(inline or {})
    prompts: dict[str, tuple[str, ...]] = {}
    for src in (spec.prompts, spec.benign):
        if src is not None and src.file and src.file not in prompts:
            read = given[src.file] if src.file in given else read_prompts(src.file, column=src.column or None)
            prompts[src.file] = tuple(read)
    return ResolvedSpec(spec, prompts, tuple(load_capability(spec.capability)))
