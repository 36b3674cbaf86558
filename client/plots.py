"""Landscape figures: 1D curves (with ASR bands), 2D contour/heatmap and surface, three models on
one plane (2D interpolation), safety vs capability.

Each ``figure_*`` function returns a ``matplotlib.figure.Figure`` and writes nothing; writing is
the separate step :func:`save_figure` (PNG, SVG and/or PDF). ``plot_*`` are the two together
(PNG + SVG unless ``formats`` says otherwise), returning the paths written.

Headless by construction: every figure is a ``matplotlib.figure.Figure`` drawn on its own Agg
canvas, never through ``pyplot``, so no GUI backend is needed, nothing global (the user's
backend, pyplot's figure list) is touched, and figures can be drawn from several threads.
matplotlib is imported inside the functions, so importing this module (and the CLI) stays cheap.
Legends sit outside the axes, below them, so they never cover data. The look follows the
paper's Figure 1 (described in docs/method.md section 4): viridis, 0..100, the unperturbed model
marked at the origin. Labels are drawn as given: callers pass them in a reader's words
(:mod:`.figure_labels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURE_FORMATS", "draw_curves", "figure_1d", "figure_side_by_side", "figures_2d", "headless_figure",
           "legend_below", "plot_1d", "plot_2d", "plot_plane", "plot_side_by_side", "save_figure"]

#: Every format :func:`save_figure` writes.
FIGURE_FORMATS = ("png", "svg", "pdf")
_DEFAULT_FORMATS = ("png", "svg")  # what plot_* write unless told
_ORIGIN_COLOR = "#c9a3f0"  # the paper's light purple dot for the aligned model
_FIGURE_SUFFIXES = {".png", ".svg", ".pdf"}
#: (a, low, high) per point: a band drawn around a 1D curve (e.g. ASR's 95 % interval).
Band = Sequence[tuple[float, float, float]]


def _base(path: str | Path) -> Path:
    """``path`` without a figure suffix (``x.png`` -> ``x``; ``llama3.1-8b`` stays whole)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix.lower() in _FIGURE_SUFFIXES else path


