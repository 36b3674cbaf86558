"""The gate's candidate given as ``[candidate] source = PATH_OR_HUB_ID``: registered on the servers
for the run and removed after it, or reused when the same content is already registered.

:func:`candidate_for_run` turns a config with ``source`` into one whose candidate is a name the
servers know (``GateConfig.registered``), for the length of a ``with`` block:

- **Reuse, by content.** When ``source`` is also a folder on this machine (a shared file system,
  or the pull-request job's own server), its content fingerprint is computed here with the
  server's definition (:func:`safety_landscape.common.candidate_files.content_fingerprint`) and
  each server is asked for a READY candidate with that fingerprint (``ListCandidates``; the
  server reports the fingerprint of what it read). A name READY on every server is reused and
  left registered. Names are never compared: the same name may hold other content, other names
  the same. Another gate run's temporary registration (a ``gate-`` name) is never reused, since
  that run removes it when it ends.
- **Registration.** Otherwise the source is added on every server under one fresh name
  ``gate-<12 hex>``, the gate waits until each is READY (FAILED: the gate cannot evaluate, exit 2,
  with the server's reason), checks that every server read the same content (one fingerprint), and
  removes it from every server when the block ends, whatever happened (waiting for calls still
  using it; a removal that fails is a warning: the server's idle expiry removes it later).

What the gate measured is recorded in gate.json's ``inputs.candidate``: the source, the name, the
kind, the fingerprint the server reported, and whether it was registered for the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog

from safety_landscape.common.candidate_files import content_fingerprint

from ..client import Client
from ..errors import VisageError
from .config import GateConfig, RegisteredSource

__all__ = ["READY_TIMEOUT", "TEMPORARY_PREFIX", "candidate_for_run", "local_fingerprint"]

log = structlog.get_logger("safety_landscape.gate")

#: How long the gate waits for a registered source to load, in seconds.
READY_TIMEOUT = 3600.0
#: The name prefix of the candidates a gate run registers for itself (never reused by another run).
TEMPORARY_PREFIX = "gate-"
REMOVE_TIMEOUT = 120.0  # a removal waits this long for calls still using the candidate


def local_fingerprint(source: str) -> str:
    """The content fingerprint of ``source`` when it is a candidate folder readable here, else ""."""
    folder = Path(source)
    if not folder.is_absolute() or not folder.is_dir():
        return ""
    try:
        return content_fingerprint(folder)
    except (OSError, ValueError):  # not a candidate folder, or unreadable here: the server decides
        return ""


def _reusable(clients: Sequence[Client], fingerprint: str) -> RegisteredSource | None:
    """A READY candidate of this content that every server holds under the same name, else None."""
    common: dict[str, str] | None = None
    for client in clients:
        ready = {c.name: c.kind for c in client.list_candidates(fingerprint=fingerprint).candidates
                 if c.state == "ready" and c.fingerprint == fingerprint and not c.name.startswith(TEMPORARY_PREFIX)}
        common = ready if common is None else {n: k for n, k in common.items() if ready.get(n) == k}
    if not common:
        return None
    name = min(common)
    return RegisteredSource(name=name, kind=common[name], fingerprint=fingerprint, registered=False)


def _register(clients: Sequence[Client], source: str, name: str, added: list[Client],
              ready_timeout: float) -> RegisteredSource:
    for client in clients:
        client.add_candidate(name, source)
        added.append(client)
    infos = []
    for client in clients:
        info = client.wait_for_candidate(name, timeout=ready_timeout)
        if info.state != "ready":
            raise VisageError(f"candidate.source {source!r} could not be registered on {client.target}: "
                              f"{info.state.upper()}: {info.reason}")
        infos.append(info)
    if len({(i.fingerprint, i.kind) for i in infos}) != 1:
        seen = ", ".join(f"{c.target}: {i.kind} {i.fingerprint[:16]}" for c, i in zip(clients, infos, strict=True))
        raise VisageError(f"candidate.source {source!r} is not the same content on every server ({seen}); "
                          "give servers that read the same files")
    return RegisteredSource(name=name, kind=infos[0].kind, fingerprint=infos[0].fingerprint, registered=True)


def _remove(clients: Sequence[Client], name: str) -> None:
    for client in clients:
        try:
            client.remove_candidate(name, wait=True, timeout=REMOVE_TIMEOUT)
        except VisageError as exc:  # the verdict stands; the server's idle expiry removes it later
            log.warning("the gate's candidate was not removed", server=client.target, name=name, error=str(exc))


@contextlib.contextmanager
def candidate_for_run(config: GateConfig, clients: Sequence[Client], *,
                      ready_timeout: float = READY_TIMEOUT) -> Iterator[GateConfig]:
    """``config`` with its ``source`` resolved to a name the servers hold (see the module
    docstring); a config without ``source`` is given back as it is."""
    if not config.source:
        yield config
        return
    fingerprint = local_fingerprint(config.source)
    reused = _reusable(clients, fingerprint) if fingerprint else None
    if reused is not None:
        log.info("reusing a registered candidate of the same content", name=reused.name,
                 fingerprint=fingerprint[:16])
        yield dataclasses.replace(config, registered=reused)
        return
    name, added = TEMPORARY_PREFIX + secrets.token_hex(6), list[Client]()
    try:
        registered = _register(clients, config.source, name, added, ready_timeout)
        yield dataclasses.replace(config, registered=registered)
    finally:
        _remove(added, name)
