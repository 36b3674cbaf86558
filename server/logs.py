"""Logging: structlog set up once per process (JSON in production, readable on a terminal), the
interceptor that writes one line per request (method, status, duration, tenant, request id), and
``redact_secrets``, the processor that keeps tokens out of every log line.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import grpc
import structlog

from .context import Around, wrap_handler

__all__ = ["REDACTED", "RequestLogInterceptor", "configure_logging", "redact_secrets"]

log = structlog.get_logger("safety_landscape.requests")


_SECRET_KEYS = re.compile(
    r"^(authorization|proxy_authorization|token|access_token|auth_token|bearer_token|id_token|"
    r"refresh_token|api_key|apikey|password|passwd|secret|client_secret)$|_(password|secret)$",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,'\")]+")
REDACTED = "***"


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, value)
    if isinstance(value, bytes):
        return _redact(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else _redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # ("authorization", "xyz") pairs, as in gRPC metadata
        if len(value) == 2 and isinstance(value[0], str) and _SECRET_KEYS.search(value[0]):
            return (value[0], REDACTED) if isinstance(value, tuple) else [value[0], REDACTED]
        items = [_redact(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def redact_secrets(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask values of secret-named keys and ``Bearer xxx`` in any string."""
    return {
        key: (REDACTED if _SECRET_KEYS.search(key) else _redact(value)) for key, value in event_dict.items()
    }


def configure_logging(fmt: str = "auto", level: int = logging.INFO) -> None:
    """fmt: "json", "console", or "auto" (console on a terminal, JSON otherwise)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format {fmt!r}: use auto, json or console")
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class RequestLogInterceptor(grpc.ServerInterceptor):
    """One log line per request. Put it AFTER the auth interceptor so tenant and request id are bound."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return wrap_handler(handler, _around(method))


def _line(method: str, context: grpc.ServicerContext, started: float, code: grpc.StatusCode | None = None) -> None:
    code = code or context.code() or grpc.StatusCode.OK
    event = log.info if code in (grpc.StatusCode.OK,) else log.warning
    event("request", method=method, status=code.name, duration_ms=round((time.perf_counter() - started) * 1000, 2))


def _around(method: str) -> Around:
    def around(behaviour: Callable[..., Any], streaming: bool) -> Callable[..., Any]:
        if not streaming:

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    return behaviour(request, context)
                finally:
                    _line(method, context, started)

            return unary

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            code: grpc.StatusCode | None = None
            try:
                yield from behaviour(request, context)
            except GeneratorExit:
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                _line(method, context, started, code)

        return stream

    return around