def save_figure(fig: Figure, path: str | Path, *, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Write ``fig`` as ``<path>.<format>`` for each of ``formats`` (a suffix on ``path`` is
    dropped first); returns the paths, in ``formats`` order. Reproducible bytes: no dates, and
    SVG text stays text.

    Example::

        paths = save_figure(fig, "asr")         # asr.png, asr.svg, asr.pdf
    """
    from matplotlib import rc_context

    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"save_figure: formats must be some of {', '.join(FIGURE_FORMATS)}, got {list(formats)}")
    base = _base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, dict[str, Any]] = {"png": {"Software": None}, "svg": {"Date": None},
                                           "pdf": {"CreationDate": None, "Producer": None}}
    out = []
    with rc_context({"svg.hashsalt": "safety-landscape", "svg.fonttype": "none", "pdf.fonttype": 42}):
        for fmt in formats:
            target = base.with_name(f"{base.name}.{fmt}")
            fig.savefig(target, dpi=150, bbox_inches="tight", metadata=metadata[fmt])
            out.append(target)
    return out


def headless_figure(**kwargs: Any) -> Figure:
    """A ``Figure`` on its own Agg canvas (no pyplot, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _sorted_points(name: str, points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    pts = sorted((float(x), float(y)) for x, y in points)
    if not pts:
        raise ValueError(f"series {name!r} has no points to plot")
    return [p[0] for p in pts], [p[1] for p in pts]


def _origin_value(xs: list[float], ys: list[float]) -> float | None:
    """The value at a = 0 (interpolated between the neighbours when 0 is not on the grid)."""
    if not xs[0] <= 0.0 <= xs[-1]:
        return None
    for i, x in enumerate(xs):
        if x == 0.0:
            return ys[i]
        if x > 0.0:
            x0, y0 = xs[i - 1], ys[i - 1]
            return y0 + (ys[i] - y0) * (0.0 - x0) / (x - x0)
    return None


def _style_ylim(ax: Any, ylim: tuple[float, float] | None) -> None:
    if ylim is not None:
        lo, hi = ylim
        pad = 0.02 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)


def legend_below(fig: Any, handles: Sequence[Any]) -> None:
    """The legend under the axes (outside them: it never covers data), in as many columns as fit."""
    if handles:
        fig.legend(handles=list(handles), labels=[h.get_label() for h in handles], loc="outside lower center",
                   ncols=min(3, len(handles)), fontsize="small", frameon=False)


def figure_1d(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    ylabel: str = "ASR (%)",
    xlabel: str = "perturbation amount a",
    visage: Mapping[str, float | None] | None = None,
    ylim: tuple[float, float] | None = (0.0, 100.0),
    bands: Mapping[str, Band] | None = None,
    band_label: str = "95 % interval",
    assumed: Mapping[str, Sequence[float]] | None = None,
    assumed_value: float = 100.0,
) -> Figure:
    """One axis, one line per series of ``(a, value)`` points, named by its key.

    The origin is marked by a dashed vertical line at a = 0 and a dot at each series' value
    there. With ``visage`` the legend shows each series' score. ``bands`` shades ``(a, low,
    high)`` around a series (its 95 % interval; ``band_label`` in the legend). ``ylim=None`` for unbounded metrics (perplexity).
    ``assumed``: per series the ``a`` of points an adaptive sweep did not measure but assumed at
    ``assumed_value``, drawn as hollow markers off the measured line.

    Example::

        fig = figure_1d({"d0": [(-0.5, 100.0), (0.0, 10.0), (0.5, 90.0)]}, title="my model: ASR")
    """
    if not series:
        raise ValueError("plot_1d: no series to plot")
    fig = headless_figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.add_subplot()
    handles = draw_curves(ax, series, visage=visage, bands=bands)
    for line in handles:
        skipped = sorted((assumed or {}).get(str(line.get_gid()), ()))
        if skipped:
            ax.plot(skipped, [assumed_value] * len(skipped), linestyle="none", marker="o", markersize=5,
                    markerfacecolor="none", markeredgecolor=line.get_color(), zorder=2)
    if assumed and any(assumed.values()):
        handles += ax.plot([], [], linestyle="none", marker="o", markersize=5, markerfacecolor="none",
                           markeredgecolor="0.3", label=f"assumed {assumed_value:g} (not measured)")
    if bands and any(bands.values()):
        from matplotlib.patches import Patch

        handles.append(Patch(color="0.5", alpha=0.3, label=band_label))
    _style_ylim(ax, ylim)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    legend_below(fig, handles)
    return fig


def draw_curves(ax: Any, series: Mapping[str, Sequence[tuple[float, float]]], *,
                visage: Mapping[str, float | None] | None = None, bands: Mapping[str, Band] | None = None,
                styles: Mapping[str, Mapping[str, Any]] | None = None) -> list[Any]:
    """Draw ``series`` on ``ax`` as :func:`figure_1d` does (the origin line and dots, bands, a
    grid); ``styles`` gives a series its own line keywords (colour, marker, line style: the same
    model alike in every panel, and told apart where curves overlap). Returns the lines."""
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=1, zorder=1)
    handles = []
    for name, points in series.items():
        xs, ys = _sorted_points(name, points)
        score = visage.get(name) if visage is not None else None
        label = name if score is None else f"{name} (VISAGE {score:.2f})"
        style = {"marker": "o", "markersize": 3, "linewidth": 1.6, **(styles or {}).get(name, {})}
        (line,) = ax.plot(xs, ys, label=label, zorder=2, gid=name, **style)
        handles.append(line)
        if bands and bands.get(name):
            _draw_band(ax, bands[name], line.get_color())
        y0 = _origin_value(xs, ys)
        if y0 is not None:
            ax.plot([0.0], [y0], "o", markersize=8, color=_ORIGIN_COLOR,
                    markeredgecolor=line.get_color(), zorder=3)
    ax.grid(alpha=0.3)
    return handles


def _draw_band(ax: Any, band: Band, color: Any) -> None:
    rows = sorted((float(a), float(lo), float(hi)) for a, lo, hi in band)
    ax.fill_between([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], color=color, alpha=0.18,
                    linewidth=0, zorder=1.5)


def plot_1d(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    *,
    title: str,
    ylabel: str = "ASR (%)",
    xlabel: str = "perturbation amount a",
    visage: Mapping[str, float | None] | None = None,
    ylim: tuple[float, float] | None = (0.0, 100.0),
    bands: Mapping[str, Band] | None = None,
    band_label: str = "95 % interval",
    assumed: Mapping[str, Sequence[float]] | None = None,
    assumed_value: float = 100.0,
    formats: Sequence[str] = _DEFAULT_FORMATS,
) -> list[Path]:
    """:func:`figure_1d`, saved (:func:`save_figure`); returns ``[png, svg]`` (or ``formats``)."""
    fig = figure_1d(series, title=title, ylabel=ylabel, xlabel=xlabel, visage=visage, ylim=ylim, bands=bands,
                    band_label=band_label, assumed=assumed, assumed_value=assumed_value)
    return save_figure(fig, path, formats=formats)


def _grid(a: Sequence[float], b: Sequence[float], z: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    a_arr = np.asarray(a, dtype=float)
    b_arr = np.asarray(b, dtype=float)
    z_arr = np.asarray(z, dtype=float)
    if a_arr.ndim != 1 or b_arr.ndim != 1 or len(a_arr) < 2 or len(b_arr) < 2:
        raise ValueError("plot_2d: a and b must be 1D with at least 2 coefficients each")
    if z_arr.shape != (len(b_arr), len(a_arr)):
        raise ValueError(
            f"plot_2d: z has shape {z_arr.shape}, expected (len(b), len(a)) = "
            f"({len(b_arr)}, {len(a_arr)}): one row per b, one column per a"
        )
    return a_arr, b_arr, np.ma.masked_invalid(z_arr)  # NaN = not measured (yet)


def figures_2d(
    a: Sequence[float],
    b: Sequence[float],
    z: Any,
    *,
    title: str,
    zlabel: str = "ASR (%)",
    zlim: tuple[float, float] = (0.0, 100.0),
    axis_labels: tuple[str, str] = ("a (direction 1)", "b (direction 2)"),
    targets: Sequence[tuple[float, float, str]] = (),
    assumed: Sequence[tuple[float, float]] = (),
) -> tuple[Figure, Figure]:
    """A 2D landscape: (contour + heatmap side by side, the 3D surface).

    ``z`` has ``len(b)`` rows and ``len(a)`` columns (NaN = point not measured). ``targets``
    (a, b, name) mark other models on the plane, e.g. the finetuned checkpoint at a = 1 of an
    interpolation-random plane (the paper's Figure 1B). ``assumed``: the (a, b) cells an adaptive
    sweep did not measure but assumed at ``zlim``'s top; drawn at that value and crossed.

    Example::

        flat, surface = figures_2d([-0.5, 0.0, 0.5], [-0.5, 0.5], [[100, 20, 90], [95, 15, 100]], title="plane")
    """
    a_arr, b_arr, zm = _grid(a, b, z)
    for x, y in assumed:
        zm[list(b_arr).index(y), list(a_arr).index(x)] = zlim[1]
    flat = _flat_figure(a_arr, b_arr, zm, title=title, zlabel=zlabel, zlim=zlim, axis_labels=axis_labels,
                        targets=targets, assumed=assumed)
    return flat, _surface_figure(a_arr, b_arr, zm, title=title, zlabel=zlabel, zlim=zlim)


def plot_2d(
    a: Sequence[float],
    b: Sequence[float],
    z: Any,
    path: str | Path,
    *,
    title: str,
    zlabel: str = "ASR (%)",
    zlim: tuple[float, float] = (0.0, 100.0),
    axis_labels: tuple[str, str] = ("a (direction 1)", "b (direction 2)"),
    target: tuple[float, float, str] | None = None,
    assumed: Sequence[tuple[float, float]] = (),
    formats: Sequence[str] = _DEFAULT_FORMATS,
) -> list[Path]:
    """:func:`figures_2d`, saved as ``<path>.*`` and ``<path>_surface.*``; returns the paths
    (four with the default PNG + SVG)."""
    return _save_pair(figures_2d(a, b, z, title=title, zlabel=zlabel, zlim=zlim, axis_labels=axis_labels,
                                 targets=() if target is None else (target,), assumed=assumed), path, formats)


def plot_plane(
    a: Sequence[float],
    b: Sequence[float],
    z: Any,
    path: str | Path,
    *,
    title: str,
    targets: Sequence[tuple[float, float, str]],
    zlabel: str = "ASR (%)",
    zlim: tuple[float, float] = (0.0, 100.0),
    axis_labels: tuple[str, str] = ("a (toward target A)", "b (toward target B)"),
    assumed: Sequence[tuple[float, float]] = (),
    formats: Sequence[str] = _DEFAULT_FORMATS,
) -> list[Path]:
    """Three models on one plane (2D interpolation): the origin model at (0, 0) and each of
    ``targets`` (a, b, name) marked, e.g. target A at (1, 0) and target B at (0, 1).

    The same figures as :func:`plot_2d` (contour + heatmap, and ``<path>_surface``; ``z`` with
    ``len(b)`` rows and ``len(a)`` columns); returns the paths (four with the default formats).
    """
    return _save_pair(figures_2d(a, b, z, title=title, zlabel=zlabel, zlim=zlim, axis_labels=axis_labels,
                                 targets=targets, assumed=assumed), path, formats)


def _save_pair(figures: tuple[Figure, Figure], path: str | Path, formats: Sequence[str]) -> list[Path]:
    """The flat figure as ``<path>.*`` and the surface as ``<path>_surface.*``."""
    base = _base(path)
    return (save_figure(figures[0], base, formats=formats)
            + save_figure(figures[1], base.with_name(base.name + "_surface"), formats=formats))


def _flat_figure(a_arr: Any, b_arr: Any, zm: Any, *, title: str, zlabel: str, zlim: tuple[float, float],
                 axis_labels: tuple[str, str], targets: Sequence[tuple[float, float, str]] = (),
                 assumed: Sequence[tuple[float, float]] = ()) -> Any:
    """Contour and heatmap side by side, the origin (and each of ``targets``) marked."""
    import numpy as np

    vmin, vmax = zlim
    fig = headless_figure(figsize=(10.5, 4.6), layout="constrained")
    ax_c, ax_h = fig.subplots(1, 2)
    ax_c.contourf(a_arr, b_arr, np.ma.clip(zm, vmin, vmax), levels=np.linspace(vmin, vmax, 21), cmap="viridis",
                  vmin=vmin, vmax=vmax)
    ax_c.set_title("contour")
    da, db = (a_arr[-1] - a_arr[0]) / (len(a_arr) - 1), (b_arr[-1] - b_arr[0]) / (len(b_arr) - 1)
    im = ax_h.imshow(zm, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto",
                     interpolation="nearest",
                     extent=(a_arr[0] - da / 2, a_arr[-1] + da / 2,
                             b_arr[0] - db / 2, b_arr[-1] + db / 2))
    ax_h.set_title("heatmap")
    for ax in (ax_c, ax_h):
        ax.axhline(0.0, color="0.15", linewidth=0.8)
        ax.axvline(0.0, color="0.15", linewidth=0.8)
        ax.plot([0.0], [0.0], "o", color=_ORIGIN_COLOR, markeredgecolor="white", markersize=8)
        for target in targets:  # a second (third) model on the plane: a white star, named
            ax.plot([target[0]], [target[1]], "*", color="white", markeredgecolor="0.15", markersize=13)
            ax.annotate(target[2], (target[0], target[1]), textcoords="offset points", xytext=(6, 6),
                        color="0.1", fontsize=8)
        if assumed:
            marks = ax.plot([c[0] for c in assumed], [c[1] for c in assumed], "x", color="0.25", markersize=4,
                            label="assumed (not measured)")
        ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1])
        ax.set_box_aspect(1)
    if assumed:
        legend_below(fig, marks)
    fig.colorbar(im, ax=[ax_c, ax_h], label=zlabel, shrink=0.85)
    fig.suptitle(title)
    return fig


