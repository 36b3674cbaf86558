"""Which files make a release-candidate folder, and its content fingerprint, in plain Python.

A candidate is either a safetensors checkpoint folder (``config.json`` with ``model.safetensors``,
or the shards that ``model.safetensors.index.json`` names) or a PEFT LoRA adapter folder
(``adapter_config.json`` with ``adapter_model.safetensors``). Nothing else in the folder is read:
never pickled weights, never code. The server reads these files through descriptors it checked
(``server/candidates/``); a client holding the same folder computes the same fingerprint with
``content_fingerprint`` and can then find an identical candidate already registered
(``ListCandidates`` filtered by fingerprint) instead of registering it twice.

The fingerprint is the sha256 (64 hex) of one line ``"<name>\\t<size>\\t<sha256 hex of the
file>\\n"`` per file, sorted by name (``combine``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from pathlib import Path

__all__ = [
    "ADAPTER", "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "CHECKPOINT", "CHECKPOINT_CONFIG", "KINDS", "MAX_FILES",
    "CandidateFilesError", "combine", "content_files", "content_fingerprint", "detect_kind", "file_sha256",
]

CHECKPOINT, ADAPTER = "checkpoint", "adapter"
KINDS = (CHECKPOINT, ADAPTER)
CHECKPOINT_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_FILES = 512  # shards of one checkpoint (a 405B model has under 200)
MAX_INDEX_BYTES = 16 * 2**20
CHUNK = 8 * 2**20
CONVERT_HINT = (
    "only safetensors are read; convert on a trusted machine with `AutoModelForCausalLM.from_pretrained(path)"
    ".save_pretrained(path, safe_serialization=True)` (an adapter: `PeftModel.from_pretrained(base, path)"
    ".save_pretrained(path, safe_serialization=True)`)"
)


class CandidateFilesError(ValueError):
    """A folder that is not a candidate this project reads; the message says what to change."""


def detect_kind(names: Collection[str]) -> str:
    """``adapter`` when the folder holds ``adapter_config.json``, else ``checkpoint``."""
    return ADAPTER if ADAPTER_CONFIG in names else CHECKPOINT


def _plain(name: str, where: str) -> str:
    if not isinstance(name, str) or name != Path(name).name or name.startswith(".") or not name.endswith(".safetensors"):
        raise CandidateFilesError(f"{where} names {name!r}: a shard must be a .safetensors file in the same folder")
    return name


def _shards(folder: Path) -> list[str]:
    index = folder / INDEX_FILE
    if index.stat().st_size > MAX_INDEX_BYTES:
        raise CandidateFilesError(f"{INDEX_FILE} is larger than {MAX_INDEX_BYTES} bytes")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted({_plain(v, INDEX_FILE) for v in weight_map.values()})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CandidateFilesError(f"{INDEX_FILE} is unreadable ({exc})") from None
    if not shards or len(shards) > MAX_FILES:
        raise CandidateFilesError(f"{INDEX_FILE} names {len(shards)} shards; 1 to {MAX_FILES} are read")
    return shards


def content_files(folder: Path, kind: str, names: Collection[str] | None = None) -> list[str]:
    """The names (in ``folder``) of the files a candidate of ``kind`` is read from, sorted;
    ``names``: the folder's entries when the caller has listed them."""
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()} if names is None else set(names)
    if kind == ADAPTER:
        if ADAPTER_CONFIG not in names:
            raise CandidateFilesError(f"no {ADAPTER_CONFIG}: not a PEFT adapter folder")
        if ADAPTER_WEIGHTS not in names:
            pickled = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
            raise CandidateFilesError(
                f"no {ADAPTER_WEIGHTS}" + (f" (only {', '.join(pickled)}): {CONVERT_HINT}" if pickled else "")
            )
        return [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    if kind != CHECKPOINT:
        raise CandidateFilesError(f"unknown candidate kind {kind!r}: use one of {', '.join(KINDS)}")
    if SINGLE_FILE in names:
        weights = [SINGLE_FILE]
    elif INDEX_FILE in names:
        weights = _shards(folder)
    else:
        pickled = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
        if pickled:
            raise CandidateFilesError(f"pickled weights only ({', '.join(pickled[:3])}): {CONVERT_HINT}")
        raise CandidateFilesError(f"no {SINGLE_FILE} nor {INDEX_FILE}: not a safetensors checkpoint folder")
    if CHECKPOINT_CONFIG not in names:
        raise CandidateFilesError(f"no {CHECKPOINT_CONFIG}: the architecture cannot be checked")
    return sorted([CHECKPOINT_CONFIG, *weights])


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def combine(entries: Iterable[tuple[str, int, str]]) -> str:
    """The fingerprint of (name, size, sha256 hex) per file."""
    text = "".join(f"{name}\t{size}\t{digest}\n" for name, size, digest in sorted(entries))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_fingerprint(folder: str | Path, kind: str = "") -> str:
    """The fingerprint of the candidate folder ``folder`` (``kind`` "" = detected)."""
    folder = Path(folder)
    kind = kind or detect_kind({p.name for p in folder.iterdir()})
    names = content_files(folder, kind)
    return combine((n, (folder / n).stat().st_size, file_sha256(folder / n)) for n in names)
