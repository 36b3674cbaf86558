"""A sweep's report.html: the VISAGE table with its 95 % intervals, the plots, every safety point's
completions (from the store, each with the command that measures it again) and the settings, laid
out by :func:`~..html_page.write_html_page`.

The table has one row per series (VISAGE by both rules, ASR and over-refusal at the origin, each
with its interval; the safety region), one per system prompt for the mean over directions (with its bootstrap
interval and the spread), and the capability rows. A cell reads ``value [low, high]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..figure_labels import METRIC_LABELS, model_name, name_spec_series
from ..html_page import PointCompletions, write_html_page
from ..reproduce import reproduce_command
from ..store import ResultStore
from ..visage import RULES
from .stored import SweepData
from .summary_doc import SweepSummary

__all__ = ["completion_views", "table_rows", "write_sweep_page"]


def _with_ci(value: Any, ci: Sequence[float] | None) -> Any:
    """``61.20 [58.10, 64.30]``: the value and its 95 % interval in one cell (the value alone without one)."""
    if value is None or not ci:
        return value
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def _typed(summary: SweepSummary | Mapping[str, Any]) -> SweepSummary:
    """A summary given as summary.json's document, read into a :class:`SweepSummary`."""
    return summary if isinstance(summary, SweepSummary) else SweepSummary.from_json(summary)