def _surface_figure(a_arr: Any, b_arr: Any, zm: Any, *, title: str, zlabel: str, zlim: tuple[float, float]) -> Any:
    """The 3D surface, the origin marked when it was measured."""
    import numpy as np

    vmin, vmax = zlim
    fig = headless_figure(figsize=(6.4, 5.6))
    ax3 = fig.add_subplot(projection="3d")
    grid_a, grid_b = np.meshgrid(a_arr, b_arr)
    surf = ax3.plot_surface(grid_a, grid_b, zm.filled(np.nan), cmap="viridis", vmin=vmin,
                            vmax=vmax, rstride=1, cstride=1, linewidth=0, antialiased=True)
    i0 = int(np.argmin(np.abs(b_arr)))
    j0 = int(np.argmin(np.abs(a_arr)))
    if a_arr[j0] == 0.0 and b_arr[i0] == 0.0 and not np.ma.is_masked(zm[i0, j0]):
        ax3.scatter([0.0], [0.0], [float(zm[i0, j0])], color=_ORIGIN_COLOR, s=40,
                    edgecolors="white", depthshade=False)
    ax3.set(xlabel="a", ylabel="b", zlabel=zlabel, title=title)
    ax3.set_zlim(vmin, vmax)
    fig.colorbar(surf, ax=ax3, shrink=0.6, pad=0.12)
    return fig


