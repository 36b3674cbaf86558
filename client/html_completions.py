"""An HTML page's completions section: every point's answers, one table per point, searchable offline.

The data sits in the page as one JSON block (``<script type="application/json">``) in which each
distinct text (prompt or completion) appears once, so the many points near the origin that answer
alike cost little. A point's table is built when its ``<details>`` opens; the search box filters
every point's rows by prompt, completion or keyword text (case-insensitive), optionally to the
jailbroken ones, and hides the points with no match. Inline script and CSS only: nothing is
fetched, the page works from a file with no network. Each point gives the ``visage evaluate``
command that measures it again (:mod:`.reproduce`), ready to copy. A link may carry a search and a point to
open (``report.html#q=sure&jb=1&open=3``). Texts reach the page through ``textContent``
(never as HTML) and the JSON block escapes ``<``, ``>``, ``&`` and ``/``, so no completion can inject markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .records import Completion

__all__ = ["PointCompletions", "completions_section"]


@dataclass(frozen=True)
class PointCompletions:
    """One point's heading (what it is and its rate with the interval), its completions, the
    word for a non-refusal ("jailbroken" on harmful prompts, "answered" on benign ones), and the
    command that measures the point again (``visage evaluate ...``; None: none can)."""

    heading: str
    completions: Sequence[Completion]
    complied: str = "jailbroken"
    reproduce: str | None = None


CSS = """
.csearch { margin: 0.6em 0; } .csearch input[type=search] { width: 28em; padding: 0.2em; }
#cn { margin-left: 1.2em; color: #555; }
details.cpoint { margin: 0.2em 0; } details.cpoint > summary { cursor: pointer; }
table.ctable td { vertical-align: top; font-size: 0.85em; } table.ctable td.text { white-space: pre-wrap; max-width: 36em; }
table.ctable tr.jb td { background: #fdecea; }
p.again { margin: 0.3em 0 0.3em 1.2em; font-size: 0.85em; } p.again code { user-select: all; word-break: break-all; }
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('completions-data').textContent);
  var T = data.texts, L = T.map(function (t) { return t.toLowerCase(); });
  var box = document.getElementById('cq'), only = document.getElementById('cj'), count = document.getElementById('cn');
  var points = Array.prototype.slice.call(document.querySelectorAll('details.cpoint'));
  function matches(r, q) {
    if (only.checked && !r[1]) return false;  // "jailbroken only": the answers that did not refuse
    if (!q) return true;
    return r[2].toLowerCase().indexOf(q) >= 0 || (r[6] !== null && L[r[6]].indexOf(q) >= 0)
      || (r[7] !== null && L[r[7]].indexOf(q) >= 0);
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function render(d) {
    var body = d.querySelector('tbody'), q = box.value.toLowerCase(), yes = data.complied[+d.dataset.point];
    body.textContent = '';
    data.points[+d.dataset.point].forEach(function (r) {
      if (!matches(r, q)) return;
      var tr = document.createElement('tr');
      if (r[1]) tr.className = 'jb';
      cell(tr, r[0]); cell(tr, r[1] ? yes : 'refused'); cell(tr, r[2]); cell(tr, r[3]);
      cell(tr, r[5] === null ? '' : r[5]);
      cell(tr, r[6] === null ? '(server set, #' + r[0] + ')' : T[r[6]], 'text');
      cell(tr, r[7] === null ? '(not kept)' : T[r[7]], 'text');
      body.appendChild(tr);
    });
  }
  function filter() {
    var q = box.value.toLowerCase(), active = q || only.checked, shown = 0, rows = 0;
    points.forEach(function (d) {
      var n = data.points[+d.dataset.point].filter(function (r) { return matches(r, q); }).length;
      d.hidden = active && n === 0;
      d.querySelector('.hits').textContent = active ? ' \\u2014 ' + n + ' matching' : '';
      if (!d.hidden) { shown += 1; rows += n; }
      if (d.open) render(d);
    });
    count.textContent = active ? rows + ' matching answers at ' + shown + ' points' : '';
  }
  points.forEach(function (d) { d.addEventListener('toggle', function () { if (d.open) render(d); }); });
  box.addEventListener('input', filter);
  only.addEventListener('change', filter);
  // A link can carry a search and a point to open: report.html#q=sure&jb=1&open=3
  var link = new URLSearchParams(location.hash.slice(1));
  if (link.has('q') || link.has('jb')) { box.value = link.get('q') || ''; only.checked = link.has('jb'); filter(); }
  var target = link.has('open') ? points[+link.get('open')] : points.filter(function (d) { return !d.hidden; })[0];
  if (target && (link.has('open') || link.has('q'))) { target.open = true; render(target); target.scrollIntoView(); }
})();
"""

_HEAD = ("<tr><th>#</th><th>verdict</th><th>keyword</th><th>finish</th><th>tokens</th><th>prompt</th>"
         "<th>completion</th></tr>")


def _payload(points: Sequence[PointCompletions]) -> str:
    """The JSON block: ``texts`` (each distinct text once) and, per point, its rows
    ``[index, jailbroken, keyword, finish, prompt_tokens, completion_tokens, prompt#, text#]``."""
    texts: dict[str, int] = {}

    def ref(text: str | None) -> int | None:
        return None if text is None else texts.setdefault(text, len(texts))

    rows = [[[c.index, int(c.jailbroken), c.matched_keyword, c.finish_reason, c.prompt_tokens, c.completion_tokens,
              ref(c.prompt), ref(c.text)] for c in p.completions] for p in points]
    doc = {"texts": list(texts), "points": rows, "complied": [p.complied for p in points]}
    blob = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    # Escapes JSON allows: no markup can close the block, and no URL appears literally in the page.
    return blob.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("/", "\\/")


def completions_section(points: Sequence[PointCompletions]) -> str:
    """The section's HTML (heading, search box, one collapsed table per point, data, script)."""
    if not points:
        return "<h2>Completions</h2>\n<p>No completions in the store for this sweep.</p>"
    kept = sum(1 for p in points for c in p.completions if c.text is not None)
    total = sum(len(p.completions) for p in points)
    parts = [
        '<h2 id="completions">Completions</h2>',
        f"<p>{total} answers at {len(points)} points ({kept} with their text kept). Open a point to read its answers; "
        "the search looks in prompts, completions and keywords.</p>",
        '<p class="csearch"><input id="cq" type="search" placeholder="search prompts, completions, keywords" '
        'aria-label="search completions"> <label><input id="cj" type="checkbox"> not refused only</label> '
        '<span id="cn"></span></p>',
        "<noscript><p>Reading the completions here needs JavaScript; without it use "
        "<code>visage export DIR --completions --format csv</code>.</p></noscript>",
    ]
    for i, p in enumerate(points):
        again = (f'<p class="again">measure this point again (add --json for every verdict): '
                 f"<code>{html.escape(p.reproduce)}</code></p>") if p.reproduce else ""
        parts.append(f'<details class="cpoint" data-point="{i}"><summary>{html.escape(p.heading)}'
                     f'<span class="hits"></span></summary>{again}<table class="ctable"><thead>{_HEAD}</thead>'
                     "<tbody></tbody></table></details>")
    parts.append(f'<script type="application/json" id="completions-data">{_payload(points)}</script>')
    parts.append(f"<script>{_SCRIPT}</script>")
    return "\n".join(parts)
