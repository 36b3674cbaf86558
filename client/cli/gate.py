"""``visage gate CONFIG --server ... [--out DIR]``: the release gate for CI pipelines.

Exit codes: 0 every check passed, 1 a check failed, 2 the gate could not evaluate (unreachable
server, missing or invalid config or baseline, any error): never a pass by accident; 3 no check
failed but one is inconclusive (``[decision] mode = "interval"``: its 95 % interval straddles the threshold).
Writes gate.json, junit.xml and summary.md to ``--out`` (see docs/ci-gate.md).

``visage gate init [FILE]`` writes a commented config to start from (default gate.toml; ``-`` =
stdout; an existing file is never overwritten) and needs no server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_OK, STDOUT, add_connection_args, connect, output_folder, print_json

if TYPE_CHECKING:
    from ..client import Client
    from .common import Subparsers

__all__ = ["INIT", "register", "run"]

#: The CONFIG argument that writes a config to start from instead of running the gate.
INIT = "init"


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "gate",
        help="release gate: check VISAGE, ASR, over-refusal and drop vs a baseline against thresholds (exit 0/1/2)",
        description="Evaluate a candidate (the server's model, or a registry checkpoint) against the thresholds of a "
        "TOML config. Exit 0: pass, 1: a check failed, 2: could not evaluate, 3: inconclusive (interval mode). "
        "Writes gate.json, junit.xml, summary.md. `visage gate init [FILE]` writes a commented config to start from.",
    )
    p.add_argument("config", metavar="CONFIG", help="the gate's TOML config, or `init` to write one to start from")
    p.add_argument("init_file", nargs="?", metavar="FILE",
                   help="with init: the file to write (default gate.toml; - for stdout)")
    add_connection_args(p, many=True, required=False)
    p.add_argument("--out", default="visage-gate", metavar="DIR",
                   help="folder for gate.json, junit.xml, summary.md (default visage-gate)")
    p.add_argument("--baseline", default=None, metavar="FILE",
                   help="a previous gate.json or sweep summary.json (overrides [baseline] file)")
    p.add_argument("--checkpoint", default=None, metavar="NAME",
                   help="evaluate this registry checkpoint (overrides [candidate] checkpoint)")
    p.set_defaults(func=run)


def init(path: str | None, *, json: bool = False) -> int:
    """Write the shipped starter config to ``path`` (None: gate.toml; ``-``: stdout), never over a
    file; the path written is the result (stdout), what to do next goes to stderr."""
    from ..errors import ValidationError
    from ..examples import gate_text

    text = gate_text()
    if path == STDOUT:
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(path or "gate.toml")
    try:
        with target.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise ValidationError(f"{target} exists; remove it or name another file: visage gate init FILE") from None
    except OSError as exc:
        raise ValidationError(f"cannot write {target} ({exc.strerror or exc})") from None
    print_json({"config": str(target)}) if json else print(target)
    print(f"edit its [candidate] and [thresholds], then: visage gate {target} --server HOST:PORT", file=sys.stderr)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from ..errors import ValidationError
    from ..gate import EXIT_ERROR, run_gate

    if args.config == INIT:
        return init(args.init_file, json=getattr(args, "json", False))
    if args.init_file is not None:
        raise ValidationError(f"unrecognized argument {args.init_file!r}: FILE goes with `visage gate init FILE`")
    if not args.server:  # not required by the parser, so that `visage gate init` needs no server
        raise ValidationError("the following arguments are required: --server (or set VISAGE_SERVER)")

    def connect_one(target: str) -> Client:
        return connect(args, target)  # --wait: connect waits for the server to be SERVING

    try:
        code, doc = run_gate(args.config, connect_one, args.server, out_dir=output_folder(args.out),
                             baseline=args.baseline, checkpoint=args.checkpoint)
    except BaseException as exc:  # the last guard: never let an error look like a pass
        if isinstance(exc, KeyboardInterrupt):
            print("visage gate: interrupted", file=sys.stderr)
        else:
            print(f"visage gate: could not evaluate: {exc}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout still gets one document
            print_json({"verdict": "error", "exit_code": EXIT_ERROR, "error": str(exc) or type(exc).__name__})
        return EXIT_ERROR
    if getattr(args, "json", False):
        print_json({k: doc.get(k) for k in ("name", "verdict", "exit_code", "error", "checks", "attestation_sha256")})
    elif doc["verdict"] == "error":
        print(f"visage gate: could not evaluate (exit 2): {doc['error']}", file=sys.stderr)
    else:
        for c in doc["checks"]:
            word = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}.get(c.get("decision", ""), "FAIL")
            print(f"{word:<4}  {c['name']:<17} {c['message']}")
        print(f"verdict: {doc['verdict'].upper()} (exit {code}); reports in {args.out}/")
    return code
