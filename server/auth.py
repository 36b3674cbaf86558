"""Bearer-token authentication per tenant: the token store and the gRPC interceptor.

What this module owns:
- ``TokenStore``: sha256 digests of tokens -> ``Tenant``. Plain tokens are hashed on load and
  never kept, printed or logged. Sources: a TOML file (``--tokens-file`` / ``VISAGE_TOKENS_FILE``)
  and an env value (``VISAGE_TOKENS="alice:tok1,ops:tok2:admin"``).
- ``AuthInterceptor``: checks ``authorization: Bearer <token>`` and the admin group, ONCE per
  call, leaves that decision in the call's context for the interceptors outside it (metrics, the
  call gate: ``context.decided_tenant``), then runs the call with its tenant and request id bound
  (``context.py``), or refuses it with one log line.
Keeping tokens out of log lines is ``logs.redact_secrets``.

``require_auth=False`` (development, loopback): no token is checked, every call is tenant
"anonymous" and every method, admin ones included, is allowed.

TOML token file::

    [[tenant]]
    name = "alice"
    token_sha256 = "<64 hex digits>"   # preferred: sha256 of the token (printf %s TOKEN | sha256sum)

    [[tenant]]
    name = "ops"
    token = "plain-token"              # accepted, hashed at load
    admin = true
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from .context import (
    ANONYMOUS,
    Around,
    Behaviour,
    CallDecision,
    bind,
    decision_var,
    request_id_of,
    run_bound,
    wrap_handler,
)

__all__ = [
    "ADMIN_METHODS",
    "HEALTH_METHODS",
    "REFLECTION_METHODS",
    "AuthInterceptor",
    "Tenant",
    "TokenStore",
    "bearer_token",
    "token_digest",
]

MISSING_TOKEN = (
    "missing bearer token: send 'authorization: Bearer <token>' "
    "(visage --token / VISAGE_TOKEN / --token-file)"
)
INVALID_TOKEN = "invalid token"

_DIRECTIONS = "/safety_landscape.v1.DirectionService/"
ADMIN_METHODS: frozenset[str] = frozenset(
    {_DIRECTIONS + "CreateDirection", _DIRECTIONS + "DeleteDirection", _DIRECTIONS + "SetCoefficients"}
)
HEALTH_METHODS: frozenset[str] = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
REFLECTION_METHODS: frozenset[str] = frozenset(
    {
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)

# The per-request log (see logs.py); a call refused here never reaches that interceptor.
request_log = structlog.get_logger("safety_landscape.requests")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Tenant:
    """A caller known to the server; ``admin`` tenants may call ``ADMIN_METHODS``."""

    name: str
    admin: bool = False


def token_digest(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Token digests -> tenants. Holds no plain token; its repr shows tenant names only."""

    def __init__(self, digests: Mapping[str, Tenant] | None = None) -> None:
        self._by_digest: dict[str, Tenant] = {}
        for digest, tenant in (digests or {}).items():
            digest = digest.lower()
            if not _HEX64.match(digest):
                raise ValueError(f"tenant {tenant.name!r}: token_sha256 must be 64 hex digits")
            self._by_digest[digest] = tenant

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TokenStore:
        """Load a TOML tokens file; every problem in it is reported together in one ValueError."""
        where = os.fspath(path)
        try:
            with open(where, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ValueError(f"tokens file {where}: cannot read it ({exc.strerror or exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"tokens file {where}: not valid TOML ({exc})") from exc
        entries = data.get("tenant")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"tokens file {where}: no [[tenant]] tables (each needs name and token_sha256 or token)")
        problems: list[str] = []
        digests: dict[str, Tenant] = {}
        for i, entry in enumerate(entries):
            at = f"tenant #{i + 1}"
            if not isinstance(entry, dict):
                problems.append(f"{at}: not a table")
                continue
            unknown = set(entry) - {"name", "token", "token_sha256", "admin"}
            if unknown:
                problems.append(f"{at}: unknown keys {sorted(unknown)} (allowed: name, token, token_sha256, admin)")
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                problems.append(f"{at}: 'name' must be a non-empty string")
                continue
            at = f"tenant {name!r}"
            admin = entry.get("admin", False)
            if not isinstance(admin, bool):
                problems.append(f"{at}: 'admin' must be true or false")
                continue
            has_plain, has_digest = "token" in entry, "token_sha256" in entry
            if has_plain == has_digest:
                problems.append(f"{at}: give exactly one of 'token' or 'token_sha256'")
                continue
            if has_plain:
                token = entry["token"]
                if not isinstance(token, str) or not token:
                    problems.append(f"{at}: 'token' must be a non-empty string")
                    continue
                digest = token_digest(token)
            else:
                digest = entry["token_sha256"]
                if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
                    problems.append(f"{at}: 'token_sha256' must be 64 hex digits (sha256 of the token)")
                    continue
                digest = digest.lower()
            if digest in digests:
                problems.append(f"{at}: same token as tenant {digests[digest].name!r}")
                continue
            digests[digest] = Tenant(name=name, admin=admin)
        if problems:
            raise ValueError(f"tokens file {where}: " + "; ".join(problems))
        return cls(digests)

    @classmethod
    def from_env(cls, value: str) -> TokenStore:
        """Parse ``name:token[:admin],name2:token2`` (the format of ``VISAGE_TOKENS``)."""
        digests: dict[str, Tenant] = {}
        problems: list[str] = []
        for i, item in enumerate(p.strip() for p in value.split(",")):
            if not item:
                continue
            parts = item.split(":")
            admin = len(parts) >= 3 and parts[-1].strip().lower() == "admin"
            if admin:
                parts = parts[:-1]
            name, token = parts[0].strip(), ":".join(parts[1:]).strip()
            if len(parts) < 2 or not name or not token:
                problems.append(f"entry #{i + 1}: expected name:token[:admin]")
                continue
            digest = token_digest(token)
            if digest in digests:
                problems.append(f"entry {name!r}: same token as {digests[digest].name!r}")
                continue
            digests[digest] = Tenant(name=name, admin=admin)
        if problems:
            raise ValueError("VISAGE_TOKENS: " + "; ".join(problems))
        return cls(digests)

    def merge(self, other: TokenStore) -> TokenStore:
        """A new store with both sets of tokens; one token naming two tenants is an error."""
        merged = dict(self._by_digest)
        for digest, tenant in other._by_digest.items():
            if digest in merged and merged[digest] != tenant:
                raise ValueError(
                    f"the same token is given for tenant {merged[digest].name!r} and {tenant.name!r}"
                )
            merged[digest] = tenant
        return TokenStore(merged)

    # -- queries ---------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Tenant | None:
        """The tenant of ``token``, or None. Compares digests in constant time against all entries."""
        if not token:
            return None
        digest = token_digest(token)
        found: Tenant | None = None
        for known, tenant in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                found = tenant
        return found

    def tenant_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self._by_digest.values())

    def tenants(self) -> frozenset[Tenant]:
        return frozenset(self._by_digest.values())

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        names = sorted({f"{t.name}{'(admin)' if t.admin else ''}" for t in self._by_digest.values()})
        return f"TokenStore(tokens={len(self)}, tenants={names})"


