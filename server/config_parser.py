"""Parsing the settings that ``config.py`` declares: ``visage-server``'s flag parser and its
``VISAGE_*`` variables, both built from the ``setting(...)`` declarations.

Each setting's value is its flag if given, else its variable if set, else the field's default.
A value that does not parse, is not one of the choices or is out of bounds is a ``SettingError``
naming the flag or the variable and the value: argparse turns a bad flag into exit 2 (its own
``error``), ``visage-server`` turns a bad variable into exit 2 as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .config import ServerConfig, Setting

__all__ = [
    "SettingError", "SettingField", "SettingsParser", "build_parser", "check_values", "config_from_args", "parse_flags",
    "setting_fields", "unknown_arguments",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_TYPE_NAMES = {int: "an integer", float: "a number"}
USAGE_EXIT = 2  # a bad flag, as argparse itself exits
_ADDRESS_FLAGS = {"--host": "host", "--port": "port", "-p": "port"}  # other servers' habits (vLLM, uvicorn)


class SettingError(ValueError):
    """A bad setting value; the message names the flag or variable and the value."""


@dataclass(frozen=True)
class SettingField:
    """One declared setting: where it sits in ``ServerConfig`` and how it is read."""

    path: tuple[str, ...]  # ("limits", "max_batch_size")
    kind: Any  # the field's annotation: int, float, str, bool or tuple[...]
    default: Any
    spec: Setting

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.path[-1].replace("_", "-")

    @property
    def env(self) -> str:
        return self.spec.env or "VISAGE_" + self.flag.removeprefix("--").replace("-", "_").upper()

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def parse(self, raw: str) -> Any:
        """One text value (a flag's, a variable's) -> the typed, checked value; ValueError says why."""
        if self.spec.item is not None:
            return tuple(self.spec.item(part.strip()) for part in raw.split(",") if part.strip())
        if self.kind is bool:
            word = raw.strip().lower()
            if word not in _TRUE | _FALSE:
                raise ValueError("use true or false (1/0, yes/no, on/off)")
            return word in _TRUE
        if self.kind in _TYPE_NAMES:
            try:
                value = self.kind(raw)
            except ValueError:
                raise ValueError(f"not {_TYPE_NAMES[self.kind]}") from None
        else:
            value = raw
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        spec = self.spec
        if spec.choices and value not in spec.choices:
            raise ValueError(f"use one of {', '.join(spec.choices)}")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"must be >= {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"must be <= {spec.maximum}")
        if spec.rule is not None:
            spec.rule(value)


def setting_fields(cls: type = ServerConfig, path: tuple[str, ...] = ()) -> list[SettingField]:
    """Every declared setting of ``cls`` and of the dataclasses it nests, in declaration order."""
    hints = typing.get_type_hints(cls)
    out: list[SettingField] = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            out.extend(setting_fields(kind, (*path, f.name)))
        elif "setting" in f.metadata:
            out.append(SettingField(path=(*path, f.name), kind=kind, default=f.default, spec=f.metadata["setting"]))
    return out


def _flag_type(sf: SettingField) -> Any:
    def parse(raw: str) -> Any:
        try:
            return sf.spec.item(raw) if sf.spec.item is not None else sf.parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid value {raw!r}: {exc}") from None

    parse.__name__ = sf.dest  # argparse names the type in some messages
    return parse


def _help(sf: SettingField) -> str:
    shown = ",".join(map(str, sf.default)) if isinstance(sf.default, tuple) else sf.default
    default = f" (default: {shown})" if shown not in ("", None) else ""
    env = f"{sf.env}, comma-separated" if sf.spec.item is not None else sf.env
    return f"{sf.spec.help}{default} [{env}]"


def build_parser() -> argparse.ArgumentParser:
    """The ``visage-server`` parser: one flag per declared setting; an unset flag parses as None."""
    fields = setting_fields()
    env_only = "\n".join(f"  {sf.env}  {sf.spec.help}" for sf in fields if not sf.spec.cli)
    parser = SettingsParser(
        prog="visage-server",
        description="Serve one causal language model over gRPC for safety-landscape sweeps.\n"
        "Every flag can also be set with the environment variable named in its help.",
        epilog=f"environment only (never a flag: a flag's value shows in the process list):\n{env_only}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for sf in fields:
        if not sf.spec.cli:
            continue
        metavar = "{" + ",".join(sf.spec.choices) + "}" if sf.spec.choices else None
        if sf.kind is bool:
            parser.add_argument(sf.flag, dest=sf.dest, action=argparse.BooleanOptionalAction, default=None, help=_help(sf))
        elif sf.spec.item is not None:
            parser.add_argument(sf.flag, dest=sf.dest, action="append", type=_flag_type(sf), default=None, help=_help(sf))
        else:
            parser.add_argument(sf.flag, dest=sf.dest, type=_flag_type(sf), metavar=metavar, default=None, help=_help(sf))
    return parser


class SettingsParser(argparse.ArgumentParser):
    """argparse without its silent guesses: no abbreviations (``--port`` is not taken for
    ``--port-file``), and every error one line, ``visage-server: ...``, exit 2. Read flags with
    ``parse_flags``, which names each unknown flag with the closest known one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: {message}; see {self.prog} --help\n")


