"""The gRPC servicer of ``CandidateService`` (translation only) and its protobuf conversions.

Every RPC answers FAILED_PRECONDITION while the operator gave no --candidate-root; the checks,
limits, states and leases are the store's (``store.py``), the names' clash with the registry is
``named_sources.py``'s. Errors map to status codes in ``service.py``'s one place (``_rpc``).
"""

from __future__ import annotations

import time

import grpc

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from ..context import admin_var, tenant_var
from ..engine.direction_slots import Caller
from ..errors import InvalidArgument
from ..service import _Base, _remaining, _rpc
from .roots import MAX_SOURCE_CHARS
from .store import MAX_NAME_CHARS, CandidateView, State

__all__ = ["CandidateServicer", "candidate_to_pb"]

_KINDS = {pb.CANDIDATE_KIND_UNSPECIFIED: "", pb.CANDIDATE_KIND_CHECKPOINT: "checkpoint", pb.CANDIDATE_KIND_ADAPTER: "adapter"}
_KIND_PB = {v: k for k, v in _KINDS.items() if v}
_STATE_PB = {
    State.LOADING: pb.CANDIDATE_STATE_LOADING, State.READY: pb.CANDIDATE_STATE_READY,
    State.FAILED: pb.CANDIDATE_STATE_FAILED, State.REMOVING: pb.CANDIDATE_STATE_REMOVING,
}


def candidate_to_pb(v: CandidateView) -> pb.Candidate:
    return pb.Candidate(
        name=v.name, source=v.source, kind=_KIND_PB[v.kind], state=_STATE_PB[v.state], reason=v.reason, owner=v.owner,
        operator=v.operator, size_bytes=v.size_bytes, memory_bytes=v.memory_bytes, fingerprint=v.fingerprint,
        created_unix=v.created_unix, last_used_unix=v.last_used_unix, dtype=v.dtype, in_use=v.in_use,
        expires_unix=v.expires_unix,
    )


def _caller() -> Caller:
    return Caller(tenant_var.get(), admin_var.get())


def _bounded(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{what} is {len(value)} characters; the limit is {limit}")
    return value


class CandidateServicer(_Base, pb_grpc.CandidateServiceServicer):
    @_rpc
    def AddCandidate(self, request: pb.AddCandidateRequest, context: grpc.ServicerContext) -> pb.Candidate:
        sources = self.host().engine.sources
        if request.kind not in _KINDS:
            raise InvalidArgument(f"unknown kind value {request.kind}; see the v1 contract")
        name = _bounded(request.name, "name", MAX_NAME_CHARS)
        source = _bounded(request.source, "source", MAX_SOURCE_CHARS)
        return candidate_to_pb(sources.add_candidate(name, source, _KINDS[request.kind], _caller()))

    @_rpc
    def ListCandidates(self, request: pb.ListCandidatesRequest, context: grpc.ServicerContext) -> pb.ListCandidatesResponse:
        store = self.host().engine.sources.candidates
        fingerprint = _bounded(request.fingerprint, "fingerprint", 64)
        s = store.settings
        return pb.ListCandidatesResponse(
            candidates=[candidate_to_pb(v) for v in store.list(_caller(), fingerprint)],
            max_candidates=s.max_candidates, max_candidates_per_tenant=s.max_candidates_per_tenant,
            max_candidate_bytes=store.max_bytes, max_candidate_bytes_per_tenant=store.max_bytes_per_tenant,
            idle_seconds=s.candidate_idle_seconds,
        )

    @_rpc
    def RemoveCandidate(self, request: pb.RemoveCandidateRequest, context: grpc.ServicerContext) -> pb.RemoveCandidateResponse:
        store = self.host().engine.sources.candidates
        name = _bounded(request.name, "name", MAX_NAME_CHARS)
        owner = _bounded(request.owner, "owner", self.limits.max_name_chars)
        remaining = _remaining(context)
        deadline = time.monotonic() + remaining if remaining is not None else None
        store.remove(name, _caller(), owner=owner, wait=request.wait, deadline=deadline)
        return pb.RemoveCandidateResponse(removed=True)