def bearer_token(metadata: Iterable[Any] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, or None when absent/malformed."""
    for item in metadata or ():
        key, value = str(item[0]), item[1]
        if key.lower() != "authorization":
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None


def _decision(tenant: Tenant, refusal: tuple[grpc.StatusCode, str] | None = None) -> CallDecision:
    return CallDecision(tenant.name, admin=tenant.admin, refusal=refusal)


def _reject(code: grpc.StatusCode, message: str, *, method: str, tenant: str, request_id: str) -> Around:
    """Refuse the call with ``code``, writing the same one "request" line an admitted call gets
    (no token, of course: only which tenant, if the token was valid, and why it was refused)."""

    def refuse(context: grpc.ServicerContext) -> None:
        contextvars.copy_context().run(_log_refusal, code, message, method, tenant, request_id, context.peer())
        context.abort(code, message)

    def around(behaviour: Behaviour, streaming: bool) -> Behaviour:
        if not streaming:

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                refuse(context)

            return unary

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            refuse(context)
            yield  # pragma: no cover - makes this a generator, as a streaming handler must be

        return stream

    return around


def _log_refusal(code: grpc.StatusCode, message: str, method: str, tenant: str, request_id: str, peer: str) -> None:
    bind(tenant, request_id)
    request_log.warning("request", method=method, status=code.name, duration_ms=0.0, refused=message, peer=peer)


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticate bearer tokens, enforce the admin group, bind tenant and request id."""

    def __init__(
        self,
        store: TokenStore,
        *,
        admin_methods: frozenset[str] = ADMIN_METHODS,
        open_methods: frozenset[str] = HEALTH_METHODS,
        require_auth: bool = True,
    ) -> None:
        if require_auth and len(store) == 0:
            raise ValueError(
                "authentication is required but no tokens are configured: "
                "give --tokens-file / VISAGE_TOKENS_FILE or VISAGE_TOKENS, or turn auth off for loopback use"
            )
        self._store = store
        self._admin_methods = admin_methods
        self._open_methods = open_methods
        self._require_auth = require_auth

    def __repr__(self) -> str:
        return f"AuthInterceptor({self._store!r}, require_auth={self._require_auth})"

    def decide(self, method: str, metadata: Iterable[Any] | None) -> CallDecision:
        """Who is calling and whether it may call ``method`` (``refusal`` None: let it through).
        Without authentication every caller is "anonymous" and may call everything, so counts as
        an admin."""
        if not self._require_auth:
            return CallDecision(ANONYMOUS, admin=True)
        token = bearer_token(metadata)
        tenant = self._store.authenticate(token)
        if method in self._open_methods:
            return _decision(tenant or Tenant(ANONYMOUS))
        if token is None:
            return CallDecision(ANONYMOUS, refusal=(grpc.StatusCode.UNAUTHENTICATED, MISSING_TOKEN))
        if tenant is None:
            return CallDecision(ANONYMOUS, refusal=(grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN))
        if method in self._admin_methods and not tenant.admin:
            why = f"{method} needs an admin token; tenant {tenant.name!r} is not an admin"
            return _decision(tenant, refusal=(grpc.StatusCode.PERMISSION_DENIED, why))
        return _decision(tenant)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Decide once, leave the decision in the call's context (``decision_var``) for the
        interceptors outside this one, then refuse the call or run it with its tenant bound."""
        handler = continuation(handler_call_details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED
            return None
        metadata = handler_call_details.invocation_metadata
        decision = self.decide(handler_call_details.method, metadata)
        decision_var.set(decision)
        request_id = request_id_of(metadata)
        if decision.refusal is not None:
            code, message = decision.refusal
            return wrap_handler(
                handler, _reject(code, message, method=handler_call_details.method, tenant=decision.tenant,
                                 request_id=request_id)
            )
        return wrap_handler(handler, run_bound(decision.tenant, request_id, admin=decision.admin))
