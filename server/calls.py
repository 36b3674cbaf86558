"""What one call may take from the server: a request thread, a stream, a health watch.

A sync gRPC server runs every call on a thread and holds it until the call ends, so the threads
are the resource that a flood of calls, or streams whose client stops reading, would take from
everyone. ``CallGate`` (an interceptor) gives each kind of call its own threads and bounds them:
  - probes (health ``Check``) and information calls (``GetInfo``, the listings, reflection) run
    on small pools of their own, so they are answered however busy the work threads are;
  - work calls (everything else) share the work pool, ``Limits.calls_in_flight()`` threads, as a
    fair share (``fair_share.py``: at most ``Limits.calls_per_tenant()`` per tenant, an eighth
    kept for tenants with no call in progress); both leave room for bursts that the job queue
    refuses at once, so in normal use the queue's own limits are what a caller meets.
    ``EvaluatePoints`` streams also count against ``max_streams`` / ``max_streams_per_tenant``;
    health ``Watch`` streams against
    ``max_health_watches``. A call over a bound is refused at once with RESOURCE_EXHAUSTED, on a
    pool of its own, without waiting for a work thread;
  - a stream whose client has not taken a result for ``stream_send_timeout_seconds`` (its send is
    blocked on HTTP/2 flow control) is cancelled, which frees its thread;
  - a request whose bytes do not decode answers INVALID_ARGUMENT (grpc itself answers INTERNAL):
    a unary request before its handler runs, a request stream (reflection's) at its first bad
    message.
The decision is made in ``intercept_service``, which grpc runs on its polling thread; a unit is
given back when the pool finishes the call (``_Accounted``), whether or not its handler ran.
``wait_idle`` tells a drain when no work call is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import grpc
import structlog

from .auth import HEALTH_METHODS, REFLECTION_METHODS
from .config import CALL_SPARE, Limits
from .context import Behaviour, decided_tenant, wrap_handler
from .fair_share import Share, ShareRefusal, check_share
from .metrics import ServerMetrics

__all__ = ["CallGate", "CallKind", "call_kind"]

log = structlog.get_logger("safety_landscape.calls")
_LANDSCAPE, _DIRECTIONS = "/safety_landscape.v1.LandscapeService/", "/safety_landscape.v1.DirectionService/"
INFO_METHODS = frozenset({
    _LANDSCAPE + "GetInfo", _LANDSCAPE + "ListPromptSets", _DIRECTIONS + "ListDirections", _DIRECTIONS + "ListRegistry",
}) | REFLECTION_METHODS
STREAM_METHODS = frozenset({_LANDSCAPE + "EvaluatePoints"})
WATCH_METHOD = "/grpc.health.v1.Health/Watch"
PROBE_THREADS, INFO_THREADS, REFUSAL_THREADS = 2, 4, 2
MONITOR_SECONDS = 0.5


class CallKind(str, Enum):
    PROBE = "probe"
    INFO = "info"
    WATCH = "watch"
    STREAM = "stream"
    WORK = "work"


def call_kind(method: str) -> CallKind:
    if method == WATCH_METHOD:
        return CallKind.WATCH
    if method in HEALTH_METHODS:
        return CallKind.PROBE
    if method in INFO_METHODS:
        return CallKind.INFO
    return CallKind.STREAM if method in STREAM_METHODS else CallKind.WORK


class _Undecodable:
    """Stands for a request whose bytes did not parse (the handler answers INVALID_ARGUMENT)."""


UNDECODABLE = _Undecodable()


class _Accounted(futures.ThreadPoolExecutor):
    """A view of ``target`` that calls ``release`` once the call it was given has finished.

    grpc takes a per-handler pool only if it is a ThreadPoolExecutor; this one starts no threads.
    """

    def __init__(self, target: futures.ThreadPoolExecutor, release: Callable[[], None]) -> None:
        self._target = target  # no super().__init__(): every call is run by the target's threads
        self._release = release

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        try:
            future = self._target.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _done: self._release())
        return future


@dataclass
class _Counts:
    total: int = 0
    by_tenant: dict[str, int] = field(default_factory=dict)

    def take(self, tenant: str) -> None:
        self.total += 1
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + 1

    def give(self, tenant: str) -> None:
        self.total -= 1
        left = self.by_tenant[tenant] - 1
        if left:
            self.by_tenant[tenant] = left
        else:
            del self.by_tenant[tenant]


class CallGate(grpc.ServerInterceptor):
    """Threads per kind of call, fair shares of the work threads, bounded streams (module doc)."""

    def __init__(self, limits: Limits, *, metrics: ServerMetrics | None = None) -> None:
        self.limits = limits
        self._metrics = metrics
        work = limits.calls_in_flight()
        self.work_pool = futures.ThreadPoolExecutor(max_workers=work, thread_name_prefix="grpc-work")
        self._pools = {
            CallKind.PROBE: futures.ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="grpc-probe"),
            CallKind.INFO: futures.ThreadPoolExecutor(INFO_THREADS, thread_name_prefix="grpc-info"),
            CallKind.WATCH: futures.ThreadPoolExecutor(limits.max_health_watches, thread_name_prefix="grpc-watch"),
        }
        self._refusals = futures.ThreadPoolExecutor(REFUSAL_THREADS, thread_name_prefix="grpc-refusal")
        self._call_share = Share(work, limits.calls_per_tenant(), max(1, work // 8))
        self._stream_share = Share(limits.max_streams, limits.max_streams_per_tenant)
        self._calls, self._streams, self._watches = _Counts(), _Counts(), _Counts()
        self._cond = threading.Condition()
        self._sending: dict[object, tuple[float, grpc.ServicerContext]] = {}
        self._closed = threading.Event()
        threading.Thread(target=self._monitor, name="stream-monitor", daemon=True).start()

    @property
    def pool_threads(self) -> int:
        """Every thread the gate's pools may start (for grpc's bound on concurrent calls)."""
        limits = self.limits
        return limits.calls_in_flight() + PROBE_THREADS + INFO_THREADS + limits.max_health_watches + REFUSAL_THREADS

    # -- the decision, on grpc's polling thread --------------------------------------------------

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = call_kind(handler_call_details.method)
        if kind in (CallKind.PROBE, CallKind.INFO):
            return self._route(handler, self._pools[kind])
        tenant = decided_tenant()  # the auth interceptor's, which ``continuation`` ran
        with self._cond:
            refusal = self._refusal(kind, tenant)
            if refusal is None:
                for counts in self._counts(kind):
                    counts.take(tenant)
        if refusal is not None:
            if self._metrics is not None:
                self._metrics.reject("busy")
            return wrap_handler(handler, _refuse(refusal), pool=self._refusals)
        pool = self._pools[CallKind.WATCH] if kind is CallKind.WATCH else self.work_pool
        return self._route(handler, _Accounted(pool, lambda: self._give(kind, tenant)), watched=kind is CallKind.STREAM)

    def _counts(self, kind: CallKind) -> list[_Counts]:
        if kind is CallKind.WATCH:
            return [self._watches]
        return [self._calls, self._streams] if kind is CallKind.STREAM else [self._calls]

    def _refusal(self, kind: CallKind, tenant: str) -> str | None:
        """Why a call of ``kind`` from ``tenant`` is refused now (call with the lock held), or None."""
        limits = self.limits
        if kind is CallKind.WATCH:
            if self._watches.total >= limits.max_health_watches:
                return f"{self._watches.total} health Watch streams are open, the limit (max_health_watches)"
            return None
        why = check_share(self._call_share, taken=self._calls.total, mine=self._calls.by_tenant.get(tenant, 0))
        if why is not None:
            return _call_refusal(why, tenant, self._call_share)
        if kind is CallKind.STREAM:
            mine = self._streams.by_tenant.get(tenant, 0)
            why = check_share(self._stream_share, taken=self._streams.total, mine=mine)
            if why is ShareRefusal.TENANT:
                return f"tenant {tenant!r} has {mine} EvaluatePoints streams open, the limit (max_streams_per_tenant)"
            if why is not None:
                return f"{self._streams.total} EvaluatePoints streams are open, the limit (max_streams)"
        return None

    def _give(self, kind: CallKind, tenant: str) -> None:
        with self._cond:
            for counts in self._counts(kind):
                counts.give(tenant)
            self._cond.notify_all()

    def _route(self, handler: grpc.RpcMethodHandler, pool: futures.ThreadPoolExecutor, *, watched: bool = False
               ) -> grpc.RpcMethodHandler:
        """``handler`` run on ``pool``, with undecodable requests refused (and its sends watched)."""
        deserialize = handler.request_deserializer
        tolerant = _tolerant(deserialize) if deserialize is not None else None
        request_stream = bool(handler.stream_unary or handler.stream_stream)
        return wrap_handler(handler, self._guard(watched, request_stream=request_stream), pool=pool,
                            request_deserializer=tolerant)

    # -- on the call's own thread ---------------------------------------------------------------

    def _guard(self, watched: bool, *, request_stream: bool) -> Callable[[Behaviour, bool], Behaviour]:
        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            """The request, refused if it did not decode; a request stream, refused at its first bad message."""
            if request_stream:
                return _checked_requests(request, context)
            _refuse_undecodable(request, context)
            return request

        def around(behaviour: Behaviour, streaming: bool) -> Behaviour:
            if not streaming:

                def unary(request: Any, context: grpc.ServicerContext) -> Any:
                    return behaviour(checked(request, context), context)

                return unary

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                responses = behaviour(checked(request, context), context)
                if not watched:
                    yield from responses
                    return
                token = object()
                try:
                    for response in responses:
                        with self._cond:
                            self._sending[token] = (time.monotonic(), context)
                        yield response  # grpc sends it; we resume once the client's window took it
                        with self._cond:
                            self._sending.pop(token, None)
                finally:
                    with self._cond:
                        self._sending.pop(token, None)

            return stream

        return around

    def _monitor(self) -> None:
        """Cancel the streams whose client has not taken a result for the timeout."""
        timeout = self.limits.stream_send_timeout_seconds
        while not self._closed.wait(MONITOR_SECONDS):
            now = time.monotonic()
            with self._cond:
                stuck = [(token, ctx) for token, (since, ctx) in self._sending.items() if now - since > timeout]
                for token, _ in stuck:
                    del self._sending[token]
            for _, ctx in stuck:
                log.warning("stream cancelled: its client has not read a result", seconds=timeout)
                ctx.cancel()

    # -- draining -------------------------------------------------------------------------------

    def work_in_flight(self) -> int:
        with self._cond:
            return self._calls.total

    def watches_open(self) -> int:
        with self._cond:
            return self._watches.total

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no work call is in progress or ``deadline`` (time.monotonic()); whether idle."""
        with self._cond:
            while self._calls.total and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            return self._calls.total == 0

    def close(self) -> None:
        self._closed.set()
        for pool in (self.work_pool, self._refusals, *self._pools.values()):
            pool.shutdown(wait=False, cancel_futures=True)


