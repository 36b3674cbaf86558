"""A candidate's record, what ``ListCandidates`` shows of it, and the limits a new one must fit.

The store (``store.py``) holds the records under its lock and calls the checks below with that
lock held: a name the caller already sees (ALREADY_EXISTS), the counts, the bytes of the files and
the host memory the memory plan leaves free (RESOURCE_EXHAUSTED naming the setting). A tenant
sees its own candidates and the operator's (``visible``), so a check never mentions another
tenant's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..engine.direction_slots import Caller
from ..engine.directions.adapter import AdapterModule
from ..errors import AlreadyExists, ResourceExhausted
from .inspection import Checked

__all__ = ["Candidate", "CandidateView", "Records", "State", "check_bytes", "check_count", "check_free", "check_memory",
           "visible"]


class State(str, Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    REMOVING = "removing"


@dataclass
class Candidate:
    """One registered candidate (mutated under the store's lock only)."""

    name: str
    owner: str
    operator: bool  # added by an admin: every tenant sees and uses it
    source: str  # as given
    checked: Checked
    state: State = State.LOADING
    reason: str = ""
    fingerprint: str = ""
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    in_use: int = 0
    modules: dict[str, AdapterModule] | None = None  # an adapter's fp32 factors once READY
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def kind(self) -> str:
        return self.checked.located.kind

    @property
    def binding(self) -> str:
        """What a direction spec naming it is bound to (its id changes with the owner and content)."""
        return f"candidate:{self.owner}:{self.fingerprint}"

    @property
    def memory_bytes(self) -> int:
        return self.checked.memory_bytes if self.state is not State.FAILED else 0


@dataclass(frozen=True)
class CandidateView:
    """A candidate as ``ListCandidates`` shows it (a snapshot)."""

    name: str
    owner: str
    operator: bool
    source: str
    kind: str
    state: State
    reason: str
    size_bytes: int
    memory_bytes: int
    fingerprint: str
    created_unix: float
    last_used_unix: float
    dtype: str
    in_use: int
    expires_unix: float


Records = Mapping[tuple[str, str], Candidate]  # (owner, name) -> candidate


def visible(c: Candidate, caller: Caller) -> bool:
    return caller.admin or c.operator or c.owner == caller.tenant


def check_free(records: Records, name: str, caller: Caller) -> None:
    if (caller.tenant, name) in records or any(c.operator and c.name == name for c in records.values()):
        raise AlreadyExists(f"a candidate named {name!r} is already registered (see ListCandidates); remove it "
                            "first or choose another name")


def check_count(records: Records, caller: Caller, max_total: int, max_per_tenant: int) -> None:
    mine = sum(1 for c in records.values() if c.owner == caller.tenant)
    if mine >= max_per_tenant:
        raise ResourceExhausted(
            f"tenant {caller.tenant!r} has {mine} candidates registered, the limit (max_candidates_per_tenant); "
            "remove one first", limit="max_candidates_per_tenant",
        )
    if len(records) >= max_total:
        raise ResourceExhausted(
            f"the server holds {len(records)} candidates, the limit (max_candidates); retry once some are removed "
            "or expire", limit="max_candidates",
        )


def check_bytes(records: Records, size: int, caller: Caller, max_total: int, max_per_tenant: int) -> None:
    """The files' bytes of the candidates not FAILED, the tenant's and in all, with ``size`` more."""
    held = [c for c in records.values() if c.state is not State.FAILED]
    mine = sum(c.checked.located.size_bytes for c in held if c.owner == caller.tenant)
    if mine + size > max_per_tenant:
        raise ResourceExhausted(
            f"the source's files are {gib(size)}; tenant {caller.tenant!r} holds {gib(mine)} of candidates and may "
            f"hold {gib(max_per_tenant)} (max_candidate_bytes_per_tenant)", limit="max_candidate_bytes_per_tenant",
        )
    total = sum(c.checked.located.size_bytes for c in held)
    if total + size > max_total:
        raise ResourceExhausted(
            f"the source's files are {gib(size)}; the server holds {gib(total)} of candidates and may hold "
            f"{gib(max_total)} (max_candidate_bytes)", limit="max_candidate_bytes",
        )


def check_memory(records: Records, needed: int, room: int) -> None:
    """The host memory the candidates hold, with ``needed`` more, within ``room`` (the plan's free host memory)."""
    held = sum(c.memory_bytes for c in records.values())
    if held + needed > room:
        raise ResourceExhausted(
            f"the candidate holds {gib(needed)} in host memory (its LoRA factors in fp32); the memory plan "
            f"(memory_plan) leaves {gib(room)} of host memory free and candidates hold {gib(held)}: remove a "
            "candidate (`visage-server --memory-plan` shows the plan)", limit="memory_plan",
        )


def gib(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
