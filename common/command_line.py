"""The command lines' argument parser: a flag is read only as written, and an unknown one is named.

argparse, left to its defaults, takes any unique prefix of a flag for the flag (``--port`` is read
as ``--port-file``, ``--max-new-token`` as ``--max-new-tokens``), and reports a mistyped flag as
the missing flag it was meant to be (``--sever HOST`` gives "the following arguments are
required: --server"). Both read a command line other than the user wrote, or blame the wrong
word. :class:`StrictArgumentParser` turns prefixes off, in itself and in every subcommand parser it
makes (``add_subparsers`` gives them its class), and when it reports an error it first names the
first flag of its own arguments it does not know, with the closest flag it does know::

    visage info: error: unknown flag --sever (did you mean --server?)

Plain Python (the standard library only): ``visage``, ``visage-server``, bench/ and recipes/ use it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["StrictArgumentParser", "unknown_flag_message"]


def unknown_flag_message(flag: str, known: Sequence[str], prog: str) -> str:
    """``unknown flag --sever (did you mean --server?)``, or the pointer to ``--help``."""
    close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--") == flag.startswith("--")], n=1)
    hint = f"did you mean {close[0]}?" if close else f"{prog} --help lists its flags"
    return f"unknown flag {flag} ({hint})"


class StrictArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that never reads a prefix of a flag as the flag (``allow_abbrev`` is
    always off) and reports an unknown flag by name, with "did you mean", before any other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, except that a flag it does not know is an error here, reported with this
        parser's usage (a subcommand's own), not left over for the caller: only stray values are."""
        self._given = list(sys.argv[1:] if args is None else args)  # what error() looks at
        parsed, extras = super().parse_known_args(args, namespace)
        flag = self._first_unknown(extras, stop_at_commands=False)
        if flag is not None:
            self.error(unknown_flag_message(flag, list(self._option_string_actions), self.prog))
        return parsed, extras

    def unknown_flag(self) -> str | None:
        """The first flag of this parser's own arguments (up to its subcommand, if it has one) that
        it does not know, None if every flag is known."""
        return self._first_unknown(self._given, stop_at_commands=True)

    def _first_unknown(self, tokens: Sequence[str], *, stop_at_commands: bool) -> str | None:
        commands = {name for action in self._actions if isinstance(action, argparse._SubParsersAction)
                    for name in action.choices} if stop_at_commands else set()
        for token in tokens:
            if token == "--" or token in commands:
                return None
            if not token.startswith(tuple(self.prefix_chars)) or token in self.prefix_chars:
                continue
            if self._negative_number_matcher.match(token) and not self._has_negative_number_optionals:
                continue  # a value such as --range -0.5 0.5
            name = token.split("=", 1)[0]
            if name in self._option_string_actions:
                continue
            if not token.startswith(self.prefix_chars[0] * 2) and token[:2] in self._option_string_actions:
                continue  # a short flag with its value attached (-n5) or several short flags (-vh)
            return name
        return None

    def explain(self, message: str) -> str:
        """The error to report for argparse's ``message``: the unknown flag, if the arguments hold one."""
        flag = self.unknown_flag()
        return message if flag is None else unknown_flag_message(flag, list(self._option_string_actions), self.prog)

    def error(self, message: str) -> NoReturn:
        super().error(self.explain(message))
