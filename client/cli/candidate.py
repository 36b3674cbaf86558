"""``visage candidate add|list|remove``: checkpoints and adapters registered on a server at run time.

A candidate is a safetensors checkpoint folder or a PEFT LoRA adapter folder that the server reads
from one of its ``--candidate-root`` folders (a path on the SERVER), or a Hugging Face id
``ORG/NAME[@REVISION]`` in the server's cache; once ready it is used by name like the operator's
registry entries (``--at interp:NAME=1`` or ``adapter:NAME=1``, ``[candidate] checkpoint = NAME``
in a gate). docs/operations.md ("Candidates") has the server's rules.

``--wait SECONDS`` keeps its meaning on every command (wait for a server that is still loading)
and here also waits for the candidate: ``add`` until it is ready or failed (a failed one is exit 1
with the server's reason), ``remove`` for the calls that use it to end (without it a candidate in
use is refused). Exit codes as every command's (:mod:`.failures`).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from .common import add_connection_args, connect, message_to_dict, print_json

if TYPE_CHECKING:
    from ..server_state import CandidateInfo
    from .common import Subparsers

__all__ = ["register"]

KINDS = ("checkpoint", "adapter")


def register(sub: Subparsers) -> None:
    p = sub.add_parser("candidate", help="register, list or remove checkpoints and adapters on a server at run time")
    csub = p.add_subparsers(dest="candidate_command", required=True, metavar="{add,list,remove}")
    add = csub.add_parser("add", help="register a checkpoint or adapter folder (on the server) under a name")
    add_connection_args(add)
    add.add_argument("name", metavar="NAME", help="the name terms will use (interp:NAME, adapter:NAME)")
    add.add_argument("source", metavar="SOURCE",
                     help="an absolute folder path on the server, under a --candidate-root, or ORG/NAME[@REVISION] "
                          "in the server's Hugging Face cache")
    add.add_argument("--kind", choices=KINDS, default="",
                     help="what the folder holds (default: read from it: adapter_config.json means an adapter)")
    _wait_help(add, "then for the candidate to be READY or FAILED (FAILED: exit 1 with the reason)")
    add.set_defaults(func=cmd_add)
    ls = csub.add_parser("list", help="the candidates you see: your own, the operator's (an admin sees all)")
    add_connection_args(ls)
    ls.add_argument("--fingerprint", default="", metavar="SHA256", help="only those with this content fingerprint")
    ls.set_defaults(func=cmd_list)
    rm = csub.add_parser("remove", help="unregister a candidate (refused while a call uses it, unless --wait)")
    add_connection_args(rm)
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--owner", default="", metavar="TENANT", help="admins: another tenant's candidate")
    _wait_help(rm, "then for the calls that use the candidate to end (without it, a candidate in use is refused)")
    rm.set_defaults(func=cmd_remove)


def _wait_help(p: argparse.ArgumentParser, also: str) -> None:
    """``--wait``'s help on this command: the connection flag's meaning, and what it waits for here."""
    for action in p._actions:
        if action.dest == "wait":
            action.help = f"wait up to this long for a server still loading to be SERVING, {also} (default 0)"


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _line(c: CandidateInfo) -> str:
    owner = f"{c.owner} (operator)" if c.operator else c.owner
    state = c.state.upper() + (f": {c.reason}" if c.reason else "")
    fingerprint = c.fingerprint[:16] or "-"
    expires = (f", expires in {max(0.0, c.expires_unix - time.time()) / 60:.0f} min" if c.expires_unix else "")
    used = f", in use by {c.in_use}" if c.in_use else ""
    return (f"{c.name:24s} {c.kind:10s} {owner:16s} {_size(c.size_bytes):>10s}  {fingerprint}  {state}{used}{expires}"
            f"  <- {c.source}")


def cmd_add(args: argparse.Namespace) -> int:
    from ..errors import VisageError

    with connect(args) as client:
        cand = client.add_candidate(args.name, args.source, kind=args.kind)
        if args.wait > 0:
            cand = client.wait_for_candidate(args.name, timeout=args.wait)
    if cand.state == "failed":
        raise VisageError(f"candidate {cand.name!r} failed to load: {cand.reason}; fix the source, then "
                          f"`visage candidate remove {cand.name}` and add it again")
    if args.json:
        print_json(message_to_dict(cand.proto))
    else:
        print(_line(cand))
        if cand.state == "loading":
            print("loading: `visage candidate list` shows when it is READY (or add with --wait SECONDS)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        listed = client.list_candidates(fingerprint=args.fingerprint)
    if args.json:
        print_json(message_to_dict(listed.proto))
        return 0
    for c in listed.candidates:
        print(_line(c))
    idle = f"{listed.idle_seconds:g} s unused" if listed.idle_seconds else "never"
    print(f"{len(listed.candidates)} candidate(s); limits: {listed.max_candidates} in all, "
          f"{listed.max_candidates_per_tenant} per tenant, {_size(listed.max_candidate_bytes)} in all, "
          f"{_size(listed.max_candidate_bytes_per_tenant)} per tenant; expiry: {idle}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with connect(args) as client:
        removed = client.remove_candidate(args.name, owner=args.owner, wait=args.wait > 0,
                                          timeout=args.wait if args.wait > 0 else None)
    if args.json:
        print_json({"name": args.name, "removed": removed})
    else:
        print(f"removed {args.name}")
    return 0
