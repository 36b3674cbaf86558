"""Client-side credentials: TLS/mTLS channel credentials, the bearer token and its interceptor.

Torch-free (grpc and the standard library only).

The token is attached by a client interceptor rather than ``grpc.access_token_call_credentials``
because call credentials are refused on insecure channels; the interceptor works on both. A token
sent over an insecure channel travels in clear text: only do that on loopback or in tests, and use
``channel_credentials(ca_file=...)`` for anything that crosses a network.

Token precedence (``resolve_token``): the ``--token`` flag, then ``--token-file``, then the env
var ``VISAGE_TOKEN``, then a file named by ``VISAGE_TOKEN_FILE``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

__all__ = [
    "BearerTokenInterceptor",
    "channel_credentials",
    "read_token_file",
    "resolve_token",
    "with_token",
]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise ValueError(f"{what} {path}: no such file") from exc
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from exc


def channel_credentials(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """TLS credentials; ``ca_file`` None trusts the system roots; cert+key make it mutual TLS."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("mutual TLS needs both a client certificate and its key (--tls-cert and --tls-key)")
    ca = _read(ca_file, "CA file (--tls-ca)") if ca_file else None
    cert = _read(cert_file, "client certificate (--tls-cert)") if cert_file else None
    key = _read(key_file, "client key (--tls-key)") if key_file else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def read_token_file(path: str) -> str:
    """The token in ``path``, surrounding whitespace stripped; an empty file is an error."""
    token = _read(path, "token file").decode("utf-8", "replace").strip()
    if not token:
        raise ValueError(f"token file {path}: is empty")
    return token


def resolve_token(
    token: str | None, token_file: str | None, env: Mapping[str, str] = os.environ
) -> str | None:
    """The token to send, or None: flag, then file, then VISAGE_TOKEN, then VISAGE_TOKEN_FILE."""
    if token:
        return token.strip()
    if token_file:
        return read_token_file(token_file)
    if env.get("VISAGE_TOKEN", "").strip():
        return env["VISAGE_TOKEN"].strip()
    if env.get("VISAGE_TOKEN_FILE", "").strip():
        return read_token_file(env["VISAGE_TOKEN_FILE"].strip())
    return None


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class BearerTokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call. Its repr never shows the token."""

    def __init__(self, token: str) -> None:
        if not token or any(c in token for c in "\r\n"):
            raise ValueError("the token must be a non-empty single line")
        self._metadata = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "BearerTokenInterceptor(token=***)"

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0].lower() != "authorization"]
        metadata.append(self._metadata)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Iterator[Any]) -> Any:
        return continuation(self._details(details), requests)


def with_token(channel: grpc.Channel, token: str | None) -> grpc.Channel:
    """``channel`` sending ``token`` on every call (unchanged when ``token`` is None)."""
    if not token:
        return channel
    return grpc.intercept_channel(channel, BearerTokenInterceptor(token))
