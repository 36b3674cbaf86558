"""``visage compare DIR1 DIR2 ... --out DIR``: several sweeps (models, checkpoints) on one page.

Reads each DIR/results.sqlite (no server), writes the comparison figures, table and report.html
of :mod:`.compare` into ``--out``, and prints the table (or, with ``--json``, the paths and rows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import output_folder, print_json

if TYPE_CHECKING:
    from .common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("compare", help="put several sweeps (models, checkpoints) on one figure, table and report",
                       description="Compare sweeps measured the same way: ASR curves with 95 %% bands, VISAGE bars "
                                   "with intervals, a Table-1-style table, report.html.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="output folders of visage sweep (two or more)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the figures, table and report.html")
    p.add_argument("--label", action="append", default=[], metavar="NAME",
                   help="a name for each DIR, in order (default: its model's name)")
    p.add_argument("--sweep", help="which sweep of each store (when a store holds several)")
    p.add_argument("--format", action="append", choices=("png", "svg", "pdf"), dest="formats",
                   help="figure formats (repeatable; default all three)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..compare import load_run, write_comparison
    from ..errors import ValidationError
    from ..plots import FIGURE_FORMATS

    if args.label and len(args.label) != len(args.dirs):
        raise ValidationError(f"--label: give one per DIR ({len(args.dirs)}), got {len(args.label)}")
    out = output_folder(args.out)
    labels = args.label or [None] * len(args.dirs)
    runs = [load_run(folder, name=label, sweep=args.sweep) for folder, label in zip(args.dirs, labels, strict=True)]
    result = write_comparison(runs, out, formats=tuple(dict.fromkeys(args.formats or FIGURE_FORMATS)))
    if args.json:  # (the notes on what differs are in the JSON; stderr gets them in text mode)
        print_json({"report": str(result.report), "table": str(result.table), "csv": str(result.csv),
                    "figures": [str(p) for p in result.figures], "rows": result.rows, "warnings": result.warnings})
        return 0
    for row in result.rows:
        cells = [f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                 if v not in (None, "") and k != "model"]
        print(f"{row['model']}: " + "; ".join(cells))
    for warning in result.warnings:
        print(f"visage compare: note: {warning}", file=sys.stderr)
    print(f"report:  {result.report}\nfigures: {args.out}/ ({len(result.figures)} files)")
    return 0
