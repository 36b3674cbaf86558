"""How a ``visage`` command fails: one line on stderr that says what to do, the documented exit
code, and, with ``--json``, one JSON document on stdout; never a traceback (``-v`` adds it for a bug).

Exit codes (docs/sweeps.md, "Scripts, CI and notebooks"): 0 success; 1 the server refused or
failed the work (or could not be reached, or the servers disagree); 2 bad usage or setup: a flag,
a value, a file, a store bound to another model, a token that is missing or refused; 130
interrupted. The gate keeps its own (0 pass, 1 fail, 2 could not evaluate, 3 inconclusive) and
writes its own JSON document; a usage error of the gate's command line gets the gate's
``"verdict": "error"`` too. A reader that stops early (``visage info | head -2``) is no error.

The JSON document of a failure: ``{"error": "<the line>", "exit_code": N}`` (the gate's adds
``"verdict": "error"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from safety_landscape.common.command_line import StrictArgumentParser

from .common import EXIT_FAILED, EXIT_USAGE, print_json

__all__ = ["EXIT_INTERRUPTED", "CommandParser", "UsageError", "exit_code_of", "message_of", "report_failure",
           "stdout_closed", "token_advice", "wants_json"]

EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line argparse refused: the parser's usage line and the message."""

    def __init__(self, prog: str, usage: str, message: str) -> None:
        super().__init__(message)
        self.prog, self.usage, self.message = prog, usage, message


class CommandParser(StrictArgumentParser):
    """``visage``'s parser (its subcommand parsers too): a usage error is raised as a
    :class:`UsageError`, so that ``main`` reports it like any other failure (``--json`` included)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, self.format_usage(), self.explain(message))


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (read before parsing: a usage error answers in JSON too)."""
    given = list(argv)
    return "--json" in (given[:given.index("--")] if "--" in given else given)


def _token_given(args: argparse.Namespace | None) -> bool:
    return bool(getattr(args, "token", None) or getattr(args, "token_file", None)
                or os.environ.get("VISAGE_TOKEN", "").strip() or os.environ.get("VISAGE_TOKEN_FILE", "").strip())


def token_advice(details: str, args: argparse.Namespace | None) -> str:
    """What to do when a server answered UNAUTHENTICATED: the token was refused, or none was sent.
    ``details`` is the server's answer, after the server's address where the command knows it."""
    if _token_given(args):
        return (f"the server refused the token ({details}): it is not a token this server knows. Give the token "
                "its operator issued to you (--token-file FILE, --token, VISAGE_TOKEN or VISAGE_TOKEN_FILE; "
                "--token wins over the others), with no other text in the file")
    server = details.split(": ", 1)[0] if ": " in details else "the server"
    return (f"{server} requires a bearer token and none was given: give the one its operator issued to you "
            "with --token-file FILE (or --token, VISAGE_TOKEN, VISAGE_TOKEN_FILE)")


def exit_code_of(exc: BaseException) -> int:
    """The documented exit code of a command that raised ``exc``."""
    from ..errors import RpcFailed, UnauthenticatedError, ValidationError, VisageError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (UsageError, ValidationError, UnauthenticatedError)):
        return EXIT_USAGE
    if isinstance(exc, (RpcFailed, VisageError)):
        return EXIT_FAILED
    if isinstance(exc, OSError):  # a path the command could not read or write
        return EXIT_USAGE
    return EXIT_FAILED


def message_of(exc: BaseException, args: argparse.Namespace | None) -> str:
    """The one line that says what went wrong and what to do."""
    from ..errors import UnauthenticatedError, VisageError

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, UsageError):
        return exc.message
    if isinstance(exc, UnauthenticatedError):
        target = getattr(args, "server", None)
        where = f"{target}: " if isinstance(target, str) and target not in exc.details else ""
        return token_advice(where + exc.details, args)
    if isinstance(exc, VisageError):
        return str(exc)
    if isinstance(exc, OSError):
        path = f"{exc.filename}: " if exc.filename else ""
        return f"{path}{exc.strerror or exc}: check the path and its permissions"
    return (f"internal error ({type(exc).__name__}: {exc}); this is a bug: please report it with the command "
            "(-v prints the traceback)")


def report_failure(exc: BaseException, *, args: argparse.Namespace | None, as_json: bool, gate: bool) -> int:
    """Tell the user (stderr, and stdout with ``--json``) and return the exit code."""
    code, message = exit_code_of(exc), message_of(exc, args)
    if isinstance(exc, UsageError):
        sys.stderr.write(exc.usage)
        print(f"{exc.prog}: error: {message}", file=sys.stderr)
    else:
        print(f"visage: {message}", file=sys.stderr)
    if getattr(args, "verbose", False) and not isinstance(exc, (UsageError, KeyboardInterrupt)):
        traceback.print_exception(exc, file=sys.stderr)
    if as_json:
        doc: dict[str, Any] = {"error": message, "exit_code": code}
        if gate:
            doc["verdict"] = "error"
        print_json(doc)
    return code


def stdout_closed() -> None:
    """The reader of stdout went away (``| head``): send what is left to /dev/null, so Python's
    flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
