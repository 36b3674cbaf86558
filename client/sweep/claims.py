"""Cooperative claiming: several sweep processes on one results store split the work.

Before a worker evaluates a task it claims the task's points in the store
(:meth:`~safety_landscape.client.store.ResultStore.claim`, one SQLite transaction): it runs the task
only when no other live client holds one of them. A claim lasts ``ttl`` seconds and a heartbeat
thread renews this client's claims every ``ttl / 3``, so a client that is alive keeps its tasks
however long they run, and one that crashed (or was killed) frees them ``ttl`` seconds after its
last heartbeat. Storing a point releases its claim; leaving the :class:`Claims` context releases
the rest. Claim times are wall-clock times of the machine: processes sharing a store must run on
one machine (SQLite's locking on network file systems is not reliable anyway).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from ..errors import StoreError
from ..store import ClaimState, ResultStore

__all__ = ["DEFAULT_TTL", "Claims", "new_owner"]

#: Seconds a claim outlives its holder's last heartbeat.
DEFAULT_TTL = 30.0

log = structlog.get_logger("safety_landscape.client.sweep")


def new_owner() -> str:
    """A name no other client uses: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Claims:
    """This client's claims in ``store``; a context manager that runs the heartbeat."""

    store: ResultStore
    ttl: float = DEFAULT_TTL
    owner: str = field(default_factory=new_owner)

    def __post_init__(self) -> None:
        if not self.ttl > 0:
            raise ValueError(f"claim ttl must be > 0 seconds, got {self.ttl}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, keys: Sequence[str]) -> ClaimState:
        """Claim the unstored points among ``keys`` (all or none): ``mine``, ``done`` or ``held``."""
        return self.store.claim(keys, self.owner, self.ttl)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.store.renew_claims(self.owner, self.ttl)
            except StoreError as exc:  # a busy store: the next beat tries again, well within ttl
                log.warning("could not renew the sweep's claims", store=str(self.store.path), error=str(exc))

    def __enter__(self) -> Claims:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="sweep-claims")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        try:
            self.store.release_claims(self.owner)
        except StoreError as exc:  # the claims then expire after ttl
            log.warning("could not release the sweep's claims", store=str(self.store.path), error=str(exc))
