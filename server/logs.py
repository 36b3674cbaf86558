"""Logging: structlog set up once per process (JSON in production, readable on a terminal), and
the interceptor that writes one line per request (method, status, duration, tenant, request id).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

from .auth import redact_secrets, wrap_handler

log = structlog.get_logger("safety_landscape.requests")


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

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return wrap_handler(handler, _around(method))


def _line(method: str, context: grpc.ServicerContext, started: float, code: grpc.StatusCode | None = None) -> None:
    code = code or context.code() or grpc.StatusCode.OK
    event = log.info if code in (grpc.StatusCode.OK,) else log.warning
    event("request", method=method, status=code.name, duration_ms=round((time.perf_counter() - started) * 1000, 2))


def _around(method: str):
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
            code = None
            try:
                yield from behaviour(request, context)
            except GeneratorExit:
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                _line(method, context, started, code)

        return stream

    return around
