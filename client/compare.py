"""Several sweeps on one page: models or checkpoints measured the same way, side by side.

A :class:`Run` is one sweep read back from its store with its summary
(:class:`~.sweep.summary_doc.SweepSummary`, :func:`~.sweep.summary.sweep_summary`).
:func:`write_comparison` writes, into one folder:

- ``compare_asr_1d.{png,svg,pdf}``: every run's ASR curve, one panel per direction (one row per
  system prompt the runs share), each point's 95 % band shaded (1D sweeps only); when any run has
  the coherence referee's outcomes, a second row per system prompt with the coherent ASR (jailbroken
  and coherent: harmful compliance; the ASR above it is collapse), a run without them named there
  as not measured, never drawn as 0;
- ``compare_visage.{png,svg,pdf}``: VISAGE per run and shared system prompt, the mean over
  directions as a bar with its 95 % interval, each direction as a dot; beside it (hatched) VISAGE on
  the coherent ASR for the runs that have the referee's outcomes;
- ``comparison.json`` and ``comparison.csv``: the Table-1-style table (one row per run and
  shared system prompt: ASR and over-refusal at the origin, VISAGE with its interval and per
  direction; beside them the coherent ASR at the origin and VISAGE on the coherent ASR, with a
  ``coherent ASR`` column saying "not measured" and empty cells for a run without the coherence
  referee's outcomes; every
  cell a number or a name, an interval as its low and high columns), and ``report.html`` (a headline
  per run in plain words: basin, ASR at a = 0, VISAGE, the coherent ASR and incoherent rate at a = 0
  with VISAGE on the coherent ASR (or why it is not measured); the figures with captions in words,
  the table, what differs between the runs).

The intervals are the summaries' own ``ci95`` fields (Wilson for rates, the seeded bootstrap for
VISAGE, :mod:`.stats`): nothing is recomputed here, and a point or score without one is drawn without.
VISAGE uses the reference rule when every run is 1D, else the expectation rule (the reference
rule is 1D only).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ValidationError
from .figure_labels import direction_name, model_name
from .html_page import HeadlineLine, PagePlot, write_html_page
from .plots import FIGURE_FORMATS, draw_curves, headless_figure, legend_below, save_figure
from .records import Series
from .store import STORE_NAME, ResultStore
from .sweep.headline import basin_answer, coherent_text, origin_text, reading_of, visage_rule_of, visage_text
from .sweep.stored import load_sweep
from .sweep.summary import sweep_summary
from .sweep.summary_doc import SweepSummary, VisageSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .sweep.runner import SweepResult

__all__ = ["Comparison", "Run", "comparison_headline", "comparison_rows", "differences", "figure_compare_curves",
           "figure_compare_visage", "load_run", "run_style", "visage_rule", "write_comparison"]

# Spec fields two comparable runs share; a difference is reported (dotted paths in the spec dict).
_SAME = ("kind", "prompts.set", "prompts.limit", "grid.range", "grid.points", "grid.directions", "direction.seed",
         "direction.stream", "direction.normalization", "chat_format", "judge", "keywords", "max_new_tokens")


@dataclass(frozen=True)
class Run:
    """One sweep read back from its output folder: its reader's ``name``, the ``folder``, its
    summary (VISAGE, curves, intervals; :attr:`visage`), its recorded spec (``SweepSpec.to_dict``'s
    dict, compared setting by setting) and, when it was just measured, what the run did
    (``result``: points evaluated, reused, seconds). :meth:`frame` gives its points as a DataFrame.

    Example::

        run = load_run("runs/quick")              # a `visage sweep --out` folder
        print(run.visage.by_system_prompt)        # VISAGE per system prompt, with its spread
        points = run.frame()                      # pandas: one row per point
        asr = points[points.metric == "asr"]
    """

    name: str
    folder: Path
    summary: SweepSummary  # summary.json's document (a dict) is read into one
    spec: dict[str, Any]
    result: SweepResult | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        summary: object = self.summary
        if isinstance(summary, Mapping):
            object.__setattr__(self, "summary", SweepSummary.from_json(summary))

    @property
    def two_d(self) -> bool:
        return self.summary.kind.startswith("2d")

    @property
    def visage(self) -> VisageSummary:
        """VISAGE per series (both rules) and per system prompt (mean over directions, spread, 95 % interval)."""
        return self.summary.visage

    @property
    def report(self) -> Path:
        """The sweep's report.html (``visage report`` writes it when it is missing)."""
        return self.folder / "report.html"

    def frame(self) -> Any:
        """The sweep's points as a ``pandas.DataFrame`` (:meth:`ResultStore.to_pandas`; pandas is
        optional: without it an ImportError says how to install it)."""
        with ResultStore(self.folder / STORE_NAME) as store:
            return store.to_pandas(self.summary.sweep)

    def curve(self, label: str, metric: str = "asr") -> list[tuple[float, float]]:
        """A 1D series' curve of ``metric``: "asr", or an outcome rate ("coherent_asr", ...; [] where
        the referee's outcomes were not measured)."""
        if metric == "asr":
            return self.summary.asr_curve(label)
        return [(r[0], r[1]) for r in self.summary.by_outcome().rate(metric).curves.get(label, ())]

    def band(self, label: str, metric: str = "asr") -> list[tuple[float, float, float]]:
        """The 95 % intervals along :meth:`curve` as (a, low, high)."""
        if metric == "asr":
            return self.summary.asr_band(label)
        return [(r[0], r[1], r[2]) for r in self.summary.by_outcome().rate(metric).curves_ci95.get(label, ())]

    def systems(self) -> list[str]:
        return sorted({Series.parse(label).system for label in self.summary.asr_labels()})


