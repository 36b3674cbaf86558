"""Sweep specs: what a landscape sweep measures, as dataclasses, a TOML file, or a preset.

A :class:`SweepSpec` names the grid (``kind`` + :class:`Grid`), the directions' recipe
(:class:`DirectionRecipe`), the harmful prompts and the optional benign (over-refusal) prompts
(:class:`PromptSource`), the system prompts, chat format, judge and generation settings.
:func:`validate` reports EVERY problem at once, each naming its field, as one :class:`SpecError`.

TOML layout (every table and key optional except what the kind needs; see ``examples/sweeps``)::

    name = "quick"
    kind = "1d-random"        # 2d-random | 1d-interpolation | 2d-interpolation-random
    [grid]
    directions = 1            # 1D random: how many random directions (draws 0..n-1)
    points = 7                # points per random axis
    range = [-0.5, 0.5]
    target = "chat"           # interpolation kinds: a registered checkpoint name
    steps = 10                # interpolation: s; a in linspace(-e/s, 1+e/s, s+2e+1)
    extra = 2                 # interpolation: e
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
    system_prompts = ["default"]   # presets or custom texts
    chat_format = "tokenizer"
    judge = "keyword"
    keywords = []
    [generation]
    max_new_tokens = 48
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..client import CHAT_FORMATS, NORMALIZATIONS, SELECTIONS, STREAMS
from ..errors import ValidationError
from ..validation import is_finite_number, is_int

__all__ = ["BENIGN_AT", "KINDS", "PRESETS", "BaseTerm", "Capability", "DirectionRecipe", "Grid", "PromptSource",
           "SpecError", "SweepSpec", "check_capability", "load_spec", "preset", "spec_from_dict", "validate"]

KINDS = ("1d-random", "2d-random", "1d-interpolation", "2d-interpolation-random")
PRESETS = ("quick", "paper")
JUDGES = ("keyword", "classifier")
BENIGN_AT = ("all", "origin")
BASE_KINDS = ("interp", "adapter", "seed")


class SpecError(ValidationError):
    """A sweep spec with one or more problems; ``.problems`` lists ``"field: what is wrong"``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid sweep spec ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
                         + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Grid:
    """The coefficients. Random axes: ``points`` values over ``range``. Interpolation axis:
    ``a in linspace(-extra/steps, 1 + extra/steps, steps + 2*extra + 1)`` toward ``target``."""

    directions: int = 1
    points: int = 21
    range: tuple[float, float] = (-0.5, 0.5)
    target: str = ""
    steps: int = 10
    extra: int = 0


@dataclass(frozen=True)
class DirectionRecipe:
    """How random directions are drawn. Direction ``i`` is draw ``index=i`` of ``seed``: with the
    "reference" stream that is exactly the authors' i-th ``torch.manual_seed(123)`` draw."""

    seed: int = 123
    stream: str = "reference"
    normalization: str = "layer"
    selection: str = "reference"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSource:
    """A server-side named set (``set``) or a local file read here and sent inline (``file``)."""

    set: str = ""
    file: str = ""
    column: str = ""
    limit: int = 0
    at: str = "all"  # benign only: "all" points or the "origin" (theta0 + base) only


@dataclass(frozen=True)
class BaseTerm:
    """A fixed perturbation term added to every point: ``interp:NAME`` (toward a registered
    checkpoint; 1.0 = its weights), ``adapter:NAME`` or ``seed:N`` (a random direction: draw 0
    of seed N, layer-normalised, per-tensor stream)."""

    direction: str
    coefficient: float = 1.0


@dataclass(frozen=True)
class Capability:
    """Capability controls scored at every point (METHOD.md section 6), on the same server right
    after the point's safety evaluation. ``mc_file``: MMLU-style questions (accuracy, %), the first
    ``shots`` are the few-shot examples and are not scored, then at most ``limit`` (0 = all) are.
    ``perplexity_file`` (one text per line, or JSONL with "text") or ``fluency`` (the built-in
    texts): perplexity."""

    mc_file: str = ""
    shots: int = 0
    limit: int = 0
    perplexity_file: str = ""
    fluency: bool = False


