"""A sweep's output folder, from the store alone: ``summary.json`` (:mod:`.summary`), ``plots/``
(:mod:`.figures`) and ``report.html`` (:mod:`.page`), the summary computed once for all three."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..outputs import output_lock
from ..store import ResultStore
from .figures import write_plots
from .page import write_sweep_page
from .stored import SweepData, load_sweep
from .summary import sweep_summary, write_summary
from .summary_doc import SweepSummary

__all__ = ["write_outputs", "write_sweep_report"]


def write_sweep_report(out_dir: Path, data: SweepData, plots: list[Path] | None = None, *,
                       summary: SweepSummary | None = None, store: ResultStore | None = None) -> Path:
    """``out_dir/report.html`` (:mod:`.page`) with ``plots`` (None: the PNGs in ``out_dir/plots``);
    with ``store``, every safety point's completions."""
    out_dir = Path(out_dir)
    if plots is None:
        plots = sorted((out_dir / "plots").glob("*.png")) if (out_dir / "plots").is_dir() else []
    summary = summary if summary is not None else sweep_summary(data)
    return write_sweep_page(out_dir / "report.html", data, summary, plots, store=store)


def write_outputs(out_dir: Path, store: ResultStore, name: str | None = None) -> dict[str, Any]:
    """summary.json, plots/ and report.html (with the completions) for one sweep of ``store``;
    returns the paths (``summary``, ``plots``, ``report``). Two processes writing one folder take
    turns (``out_dir/.outputs.lock``)."""
    data = load_sweep(store, name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    summary = sweep_summary(data)
    with output_lock(Path(out_dir)):
        path = write_summary(out_dir, data, summary)
        plots = write_plots(out_dir, data, summary)
        report = write_sweep_report(out_dir, data, plots, summary=summary, store=store)
    return {"summary": path, "plots": plots, "report": report}