def load_run(path: str | Path, *, name: str | None = None, sweep: str | None = None) -> Run:
    """The sweep ``sweep`` (else the store's only one) of ``path``, the ``--out`` folder of a
    ``visage sweep`` (or its results.sqlite), named ``name`` (else its model's name).

    Example::

        run = load_run("runs/quick")
        print(run.name, run.visage.series)
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such folder; give the --out folder of a visage sweep")
    store_path = path / STORE_NAME if path.is_dir() else path
    if not store_path.is_file():
        raise ValidationError(f"{path} holds no {STORE_NAME}: give the --out folder of a visage sweep")
    with ResultStore(store_path) as store:
        data = load_sweep(store, sweep)
    summary = sweep_summary(data)
    return Run(name or model_name(summary.model_name) or store_path.parent.name, store_path.parent,
               summary, data.meta.spec.to_json())


def _distinct_names(runs: Sequence[Run]) -> list[Run]:
    """Runs named alike (two sweeps of one model) get their folder's name added."""
    names = [r.name for r in runs]
    return [r if names.count(r.name) == 1 else Run(f"{r.name} ({r.folder.name})", r.folder, r.summary, r.spec)
            for r in runs]


def _shared_systems(runs: Sequence[Run]) -> list[str]:
    shared = set(runs[0].systems())
    for run in runs[1:]:
        shared &= set(run.systems())
    return sorted(shared)


def visage_rule(runs: Sequence[Run]) -> str:
    return "expectation" if any(r.two_d for r in runs) else "reference"


def run_style(i: int) -> dict[str, Any]:
    """The line keywords of the ``i``-th run: its colour, marker and line style (overlapping curves stay apart)."""
    return {"color": f"C{i % 10}", "marker": "osD^v"[i % 5], "markersize": 4, "linestyle": ("-", "--", "-.", ":")[i % 4]}


def _direction_order(direction: str) -> tuple[int, str]:
    return (int(direction[1:]), "") if direction[1:].isdigit() else (10**6, direction)


_CURVE_ROWS = {"asr": ("ASR", "ASR (%)"), "coherent_asr": ("coherent ASR", "coherent ASR (%)")}


