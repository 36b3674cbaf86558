"""Server metrics: counters moved by the interceptor on a real server, exposition, bounded labels."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from safety_landscape.server.auth import AuthInterceptor, TokenStore
from safety_landscape.server.context import tenant_var
from safety_landscape.server.metrics import MetricsInterceptor, ServerMetrics

SERVICE = "safety_landscape.v1.LandscapeService"
GET_INFO = f"/{SERVICE}/GetInfo"
SCORE = f"/{SERVICE}/Score"
GENERATE = f"/{SERVICE}/Generate"
POINTS = f"/{SERVICE}/EvaluatePoints"
CREATE = "/safety_landscape.v1.DirectionService/CreateDirection"

EXPECTED_NAMES = [
    "visage_requests_total", "visage_request_seconds", "visage_queue_depth", "visage_queued_jobs",
    "visage_batch_size", "visage_generated_tokens_total", "visage_tokens_saved_total",
    "visage_decode_tokens_per_second", "visage_prefill_seconds", "visage_decode_seconds",
    "visage_weight_switches_total", "visage_weight_switch_seconds", "visage_points_evaluated_total",
    "visage_rejected_total", "visage_device_memory_bytes", "visage_model_load_seconds",
    "visage_oom_splits_total", "visage_cancelled_jobs_total",
]


def _ok(request: bytes, context: grpc.ServicerContext) -> bytes:
    return tenant_var.get().encode()


def _not_found(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, 'unknown prompt set "x"')


def _boom(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise RuntimeError("bug")


def _points(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"1"
    yield b"2"


@pytest.fixture
def served() -> Iterator[tuple[ServerMetrics, grpc.Channel]]:
    store = TokenStore.from_env("alice:ta,ops:to:admin")
    metrics = ServerMetrics(known_tenants=store.tenant_names())
    auth = AuthInterceptor(store)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[MetricsInterceptor(metrics), auth],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "GetInfo": grpc.unary_unary_rpc_method_handler(_ok),
                    "Score": grpc.unary_unary_rpc_method_handler(_not_found),
                    "Generate": grpc.unary_unary_rpc_method_handler(_boom),
                    "EvaluatePoints": grpc.unary_stream_rpc_method_handler(_points),
                },
            ),
            grpc.method_handlers_generic_handler(
                "safety_landscape.v1.DirectionService", {"CreateDirection": grpc.unary_unary_rpc_method_handler(_ok)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield metrics, channel
    server.stop(None)


def _call(channel: grpc.Channel, method: str, token: str | None) -> grpc.StatusCode:
    md = [("authorization", f"Bearer {token}")] if token else []
    try:
        if method == POINTS:
            list(channel.unary_stream(method)(b"", metadata=md, timeout=30))
        else:
            channel.unary_unary(method)(b"", metadata=md, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _count(metrics: ServerMetrics, method: str, code: str, tenant: str) -> float:
    value = metrics.registry.get_sample_value(
        "visage_requests_total", {"method": method, "code": code, "tenant": tenant}
    )
    return value or 0.0


def test_interceptor_counts_by_method_code_and_tenant(served: tuple[ServerMetrics, grpc.Channel]) -> None:
    metrics, channel = served
    calls = [
        (GET_INFO, "ta", "OK", "alice"),
        (GET_INFO, "ta", "OK", "alice"),
        (GET_INFO, None, "UNAUTHENTICATED", "anonymous"),
        (GET_INFO, "wrong", "UNAUTHENTICATED", "anonymous"),
        (CREATE, "ta", "PERMISSION_DENIED", "alice"),
        (CREATE, "to", "OK", "ops"),
        (SCORE, "ta", "NOT_FOUND", "alice"),
        (GENERATE, "to", "UNKNOWN", "ops"),
        (POINTS, "to", "OK", "ops"),
    ]
    for method, token, code, _ in calls:
        assert _call(channel, method, token).name == code
    for method, _, code, tenant in set(calls):
        expected = sum(1 for c in calls if c[0] == method and c[2] == code and c[3] == tenant)
        assert _count(metrics, method, code, tenant) == expected, (method, code, tenant)
    assert metrics.registry.get_sample_value("visage_request_seconds_count", {"method": GET_INFO}) == 4
    assert metrics.registry.get_sample_value("visage_request_seconds_count", {"method": POINTS}) == 1


def test_render_contains_every_metric() -> None:
    metrics = ServerMetrics()
    metrics.reject("queue_full")
    metrics.reject("made-up reason")
    metrics.set_device_memory(model=10, pristine=10, directions=2, device=30)
    metrics.observe_decode(tokens=100, seconds=0.5)
    metrics.set_queued({"alice": 2, "anonymous": 1})
    text = metrics.render().decode()
    for name in EXPECTED_NAMES:
        assert f"# HELP {name} " in text, name
        assert name in metrics.metric_names()
    assert all(line.startswith(("#", "visage_")) for line in text.splitlines() if line)
    r = metrics.registry
    assert r.get_sample_value("visage_rejected_total", {"reason": "other"}) == 1
    assert r.get_sample_value("visage_decode_tokens_per_second") == pytest.approx(200.0, abs=1e-9)
    assert r.get_sample_value("visage_queue_depth") == 3
    assert r.get_sample_value("visage_queued_jobs", {"tenant": "alice"}) == 2
    assert r.get_sample_value("visage_device_memory_bytes", {"kind": "device"}) == 30
    with pytest.raises(ValueError, match="unknown memory kind"):
        metrics.set_device_memory(gpu=1)
    # a private registry: two instances never collide
    ServerMetrics().requests_total.labels(method="m", code="OK", tenant="anonymous").inc()


def test_tenant_label_cap() -> None:
    metrics = ServerMetrics(known_tenants=["a", "b"], tenant_cap=4)
    assert [metrics.tenant_label(n) for n in ["a", "b", "anonymous", "c", "d", "a"]] == [
        "a", "b", "anonymous", "c", "other", "a",
    ]
    default = ServerMetrics()
    labels = {default.tenant_label(f"t{i}") for i in range(200)}
    assert len(labels) == 50 and "other" in labels  # 48 new names + anonymous + other
    known = ServerMetrics(known_tenants=[f"k{i}" for i in range(10)])
    for i in range(100):
        known.tenant_label(f"x{i}")
    assert known.tenant_label("k7") == "k7" and known.tenant_label("x99") == "other"


def test_http_endpoint() -> None:
    metrics = ServerMetrics()
    metrics.points_evaluated_total.inc(3)
    handle = metrics.start_http(0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{handle.port}/metrics", timeout=30) as reply:
            body = reply.read().decode()
    finally:
        handle.stop()
    assert "visage_points_evaluated_total 3.0" in body
    assert "python_gc" not in body  # the default registry's collectors are not mixed in