def figure_side_by_side(
    safety: Mapping[str, Sequence[tuple[float, float]]],
    capability: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    capability_label: str,
    safety_label: str = "ASR (%)",
    xlabel: str = "perturbation amount a",
    capability_ylim: tuple[float, float] | None = (0.0, 100.0),
) -> Figure:
    """Safety (left axis, solid) and a capability metric (right axis, dashed) along the same
    perturbation, as in the paper's Figures 7/8.

    Example::

        fig = figure_side_by_side({"ASR d0": [(-0.5, 100.0), (0.0, 5.0), (0.5, 80.0)]},
                                  {"accuracy d0": [(-0.5, 25.0), (0.0, 60.0), (0.5, 30.0)]},
                                  title="safety and capability", capability_label="accuracy (%)")
    """
    if not safety and not capability:
        raise ValueError("plot_side_by_side: nothing to plot")
    fig = headless_figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    ax.axvline(0.0, color="0.5", linestyle="--", linewidth=1)
    handles = []
    # Distinct colours for every line: solid = safety (left axis), dashed = capability (right).
    for i, (name, points) in enumerate(safety.items()):
        xs, ys = _sorted_points(name, points)
        handles += ax.plot(xs, ys, color=f"C{i % 10}", marker="o", markersize=3,
                           label=f"{name}: {safety_label}")
    for i, (name, points) in enumerate(capability.items(), start=len(safety)):
        xs, ys = _sorted_points(name, points)
        handles += ax2.plot(xs, ys, color=f"C{i % 10}", linestyle="--", marker="s", markersize=3,
                            label=f"{name}: {capability_label}")
    _style_ylim(ax, (0.0, 100.0))
    _style_ylim(ax2, capability_ylim)
    ax.set(title=title, xlabel=xlabel, ylabel=safety_label)
    ax2.set_ylabel(capability_label)
    ax.grid(alpha=0.3)
    legend_below(fig, handles)
    return fig


def plot_side_by_side(
    safety: Mapping[str, Sequence[tuple[float, float]]],
    capability: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    *,
    title: str,
    capability_label: str,
    safety_label: str = "ASR (%)",
    xlabel: str = "perturbation amount a",
    capability_ylim: tuple[float, float] | None = (0.0, 100.0),
    formats: Sequence[str] = _DEFAULT_FORMATS,
) -> list[Path]:
    """:func:`figure_side_by_side`, saved; returns ``[png, svg]`` (or ``formats``)."""
    fig = figure_side_by_side(safety, capability, title=title, capability_label=capability_label,
                              safety_label=safety_label, xlabel=xlabel, capability_ylim=capability_ylim)
    return save_figure(fig, path, formats=formats)