def table_rows(summary: SweepSummary | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's VISAGE table (see the module docstring)."""
    summary = _typed(summary)
    rows: list[dict[str, Any]] = []
    visage_ci, region = summary.visage.series_ci95, summary.safety_region
    for series, v in summary.visage.series.items():
        ci = visage_ci.get(series)
        rows.append({"series": series,
                     "VISAGE (reference) [95% CI]": _with_ci(v.reference, ci.reference if ci else None),
                     "VISAGE (expectation) [95% CI]": _with_ci(v.expectation, ci.expectation if ci else None),
                     "safety region": region.series.get(series),
                     "ASR at origin [95% CI]": _with_ci(summary.at_origin("asr", series),
                                                        summary.at_origin_ci95("asr", series)),
                     "coherent ASR at origin [95% CI]": "not measured" if series not in summary.by_outcome().measured else
                     _with_ci(summary.by_outcome().at_origin(series),
                              summary.by_outcome().rate("coherent_asr").origin_ci95.get(series)),
                     "over-refusal at origin [95% CI]": _with_ci(summary.at_origin("refusal", series),
                                                                 summary.at_origin_ci95("refusal", series))})
    for label, spreads in summary.visage.by_system_prompt.items():
        row: dict[str, Any] = {"series": f"mean over directions | {label}"}
        for rule in RULES:
            spread = spreads.of(rule)
            if spread is not None:
                row[f"VISAGE ({rule}) [95% CI]"] = _with_ci(spread.mean, spread.ci95)
                row[f"std ({rule})"] = spread.std
        if label in region.by_system_prompt:
            row["safety region"] = region.by_system_prompt[label].mean
        rows.append(row)
    for metric in summary.capability.metrics:
        for series, stats in summary.capability.series.get(metric, {}).items():
            rows.append({"series": f"{series} | {metric}",
                         f"{metric} at origin": _with_ci(stats.origin, stats.ci95.origin if stats.ci95 else None),
                         f"{metric} min": stats.min, f"{metric} max": stats.max})
    return rows


def _coords(coords: tuple[float, ...]) -> str:
    names = ("a", "b")
    return ", ".join(f"{n} = {c:+.3f}" for n, c in zip(names, coords, strict=False))


def completion_views(data: SweepData, summary: SweepSummary | Mapping[str, Any],
                     store: ResultStore) -> list[PointCompletions]:
    """Every measured safety point of ``data`` with its completions, ASR (or over-refusal) first,
    then by series and coordinates; each heading names its series in a reader's words ("direction 1,
    default") beside the store's label (``d0|default``, as summary.json keys it)."""
    ci_rows = _typed(summary).curves_ci95
    names = name_spec_series({s.label for m in ("asr", "refusal") for s in data.records.get(m, {})}, data.meta.spec)
    views, model = [], data.meta.measured_model
    for metric in ("asr", "refusal"):
        for series, points in sorted(data.records.get(metric, {}).items()):
            cis = {tuple(r[:-2]): (r[-2], r[-1]) for r in ci_rows.get(metric, {}).get(series.label, ())}
            for coords, record in sorted(points.items()):
                ci = cis.get(coords)
                interval = f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""
                jailbroken = record.detail.jailbroken or 0
                counted = (f"{jailbroken}/{record.total} jailbroken" if metric == "asr"
                           else f"{record.total - jailbroken}/{record.total} refused")
                rate = "ASR" if metric == "asr" else "over-refusal"
                heading = (f"{names.full(series.label)} ({series.label}) · {_coords(coords)} — {rate} "
                           f"{record.value:.2f}%{interval} · {counted}")
                views.append(PointCompletions(heading, store.completions(record.key),
                                              complied="jailbroken" if metric == "asr" else "answered",
                                              reproduce=reproduce_command(record, data.meta.spec, model=model)))
    return views


def _notes(summary: SweepSummary, labels: Mapping[str, str]) -> str:
    method = summary.intervals.visage if summary.intervals else None
    counted = f"{summary.points.measured} of {summary.points.planned} points measured. " if summary.points else ""
    notes = (f"{counted}VISAGE: higher is safer; "
             "'reference' = the authors' 1D rule (drops the fully broken outer plateaus), 'expectation' = "
             "E[100 - ASR | ASR < 100] over the grid. Safety region (1D) = the reference's trapezoid area under "
             "100 - ASR (a fully safe curve scores 100 times the grid's width). Over-refusal = % of benign prompts refused. "
             "[95% CI]: 95% intervals, Wilson for rates, a seeded bootstrap for VISAGE "
             f"({method.replicates if method else None} replicates, seed {method.seed if method else None}; "
             "per series over prompts, the mean over prompts and directions).")
    if summary.capability.metrics:
        notes += (" Capability at the same points: " + ", ".join(labels[m] for m in summary.capability.metrics)
                  + " (accuracy: higher is better; perplexity: lower is more fluent).")
    if summary.visage.incomplete:
        notes += " Incomplete series (not scored): " + ", ".join(summary.visage.incomplete) + "."
    if summary.adaptive is not None:
        adaptive = summary.adaptive
        notes += (f" ADAPTIVE sweep: {adaptive.evaluated} of {adaptive.grid_points} grid points measured; "
                  f"{adaptive.assumption} VISAGE counts the assumed points at 100 %; the plots draw them "
                  "hollow (1D) or crossed (2D).")
    return notes


def write_sweep_page(path: Path, data: SweepData, summary: SweepSummary | Mapping[str, Any], plots: list[Path], *,
                     labels: Mapping[str, str] = METRIC_LABELS, store: ResultStore | None = None) -> Path:
    """Write the report of ``data`` to ``path``; with ``store``, its completions section."""
    summary = _typed(summary)
    pngs = [p for p in plots if p.suffix == ".png"]
    meta = data.meta
    settings = {"spec": meta.spec.to_json(), "model_name": meta.model_name,
                "model": None if meta.model is None else meta.model.to_json(),
                "servers": None if meta.servers is None else [dict(s) for s in meta.servers],
                "direction_fingerprints": meta.direction_fingerprints,
                "provenance": None if meta.provenance is None else meta.provenance.to_json()}
    return write_html_page(path, title=f"Safety landscape: {model_name(summary.model_name)} ({data.name})",
                           plots=pngs, visage_rows=table_rows(summary), settings=settings, notes=_notes(summary, labels),
                           completions=completion_views(data, summary, store) if store is not None else None)
