"""Request context: who is calling and which request this is, bound for the handler's duration.

What this module owns:
- ``tenant_var`` / ``request_id_var``: the servicer and the scheduler read them
  (``tenant_var.get()``), and both are bound into structlog's contextvars; ``admin_var``: whether
  the caller is in the admin group (directions it creates are the admins', it sees every tenant's).
- ``CallDecision`` / ``decision_var``: the auth decision for the call (who calls, whether it may),
  taken ONCE by the auth interceptor and read by the interceptors outside it (metrics, the call
  gate) through ``decided_tenant``, after their ``continuation`` has run the auth interceptor.
- ``request_id_of``: the caller's ``x-request-id`` (cut to 128 characters) or a fresh one.
- ``wrap_handler`` / ``run_bound``: rebuild a gRPC handler around its behaviour, and run that
  behaviour with the tenant and request id bound.

Why the handler is wrapped instead of the context variables being set in an interceptor's
``intercept_service``: grpc's sync server runs ``intercept_service`` in the polling thread and the
handler in a worker thread, so a contextvar set there is not seen by the handler. The wrapped
behaviour runs the handler in a fresh copy of the worker's context, so nothing leaks into the
next call that the same pooled thread serves.

Why ``decision_var`` can be read by the outer interceptors: grpc (1.6x and later; this project
needs 1.85) runs the whole interceptor chain of one call inside that call's own
``contextvars.Context``, nested, on one thread; so a value the auth interceptor sets is seen by
the interceptors that called it once their ``continuation`` returns, and by no other call.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

__all__ = [
    "ANONYMOUS",
    "Around",
    "Behaviour",
    "CallDecision",
    "admin_var",
    "bind",
    "decided_tenant",
    "decision_var",
    "metadata_value",
    "request_id_of",
    "request_id_var",
    "run_bound",
    "tenant_var",
    "wrap_handler",
]

ANONYMOUS = "anonymous"
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 128

tenant_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default=ANONYMOUS)
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
admin_var: contextvars.ContextVar[bool] = contextvars.ContextVar("admin", default=False)


@dataclass(frozen=True)
class CallDecision:
    """The auth decision for one call: its tenant, whether it is an admin, and the status code and
    message of its refusal (None: it may run)."""

    tenant: str = ANONYMOUS
    admin: bool = False
    refusal: tuple[grpc.StatusCode, str] | None = None


decision_var: contextvars.ContextVar[CallDecision | None] = contextvars.ContextVar("call_decision", default=None)


def decided_tenant() -> str:
    """The tenant the auth interceptor decided for this call; "anonymous" where none decided
    (a server without the auth interceptor)."""
    decision = decision_var.get()
    return decision.tenant if decision is not None else ANONYMOUS


def metadata_value(metadata: Iterable[Any] | None, key: str) -> str | None:
    for item in metadata or ():
        if item[0].lower() == key:
            value = item[1]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


Behaviour = Callable[[Any, grpc.ServicerContext], Any]
Around = Callable[[Behaviour, bool], Behaviour]


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    around: Around,
    *,
    pool: futures.ThreadPoolExecutor | None = None,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """Rebuild ``handler`` with its behaviour replaced by ``around(behaviour, response_streaming)``.

    Keeps the handler's kind and (de)serializers (``request_deserializer`` replaces the request's),
    so a wrapper works for all four RPC shapes. ``pool``: the thread pool grpc runs the call on
    (its ``experimental_thread_pool``); without it the wrapped behaviour keeps the one it had, so
    an outer interceptor does not undo an inner one's choice.
    """
    deserialize = request_deserializer or handler.request_deserializer
    for shape, build in _SHAPES:
        behaviour = getattr(handler, shape)
        if behaviour is not None:
            new = around(behaviour, shape.endswith("_stream"))
            chosen = pool or getattr(behaviour, "experimental_thread_pool", None)
            if chosen is not None:
                new.experimental_thread_pool = chosen  # type: ignore[attr-defined]
            return build(new, deserialize, handler.response_serializer)
    raise ValueError("a method handler without a behaviour")


_SHAPES: tuple[tuple[str, Callable[..., grpc.RpcMethodHandler]], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def request_id_of(metadata: Iterable[Any] | None) -> str:
    """The caller's request id (at most ``MAX_REQUEST_ID`` characters), else a fresh uuid4 hex."""
    return (metadata_value(metadata, REQUEST_ID_HEADER) or uuid.uuid4().hex)[:MAX_REQUEST_ID]


def bind(tenant: str, request_id: str, admin: bool = False) -> None:
    tenant_var.set(tenant)
    request_id_var.set(request_id)
    admin_var.set(admin)
    structlog.contextvars.bind_contextvars(tenant=tenant, request_id=request_id)


def run_bound(tenant: str, request_id: str, *, admin: bool = False) -> Around:
    """Run the behaviour inside a fresh context with the tenant, request id and admin flag bound."""

    def around(behaviour: Behaviour, streaming: bool) -> Behaviour:
        if not streaming:

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                ctx = contextvars.copy_context()
                ctx.run(bind, tenant, request_id, admin)
                return ctx.run(behaviour, request, context)

            return unary

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            ctx = contextvars.copy_context()
            ctx.run(bind, tenant, request_id, admin)
            responses = ctx.run(behaviour, request, context)
            try:
                while True:
                    try:
                        item = ctx.run(next, responses)
                    except StopIteration:
                        return
                    yield item
            finally:
                close = getattr(responses, "close", None)
                if close is not None:
                    ctx.run(close)

        return stream

    return around

