"""All work is cancellable and deadline-bound, proven on a REAL server: a direction build past its
call's deadline stops within about a second and the worker serves the next call; SIGTERM during a
running direction build ends the process within the grace period plus a few seconds; building and
applying stop between tensors and leave nothing half-done behind. The build used is a reference-
stream draw with a huge index (the server refuses such an index by default; these servers allow it
so that the work is long enough to interrupt).
"""

from __future__ import annotations

import time

import pytest
import torch
from serving import ServerProcess, running_server, wait_for

from safety_landscape.client import errors
from safety_landscape.client.client import Client, generation, perturbation, random_direction
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.weights import WeightManager, model_fingerprint
from safety_landscape.server.errors import Cancelled
from safety_landscape.server.models.tiny import build_tiny_random

HUGE_INDEX = 2**32 - 1
LONG_BUILD = perturbation([(random_direction(3, stream="reference", index=HUGE_INDEX), 0.1)])


def test_a_build_past_its_deadline_stops_and_the_next_call_is_served():
    with running_server(limits={"max_reference_index": HUGE_INDEX}) as server, server.client(retries=1) as c:
        host = server.app.host
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceededError):
            c.generate(["Hi"], settings=generation(2), at=LONG_BUILD, timeout=2.0)
        wait_for(lambda: not host.busy(), 10, "the build to stop")
        stopped = time.monotonic() - started
        assert host.served[-1].outcome == "cancelled"
        assert stopped < 2.0 + 3.0  # the deadline, then about a second (a loaded machine gets slack)
        assert c.generate(["Hi"], settings=generation(2), timeout=10).completions  # the worker is free again
        assert not server.engine.list_directions()  # the half-built direction was not kept


def test_sigterm_during_a_direction_build_exits_within_the_grace_period():
    grace = 2.0
    with ServerProcess("--max-reference-index", str(HUGE_INDEX), "--grace-seconds", str(grace)) as proc:
        target = proc.wait_serving()
        with Client(target, retries=1) as c:
            call = c._landscape.Generate.future(
                _request(), timeout=600,
            )
            time.sleep(1.5)  # the worker picks the build up at once (nothing else is queued)
            assert not call.done()
            signalled = time.monotonic()
            code = proc.terminate(timeout=60)
            took = time.monotonic() - signalled
        assert code == 0
        assert took < grace + 5.0, proc.log()[-2000:]


def _request():
    from safety_landscape.v1 import landscape_pb2 as pb

    return pb.GenerateRequest(prompts=["Hi"], generation=generation(2), perturbation=LONG_BUILD)


def test_building_and_applying_stop_between_tensors():
    model, _ = build_tiny_random()
    wm = WeightManager(model, model_fingerprint=model_fingerprint(model))
    checks = []

    def stop_after(n: int):
        def should_cancel() -> bool:
            checks.append(1)
            return len(checks) > n

        return should_cancel

    with pytest.raises(Cancelled):
        wm.create(RandomSpec(5), should_cancel=stop_after(3))
    assert len(checks) == 4 and not wm.list()  # stopped at the 4th tensor; nothing held
    with pytest.raises(Cancelled):
        wm.create(RandomSpec(5, stream="reference", index=3), should_cancel=stop_after(len(checks) + 2))
    assert not wm.list()
    held, _ = wm.create(RandomSpec(5))
    checks.clear()
    with pytest.raises(Cancelled):
        wm.apply(((held.id, 0.5),), should_cancel=stop_after(2))
    # Stopped midway, the weights name no state; the next apply writes every tensor again.
    state = wm.apply(())
    assert state.switched and wm.weights_sha256() == wm.model_fingerprint
    with torch.no_grad():
        assert all(torch.equal(p, wm.pristine[n]) for n, p in wm.params)