@dataclass(frozen=True)
class SweepSpec:
    name: str = "sweep"
    kind: str = "1d-random"
    grid: Grid = field(default_factory=Grid)
    direction: DirectionRecipe = field(default_factory=DirectionRecipe)
    prompts: PromptSource = field(default_factory=PromptSource)
    benign: PromptSource | None = None
    base: tuple[BaseTerm, ...] = ()
    capability: Capability | None = None
    system_prompts: tuple[str, ...] = ("default",)
    chat_format: str = "tokenizer"
    judge: str = "keyword"
    keywords: tuple[str, ...] = ()
    max_new_tokens: int = 128
    do_sample: bool = False
    sample_seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    early_stop: bool = True
    points_per_call: int = 4  # most grid points a server takes from the queue at once

    @property
    def two_d(self) -> bool:
        return self.kind.startswith("2d")

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (stored as the sweep's metadata; ``spec_from_dict`` reads it back)."""
        return dataclasses.asdict(self)


# -- presets -------------------------------------------------------------------------------------


def preset(name: str) -> SweepSpec:
    """``quick``: a laptop-CPU landscape (1 direction, 7 points, harmful-mini 16 + benign-mini 16,
    48 new tokens). ``paper``: METHOD.md's 1D landscape (3 directions, 21 points over
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


# -- validation ----------------------------------------------------------------------------------


def _check_source(src: PromptSource, where: str, problems: list[str], *, need_file_exists: bool) -> None:
    if bool(src.set) == bool(src.file):
        problems.append(f"{where}: give exactly one of {where}.set (a server-side set name) or "
                        f"{where}.file (a prompt file read here)")
    if src.file and need_file_exists and not Path(src.file).is_file():
        problems.append(f"{where}.file: {src.file!r} is not a readable file")
    if not is_int(src.limit) or src.limit < 0:
        problems.append(f"{where}.limit: must be an integer >= 0 (0 = all), got {src.limit!r}")
    if where == "benign" and src.at not in BENIGN_AT:
        problems.append(f"benign.at: {src.at!r} is not one of {', '.join(BENIGN_AT)}")
    elif where != "benign" and src.at != "all":
        problems.append(f"{where}.at: only the benign set can be limited to the origin; remove it")


def parse_base_direction(text: str) -> tuple[str, str]:
    """``"interp:NAME"`` -> ("interp", "NAME"); ValueError if not interp:NAME, adapter:NAME, seed:N."""
    kind, sep, name = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or kind not in BASE_KINDS or not name or (kind == "seed" and not name.isdigit()):
        raise ValueError(f"{text!r} is not interp:NAME, adapter:NAME or seed:N")
    return kind, name


def _check_base(spec: SweepSpec, problems: list[str]) -> None:
    seen = set()
    for i, term in enumerate(spec.base):
        where = f"base[{i}]"
        if not isinstance(term, BaseTerm):
            problems.append(f"{where}: must be a table with direction and coefficient")
            continue
        try:
            kind, name = parse_base_direction(term.direction)
        except ValueError as exc:
            problems.append(f"{where}.direction: {exc}")
            continue
        if not is_finite_number(term.coefficient):
            problems.append(f"{where}.coefficient: must be a finite number, got {term.coefficient!r}")
        if term.direction in seen:
            problems.append(f"{where}.direction: {term.direction!r} is listed twice; give one term per direction")
        seen.add(term.direction)
        if kind == "interp" and "interpolation" in spec.kind and name == spec.grid.target:
            problems.append(f"{where}.direction: {term.direction!r} is also the grid's interpolation axis")


def check_capability(cap: Capability, problems: list[str], *, need_file_exists: bool) -> None:
    """Append the problems of a ``[capability]`` table (shared by sweep specs and gate configs)."""
    if not (cap.mc_file or cap.perplexity_file or cap.fluency):
        problems.append("capability: give mc_file, perplexity_file or fluency = true (or drop the table)")
    if cap.perplexity_file and cap.fluency:
        problems.append("capability: give perplexity_file or fluency = true, not both")
    if not isinstance(cap.fluency, bool):
        problems.append(f"capability.fluency: must be true or false, got {cap.fluency!r}")
    for name in ("mc_file", "perplexity_file"):
        value = getattr(cap, name)
        if not isinstance(value, str):
            problems.append(f"capability.{name}: must be a file path, got {value!r}")
        elif value and need_file_exists and not Path(value).is_file():
            problems.append(f"capability.{name}: {value!r} is not a readable file")
    for name in ("shots", "limit"):
        value = getattr(cap, name)
        if not is_int(value) or value < 0:
            problems.append(f"capability.{name}: must be an integer >= 0, got {value!r}")
    if (cap.shots or cap.limit) and not cap.mc_file:
        problems.append("capability.shots/limit: only meaningful with capability.mc_file")


def validate(spec: SweepSpec, *, check_files: bool = True) -> SweepSpec:
    """Return ``spec`` if valid, else raise :class:`SpecError` listing every problem."""
    p: list[str] = []
    g = spec.grid
    if not spec.name or not isinstance(spec.name, str):
        p.append("name: must be a non-empty string")
    if spec.kind not in KINDS:
        p.append(f"kind: {spec.kind!r} is not one of {', '.join(KINDS)}")
    random_axes = {"1d-random": 1, "2d-random": 2, "2d-interpolation-random": 1}.get(spec.kind, 0)
    if random_axes:
        if not is_int(g.points) or g.points < 2:
            p.append(f"grid.points: must be an integer >= 2, got {g.points!r}")
        if (not isinstance(g.range, (tuple, list)) or len(g.range) != 2
                or not all(is_finite_number(x) for x in g.range)):
            p.append(f"grid.range: must be two finite numbers [low, high], got {g.range!r}")
        elif not g.range[0] < g.range[1]:
            p.append(f"grid.range: low must be < high, got {list(g.range)}")
    if spec.kind == "1d-random" and (not is_int(g.directions) or g.directions < 1):
        p.append(f"grid.directions: must be an integer >= 1, got {g.directions!r}")
    if "interpolation" in spec.kind:
        if not g.target:
            p.append("grid.target: the interpolation kinds need a registered checkpoint name")
        if not is_int(g.steps) or g.steps < 1:
            p.append(f"grid.steps: must be an integer >= 1, got {g.steps!r}")
        if not is_int(g.extra) or g.extra < 0:
            p.append(f"grid.extra: must be an integer >= 0, got {g.extra!r}")
    d = spec.direction
    if not is_int(d.seed) or not 0 <= d.seed < 2**63:
        p.append(f"direction.seed: must be an integer in [0, 2**63), got {d.seed!r}")
    for value, table, what in ((d.stream, STREAMS, "stream"), (d.normalization, NORMALIZATIONS, "normalization"),
                               (d.selection, SELECTIONS, "selection")):
        if value not in table:
            p.append(f"direction.{what}: {value!r} is not one of {', '.join(table)}")
    _check_source(spec.prompts, "prompts", p, need_file_exists=check_files)
    if spec.benign is not None:
        _check_source(spec.benign, "benign", p, need_file_exists=check_files)
    if not isinstance(spec.base, tuple):
        p.append("base: must be a list of {direction, coefficient} tables")
    else:
        _check_base(spec, p)
    if spec.capability is not None:
        check_capability(spec.capability, p, need_file_exists=check_files)
    if not spec.system_prompts:
        p.append("evaluation.system_prompts: give at least one (e.g. [\"default\"])")
    elif any(not isinstance(s, str) for s in spec.system_prompts):
        p.append("evaluation.system_prompts: every entry must be a string (a preset name or a text)")
    elif len(set(spec.system_prompts)) != len(spec.system_prompts):
        p.append("evaluation.system_prompts: contains duplicates")
    if spec.chat_format not in CHAT_FORMATS:
        p.append(f"evaluation.chat_format: {spec.chat_format!r} is not one of {', '.join(CHAT_FORMATS)}")
    if spec.judge not in JUDGES:
        p.append(f"evaluation.judge: {spec.judge!r} is not one of {', '.join(JUDGES)}")
    if any(not isinstance(k, str) or not k for k in spec.keywords):
        p.append("evaluation.keywords: every keyword must be a non-empty string")
    if spec.keywords and spec.judge != "keyword":
        p.append("evaluation.keywords: only meaningful with judge = \"keyword\"")
    if not is_int(spec.max_new_tokens) or spec.max_new_tokens < 1:
        p.append(f"generation.max_new_tokens: must be an integer >= 1, got {spec.max_new_tokens!r}")
    if not is_finite_number(spec.temperature) or spec.temperature <= 0:
        p.append(f"generation.temperature: must be > 0, got {spec.temperature!r}")
    if not is_finite_number(spec.top_p) or not 0 < spec.top_p <= 1:
        p.append(f"generation.top_p: must be in (0, 1], got {spec.top_p!r}")
    if not is_int(spec.points_per_call) or spec.points_per_call < 1:
        p.append(f"points_per_call: must be an integer >= 1, got {spec.points_per_call!r}")
    if p:
        raise SpecError(p)
    return spec


# -- TOML / dict loading ---------------------------------------------------------------------------

# TOML key -> (SweepSpec field, TOML table); "" = top level.
_FLAT = {
    "": {"name": "name", "kind": "kind", "points_per_call": "points_per_call", "preset": None},
    "evaluation": {"system_prompts": "system_prompts", "chat_format": "chat_format", "judge": "judge",
                   "keywords": "keywords", "early_stop": "early_stop"},
    "generation": {"max_new_tokens": "max_new_tokens", "do_sample": "do_sample", "seed": "sample_seed",
                   "temperature": "temperature", "top_p": "top_p"},
}
_NESTED = {"grid": Grid, "direction": DirectionRecipe, "prompts": PromptSource, "benign": PromptSource,
           "capability": Capability}
_TUPLES = {"system_prompts", "keywords", "include", "exclude", "range"}


def _table(cls: type, data: Any, where: str, problems: list[str], base: Any) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: must be a table, got {type(data).__name__}")
        return base
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            problems.append(f"{where}.{key}: unknown key; known: {', '.join(sorted(names))}")
            continue
        values[key] = tuple(value) if key in _TUPLES and isinstance(value, list) else value
    return dataclasses.replace(base, **values)


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
        unknown = sorted(set(item) - {"direction", "coefficient"})
        for key in unknown:
            problems.append(f"base[{i}].{key}: unknown key; known: coefficient, direction")
        if "direction" not in item:
            problems.append(f"base[{i}].direction: missing (interp:NAME, adapter:NAME or seed:N)")
            continue
        coef = item.get("coefficient", 1.0)
        out.append(BaseTerm(item["direction"], float(coef) if is_finite_number(coef) else coef))  # 1 and 1.0: one key
    return tuple(out)


def spec_from_dict(data: Mapping[str, Any], *, check_files: bool = True, base_dir: Path | None = None) -> SweepSpec:
    """A validated spec from the TOML layout above (or ``SweepSpec.to_dict()``'s). A top-level
    ``preset = "quick"`` starts from that preset. Relative prompt files resolve against
    ``base_dir``. Every problem, unknown keys included, is reported at once."""
    problems: list[str] = []
    start = preset(data["preset"]) if data.get("preset") in PRESETS else SweepSpec()
    if "preset" in data and data["preset"] not in PRESETS:
        problems.append(f"preset: {data['preset']!r} is not one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NESTED:
            if key in ("benign", "capability") and value is None:
                values[key] = None
                continue
            base = getattr(start, key) or _NESTED[key]()
            values[key] = _table(_NESTED[key], value, key, problems, base)
        elif key == "base":
            values[key] = _base_terms(value, problems)
        elif key in _FLAT[""]:
            if _FLAT[""][key]:
                values[_FLAT[""][key]] = value
        elif key in ("evaluation", "generation"):
            if not isinstance(value, Mapping):
                problems.append(f"{key}: must be a table")
                continue
            for sub, v in value.items():
                if sub not in _FLAT[key]:
                    problems.append(f"{key}.{sub}: unknown key; known: {', '.join(sorted(_FLAT[key]))}")
                else:
                    values[_FLAT[key][sub]] = tuple(v) if sub in _TUPLES and isinstance(v, list) else v
        elif key in {f.name for f in dataclasses.fields(SweepSpec)}:  # to_dict() round trip
            values[key] = tuple(value) if key in _TUPLES and isinstance(value, list) else value
        else:
            problems.append(f"{key}: unknown key; known tables: grid, direction, prompts, benign, capability, base, "
                            "evaluation, generation")
    spec = dataclasses.replace(start, **values)
    if isinstance(spec.grid.range, list):
        spec = spec.replace(grid=dataclasses.replace(spec.grid, range=tuple(spec.grid.range)))
    for key in ("prompts", "benign"):
        src = getattr(spec, key)
        if base_dir is not None and src is not None and isinstance(src.file, str) and src.file and not Path(src.file).is_absolute():
            spec = spec.replace(**{key: dataclasses.replace(src, file=str(base_dir / src.file))})
    cap = spec.capability
    if base_dir is not None and cap is not None:
        for name in ("mc_file", "perplexity_file"):
            value = getattr(cap, name)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                cap = dataclasses.replace(cap, **{name: str(base_dir / value)})
        spec = spec.replace(capability=cap)
    try:
        validate(spec, check_files=check_files)
    except SpecError as exc:
        problems += exc.problems
    if problems:
        raise SpecError(problems)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec (relative prompt files resolve against its folder)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"cannot read sweep spec {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}") from None
    return spec_from_dict(data, base_dir=path.parent)
