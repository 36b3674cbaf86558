"""The names a term may give a checkpoint or an adapter, and the files each name is bound to.

Two kinds of names: the operator's registry file (``registry.py``, re-read on SIGHUP) and the
candidates tenants registered at run time (``candidates/``). For a caller, a name is looked up
among its own candidates first, then the operator's candidates, then the registry; another
tenant's candidate is never found (NOT_FOUND, word for word as for a name nobody has).

``bind`` records what the name was bound to in the spec (``source``), which enters the direction
id: a registry entry by the identity of its files now (``entry_identity``), a candidate by its
owner and content fingerprint. So one name bound to other files (another tenant's candidate of the
same name, a registry entry changed by a reload, a candidate removed and added again with other
weights) is another direction, never a held one with other weights under the same id. A call
admitted before a reload keeps the entry it was bound to (its files are remembered here).

``take`` binds and leases: a call holds the candidates it names until it ends (``give``), so
``RemoveCandidate`` waits for it or is refused. ``checkpoint_files`` and ``adapter_modules``
give a bound spec's source when a direction is built (the model's worker thread).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from .candidates.store import Candidate, CandidateStore, CandidateView
from .engine.direction_slots import Caller
from .engine.directions import AdapterSpec, DirectionSpec, InterpolationSpec
from .engine.directions.adapter import AdapterModule, adapter_modules
from .errors import AlreadyExists, FailedPrecondition, NotFound, did_you_mean
from .models.checkpoint_files import CheckpointFiles, checkpoint_files
from .registry import ModelRegistry, RegistryChange, RegistryEntry, RegistryFile, entry_identity

__all__ = ["CANDIDATES_OFF", "NamedSources"]

CANDIDATES_OFF = (
    "candidates are off on this server: its operator enables them with --candidate-root DIR "
    "(the folders candidates may be read from)"
)
REMEMBERED_ENTRIES = 1024
_REGISTRY, _CANDIDATE = "registry:", "candidate:"
Named = InterpolationSpec | AdapterSpec


def _kind_and_name(spec: Named) -> tuple[str, str]:
    return ("checkpoint", spec.target) if isinstance(spec, InterpolationSpec) else ("adapter", spec.adapter)


class NamedSources:
    def __init__(self, registry: RegistryFile | ModelRegistry | None = None, candidates: CandidateStore | None = None) -> None:
        self._registry = registry if isinstance(registry, RegistryFile) else RegistryFile(registry=registry)
        self._candidates = candidates
        self._entries: collections.OrderedDict[str, RegistryEntry] = collections.OrderedDict()  # identity -> entry
        self._lock = threading.Lock()

    @property
    def registry(self) -> ModelRegistry:
        return self._registry.current

    def reload_registry(self) -> RegistryChange:
        """Re-read the registry file (ValueError, nothing changed, when it does not parse)."""
        return self._registry.reload()

    @property
    def candidates(self) -> CandidateStore:
        """The candidate store; FailedPrecondition when the operator gave no --candidate-root."""
        if self._candidates is None:
            raise FailedPrecondition(CANDIDATES_OFF)
        return self._candidates

    def add_candidate(self, name: str, source: str, kind: str, caller: Caller) -> CandidateView:
        if name in self.registry.entries:
            raise AlreadyExists(f"{name!r} names an entry of the operator's registry (see ListRegistry); choose another name")
        return self.candidates.add(name, source, kind, caller)

    def candidates_bytes(self) -> int:
        """Host memory the candidates hold (0 when candidates are off)."""
        return self._candidates.memory_bytes() if self._candidates is not None else 0

    def close(self) -> None:
        if self._candidates is not None:
            self._candidates.close()

    # -- binding names ---------------------------------------------------------------------------

    def bind(self, spec: DirectionSpec, caller: Caller) -> DirectionSpec:
        """``spec`` with the name bound for ``caller`` (unchanged when it names nothing or is bound)."""
        return self.take(spec, caller, lease=False)[0]

    def take(self, spec: DirectionSpec, caller: Caller, *, lease: bool = True) -> tuple[DirectionSpec, Candidate | None]:
        """``spec`` bound for ``caller``, and the candidate it names, leased (``give`` it back)
        unless ``lease`` is false; NotFound for a name the caller does not see."""
        if not isinstance(spec, (InterpolationSpec, AdapterSpec)) or spec.source:
            return spec, None
        kind, name = _kind_and_name(spec)
        if self._candidates is not None:
            found = self._candidates.find(name, kind, caller, take=lease)
            if found is not None:
                return dataclasses.replace(spec, source=found.binding), found if lease else None
        entry = self.registry.entries.get(name)
        if entry is None or entry.kind != kind:
            visible = [e.name for e in self.registry.list() if e.kind == kind]
            where = "this server's registry"
            if self._candidates is not None:
                visible += self._candidates.names(caller, kind)
                where += " or your candidates"
            raise NotFound(f"no {kind} named {name!r} in {where}." + did_you_mean(name, visible))
        identity = entry_identity(entry)
        with self._lock:
            self._entries[identity] = entry
            self._entries.move_to_end(identity)
            while len(self._entries) > REMEMBERED_ENTRIES:
                self._entries.popitem(last=False)
        return dataclasses.replace(spec, source=_REGISTRY + identity), None

    def give(self, candidates: Sequence[Candidate]) -> None:
        for c in candidates:
            self.candidates.give(c)

    # -- a bound name's files (when a direction is built) ----------------------------------------

    def _candidate(self, spec: Named) -> Candidate | None:
        if not spec.source.startswith(_CANDIDATE):
            return None
        return self.candidates.bound(_kind_and_name(spec)[1], spec.source)

    def _entry(self, spec: Named) -> RegistryEntry:
        with self._lock:
            entry = self._entries.get(spec.source.removeprefix(_REGISTRY))
        if entry is None:
            raise NotFound(f"{_kind_and_name(spec)[1]!r} was bound to a registry entry this server no longer knows; retry")
        return entry

    def checkpoint_files(self, spec: InterpolationSpec) -> CheckpointFiles:
        """The files of the checkpoint a bound interpolation spec names."""
        candidate = self._candidate(spec)
        if candidate is not None:
            return candidate.checked.located.open_weights()
        return checkpoint_files(Path(self._entry(spec).path))

    def adapter_modules(self, spec: AdapterSpec, params: Sequence[tuple[str, torch.Tensor]]) -> dict[str, AdapterModule]:
        """The checked LoRA modules of the adapter a bound adapter spec names."""
        candidate = self._candidate(spec)
        if candidate is not None:
            modules = candidate.modules
            if modules is None:
                raise NotFound(f"candidate {candidate.name!r} was removed; register it again")
            return modules
        return adapter_modules(params, Path(self._entry(spec).path))
