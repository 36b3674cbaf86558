"""An HTML report page: one self-contained file, as the sweep's report.html and the comparison's are
laid out: the title, the headline (:class:`HeadlineLine`: a topic and a sentence each, what a
reader needs first), the table and its notes, the plots (each :class:`PagePlot` with a caption in
words), the completions, and the settings folded away (``<details>``).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .html_completions import CSS as COMPLETIONS_CSS
from .html_completions import PointCompletions, completions_section
from .outputs import write_atomically

__all__ = ["HeadlineLine", "PagePlot", "PointCompletions", "write_html_page"]


@dataclass(frozen=True)
class HeadlineLine:
    """One line of a page's headline: its ``topic`` (a question or a name) and the answer, in words."""

    topic: str
    text: str


@dataclass(frozen=True)
class PagePlot:
    """A plot to embed (PNG or SVG) and its caption: what it shows, in words (never a file name)."""

    path: Path
    caption: str

_MIME = {".png": "image/png", ".svg": "image/svg+xml"}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; }
div.table { overflow-x: auto; }
th { background: #f3eefa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { white-space: nowrap; } td:first-child { white-space: normal; min-width: 9em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.notes { white-space: pre-wrap; color: #444; font-size: 0.9em; }
dl.headline { background: #f7f4fb; border-left: 4px solid #7b5ea7; padding: 0.6em 1em; margin: 1em 0; }
dl.headline dt { font-weight: 600; margin-top: 0.5em; } dl.headline dd { margin: 0.1em 0 0 0; }
details.settings > summary { cursor: pointer; font-weight: 600; }
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


def _figure(plot: PagePlot) -> str:
    path = Path(plot.path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"cannot embed {path.name}: plots must be .png or .svg")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = _esc(plot.caption)
    return f'<figure><img src="data:{mime};base64,{data}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def _headline(lines: Sequence[HeadlineLine]) -> str:
    items = "\n".join(f"<dt>{_esc(line.topic)}</dt><dd>{_esc(line.text)}</dd>" for line in lines)
    return f'<dl class="headline">\n{items}\n</dl>'



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
    return f'<div class="table"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


def write_html_page(
    path: str | Path,
    *,
    title: str,
    plots: Sequence[PagePlot],
    visage_rows: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    notes: str = "",
    completions: Sequence[PointCompletions] | None = None,
    headline: Sequence[HeadlineLine] = (),
    table_title: str = "VISAGE",
) -> Path:
    """Write the report to ``path`` and return it.

    ``headline``: the lines shown first. ``plots``: PNG/SVG files with their captions, embedded in
    order. ``visage_rows``: one mapping per row of the table headed ``table_title``; the columns are
    the union of the rows' keys in first-seen order (floats shown to 2 decimals). ``notes``: how to
    read the table, under it. ``settings``: pretty-printed JSON (non-JSON values via ``str``), folded
    away. ``completions``: one searchable table per point (None: no completions section).
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
    if headline:
        parts.append(_headline(headline))
    parts += [f"<h2>{_esc(table_title)}</h2>", _table(visage_rows)]
    if notes:
        parts.append(f'<p class="notes">{_esc(notes)}</p>')
    parts.append("<h2>Plots</h2>")
    parts += [_figure(p) for p in plots] or ["<p>No plots.</p>"]
    if completions is not None:
        parts.append(completions_section(completions))
    parts += ['<details class="settings"><summary>Settings: the spec, the model, the servers, the directions\' '
              "fingerprints, provenance</summary>", f"<pre>{_esc(settings_json)}</pre></details>", "</body>", "</html>"]
    write_atomically(path, "\n".join(parts) + "\n")
    return path
