"""A sweep's figures, from the store alone: every metric's curves (1D) or planes (2D), and safety
beside over-refusal and each capability metric, in a reader's words (:mod:`..figure_labels`).

With the coherence referee's outcomes, each measured 1D ASR series also gets its answers split
into stacked bands (``outcomes_1d``: refused, complied, incoherent), and a 2D sweep a plane of the
coherent ASR (``coherent_asr_2d_<series>``); none without outcomes.

An adaptive sweep's assumed points are drawn apart from the measured ones (hollow in 1D, crossed in
2D); its off-grid edge points join the ASR curves. A metric measured at the origin only
(``benign.at = "origin"``) gets no curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..figure_labels import METRIC_LABELS, SeriesNames, model_name, name_series, spec_system_names
from ..outcome_plots import plot_outcomes_1d
from ..plots import FIGURE_FORMATS, plot_1d, plot_2d, plot_plane, plot_side_by_side
from ..records import CAPABILITY_METRICS
from .stored import SweepData
from .summary import sweep_summary
from .summary_doc import SweepSummary

__all__ = ["write_plots"]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plane_axes(data: SweepData) -> dict[str, Any]:
    """Axis names for a 2D plot; an interpolation-random plane also marks its target at (1, 0),
    a 2D interpolation plane both targets, at (1, 0) and (0, 1)."""
    spec = data.meta.spec
    grid = spec.grid
    if spec.kind == "2d-interpolation":
        a, b = grid.target or "A", grid.target_b or "B"
        return {"axis_labels": (f"a: toward {a} (1 = {a})", f"b: toward {b} (1 = {b})"),
                "targets": ((1.0, 0.0, a), (0.0, 1.0, b))}
    if spec.kind != "2d-interpolation-random":
        return {}
    target = grid.target or "target"
    return {"axis_labels": (f"a: interpolation (0 = origin, 1 = {target})", "b: random direction"),
            "target": (1.0, 0.0, target)}


def _xlabel(data: SweepData) -> str:
    spec = data.meta.spec
    x = "interpolation a (0 = origin, 1 = target)" if "interpolation" in spec.kind else "perturbation amount a"
    if spec.base:
        x += " around " + " + ".join(f"{t.coefficient:g}*{t.direction}" for t in spec.base)
    return x


def _ylim(metric: str, values: Sequence[float]) -> tuple[float, float] | None:
    if metric != "perplexity":
        return (0.0, 100.0)
    finite = [v for v in values if math.isfinite(v)]
    return None if not finite else (min(finite), max(finite) if max(finite) > min(finite) else min(finite) + 1.0)


def _coherent_planes(plots: Path, data: SweepData, summary: SweepSummary, model: str,
                     systems: Mapping[str, str]) -> list[Path]:
    """2D: the coherent ASR's contour + heatmap and surface per series whose every point has outcomes."""
    out: list[Path] = []
    for label, rows in summary.by_outcome().rate("coherent_asr").curves.items():
        values = {(r[0], r[1]): r[2] for r in rows}
        a, b = sorted({c[0] for c in values}), sorted({c[1] for c in values})
        if len(a) < 2 or len(b) < 2:
            continue
        axes = _plane_axes(data)
        system = systems.get(label.partition("|")[2], label.partition("|")[2])
        draw = plot_plane if "targets" in axes else plot_2d
        out += draw(a, b, [[values.get((x, y)) for x in a] for y in b], plots / f"coherent_asr_2d_{_safe(label)}",
                    title=f"{model}: coherent ASR (%)" + (f" · system prompt: {system}" if system else ""),
                    zlabel="coherent ASR (%)", zlim=(0.0, 100.0), formats=FIGURE_FORMATS, **axes)
    return out


def _planes(plots: Path, data: SweepData, model: str, systems: Mapping[str, str]) -> list[Path]:
    """2D: contour + heatmap and a 3D surface per series and metric."""
    out: list[Path] = []
    assumed = {s: cs for s, cs in data.assumed().items() if cs}
    for metric, series in sorted(data.values.items()):
        label = METRIC_LABELS.get(metric, metric)
        for one in series:
            a, b, z = data.grid(metric, one)
            if len(a) >= 2 and len(b) >= 2:
                axes = _plane_axes(data)
                system = systems.get(one.system, one.system)
                cells = [(c[0], c[1]) for c in assumed.get(one, [])] if metric == "asr" else []
                draw = plot_plane if "targets" in axes else plot_2d
                out += draw(a, b, z, plots / f"{metric}_2d_{_safe(one.label)}",
                            title=f"{model}: {label}" + (f" · system prompt: {system}" if system else ""),
                            zlabel=label, zlim=_ylim(metric, [v for row in z for v in row if v is not None])
                            or (0.0, 1.0), assumed=cells, formats=FIGURE_FORMATS, **axes)
    return out