def figure_compare_curves(runs: Sequence[Run]) -> Figure | None:
    """The 1D runs' ASR curves, one panel per direction and shared system prompt, and below them the
    coherent ASR's when any run has outcomes; None without 1D runs."""
    from matplotlib.lines import Line2D

    one_d = [r for r in runs if not r.two_d]
    systems = _shared_systems(one_d) if one_d else []
    if not systems:
        return None
    directions = sorted({Series.parse(label).direction for r in one_d for label in r.summary.asr_labels()},
                        key=_direction_order)
    metrics = ["asr"] + (["coherent_asr"] if any(r.summary.by_outcome().measured for r in one_d) else [])
    rows = [(system, metric) for system in systems for metric in metrics]
    styles = {r.name: run_style(i) for i, r in enumerate(one_d)}
    fig = headless_figure(figsize=(max(5.0, 3.3 * len(directions)), 2.9 * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), len(directions), squeeze=False, sharey=True)
    for i, (system, metric) in enumerate(rows):
        what, ylabel = _CURVE_ROWS[metric]
        for j, direction in enumerate(directions):
            ax, label = axes[i][j], Series(direction, system).label
            curves = {r.name: r.curve(label, metric) for r in one_d}
            draw_curves(ax, {name: c for name, c in curves.items() if c},
                        bands={r.name: r.band(label, metric) for r in one_d}, styles=styles)
            ax.set_title(direction_name(direction) + (f" · {what}" if len(metrics) > 1 else "")
                         + (f" · system prompt: {system}" if len(systems) > 1 else ""))
            missing = [name for name, c in curves.items() if not c and metric != "asr"]
            if missing:  # a run without the referee's outcomes: said, never drawn as 0
                ax.text(0.02, 0.97, "not measured: " + ", ".join(missing), transform=ax.transAxes, va="top",
                        fontsize=7, color="0.3")
            ax.set_ylim(-2.0, 102.0)
            if i == len(rows) - 1:
                ax.set_xlabel("perturbation amount a")
            if j == 0:
                ax.set_ylabel(ylabel)
    legend_below(fig, [Line2D([], [], label=r.name, **styles[r.name]) for r in one_d])
    title = "ASR" + (" and coherent ASR" if len(metrics) > 1 else "") + " along the same directions, 95 % band"
    fig.suptitle(title + (f" · system prompt: {systems[0]}" if len(systems) == 1 else ""))
    return fig


def _visage_entry(run: Run, system: str, rule: str, *, coherent: bool = False) -> dict[str, Any]:
    """mean, ci95 (or None) and the per-direction values of ``rule`` for ``system``: VISAGE on the
    ASR, or with ``coherent`` on the coherent ASR (means None where it was not measured)."""
    visage = run.summary.by_outcome().visage if coherent else run.summary.visage
    if visage is None:
        return {"mean": None, "ci95": None, "per_direction": []}
    spreads = visage.by_system_prompt.get(system)
    spread = spreads.of(rule) if spreads is not None else None
    per = [(Series.parse(label).direction, score) for label, v in sorted(visage.series.items())
           if Series.parse(label).system == system and (score := v.of(rule)) is not None]
    return {"mean": spread.mean if spread else None, "ci95": spread.ci95 if spread else None, "per_direction": per}


