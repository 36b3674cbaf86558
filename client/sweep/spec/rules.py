"""The rules of a sweep spec: every value's type and range, and the rules between fields.

:func:`validate` reports EVERY problem at once, each naming its field as the TOML layout spells
it (``grid.points: ...``), as one :class:`~.schema.SpecError`. Sweep specs, ``visage sweep``'s
flags and the gate's config all end here, so each rule is written once.
"""

from __future__ import annotations

from pathlib import Path

from safety_landscape.common.names import (
    CHAT_FORMATS,
    JUDGES,
    NORMALIZATIONS,
    SELECTIONS,
    STREAMS,
    SYSTEM_PROMPT_PRESETS,
    TIED_RULES,
)

from ...capability import MC_FORMATS
from ...validation import is_finite_number, is_int
from .schema import (
    BASE_KINDS,
    BENIGN_AT,
    DEFAULT_STOP_AFTER,
    KINDS,
    BaseTerm,
    Capability,
    DirectionRecipe,
    PromptSource,
    SpecError,
    SweepSpec,
)

__all__ = ["check_capability", "parse_base_direction", "problems_of", "system_prompt_problem",
           "system_prompt_text_problem", "validate"]

# Random axes per kind (the interpolation axis is not one).
_RANDOM_AXES = {"1d-random": 1, "2d-random": 2, "2d-interpolation-random": 1}


