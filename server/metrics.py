"""Prometheus metrics of the server: one ``visage_`` prefix, bounded labels, a private registry.

What this module owns:
- ``ServerMetrics``: every metric the server exports, on its own ``CollectorRegistry`` (never the
  process-global default, so tests and several servers in one process do not collide).
- ``ServerMetrics.tenant_label``: keeps the ``tenant`` label bounded (known tenants, then at most
  ``tenant_cap`` distinct values, then "other").
- ``MetricsInterceptor``: counts every RPC by method, status code and tenant and times it.
- ``start_http``: the ``/metrics`` endpoint (``--metrics-port`` / ``VISAGE_METRICS_PORT``).

Labels are bounded by construction: ``method`` only takes registered method names (unknown ones
are answered UNIMPLEMENTED by grpc before the interceptor wraps anything), ``code`` is a gRPC
status name, ``reason`` and ``kind`` come from fixed tuples (anything else is counted as "other").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from .context import ANONYMOUS, decided_tenant, wrap_handler

if TYPE_CHECKING:
    from .engine.memory_plan import MemoryPlan

__all__ = [
    "MEMORY_KINDS",
    "OTHER",
    "REJECT_REASONS",
    "MetricsHTTPServer",
    "MetricsInterceptor",
    "ServerMetrics",
]

PREFIX = "visage_"
OTHER = "other"
# "device" is memory in use on the device (CUDA) or the RSS (CPU); "limit" is the device's capacity,
# so an alert can compare the two without knowing the card.
MEMORY_KINDS = ("model", "pristine", "directions", "device", "limit")
REJECT_REASONS = (
    "queue_full",  # the server's whole queue is full
    "tenant_queue_full",  # one tenant's share of the queue is full
    "too_large",  # a request over a limit (prompts, tokens, message bytes)
    "draining",  # the server is shutting down
    "not_ready",  # still loading or warming up
    "direction_limit",  # max directions (in all or per tenant)
    "busy",  # no request thread, stream or watch left for the caller (calls.py)
    OTHER,
)
# Seconds: RPCs range from a GetInfo (ms) to an EvaluatePoints stream over a grid (tens of minutes).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """All server metrics. Pass it (not globals) to the interceptor, scheduler and engine."""

    def __init__(self, *, known_tenants: Iterable[str] = (), tenant_cap: int = 50) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, p = self.registry, PREFIX
        # -- RPC surface
        self.requests_total = Counter(
            p + "requests", "RPCs handled, by method, status code and tenant", ["method", "code", "tenant"], registry=r
        )
        self.request_seconds = Histogram(
            p + "request_seconds", "RPC latency in seconds, by method", ["method"], buckets=REQUEST_BUCKETS, registry=r
        )
        self.rejected_total = Counter(p + "rejected", "Requests refused before running, by reason", ["reason"], registry=r)
        self.cancelled_jobs_total = Counter(
            p + "cancelled_jobs", "Jobs dropped because the caller cancelled or its deadline passed", registry=r
        )
        # -- scheduling
        self.queue_depth = Gauge(p + "queue_depth", "Jobs waiting for the device", registry=r)
        self.queued_jobs = Gauge(p + "queued_jobs", "Jobs waiting for the device, by tenant", ["tenant"], registry=r)
        self.batch_size = Histogram(
            p + "batch_size", "Sequences per forward batch", buckets=BATCH_BUCKETS, registry=r
        )
        # -- generation
        self.generated_tokens_total = Counter(p + "generated_tokens", "Tokens generated", registry=r)
        self.tokens_saved_total = Counter(
            p + "tokens_saved", "Tokens not generated thanks to the exact early stop of the keyword judge", registry=r
        )
        self.decode_tokens_per_second = Gauge(
            p + "decode_tokens_per_second", "Decode throughput of the last batch (tokens/s)", registry=r
        )
        self.prefill_seconds = Histogram(
            p + "prefill_seconds", "Prefill time per batch in seconds", buckets=STEP_BUCKETS, registry=r
        )
        self.decode_seconds = Histogram(
            p + "decode_seconds", "Decode time per batch in seconds", buckets=STEP_BUCKETS, registry=r
        )
        self.oom_splits_total = Counter(
            p + "oom_splits", "Batches split in two and retried after a device out-of-memory", registry=r
        )
        # -- weight state
        self.weight_switches_total = Counter(p + "weight_switches", "Weight-state changes applied", registry=r)
        self.weight_switch_seconds = Histogram(
            p + "weight_switch_seconds", "Time to apply a weight state in seconds", buckets=STEP_BUCKETS, registry=r
        )
        self.points_evaluated_total = Counter(p + "points_evaluated", "Perturbation points evaluated", registry=r)
        # -- memory and start-up
        self.device_memory_bytes = Gauge(
            p + "device_memory_bytes", "Memory held in bytes, by kind (model/pristine/directions/device)", ["kind"], registry=r
        )
        self.memory_plan_bytes = Gauge(
            p + "memory_plan_bytes", "The memory plan in bytes, by device and kind (model/pristine/directions/scratch/"
            "kv_cache/activations/runtime/total/capacity)", ["device", "kind"], registry=r,
        )
        self.memory_plan_fits = Gauge(
            p + "memory_plan_fits", "1 when the memory plan fits the device, else 0", ["device"], registry=r
        )
        self.model_load_seconds = Gauge(p + "model_load_seconds", "Seconds the model took to load", registry=r)
        # Mirrors the grpc.health.v1 status (1 SERVING, 0 loading/warming/draining) so alerts can see it.
        self.serving = Gauge(p + "serving", "1 while the health service reports SERVING, else 0", registry=r)

        self._tenant_cap = tenant_cap
        self._tenant_lock = threading.Lock()
        self._tenants: set[str] = set()
        self.set_known_tenants(known_tenants)

    # -- bounded labels ---------------------------------------------------------------------
    def set_known_tenants(self, names: Iterable[str]) -> None:
        """Tenants of the token store get their own label first (up to the cap), plus "anonymous"."""
        with self._tenant_lock:
            for name in [ANONYMOUS, *sorted(set(names))]:
                if len(self._tenants) < self._tenant_cap:
                    self._tenants.add(name)

    def tenant_label(self, name: str) -> str:
        """``name`` while fewer than ``tenant_cap`` distinct tenants were seen, then "other"."""
        with self._tenant_lock:
            if name in self._tenants:
                return name
            if len(self._tenants) < self._tenant_cap:
                self._tenants.add(name)
                return name
            return OTHER

    # -- helpers for the scheduler and engine ---------------------------------------------
    def reject(self, reason: str) -> None:
        self.rejected_total.labels(reason=reason if reason in REJECT_REASONS else OTHER).inc()

    def set_queued(self, per_tenant: dict[str, int]) -> None:
        """Set ``queue_depth`` and ``queued_jobs{tenant}`` from a snapshot of the queue."""
        self.queue_depth.set(sum(per_tenant.values()))
        folded: dict[str, int] = {}
        for name, count in per_tenant.items():
            label = self.tenant_label(name)
            folded[label] = folded.get(label, 0) + count
        for label in set(self._tenants | {OTHER}):
            self.queued_jobs.labels(tenant=label).set(folded.get(label, 0))

    def set_device_memory(self, **bytes_by_kind: int) -> None:
        """``set_device_memory(model=..., pristine=..., directions=..., device=..., limit=...)``."""
        for kind, value in bytes_by_kind.items():
            if kind not in MEMORY_KINDS:
                raise ValueError(f"unknown memory kind {kind!r}; known: {', '.join(MEMORY_KINDS)}")
            self.device_memory_bytes.labels(kind=kind).set(value)

    def set_memory_plan(self, plan: MemoryPlan | None) -> None:
        """The plan's figures per device (the ``device`` label takes the plan's few device names)."""
        if plan is None:
            return
        for row in plan.devices:
            for kind, value in row.figures().items():
                self.memory_plan_bytes.labels(device=row.device, kind=kind).set(value)
            self.memory_plan_fits.labels(device=row.device).set(1 if row.fits else 0)

    def observe_decode(self, *, tokens: int, seconds: float) -> None:
        """Set the ``decode_tokens_per_second`` gauge from one batch. Only the gauge: the caller
        counts ``generated_tokens_total`` and observes ``decode_seconds`` itself."""
        if seconds > 0:
            self.decode_tokens_per_second.set(tokens / seconds)

    # -- exposition -------------------------------------------------------------------------
    def metric_names(self) -> frozenset[str]:
        """Every sample name the registry can export (with _total/_bucket/_sum/_count/_created)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.add(family.name)
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
            }.get(family.type, ())
            names.update(family.name + s for s in suffixes)
        return frozenset(names)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def start_http(self, port: int, addr: str = "0.0.0.0") -> MetricsHTTPServer:
        """Serve ``/metrics`` on ``addr:port`` (port 0 picks one) in a daemon thread."""
        server, thread = start_http_server(port, addr, registry=self.registry)
        return MetricsHTTPServer(server=server, thread=thread)


