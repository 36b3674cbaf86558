"""Series and titles in a reader's words, for figures and tables: ``d0|default`` becomes
"direction 1", a custom system prompt its opening words, a model path its last part, and a
system prompt shared by every curve moves from the legend to the title.

The store's labels (:class:`~.records.Series`: ``"d0|default"``, ``"plane|custom-1a2b3c4d"``)
stay what the store and summary.json hold; only what a reader sees is renamed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .records import Series, system_label
from .sweep_meta import RecordedSpec

__all__ = ["METRIC_LABELS", "SeriesNames", "direction_name", "model_name", "name_series", "name_spec_series",
           "spec_system_names", "system_names", "system_prompt_name"]

_TEXT_SHOWN = 28  # characters of a custom system prompt shown in a legend
#: Each metric as an axis or a table names it.
METRIC_LABELS = {"asr": "ASR (%)", "refusal": "over-refusal (%)", "accuracy": "MC accuracy (%)",
                 "perplexity": "perplexity"}


def model_name(name: str) -> str:
    """A model as a reader names it: the last part of a path or hub id (``runs/attack-10`` ->
    "attack-10", ``HuggingFaceTB/SmolLM2-135M-Instruct`` -> "SmolLM2-135M-Instruct")."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def direction_name(direction: str, *, target: str = "") -> str:
    """``d0`` -> "direction 1"; ``interp`` -> "toward TARGET"; ``plane`` -> "random plane"."""
    if direction.startswith("d") and direction[1:].isdigit():
        return f"direction {int(direction[1:]) + 1}"
    if direction == "interp":
        return f"toward {target}" if target else "interpolation"
    if direction == "plane":
        return "random plane"
    return direction


def system_names(texts: Sequence[str]) -> dict[str, str]:
    """Series system label -> reader's name, for the system prompts a spec lists (presets keep their
    name; a custom text shows its opening words in quotes)."""
    return {system_label(text): system_prompt_name(system_label(text), text) for text in texts}


def system_prompt_name(label: str, text: str = "") -> str:
    """A system prompt as a reader knows it: the preset's name, or the custom text's opening words."""
    if not label.startswith("custom-"):
        return label
    if not text:
        return f"custom prompt {label.removeprefix('custom-')}"
    shown = text if len(text) <= _TEXT_SHOWN else text[: _TEXT_SHOWN - 1].rstrip() + "…"
    return f'"{shown}"'


@dataclass(frozen=True)
class SeriesNames:
    """Readers' names of a figure's series: ``names`` (store label -> name) and the system prompt
    every series shares, if one (said once, in the title, instead of in every legend entry)."""

    names: dict[str, str]
    shared_system: str | None

    def title(self, head: str) -> str:
        return f"{head} · system prompt: {self.shared_system}" if self.shared_system else head

    def full(self, label: str) -> str:
        """``label``'s name on its own (a heading, not a legend): the shared system prompt included."""
        return f"{self.names[label]}, {self.shared_system}" if self.shared_system else self.names[label]


def name_series(labels: Iterable[str], *, systems: Mapping[str, str] | None = None, target: str = "") -> SeriesNames:
    """Readers' names for the store labels ``labels``; ``systems`` maps system labels to names
    (:func:`system_names`), ``target`` names an interpolation's checkpoint."""
    systems = systems or {}
    parsed = {label: Series.parse(label) for label in labels}
    prompts = {s.system for s in parsed.values() if s.system}
    shared = systems.get(next(iter(prompts)), system_prompt_name(next(iter(prompts)))) if len(prompts) == 1 else None
    names = {}
    for label, series in parsed.items():
        name = direction_name(series.direction, target=target)
        if series.system and shared is None:
            name += f", {systems.get(series.system, system_prompt_name(series.system))}"
        names[label] = name
    return SeriesNames(names, shared)


def name_spec_series(labels: Iterable[str], spec: RecordedSpec | Mapping[str, object]) -> SeriesNames:
    """Readers' names for a sweep's store labels, from the spec the store records (its system
    prompts' names and an interpolation's target); a spec dict is read as a :class:`RecordedSpec`."""
    spec = spec if isinstance(spec, RecordedSpec) else RecordedSpec.from_json(spec)
    return name_series(labels, systems=spec_system_names(spec), target=spec.grid.target)


def spec_system_names(spec: RecordedSpec) -> dict[str, str]:
    """:func:`system_names` of the system prompts a sweep's recorded spec lists (presets and texts)."""
    return system_names([*spec.system_prompts, *spec.system_prompt_texts])
