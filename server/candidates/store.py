"""The candidates tenants registered at run time: their states, limits, leases and expiry.

``CandidateStore`` owns every candidate record and the one thread that loads them (and expires
the idle ones), so loading never runs on the model's worker and never more than one at a time.
  - ``add`` (a request thread): the source resolved under the caller's roots (``roots.py``), its
    files located and their sizes counted against the limits, its config and headers checked
    against the served model (``inspection.py``), its memory admitted against the memory plan's
    free host memory; then the record is LOADING and queued, and the call answers at once.
    Refusals: RESOURCE_EXHAUSTED naming the setting (``max_candidates``,
    ``max_candidates_per_tenant``, ``max_candidate_bytes``, ``max_candidate_bytes_per_tenant``,
    ``memory_plan``); ALREADY_EXISTS for a name the caller already sees.
  - the loader thread: LOADING -> READY (fingerprint, an adapter's factors: ``loading.py``) or
    FAILED with the reason.
  - names are per tenant: a tenant sees and uses its own candidates and the operator's (added by
    an admin), an admin sees every one; another tenant's candidate is never found, so a name taken
    by another tenant is free and nothing says it exists.
  - leases: a call that names a candidate holds it (``take`` / ``give``) until the call ends.
    ``remove`` of a candidate in use is refused (FAILED_PRECONDITION), or with ``wait`` waits for
    those calls (new ones are refused meanwhile: REMOVING) within the call's deadline (at most
    ``MAX_REMOVE_WAIT_SECONDS``); a running call is never broken.
  - expiry: a candidate no call has used for ``candidate_idle_seconds`` is removed by the loader
    thread (never one in use or loading).
On removal the held directions built from it are forgotten (``forget``, the weights' own rule).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable

import structlog

from ..config import CandidateSettings
from ..engine.direction_slots import Caller
from ..errors import Cancelled, DeadlineExceeded, FailedPrecondition, InvalidArgument, LandscapeError, NotFound, PermissionDenied
from .inspection import ServedModel, check, locate
from .loading import load
from .records import (
    Candidate,
    CandidateView,
    State,
    check_bytes,
    check_count,
    check_free,
    check_memory,
    visible,
)
from .roots import CandidateRoots

__all__ = ["MAX_NAME_CHARS", "MAX_REMOVE_WAIT_SECONDS", "Candidate", "CandidateStore", "CandidateView", "State"]

log = structlog.get_logger("safety_landscape.candidates")
MAX_NAME_CHARS = 64
MAX_REMOVE_WAIT_SECONDS = 600.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CandidateStore:
    def __init__(self, settings: CandidateSettings, served: ServedModel, *, room_bytes: int,
                 forget: Callable[[str], object] = lambda binding: None) -> None:
        """``room_bytes``: host memory the memory plan leaves free for candidates; ``forget``:
        drops the held directions bound to a removed candidate."""
        self.settings = settings
        self.roots = CandidateRoots(settings.roots)
        self.served = served
        self.room_bytes = room_bytes
        self.max_bytes, self.max_bytes_per_tenant = settings.byte_limits(served.model_bytes)
        self._forget = forget
        self._records: dict[tuple[str, str], Candidate] = {}  # (owner, name)
        self._lock = threading.Condition()
        self._queue: queue.Queue[Candidate | None] = queue.Queue()
        self._closed = threading.Event()
        idle = settings.candidate_idle_seconds
        self._period = min(30.0, max(0.05, idle / 4)) if idle else 30.0
        self._thread = threading.Thread(target=self._keep, name="candidates", daemon=True)
        self._thread.start()

    # -- registering ---------------------------------------------------------------------------

    def add(self, name: str, source: str, kind: str, caller: Caller) -> CandidateView:
        _check_name(name)
        folder = self.roots.resolve(source, caller)
        s, records = self.settings, self._records
        with self._lock:
            check_free(records, name, caller)
            check_count(records, caller, s.max_candidates, s.max_candidates_per_tenant)
        located = locate(folder, kind, lambda path: self.roots.allows(path, caller))
        with self._lock:
            check_bytes(records, located.size_bytes, caller, self.max_bytes, self.max_bytes_per_tenant)
        checked = check(located, self.served)
        with self._lock:  # again: the world may have changed while the headers were read
            check_free(records, name, caller)
            check_count(records, caller, s.max_candidates, s.max_candidates_per_tenant)
            check_bytes(records, located.size_bytes, caller, self.max_bytes, self.max_bytes_per_tenant)
            check_memory(records, checked.memory_bytes, self.room_bytes)
            candidate = Candidate(name=name, owner=caller.tenant, operator=caller.admin, source=source, checked=checked)
            self._records[(caller.tenant, name)] = candidate
            view = self._view(candidate)
        self._queue.put(candidate)
        log.info("candidate added", name=name, owner=caller.tenant, kind=checked.located.kind, bytes=located.size_bytes)
        return view

    # -- finding and leasing (any thread) ------------------------------------------------------

    def _named(self, name: str, caller: Caller) -> Candidate | None:
        own = self._records.get((caller.tenant, name))
        if own is not None:
            return own
        return next((c for c in self._records.values() if c.operator and c.name == name), None)

    def find(self, name: str, kind: str, caller: Caller, *, take: bool = False) -> Candidate | None:
        """The READY candidate ``name`` that ``caller`` sees (None: none visible); with ``take``,
        leased to the caller until ``give``. FailedPrecondition while it loads or once it failed."""
        with self._lock:
            c = self._named(name, caller)
            if c is None:
                return None
            if c.state is State.REMOVING:
                raise NotFound(f"candidate {name!r} is being removed")
            if c.state is State.LOADING:
                raise FailedPrecondition(f"candidate {name!r} is still loading; use it once ListCandidates shows READY")
            if c.state is State.FAILED:
                raise FailedPrecondition(f"candidate {name!r} failed to load: {c.reason}")
            if c.kind != kind:
                raise InvalidArgument(f"candidate {name!r} is {'an adapter' if c.kind == 'adapter' else 'a checkpoint'}: "
                                      f"name it in {'an adapter' if c.kind == 'adapter' else 'an interpolation'} term")
            c.last_used = time.time()
            if take:
                c.in_use += 1
            return c

    def give(self, candidate: Candidate) -> None:
        with self._lock:
            candidate.in_use -= 1
            candidate.last_used = time.time()
            self._lock.notify_all()

    def bound(self, name: str, binding: str) -> Candidate:
        """The candidate a spec was bound to (READY, or REMOVING while a call still holds it)."""
        with self._lock:
            for c in self._records.values():
                if c.name == name and c.binding == binding and c.state in (State.READY, State.REMOVING):
                    return c
        raise NotFound(f"candidate {name!r} was removed; register it again")

    def memory_bytes(self) -> int:
        """Host memory held by every candidate (adapters' factors)."""
        with self._lock:
            return sum(c.memory_bytes for c in self._records.values())

    def names(self, caller: Caller, kind: str) -> list[str]:
        with self._lock:
            return [c.name for c in self._records.values() if c.kind == kind and visible(c, caller)]

    # -- listing and removing ------------------------------------------------------------------

    def list(self, caller: Caller, fingerprint: str = "") -> list[CandidateView]:
        with self._lock:
            seen = [c for c in self._records.values() if visible(c, caller)]
            views = [self._view(c) for c in seen if not fingerprint or c.fingerprint == fingerprint]
        return sorted(views, key=lambda v: (v.owner, v.name))

    def remove(self, name: str, caller: Caller, *, owner: str = "", wait: bool = False,
               deadline: float | None = None) -> None:
        """Unregister ``name`` (``owner``: another tenant's, admins only). ``deadline``: a
        ``time.monotonic()`` bound on the wait."""
        limit = time.monotonic() + MAX_REMOVE_WAIT_SECONDS
        deadline = min(deadline, limit) if deadline is not None else limit
        with self._lock:
            c = self._for_removal(name, owner, caller)
            if c.state is State.REMOVING:
                raise FailedPrecondition(f"candidate {name!r} is already being removed by another call")
            if c.in_use and not wait:
                raise FailedPrecondition(
                    f"candidate {name!r} is used by {c.in_use} call(s) now; remove it once they end, or ask to wait"
                )
            if c.in_use:
                c.state = State.REMOVING
                while c.in_use:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        c.state = State.READY
                        raise DeadlineExceeded(f"candidate {name!r} is still used by {c.in_use} call(s); it stays registered")
                    self._lock.wait(left)
            self._drop(c)
        self._forgotten(c, "removed")

    def _for_removal(self, name: str, owner: str, caller: Caller) -> Candidate:
        missing = NotFound(f"no candidate named {name!r}")
        if owner and owner != caller.tenant:
            if not caller.admin:
                raise missing  # another tenant's: answered as if nobody had it
            c = self._records.get((owner, name))
        else:
            c = self._named(name, caller)
        if c is None:
            raise missing
        if c.operator and not caller.admin:
            raise PermissionDenied(f"candidate {name!r} is the operator's; only an admin may remove it")
        return c

    def _drop(self, c: Candidate) -> None:
        """Unregister ``c`` (call with the lock held)."""
        c.cancel.set()
        self._records.pop((c.owner, c.name), None)
        c.modules = None

    def _forgotten(self, c: Candidate, why: str) -> None:
        if c.fingerprint:
            self._forget(c.binding)
        log.info("candidate " + why, name=c.name, owner=c.owner)

    # -- the loader thread ---------------------------------------------------------------------

    def _keep(self) -> None:
        while not self._closed.is_set():
            try:
                c = self._queue.get(timeout=self._period)
            except queue.Empty:
                c = None
            if c is not None:
                self._load(c)
            self._expire()

    def _load(self, c: Candidate) -> None:
        if c.cancel.is_set():
            return
        started = time.monotonic()
        try:
            loaded = load(c.checked, self.served, c.cancel.is_set)
        except Cancelled:
            return
        except LandscapeError as exc:
            self._fail(c, exc.message)
            return
        except MemoryError:
            self._fail(c, "the server ran out of memory reading it")
            return
        except Exception as exc:  # a bug or an I/O error: say so, keep serving
            log.exception("candidate failed to load", name=c.name, owner=c.owner)
            self._fail(c, f"it could not be read ({type(exc).__name__}); see the server log")
            return
        with self._lock:
            if c.state is State.LOADING and not c.cancel.is_set():
                c.fingerprint, c.modules, c.state = loaded.fingerprint, loaded.modules, State.READY
                c.last_used = time.time()
        log.info("candidate ready", name=c.name, owner=c.owner, seconds=round(time.monotonic() - started, 2))

    def _fail(self, c: Candidate, reason: str) -> None:
        with self._lock:
            if c.state is State.LOADING:
                c.state, c.reason = State.FAILED, reason
        log.warning("candidate failed", name=c.name, owner=c.owner, reason=reason)

    def _expire(self) -> None:
        idle = self.settings.candidate_idle_seconds
        if not idle:
            return
        now = time.time()
        with self._lock:
            gone = [c for c in self._records.values()
                    if c.state in (State.READY, State.FAILED) and not c.in_use and now - c.last_used > idle]
            for c in gone:
                self._drop(c)
        for c in gone:
            self._forgotten(c, "expired")

    def close(self) -> None:
        """Stop the loader thread (a load in progress stops at its next chunk)."""
        self._closed.set()
        with self._lock:
            for c in self._records.values():
                c.cancel.set()
        self._queue.put(None)
        self._thread.join(5.0)

    def _view(self, c: Candidate) -> CandidateView:
        idle = self.settings.candidate_idle_seconds
        expires = c.last_used + idle if idle and c.state in (State.READY, State.FAILED) and not c.in_use else 0.0
        return CandidateView(
            name=c.name, owner=c.owner, operator=c.operator, source=c.source, kind=c.kind, state=c.state, reason=c.reason,
            size_bytes=c.checked.located.size_bytes, memory_bytes=c.memory_bytes, fingerprint=c.fingerprint,
            created_unix=c.created, last_used_unix=c.last_used, dtype=c.checked.dtype, in_use=c.in_use,
            expires_unix=expires,
        )


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_CHARS or _NAME.fullmatch(name) is None:
        raise InvalidArgument(
            f"candidate name {name[:MAX_NAME_CHARS]!r}: use 1 to {MAX_NAME_CHARS} characters, letters, digits, '.', "
            "'_' and '-', starting with a letter or digit"
        )

