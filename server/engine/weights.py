"""Weight application: the pristine copy, the directions held, and theta = theta0 + sum c_i d_i.

Owns the invariants that make a shared server correct (docs/design.md, invariants 1-4):
  - coefficients are absolute: every state is recomputed from the pristine weights, never by
    accumulating steps, in fp32, then cast to the model dtype; tensors no term touches are copied
    from the pristine copy, so the empty state is theta0 bit for bit;
  - a weight state is named by a fingerprint of (model fingerprint, dtype, canonical terms);
  - directions are specs: held as fp32 tensors ("cache") or, for per-tensor random directions,
    regenerated tensor by tensor from the spec at every switch ("regenerate": no memory held;
    reference-stream, interpolation and adapter directions are always cached).
  - the cap (``max_directions``): creating one more direction than the cap evicts the least
    recently used held direction that the applied state does not use (nor the request being
    resolved). "Used" means created (again) or applied: ``create`` and ``apply`` both move a
    direction to the most-recent end. An evicted direction is gone: a term that sends its spec
    recreates it transparently (same spec, same id, same tensors), a term that names only its
    id gets NOT_FOUND saying so. When every held direction is in use, RESOURCE_EXHAUSTED
    (limit max_directions). A per-tenant cap (``max_directions_per_tenant``, 0 = none) counts
    the directions a tenant created that are still held: RESOURCE_EXHAUSTED beyond it.

Not thread-safe for mutation: only the model host's worker thread calls ``create``/``apply``;
the listing methods take a lock so gRPC threads may read.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import InvalidArgument, NotFound, ResourceExhausted
from ..registry import ModelRegistry
from .directions import (
    AdapterSpec,
    DirectionSpec,
    InterpolationSpec,
    RandomSpec,
    Stream,
    Tied,
    adapter_direction,
    direction_id,
    interpolation_direction,
    is_perturbed,
    load_safetensors_checkpoint,
    parameter_aliases,
    random_direction,
    random_tensor,
    reference_tied_direction,
    unique_parameters,
    update_tensor_hash,
)

STORAGE_MODES = ("cache", "regenerate")
Terms = tuple[tuple[str, float], ...]  # canonical: sorted by direction id, no zero coefficients


@dataclass
class HeldDirection:
    id: str
    spec: DirectionSpec
    fingerprint: str
    norm: float
    perturbed_tensors: int
    total_tensors: int
    create_seconds: float
    owner: str
    tensors: dict[str, torch.Tensor] | None = None  # fp32, only the non-zero ones; None = regenerate
    last_used: float = field(default_factory=time.monotonic)

    @property
    def bytes_held(self) -> int:
        if self.tensors is None:
            return 0
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass(frozen=True)
class AppliedState:
    fingerprint: str
    terms: Terms
    apply_seconds: float
    switched: bool


class WeightManager:
    def __init__(
        self,
        model: torch.nn.Module,
        *,
        model_fingerprint: str,
        storage: str = "cache",
        max_directions: int = 16,
        max_directions_per_tenant: int = 0,
        max_abs_coefficient: float = 10.0,
        registry: ModelRegistry | None = None,
    ) -> None:
        if storage not in STORAGE_MODES:
            raise InvalidArgument(f"direction storage {storage!r}: use one of {', '.join(STORAGE_MODES)}")
        self.model = model
        self.model_fingerprint = model_fingerprint
        self.storage = storage
        self.max_directions = max_directions
        self.max_directions_per_tenant = max_directions_per_tenant
        self.max_abs_coefficient = max_abs_coefficient
        self.registry = registry or ModelRegistry()
        self.params = unique_parameters(model)
        self.aliases = parameter_aliases(model)  # state-dict names -> unique names (tied = "reference")
        self.names = [name for name, _ in self.params]
        self.dtype = self.params[0][1].dtype
        with torch.no_grad():
            self.pristine = {name: p.detach().clone() for name, p in self.params}
        self._directions: OrderedDict[str, HeldDirection] = OrderedDict()
        self._lock = threading.Lock()
        self.current: Terms = ()
        self._dirty = False  # True while (or after a failure while) writing weights
        self.switches = 0

    # -- directions ---------------------------------------------------------------------------

    def create(
        self, spec: DirectionSpec, *, tenant: str = "anonymous", protect: frozenset[str] = frozenset()
    ) -> tuple[HeldDirection, bool]:
        """Create the direction of `spec` (or return the held one: same spec, same id).

        `protect`: ids that must not be evicted to make room (the other terms of a request).
        """
        did = direction_id(spec)
        with self._lock:
            held = self._directions.get(did)
            if held is not None:
                held.last_used = time.monotonic()
                self._directions.move_to_end(did)
                return held, False
            owned = sum(1 for d in self._directions.values() if d.owner == tenant)
        if self.max_directions_per_tenant and owned >= self.max_directions_per_tenant:
            raise ResourceExhausted(
                f"tenant {tenant!r} holds {owned} directions, the limit (max_directions_per_tenant); "
                "delete one with DeleteDirection first",
                limit="max_directions_per_tenant",
            )
        started = time.perf_counter()
        held = self._build(did, spec, tenant)
        held.create_seconds = time.perf_counter() - started
        with self._lock:
            self._make_room(protect)
            self._directions[did] = held
        return held, True

    def _make_room(self, protect: frozenset[str] = frozenset()) -> None:
        in_use = {did for did, _ in self.current} | set(protect)
        while len(self._directions) >= self.max_directions:
            victim = next((did for did in self._directions if did not in in_use), None)
            if victim is None:
                raise ResourceExhausted(
                    f"all {self.max_directions} direction slots (max_directions) are used by the applied state "
                    "or this request; use fewer directions at once or raise --max-directions",
                    limit="max_directions",
                )
            del self._directions[victim]

    def _build(self, did: str, spec: DirectionSpec, tenant: str) -> HeldDirection:
        h = hashlib.sha256()
        sq_norm = 0.0
        perturbed = 0
        if isinstance(spec, RandomSpec) and spec.stream == Stream.PER_TENSOR:
            tensors: dict[str, torch.Tensor] = {}
            for name in self.names:  # one tensor at a time: peak memory is one tensor
                t = self._random_component(spec, name)
                update_tensor_hash(h, name, t)
                if t is not None and bool(t.any()):
                    perturbed += 1
                    sq_norm += float(torch.linalg.vector_norm(t.double()) ** 2)
                    if self.storage == "cache":
                        tensors[name] = t
            stored = tensors if self.storage == "cache" else None
        else:
            full = self._full_direction(spec)
            stored = {}
            for name in self.names:
                t = full[name].to(torch.float32)
                update_tensor_hash(h, name, t)
                if bool(t.any()):
                    perturbed += 1
                    sq_norm += float(torch.linalg.vector_norm(t.double()) ** 2)
                    stored[name] = t
        return HeldDirection(
            id=did,
            spec=spec,
            fingerprint=h.hexdigest(),
            norm=math.sqrt(sq_norm),
            perturbed_tensors=perturbed,
            total_tensors=len(self.names),
            create_seconds=0.0,
            owner=tenant,
            tensors=stored,
        )

    def _random_component(self, spec: RandomSpec, name: str) -> torch.Tensor:
        base = self.pristine[name]
        return random_tensor(name, base, spec)

    def _full_direction(self, spec: DirectionSpec) -> dict[str, torch.Tensor]:
        pristine = [(name, self.pristine[name]) for name in self.names]
        if isinstance(spec, RandomSpec) and spec.tied is Tied.REFERENCE:
            return reference_tied_direction(pristine, self.aliases, spec)
        if isinstance(spec, RandomSpec):
            return random_direction(pristine, spec)
        if isinstance(spec, InterpolationSpec):
            entry = self.registry.get(spec.target, "checkpoint")
            target = load_safetensors_checkpoint(entry.path)
            return interpolation_direction(pristine, target)
        if isinstance(spec, AdapterSpec):
            entry = self.registry.get(spec.adapter, "adapter")
            return adapter_direction(pristine, entry.path)
        raise InvalidArgument(f"unknown direction spec {spec!r}")

    def get(self, did: str) -> HeldDirection:
        with self._lock:
            held = self._directions.get(did)
        if held is None:
            raise NotFound(
                f"direction {did!r} is not held by this server (never created, deleted, or evicted at "
                f"the cap of {self.max_directions}); create it again or send its spec in the term"
            )
        return held

    def list(self) -> list[HeldDirection]:
        with self._lock:
            return list(self._directions.values())

    def delete(self, did: str) -> None:
        if any(d == did for d, _ in self.current):
            self.apply(())  # never leave the model at a state whose direction is gone
        with self._lock:
            if self._directions.pop(did, None) is None:
                raise NotFound(f"direction {did!r} is not held by this server")

    # -- weight states ------------------------------------------------------------------------

    def canonical_terms(self, terms: Sequence[tuple[str, float]]) -> Terms:
        """Validate coefficients and return the canonical form (sorted, zeros dropped, merged)."""
        merged: dict[str, float] = {}
        for did, coef in terms:
            if not isinstance(coef, (int, float)) or not math.isfinite(coef):
                raise InvalidArgument(f"coefficient for {did} is {coef!r}; coefficients must be finite numbers")
            if abs(coef) > self.max_abs_coefficient:
                raise InvalidArgument(
                    f"coefficient {coef} for {did} exceeds the limit |c| <= {self.max_abs_coefficient} "
                    "(max_abs_coefficient); the paper's grids stay within [-0.5, 1.5]"
                )
            merged[did] = merged.get(did, 0.0) + float(coef)
        for did, coef in merged.items():
            if abs(coef) > self.max_abs_coefficient:
                raise InvalidArgument(
                    f"the coefficients for {did} sum to {coef}, beyond the limit |c| <= {self.max_abs_coefficient} "
                    "(max_abs_coefficient); send one term per direction"
                )
        return tuple(sorted((d, c) for d, c in merged.items() if c != 0.0))

    def state_fingerprint(self, terms: Terms) -> str:
        if not terms:
            return self.model_fingerprint
        text = json.dumps(
            {"model": self.model_fingerprint, "dtype": str(self.dtype), "terms": [[d, repr(c)] for d, c in terms]},
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()

    @torch.no_grad()
    def apply(self, terms: Terms) -> AppliedState:
        """Make the model's weights exactly theta0 + sum c_i d_i for canonical `terms`."""
        if terms == self.current and not self._dirty:
            return AppliedState(self.state_fingerprint(terms), terms, 0.0, False)
        held = [(self.get(did), coef) for did, coef in terms]
        started = time.perf_counter()
        self._dirty = True  # until every tensor is written: a failure midway must not name a state
        for name, param in self.params:
            base = self.pristine[name]
            components = [(c, d) for d, c in ((self._component(h, name), c) for h, c in held) if d is not None]
            if not components:
                param.copy_(base)
                continue
            _write_sum(param, base, components)
        if self.params[0][1].device.type == "cuda":
            torch.cuda.synchronize()
        with self._lock:
            for h, _ in held:
                h.last_used = time.monotonic()
                if h.id in self._directions:
                    self._directions.move_to_end(h.id)  # LRU order: applied = used
        self.current = terms
        self._dirty = False
        self.switches += 1
        return AppliedState(self.state_fingerprint(terms), terms, time.perf_counter() - started, True)

    def _component(self, held: HeldDirection, name: str) -> torch.Tensor | None:
        if held.tensors is not None:
            return held.tensors.get(name)
        spec = held.spec
        assert isinstance(spec, RandomSpec)
        if not is_perturbed(name, self.pristine[name], spec):
            return None
        return self._random_component(spec, name)

    def weights_sha256(self) -> str:
        """sha256 of the weights as they are now (bit-exact; equals the model fingerprint at theta0)."""
        h = hashlib.sha256()
        for name, param in self.params:
            update_tensor_hash(h, name, param)
        return h.hexdigest()

    def model_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for _, p in self.params)

    def pristine_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.pristine.values())

    def directions_bytes(self) -> int:
        return sum(d.bytes_held for d in self.list())


def _write_sum(param: torch.Tensor, base: torch.Tensor, components: list[tuple[float, torch.Tensor]]) -> None:
    """param <- base + sum c_i d_i, computed in fp32 (the directions are fp32, so type promotion
    makes every add an fp32 op), rounded once to the model dtype on the last write.

    The last add writes straight into ``param`` (``out=``): one fused pass per tensor instead of
    copy, add, cast, copy; bit-identical to accumulating in an fp32 copy and casting (tested).
    The first add always allocates a fresh result, so the pristine copy is never aliased.
    """
    if len(components) == 1:
        coef, d = components[0]
        torch.add(base, d, alpha=coef, out=param)
        return
    (coef, d), *middle, (last_coef, last_d) = components
    acc = torch.add(base, d, alpha=coef)  # fp32: promoted from (model dtype, fp32)
    for coef, d in middle:
        acc.add_(d, alpha=coef)
    torch.add(acc, last_d, alpha=last_coef, out=param)


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over names, shapes, dtypes and bytes of the model's unique parameters."""
    h = hashlib.sha256()
    for name, param in unique_parameters(model):
        update_tensor_hash(h, name, param)
    return h.hexdigest()