def _call_refusal(why: ShareRefusal, tenant: str, share: Share) -> str:
    if why is ShareRefusal.TOTAL:
        return (f"the server is handling {share.total} calls, its limit "
                f"(max_queued_jobs + max_streams + {2 * CALL_SPARE} request threads)")
    if why is ShareRefusal.TENANT:
        return (f"tenant {tenant!r} has {share.per_tenant} calls in progress, its limit "
                f"(max_queued_jobs_per_tenant + max_streams_per_tenant + {CALL_SPARE})")
    return (f"tenant {tenant!r} has calls in progress and the last {share.reserve} request threads are kept for "
            "tenants with none")


def _refuse(message: str) -> Callable[[Behaviour, bool], Behaviour]:
    def around(behaviour: Behaviour, streaming: bool) -> Behaviour:
        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", "1000"),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message + "; retry in a second")

        if not streaming:
            return refuse

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            refuse(request, context)
            yield  # pragma: no cover - makes this a generator, as a streaming handler must be

        return stream

    return around


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError and kin: answered INVALID_ARGUMENT by the handler
            return UNDECODABLE

    return parse


def _checked_requests(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        _refuse_undecodable(request, context)  # raises inside the handler's loop: the call ends with the status
        yield request


def _refuse_undecodable(request: Any, context: grpc.ServicerContext) -> None:
    if request is UNDECODABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      "the request bytes are not a valid message of this method's request type (see the v1 contract)")
