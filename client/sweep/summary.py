"""From the store to answers: curves, VISAGE (both rules), plots and the HTML report. No server.

Everything reads a sweep's metadata (``store.get_meta``: the spec and the plan's point list,
``[key, series, metric, coords]``) and the records by key, so records reused from another sweep
(same content key) are found, and points of other sweeps in the same store are ignored.

``summary.json`` (see :func:`summarize_sweep`)::

    {"sweep", "kind", "model_name", "model", "points": {"planned", "measured"},
     "visage": {"rules": [...], "metric": "asr",
                "series": {"d0|default": {"reference": 87.5, "expectation": 88.1}, ...},
                "series_ci95": {"d0|default": {"reference": [84.1, 90.2], "expectation": [...]}, ...},
                "by_system_prompt": {"default": {"reference": {"mean", "std", "n", "ci95": [lo, hi]},
                                                 "expectation": {...}}},
                "incomplete": [series missing points]},
     "safety_region": {"metric": "asr", "series": {"d0|default": 87.0},   # 1D only; {} for 2D
                       "by_system_prompt": {"default": {"mean", "std", "n"}}},
     "origin": {"asr": {"d0|default": 6.25}, "refusal": {...}},
     "origin_ci95": {"asr": {"d0|default": [2.7, 13.8]}, ...},               # Wilson, percent
     "over_refusal": {"series": {"d0|default": {"origin", "mean", "max", "ci95": {"origin": [lo, hi]}}}},
     "capability": {"metrics": ["accuracy", "perplexity"],                 # [] without [capability]
                    "series": {"perplexity": {"d0": {"origin", "min", "max", "mean"}},
                               "accuracy": {"d0": {..., "ci95": {"origin": [lo, hi]}}}},
                    "curves": {"perplexity": {"d0": [[a, value], ...]}}},
     "curves": {"asr": {"d0|default": [[a, value], ...]}, ...},     # 2D: [[a, b, value], ...]
     "curves_ci95": {"asr": {"d0|default": [[a, lo, hi], ...]}, ...},  # 2D: [[a, b, lo, hi], ...]
     "intervals": {"level": 0.95, "rates": "wilson", "visage": {"method", "replicates", "seed", ...}},
     "provenance": {"client": {...}, "server": {"safety_landscape", "torch", "transformers", "cuda",
                    "device", "device_name", ...}, "servers", "spec", "seeds", "started_at", "finished_at"},
     "adaptive": {"evaluated", "grid_points", "skipped", "assumption",  # adaptive sweeps only
                  "assumed": {"d0|default": [[a], ...]}, "stop_after", "edge_resolution",
                  "edges": {"d0|default": [{"side", "inside", "outside"}]}, "refined", "unfinished"}}

A ``ci95`` is ``[low, high]`` at 95 %, inside an entry of named statistics (``ci95`` of the mean,
or ``{"origin": ...}``) or, for a table of bare values, in a sibling table named ``<table>_ci95``
with the same keys: Wilson for a rate, a seeded bootstrap for VISAGE (per series over prompts; the
mean over directions over prompts and directions; an adaptive sweep's assumed points stay at 100 %
in every resample: :mod:`.intervals`, docs/statistics.md); null where the verdicts behind it are
not stored.

VISAGE is computed on ASR curves: "reference" (the authors' 1D rule; null for 2D grids) and
"expectation" (the paper's formula; 1D or 2D). Beside it, "safety_region" is the reference's
trapezoid area under 100 - ASR of each finished 1D curve (``visage.safety_region``). Over-refusal
and capability (MC accuracy %, perplexity) are summarised, not VISAGE-scored; 1D plots put each
capability metric beside the safety curves on one axis (the paper's Figures 7 and 8).

An adaptive sweep (``grid.adaptive``, :mod:`.planner`) is scored on its measured points plus the
stated assumption: the ASR points it skipped are on the plateau (100 %), never measured
(:func:`~safety_landscape.client.visage.fill_assumed`). A series whose walk is not finished
(an interrupted sweep) is incomplete. The ``adaptive`` section, the report's notes and the plots
(assumed points drawn hollow / crossed) say which points were assumed. Its off-grid edge points
(``refined_points`` in the metadata) join the ASR curves and plots, not VISAGE.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ValidationError
from ..figure_labels import SeriesNames, model_name, name_series, spec_system_names, spec_target
from ..outputs import output_lock, write_atomically
from ..plots import FIGURE_FORMATS, plot_1d, plot_2d, plot_plane, plot_side_by_side
from ..records import PointRecord, Series
from ..stats import DEFAULT_BOOTSTRAP, Bootstrap
from ..store import ResultStore
from ..visage import RULES, fill_assumed, safety_region, visage_expectation, visage_reference
from .intervals import SweepIntervals, method, sweep_intervals
from .planner import AdaptiveRule, GridShape, assumed, edges
from .report_page import sweep_report

__all__ = [
    "SweepData",
    "load_sweep",
    "pick_sweep",
    "summarize_sweep",
    "write_outputs",
    "write_plots",
    "write_summary",
    "write_sweep_report",
]


Coords = tuple[float, ...]
T = TypeVar("T")


@dataclass
class SweepData:
    """A sweep read back from its store: ``values`` (metric -> series -> {coords: value}, the
    measured points), ``planned`` (metric -> series -> [coords], every point of the plan) and
    ``records`` (metric -> series -> {coords: record} of the measured grid points, for the verdicts
    behind the values)."""

    name: str
    meta: dict[str, Any]
    values: dict[str, dict[Series, dict[Coords, float]]]
    planned: dict[str, dict[Series, list[Coords]]]
    refined: dict[Series, dict[Coords, float]] = field(default_factory=dict)  # adaptive: off-grid ASR edge points
    records: dict[str, dict[Series, dict[Coords, PointRecord]]] = field(default_factory=dict)

    @property
    def two_d(self) -> bool:
        return str(self.meta["spec"]["kind"]).startswith("2d")

    @property
    def rule(self) -> AdaptiveRule | None:
        """The adaptive rule of an adaptive sweep, None for a full grid."""
        grid = self.meta["spec"].get("grid", {})
        return AdaptiveRule.of_grid(grid) if grid.get("adaptive") else None

    def asr_measured(self, series: Series) -> dict[Coords, float]:
        """The series' measured ASR points, grid and off-grid (edge refinement)."""
        return {**self.values.get("asr", {}).get(series, {}), **self.refined.get(series, {})}

    def assumed(self) -> dict[Series, list[Coords] | None]:
        """Adaptive sweeps: per ASR series, the grid points assumed at 100 % (None: walk unfinished)."""
        rule = self.rule
        if rule is None:
            return {}
        return {s: assumed(GridShape.of(coords), self.asr_measured(s), rule)
                for s, coords in self.planned.get("asr", {}).items()}

    @property
    def measured(self) -> int:
        return sum(len(s) for m in self.values.values() for s in m.values())

    def complete(self, metric: str, series: Series) -> bool:
        return len(self.values.get(metric, {}).get(series, {})) == len(self.planned[metric][series])


