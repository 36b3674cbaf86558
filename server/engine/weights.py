"""Weight application: the pristine copy, the directions held, and theta = theta0 + sum c_i d_i.

Owns the invariants that make a shared server correct (docs/design.md, invariants 1-4):
  - coefficients are absolute: every state is recomputed from the pristine weights, never by
    accumulating steps, in fp32, then cast to the model dtype; tensors no term touches are copied
    from the pristine copy, so the empty state is theta0 bit for bit;
  - a weight state is named by a fingerprint of (model fingerprint, dtype, canonical terms);
  - directions are specs, built and applied one tensor at a time. Storage (``STORAGE_MODES``):
    "cache" holds every direction's fp32 tensors on the device; "regenerate" redraws per-tensor
    random directions from the spec at every switch and holds the others; "stream" holds none:
    every kind is produced again tensor by tensor (``directions/sources.py``); "host" holds the
    fp32 tensors in host memory (pinned on a GPU) and copies them over tensor by tensor
    (a tied = "reference" random direction is built whole, so "stream" keeps it there too). A
    switch needs at most one component per term alive at a time, beside an fp32 accumulator.
  - theta0 lives where the memory plan put it (``pristine.py``: device, host or checkpoint);
    a tensor that neither the applied state nor the new one touches is not rewritten.
  - the cap (``max_directions``): creating one more direction than the cap evicts the least
    recently used held direction that the applied state does not use (nor the request being
    resolved). "Used" means created (again) or applied: ``create`` and ``apply`` both move a
    direction to the most-recent end. An evicted direction is gone: a term that sends its spec
    recreates it transparently (same spec, same id, same tensors), a term that names only its
    id gets NOT_FOUND saying so. When every held direction is in use, RESOURCE_EXHAUSTED
    (limit max_directions). A per-tenant cap (``max_directions_per_tenant``, 0 = none) counts
    the directions a tenant created that are still held: RESOURCE_EXHAUSTED beyond it. Which
    held direction a caller may replace (an admin: any; a tenant: only its own, within its
    ``tenant_direction_slots``) is ``direction_slots.py``; the room is planned before anything is
    built or evicted, so a refused request evicts nothing.
  - building a direction and applying a state check ``should_cancel`` between tensors.

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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import Cancelled, InvalidArgument, NotFound, ResourceExhausted
from ..named_sources import NamedSources
from ..registry import ModelRegistry
from .direction_slots import Caller, plan_room, visible_to
from .directions import (
    AdapterSpec,
    DirectionSpec,
    InterpolationSpec,
    RandomSpec,
    Stream,
    Tied,
    direction_id,
    parameter_aliases,
    reference_tied_direction,
    unique_parameters,
    update_tensor_hash,
)
from .directions.building import build_direction
from .directions.checkpoint import check_interpolation_target
from .directions.gaussian import StreamPositions
from .directions.sources import (
    DirectionSource,
    HeldTensors,
    PerTensorRandom,
    ReferenceRandom,
    StreamedAdapter,
    StreamedInterpolation,
)
from .pristine import PristineWeights, pristine_weights

STORAGE_MODES = ("cache", "regenerate", "stream", "host")
Cancel = Callable[[], bool]
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
    tensors: dict[str, torch.Tensor] | None = None  # fp32 on the device, only the non-zero ones; None: `source`
    last_used: float = field(default_factory=time.monotonic)
    source: DirectionSource | None = None  # produces the tensors at each switch (host copies or regeneration)
    covered: frozenset[str] = frozenset()  # the params where the direction is non-zero
    admin: bool = True  # created by an admin caller (direction_slots.py)

    @property
    def bytes_held(self) -> int:
        if self.tensors is None:
            return self.source.bytes_held if self.source is not None else 0
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
        pristine: str = "device",
        checkpoint: Path | None = None,
        max_directions: int = 16,
        max_directions_per_tenant: int = 0,
        tenant_direction_slots: int = 16,
        max_abs_coefficient: float = 10.0,
        registry: ModelRegistry | None = None,
        sources: NamedSources | None = None,
    ) -> None:
        """``pristine``: where theta0 is kept (``pristine.PRISTINE_PLACES``); ``checkpoint``: the
        safetensors checkpoint the model was loaded from (for ``pristine="checkpoint"``);
        ``sources``: the checkpoints and adapters terms may name (default: ``registry`` alone)."""
        if storage not in STORAGE_MODES:
            raise InvalidArgument(f"direction storage {storage!r}: use one of {', '.join(STORAGE_MODES)}")
        self.model = model
        self.model_fingerprint = model_fingerprint
        self.storage = storage
        self.max_directions = max_directions
        self.max_directions_per_tenant = max_directions_per_tenant
        self.tenant_direction_slots = tenant_direction_slots
        self.max_abs_coefficient = max_abs_coefficient
        self.sources = sources or NamedSources(registry)
        self.params = unique_parameters(model)
        self.aliases = parameter_aliases(model)  # state-dict names -> unique names (tied = "reference")
        self.names = [name for name, _ in self.params]
        self.dtype = self.params[0][1].dtype
        prefix = str(getattr(model, "base_model_prefix", "") or "")
        self.pristine: PristineWeights = pristine_weights(self.params, pristine, checkpoint=checkpoint, prefix=prefix)
        self._stream_positions = StreamPositions()  # where the reference stream's draws start
        self._directions: OrderedDict[str, HeldDirection] = OrderedDict()
        self._lock = threading.Lock()
        self.current: Terms = ()
        self._dirty = False  # True while (or after a failure while) writing weights: rewrite every tensor
        self._written: set[str] = set()  # tensors the applied state changed from theta0
        self.switches = 0

    # -- directions ---------------------------------------------------------------------------

    def create(
        self, spec: DirectionSpec, *, tenant: str = "anonymous", admin: bool = True,
        protect: frozenset[str] = frozenset(), should_cancel: Cancel = lambda: False,
    ) -> tuple[HeldDirection, bool]:
        """Create the direction of `spec` (or return the held one: same spec, same id).

        `protect`: ids that must not be evicted to make room (the other terms of a request).
        `should_cancel`: asked between tensors; true stops the build (Cancelled), nothing held.
        """
        caller = Caller(tenant, admin)
        spec = self.sources.bind(spec, caller)  # a checkpoint's or adapter's name: the files it means for the caller
        did = direction_id(spec)
        with self._lock:
            held = self._directions.get(did)
            if held is not None:
                held.last_used = time.monotonic()
                self._directions.move_to_end(did)
                return held, False
        self.check_room([did], caller, protect=protect)
        started = time.perf_counter()
        held = self._build(did, spec, tenant, should_cancel)
        held.create_seconds = time.perf_counter() - started
        held.admin = admin
        with self._lock:
            for victim in self._plan(1, caller, protect):
                del self._directions[victim]
            self._directions[did] = held
        return held, True

    def check_room(self, ids: Collection[str], caller: Caller, *, protect: Collection[str] = ()) -> None:
        """RESOURCE_EXHAUSTED, before anything is built or evicted, unless the directions ``ids``
        that are not held yet can all be made room for."""
        with self._lock:
            new = [did for did in dict.fromkeys(ids) if did not in self._directions]
            if not new:
                return
            owned = sum(1 for d in self._directions.values() if d.owner == caller.tenant)
            cap = self.max_directions_per_tenant
            if cap and owned + len(new) > cap:
                raise ResourceExhausted(
                    f"tenant {caller.tenant!r} holds {owned} directions, the limit (max_directions_per_tenant); "
                    "delete one with DeleteDirection first",
                    limit="max_directions_per_tenant",
                )
            self._plan(len(new), caller, frozenset(protect) | frozenset(ids))

    def _plan(self, new: int, caller: Caller, protect: Collection[str]) -> list[str]:
        """Which held directions give way to ``new`` ones of ``caller`` (call with the lock held)."""
        return plan_room(
            list(self._directions.values()), caller, new=new, in_use={did for did, _ in self.current} | set(protect),
            max_directions=self.max_directions, tenant_slots=self.tenant_direction_slots,
        )

    def _build(self, did: str, spec: DirectionSpec, tenant: str, should_cancel: Cancel) -> HeldDirection:
        built = build_direction(
            self._source(spec, should_cancel), self.params, self.pristine.__getitem__, keep=self._keep(spec),
            should_cancel=should_cancel,
        )
        return HeldDirection(
            id=did,
            spec=spec,
            fingerprint=built.fingerprint,
            norm=built.norm,
            perturbed_tensors=len(built.covered),
            total_tensors=len(self.names),
            create_seconds=0.0,
            owner=tenant,
            tensors=built.tensors,
            source=built.source,
            covered=built.covered,
        )

    def _keep(self, spec: DirectionSpec) -> str:
        """Where a direction's tensors are kept under this storage (build_direction's ``keep``)."""
        if self.storage == "cache":
            return "device"
        if self.storage == "host":
            return "host"
        if self.storage == "stream":
            return "none"
        per_tensor = isinstance(spec, RandomSpec) and spec.stream == Stream.PER_TENSOR
        return "none" if per_tensor else "device"  # "regenerate": per-tensor random only, as it always was

    def _source(self, spec: DirectionSpec, should_cancel: Cancel = lambda: False) -> DirectionSource:
        if isinstance(spec, RandomSpec) and spec.tied is Tied.REFERENCE:
            return self._tied_reference(spec, should_cancel)
        if isinstance(spec, RandomSpec):
            if spec.stream == Stream.PER_TENSOR:
                return PerTensorRandom(spec)
            shapes = [(name, tuple(p.shape)) for name, p in self.params]
            return ReferenceRandom(spec, shapes, self._stream_positions, should_cancel=should_cancel)
        if isinstance(spec, InterpolationSpec):
            files = self.sources.checkpoint_files(spec)
            check_interpolation_target(self.params, files)
            return StreamedInterpolation(files)
        if isinstance(spec, AdapterSpec):
            return StreamedAdapter(self.sources.adapter_modules(spec, self.params))
        raise InvalidArgument(f"unknown direction spec {spec!r}")

    def _tied_reference(self, spec: RandomSpec, should_cancel: Cancel) -> HeldTensors:
        """tied = "reference": the authors' draw for every state-dict name, built whole (its names'
        draws summed per shared tensor) and kept in host memory until ``build_direction`` keeps it
        where the storage says; not produced tensor by tensor, so "stream" holds it on the host."""
        pristine = [(name, self.pristine[name]) for name in self.names]
        held = HeldTensors(pin=self.params[0][1].device.type == "cuda")
        for name, t in reference_tied_direction(pristine, self.aliases, spec, should_cancel=should_cancel).items():
            held.keep(name, t)
        return held

    def get(self, did: str) -> HeldDirection:
        with self._lock:
            held = self._directions.get(did)
        if held is None:
            raise NotFound(
                f"direction {did!r} is not held by this server (never created, deleted, or evicted at "
                f"the cap of {self.max_directions}); create it again or send its spec in the term"
            )
        return held

    def list(self, viewer: Caller | None = None) -> list[HeldDirection]:
        """The held directions (least recently used first); those ``viewer`` may see, if given."""
        with self._lock:
            return [d for d in self._directions.values() if viewer is None or visible_to(d, viewer)]

    def delete(self, did: str) -> None:
        if any(d == did for d, _ in self.current):
            self.apply(())  # never leave the model at a state whose direction is gone
        with self._lock:
            if self._directions.pop(did, None) is None:
                raise NotFound(f"direction {did!r} is not held by this server")

    def forget_bound(self, source: str) -> int:
        """Drop the held directions bound to ``source`` (a candidate removed), from any thread;
        how many. The applied state may keep such a direction's weights until the next switch
        (which rewrites its tensors from theta0 like any other), but no request can name it again."""
        with self._lock:
            gone = [did for did, h in self._directions.items() if getattr(h.spec, "source", "") == source]
            for did in gone:
                del self._directions[did]
        return len(gone)

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
    def apply(self, terms: Terms, *, should_cancel: Cancel = lambda: False) -> AppliedState:
        """Make the model's weights exactly theta0 + sum c_i d_i for canonical `terms`.

        `should_cancel` is asked between tensors; true stops (Cancelled) with the state marked
        dirty, so the next apply rewrites every tensor."""
        if terms == self.current and not self._dirty:
            return AppliedState(self.state_fingerprint(terms), terms, 0.0, False)
        held = [(self.get(did), coef) for did, coef in terms]
        started = time.perf_counter()
        rewrite_all = self._dirty
        self._dirty = True  # until every tensor is written: a failure midway must not name a state
        self.pristine.begin_pass()
        written: set[str] = set()
        for name, param in self.params:
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed; the weights were not switched")
            live = [(c, h) for h, c in held if (name in h.tensors if h.tensors is not None else name in h.covered)]
            if not live:
                if rewrite_all or name in self._written:
                    param.copy_(self.pristine[name])
                continue
            base = self.pristine[name]
            _write_sum(param, base, [(c, self._producer(h, name, base)) for c, h in live])
            written.add(name)
        if self.params[0][1].device.type == "cuda":
            torch.cuda.synchronize()
        with self._lock:
            for h, _ in held:
                h.last_used = time.monotonic()
                if h.id in self._directions:
                    self._directions.move_to_end(h.id)  # LRU order: applied = used
        self.current = terms
        self._written = written
        self._dirty = False
        self.switches += 1
        return AppliedState(self.state_fingerprint(terms), terms, time.perf_counter() - started, True)

    @staticmethod
    def _producer(held: HeldDirection, name: str, base: torch.Tensor) -> torch.Tensor | Callable[[], torch.Tensor]:
        """The component of `held` for `name`: the tensor held on the device, or a call that
        produces it (host copy, regeneration), so one is alive at a time."""
        if held.tensors is not None:
            return held.tensors[name]
        source = held.source
        assert source is not None
        return lambda: source.tensor(name, base)

    def _component(self, held: HeldDirection, name: str) -> torch.Tensor | None:
        """The fp32 component of `held` for `name` (None where it is zero), on the param's device."""
        if held.tensors is not None:
            return held.tensors.get(name)
        if name not in held.covered:
            return None
        produced = self._producer(held, name, self.pristine[name])
        return produced if isinstance(produced, torch.Tensor) else produced()

    def weights_sha256(self) -> str:
        """sha256 of the weights as they are now (bit-exact; equals the model fingerprint at theta0)."""
        h = hashlib.sha256()
        for name, param in self.params:
            update_tensor_hash(h, name, param)
        return h.hexdigest()

    def model_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for _, p in self.params)

    def pristine_bytes(self) -> int:
        """Bytes of theta0 held (on the device or in host memory; 0 when re-read from the checkpoint)."""
        return self.pristine.bytes_held

    def directions_bytes(self) -> int:
        return sum(d.bytes_held for d in self.list())


