"""The sweep spec's TOML layout: a dict (parsed TOML, ``SweepSpec.to_dict()``, or what
``visage sweep``'s flags and the gate's config build) to a validated :class:`~.schema.SweepSpec`.

Layout (every table and key optional except what the kind needs; see ``examples/sweeps``)::

    name = "quick"
    kind = "1d-random"        # 2d-random | 1d-interpolation | 2d-interpolation-random
    preset = "quick"          # optional: start from a preset (quick | paper | paper-template)
    family = "llama2"         # preset "paper" only: llama2 | vicuna | mistral | llama3
    [grid]
    directions = 1            # 1D random: how many random directions (draws 0..n-1)
    points = 7                # points per random axis
    range = [-0.5, 0.5]
    target = "chat"           # interpolation kinds: a registered checkpoint name
    steps = 10                # interpolation: s; a in linspace(-e/s, 1+e/s, s+2e+1)
    extra = 2                 # interpolation: e
    adaptive = false          # true: from the centre outward, skipping the broken plateau (docs/sweeps.md)
    stop_after = 3            # adaptive: a side stops after this many consecutive points at 100 % ASR
    edge_resolution = 0.0     # adaptive, 1D: bisect each edge off the grid to this width (0 = no)
    [direction]
    seed = 123
    stream = "reference"      # the authors' CPU stream (exact), or "per_tensor" (fast on GPU)
    normalization = "layer"
    selection = "reference"
    [prompts]                 # harmful set: a server-side set name, or a file sent inline
    set = "harmful-mini"      # or: file = "harmful_behaviors.csv"
    limit = 16
    [benign]                  # optional: over-refusal
    set = "benign-mini"
    limit = 16
    at = "all"                # "all" points, or "origin" only (theta0 + base: the candidate)
    [capability]              # optional: capability/fluency at every point (Score RPC)
    mc_file = "mmlu.csv"      # MMLU-style CSV/JSONL; accuracy (%) from the letter logits
    shots = 5                 # the first 5 questions are the shots (not scored)
    limit = 0                 # scored questions (0 = all the rest)
    perplexity_file = ""      # one text per line, or JSONL with a "text" field
    fluency = false           # or: the built-in fluency texts (data/fluency.txt)
    [[base]]                  # optional: a fixed perturbation added to every point
    direction = "interp:candidate"   # interp:NAME | adapter:NAME | seed:N
    coefficient = 1.0
    [evaluation]
    system_prompts = ["default"]   # presets, or custom texts (a preset lookalike or one word is refused)
    system_prompt_texts = []       # custom texts taken as given, never read as a preset
    chat_format = "tokenizer"
    judge = "keyword"
    keywords = []
    [generation]
    max_new_tokens = 48

Every problem, unknown keys included, is reported at once (a :class:`~.schema.SpecError`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safety_landscape.common.names import PAPER_FAMILIES

from ...errors import ValidationError
from ...validation import is_finite_number
from .presets import PRESETS, preset, preset_tables
from .rules import problems_of
from .schema import BaseTerm, Capability, DirectionRecipe, Grid, PromptSource, SpecError, SweepSpec

__all__ = ["load_spec", "load_spec_data", "merge_spec_data", "resolve_relative_files", "spec_from_dict"]

# The flat tables: TOML key -> SweepSpec field ("" = top level; None = read elsewhere).
_FLAT: dict[str, dict[str, str | None]] = {
    "": {"name": "name", "kind": "kind", "points_per_call": "points_per_call", "preset": None, "family": None},
    "evaluation": {"system_prompts": "system_prompts", "system_prompt_texts": "system_prompt_texts",
                   "chat_format": "chat_format", "judge": "judge", "keywords": "keywords", "early_stop": "early_stop",
                   "referee": "referee"},
    "generation": {"max_new_tokens": "max_new_tokens", "do_sample": "do_sample", "seed": "sample_seed",
                   "temperature": "temperature", "top_p": "top_p"},
}
# The tables that are a dataclass of their own.
_NESTED: dict[str, type] = {"grid": Grid, "direction": DirectionRecipe, "prompts": PromptSource, "benign": PromptSource,
                            "capability": Capability}
_OPTIONAL = ("benign", "capability")  # None (to_dict's, or a flag's) drops the table
_TUPLES = {"system_prompts", "system_prompt_texts", "keywords", "include", "exclude", "range"}
# Keys that hold a file path, resolved against the spec file's folder when relative.
_FILES = {"prompts": ("file",), "benign": ("file",), "capability": ("mc_file", "perplexity_file")}
_TABLES = "grid, direction, prompts, benign, capability, base, evaluation, generation"


def resolve_relative_files(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """``data`` with each relative file path (``prompts.file``, ``benign.file``,
    ``capability.mc_file``, ``capability.perplexity_file``) joined to ``base_dir``."""
    out = dict(data)
    for table, keys in _FILES.items():
        values = out.get(table)
        if not isinstance(values, Mapping):
            continue
        out[table] = {k: str(base_dir / v) if k in keys and isinstance(v, str) and v and not Path(v).is_absolute() else v
                      for k, v in values.items()}
    return out


def merge_spec_data(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``data``, table by table: a key in an override table replaces that
    key only; a None table drops the table; a top-level value replaces the value."""
    out = dict(data)
    for key, value in overrides.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = {**below, **value}
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def _plain(key: str, value: Any) -> Any:
    return tuple(value) if key in _TUPLES and isinstance(value, list) else value


