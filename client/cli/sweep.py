"""``visage sweep|rescore|replot|report|export``: landscape sweeps and their outputs.

``visage sweep SPEC.toml|--preset quick|paper|paper-template --server H:P [--server ...] --out DIR`` writes
DIR/results.sqlite (every point, at once: Ctrl-C and re-run to resume), DIR/summary.json (VISAGE
under ``visage``), DIR/plots/ (PNG, SVG, PDF) and DIR/report.html. The other four commands work from
DIR/results.sqlite alone, without any server.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safety_landscape.common.names import CHAT_FORMATS, PAPER_FAMILIES, STREAMS, TIED_RULES

from ..examples import sweep_examples, sweep_text
from ..store import STORE_NAME
from .common import add_connection_args, connect, output_folder, print_json, writes_to_stdout

__all__ = ["register"]

if TYPE_CHECKING:
    from ..store import ResultStore
    from ..sweep.spec import SweepSpec
    from ..sweep.summary_doc import SweepSummary, VisageSummary
    from .common import Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("sweep", help="measure a safety landscape on one or many servers (resumable)",
                       description="Run a landscape sweep from a TOML spec or a preset; flags override the spec.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml",
                   help="a sweep spec (visage sweep --print-spec quick > quick.toml gives one to edit)")
    p.add_argument("--print-spec", action=_PrintSpec, metavar="NAME",
                   help="print a shipped spec as TOML to edit, then exit: " + ", ".join(sweep_examples()))
    p.add_argument("--preset", choices=("quick", "paper", "paper-template"),
                   help="quick: 1 direction x 7 points, mini sets, 48 tokens; paper: the reference's configuration "
                        "for --family (3 x 21 points, 512 tokens, the family's literal format and system prompt); "
                        "paper-template: the same landscape through the tokenizer's chat template. Both paper presets "
                        "need AdvBench (--prompts harmful_behaviors.csv or --set NAME)")
    p.add_argument("--family", choices=PAPER_FAMILIES,
                   help="--preset paper: the model family whose reference configuration to use (default llama2)")
    add_connection_args(p, many=True)
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="output folder (results.sqlite, summary.json, plots/, report.html)")
    overrides = p.add_argument_group("overrides (applied to the spec or preset)")
    _add_prompt_args(overrides)
    _add_capability_args(p.add_argument_group("capability at the same points (Score RPC, docs/method.md section 6)"))
    _add_grid_args(overrides)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--claim-ttl", type=float, default=30.0, metavar="SECONDS",
                   help="another sweep on the same --out takes over this one's claimed points this long after it "
                        "stops (crash, kill); default 30")
    p.set_defaults(func=cmd_sweep)
    _register_store_commands(sub)


class _PrintSpec(argparse.Action):
    """``--print-spec NAME``: print the shipped spec NAME (comments included) and exit, as ``--help`` does."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        names = sweep_examples()
        if values not in names:
            parser.error(f"--print-spec {values!r}: use one of {', '.join(names)}")
        sys.stdout.write(sweep_text(str(values)))
        parser.exit(0)


def _add_prompt_args(o: argparse._ArgumentGroup) -> None:
    o.add_argument("--name", help="sweep name in the store")
    src = o.add_mutually_exclusive_group()
    src.add_argument("--prompts", metavar="FILE", help="harmful prompts from a local file (sent inline)")
    src.add_argument("--set", metavar="NAME", help="harmful prompts: a set the server knows")
    o.add_argument("--column", metavar="NAME", help="the prompt column (CSV) or field (JSONL) of --prompts")
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


def _add_capability_args(c: argparse._ArgumentGroup) -> None:
    c.add_argument("--mc-file", metavar="FILE", help="MMLU-style questions (.csv or .jsonl): accuracy (%%) at every point")
    c.add_argument("--shots", type=int, metavar="K", help="the first K questions of --mc-file are the few-shot examples")
    c.add_argument("--mc-limit", type=int, metavar="N", help="score at most N questions (after the shots; 0 = all)")
    ppl = c.add_mutually_exclusive_group()
    ppl.add_argument("--perplexity-file", metavar="FILE",
                     help="texts (one per line, or JSONL with \"text\"): perplexity at every point")
    ppl.add_argument("--fluency", action="store_true", help="perplexity on the built-in fluency texts (20 short sentences)")
    c.add_argument("--mc-format", choices=("harness", "reference"),
                   help="MMLU prompt and letters: lm-evaluation-harness's (default) or the reference code's "
                        "(the paper preset's)")
    c.add_argument("--no-capability", action="store_true", help="drop the spec's [capability] table")


