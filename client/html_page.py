"""An HTML report page: one self-contained file (plots, a table, completions, settings, notes), as the sweep's
report.html and the comparison's are laid out.

Everything is inside the file: each plot is an ``<img>`` with a base64 ``data:`` URI (PNG or
SVG; an SVG inside ``<img>`` cannot run scripts), the CSS and the completions' search script are
inline (:mod:`.html_completions`), nothing is fetched from the network. Every user-provided
string (title, notes, table cells, settings, file names, completions) is HTML-escaped. The file
is replaced atomically.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .html_completions import CSS as COMPLETIONS_CSS
from .html_completions import PointCompletions, completions_section
from .outputs import write_atomically

__all__ = ["PointCompletions", "write_html_page"]

_MIME = {".png": "image/png", ".svg": "image/svg+xml"}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
th { background: #f3eefa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.notes { white-space: pre-wrap; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.2f}"
        return f'<td class="num">{_esc(text)}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if value is None:
        return "<td></td>"
    return f"<td>{_esc(value)}</td>"


def _figure(path: Path) -> str:
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"cannot embed {path.name}: plots must be .png or .svg")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = _esc(path.name)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>No VISAGE scores.</p>"
    columns: list[str] = []
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(_cell({str(k): v for k, v in row.items()}.get(c)) for c in columns)
        + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def write_html_page(
    path: str | Path,
    *,
    title: str,
    plots: Sequence[str | Path],
    visage_rows: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    notes: str = "",
    completions: Sequence[PointCompletions] | None = None,
) -> Path:
    """Write the report to ``path`` and return it.

    ``plots``: PNG/SVG files, embedded in order. ``visage_rows``: one mapping per table row;
    the columns are the union of the rows' keys in first-seen order (floats shown to 2
    decimals). ``settings``: shown as pretty-printed JSON (non-JSON values via ``str``).
    ``completions``: one searchable table per point (None: no completions section).
    """
    path = Path(path)
    settings_json = json.dumps(dict(settings), indent=2, sort_keys=True, default=str)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}{COMPLETIONS_CSS if completions is not None else ''}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if notes:
        parts.append(f'<p class="notes">{_esc(notes)}</p>')
    parts += ["<h2>VISAGE</h2>", _table(visage_rows), "<h2>Plots</h2>"]
    parts += [_figure(Path(p)) for p in plots] or ["<p>No plots.</p>"]
    if completions is not None:
        parts.append(completions_section(completions))
    parts += ["<h2>Settings</h2>", f"<pre>{_esc(settings_json)}</pre>", "</body>", "</html>"]
    write_atomically(path, "\n".join(parts) + "\n")
    return path
