"""Threads and streams, proven through a REAL server: streams per tenant are bounded, a stream whose
client stops reading is cancelled (freeing its thread), health watches are bounded, and the health
check, GetInfo and another tenant's small calls are answered throughout; a drain is not held up by
an idle health Watch. The thread pools and bounds are server/calls.py's.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving import running_server, wait_for

from safety_landscape.client.client import generation
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

TOKENS = "mallory:tok-mallory,victor:tok-victor"
MALLORY = (("authorization", "Bearer tok-mallory"),)
# A client that stops reading: no window growth, a small stream window.
STUCK_READER = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]


def points_request(points: int = 1000) -> pb.EvaluatePointsRequest:
    """Large results (512 completions each) that cost little to make: a reader that stops soon blocks the sends."""
    settings = pb.EvaluationSettings(
        prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=[f"Story {i}" for i in range(512)])),
        generation=pb.GenerationSettings(max_new_tokens=1), return_completions=True, disable_early_stop=True,
    )
    return pb.EvaluatePointsRequest(settings=settings, points=[pb.Perturbation() for _ in range(points)])


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_unread_streams_are_bounded_and_cancelled_while_others_are_served():
    limits = {"max_streams": 4, "max_streams_per_tenant": 2, "stream_send_timeout_seconds": 1.0}
    with running_server(limits=limits, tokens_env=TOKENS) as server, \
            grpc.insecure_channel(server.target, options=STUCK_READER) as stuck, server.client(token="tok-victor") as victor:
        hog = pb_grpc.LandscapeServiceStub(stuck)
        streams = [hog.EvaluatePoints(points_request(), timeout=120, metadata=MALLORY) for _ in range(2)]
        gate = server.app.gate
        # grpc may hand the server concurrent new calls in any order: the third is sent only once
        # the server holds the first two, or it could take a slot and one of them be refused.
        wait_for(lambda: gate.work_in_flight() == 2, 30, "mallory's two streams held by the server")
        third = hog.EvaluatePoints(points_request(), timeout=120, metadata=MALLORY)
        with pytest.raises(grpc.RpcError) as refused:
            next(third)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_tenant" in refused.value.details()
        health = health_pb2_grpc.HealthStub(victor.channel)
        slowest, started = 0.0, time.monotonic()
        while gate.work_in_flight():  # the server cancels both once their sends stall (victor's calls end each turn)
            slowest = max(slowest, timed(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=3)),
                          timed(victor.info), timed(lambda: victor.generate(["Hi"], settings=generation(2), timeout=10)))
            time.sleep(0.1)
            assert time.monotonic() - started < 90, "the unread streams were never cancelled"
        for s in streams:  # the client learns it when it next reads
            with pytest.raises(grpc.RpcError) as ended:
                list(s)
            assert ended.value.code() is grpc.StatusCode.CANCELLED
        assert slowest < 3.0  # health, GetInfo and the other tenant's Generate were answered throughout
        again = hog.EvaluatePoints(points_request(1), timeout=120, metadata=MALLORY)
        assert len(list(again)) == 1  # her stream slots were given back


def test_health_watches_are_bounded_and_checks_still_answer():
    with running_server(limits={"max_health_watches": 2}) as server, grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=60) for _ in range(2)]
        assert all(next(w).status == health_pb2.HealthCheckResponse.SERVING for w in watches)
        with pytest.raises(grpc.RpcError) as refused:
            next(health.Watch(health_pb2.HealthCheckRequest(), timeout=60))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "max_health_watches" in refused.value.details()
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=3).status == health_pb2.HealthCheckResponse.SERVING
        watches[0].cancel()
        opened: list = []
        wait_for(lambda: _opened(health, opened), 30, "a watch in the slot given back")
        for w in (watches[1], *opened):
            w.cancel()


def _opened(health, opened: list) -> bool:
    watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
    try:
        ok = next(watch).status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    opened.append(watch)
    return ok


def test_an_idle_health_watch_does_not_hold_up_the_drain():
    with running_server() as server, grpc.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=120)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.extend(r.status for r in _quiet(watch)), daemon=True)
        reader.start()
        took = timed(lambda: server.app.drain(grace=30.0))
        reader.join(10)
        assert took < 5.0  # not the 30 s grace: nothing but the watch was open
        assert health_pb2.HealthCheckResponse.NOT_SERVING in seen and not reader.is_alive()  # told, then closed


def _quiet(responses):
    try:
        yield from responses
    except grpc.RpcError:
        return