def _add_grid_args(o: argparse._ArgumentGroup) -> None:
    o.add_argument("--system-prompt", action="append", metavar="P",
                   help="preset name or text (repeatable; a preset lookalike or a single word is refused)")
    o.add_argument("--system-prompt-text", action="append", metavar="TEXT",
                   help="a custom system prompt taken as given, never read as a preset (repeatable)")
    o.add_argument("--chat-format", help=", ".join(CHAT_FORMATS))
    o.add_argument("--keyword", action="append", help="replace the refusal keywords (repeatable)")
    o.add_argument("--max-new-tokens", type=int)
    o.add_argument("--referee", action=argparse.BooleanOptionalAction, default=None,
                   help="the server's coherence referee (refused / complied / incoherent per answer; default on); "
                        "--no-referee: the ASR only, cheaper on a CPU; visage rejudge adds the outcomes later")
    o.add_argument("--directions", type=int, help="random directions (1D random)")
    o.add_argument("--points", type=int, help="points per random axis")
    o.add_argument("--range", type=float, nargs=2, metavar=("A", "B"), help="coefficient range of the random axes")
    o.add_argument("--stream", choices=STREAMS,
                   help="direction draws: the authors' exact CPU stream (reference), or per_tensor (much faster on a GPU)")
    o.add_argument("--seed", type=int, help="direction seed")
    o.add_argument("--tied", choices=TIED_RULES,
                   help="tied embeddings: perturbed once, or as the authors (a draw per name; reference stream)")
    o.add_argument("--points-per-call", type=int, help="grid points a server takes at once")
    o.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                   help="measure each series from its centre outward, skipping the broken plateau (ASR 100 %%, "
                        "assumed, not measured; docs/sweeps.md); --no-adaptive: the full grid")
    o.add_argument("--stop-after", type=int, metavar="K", help="adaptive: stop a side after K consecutive points "
                   "at 100 %% ASR (default 3)")
    o.add_argument("--edge-resolution", type=float, metavar="R", help="adaptive, 1D: bisect each basin edge off "
                   "the grid until it is at most R wide (default 0: no)")


def _register_store_commands(sub: Subparsers) -> None:
    for name, helptext, func in (
        ("rescore", "recompute DIR/summary.json (VISAGE, both rules) from the store", cmd_rescore),
        ("replot", "redraw DIR/plots/ from the store", cmd_replot),
        ("report", "rewrite DIR/report.html (plots, VISAGE table, settings) from the store", cmd_report),
        ("export", "export the points (or, with --completions, every answer) of DIR/results.sqlite", cmd_export),
    ):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("dir", type=Path, metavar="DIR", help="a sweep output folder")
        q.add_argument("--sweep", help="which sweep of the store (when it holds several)")
        if name == "export":
            q.add_argument("--format", choices=("json", "jsonl", "csv"), default="json")
            q.add_argument("--completions", action="store_true",
                           help="one row per point and prompt: verdict, keyword, tokens, finish reason, prompt, completion")
            q.add_argument("--output", metavar="FILE",
                           help="file to write, - for stdout (default DIR/points.FORMAT or DIR/completions.FORMAT)")
        q.set_defaults(func=func)


# Flags that set one key of the spec's TOML layout: flag (argparse dest) -> (table, key); "" = top level.
_FLAG_KEYS: dict[str, tuple[str, str]] = {
    "name": ("", "name"), "points_per_call": ("", "points_per_call"),
    "directions": ("grid", "directions"), "points": ("grid", "points"), "range": ("grid", "range"),
    "stream": ("direction", "stream"), "seed": ("direction", "seed"), "limit": ("prompts", "limit"),
    "system_prompt": ("evaluation", "system_prompts"), "system_prompt_text": ("evaluation", "system_prompt_texts"),
    "column": ("prompts", "column"), "chat_format": ("evaluation", "chat_format"),
    "keyword": ("evaluation", "keywords"), "max_new_tokens": ("generation", "max_new_tokens"),
    "referee": ("evaluation", "referee"),
    "benign_at": ("benign", "at"), "shots": ("capability", "shots"), "mc_limit": ("capability", "limit"),
    "mc_file": ("capability", "mc_file"), "mc_format": ("capability", "mc_format"), "tied": ("direction", "tied"),
    "family": ("", "family"), "adaptive": ("grid", "adaptive"), "stop_after": ("grid", "stop_after"),
    "edge_resolution": ("grid", "edge_resolution"),
}