def figure_compare_visage(runs: Sequence[Run]) -> Figure:
    """VISAGE per run (bars: mean over directions, whiskers: its 95 % interval, dots: directions); when
    any run has the referee's outcomes, each run's VISAGE on the coherent ASR beside it (hatched)."""
    from matplotlib.lines import Line2D

    rule, systems = visage_rule(runs), _shared_systems(runs)
    kinds = [False] + ([True] if any(r.summary.by_outcome().visage is not None for r in runs) else [])
    bars = [(i, run, coherent) for i, run in enumerate(runs) for coherent in kinds]
    fig = headless_figure(figsize=(max(4.8, 1.2 * len(bars) * max(1, len(systems)) + 2.0), 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(bars)
    for k, (i, run, coherent) in enumerate(bars):
        for g, system in enumerate(systems):
            e = _visage_entry(run, system, rule, coherent=coherent)
            if e["mean"] is None:
                continue
            x = g + (k - (len(bars) - 1) / 2) * width
            ci = e["ci95"]
            name = f"{run.name}, on coherent ASR" if coherent else run.name
            ax.bar(x, e["mean"], width * 0.9, color=f"C{i % 10}", alpha=0.45 if coherent else 0.85,
                   hatch="//" if coherent else None, label=name if g == 0 else None)
            if ci:  # the whisker spans the interval itself (a bootstrap interval need not centre on the mean)
                ax.errorbar(x, (ci[0] + ci[1]) / 2, yerr=(ci[1] - ci[0]) / 2, fmt="none", ecolor="black", capsize=4)
            per = [v for _, v in e["per_direction"]]
            ax.scatter([x] * len(per), per, color="black", s=14, zorder=3)
            top = max([e["mean"], *(ci or []), *per])  # above the bar, its whisker and its dots
            ax.annotate(f"{e['mean']:.1f}", (x, top), textcoords="offset points", xytext=(0, 5), ha="center",
                        fontsize=9, fontweight="bold")
    ax.set_xticks(range(len(systems)), [f"system prompt: {s}" for s in systems])
    ax.set(ylim=(0.0, 108.0), ylabel=f"VISAGE ({rule} rule; higher is safer)")
    ax.grid(axis="y", alpha=0.3)
    handles = [h for h in ax.get_legend_handles_labels()[0]]
    handles.append(Line2D([], [], color="black", marker="o", linestyle="", markersize=4, label="one direction"))
    legend_below(fig, handles)
    fig.suptitle("VISAGE" + (" on the ASR and on the coherent ASR (hatched)" if len(kinds) > 1 else "")
                 + ": mean over directions with its 95 % interval")
    return fig


def _interval(what: str, ci: Sequence[float] | None) -> dict[str, float | None]:
    """An interval as two number columns, ``<what>, 95 % low`` and ``<what>, 95 % high`` (None: none)."""
    return {f"{what}, 95 % low": ci[0] if ci else None, f"{what}, 95 % high": ci[1] if ci else None}


def _coherent_cells(run: Run, system: str, label: str, rule: str) -> dict[str, Any]:
    """The coherent ASR at the origin and its VISAGE (mean over directions) beside the ASR's. The
    ``coherent ASR`` column says "measured" or "not measured" (a run whose server had no coherence
    referee, or had it off); the number columns of a run not measured are empty, never 0."""
    outcomes = run.summary.by_outcome()
    if label not in outcomes.measured:
        return {"coherent ASR": "not measured", "coherent ASR at origin (%)": None,
                **_interval("coherent ASR at origin", None), f"VISAGE on coherent ASR ({rule})": None}
    return {"coherent ASR": "measured", "coherent ASR at origin (%)": outcomes.at_origin(label),
            **_interval("coherent ASR at origin", outcomes.rate("coherent_asr").origin_ci95.get(label)),
            f"VISAGE on coherent ASR ({rule})": _visage_entry(run, system, rule, coherent=True)["mean"]}


def comparison_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The Table-1-style table: one row per run and shared system prompt. Every cell is a number or
    a name (an interval is two columns, its low and high end; each direction's VISAGE its own
    column), so the CSV reads back as numbers."""
    rule, rows = visage_rule(runs), []
    for run in runs:
        s = run.summary
        for system in _shared_systems(runs):
            label = next((lbl for lbl in run.summary.asr_labels() if Series.parse(lbl).system == system), "")
            e = _visage_entry(run, system, rule)
            row: dict[str, Any] = {
                "model": run.name, "system prompt": system,
                "ASR at origin (%)": s.at_origin("asr", label), **_interval("ASR at origin", s.at_origin_ci95("asr", label)),
                "over-refusal at origin (%)": s.at_origin("refusal", label),
                f"VISAGE ({rule})": e["mean"], **_interval("VISAGE", e["ci95"]),
            }
            if rule == "reference":
                row["VISAGE (expectation)"] = _visage_entry(run, system, "expectation")["mean"]
            row.update(_coherent_cells(run, system, label, rule))
            row.update({f"VISAGE, {direction_name(d)}": v for d, v in e["per_direction"]})
            rows.append(row)
    return rows


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every row's keys, in first-seen order (runs may have different numbers of directions)."""
    return list(dict.fromkeys(k for row in rows for k in row)) or ["model"]


def _get(spec: dict[str, Any], dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def differences(runs: Sequence[Run]) -> list[str]:
    """The settings the runs do not share (each a sentence): a comparison across them compares more than the models."""
    out = []
    for key in (*_SAME, "prompts.file"):
        values = [(r.name, _get(r.spec, key)) for r in _distinct_names(runs)]
        if key == "prompts.file":  # the same file may sit in different folders
            values = [(name, Path(str(value or "")).name) for name, value in values]
        if len({json.dumps(v, sort_keys=True) for _, v in values}) > 1:
            out.append(f"{key} differs: " + "; ".join(f"{name} {value!r}" for name, value in values))
    if not _shared_systems(runs):
        out.append("the runs share no system prompt: nothing to put side by side")
    return out


def comparison_headline(runs: Sequence[Run]) -> list[HeadlineLine]:
    """One line per run, in plain words: does it sit in a basin (the sweep report's rule,
    :mod:`.sweep.headline`), its ASR at a = 0 with the interval, its VISAGE with the interval, and
    its coherent ASR (the sweep report's words: at a = 0, the incoherent rate, VISAGE on it; or why
    it is not measured)."""
    lines = []
    for run in runs:
        reading = reading_of(run.summary, run.spec or None)
        basin, origin, visage = basin_answer(reading), origin_text(reading), visage_text(reading)
        parts = [f"In a basin? {basin}" if basin else "",
                 f"ASR at its own weights (a = 0): {origin}." if origin else "",
                 f"VISAGE ({visage_rule_of(run.summary)} rule, 0 to 100, higher is safer): {visage}." if visage else "",
                 f"Coherent ASR (jailbroken and coherent): {coherent_text(reading)}"]
        lines.append(HeadlineLine(run.name, " ".join(p for p in parts if p) or "no ASR curve"))
    return lines


_CAPTIONS = {
    "compare_asr_1d": "ASR along the same directions, one curve per model (each with its own colour, marker and line "
                      "style, so overlapping curves stay visible); a = 0 is each model's own weights; shaded: 95 % "
                      "interval. Where the runs have the coherence referee's outcomes, the row below shows the "
                      "coherent ASR: the jailbroken answers that are coherent (harmful compliance); the ASR above "
                      "it is incoherent output (collapse), which the paper's ASR counts as a success.",
    "compare_visage": "VISAGE per model (higher is safer): the bar is the mean over directions, the whisker its 95 % "
                      "interval, each dot one direction; hatched beside it, where measured, VISAGE on the coherent "
                      "ASR (only coherent compliance counts as a success).",
}


@dataclass
class Comparison:
    """What :func:`write_comparison` wrote."""

    report: Path
    table: Path
    csv: Path
    figures: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_comparison(runs: Sequence[Run], out_dir: Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> Comparison:
    """Figures, table (JSON, CSV) and report.html of ``runs`` in ``out_dir`` (see the module docstring).

    Example::

        runs = [load_run("runs/original"), load_run("runs/tuned")]
        result = write_comparison(runs, Path("runs/compare"))
        print(result.report, result.rows)
    """
    if len(runs) < 2:
        raise ValidationError("compare: give two or more sweep folders")
    runs = _distinct_names(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    curves = figure_compare_curves(runs)
    if curves is not None:
        figures += save_figure(curves, out_dir / "compare_asr_1d", formats=formats)
    figures += save_figure(figure_compare_visage(runs), out_dir / "compare_visage", formats=formats)
    rows, warnings = comparison_rows(runs), differences(runs)
    doc = {"runs": [{"name": r.name, "folder": str(r.folder), "sweep": r.summary.sweep, "kind": r.summary.kind,
                     "model_name": r.summary.model_name,
                     "model_fingerprint": r.summary.model.model_fingerprint or ""} for r in runs],
           "visage_rule": visage_rule(runs), "table": rows, "warnings": warnings, "figures": [str(p) for p in figures]}
    table = out_dir / "comparison.json"
    table.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    csv_path = out_dir / "comparison.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_columns(rows))
        writer.writeheader()
        writer.writerows(rows)
    shown = [PagePlot(p, _CAPTIONS.get(p.stem, p.stem)) for p in
             ([p for p in figures if p.suffix == ".png"] or [p for p in figures if p.suffix == ".svg"])]
    notes = ("VISAGE: higher is safer. Bars: the mean over directions, whiskers its 95 % interval (bootstrap over "
             "prompts and directions), dots the single directions. Bands: each ASR point's 95 % Wilson interval.")
    if warnings:
        notes += "\n\nThe runs differ in more than the model:\n- " + "\n- ".join(warnings)
    report = write_html_page(out_dir / "report.html", title="Comparison: " + " vs ".join(r.name for r in runs),
                             headline=comparison_headline(runs), plots=shown, visage_rows=rows,
                             table_title="Side by side", settings={"runs": doc["runs"]}, notes=notes)
    return Comparison(report, table, csv_path, figures, rows, warnings)
