"""The ASR curve split by outcome: per 1D series, stacked bands of the answers refused, complied
(jailbroken and coherent) and incoherent (jailbroken, not coherent) along the direction, so the
edge of the basin reads as harmful compliance or as collapse. The top of the complied band is the
coherent ASR; the top of the incoherent band is 100 %, and the two upper bands together are the
paper's ASR. One panel per series, sharing the axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .plots import FIGURE_FORMATS, headless_figure, legend_below, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["OUTCOME_COLORS", "figure_outcomes_1d", "plot_outcomes_1d"]

#: Each outcome's band colour, bottom to top.
OUTCOME_COLORS = {"refused": "#4c9a5b", "complied": "#c0392b", "incoherent": "#a6a6a6"}
#: Per point (a, refused %, complied %, incoherent %).
OutcomeRows = Sequence[tuple[float, float, float, float]]


def figure_outcomes_1d(series: Mapping[str, OutcomeRows], *, title: str,
                       xlabel: str = "perturbation amount a") -> Figure:
    """One panel per series (its key names it) of stacked outcome bands along ``a``.

    Example::

        fig = figure_outcomes_1d({"d0": [(-0.5, 0, 10, 90), (0.0, 90, 10, 0), (0.5, 0, 5, 95)]}, title="m")
    """
    if not series:
        raise ValueError("figure_outcomes_1d: no series to plot")
    fig = headless_figure(figsize=(6.4, 1.2 + 2.4 * len(series)), layout="constrained")
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    handles = []
    for ax, (name, rows) in zip(axes, series.items(), strict=True):
        ordered = sorted(rows)
        xs = [r[0] for r in ordered]
        stacks = ax.stackplot(xs, [r[1] for r in ordered], [r[2] for r in ordered], [r[3] for r in ordered],
                              labels=list(OUTCOME_COLORS), colors=list(OUTCOME_COLORS.values()), alpha=0.85)
        handles = list(stacks)
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=1)
        ax.set(ylim=(0.0, 100.0), xlim=(min(xs), max(xs)) if len(xs) > 1 else None, ylabel="answers (%)",
               title=name)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(title)
    legend_below(fig, handles)
    return fig


def plot_outcomes_1d(series: Mapping[str, OutcomeRows], path: str | Path, *, title: str,
                     xlabel: str = "perturbation amount a", formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """:func:`figure_outcomes_1d`, saved (:func:`~.plots.save_figure`); returns the paths."""
    return save_figure(figure_outcomes_1d(series, title=title, xlabel=xlabel), path, formats=formats)