def pick_sweep(store: ResultStore, name: str | None = None) -> str:
    """``name``, or the store's only sweep; ValidationError otherwise (naming the choices)."""
    names = [n for n in store.sweeps() if store.get_meta(n) is not None]
    if name is not None:
        if name not in names:
            raise ValidationError(f"no sweep {name!r} in {store.path}; it holds: {', '.join(names) or 'none'}")
        return name
    if len(names) != 1:
        raise ValidationError(f"{store.path} holds {len(names)} sweeps ({', '.join(names) or 'none'}): pick one with --sweep")
    return names[0]


def load_sweep(store: ResultStore, name: str | None = None) -> SweepData:
    name = pick_sweep(store, name)
    meta = store.get_meta(name) or {}
    values: dict[str, dict[Series, dict[Coords, float]]] = {}
    planned: dict[str, dict[Series, list[Coords]]] = {}
    records: dict[str, dict[Series, dict[Coords, PointRecord]]] = {}
    for key, label, metric, raw in meta.get("points", []):
        series, coords = Series.parse(label), tuple(float(c) for c in raw)
        planned.setdefault(metric, {}).setdefault(series, []).append(coords)
        record = store.get(key)
        if record is not None:
            values.setdefault(metric, {}).setdefault(series, {})[coords] = record.value
            records.setdefault(metric, {}).setdefault(series, {})[coords] = record
    refined: dict[Series, dict[Coords, float]] = {}
    for key, label, _, raw in meta.get("refined_points", []):
        record = store.get(key)
        if record is not None:
            refined.setdefault(Series.parse(label), {})[tuple(float(c) for c in raw)] = record.value
    return SweepData(name, meta, values, planned, refined, records)


