"""Fair share of a bounded resource between tenants: a total, a per-tenant limit, and a reserve.

One rule serves the job queue (``host.py``) and the request threads (``calls.py``): a tenant may
take one more unit while the total is under ``total`` and its own count under ``per_tenant``;
the last ``reserve`` units go only to a tenant that holds none yet, so one tenant at its limit (or
several together) cannot shut a newcomer out. ``check_share`` is a pure function; the caller
holds whatever lock guards its counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Share", "ShareRefusal", "check_share"]


class ShareRefusal(str, Enum):
    TOTAL = "total"  # everything is taken
    TENANT = "tenant"  # this tenant holds its limit
    RESERVE = "reserve"  # only the reserve is left, and this tenant already holds some


@dataclass(frozen=True)
class Share:
    total: int
    per_tenant: int
    reserve: int = 0


def check_share(share: Share, *, taken: int, mine: int) -> ShareRefusal | None:
    """Why one more unit for a tenant that holds ``mine`` of ``taken`` is refused, or None."""
    if taken >= share.total:
        return ShareRefusal.TOTAL
    if mine >= share.per_tenant:
        return ShareRefusal.TENANT
    if mine > 0 and taken >= share.total - share.reserve:
        return ShareRefusal.RESERVE
    return None
