"""``visage judge|rejudge|judges``: judge answers without generating them, and compare judges.

- ``judge --input FILE``: rows of prompt + completion (JSONL or CSV) judged by a server at theta0;
  one line per row, JSONL rows with ``--output FILE|-``, one JSON document with ``--json``.
- ``rejudge DIR``: a sweep's stored answers judged again by a server's judge (keyword, referee or
  classifier), kept beside the sweep's own verdicts (:mod:`safety_landscape.client.judging.rejudge`);
  prints the landscape under that judge. Resumes.
- ``judges DIR``: each pair of judges the store holds verdicts of (and ``--labels`` human labels):
  confusion matrix, agreement, Cohen's kappa, overall and (``--per-point``, always in JSON) per point.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .common import add_connection_args, connect, print_json, writes_to_stdout

if TYPE_CHECKING:
    from ..judging import Agreement
    from .common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    from ..judging.rejudge import JUDGE_KINDS

    p = sub.add_parser("judge", help="judge given answers (prompt + completion) at theta0, generating nothing",
                       description="Judge the rows of a JSONL or CSV file (prompt, completion, optional system_prompt): "
                                   "refusal, coherence by the server's referee, outcome, and the classifier's verdict "
                                   "with --judge classifier.")
    add_connection_args(p)
    p.add_argument("--input", required=True, type=Path, metavar="FILE", help="JSONL (one object a line) or .csv rows")
    p.add_argument("--output", metavar="FILE", help="write one JSONL row per answer here (- = stdout)")
    p.add_argument("--judge", choices=("keyword", "classifier"), default="keyword",
                   help="the deciding judge (default keyword; classifier: the server's --judge-model)")
    p.add_argument("--keyword", action="append", default=[], metavar="TEXT",
                   help="a refusal string (repeatable; replaces the paper's 29)")
    p.add_argument("--system-prompt", metavar="NAME|TEXT", help="for rows without system_prompt (default: the default preset)")
    p.add_argument("--chat-format", default="tokenizer", help="how the answers were prompted (default tokenizer)")
    p.add_argument("--max-new-tokens", type=int, default=0,
                   help="the answers' generation length; it picks the referee's calibration (default: the longest answer)")
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("rejudge", help="judge a sweep's stored answers again with another judge (nothing regenerated)",
                       description="Send the answers stored in DIR/results.sqlite to a server's judge and keep its "
                                   "verdicts beside the sweep's own (never replacing them); prints the landscape under "
                                   "that judge. Resumes where a stopped run left off.")
    p.add_argument("dir", type=Path, metavar="DIR", help="output folder of visage sweep")
    add_connection_args(p)
    p.add_argument("--judge", choices=JUDGE_KINDS, default="referee",
                   help="referee (complied = no refusal and coherent; needs a server of the sweep's model), keyword, "
                        "or classifier (the server's --judge-model). Default referee")
    p.add_argument("--sweep", help="which sweep of the store (default: every sweep)")
    p.add_argument("--keyword", action="append", default=None, metavar="TEXT",
                   help="a refusal string (repeatable; default: the sweep's own)")
    p.add_argument("--batch-size", type=int, default=None, help="answers per call (default: the server's limit)")
    p.set_defaults(func=cmd_rejudge)

    p = sub.add_parser("judges", help="how far the judges of a store (and human labels) agree: kappa, confusion",
                       description="For each pair of judges with verdicts on the same stored answers: the confusion "
                                   "matrix, agreement and Cohen's kappa, on success (did the attack work, by each "
                                   "judge's meaning) and on the outcome where both give one.")
    p.add_argument("dir", type=Path, metavar="DIR", help="output folder of visage sweep")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help='human labels, JSONL: {"key"|"point", "prompt_index", "label"} or {"prompt", "completion", "label"}')
    p.add_argument("--sweep", help="which sweep of the store (default: every sweep)")
    p.add_argument("--per-point", action="store_true", help="also one row per point (always in --json)")
    p.set_defaults(func=cmd_judges)


def _progress(what: str) -> Callable[[int, int], None]:
    shown = [-1]

    def show(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != shown[0]:
            shown[0] = tenth
            print(f"visage {what}: {done}/{total} answers", file=sys.stderr, flush=True)

    return show


def cmd_judge(args: argparse.Namespace) -> int:
    from ..errors import ValidationError
    from ..judging.given import judge_given, read_given

    if args.json and writes_to_stdout(args.output):
        raise ValidationError("--output - and --json both write to stdout: name an output file, or leave out one")
    if args.keyword and args.judge != "keyword":
        raise ValidationError("--keyword goes with --judge keyword")
    if args.max_new_tokens < 0:
        raise ValidationError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    rows = read_given(args.input, chat=args.chat_format, system=args.system_prompt)  # bad input fails before connecting
    with connect(args) as client:
        verdicts, judge, thresholds = judge_given(client, rows, judge=args.judge, keywords=args.keyword,
                                                  max_new_tokens=args.max_new_tokens, progress=_progress("judge"))
    counts = {name: sum(v.outcome == name for v in verdicts) for name in ("refused", "complied", "incoherent")}
    if args.output is not None:
        lines = "".join(json.dumps(v.to_dict()) + "\n" for v in verdicts)
        if writes_to_stdout(args.output):
            sys.stdout.write(lines)
            return 0
        Path(args.output).write_text(lines, encoding="utf-8")
    doc = {"judge": judge, "referee_thresholds": thresholds.id, "answers": len(verdicts), "outcomes": counts}
    if args.json:
        print_json({**doc, "output": args.output} if args.output else {**doc, "rows": [v.to_dict() for v in verdicts]})
        return 0
    if args.output is None:
        for v in verdicts:
            unsafe = "" if v.unsafe is None else f"  unsafe={'yes' if v.unsafe else 'no'}"
            print(f"{v.index:>5}  {v.outcome:<10}  refused={'yes' if v.refused else 'no'}  "
                  f"coherent={'yes' if v.coherent else 'no'}  nll={v.nll:.2f}  "
                  f"repetition={max(v.repeated_ngram_fraction, v.repeated_token_ngram_fraction):.2f}  "
                  f"run={max(v.longest_word_run, v.longest_token_run)}{unsafe}")
    print(f"{len(verdicts)} answers judged by {judge} (referee {thresholds.id}): "
          + ", ".join(f"{k} {n}" for k, n in counts.items()) + (f"; rows in {args.output}" if args.output else ""))
    return 0


def _store(args: argparse.Namespace) -> Path:
    from ..errors import ValidationError
    from ..store import STORE_NAME

    path = args.dir / STORE_NAME
    if not path.is_file():
        raise ValidationError(f"{path} does not exist: give the --out folder of a visage sweep")
    return Path(path)


def cmd_rejudge(args: argparse.Namespace) -> int:
    from ..errors import ValidationError
    from ..judging.rejudge import rejudge
    from ..store import ResultStore

    if args.batch_size is not None and args.batch_size < 1:
        raise ValidationError(f"--batch-size must be >= 1, got {args.batch_size}")
    path = _store(args)
    with ResultStore(path) as store, connect(args) as client:
        results = rejudge(store, client, kind=args.judge, sweep=args.sweep, keywords=args.keyword,
                          batch_size=args.batch_size, progress=_progress("rejudge"))
    if args.json:
        print_json({"store": str(path), "results": [r.to_dict() for r in results]})
        return 0
    for r in results:
        print(f"judge {r.judge.name} ({r.judge.server_judge}, referee {r.judge.referee or 'figures not kept'}): "
              f"{r.judged} answers judged now, {r.already_judged} already")
        for p in r.points:
            at = ", ".join(f"{c:+.3f}" for c in p.coords)
            rates = "" if p.complied is None else (f"  complied {100 * p.complied / p.total:5.1f} %  incoherent "
                                                   f"{100 * (p.incoherent or 0) / p.total:5.1f} %")
            print(f"  {p.series:<16} {at:>16}  n={p.total:<4} ASR {p.asr:5.1f} %{rates}")
    return 0


def _matrix(a: Agreement) -> str:
    width = max(len(c) for c in a.categories) + 2
    head = " " * width + "".join(f"{c:>{width}}" for c in a.categories)
    return "\n".join([head] + [f"{c:>{width}}" + "".join(f"{n:>{width}}" for n in row)
                               for c, row in zip(a.categories, a.matrix, strict=True)])


def _figures(a: Agreement) -> str:
    kappa = "undefined" if a.kappa is None else f"{a.kappa:.3f}"
    agreed = "-" if a.observed is None else f"{100 * a.observed:.1f} %"
    return f"n={a.n}  agreement {agreed}  kappa {kappa}"


def cmd_judges(args: argparse.Namespace) -> int:
    from ..errors import ValidationError
    from ..judging import VerdictTable, compare_judges, judges_of, read_labels, stored_answers
    from ..store import ResultStore

    path = _store(args)
    with ResultStore(path) as store:
        answers = stored_answers(store, args.sweep).answers
    labels = read_labels(args.labels, answers) if args.labels is not None else None
    with VerdictTable(path, create=False) as table:  # reading: a store never re-judged stays as it is
        judges = judges_of(answers, table, labels)
    pairs = compare_judges(judges, answers)
    if not pairs:
        raise ValidationError(f"{path} holds verdicts of {len(judges)} judge(s) on shared answers: judge them again "
                              "(visage rejudge) or give --labels to have a pair to compare")
    if args.json:
        print_json({"store": str(path), "judges": [{"name": j.name, "description": j.description,
                                                    "answers": len(j.success)} for j in judges],
                    "labels": None if labels is None else {"rows": labels.rows, "unmatched_rows": labels.unmatched_rows},
                    "pairs": [p.to_dict() for p in pairs]})
        return 0
    for j in judges:
        print(f"{j.name}: {j.description} ({len(j.success)} answers)")
    if labels is not None and labels.unmatched_rows:
        print(f"visage judges: note: {labels.unmatched_rows} of {labels.rows} label rows name no stored answer",
              file=sys.stderr)
    for p in pairs:
        print(f"\n{p.a} vs {p.b} on {p.scale}: {_figures(p.overall)}  (rows: {p.a}, columns: {p.b})")
        print(_matrix(p.overall))
        if args.per_point:
            for point in p.points:
                at = ", ".join(f"{c:+.3f}" for c in point.coords)
                print(f"  {point.series:<16} {at:>16}  {_figures(point.agreement)}")
    return 0

