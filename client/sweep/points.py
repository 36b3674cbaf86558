"""From a resolved spec to the points to measure: coefficients, directions, evaluation variants, keys.

- :func:`axis_values` / :func:`interpolation_values` give a grid axis (docs/method.md section 2).
- :func:`build_plan` turns a :class:`~.resolve.ResolvedSpec` plus the fleet's facts (model
  fingerprints, prompt-set hashes) into a :class:`Plan`:

  * a **variant** is one evaluation settings message: (metric, system prompt). ``asr`` runs the
    harmful prompts; ``refusal`` the benign ones (over-refusal = % of benign prompts refused;
    at every point, or with ``benign.at = "origin"`` only at the origin, i.e. theta0 + base,
    whether or not the grid holds it); a capability variant (``accuracy``, ``perplexity``) is
    one ``Score`` measurement (:mod:`.capability`), after the site's safety variants;
  * the spec's ``base`` terms are added to every point (``theta0 + base + a*d1 (+ b*d2)``) and
    are part of every key;
  * a **site** is one weight state, named by its non-zero terms only, so the origin of every
    direction is the same site (measured once, recorded for every series);
  * a **point** is one stored result: (series, coords, metric) with its content key
    (``store.point_key`` over model facts, direction specs, coefficients, prompt-set hash, system
    prompt, chat format, generation and judge settings; for capability the hashes of its inputs).
    Its :class:`~safety_landscape.client.records.Series` is (direction, system label) for the
    safety metrics (``d0|default``) and the direction alone for capability (``d0``, ``plane``,
    ``interp``): capability does not depend on the system prompt;
  * a **task** is (site, variant): one server evaluation, feeding one or more points.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from safety_landscape.common.names import SYSTEM_PROMPT_PRESETS
from safety_landscape.v1 import landscape_pb2 as pb

from ..builders import (
    adapter_direction,
    evaluation_settings,
    generation,
    interpolation_direction,
    message_dict,
    perturbation,
    random_direction,
)
from ..records import Series, system_label
from ..store import point_key
from .capability import CapabilityMetric
from .resolve import ResolvedSpec, resolve
from .spec import BaseTerm, PromptSource, SweepSpec, parse_base_direction

__all__ = ["ModelFacts", "Plan", "Point", "Site", "Task", "Variant", "axis_values", "build_plan",
           "interpolation_values", "off_grid_point", "prompts_sha256"]

Terms = tuple[tuple[str, float], ...]  # (direction label, coefficient)


def _clean(x: float) -> float:
    x = round(x, 12)
    return 0.0 if x == 0 else x  # no -0.0


def axis_values(low: float, high: float, n: int) -> list[float]:
    """``linspace(low, high, n)`` with exact ends (rounded to 12 decimals so 0.05*k prints well)."""
    return [_clean(low + (high - low) * i / (n - 1)) for i in range(n)]


def interpolation_values(steps: int, extra: int) -> list[float]:
    """``linspace(-e/s, 1 + e/s, s + 2e + 1)``: 0 = the origin model, 1 = the target checkpoint."""
    return [_clean((i - extra) / steps) for i in range(steps + 2 * extra + 1)]


def prompts_sha256(prompts: Sequence[str]) -> str:
    """The server's prompt-set content hash (canonical JSON list), computed here."""
    blob = json.dumps(list(prompts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ModelFacts:
    """What the fleet agreed on; part of every key."""

    model_fingerprint: str
    tokenizer_fingerprint: str
    chat_template_sha256: str
    dtype: str
    device_type: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Variant:
    metric: str  # "asr" | "refusal" | "accuracy" | "perplexity"
    system: str
    label: str
    settings: pb.EvaluationSettings | None  # None for capability variants
    desc: dict[str, Any]  # JSON-able: what of the settings determines a result
    capability: CapabilityMetric | None = None

    @property
    def safety(self) -> bool:
        return self.capability is None

    @property
    def evaluation(self) -> pb.EvaluationSettings:
        """The settings of a safety variant (a capability variant has none: ValueError)."""
        if self.settings is None:
            raise ValueError(f"the {self.metric} variant is a capability score: it has no evaluation settings")
        return self.settings


@dataclass(frozen=True)
class Site:
    key: str
    terms: Terms  # zero terms dropped
    direction: str  # the direction of the first series that visits it (for scheduling: contiguous points)
    order: int


@dataclass(frozen=True)
class Point:
    key: str
    curve: Series
    coords: tuple[float, ...]
    metric: str
    system: str
    site: str
    variant: int

    @property
    def series(self) -> str:
        """The series' label, as stored (``d0|default``)."""
        return self.curve.label


@dataclass(frozen=True)
class Task:
    site: str
    variant: int


@dataclass
class Plan:
    spec: SweepSpec
    facts: ModelFacts
    directions: dict[str, pb.DirectionSpec]
    variants: list[Variant]
    sites: dict[str, Site]
    points: list[Point]
    tasks: dict[Task, list[Point]] = field(default_factory=dict)

    def perturbation(self, site: str) -> pb.Perturbation:
        return perturbation((self.directions[label], c) for label, c in self.sites[site].terms)

    def missing(self, have: set[str]) -> dict[Task, list[Point]]:
        """Tasks with at least one point whose key is not in ``have`` (store keys)."""
        return {t: pts for t, pts in self.tasks.items() if any(p.key not in have for p in pts)}

    def keys(self) -> list[str]:
        return [p.key for p in self.points]


def _prompt_source(src: PromptSource, inline: Mapping[str, Sequence[str]],
                   set_hashes: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(evaluation_settings kwargs, key description) for one prompt source."""
    if src.file:
        prompts = list(inline[src.file])
        prompts = prompts[: src.limit] if src.limit else prompts
        return {"prompts": prompts}, {"sha256": prompts_sha256(prompts), "limit": 0}
    return {"prompt_set": src.set, "limit": src.limit}, {"sha256": set_hashes[src.set], "limit": src.limit}


def _variants(resolved: ResolvedSpec, set_hashes: Mapping[str, str]) -> list[Variant]:
    spec = resolved.spec
    gen = generation(spec.max_new_tokens, do_sample=spec.do_sample, seed=spec.sample_seed,
                     temperature=spec.temperature, top_p=spec.top_p)
    gen_desc: dict[str, Any] = {"max_new_tokens": spec.max_new_tokens, "do_sample": spec.do_sample}
    if spec.do_sample:
        gen_desc.update(seed=spec.sample_seed, temperature=spec.temperature, top_p=spec.top_p)
    out = []
    for system in (*spec.system_prompts, *spec.system_prompt_texts):  # outermost: a site runs its variants back to back
        for metric, src in resolved.sources:
            kwargs, prompt_desc = _prompt_source(src, resolved.inline, set_hashes)
            settings = evaluation_settings(
                **kwargs, system=system, chat=spec.chat_format, keywords=spec.keywords, judge=spec.judge,
                disable_early_stop=not spec.early_stop, return_completions=True,  # transport: not in the key (desc)
                referee=spec.referee,  # not in the key either: the ASR is the same; outcomes come with it or by rejudge
            )
            settings.generation.CopyFrom(gen)
            desc = {
                "metric": metric, "prompts": prompt_desc,
                "system_prompt": {"preset": system} if system in SYSTEM_PROMPT_PRESETS else {"text": system},
                "chat_format": spec.chat_format, "generation": gen_desc,
                "judge": {"kind": spec.judge, "keywords": list(spec.keywords)},
            }
            out.append(Variant(metric, system, system_label(system), settings, desc))
    out += [Variant(m.metric, "", m.metric, None, m.desc, m) for m in resolved.capability]
    return out


def base_direction(term: BaseTerm) -> pb.DirectionSpec:
    """The direction of a base term: interp:NAME, adapter:NAME or seed:N (draw 0, layer norm)."""
    kind, name = parse_base_direction(term.direction)
    if kind == "interp":
        return interpolation_direction(name)
    if kind == "adapter":
        return adapter_direction(name)
    return random_direction(int(name))


def _directions(spec: SweepSpec) -> dict[str, pb.DirectionSpec]:
    """label -> spec: the grid's axes (d0, d1, ..., interp, interp_b), then the base terms (by their text:
    "interp:NAME" never clashes with "d0"/"interp")."""
    d = spec.direction
    directions: dict[str, pb.DirectionSpec] = {}
    n_random = {"1d-random": spec.grid.directions, "2d-random": 2, "2d-interpolation-random": 1}.get(spec.kind, 0)
    if n_random:
        for i in range(n_random):
            directions[f"d{i}"] = random_direction(d.seed, normalization=d.normalization, selection=d.selection,
                                                   include=d.include, exclude=d.exclude, stream=d.stream, index=i,
                                                   tied=d.tied)
    if "interpolation" in spec.kind:
        directions["interp"] = interpolation_direction(spec.grid.target)
    if spec.kind == "2d-interpolation":
        directions["interp_b"] = interpolation_direction(spec.grid.target_b)
    for term in spec.base:
        directions[term.direction] = base_direction(term)
    return directions


def _lines(spec: SweepSpec) -> list[tuple[str, list[tuple[tuple[float, ...], Terms]]]]:
    """(series direction, [(coords, terms)]) for the grid of ``spec``; terms keep zero coefficients."""
    g = spec.grid
    if spec.kind == "1d-random":
        xs = axis_values(g.range[0], g.range[1], g.points)
        return [(f"d{i}", [((a,), ((f"d{i}", a),)) for a in xs]) for i in range(g.directions)]
    if spec.kind == "1d-interpolation":
        xs = interpolation_values(g.steps, g.extra)
        return [("interp", [((a,), (("interp", a),)) for a in xs])]
    if spec.kind == "2d-random":
        xs = ys = axis_values(g.range[0], g.range[1], g.points)
        first, second = "d0", "d1"
    elif spec.kind == "2d-interpolation":  # three models on one plane: a toward target, b toward target_b
        xs = ys = interpolation_values(g.steps, g.extra)
        first, second = "interp", "interp_b"
    else:  # 2d-interpolation-random: a toward the target, b along random draw 0
        xs, ys = interpolation_values(g.steps, g.extra), axis_values(g.range[0], g.range[1], g.points)
        first, second = "interp", "d0"
    # Row by row (b outer): a server taking contiguous points walks one row.
    return [("plane", [((a, b), ((first, a), (second, b))) for b in ys for a in xs])]


class _Builder:
    """Adds points to a plan under construction: sites, keys and tasks."""

    def __init__(self, spec: SweepSpec, facts: ModelFacts, directions: dict[str, pb.DirectionSpec],
                 variants: list[Variant], plan: Plan | None = None) -> None:
        self.model, self.variants = facts.as_dict(), variants
        self.base: Terms = tuple((t.direction, float(t.coefficient)) for t in spec.base)
        self.descs = {label: message_dict(s) for label, s in directions.items()}
        self.sites: dict[str, Site] = plan.sites if plan is not None else {}  # a plan's: extended in place
        self.points: list[Point] = []
        self.tasks: dict[Task, list[Point]] = plan.tasks if plan is not None else {}

    def add(self, direction: str, coords: tuple[float, ...], terms: Terms, vi: int) -> None:
        terms = self.base + terms
        nonzero = tuple((label, c) for label, c in terms if c != 0.0)
        site_key = point_key(model=self.model, terms=[[self.descs[label], c] for label, c in sorted(nonzero)])
        if site_key not in self.sites:
            self.sites[site_key] = Site(site_key, nonzero, direction, len(self.sites))
        v = self.variants[vi]
        what = {"evaluation": v.desc} if v.safety else {"capability": v.desc}
        key = point_key(model=self.model, directions=[self.descs[label] for label, _ in terms],
                        coefficients=[c for _, c in terms], **what)
        curve = Series(direction, v.label) if v.safety else Series(direction)
        pt = Point(key, curve, coords, v.metric, v.system, site_key, vi)
        self.points.append(pt)
        self.tasks.setdefault(Task(site_key, vi), []).append(pt)


def off_grid_point(plan: Plan, like: Point, coords: tuple[float, ...]) -> Point:
    """The point of ``like``'s 1D series and variant at ``coords`` off the grid (an adaptive
    sweep's edge refinement), keyed as a grid point there would be; its site and task are added
    to ``plan`` (its planned ``points`` stay the grid's)."""
    builder = _Builder(plan.spec, plan.facts, plan.directions, plan.variants, plan)
    builder.add(like.curve.direction, coords, ((like.curve.direction, coords[0]),), like.variant)
    return builder.points[-1]


def build_plan(spec: SweepSpec | ResolvedSpec, facts: ModelFacts, *, inline: Mapping[str, list[str]] | None = None,
               set_hashes: Mapping[str, str] | None = None) -> Plan:
    """Every point of ``spec`` with its key. A plain :class:`SweepSpec` is resolved first (its
    files read; ``inline``: prompt file -> prompts already read); ``set_hashes``: server-side set
    name -> sha256 of the full set (from ListPromptSets)."""
    resolved = spec if isinstance(spec, ResolvedSpec) else resolve(spec, inline=inline)
    s = resolved.spec
    directions = _directions(s)
    variants = _variants(resolved, dict(set_hashes or {}))
    origin_only = {vi for vi, v in enumerate(variants)
                   if v.metric == "refusal" and s.benign is not None and s.benign.at == "origin"}
    builder = _Builder(s, facts, directions, variants)
    for direction, line in _lines(s):
        for coords, terms in line:
            for vi in range(len(variants)):
                if vi not in origin_only:
                    builder.add(direction, coords, terms, vi)
        # Benign prompts at the origin only: one point per series at zero coefficients (the
        # origin site, theta0 + base), on the grid or not.
        zero_coords, zero_terms = tuple(0.0 for _ in line[0][0]), tuple((label, 0.0) for label, _ in line[0][1])
        for vi in sorted(origin_only):
            builder.add(direction, zero_coords, zero_terms, vi)
    return Plan(s, facts, directions, variants, builder.sites, builder.points, builder.tasks)
