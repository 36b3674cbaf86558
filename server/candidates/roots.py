"""Where candidates may come from: the operator's roots, and a tenant's source resolved under one.

``--candidate-root DIR`` opens a folder to every tenant, ``--candidate-root TENANT=DIR`` to that
tenant only (so one team cannot register, and so measure, another team's unreleased files); an
admin may use every root. A source is an absolute path or a Hugging Face id ``ORG/NAME[@REV]``
found in the server's local cache (``models/hub.py``; the cache must itself lie under a root).

A source is resolved with every symlink followed (``os.path.realpath``) BEFORE it is compared
with the roots, so ``..`` and a symlink out of a root lead outside and are refused. The refusal
is PERMISSION_DENIED whether or not the path exists (it says nothing of what lies outside the
caller's roots); NOT_FOUND only for a missing path under a root the caller may use. The files
inside the folder are checked the same way one by one (``inspection.py``), and opened without
following a symlink and checked to be the very files resolved, so a swap after the check is
refused too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..engine.direction_slots import Caller
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..models.hub import resolve_hub_model

__all__ = ["MAX_SOURCE_CHARS", "CandidateRoot", "CandidateRoots"]

MAX_SOURCE_CHARS = 4096  # PATH_MAX
_HUB_SOURCE = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(@(?P<rev>[\w.-]{1,128}))?")


@dataclass(frozen=True)
class CandidateRoot:
    path: Path  # resolved (symlinks followed)
    tenant: str = ""  # "" = every tenant


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class CandidateRoots:
    """The roots in force; ``resolve`` turns a caller's source into a folder under one of them."""

    def __init__(self, roots: Sequence[tuple[str, str]]) -> None:
        """``roots``: (tenant or "", folder) pairs; ValueError for a folder that does not exist."""
        self.roots: list[CandidateRoot] = []
        for tenant, folder in roots:
            real = Path(os.path.realpath(os.path.expanduser(folder)))
            if not real.is_dir():
                raise ValueError(f"--candidate-root {folder!r}: not a folder")
            self.roots.append(CandidateRoot(real, tenant))

    def __bool__(self) -> bool:
        return bool(self.roots)

    def usable(self, caller: Caller) -> list[Path]:
        return [r.path for r in self.roots if caller.admin or r.tenant in ("", caller.tenant)]

    def allows(self, real: Path, caller: Caller) -> bool:
        """Whether ``real`` (already resolved) lies under a root ``caller`` may use."""
        return any(_under(real, root) for root in self.usable(caller))

    def resolve(self, source: str, caller: Caller) -> Path:
        """The real folder of ``source`` for ``caller``: InvalidArgument for a malformed source,
        PermissionDenied outside the caller's roots, NotFound for a missing folder under them."""
        if not source or len(source) > MAX_SOURCE_CHARS or "\0" in source:
            raise InvalidArgument(f"source must be 1 to {MAX_SOURCE_CHARS} characters: an absolute path or ORG/NAME[@REV]")
        if source.startswith("/"):
            given = Path(source)
        else:
            hub = _HUB_SOURCE.fullmatch(source)
            if hub is None or ".." in source:
                raise InvalidArgument(
                    f"source {source[:200]!r} is neither an absolute path on the server nor a Hugging Face id "
                    "ORG/NAME[@REVISION]"
                )
            given = resolve_hub_model(hub.group("repo"), hub.group("rev"))
        real = Path(os.path.realpath(given))
        if not self.allows(real, caller):
            usable = ", ".join(str(p) for p in self.usable(caller)) or "none"
            raise PermissionDenied(
                f"source {source[:200]!r} (symlinks resolved) is not under a candidate root tenant "
                f"{caller.tenant!r} may use (its roots: {usable}); put the files there, or ask the operator "
                "(--candidate-root)"
            )
        if not real.is_dir():
            raise NotFound(f"source {source[:200]!r} is not a folder on the server" +
                           (" (a file: give its folder)" if real.exists() else ""))
        return real
