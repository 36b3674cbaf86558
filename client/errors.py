"""The client's one exception tree; ``grpc.RpcError`` is translated at one boundary (``from_rpc``).

    VisageError                      .code (grpc.StatusCode or None), .details
    ├── ValidationError              bad input caught before any RPC (no code)
    │   └── StoreError               a results store that cannot be read (damaged, locked, unopenable)
    ├── FleetError                   servers disagree (model or direction fingerprints) or none is usable
    └── RpcFailed                    the server answered with a status
        ├── InvalidArgumentError     fix the request (the message says what)
        ├── NotFoundError            an unknown name (prompt set, preset, direction, registry entry, candidate)
        ├── AlreadyExistsError       a name already taken (a candidate's)
        ├── FailedPreconditionError  the server cannot do this in its state
        ├── ResourceExhaustedError   a limit or a full queue; .retry_after_seconds when the server hinted
        ├── UnavailableError         down, loading or draining (retried automatically)
        ├── UnauthenticatedError     no or bad token
        ├── PermissionDeniedError    the token lacks the right (admin RPCs)
        ├── DeadlineExceededError    the call's deadline passed
        ├── CancelledError           the call was cancelled
        └── InternalError            a server bug (see the server log with the request id)
"""

from __future__ import annotations

import contextlib

import grpc

__all__ = ["AlreadyExistsError", "CancelledError", "DeadlineExceededError", "FailedPreconditionError", "FleetError", "InternalError",
           "InvalidArgumentError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError", "RpcFailed", "StoreError",
           "UnauthenticatedError", "UnavailableError", "ValidationError", "VisageError", "from_rpc"]


class VisageError(Exception):
    code: grpc.StatusCode | None = None

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class ValidationError(VisageError):
    pass


class StoreError(ValidationError):
    """A results store that cannot be read or written; the message names the file and what to do."""


class FleetError(VisageError):
    pass


class RpcFailed(VisageError):
    def __init__(self, details: str, *, code: grpc.StatusCode, method: str = "") -> None:
        super().__init__(details)
        self.code = code
        self.method = method

    def __str__(self) -> str:
        where = f" ({self.method})" if self.method else ""
        return f"{self.code.name}{where}: {self.details}" if self.code else self.details


class InvalidArgumentError(RpcFailed):
    pass


class NotFoundError(RpcFailed):
    pass


class AlreadyExistsError(RpcFailed):
    pass


class FailedPreconditionError(RpcFailed):
    pass


class ResourceExhaustedError(RpcFailed):
    retry_after_seconds: float = 0.0


class UnavailableError(RpcFailed):
    pass


class UnauthenticatedError(RpcFailed):
    pass


class PermissionDeniedError(RpcFailed):
    pass


class DeadlineExceededError(RpcFailed):
    pass


class CancelledError(RpcFailed):
    pass


class InternalError(RpcFailed):
    pass


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def from_rpc(exc: grpc.RpcError, method: str = "") -> RpcFailed:
    """The most specific client exception for a gRPC error."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or str(exc)
    cls = _BY_CODE.get(code, InternalError)
    err = cls(details, code=code, method=method)
    if isinstance(err, ResourceExhaustedError):
        for key, value in (exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else ():
            if key == "grpc-retry-pushback-ms":
                with contextlib.suppress(ValueError):  # a malformed hint is no hint
                    err.retry_after_seconds = int(value) / 1000.0
    return err
