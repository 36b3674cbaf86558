"""What every ``visage`` command shares: the exit codes, the connection flags and the client they
make, ``--at`` terms, JSON on stdout, and output paths (``-`` = stdout). Below the command modules:
it imports none of them."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from google.protobuf.message import Message

    from safety_landscape.v1 import landscape_pb2 as pb

    from ..client import Client

    #: What ``register(sub)`` of each command module receives.
    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "STDOUT", "add_connection_args", "connect", "message_to_dict",
           "output_folder", "parse_at", "print_json", "writes_to_stdout"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The output file name that means stdout.
STDOUT = "-"


class _AppendOverEnvironment(argparse._AppendAction):
    """``--server`` repeated: the first one given replaces the default from ``VISAGE_SERVER``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, None)
        super().__call__(parser, namespace, values, option_string)


def add_connection_args(p: argparse.ArgumentParser, *, many: bool = False, required: bool = True) -> None:
    """The connection flags; ``--server`` defaults to ``VISAGE_SERVER`` (required when that is unset,
    unless ``required`` is False: the command then checks it)."""
    g = p.add_argument_group("connection")
    env = os.environ.get("VISAGE_SERVER", "").strip()
    if many:
        g.add_argument("--server", action=_AppendOverEnvironment, default=[env] if env else None,
                       required=required and not env, metavar="HOST:PORT",
                       help="a server; repeat for several, or one dns:///name:port that resolves to many "
                            "[VISAGE_SERVER]")
    else:
        g.add_argument("--server", default=env or None, required=required and not env, metavar="HOST:PORT",
                       help="the server, e.g. 127.0.0.1:50051 [VISAGE_SERVER]")
    g.add_argument("--token", default=None, help="bearer token (else --token-file, VISAGE_TOKEN, VISAGE_TOKEN_FILE)")
    g.add_argument("--token-file", default=None, help="file holding the bearer token")
    g.add_argument("--tls-ca", default=os.environ.get("VISAGE_TLS_CA"), help="CA certificate: use TLS [VISAGE_TLS_CA]")
    g.add_argument("--tls-cert", default=os.environ.get("VISAGE_TLS_CLIENT_CERT"), help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", default=os.environ.get("VISAGE_TLS_CLIENT_KEY"), help="client key (mutual TLS)")
    g.add_argument("--timeout", type=float, default=3600.0, help="deadline in seconds for long calls (default 3600)")
    g.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for each server that is still starting or loading (UNAVAILABLE, "
                        "NOT_SERVING) to be SERVING before the command (default 0: only the usual retries)")


def connect(args: argparse.Namespace, target: str | None = None) -> Client:
    """A client of ``target`` (else ``--server``) from the connection flags; with ``--wait``, once it is SERVING."""
    from ..client import Client, Timeouts, TlsConfig
    from ..credentials import resolve_token
    from ..errors import ValidationError

    tls = None
    if args.tls_ca or args.tls_cert:
        tls = TlsConfig(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    try:  # a token file that is missing, unreadable or empty: a setup error, said as one
        token = resolve_token(args.token, args.token_file)
    except ValueError as exc:
        raise ValidationError(f"{exc}: --token-file (or VISAGE_TOKEN_FILE) must name a readable file that holds "
                              "your bearer token") from None
    try:  # a TLS file that is missing or unreadable, or a certificate without its key
        client = Client(target or args.server, token=token, tls=tls,
                        timeouts=Timeouts(generate=args.timeout, direction=args.timeout))
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if getattr(args, "wait", 0.0) > 0:
        try:
            client.wait_until_serving(args.wait)
        except BaseException:
            client.close()
            raise
    return client


def parse_at(values: Sequence[str]) -> pb.Perturbation:
    """--at TERM=COEF terms in :mod:`..direction_text`'s grammar (seed:N with its parts, interp:NAME,
    adapter:NAME, d-<id>). A random direction written without its stream gets a note on stderr: bare
    ``seed:N`` is the per_tensor stream, a sweep's directions the reference stream."""
    import sys

    from ..builders import perturbation
    from ..direction_text import direction_text, parse_term
    from ..errors import ValidationError

    terms = []
    for value in values:
        try:
            direction, coefficient = parse_term(value)
        except ValidationError as exc:
            raise ValidationError(f"--at {exc}") from None
        head, *parts = value.rpartition("=")[0].split(",")
        if head.startswith("seed:") and not any(p.startswith("stream:") for p in parts):
            print(f"visage: note: --at {value} is {direction_text(direction)} (the per_tensor stream); a sweep's "
                  f"direction d<I> is the reference stream unless its spec says otherwise: "
                  f"{head},stream:reference,index:I", file=sys.stderr)
        terms.append((direction, coefficient))
    return perturbation(terms)


def print_json(data: Any) -> None:
    """The command's result on stdout: one JSON document."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def message_to_dict(msg: Message) -> dict[str, Any]:
    """A reply as JSON values, its 64-bit integers as numbers (protobuf's JSON mapping writes them as strings)."""
    from ..builders import message_dict

    return _int64_as_numbers(msg, message_dict(msg))


def _int64_as_numbers(msg: Message, out: dict[str, Any]) -> dict[str, Any]:
    from google.protobuf.descriptor import FieldDescriptor

    wide = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
    for field in msg.DESCRIPTOR.fields:
        value = out.get(field.name)
        if value is None:
            continue
        if field.type in wide:
            out[field.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            held = getattr(msg, field.name)
            for sub, sub_out in zip(held, value, strict=True) if isinstance(value, list) else [(held, value)]:
                if isinstance(sub_out, dict):
                    _int64_as_numbers(sub, sub_out)
    return out


def writes_to_stdout(path: str | Path | None) -> bool:
    """Whether an output file argument names stdout (``-``)."""
    return path is not None and str(path) == STDOUT


def output_folder(path: str | Path, *, flag: str = "--out") -> Path:
    """An output folder argument; ``-`` is refused (a folder of files cannot be stdout)."""
    from ..errors import ValidationError

    if writes_to_stdout(path):
        raise ValidationError(f"{flag} -: this command writes several files into a folder; name one "
                              "(--json prints the result on stdout)")
    return Path(path)
