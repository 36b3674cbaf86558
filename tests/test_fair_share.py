"""Fair share of the job queue, proven on a REAL server: one tenant at its limit (or beyond the
queue's reserve) cannot shut out a tenant with nothing queued, a tenant that queues a job while
another floods the queue waits behind the running job only, and a per-tenant limit that would let
one tenant fill the whole queue is refused at start-up.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from serving import running_server, wait_for, worker_held

from safety_landscape.client import errors
from safety_landscape.client.client import generation
from safety_landscape.server.fair_share import Share, ShareRefusal, check_share
from safety_landscape.server.host import Job
from safety_landscape.v1 import landscape_pb2 as pb

TOKENS = "alice:tok-alice,bob:tok-bob,carol:tok-carol,dave:tok-dave"


def request() -> pb.GenerateRequest:
    return pb.GenerateRequest(prompts=["Hi"], generation=generation(2))


def test_a_tenant_at_its_share_leaves_the_reserve_to_newcomers():
    limits = {"max_queued_jobs": 8, "max_queued_jobs_per_tenant": 7, "queue_reserve": 2}
    with running_server(limits=limits, tokens_env=TOKENS) as server:
        host = server.app.host
        clients = {name: server.client(token=f"tok-{name}", retries=1) for name in ("alice", "bob", "carol", "dave")}
        try:
            with worker_held(host):
                queued = [clients["alice"]._landscape.Generate.future(request(), timeout=120) for _ in range(6)]
                wait_for(lambda: host.queue_depth() == 6, what="alice's six jobs")
                with pytest.raises(errors.ResourceExhaustedError, match="queue_reserve") as info:
                    clients["alice"].generate(["Hi"], settings=generation(2))  # under her limit of 7, but into the reserve
                assert info.value.retry_after_seconds > 0
                for name in ("bob", "carol"):  # tenants with nothing queued take the reserved slots
                    queued.append(clients[name]._landscape.Generate.future(request(), timeout=120))
                wait_for(lambda: host.queue_depth() == 8, what="bob's and carol's jobs")
                with pytest.raises(errors.ResourceExhaustedError, match="max_queued_jobs"):
                    clients["dave"].generate(["Hi"], settings=generation(2))  # the queue is full
            assert all(f.result().completions for f in queued)
            assert clients["dave"].info().limits.queue_reserve == 2
        finally:
            for c in clients.values():
                c.close()


def test_a_newcomer_waits_behind_the_running_job_only():
    # alice's first job runs (held on an event); four more of hers queue behind it; then bob queues
    # one. The tenant served least recently goes next: bob, although alice's jobs were there first.
    with running_server() as server:
        host = server.app.host
        order: list[str] = []
        running, release = threading.Event(), threading.Event()

        def job(tenant: str, name: str, *, hold: bool = False) -> Job[None]:
            def work(engine, cancel) -> None:
                if hold:
                    running.set()
                    release.wait(60)
                order.append(name)

            return Job(tenant=tenant, terms=None, work=work)

        futures = [host.submit(job("alice", "alice-0", hold=True))]
        assert running.wait(30)
        futures += [host.submit(job("alice", f"alice-{i}")) for i in range(1, 5)]
        futures.append(host.submit(job("bob", "bob-0")))
        release.set()
        for f in futures:
            f.result(30)
    assert order[:2] == ["alice-0", "bob-0"], order
    assert sorted(order[2:]) == [f"alice-{i}" for i in range(1, 5)]


def test_a_per_tenant_limit_at_the_queue_size_is_a_startup_error():
    out = subprocess.run(
        [sys.executable, "-m", "safety_landscape.server.cli", "--listen", "127.0.0.1:0", "--queue-size", "8",
         "--queue-per-tenant", "8"], capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "--queue-per-tenant (8) must be below --queue-size (8)" in out.stderr and "Traceback" not in out.stderr


def test_the_fair_share_rule():
    share = Share(total=8, per_tenant=5, reserve=2)
    assert check_share(share, taken=5, mine=5) is ShareRefusal.TENANT
    assert check_share(share, taken=6, mine=3) is ShareRefusal.RESERVE  # the last two are for newcomers
    assert check_share(share, taken=7, mine=0) is None  # a newcomer gets one
    assert check_share(share, taken=8, mine=0) is ShareRefusal.TOTAL
    assert check_share(share, taken=5, mine=4) is None