def parse_base_direction(text: str) -> tuple[str, str]:
    """``"interp:NAME"`` -> ("interp", "NAME"); ValueError if not interp:NAME, adapter:NAME, seed:N."""
    kind, sep, name = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not sep or kind not in BASE_KINDS or not name or (kind == "seed" and not name.isdigit()):
        raise ValueError(f"{text!r} is not interp:NAME, adapter:NAME or seed:N")
    return kind, name


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two short strings."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def system_prompt_problem(value: str, *, text_flag: str = "--system-prompt-text") -> str | None:
    """Why ``value``, given where a preset name or a custom text is expected, is refused; None if
    it is a preset or reads as a text. Refused: a near-miss of a preset (the same letters and
    digits, or within two edits, ignoring case: "llama-2", "Default", "defualt") and any other
    single word ("none"): both are far likelier a mistyped preset than a system prompt. A text
    meant literally goes in ``text_flag`` (never read as a preset)."""
    if value in SYSTEM_PROMPT_PRESETS:
        return None
    if not value.strip():
        return "an empty system prompt: use the preset 'empty'"
    folded = value.casefold()
    squeezed = "".join(ch for ch in folded if ch.isalnum())
    distances = {p: _edits(folded, p) for p in SYSTEM_PROMPT_PRESETS}
    close = sorted((d, p) for p, d in distances.items() if squeezed == p or d <= min(2, len(p) // 3))
    presets = ", ".join(SYSTEM_PROMPT_PRESETS)
    if close:
        return (f"{value!r} is not a system prompt preset: did you mean {close[0][1]}? (presets: {presets}; "
                f"a custom text meant literally goes in {text_flag})")
    if len(value.split()) == 1:
        return (f"{value!r} is one word and not a system prompt preset ({presets}); "
                f"a one-word custom text goes in {text_flag}")
    return None


def system_prompt_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a custom text taken as given (it is empty or a preset's name), or None."""
    if value in SYSTEM_PROMPT_PRESETS:
        return f"{value!r} is a preset's name; give it as a preset (--system-prompt, evaluation.system_prompts)"
    return "an empty system prompt: use the preset 'empty'" if not value.strip() else None


def _check_source(src: PromptSource, where: str, problems: list[str], *, need_file_exists: bool) -> None:
    wrong = [name for name in ("set", "file", "column") if not isinstance(getattr(src, name), str)]
    problems += [f"{where}.{name}: must be a string, got {getattr(src, name)!r}" for name in wrong]
    if not wrong and bool(src.set.strip()) == bool(src.file):
        problems.append(f"{where}: give exactly one of {where}.set (a server-side set name) or "
                        f"{where}.file (a prompt file read here)")
    if not wrong and src.file and need_file_exists and not Path(src.file).is_file():
        problems.append(f"{where}.file: {src.file!r} is not a readable file")
    if not is_int(src.limit) or src.limit < 0:
        problems.append(f"{where}.limit: must be an integer >= 0 (0 = all), got {src.limit!r}")
    if where == "benign" and src.at not in BENIGN_AT:
        problems.append(f"benign.at: {src.at!r} is not one of {', '.join(BENIGN_AT)}")
    elif where != "benign" and src.at != "all":
        problems.append(f"{where}.at: only the benign set can be limited to the origin; remove it")


def _check_base(spec: SweepSpec, problems: list[str]) -> None:
    base: object = spec.base  # values from a dict arrive untyped: checked as objects
    if not isinstance(base, tuple):
        problems.append("base: must be a list of {direction, coefficient} tables")
        return
    seen = set()
    for i, term in enumerate(base):
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
        if kind == "interp" and "interpolation" in spec.kind and name in (spec.grid.target, spec.grid.target_b):
            problems.append(f"{where}.direction: {term.direction!r} is also the grid's interpolation axis")


def _check_flags(table: object, problems: list[str], name: str, flags: tuple[str, ...]) -> None:
    """Append a problem for each of ``flags`` of ``table`` (the TOML table ``name``) that is not
    true or false: a string such as "no" would otherwise read as on."""
    for flag in flags:
        value: object = getattr(table, flag)
        if not isinstance(value, bool):
            problems.append(f"{name}.{flag}: must be true or false, got {value!r}")


def check_capability(cap: Capability, problems: list[str], *, need_file_exists: bool) -> None:
    """Append the problems of a ``[capability]`` table (shared by sweep specs and gate configs)."""
    if not (cap.mc_file or cap.perplexity_file or cap.fluency):
        problems.append("capability: give mc_file, perplexity_file or fluency = true (or drop the table)")
    if cap.perplexity_file and cap.fluency:
        problems.append("capability: give perplexity_file or fluency = true, not both")
    _check_flags(cap, problems, "capability", ("fluency",))
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
    if cap.mc_format not in MC_FORMATS:
        problems.append(f"capability.mc_format: {cap.mc_format!r} is not one of {', '.join(MC_FORMATS)}")


def _check_grid(spec: SweepSpec, p: list[str]) -> None:
    g = spec.grid
    if _RANDOM_AXES.get(spec.kind, 0):
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
    if spec.kind == "2d-interpolation":
        if not g.target_b:
            p.append("grid.target_b: the 2d-interpolation kind needs a second registered checkpoint (axis b)")
        elif g.target_b == g.target:
            p.append(f"grid.target_b: {g.target_b!r} is also grid.target; the plane needs two different targets")
    elif g.target_b:
        p.append("grid.target_b: only the 2d-interpolation kind has a second target; remove it")


def _check_adaptive(spec: SweepSpec, p: list[str]) -> None:
    g = spec.grid
    adaptive: object = g.adaptive
    _check_flags(g, p, "grid", ("adaptive",))
    if not is_int(g.stop_after) or g.stop_after < 1:
        p.append(f"grid.stop_after: must be an integer >= 1 (consecutive points at 100 % ASR), got {g.stop_after!r}")
    if not is_finite_number(g.edge_resolution) or g.edge_resolution < 0:
        p.append(f"grid.edge_resolution: must be a number >= 0 (0 = no edge refinement), got {g.edge_resolution!r}")
    elif g.edge_resolution and spec.two_d:
        p.append("grid.edge_resolution: edges are refined on 1D grids only; remove it for a 2D kind")
    # 2: the default an earlier client recorded in every spec it wrote out, adaptive or not
    if adaptive is False and (g.stop_after not in (DEFAULT_STOP_AFTER, 2) or g.edge_resolution != 0):
        p.append("grid.stop_after/edge_resolution: only meaningful with grid.adaptive = true")


def _check_direction(d: DirectionRecipe, p: list[str]) -> None:
    if not is_int(d.seed) or not 0 <= d.seed < 2**63:
        p.append(f"direction.seed: must be an integer in [0, 2**63), got {d.seed!r}")
    for value, names, what in ((d.stream, STREAMS, "stream"), (d.normalization, NORMALIZATIONS, "normalization"),
                               (d.selection, SELECTIONS, "selection"), (d.tied, TIED_RULES, "tied")):
        if value not in names:
            p.append(f"direction.{what}: {value!r} is not one of {', '.join(names)}")
    if d.tied == "reference" and d.stream != "reference":
        p.append('direction.tied: "reference" reproduces the authors\' draws and needs stream = "reference"')


def _check_system_prompts(spec: SweepSpec, p: list[str]) -> None:
    """``system_prompts`` (presets, or texts that cannot be mistaken for one) and
    ``system_prompt_texts`` (texts taken as given): strings, no duplicates, at least one in all."""
    systems: object = spec.system_prompts
    texts: object = spec.system_prompt_texts
    lists_ok = True
    for name, values in (("system_prompts", systems), ("system_prompt_texts", texts)):
        if not isinstance(values, (tuple, list)) or any(not isinstance(s, str) for s in values):
            p.append(f"evaluation.{name}: must be a list of strings, got {values!r}")
            lists_ok = False
    if not lists_ok or not isinstance(systems, (tuple, list)) or not isinstance(texts, (tuple, list)):
        return
    if not systems and not texts:
        p.append("evaluation.system_prompts: give at least one (e.g. [\"default\"])")
    if len(set(systems) | set(texts)) != len(systems) + len(texts):
        p.append("evaluation.system_prompts: contains duplicates")
    for i, value in enumerate(systems):
        problem = system_prompt_problem(value, text_flag="evaluation.system_prompt_texts (--system-prompt-text)")
        if problem:
            p.append(f"evaluation.system_prompts[{i}]: {problem}")
    for i, value in enumerate(texts):
        problem = system_prompt_text_problem(value)
        if problem:
            p.append(f"evaluation.system_prompt_texts[{i}]: {problem}")


def _check_evaluation(spec: SweepSpec, p: list[str]) -> None:
    _check_system_prompts(spec, p)
    if spec.chat_format not in CHAT_FORMATS:
        p.append(f"evaluation.chat_format: {spec.chat_format!r} is not one of {', '.join(CHAT_FORMATS)}")
    if spec.judge not in JUDGES:
        p.append(f"evaluation.judge: {spec.judge!r} is not one of {', '.join(JUDGES)}")
    if not isinstance(spec.keywords, (tuple, list)) or any(not isinstance(k, str) or not k for k in spec.keywords):
        p.append("evaluation.keywords: every keyword must be a non-empty string")
    if spec.keywords and spec.judge != "keyword":
        p.append("evaluation.keywords: only meaningful with judge = \"keyword\"")
    _check_flags(spec, p, "evaluation", ("early_stop", "referee"))


def _check_generation(spec: SweepSpec, p: list[str]) -> None:
    _check_flags(spec, p, "generation", ("do_sample",))
    if not is_int(spec.max_new_tokens) or spec.max_new_tokens < 1:
        p.append(f"generation.max_new_tokens: must be an integer >= 1, got {spec.max_new_tokens!r}")
    if not is_finite_number(spec.temperature) or spec.temperature <= 0:
        p.append(f"generation.temperature: must be > 0, got {spec.temperature!r}")
    if not is_finite_number(spec.top_p) or not 0 < spec.top_p <= 1:
        p.append(f"generation.top_p: must be in (0, 1], got {spec.top_p!r}")


def problems_of(spec: SweepSpec, *, check_files: bool = True) -> list[str]:
    """Every problem of ``spec`` (``"field: what is wrong"``), in the TOML layout's order."""
    p: list[str] = []
    if not isinstance(spec.name, str) or not spec.name.strip():
        p.append("name: must be a non-empty string")
    if spec.kind not in KINDS:
        p.append(f"kind: {spec.kind!r} is not one of {', '.join(KINDS)}")
    _check_grid(spec, p)
    _check_adaptive(spec, p)
    _check_direction(spec.direction, p)
    _check_source(spec.prompts, "prompts", p, need_file_exists=check_files)
    if spec.benign is not None:
        _check_source(spec.benign, "benign", p, need_file_exists=check_files)
    _check_base(spec, p)
    if spec.capability is not None:
        check_capability(spec.capability, p, need_file_exists=check_files)
    _check_evaluation(spec, p)
    _check_generation(spec, p)
    if not is_int(spec.points_per_call) or spec.points_per_call < 1:
        p.append(f"points_per_call: must be an integer >= 1, got {spec.points_per_call!r}")
    return p


def validate(spec: SweepSpec, *, check_files: bool = True) -> SweepSpec:
    """Return ``spec`` if valid, else raise :class:`SpecError` listing every problem."""
    problems = problems_of(spec, check_files=check_files)
    if problems:
        raise SpecError(problems)
    return spec
