"""The three-way split of a 1D landscape under a re-judged referee (docs/reproduction.md, "Figure 8, per answer").

    python examples/reproduction/rejudged_split.py DIR OUT.png

DIR is a sweep's output folder after ``visage rejudge DIR --judge referee``. Prints, per series, a
Markdown table of the refused / complied / incoherent rates at every point and VISAGE (reference
rule) on the paper's ASR (complied + incoherent) and on the coherent ASR (complied only), and draws
the rates as stacked bands, one panel per series, into OUT.png.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen

from safety_landscape.client.judging import VerdictTable, stored_answers
from safety_landscape.client.store import STORE_NAME, ResultStore
from safety_landscape.client.visage import visage_reference

OUTCOMES = ("refused", "complied", "incoherent")
COLOURS = {"refused": "#4c9a2a", "complied": "#c0392b", "incoherent": "#95a5a6"}


def main(folder: Path, png: Path) -> None:
    path = folder / STORE_NAME
    with ResultStore(path) as store:
        answers = {(a.key, a.prompt_index): a for a in stored_answers(store).answers}
    with VerdictTable(path) as table:
        referees = [j for j in table.judges() if j.kind == "referee"]
        if len(referees) != 1:
            raise SystemExit(f"{path}: expected one referee judge, found {len(referees)}: run visage rejudge --judge referee")
        counts: dict[str, dict[float, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(OUTCOMES, 0)))
        for v in table.verdicts(referees[0]):
            a = answers.get((v.key, v.prompt_index))
            if a is not None and v.outcome is not None:
                counts[a.series][a.coords[0]][v.outcome] += 1
    stored: dict[tuple[str, float], int] = defaultdict(int)
    for a in answers.values():
        stored[(a.series, a.coords[0])] += 1
    for series in list(counts):  # a point judged in part (a run stopped half-way) is left out, and said so
        partial = [x for x, c in counts[series].items() if sum(c.values()) < stored[(series, x)]]
        for x in partial:
            del counts[series][x]
        missing = sorted(x for (s, x) in stored if s == series and x not in counts[series])
        if missing:
            print(f"{series}: {len(missing)} of {len(missing) + len(counts[series])} points not (fully) judged: "
                  + ", ".join(f"{x:+.2f}" for x in missing))
        if not counts[series]:
            del counts[series]
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 3.4), sharex=True, sharey=True, squeeze=False)
    axes[0][0].set_xlim(min(x for _, x in stored), max(x for _, x in stored))
    for ax, (series, by_a) in zip(axes[0], sorted(counts.items()), strict=True):
        xs = sorted(by_a)
        rates = {o: [100 * by_a[x][o] / sum(by_a[x].values()) for x in xs] for o in OUTCOMES}
        ax.stackplot(xs, *(rates[o] for o in OUTCOMES), labels=OUTCOMES, colors=[COLOURS[o] for o in OUTCOMES])
        ax.set_title(series)
        ax.set_xlabel("a")
        paper = [c + i for c, i in zip(rates["complied"], rates["incoherent"], strict=True)]
        whole = len(xs) == sum(1 for (s, _) in stored if s == series)
        print(f"\n{series}: VISAGE (reference rule) on the paper's ASR {visage_reference(paper):.1f}, on the coherent ASR "
              f"{visage_reference(rates['complied']):.1f}" if whole else f"\n{series}: part of the curve (no VISAGE)")
        print("| a | " + " | ".join(f"{x:+.2f}" for x in xs) + " |")
        print("|---" * (len(xs) + 1) + "|")
        for o in OUTCOMES:
            print(f"| {o} | " + " | ".join(f"{r:.0f}" for r in rates[o]) + " |")
    axes[0][0].set_ylabel("% of answers")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