def _outcome_bands(plots: Path, data: SweepData, summary: SweepSummary,
                   named: Callable[[Mapping[str, Any]], tuple[SeriesNames, dict[str, Any]]], model: str) -> list[Path]:
    """1D: the stacked outcome bands of each series whose every point has outcomes ([] when none has)."""
    rates = summary.by_outcome().rates
    if not summary.by_outcome().measured or not rates:
        return []
    rows = {}
    for label in summary.by_outcome().measured:
        by_rate = {name: {r[0]: r[1] for r in rates[name].curves.get(label, ())} for name in rates}
        rows[label] = [(a, by_rate["refusal_rate"][a], complied, by_rate["incoherent_rate"][a])
                       for a, complied in by_rate["coherent_asr"].items()]
    names, shown = named(rows)
    return plot_outcomes_1d(shown, plots / "outcomes_1d", xlabel=_xlabel(data), formats=FIGURE_FORMATS,
                            title=names.title(f"{model}: answers by outcome (refused, complied, incoherent)"))


def write_plots(out_dir: Path, data: SweepData, summary: SweepSummary | None = None) -> list[Path]:
    """1D: one axis per metric with every series (directions x system prompts; rates with their
    95 % Wilson band), plus safety beside over-refusal and beside each capability metric
    (``asr_vs_<metric>_1d``, the paper's Figures 7/8); 2D: contour + heatmap and a 3D surface per
    series and metric. PNG, SVG and PDF each; titles and legends in a reader's words."""
    plots = Path(out_dir) / "plots"
    model = model_name(data.meta.model_name if data.meta.model_name is not None else "model")
    systems, target = spec_system_names(data.meta.spec), data.meta.spec.grid.target  # once, for every figure
    summary = summary if summary is not None else sweep_summary(data)
    if data.two_d:
        return _planes(plots, data, model, systems) + _coherent_planes(plots, data, summary, model, systems)
    out: list[Path] = []

    def named(curves: Mapping[str, Any]) -> tuple[SeriesNames, dict[str, Any]]:
        """The curves keyed by their readers' names (the legend's words)."""
        names = name_series(curves, systems=systems, target=target)
        return names, {names.names[label]: pts for label, pts in curves.items()}

    def curves_of(metric: str) -> dict[str, list[tuple[float, float]]]:
        by_series = data.values.get(metric, {})
        if metric == "asr":
            by_series = {s: data.asr_measured(s) for s in by_series}
        return {s.label: [(c[0], v) for c, v in p.items()] for s, p in by_series.items() if len(p) >= 2}

    assumed = {s: cs for s, cs in data.assumed().items() if cs}  # adaptive: drawn apart from the measured
    for metric in sorted(data.values):
        label, curves = METRIC_LABELS.get(metric, metric), curves_of(metric)
        if not curves:
            continue
        names, shown = named(curves)
        visage = ({names.names[s]: v.reference for s, v in summary.visage.series.items() if s in names.names}
                  if metric == "asr" else None)
        skipped = ({names.names[s.label]: [c[0] for c in cs] for s, cs in assumed.items() if s.label in names.names}
                   if metric == "asr" else None)
        bands = {names.names[s]: [(r[0], r[1], r[2]) for r in rows]
                 for s, rows in summary.curves_ci95.get(metric, {}).items() if s in names.names}
        out += plot_1d(shown, plots / f"{metric}_1d", title=names.title(f"{model}: {label}"),
                       ylabel=label, xlabel=_xlabel(data), visage=visage, assumed=skipped, bands=bands or None,
                       band_label="95 % interval (Wilson)",
                       ylim=_ylim(metric, [v for pts in curves.values() for _, v in pts]), formats=FIGURE_FORMATS)
    out += _outcome_bands(plots, data, summary, named, model)
    safety = curves_of("asr")
    if safety:
        for metric in ("refusal", *CAPABILITY_METRICS):
            other = curves_of(metric)
            if not other:
                continue
            what = "over-refusal" if metric == "refusal" else metric
            safety_names, safety_shown = named(safety)
            out += plot_side_by_side(safety_shown, named(other)[1], plots / f"asr_vs_{metric}_1d",
                                     title=safety_names.title(f"{model}: safety vs {what}"),
                                     capability_label=METRIC_LABELS[metric], xlabel=_xlabel(data),
                                     capability_ylim=(0.0, 100.0) if metric != "perplexity" else None,
                                     formats=FIGURE_FORMATS)
    return out
