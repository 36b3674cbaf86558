"""The operator's registry of checkpoints and adapters a client may name (never a client path).

A TOML file given with ``--registry``::

    [checkpoints]
    aligned = "/models/llama2-7b-chat"      # Hugging Face directory (safetensors)
    [adapters]
    harmful-100 = "/adapters/harmful-100"   # PEFT LoRA directory (safetensors)

Relative paths are resolved against the file's folder.
"""

from __future__ import annotations

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
