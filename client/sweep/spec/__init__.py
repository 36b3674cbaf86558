"""Sweep specs: what a landscape sweep measures, as dataclasses, a TOML file, or a preset.

``schema`` (the types and their defaults), ``rules`` (every value's type and range, reported all
at once as one :class:`SpecError`), ``presets`` (``quick``, ``paper``) and ``loading`` (the TOML
layout, merged with overrides such as ``visage sweep``'s flags).
"""

from .loading import load_spec, load_spec_data, merge_spec_data, resolve_relative_files, spec_from_dict
from .presets import PRESETS, preset
from .rules import check_capability, parse_base_direction, problems_of, validate
from .schema import BASE_KINDS, BENIGN_AT, KINDS, BaseTerm, Capability, DirectionRecipe, Grid, PromptSource, SpecError, SweepSpec

__all__ = ["BASE_KINDS", "BENIGN_AT", "KINDS", "PRESETS", "BaseTerm", "Capability", "DirectionRecipe", "Grid",
           "PromptSource", "SpecError", "SweepSpec", "check_capability", "load_spec", "load_spec_data",
           "merge_spec_data", "parse_base_direction", "preset", "problems_of", "resolve_relative_files",
           "spec_from_dict", "validate"]
