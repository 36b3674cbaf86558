"""The client's one exception tree; ``grpc.RpcError`` is translated at one boundary (``from_rpc``).

    VisageError                      .code (grpc.StatusCode or None), .details
    ├── ValidationError              bad input caught before any RPC (no code)
    │   └── StoreError               a results store that cannot be read (damaged, locked, unopenable)
    ├── FleetError                   servers disagree (model or direction fingerprints) or none is usable
    └── RpcFailed                    the server answered with a status
        ├── InvalidArgumentError     fix the request (the message says what)
        ├── NotFoundError            an unknown name (prompt set, preset, direction, registry entry)
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

__all__ = ["CancelledError", "DeadlineExceededError", "FailedPreconditionError", "FleetError", "InternalError",
           "InvalidArgumentError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError", "RpcFailed", "StoreError",
           "UnauthenticatedError", "UnavailableError", "ValidationError", "VisageError", "from_rpc"]


class VisageError(Exception):
    """Every error the client raises: ``.code`` (a ``grpc.StatusCode``, None before any RPC) and
    ``.details`` (what went wrong and what to do).

    Example::

        try:
            run = sweep_landscape(preset="quick", out="runs/quick")
        except VisageError as exc:
            print(f"could not sweep: {exc}")
    """

    code: grpc.StatusCode | None = None

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class ValidationError(VisageError):
    """Bad input caught before any RPC (a spec, a flag, an argument); the message names the field.

    Example::

        try:
            c.evaluate(prompt_set="harmful-mini", limit=-1)
        except ValidationError as exc:
            print(exc)                  # limit must be >= 0 (0 = all)
    """


class StoreError(ValidationError):
    """A results store that cannot be read or written; the message names the file and what to do.

    Example::

        try:
            store = ResultStore("runs/quick/results.sqlite")
        except StoreError as exc:
            print(exc)                  # damaged, locked or not a store: what to do
    """


class FleetError(VisageError):
    """Servers that disagree (model, tokenizer, prompt-set or direction fingerprints) or none usable.

    Example::

        try:
            run_sweep(spec, store, targets=["gpu-1:50051", "gpu-2:50051"])
        except FleetError as exc:
            print(exc)                  # names each server and the fact they differ on
    """


class RpcFailed(VisageError):
    """The server answered with an error status (``.code``, ``.method``); one subclass per status.

    Example::

        try:
            c.evaluate(prompt_set="advbench")
        except RpcFailed as exc:
            print(exc.code.name, exc.method, exc.details)
    """

    def __init__(self, details: str, *, code: grpc.StatusCode, method: str = "") -> None:
        super().__init__(details)
        self.code = code
        self.method = method

    def __str__(self) -> str:
        where = f" ({self.method})" if self.method else ""
        return f"{self.code.name}{where}: {self.details}" if self.code else self.details


class InvalidArgumentError(RpcFailed):
    """INVALID_ARGUMENT: the server refused the request; the message says what to change.

    Example::

        try:
            c.generate(["Hi"], max_new_tokens=100_000)
        except InvalidArgumentError as exc:
            print(exc)                  # the limit and the value
    """


class NotFoundError(RpcFailed):
    """NOT_FOUND: an unknown name (prompt set, preset, direction, registry entry).

    Example::

        try:
            c.evaluate(prompt_set="advbnech")
        except NotFoundError as exc:
            print(exc)                  # did you mean "advbench"?
    """


class FailedPreconditionError(RpcFailed):
    """FAILED_PRECONDITION: the server cannot do this in its state (e.g. a checkpoint that does not fit the model).

    Example::

        try:
            c.create_direction(interpolation_direction("other-architecture"))
        except FailedPreconditionError as exc:
            print(exc)                  # why it does not fit
    """


class ResourceExhaustedError(RpcFailed):
    """RESOURCE_EXHAUSTED: a limit or a full queue; ``retry_after_seconds`` > 0 when the server hinted
    when to retry (such calls are retried automatically).

    Example::

        try:
            for seed in range(100):     # more directions than the server's slots
                c.create_direction(random_direction(seed))
        except ResourceExhaustedError as exc:
            print(exc, exc.retry_after_seconds)
    """

    retry_after_seconds: float = 0.0


class UnavailableError(RpcFailed):
    """UNAVAILABLE: the server is down, loading or draining (retried automatically first).

    Example::

        try:
            Client("127.0.0.1:50051", retries=1).info()
        except UnavailableError as exc:
            print(exc)                  # wait (Client.wait_until_serving) or try another server
    """


class UnauthenticatedError(RpcFailed):
    """UNAUTHENTICATED: no token, or an unknown one (token=, token_file=, VISAGE_TOKEN, VISAGE_TOKEN_FILE).

    Example::

        try:
            Client("visage.internal:443").info()
        except UnauthenticatedError as exc:
            print(exc)                  # give the token
    """


class PermissionDeniedError(RpcFailed):
    """PERMISSION_DENIED: the token lacks the right (an admin RPC with a tenant's token).

    Example::

        try:
            c.set_coefficients([(random_direction(1), 0.1)])
        except PermissionDeniedError as exc:
            print(exc)                  # ask the operator for an admin token
    """


class DeadlineExceededError(RpcFailed):
    """DEADLINE_EXCEEDED: the call's deadline passed (``Timeouts``, ``timeout=``).

    Example::

        try:
            c.evaluate(prompt_set="harmful-mini", timeout=1.0)
        except DeadlineExceededError as exc:
            print(exc)                  # give a longer timeout
    """


class CancelledError(RpcFailed):
    """CANCELLED: the call was cancelled (the client closed, or the server cancelled an unread stream).

    Example::

        try:
            list(c.evaluate_points(points=points, prompt_set="harmful-mini"))
        except CancelledError as exc:
            print(exc)                  # run it again
    """


class InternalError(RpcFailed):
    """INTERNAL (or an unknown status): a server bug; the server's log has the details under the request id.

    Example::

        try:
            c.info()
        except InternalError as exc:
            print(exc)                  # report it with the server log
    """


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
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
