"""``visage sweep|rescore|replot|report|export``: landscape sweeps and their outputs.

``visage sweep SPEC.toml|--preset quick|paper --server H:P [--server ...] --out DIR`` writes
DIR/results.sqlite (every point, at once: Ctrl-C and re-run to resume), DIR/summary.json (VISAGE
under ``visage``), DIR/plots/ (PNG + SVG) and DIR/report.html. The other four commands work from
DIR/results.sqlite alone, without any server.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .cli import add_connection_args, connect, print_json

STORE_NAME = "results.sqlite"


def register(sub) -> None:
    p = sub.add_parser("sweep", help="measure a safety landscape on one or many servers (resumable)",
                       description="Run a landscape sweep from a TOML spec or a preset; flags override the spec.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="a sweep spec (see examples/sweeps/)")
    p.add_argument("--preset", choices=("quick", "paper"),
                   help="quick: 1 direction x 7 points, mini sets, 48 tokens; paper: METHOD.md's 3 x 21 points, "
                        "512 tokens, needs AdvBench (--prompts harmful_behaviors.csv or --set NAME)")
    add_connection_args(p, many=True)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (results.sqlite, summary.json, plots/, report.html)")
    o = p.add_argument_group("overrides (applied to the spec or preset)")
    o.add_argument("--name", help="sweep name in the store")
    src = o.add_mutually_exclusive_group()
    src.add_argument("--prompts", metavar="FILE", help="harmful prompts from a local file (sent inline)")
    src.add_argument("--set", metavar="NAME", help="harmful prompts: a set the server knows")
    o.add_argument("--limit", type=int, help="only the first N harmful prompts (0 = all)")
    ben = o.add_mutually_exclusive_group()
    ben.add_argument("--benign-set", metavar="NAME", help="benign prompts (over-refusal) from a server set")
    ben.add_argument("--benign-prompts", metavar="FILE", help="benign prompts from a local file")
    ben.add_argument("--no-benign", action="store_true", help="skip the over-refusal landscape")
    o.add_argument("--benign-at", choices=("all", "origin"),
                   help="judge the benign prompts at every point (all) or only at the origin/candidate (origin)")
    o.add_argument("--base", action="append", metavar="TERM=COEF",
                   help="a fixed term added to every point (repeatable): interp:NAME=1.0 (a registry checkpoint), "
                        "adapter:NAME=C or seed:N=C; replaces the spec's [[base]]")
    c = p.add_argument_group("capability at the same points (Score RPC, METHOD.md section 6)")
    c.add_argument("--mc-file", metavar="FILE", help="MMLU-style questions (.csv or .jsonl): accuracy (%%) at every point")
    c.add_argument("--shots", type=int, metavar="K", help="the first K questions of --mc-file are the few-shot examples")
    c.add_argument("--mc-limit", type=int, metavar="N", help="score at most N questions (after the shots; 0 = all)")
    ppl = c.add_mutually_exclusive_group()
    ppl.add_argument("--perplexity-file", metavar="FILE", help="texts (one per line, or JSONL with \"text\"): perplexity at every point")
    ppl.add_argument("--fluency", action="store_true", help="perplexity on the built-in fluency texts (20 short sentences)")
    c.add_argument("--no-capability", action="store_true", help="drop the spec's [capability] table")
    o.add_argument("--system-prompt", action="append", metavar="P", help="preset name or text (repeatable)")
    o.add_argument("--chat-format", help="tokenizer, none, llama2, vicuna, mistral, llama3")
    o.add_argument("--keyword", action="append", help="replace the refusal keywords (repeatable)")
    o.add_argument("--max-new-tokens", type=int)
    o.add_argument("--directions", type=int, help="random directions (1D random)")
    o.add_argument("--points", type=int, help="points per random axis")
    o.add_argument("--range", type=float, nargs=2, metavar=("A", "B"), help="coefficient range of the random axes")
    o.add_argument("--stream", choices=("reference", "per_tensor"),
                   help="direction draws: the authors' exact CPU stream, or per_tensor (much faster on a GPU)")
    o.add_argument("--seed", type=int, help="direction seed")
    o.add_argument("--points-per-call", type=int, help="grid points a server takes at once")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_sweep)

    for name, helptext, func in (
        ("rescore", "recompute DIR/summary.json (VISAGE, both rules) from the store", cmd_rescore),
        ("replot", "redraw DIR/plots/ from the store", cmd_replot),
        ("report", "rewrite DIR/report.html (plots, VISAGE table, settings) from the store", cmd_report),
        ("export", "export the points of DIR/results.sqlite as JSON or CSV", cmd_export),
    ):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("dir", type=Path, metavar="DIR", help="a sweep output folder")
        q.add_argument("--sweep", help="which sweep of the store (when it holds several)")
        if name == "export":
            q.add_argument("--format", choices=("json", "csv"), default="json")
            q.add_argument("--output", type=Path, help="file to write (default DIR/points.json|csv)")
        q.set_defaults(func=func)


def _spec_from_args(args: argparse.Namespace):
    from .errors import ValidationError
    from .sweep.spec import BaseTerm, Capability, PromptSource, load_spec, preset, validate

    if bool(args.spec) == bool(args.preset):
        raise ValidationError("give a SPEC.toml or --preset quick|paper (one of them)")
    spec = load_spec(args.spec) if args.spec else preset(args.preset)
    changes: dict = {}
    grid = spec.grid
    if args.directions is not None:
        grid = dataclasses.replace(grid, directions=args.directions)
    if args.points is not None:
        grid = dataclasses.replace(grid, points=args.points)
    if args.range is not None:
        grid = dataclasses.replace(grid, range=tuple(args.range))
    changes["grid"] = grid
    prompts = spec.prompts
    if args.prompts:
        prompts = dataclasses.replace(prompts, file=args.prompts, set="")
    if args.set:
        prompts = dataclasses.replace(prompts, set=args.set, file="")
    if args.limit is not None:
        prompts = dataclasses.replace(prompts, limit=args.limit)
    changes["prompts"] = prompts
    if args.no_benign:
        changes["benign"] = None
    elif args.benign_set or args.benign_prompts:
        base = spec.benign or PromptSource()
        changes["benign"] = dataclasses.replace(base, set=args.benign_set or "", file=args.benign_prompts or "")
    if args.benign_at:
        if changes.get("benign", spec.benign) is None:
            raise ValidationError("--benign-at: there is no benign set (give --benign-set or --benign-prompts)")
        changes["benign"] = dataclasses.replace(changes.get("benign", spec.benign), at=args.benign_at)
    if args.base:
        terms = []
        for value in args.base:
            term, sep, coef = value.rpartition("=")
            if not sep or not term:
                raise ValidationError(f"--base {value!r}: use TERM=COEF, e.g. interp:candidate=1.0")
            try:
                terms.append(BaseTerm(term, float(coef)))
            except ValueError:
                raise ValidationError(f"--base {value!r}: {coef!r} is not a number") from None
        changes["base"] = tuple(terms)
    cap = None if args.no_capability else spec.capability
    if args.mc_file or args.perplexity_file or args.fluency or args.shots is not None or args.mc_limit is not None:
        cap = cap or Capability()
        if args.mc_file:
            cap = dataclasses.replace(cap, mc_file=args.mc_file)
        if args.shots is not None:
            cap = dataclasses.replace(cap, shots=args.shots)
        if args.mc_limit is not None:
            cap = dataclasses.replace(cap, limit=args.mc_limit)
        if args.perplexity_file:
            cap = dataclasses.replace(cap, perplexity_file=args.perplexity_file, fluency=False)
        if args.fluency:
            cap = dataclasses.replace(cap, fluency=True, perplexity_file="")
    changes["capability"] = cap
    direction = spec.direction
    if args.stream:
        direction = dataclasses.replace(direction, stream=args.stream)
    if args.seed is not None:
        direction = dataclasses.replace(direction, seed=args.seed)
    changes["direction"] = direction
    for flag, fieldname in (("name", "name"), ("chat_format", "chat_format"), ("max_new_tokens", "max_new_tokens"),
                            ("points_per_call", "points_per_call")):
        if getattr(args, flag) is not None:
            changes[fieldname] = getattr(args, flag)
    if args.system_prompt:
        changes["system_prompts"] = tuple(args.system_prompt)
    if args.keyword:
        changes["keywords"] = tuple(args.keyword)
    return validate(dataclasses.replace(spec, **changes))


def _visage_lines(summary: dict) -> list[str]:
    lines = []
    for series, v in summary["visage"]["series"].items():
        ref = "-" if v["reference"] is None else f"{v['reference']:.2f}"
        lines.append(f"  {series:32s} reference {ref:>7s}  expectation {v['expectation']:.2f}")
    for label, entry in summary["visage"]["by_system_prompt"].items():
        parts = [f"{rule} {e['mean']:.2f} ± {e['std']:.2f} (n={e['n']})" for rule, e in entry.items()]
        lines.append(f"  mean | {label:25s} " + "; ".join(parts))
    return lines


def cmd_sweep(args: argparse.Namespace) -> int:
    from .store import ResultStore
    from .sweep.fleet import Fleet
    from .sweep.runner import run_sweep
    from .sweep.summary import load_sweep, summarize_sweep, write_outputs

    spec = _spec_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with ResultStore(args.out / STORE_NAME) as store:
        with Fleet.connect(args.server, lambda target: connect(args, target)) as fleet:
            result = run_sweep(spec, store, fleet=fleet, bar=False if args.no_progress else None, timeout=args.timeout)
        paths = write_outputs(args.out, store, spec.name)
        summary = summarize_sweep(load_sweep(store, spec.name))
    if args.json:
        print_json({"sweep": spec.name, "servers": [s.target for s in result.servers], "evaluated": result.evaluated,
                    "written": result.written, "reused": result.reused, "seconds": result.seconds,
                    "visage": summary["visage"], "summary": str(paths["summary"]), "report": str(paths["report"]),
                    "plots": [str(p) for p in paths["plots"]]})
        return 0
    print(f"sweep {spec.name!r} on {len(result.servers)} server(s): {result.evaluated} evaluations, "
          f"{result.written} points written, {result.reused} reused, {result.seconds:.1f} s")
    print("VISAGE (ASR; higher is safer):")
    print("\n".join(_visage_lines(summary)) or "  (no complete series)")
    for metric, series in summary["capability"]["series"].items():
        for name, v in series.items():
            origin = "-" if v["origin"] is None else f"{v['origin']:.2f}"
            print(f"{metric} {name}: origin {origin}, min {v['min']:.2f}, max {v['max']:.2f}")
    print(f"summary: {paths['summary']}\nreport:  {paths['report']}")
    png = [p for p in paths["plots"] if p.suffix == ".png"]
    if png:
        print(f"plots:   {png[0].parent}/ ({len(png)} PNG + SVG)")
    return 0


def _open(args: argparse.Namespace):
    from .errors import ValidationError
    from .store import ResultStore

    path = args.dir / STORE_NAME
    if not path.is_file():
        raise ValidationError(f"{path} does not exist: give the --out folder of a visage sweep")
    return ResultStore(path)


def cmd_rescore(args: argparse.Namespace) -> int:
    from .sweep.summary import load_sweep, summarize_sweep, write_summary

    with _open(args) as store:
        data = load_sweep(store, args.sweep)
        path = write_summary(args.dir, data)
        summary = summarize_sweep(data)
    if args.json:
        print_json({"summary": str(path), "visage": summary["visage"]})
    else:
        print("\n".join(_visage_lines(summary)) or "  (no complete series)")
        print(f"summary: {path}")
    return 0


def cmd_replot(args: argparse.Namespace) -> int:
    from .sweep.summary import load_sweep, write_plots

    with _open(args) as store:
        paths = write_plots(args.dir, load_sweep(store, args.sweep))
    if args.json:
        print_json({"plots": [str(p) for p in paths]})
    else:
        print("\n".join(str(p) for p in paths))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .sweep.summary import load_sweep, write_plots, write_sweep_report

    with _open(args) as store:
        data = load_sweep(store, args.sweep)
        plots = sorted((args.dir / "plots").glob("*.png")) if (args.dir / "plots").is_dir() else []
        path = write_sweep_report(args.dir, data, plots or write_plots(args.dir, data))
    print_json({"report": str(path)}) if args.json else print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .sweep.summary import pick_sweep

    with _open(args) as store:
        name = pick_sweep(store, args.sweep) if args.sweep else None  # default: every point of the store
        out = args.output or args.dir / f"points.{args.format}"
        path = store.export_json(out, name) if args.format == "json" else store.export_csv(out, name)
    print_json({"export": str(path)}) if args.json else print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
