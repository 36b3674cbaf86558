"""Tenants' directions are kept apart, proven through a REAL server with three tenants: mallory and
victor (tenants) and ops (an admin). A tenant's spec-created directions count against its own
slots and replace only its own; an admin's and other tenants' directions survive any number of
them; a refused request evicts nothing; a tenant lists its own and the admins' directions, an
admin lists all (with owners). The plain LRU cap of a server without tenants is
tests/test_perturbation_server.py's.
"""

from __future__ import annotations

import pytest
from serving import running_server

from safety_landscape.client import errors
from safety_landscape.client.client import generation, perturbation, random_direction
from safety_landscape.server.engine.direction_slots import Caller, plan_room
from safety_landscape.server.engine.weights import HeldDirection

TOKENS = "mallory:tok-mallory,victor:tok-victor,carol:tok-carol,ops:tok-ops:admin"
LIMITS = {"max_directions": 8, "tenant_direction_slots": 3}


@pytest.fixture
def server():
    with running_server(limits=LIMITS, tokens_env=TOKENS) as s:
        yield s


def at(seed: int, coefficient: float = 0.02):
    return perturbation([(random_direction(seed), coefficient)])


def held_ids(server) -> dict[str, str]:
    return {d.id: d.owner for d in server.engine.list_directions()}


def test_one_tenants_40_directions_leave_the_admins_and_the_others_usable(server):
    with server.client(token="tok-ops") as ops, server.client(token="tok-mallory") as mallory, \
            server.client(token="tok-victor") as victor:
        shared = ops.create_direction(random_direction(77))
        by_id = perturbation([(shared.id, 0.05)])
        before = [c.text for c in victor.generate(["Hi"], settings=generation(4), at=by_id).completions]
        victor.generate(["Hi"], settings=generation(2), at=at(500))  # victor's own direction
        for seed in range(1000, 1040):
            mallory.generate(["Hi"], settings=generation(1), at=at(seed))
        owners = held_ids(server)
        assert list(owners.values()).count("mallory") == 3  # her own slots, each replaced in turn
        assert owners[shared.id] == "ops" and "victor" in owners.values()
        after = [c.text for c in victor.generate(["Hi"], settings=generation(4), at=by_id).completions]
        assert after == before  # the admin's direction, by id, still there and the same
        with pytest.raises(errors.PermissionDeniedError):  # only an admin creates directions by name
            victor.create_direction(random_direction(5))


def test_a_tenant_lists_its_own_and_the_admins_an_admin_lists_all(server):
    with server.client(token="tok-ops") as ops, server.client(token="tok-mallory") as mallory, \
            server.client(token="tok-victor") as victor:
        shared = ops.create_direction(random_direction(78))
        mallory.generate(["Hi"], settings=generation(1), at=at(600))
        victor.generate(["Hi"], settings=generation(1), at=at(601))
        seen_by = {name: {(d.owner, d.admin_owned) for d in c.list_directions().directions}
                   for name, c in (("ops", ops), ("mallory", mallory), ("victor", victor))}
    assert seen_by["ops"] == {("ops", True), ("mallory", False), ("victor", False)}
    assert seen_by["mallory"] == {("ops", True), ("mallory", False)}
    assert seen_by["victor"] == {("ops", True), ("victor", False)}
    assert shared.admin_owned and shared.owner == "ops"


def test_a_refused_request_evicts_nothing(server):
    with server.client(token="tok-mallory", retries=1) as mallory:
        for seed in (700, 701, 702):
            mallory.generate(["Hi"], settings=generation(1), at=at(seed))
        before = held_ids(server)
        # Four new directions at once: more than her three slots can hold. Refused before any is built.
        four = perturbation([(random_direction(s), 0.01) for s in (710, 711, 712, 713)])
        with pytest.raises(errors.ResourceExhaustedError, match="tenant_direction_slots"):
            mallory.generate(["Hi"], settings=generation(1), at=four)
        # A new spec beside an unknown id: NOT_FOUND before any direction is built.
        mixed = perturbation([(random_direction(714), 0.01), ("d-0000000000000000", 0.01)])
        with pytest.raises(errors.NotFoundError):
            mallory.generate(["Hi"], settings=generation(1), at=mixed)
        assert held_ids(server) == before


def test_a_full_server_never_takes_another_tenants_slot(server):
    with server.client(token="tok-ops") as ops, server.client(token="tok-mallory", retries=1) as mallory, \
            server.client(token="tok-victor", retries=1) as victor, server.client(token="tok-carol", retries=1) as carol:
        for seed in (800, 801):
            ops.create_direction(random_direction(seed))
        for seed in (810, 811, 812):
            mallory.generate(["Hi"], settings=generation(1), at=at(seed))
            victor.generate(["Hi"], settings=generation(1), at=at(seed + 10))
        full = held_ids(server)
        assert len(full) == LIMITS["max_directions"]
        with pytest.raises(errors.ResourceExhaustedError, match="max_directions") as info:
            carol.generate(["Hi"], settings=generation(1), at=at(830))
        assert "other tenants" in info.value.details
        assert held_ids(server) == full  # nobody's direction was taken
        mallory.generate(["Hi"], settings=generation(1), at=at(840))  # her own oldest gives way
        now = held_ids(server)
        assert list(now.values()).count("mallory") == 3 and list(now.values()).count("victor") == 3
        assert sum(1 for owner in now.values() if owner == "ops") == 2


# -- the rule itself, without a server ---------------------------------------------------------


def held(did: str, owner: str, admin: bool = False) -> HeldDirection:
    return HeldDirection(id=did, spec=None, fingerprint="", norm=0.0, perturbed_tensors=0, total_tensors=0,  # type: ignore[arg-type]
                         create_seconds=0.0, owner=owner, admin=admin)


def test_plan_room_gives_way_only_to_what_a_caller_may_replace():
    lru = [held("a", "ops", admin=True), held("m1", "mallory"), held("v1", "victor"), held("m2", "mallory")]
    room = {"max_directions": 4, "tenant_slots": 2}
    assert plan_room(lru, Caller("ops", admin=True), new=1, in_use=set(), **room) == ["a"]  # plain LRU
    assert plan_room(lru, Caller("mallory", admin=False), new=1, in_use=set(), **room) == ["m1"]
    assert plan_room(lru, Caller("mallory", admin=False), new=1, in_use={"m1"}, **room) == ["m2"]
    with pytest.raises(Exception, match="tenant_direction_slots"):
        plan_room(lru, Caller("mallory", admin=False), new=1, in_use={"m1", "m2"}, **room)
    with pytest.raises(Exception, match="max_directions"):
        plan_room(lru, Caller("carol", admin=False), new=1, in_use=set(), **room)
    assert plan_room(lru, Caller("carol", admin=False), new=1, in_use=set(), max_directions=5, tenant_slots=2) == []
