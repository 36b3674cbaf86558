"""``visage``: the command line over the client library.

Thin by design: parse, build a request with the library's builders, call, print (text, or JSON
with ``--json``). Heavy imports happen after parsing, so ``--help`` is instant. Each command
family registers itself from its own module (see ``COMMAND_MODULES``).

Exit codes: 0 success; 1 the server refused or failed (the message says why); 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from google.protobuf.message import Message

    from safety_landscape.v1 import landscape_pb2 as pb

    from .client import Client

    #: What ``register(sub)`` of each command module receives.
    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

__all__ = ["COMMAND_MODULES", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "add_connection_args", "build_parser", "connect",
           "main", "message_to_dict", "parse_at", "print_json"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Modules that add subcommands: each has register(subparsers) and sets args.func.
COMMAND_MODULES = ("safety_landscape.client.cli_basic", "safety_landscape.client.cli_sweep", "safety_landscape.client.cli_gate")


def add_connection_args(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    g = p.add_argument_group("connection")
    if many:
        g.add_argument("--server", action="append", required=True, metavar="HOST:PORT",
                       help="a server; repeat for several, or one dns:///name:port that resolves to many")
    else:
        g.add_argument("--server", required=True, metavar="HOST:PORT", help="the server, e.g. 127.0.0.1:50051")
    g.add_argument("--token", default=None, help="bearer token (else --token-file, VISAGE_TOKEN, VISAGE_TOKEN_FILE)")
    g.add_argument("--token-file", default=None, help="file holding the bearer token")
    g.add_argument("--tls-ca", default=os.environ.get("VISAGE_TLS_CA"), help="CA certificate: use TLS [VISAGE_TLS_CA]")
    g.add_argument("--tls-cert", default=os.environ.get("VISAGE_TLS_CLIENT_CERT"), help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", default=os.environ.get("VISAGE_TLS_CLIENT_KEY"), help="client key (mutual TLS)")
    g.add_argument("--timeout", type=float, default=3600.0, help="deadline in seconds for long calls (default 3600)")


def connect(args: argparse.Namespace, target: str | None = None) -> Client:
    from .client import Client, Timeouts, TlsConfig
    from .credentials import resolve_token

    tls = None
    if args.tls_ca or args.tls_cert:
        tls = TlsConfig(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    token = resolve_token(args.token, args.token_file)
    return Client(target or args.server, token=token, tls=tls, timeouts=Timeouts(generate=args.timeout, direction=args.timeout))


def parse_at(values: Sequence[str]) -> pb.Perturbation:
    """--at TERM=COEF terms: TERM is a direction id (d-...), seed:N (a layer-normalised random
    direction), interp:NAME (toward a registered checkpoint) or adapter:NAME."""
    from .builders import adapter_direction, interpolation_direction, perturbation, random_direction
    from .errors import ValidationError

    terms: list[tuple[str | pb.DirectionSpec, float]] = []
    for value in values:
        term, sep, coef = value.rpartition("=")
        if not sep or not term:
            raise ValidationError(f"--at {value!r}: use DIRECTION=COEFFICIENT, e.g. seed:1=0.25 or d-0123abcd=0.5")
        try:
            c = float(coef)
        except ValueError:
            raise ValidationError(f"--at {value!r}: {coef!r} is not a number") from None
        kind, _, name = term.partition(":")
        if kind == "seed" and name.isdigit():
            terms.append((random_direction(int(name)), c))
        elif kind == "interp" and name:
            terms.append((interpolation_direction(name), c))
        elif kind == "adapter" and name:
            terms.append((adapter_direction(name), c))
        elif term.startswith("d-"):
            terms.append((term, c))
        else:
            raise ValidationError(f"--at {value!r}: the direction must be d-<id>, seed:N, interp:NAME or adapter:NAME")
    return perturbation(terms)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def message_to_dict(msg: Message) -> dict[str, Any]:
    from .builders import message_dict

    return message_dict(msg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visage",
        description="Measure how close a language model sits to the edge of its safety basin: talk to a "
        "visage-server, evaluate attack success at perturbed weights, sweep landscapes, score VISAGE, gate releases.",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command family not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    import structlog

    from .errors import RpcFailed, ValidationError, VisageError

    if not args.verbose:
        import logging

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        return int(args.func(args) or EXIT_OK)
    except ValidationError as exc:
        print(f"visage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RpcFailed as exc:
        print(f"visage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except VisageError as exc:
        print(f"visage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("visage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