def _table(cls: type, data: Any, where: str, problems: list[str], start: Any) -> Any:
    """The dataclass ``cls`` of a table: ``start`` (or the defaults) with the table's keys set."""
    if not isinstance(data, Mapping):
        problems.append(f"{where}: must be a table, got {type(data).__name__}")
        return start
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            problems.append(f"{where}.{key}: unknown key; known: {', '.join(sorted(names))}")
            continue
        values[key] = _plain(key, value)
    return dataclasses.replace(start if start is not None else cls(), **values)


def _base_terms(value: Any, problems: list[str]) -> tuple[BaseTerm, ...]:
    """``[[base]]`` tables (or to_dict()'s list of dicts) -> BaseTerms; problems for bad shapes."""
    if not isinstance(value, (list, tuple)):
        problems.append("base: must be a list of tables ([[base]] direction = \"interp:NAME\", coefficient = 1.0)")
        return ()
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            problems.append(f"base[{i}]: must be a table with direction and coefficient")
            continue
        for key in sorted(set(item) - {"direction", "coefficient"}):
            problems.append(f"base[{i}].{key}: unknown key; known: coefficient, direction")
        if "direction" not in item:
            problems.append(f"base[{i}].direction: missing (interp:NAME, adapter:NAME or seed:N)")
            continue
        coef = item.get("coefficient", 1.0)
        out.append(BaseTerm(item["direction"], float(coef) if is_finite_number(coef) else coef))  # 1 and 1.0: one key
    return tuple(out)


def _flat_table(key: str, value: Any, values: dict[str, Any], problems: list[str]) -> None:
    if not isinstance(value, Mapping):
        problems.append(f"{key}: must be a table")
        return
    for sub, v in value.items():
        field = _FLAT[key].get(sub)
        if field is None:
            problems.append(f"{key}.{sub}: unknown key; known: {', '.join(sorted(_FLAT[key]))}")
        else:
            values[field] = _plain(sub, v)


def _values(data: Mapping[str, Any], start: SweepSpec, problems: list[str]) -> dict[str, Any]:
    """The SweepSpec fields ``data`` sets, on top of ``start`` (a table the start lacks begins
    from its preset's :func:`~.presets.preset_tables`)."""
    spec_fields = {f.name for f in dataclasses.fields(SweepSpec)}
    tables = preset_tables(data.get("preset") if isinstance(data.get("preset"), str) else None)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NESTED:
            if key in _OPTIONAL and value is None:
                values[key] = None
            else:
                below = getattr(start, key)
                values[key] = _table(_NESTED[key], value, key, problems, below if below is not None else tables.get(key))
        elif key == "base":
            values[key] = _base_terms(value, problems)
        elif key in _FLAT[""]:
            field = _FLAT[""][key]
            if field:
                values[field] = value
        elif key in ("evaluation", "generation"):
            _flat_table(key, value, values, problems)
        elif key in spec_fields:  # to_dict() round trip
            values[key] = _plain(key, value)
        else:
            problems.append(f"{key}: unknown key; known tables: {_TABLES}")
    return values


def _start(data: Mapping[str, Any], problems: list[str]) -> SweepSpec:
    """The spec ``data`` starts from: its ``preset`` (with its ``family``), else the defaults."""
    name, family = data.get("preset"), data.get("family")
    if "preset" in data and name not in PRESETS:
        problems.append(f"preset: {name!r} is not one of {', '.join(PRESETS)}")
        name = None
    if family is not None and name != "paper":
        problems.append(f"family: {family!r} names the model family of preset = \"paper\" only; remove it")
        family = None
    if family is not None and family not in PAPER_FAMILIES:
        problems.append(f"family: {family!r} is not one of {', '.join(PAPER_FAMILIES)}")
        family = None
    return SweepSpec() if name is None else preset(name, family=family)


def spec_from_dict(data: Mapping[str, Any], *, check_files: bool = True, base_dir: Path | None = None) -> SweepSpec:
    """A validated spec from the layout above (or ``SweepSpec.to_dict()``'s). A top-level
    ``preset = "quick"`` starts from that preset. Relative files resolve against ``base_dir``
    (when given). Every problem, unknown keys included, is reported at once.

    Example::

        spec = spec_from_dict({"preset": "quick", "name": "short", "generation": {"max_new_tokens": 16}})
    """
    if base_dir is not None:
        data = resolve_relative_files(data, base_dir)
    problems: list[str] = []
    start = _start(data, problems)
    spec = dataclasses.replace(start, **_values(data, start, problems))
    problems += problems_of(spec, check_files=check_files)
    if problems:
        raise SpecError(problems)
    return spec


def load_spec_data(path: str | Path) -> dict[str, Any]:
    """The parsed TOML of a sweep spec file, its relative files resolved against its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"cannot read sweep spec {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}") from None
    return resolve_relative_files(data, path.parent)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec (relative prompt files resolve against its folder).

    Example::

        spec = load_spec("quick.toml")      # visage sweep --print-spec quick > quick.toml
    """
    return spec_from_dict(load_spec_data(path))
