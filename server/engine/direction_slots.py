"""Who may take a direction slot from whom: the rules that keep tenants' directions apart.

The server holds at most ``max_directions`` directions (``weights.py`` holds them, least recently
used first). A direction belongs to the tenant whose call created it, and is an *admin's* when
that caller was an admin (or authentication is off). The rules:
  - an admin's new direction may replace any held direction the applied state and its request do
    not use, least recently used first (the plain LRU cap);
  - a non-admin tenant's directions (created on demand from the specs in its terms) count
    against its own ``tenant_direction_slots``: beyond them, and when every slot of the server is
    taken, its new direction replaces its own least recently used one, never another tenant's
    nor an admin's. When it has none to give up, RESOURCE_EXHAUSTED naming the limit;
  - a tenant sees its own directions and the admins'; an admin sees all.
``plan_room`` only chooses: it evicts nothing, so a request refused here (or later) costs
nobody a direction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import ResourceExhausted

__all__ = ["Caller", "Owned", "plan_room", "visible_to"]


@dataclass(frozen=True)
class Caller:
    tenant: str
    admin: bool = True


class Owned(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def admin(self) -> bool: ...


def visible_to(direction: Owned, caller: Caller) -> bool:
    return caller.admin or direction.admin or direction.owner == caller.tenant


def plan_room(
    held: Sequence[Owned], caller: Caller, *, new: int, in_use: Collection[str], max_directions: int, tenant_slots: int
) -> list[str]:
    """The ids to evict (oldest first) so that ``new`` more directions of ``caller`` fit."""
    free = [d.id for d in held if d.id not in in_use]
    over_cap = max(0, len(held) + new - max_directions)
    if caller.admin:
        if over_cap > len(free):
            raise ResourceExhausted(
                f"all {max_directions} direction slots (max_directions) are used by the applied state or this "
                "request; use fewer directions at once or raise --max-directions",
                limit="max_directions",
            )
        return free[:over_cap]
    own = [d for d in held if d.owner == caller.tenant and not d.admin]
    own_free = [d.id for d in own if d.id not in in_use]
    over_quota = max(0, len(own) + new - tenant_slots)
    if over_quota > len(own_free):
        raise ResourceExhausted(
            f"tenant {caller.tenant!r} would hold {len(own) + new} directions; its slots (tenant_direction_slots="
            f"{tenant_slots}) are all used by this request or the applied state: use fewer directions at once",
            limit="tenant_direction_slots",
        )
    needed = max(over_quota, over_cap)
    if needed > len(own_free):
        raise ResourceExhausted(
            f"all {max_directions} direction slots (max_directions) are held by other tenants' and admins' "
            f"directions, which tenant {caller.tenant!r} may not replace; ask an operator to raise "
            "--max-directions or to delete unused directions",
            limit="max_directions",
        )
    return own_free[:needed]
