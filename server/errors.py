"""The server's domain error tree, and the one place that maps it to gRPC status codes.

Engine code raises these plain exceptions (no grpc import needed); the service layer turns them
into a status code with the message unchanged, so the message must tell a user what to change.

    LandscapeError
    ├── InvalidArgument      bad input: a value out of range, a malformed file, ...
    ├── NotFound             an unknown name: prompt set, preset, direction, registry entry
    ├── AlreadyExists        a name already taken (a candidate's)
    ├── FailedPrecondition   the request cannot run in this server's state (no chat template, shape mismatch)
    ├── ResourceExhausted    a limit or the queue is full; ``retry_after_seconds`` hints when to retry
    ├── Unavailable          loading, draining, or the device is gone
    ├── Unauthenticated      no or unknown token
    ├── PermissionDenied     a valid token without the right to call this
    ├── Cancelled            the caller went away
    └── DeadlineExceeded     the call's deadline passed before its work finished
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LandscapeError(Exception):
    """Base of every error the server reports to a caller with its own status code."""

    code_name = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(LandscapeError):
    code_name = "INVALID_ARGUMENT"


class NotFound(LandscapeError):
    code_name = "NOT_FOUND"


class AlreadyExists(LandscapeError):
    code_name = "ALREADY_EXISTS"


class FailedPrecondition(LandscapeError):
    code_name = "FAILED_PRECONDITION"


class ResourceExhausted(LandscapeError):
    code_name = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, limit: str = "", retry_after_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds


class Unavailable(LandscapeError):
    code_name = "UNAVAILABLE"


class Unauthenticated(LandscapeError):
    code_name = "UNAUTHENTICATED"


class PermissionDenied(LandscapeError):
    code_name = "PERMISSION_DENIED"


class Cancelled(LandscapeError):
    code_name = "CANCELLED"


class DeadlineExceeded(LandscapeError):
    code_name = "DEADLINE_EXCEEDED"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ' Did you mean "x"?' suffix for an unknown name, or a list of the known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f' Did you mean "{close[0]}"?'
    if known:
        return " Known: " + ", ".join(known) + "."
    return ""
