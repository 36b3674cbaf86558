"""``visage``: the command line over the client library.

Thin by design: parse, build a request with the library's builders, call, print (text, or JSON
with ``--json``). Heavy imports happen after parsing, so ``--help`` is instant. The command
families (:mod:`.basic`, :mod:`.sweep`, :mod:`.compare`, :mod:`.gate`, :mod:`.candidate`, :mod:`.judge`)
each register their subcommands; what they share is :mod:`.common`, below them. ``main`` is the ``visage`` console
script (``python -m safety_landscape.client.cli`` runs it too).

Habits every command keeps: ``--json`` and ``-v`` work before or after the command; stdout
carries only the result (one JSON document with ``--json``, integers as JSON numbers), while
logs, retry and failover warnings and progress go to stderr; ``--wait SECONDS`` (every command
that talks to a server) waits for a server that is still loading; an output file named ``-`` is
stdout.

Exit codes: 0 success; 1 the server refused or failed (the message says why); 2 bad usage or setup
(a flag, a value, a file, a token); 130 interrupted. A failure is one line on stderr, never a
traceback, and with ``--json`` one JSON document on stdout (:mod:`.failures`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import basic, candidate, compare, gate, judge, sweep
from .common import EXIT_OK, EXIT_USAGE, message_to_dict
from .failures import CommandParser, report_failure, stdout_closed, wants_json

__all__ = ["COMMAND_MODULES", "build_parser", "main", "message_to_dict"]

#: The command families, in the order ``visage --help`` lists them: each has ``register(subparsers)``.
COMMAND_MODULES = (basic, sweep, compare, gate, candidate, judge)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(  # its subcommand parsers too: no flag prefixes, unknown flags named, errors raised
        prog="visage",
        description="Measure how close a language model sits to the edge of its safety basin: talk to a "
        "visage-server, evaluate attack success at perturbed weights, sweep landscapes, score VISAGE, gate releases.",
    )
    from safety_landscape import __version__

    parser.add_argument("--version", action="version", version=f"visage {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output (before or after the command)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and progress details (stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    _global_flags_after_commands(parser)
    return parser


def _global_flags_after_commands(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``-v`` also after a (sub)command; SUPPRESS keeps a value given before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                     help="machine-readable output")
                command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                     help="log retries and progress details (stderr)")
                _global_flags_after_commands(command)


class _StderrLogger:
    """structlog's output: each line to the *current* ``sys.stderr`` (never stdout, which is for results)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _log_to_stderr(verbose: bool) -> None:
    """Logs and warnings (structlog's and the standard library's) go to stderr; -v shows info too."""
    import logging

    import structlog

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="%H:%M:%S"),
                    structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(given)
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(given)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        _log_to_stderr(args.verbose)
        return int(args.func(args) or EXIT_OK)
    except BrokenPipeError:  # the reader of stdout stopped early (| head): what it read is what it asked for
        stdout_closed()
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:  # one line and the documented exit code, never a traceback
        command = getattr(args, "command", None) or next((a for a in given if a in parser_commands(parser)), None)
        return report_failure(exc, args=args, as_json=as_json, gate=command == "gate")


def parser_commands(parser: argparse.ArgumentParser) -> set[str]:
    """The top-level command names."""
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}