def _base_terms(values: list[str]) -> list[dict[str, Any]]:
    """``--base TERM=COEF`` values as ``[[base]]`` tables."""
    from ..errors import ValidationError

    terms = []
    for value in values:
        term, sep, coef = value.rpartition("=")
        if not sep or not term:
            raise ValidationError(f"--base {value!r}: use TERM=COEF, e.g. interp:candidate=1.0")
        try:
            terms.append({"direction": term, "coefficient": float(coef)})
        except ValueError:
            raise ValidationError(f"--base {value!r}: {coef!r} is not a number") from None
    return terms


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, in the spec's TOML layout (what ``merge_spec_data`` lays over the spec)."""
    out: dict[str, Any] = {}

    def put(table: str, key: str, value: Any) -> None:
        if table:
            out.setdefault(table, {})[key] = value
        else:
            out[key] = value

    for flag, (table, key) in _FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None and value != []:
            put(table, key, list(value) if isinstance(value, (list, tuple)) else value)
    for flag, table, key, other in (("prompts", "prompts", "file", "set"), ("set", "prompts", "set", "file"),
                                    ("benign_prompts", "benign", "file", "set"), ("benign_set", "benign", "set", "file"),
                                    ("perplexity_file", "capability", "perplexity_file", "fluency")):
        if getattr(args, flag):  # one source replaces the other
            put(table, key, getattr(args, flag))
            put(table, other, False if other == "fluency" else "")
    if args.system_prompt_text and not args.system_prompt:  # texts alone replace the spec's system prompts
        put("evaluation", "system_prompts", [])
    if args.fluency:
        put("capability", "fluency", True)
        put("capability", "perplexity_file", "")
    if args.base:
        out["base"] = _base_terms(args.base)
    return out


def _spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The spec file (or preset) with the flags laid over it, validated once by the spec's rules."""
    from ..errors import ValidationError
    from ..sweep.spec import PRESETS, load_spec_data, merge_spec_data, preset, spec_from_dict

    if bool(args.spec) == bool(args.preset):
        raise ValidationError("give a SPEC.toml or --preset quick|paper|paper-template (one of them)")
    data = load_spec_data(args.spec) if args.spec else {"preset": args.preset}
    if args.no_benign:
        data = merge_spec_data(data, {"benign": None})
    if args.no_capability:
        data = merge_spec_data(data, {"capability": None})
    overrides = _overrides(args)
    if "at" in overrides.get("benign", {}) and "set" not in overrides["benign"] and "file" not in overrides["benign"]:
        start = preset(data["preset"]) if data.get("preset") in PRESETS else None
        if data.get("benign", start.benign if start else None) is None:
            raise ValidationError("--benign-at: there is no benign set (give --benign-set or --benign-prompts)")
    return spec_from_dict(merge_spec_data(data, overrides))


def _visage_lines(visage: VisageSummary, regions: Mapping[str, float]) -> list[str]:
    lines = []
    for series, v in visage.series.items():
        ref = "-" if v.reference is None else f"{v.reference:.2f}"
        region = f"  safety region {regions[series]:.2f}" if series in regions else ""
        exp = "-" if v.expectation is None else f"{v.expectation:.2f}"
        lines.append(f"  {series:32s} reference {ref:>7s}  expectation {exp}{region}")
    for label, spreads in visage.by_system_prompt.items():
        parts = [f"{rule} {e.mean:.2f}" + ("" if e.std is None else f" ± {e.std:.2f}") + f" (n={e.n}"
                 + (f", 95% CI {e.ci95[0]:.2f} to {e.ci95[1]:.2f})" if e.ci95 else ")") for rule, e in spreads.items()]
        lines.append(f"  mean | {label:25s} " + "; ".join(parts))
    return lines


def _coherent_visage(summary: SweepSummary) -> dict[str, Any] | None:
    """VISAGE of the coherent ASR as JSON (None: not measured)."""
    coherent = summary.by_outcome().visage
    return coherent.to_json() if coherent is not None else None