Component = torch.Tensor | Callable[[], torch.Tensor]
ACC_CHUNK = 1 << 20  # elements of the fp32 accumulator alive at once when one term is written


def _write_sum(param: torch.Tensor, base: torch.Tensor, components: Sequence[tuple[float, Component]]) -> None:
    """param <- base + sum c_i d_i, computed in fp32 (the directions are fp32), rounded once to
    the model dtype.

    fp32 weights, one term: one pass straight into ``param`` (``out=``). Otherwise an fp32
    accumulator: theta0 cast exactly, each ``acc += c_i * d_i`` in turn (the same fused
    multiply-add an fp32 ``torch.add(base, d, alpha=c)`` runs), then one cast into ``param``.
    Bit-identical to accumulating in an fp32 copy and casting (tested), and lighter than a
    mixed-dtype ``torch.add(bf16, fp32, out=bf16)``, which on a CPU builds fp32 copies of its
    input and of its result first (2.5 tensors of scratch, measured). A component may be a call
    that produces it: it is made just before its add and dropped after, so at most one is alive
    beside the accumulator. The pristine tensor is never written.

    One term (a 1D sweep, the common case) needs no whole accumulator: theta0 is cast, the term
    added and the sum cast back ``ACC_CHUNK`` elements at a time, elementwise the same operations
    (so the same bits, tested), with one chunk of fp32 scratch instead of the whole tensor's: a
    model's largest tensor (an embedding) no longer costs its fp32 size twice over at a switch.
    """

    def made(d: Component) -> torch.Tensor:
        return d() if callable(d) else d

    if len(components) == 1 and base.dtype == param.dtype == torch.float32:
        coef, d = components[0]
        torch.add(base, made(d), alpha=coef, out=param)
        return
    if len(components) == 1 and param.numel() > ACC_CHUNK and param.is_contiguous() and base.is_contiguous():
        coef, d = components[0]
        flat_d, flat_base, flat_param = made(d).reshape(-1), base.reshape(-1), param.view(-1)
        for start in range(0, flat_param.numel(), ACC_CHUNK):
            chunk = slice(start, start + ACC_CHUNK)
            flat_param[chunk].copy_(flat_base[chunk].to(torch.float32).add_(flat_d[chunk], alpha=coef))
        return
    acc = base.to(torch.float32, copy=True)
    for coef, d in components:
        acc.add_(made(d), alpha=coef)
    param.copy_(acc)


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over names, shapes, dtypes and bytes of the model's unique parameters."""
    h = hashlib.sha256()
    for name, param in unique_parameters(model):
        update_tensor_hash(h, name, param)
    return h.hexdigest()