@dataclass
class MetricsHTTPServer:
    """Handle on the metrics endpoint: ``port`` it listens on and ``stop()``."""

    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Count RPCs by method/code/tenant and time them.

    Put it FIRST in the interceptor list so it also counts calls the auth interceptor refuses.
    The tenant is the auth interceptor's decision (``decided_tenant``), read once ``continuation``
    has run it.
    """

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        tenant = self._metrics.tenant_label(decided_tenant())
        return wrap_handler(handler, self._around(method, tenant))

    def _record(self, method: str, tenant: str, code: grpc.StatusCode | None, started: float) -> None:
        name = (code or grpc.StatusCode.OK).name
        self._metrics.requests_total.labels(method=method, code=name, tenant=tenant).inc()
        self._metrics.request_seconds.labels(method=method).observe(time.perf_counter() - started)

    def _around(self, method: str, tenant: str) -> Callable[[Callable[..., Any], bool], Callable[..., Any]]:
        def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
            if not streaming:

                def unary(request: Any, context: grpc.ServicerContext) -> Any:
                    started = time.perf_counter()
                    try:
                        response = behaviour(request, context)
                    except Exception:
                        self._record(method, tenant, context.code() or grpc.StatusCode.UNKNOWN, started)
                        raise
                    self._record(method, tenant, context.code(), started)
                    return response

                return unary

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started = time.perf_counter()
                code: grpc.StatusCode | None = None
                try:
                    yield from behaviour(request, context)
                    code = context.code()
                except GeneratorExit:  # the client went away mid-stream
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    self._record(method, tenant, code, started)

            return stream

        return around