def _print_visage(summary: SweepSummary) -> None:
    """VISAGE of the paper's ASR, then of the coherent ASR (or why it is not measured)."""
    from ..sweep.summary_doc import NOT_MEASURED

    print("VISAGE (ASR; higher is safer):")
    print("\n".join(_visage_lines(summary.visage, summary.safety_region.series)) or "  (no complete series)")
    outcomes = summary.by_outcome()
    if outcomes.visage is None:
        print(f"{NOT_MEASURED}" + (f" ({outcomes.reason})" if outcomes.reason else ""))
        return
    print("VISAGE (coherent ASR: jailbroken and coherent answers only; higher is safer):")
    print("\n".join(_visage_lines(outcomes.visage, {})) or "  (no complete series)")
    if outcomes.not_measured:
        print(f"  {NOT_MEASURED} for {', '.join(outcomes.not_measured)} ({outcomes.reason})")


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..store import ResultStore
    from ..sweep.fleet import Fleet
    from ..sweep.output_folder import write_outputs
    from ..sweep.runner import run_sweep
    from ..sweep.summary_doc import WORST_CASE_MEANING, SweepSummary

    spec = _spec_from_args(args)
    output_folder(args.out).mkdir(parents=True, exist_ok=True)
    with ResultStore(args.out / STORE_NAME) as store:
        with Fleet.connect(args.server, lambda target: connect(args, target)) as fleet:
            result = run_sweep(spec, store, fleet=fleet, bar=False if args.no_progress else None, timeout=args.timeout,
                               claim_ttl=args.claim_ttl)
        paths = write_outputs(args.out, store, spec.name)
    summary = SweepSummary.from_json(json.loads(paths["summary"].read_text(encoding="utf-8")))  # no second bootstrap
    if args.json:
        adaptive = summary.adaptive.to_json() if summary.adaptive is not None else None
        print_json({"sweep": spec.name, "servers": [s.target for s in result.servers], "evaluated": result.evaluated,
                    "written": result.written, "reused": result.reused, "elsewhere": result.elsewhere,
                    "seconds": result.seconds, "visage": summary.visage.to_json(), "adaptive": adaptive,
                    "visage_coherent_asr": _coherent_visage(summary),
                    "summary": str(paths["summary"]), "report": str(paths["report"]),
                    "plots": [str(p) for p in paths["plots"]]})
        return 0
    shared = f", {result.elsewhere} done by another client" if result.elsewhere else ""
    print(f"sweep {spec.name!r} on {len(result.servers)} server(s): {result.evaluated} evaluations, "
          f"{result.written} points written, {result.reused} reused{shared}, {result.seconds:.1f} s")
    if summary.adaptive is not None:
        print(f"adaptive: {summary.adaptive.evaluated} of {summary.adaptive.grid_points} grid points measured; "
              f"{summary.adaptive.assumption}")
        worst = summary.adaptive.worst_case_lines()
        if worst:
            print(f"worst case of the assumption, {WORST_CASE_MEANING}:")
            print("\n".join(f"  {line}" for line in worst))
    _print_visage(summary)
    for metric, series in summary.capability.series.items():
        for name, v in series.items():
            origin = "-" if v.origin is None else f"{v.origin:.2f}"
            print(f"{metric} {name}: origin {origin}, min {v.min:.2f}, max {v.max:.2f}")
    print(f"summary: {paths['summary']}\nreport:  {paths['report']}")
    png = [p for p in paths["plots"] if p.suffix == ".png"]
    if png:
        print(f"plots:   {png[0].parent}/ ({len(png)} PNG, with SVG and PDF)")
    return 0


def _open(args: argparse.Namespace) -> ResultStore:
    from ..errors import ValidationError
    from ..store import ResultStore

    path = args.dir / STORE_NAME
    if not path.is_file():
        raise ValidationError(f"{path} does not exist: give the --out folder of a visage sweep")
    return ResultStore(path)


def cmd_rescore(args: argparse.Namespace) -> int:
    from ..sweep.stored import load_sweep
    from ..sweep.summary import sweep_summary, write_summary

    with _open(args) as store:
        data = load_sweep(store, args.sweep)
        summary = sweep_summary(data)
        path = write_summary(args.dir, data, summary)
    if args.json:
        print_json({"summary": str(path), "visage": summary.visage.to_json(),
                    "visage_coherent_asr": _coherent_visage(summary)})
    else:
        _print_visage(summary)
        print(f"summary: {path}")
    return 0


def cmd_replot(args: argparse.Namespace) -> int:
    from ..sweep.figures import write_plots
    from ..sweep.stored import load_sweep

    with _open(args) as store:
        paths = write_plots(args.dir, load_sweep(store, args.sweep))
    if args.json:
        print_json({"plots": [str(p) for p in paths]})
    else:
        print("\n".join(str(p) for p in paths))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..sweep.figures import write_plots
    from ..sweep.output_folder import write_sweep_report
    from ..sweep.stored import load_sweep

    with _open(args) as store:
        data = load_sweep(store, args.sweep)
        plots = sorted((args.dir / "plots").glob("*.png")) if (args.dir / "plots").is_dir() else []
        path = write_sweep_report(args.dir, data, plots or write_plots(args.dir, data), store=store)
    print_json({"report": str(path)}) if args.json else print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export
    from ..sweep.stored import pick_sweep

    with _open(args) as store:
        name = pick_sweep(store, args.sweep) if args.sweep else None  # default: every point of the store
        out = args.output or args.dir / f"{'completions' if args.completions else 'points'}.{args.format}"
        path = export(store, out, fmt=args.format, sweep=name, completions=args.completions)
    if writes_to_stdout(path):  # stdout carries the export alone
        return 0
    print_json({"export": path}) if args.json else print(path)
    return 0