def _origin(points: dict[Coords, T]) -> T | None:
    return next((v for c, v in points.items() if all(x == 0.0 for x in c)), None)


def _ci(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def _curves(by_series: dict[Series, dict[Coords, float]]) -> dict[str, list[list[float]]]:
    """series label -> [[*coords, value], ...] sorted by coords (summary.json's curves)."""
    return {s.label: [[*c, v] for c, v in sorted(pts.items())] for s, pts in by_series.items()}


def _grid(data: SweepData, metric: str, series: Series,
          missing: float | None = math.nan) -> tuple[list[float], list[float], list[list[float | None]]]:
    coords = data.planned[metric][series]
    a = sorted({c[0] for c in coords})
    b = sorted({c[1] for c in coords})
    vals = data.values.get(metric, {}).get(series, {})
    z = [[vals.get((x, y), missing) for x in a] for y in b]
    return a, b, z


CAPABILITY_METRICS = ("accuracy", "perplexity")
LABELS = {"asr": "ASR (%)", "refusal": "over-refusal (%)", "accuracy": "MC accuracy (%)", "perplexity": "perplexity"}


def _capability(data: SweepData, iv: SweepIntervals) -> dict[str, Any]:
    metrics = [m for m in CAPABILITY_METRICS if m in data.planned]
    series: dict[str, dict[str, dict[str, Any]]] = {}
    for m in metrics:
        for name, pts in data.values.get(m, {}).items():
            vals = list(pts.values())
            entry: dict[str, Any] = {"origin": _origin(pts), "min": min(vals), "max": max(vals),
                                     "mean": math.fsum(vals) / len(vals)}
            if m in iv.points:  # accuracy: a rate over the questions
                entry["ci95"] = {"origin": _ci(_origin(iv.points[m].get(name, {})))}
            series.setdefault(m, {})[name.label] = entry
    curves = {m: _curves(data.values.get(m, {})) for m in metrics}
    return {"metrics": metrics, "series": series, "curves": curves}


def _visage_series(data: SweepData) -> tuple[dict[Series, dict[str, float | None]], list[Series]]:
    """(series -> {rule: VISAGE}, the incomplete series) of the ASR curves."""
    scores: dict[Series, dict[str, float | None]] = {}
    incomplete = []
    assumed = data.assumed()
    for series, coords in data.planned.get("asr", {}).items():
        if not _finished(data, series, assumed):
            incomplete.append(series)
            continue
        if data.two_d:  # an adaptive sweep's unmeasured points are the assumed ones: None -> 100
            _, _, z = _grid(data, "asr", series, missing=None)
            scores[series] = {"reference": None, "expectation": visage_expectation(fill_assumed(z))}
        else:
            curve = _curve_1d(data, series, sorted(coords))
            scores[series] = {"reference": visage_reference(curve), "expectation": visage_expectation(curve)}
    return scores, incomplete


def _finished(data: SweepData, series: Series, assumed: dict[Series, list[Coords] | None]) -> bool:
    """Whether an ASR series can be scored: every point measured (adaptive: its walk finished)."""
    return assumed[series] is not None if data.rule else data.complete("asr", series)


def _curve_1d(data: SweepData, series: Series, coords: list[Coords]) -> list[float]:
    """A finished 1D ASR series in ``coords`` order, an adaptive sweep's assumed points at 100 %."""
    pts = data.values.get("asr", {}).get(series, {})
    return fill_assumed([pts.get(c) for c in coords])


def _adaptive(data: SweepData) -> dict[str, Any]:
    """summary.json's ``adaptive`` section (see the module docstring)."""
    rule = data.rule
    assert rule is not None
    planned = sum(len(s) for m in data.planned.values() for s in m.values())
    by_series = data.assumed()
    n_assumed = sum(len(c) for c in by_series.values() if c)
    found = {s: edges(GridShape.of(c), data.asr_measured(s), rule) for s, c in data.planned.get("asr", {}).items()}
    return {
        "evaluated": data.measured, "grid_points": planned, "skipped": planned - data.measured,
        "assumed": {s.label: [list(c) for c in cs] for s, cs in by_series.items() if cs},
        "assumption": (f"the {n_assumed} skipped ASR point(s) (listed under 'assumed') were NOT measured: they are "
                       f"assumed at 100 % (the broken plateau), each lying beyond {rule.stop_after} consecutive "
                       "measured points at 100 % on the way out from its series' centre. Benign and capability "
                       "points are measured where ASR is; nothing is assumed about the others."),
        "stop_after": rule.stop_after, "edge_resolution": rule.edge_resolution,
        "edges": {s.label: [{"side": e.side, "inside": e.inside, "outside": e.outside} for e in es]
                  for s, es in found.items() if es},
        "refined": sum(len(p) for p in data.refined.values()),
        "unfinished": [s.label for s, cs in by_series.items() if cs is None],
    }


def _safety_regions(data: SweepData) -> dict[str, Any]:
    """The reference's trapezoid area of each finished 1D ASR curve (an adaptive sweep's assumed
    points at 100 %, as VISAGE scores them), and its mean per system prompt."""
    areas: dict[Series, float] = {}
    if not data.two_d:
        finished = data.assumed()
        for series, coords in data.planned.get("asr", {}).items():
            if _finished(data, series, finished):
                xs = sorted(coords)
                areas[series] = safety_region([c[0] for c in xs], _curve_1d(data, series, xs))
    by_system = {}
    for label in sorted({s.system for s in areas}):
        values = [v for s, v in areas.items() if s.system == label]
        by_system[label] = {"mean": math.fsum(values) / len(values),
                            "std": statistics.pstdev(values) if len(values) > 1 else 0.0, "n": len(values)}
    return {"metric": "asr", "series": {s.label: v for s, v in areas.items()}, "by_system_prompt": by_system}


def _by_system_prompt(scores: dict[Series, dict[str, float | None]], iv: SweepIntervals) -> dict[str, dict[str, Any]]:
    """system label -> rule -> {mean, std, n, ci95} over the directions."""
    by_system: dict[str, dict[str, Any]] = {}
    for label in sorted({s.system for s in scores}):
        entry = {}
        for rule in RULES:
            values = [v[rule] for s, v in scores.items() if s.system == label]
            rule_scores = [x for x in values if x is not None]
            if rule_scores:
                entry[rule] = {"mean": math.fsum(rule_scores) / len(rule_scores),
                               "std": statistics.pstdev(rule_scores) if len(rule_scores) > 1 else 0.0,
                               "n": len(rule_scores), "ci95": _ci(iv.mean.get(label, {}).get(rule))}
        by_system[label] = entry
    return by_system


def _provenance(meta: dict[str, Any]) -> dict[str, Any]:
    """Who and what produced the sweep (its last run): client and server software, the spec, the
    seeds, start and end times; dicts of scalars, for ``pandas.json_normalize``."""
    prov = meta.get("provenance", {})
    client = {k: prov.get(k) for k in ("packages", "python", "platform", "git_revision", "source_revision", "hostname")}
    return {"client": client, "server": prov.get("server", {}), "servers": prov.get("servers", []),
            "spec": meta.get("spec", {}), "seeds": prov.get("seeds", {}),
            "started_at": prov.get("started_at"), "finished_at": prov.get("finished_at")}


def _intervals(data: SweepData, scored: list[Series], bootstrap: Bootstrap) -> SweepIntervals:
    """The sweep's intervals; an adaptive sweep's assumed ASR points enter the bootstrap at 100 %."""
    assumed = {s: set(cs) for s, cs in data.assumed().items() if cs}
    return sweep_intervals(data.records, {s: sorted(data.planned["asr"][s]) for s in scored}, two_d=data.two_d,
                           boot=bootstrap, assumed=assumed)


def summarize_sweep(data: SweepData, *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP) -> dict[str, Any]:
    """The summary document (see the module docstring); ``bootstrap``: the VISAGE intervals' replicates and seed."""
    scores, incomplete = _visage_series(data)
    iv = _intervals(data, list(scores), bootstrap)
    origin = {m: {s.label: _origin(v) for s, v in ser.items()} for m, ser in data.values.items()}
    over = {}
    for series, pts in data.values.get("refusal", {}).items():
        vals = list(pts.values())
        over[series.label] = {"origin": _origin(pts), "mean": math.fsum(vals) / len(vals), "max": max(vals),
                              "ci95": {"origin": _ci(_origin(iv.points.get("refusal", {}).get(series, {})))}}
    return {
        "sweep": data.name, "kind": data.meta["spec"]["kind"], "model_name": data.meta.get("model_name", ""),
        "model": data.meta.get("model", {}),
        "points": {"planned": sum(len(s) for m in data.planned.values() for s in m.values()), "measured": data.measured},
        "visage": {"rules": list(RULES), "metric": "asr", "series": {s.label: v for s, v in scores.items()},
                   "series_ci95": {s.label: {rule: _ci(iv.visage.get(s, {}).get(rule)) for rule in RULES} for s in scores},
                   "by_system_prompt": _by_system_prompt(scores, iv), "incomplete": [s.label for s in incomplete]},
        "safety_region": _safety_regions(data),
        "origin": origin,
        "origin_ci95": {m: {s.label: _ci(_origin(pts)) for s, pts in ser.items()} for m, ser in iv.points.items()},
        "over_refusal": {"series": over}, "capability": _capability(data, iv),
        "curves": {m: _curves({s: data.asr_measured(s) for s in ser} if m == "asr" else ser)
                   for m, ser in data.values.items()},
        "curves_ci95": {m: {s.label: [[*c, lo, hi] for c, (lo, hi) in sorted(pts.items())] for s, pts in ser.items()}
                        for m, ser in iv.points.items()},
        "intervals": method(bootstrap), "provenance": _provenance(data.meta),
        **({"adaptive": _adaptive(data)} if data.rule else {}),
    }


def write_summary(out_dir: Path, data: SweepData, summary: dict[str, Any] | None = None) -> Path:
    """``out_dir/summary.json`` (``summary``: already computed by :func:`summarize_sweep`), replaced atomically."""
    path = Path(out_dir) / "summary.json"
    text = json.dumps(summary if summary is not None else summarize_sweep(data), indent=2, sort_keys=True) + "\n"
    write_atomically(path, text)
    return path


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plane_axes(data: SweepData) -> dict[str, Any]:
    """Axis names for a 2D plot; an interpolation-random plane also marks its target at (1, 0),
    a 2D interpolation plane both targets, at (1, 0) and (0, 1)."""
    spec = data.meta["spec"]
    if spec["kind"] == "2d-interpolation":
        grid = spec.get("grid", {})
        a, b = str(grid.get("target", "A")), str(grid.get("target_b", "B"))
        return {"axis_labels": (f"a: toward {a} (1 = {a})", f"b: toward {b} (1 = {b})"),
                "targets": ((1.0, 0.0, a), (0.0, 1.0, b))}
    if spec["kind"] != "2d-interpolation-random":
        return {}
    target = str(spec.get("grid", {}).get("target", "target"))
    return {"axis_labels": (f"a: interpolation (0 = origin, 1 = {target})", "b: random direction"),
            "target": (1.0, 0.0, target)}


def write_plots(out_dir: Path, data: SweepData, summary: dict[str, Any] | None = None) -> list[Path]:
    """1D: one axis per metric with every series (directions x system prompts; rates with their
    95 % Wilson band), plus safety beside over-refusal and beside each capability metric
    (``asr_vs_<metric>_1d``, the paper's Figures 7/8); 2D: contour + heatmap and a 3D surface per
    series and metric. PNG, SVG and PDF each; titles and legends in a reader's words
    (:mod:`..figure_labels`). A metric measured at the origin only (``benign.at = "origin"``)
    gets no curve."""
    plots = Path(out_dir) / "plots"
    model = model_name(data.meta.get("model_name", "model"))
    summary = summary if summary is not None else summarize_sweep(data)
    out: list[Path] = []
    spec = data.meta["spec"]
    systems, target = spec_system_names(spec), spec_target(spec)  # once, for every figure below

    def named(curves: dict[str, Any]) -> tuple[SeriesNames, dict[str, Any]]:
        """The curves keyed by their readers' names (the legend's words)."""
        names = name_series(curves, systems=systems, target=target)
        return names, {names.names[label]: pts for label, pts in curves.items()}

    def ylim(metric: str, values: list[float]) -> tuple[float, float] | None:
        if metric != "perplexity":
            return (0.0, 100.0)
        finite = [v for v in values if math.isfinite(v)]
        return None if not finite else (min(finite), max(finite) if max(finite) > min(finite) else min(finite) + 1.0)

    def curves_of(metric: str) -> dict[str, list[tuple[float, float]]]:
        by_series = data.values.get(metric, {})
        if metric == "asr":
            by_series = {s: data.asr_measured(s) for s in by_series}
        return {s.label: [(c[0], v) for c, v in p.items()] for s, p in by_series.items() if len(p) >= 2}

    assumed = {s: cs for s, cs in data.assumed().items() if cs}  # adaptive: drawn apart from the measured
    for metric, series in sorted(data.values.items()):
        label = LABELS.get(metric, metric)
        if data.two_d:
            for one in series:
                a, b, z = _grid(data, metric, one)
                if len(a) >= 2 and len(b) >= 2:
                    name, axes = one.label, _plane_axes(data)
                    system = systems.get(one.system, one.system)
                    cells = [(c[0], c[1]) for c in assumed.get(one, [])] if metric == "asr" else []
                    draw = plot_plane if "targets" in axes else plot_2d
                    out += draw(a, b, z, plots / f"{metric}_2d_{_safe(name)}",
                                title=f"{model}: {label}" + (f" · system prompt: {system}" if system else ""),
                                zlabel=label, zlim=ylim(metric, [v for row in z for v in row if v is not None])
                                or (0.0, 1.0), assumed=cells, formats=FIGURE_FORMATS, **axes)
            continue
        curves = curves_of(metric)
        if not curves:
            continue
        names, shown = named(curves)
        visage = ({names.names[s]: v["reference"] for s, v in summary["visage"]["series"].items() if s in names.names}
                  if metric == "asr" else None)
        skipped = ({names.names[s.label]: [c[0] for c in cs] for s, cs in assumed.items() if s.label in names.names}
                   if metric == "asr" else None)
        bands = {names.names[s]: [(r[0], r[1], r[2]) for r in rows]
                 for s, rows in summary["curves_ci95"].get(metric, {}).items() if s in names.names}
        out += plot_1d(shown, plots / f"{metric}_1d", title=names.title(f"{model}: {label}"),
                       ylabel=label, xlabel=_xlabel(data), visage=visage, assumed=skipped, bands=bands or None,
                       band_label="95 % interval (Wilson)",
                       ylim=ylim(metric, [v for pts in curves.values() for _, v in pts]), formats=FIGURE_FORMATS)
    safety = curves_of("asr")
    if not data.two_d and safety:
        for metric in ("refusal", *CAPABILITY_METRICS):
            other = curves_of(metric)
            if not other:
                continue
            what = "over-refusal" if metric == "refusal" else metric
            capability_ylim = (0.0, 100.0) if metric != "perplexity" else None
            safety_names, safety_shown = named(safety)
            out += plot_side_by_side(safety_shown, named(other)[1], plots / f"asr_vs_{metric}_1d",
                                     title=safety_names.title(f"{model}: safety vs {what}"),
                                     capability_label=LABELS[metric], xlabel=_xlabel(data),
                                     capability_ylim=capability_ylim, formats=FIGURE_FORMATS)
    return out


def _xlabel(data: SweepData) -> str:
    spec = data.meta["spec"]
    x = "interpolation a (0 = origin, 1 = target)" if "interpolation" in spec["kind"] else "perturbation amount a"
    base = spec.get("base") or []
    if base:
        x += " around " + " + ".join(f"{t['coefficient']:g}*{t['direction']}" for t in base)
    return x


def write_sweep_report(out_dir: Path, data: SweepData, plots: list[Path] | None = None, *,
                       summary: dict[str, Any] | None = None, store: ResultStore | None = None) -> Path:
    """``out_dir/report.html`` (:mod:`.report_page`); with ``store``, every safety point's completions."""
    out_dir = Path(out_dir)
    if plots is None:
        plots = sorted((out_dir / "plots").glob("*.png")) if (out_dir / "plots").is_dir() else []
    summary = summary if summary is not None else summarize_sweep(data)
    return sweep_report(out_dir / "report.html", data, summary, plots, labels=LABELS, store=store)


def write_outputs(out_dir: Path, store: ResultStore, name: str | None = None) -> dict[str, Any]:
    """summary.json, plots/ and report.html (with the completions) for one sweep of ``store``;
    returns the paths. Two processes writing one folder take turns (``out_dir/.outputs.lock``)."""
    data = load_sweep(store, name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    summary = summarize_sweep(data)
    with output_lock(Path(out_dir)):
        path = write_summary(out_dir, data, summary)
        plots = write_plots(out_dir, data, summary)
        report = write_sweep_report(out_dir, data, plots, summary=summary, store=store)
    return {"summary": path, "plots": plots, "report": report}