def parse_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of ``argv``; an unknown flag or a stray argument is ``parser.error`` (one line,
    exit 2) naming each, with the closest known flag, or, for vLLM's ``--host`` / ``--port``,
    the ``--listen HOST:PORT`` that says the same."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(unknown_arguments(unknown, _known_flags(parser)))
    return args


def _known_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]


def unknown_arguments(unknown: Sequence[str], known: Sequence[str]) -> str:
    """One line naming what argparse did not recognise in ``unknown`` (flags and their values)."""
    address: dict[str, str] = {}
    problems: list[str] = []
    stray: list[str] = []
    taken: set[int] = set()
    for i, arg in enumerate(unknown):
        if i in taken:
            continue
        if not arg.startswith("-") or arg == "-":
            stray.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in _ADDRESS_FLAGS:
            if not eq and i + 1 < len(unknown) and not unknown[i + 1].startswith("-"):
                value = unknown[i + 1]
                taken.add(i + 1)
            address[_ADDRESS_FLAGS[name]] = value
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        problems.append(f"unknown flag {name}" + (f' (did you mean "{close[0]}"?)' if close else ""))
    if address:
        listen = f"{address.get('host') or '127.0.0.1'}:{address.get('port') or 50051}"
        problems.insert(0, f"no --host or --port flag: give the address and the port as one, --listen {listen}")
    if not problems:
        problems.append(f"unexpected argument {stray[0]!r}: visage-server takes flags only (--model NAME names the model)")
    return "; ".join(problems)


def _value(sf: SettingField, args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    given = getattr(args, sf.dest, None) if sf.spec.cli else None
    if given is not None:
        return tuple(given) if sf.spec.item is not None else given
    raw = environ.get(sf.env)
    if raw is None:
        return sf.default
    try:
        return sf.parse(raw)
    except ValueError as exc:
        raise SettingError(f"{sf.env}: invalid value {raw!r}: {exc}") from None


def _build(cls: type, values: Mapping[tuple[str, ...], Any], path: tuple[str, ...] = ()) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        at = (*path, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, at)
        elif at in values:
            kwargs[f.name] = values[at]
    return cls(**kwargs)


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The ``ServerConfig`` of parsed flags, with ``VISAGE_*`` variables (``os.environ`` by
    default) for the flags not given; ``SettingError`` names a bad variable and its value."""
    environ = os.environ if environ is None else environ
    config: ServerConfig = _build(ServerConfig, {sf.path: _value(sf, args, environ) for sf in setting_fields()})
    return config


def check_values(config: ServerConfig) -> None:
    """The schema's choices and bounds on a config built in code (flags and variables are checked
    as they are read); ``SettingError`` names the flag and the value."""
    for sf in setting_fields():
        value: Any = config
        for name in sf.path:
            value = getattr(value, name)
        try:
            sf.check(value)
        except ValueError as exc:
            raise SettingError(f"{sf.flag}: invalid value {value!r}: {exc}") from None
