"""The operator's registry of checkpoints and adapters a client may name (never a client path).

A TOML file given with ``--registry``::

    [checkpoints]
    aligned = "/models/llama2-7b-chat"      # Hugging Face directory (safetensors)
    [adapters]
    harmful-100 = "/adapters/harmful-100"   # PEFT LoRA directory (safetensors)

Relative paths are resolved against the file's folder.

``RegistryFile`` holds the file's entries and re-reads it on demand (``visage-server`` does on
SIGHUP): a file that no longer parses leaves the entries as they were. ``entry_identity`` names
an entry's files as they are now (resolved path, and each file's device, inode, size and
modification time), so a direction built from an entry is bound to the files it was built from
(``named_sources.py``), whatever a reload or a replaced file changes later.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import NotFound, did_you_mean

KINDS = ("checkpoint", "adapter")


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    kind: str  # "checkpoint" | "adapter"
    path: Path


@dataclass(frozen=True)
class ModelRegistry:
    entries: dict[str, RegistryEntry] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelRegistry:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"registry {path}: cannot be read as TOML ({exc})") from exc
        unknown = set(data) - {"checkpoints", "adapters"}
        if unknown:
            raise ValueError(f"registry {path}: unknown table(s) {sorted(unknown)}; use [checkpoints] and [adapters]")
        entries: dict[str, RegistryEntry] = {}
        for table, kind in (("checkpoints", "checkpoint"), ("adapters", "adapter")):
            for name, value in data.get(table, {}).items():
                if not isinstance(value, str):
                    raise ValueError(f"registry {path}: [{table}] {name} must be a path string")
                if name in entries:
                    raise ValueError(f"registry {path}: {name!r} is defined twice")
                target = Path(value).expanduser()
                if not target.is_absolute():
                    target = path.parent / target
                entries[name] = RegistryEntry(name=name, kind=kind, path=target)
        return cls(entries)

    def get(self, name: str, kind: str) -> RegistryEntry:
        entry = self.entries.get(name)
        if entry is None or entry.kind != kind:
            known = [e.name for e in self.entries.values() if e.kind == kind]
            raise NotFound(f"no {kind} named {name!r} in this server's registry." + did_you_mean(name, known))
        return entry

    def list(self) -> list[RegistryEntry]:
        return sorted(self.entries.values(), key=lambda e: (e.kind, e.name))


@dataclass(frozen=True)
class RegistryChange:
    added: list[str]
    removed: list[str]
    changed: list[str]  # the same name, another kind or path


class RegistryFile:
    """The operator's registry as its file says now (``reload`` re-reads it; any thread)."""

    def __init__(self, path: str | Path | None = None, registry: ModelRegistry | None = None) -> None:
        self.path = Path(path) if path else None
        self._current = registry or (ModelRegistry.from_file(self.path) if self.path else ModelRegistry())
        self._lock = threading.Lock()

    @property
    def current(self) -> ModelRegistry:
        return self._current

    def reload(self) -> RegistryChange:
        """Re-read the file; ValueError (the entries unchanged) when it does not parse."""
        if self.path is None:
            return RegistryChange([], [], [])
        with self._lock:
            new, old = ModelRegistry.from_file(self.path), self._current.entries
            self._current = new
        return RegistryChange(
            added=sorted(set(new.entries) - set(old)), removed=sorted(set(old) - set(new.entries)),
            changed=sorted(n for n in set(old) & set(new.entries) if old[n] != new.entries[n]),
        )


def entry_identity(entry: RegistryEntry) -> str:
    """16 hex naming ``entry``'s files as they are now (a missing path is an identity too: the
    build then fails with the reason)."""
    real = Path(os.path.realpath(entry.path))
    parts = [entry.kind, entry.name, str(real)]
    try:
        files = sorted(p for p in real.iterdir() if p.suffix in (".safetensors", ".json")) if real.is_dir() else [real]
        for f in files:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
    except OSError as exc:
        parts.append(f"unreadable:{exc.errno}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
