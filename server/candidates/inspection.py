"""A candidate folder checked against the served model before it is accepted, from its headers.

Two steps, both on the request's thread and both bounded (no tensor is read):
  - ``locate``: which files the folder is read from (``common/candidate_files.py``: safetensors
    and JSON configs only, never pickles, never code), each resolved under a root the caller may
    use, opened without following a symlink and without blocking (a FIFO is refused), and
    ``fstat``-ed: its identity (device, inode, size, mtime) and size. The sizes are what the
    candidate limits count, so a sparse file claiming terabytes is refused before anything of it
    is read.
  - ``check``: the config and the safetensors headers (at most ``MAX_HEADER_BYTES`` each)
    against the served model: a checkpoint must be of the same architecture (``model_type`` and
    ``architectures`` of config.json) and hold every parameter of the model with its shape, in a
    floating dtype; an adapter must be a plain LoRA whose every module matches a parameter's
    shape (``directions/adapter.py``, run on meta tensors). A tensor the model lacks is accepted
    only when its shape is a parameter's (a tied copy such as lm_head.weight; its values are
    compared when the candidate loads).
Later reads reopen the files by their resolved paths and insist on the same identities
(``CheckpointFiles(expect=...)``), so what was checked is what is read.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from safety_landscape.common import candidate_files as cf

from ..errors import FailedPrecondition, InvalidArgument, PermissionDenied, did_you_mean
from ..models.checkpoint_files import CheckpointFiles, FileIdentity, file_identity

__all__ = ["MAX_CONFIG_BYTES", "MAX_FOLDER_ENTRIES", "MAX_HEADER_BYTES", "CandidateFile", "Checked", "Located",
           "ServedModel", "check", "locate"]

MAX_CONFIG_BYTES = 1 << 20
MAX_HEADER_BYTES = 8 << 20
MAX_FOLDER_ENTRIES = 10_000
FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ServedModel:
    """What a candidate is checked against: the served model's unique parameters and config."""

    shapes: Mapping[str, tuple[int, ...]]  # unique parameter name -> shape, in model order
    model_type: str
    architecture: str  # the transformers class, e.g. "LlamaForCausalLM"
    dtype: str
    model_bytes: int


@dataclass(frozen=True)
class CandidateFile:
    name: str  # in the folder (the fingerprint's name)
    path: Path  # resolved
    identity: FileIdentity

    @property
    def size(self) -> int:
        return self.identity[2]


@dataclass(frozen=True)
class Located:
    kind: str
    folder: Path
    files: tuple[CandidateFile, ...]  # sorted by name
    config: bytes  # config.json or adapter_config.json, as read

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def weights(self) -> tuple[CandidateFile, ...]:
        return tuple(f for f in self.files if f.name.endswith(".safetensors"))

    def open_weights(self, max_header_bytes: int = MAX_HEADER_BYTES) -> CheckpointFiles:
        """The safetensors files, reopened and checked to be the files located."""
        weights = self.weights
        return CheckpointFiles([f.path for f in weights], expect=[f.identity for f in weights],
                               max_header_bytes=max_header_bytes)


@dataclass(frozen=True)
class Checked:
    located: Located
    dtype: str  # "bfloat16", or "mixed (bfloat16, float32)"
    memory_bytes: int  # held once READY (an adapter's fp32 factors)


def _entries(folder: Path) -> list[str]:
    names = []
    with os.scandir(folder) as it:
        for entry in it:
            names.append(entry.name)
            if len(names) > MAX_FOLDER_ENTRIES:
                raise FailedPrecondition(f"the source folder has more than {MAX_FOLDER_ENTRIES} entries")
    return names


def _open_checked(path: Path) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise FailedPrecondition(f"{path.name}: cannot be opened ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FailedPrecondition(f"{path.name} is not a regular file")
    return fd, st


def locate(folder: Path, kind: str, allowed: Callable[[Path], bool]) -> Located:
    """The files of the candidate in ``folder`` (``kind`` "" = detected), each under a root
    ``allowed`` accepts; FailedPrecondition for a folder that is not a safetensors checkpoint or
    a LoRA adapter, PermissionDenied for a file that resolves outside the roots."""
    names = _entries(folder)
    kind = kind or cf.detect_kind(names)
    if kind == cf.CHECKPOINT and cf.ADAPTER_CONFIG in names:
        raise InvalidArgument("the source folder holds adapter_config.json: register it as an adapter")
    try:
        wanted = cf.content_files(folder, kind, names)
    except (cf.CandidateFilesError, OSError) as exc:
        raise FailedPrecondition(f"the source is not a {kind} this server reads: {exc}") from None
    files, config = [], b""
    for name in wanted:
        real = Path(os.path.realpath(folder / name))
        if not allowed(real):
            raise PermissionDenied(f"{name} in the source resolves outside the candidate roots this tenant may use")
        fd, st = _open_checked(real)
        try:
            if name.endswith(".json"):
                if st.st_size > MAX_CONFIG_BYTES:
                    raise FailedPrecondition(f"{name} is larger than {MAX_CONFIG_BYTES} bytes")
                config = os.pread(fd, MAX_CONFIG_BYTES, 0)
        finally:
            os.close(fd)
        files.append(CandidateFile(name, real, file_identity(st)))
    return Located(kind, folder, tuple(files), config)


def _config(located: Located) -> dict[str, object]:
    try:
        parsed = json.loads(located.config)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FailedPrecondition(f"the source's config is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise FailedPrecondition("the source's config is not a JSON object")
    return parsed


def _dtype(files: CheckpointFiles) -> str:
    kinds = {e.dtype for e in files.entries.values()}
    bad = sorted(str(d).removeprefix("torch.") for d in kinds if d not in FLOATING)
    if bad:
        raise FailedPrecondition(
            f"the source holds {', '.join(bad)} tensors; only float16, bfloat16 and float32 weights are read "
            "(a quantised checkpoint is not a candidate: save it unquantised)"
        )
    names = sorted(str(d).removeprefix("torch.") for d in kinds)
    return names[0] if len(names) == 1 else f"mixed ({', '.join(names)})"


def _check_architecture(config: Mapping[str, object], served: ServedModel) -> None:
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    if served.model_type and model_type != served.model_type:
        raise FailedPrecondition(
            f"the source is a {model_type!r} model (config.json model_type); this server serves a "
            f"{served.model_type!r} model: a candidate must be of the same architecture"
        )
    if isinstance(architectures, list) and architectures and served.architecture not in architectures:
        raise FailedPrecondition(
            f"the source's architectures are {architectures}; this server serves {served.architecture}"
        )


def _check_checkpoint(files: CheckpointFiles, served: ServedModel) -> None:
    shapes = served.shapes
    for name, shape in shapes.items():
        entry = files.entries.get(name)
        if entry is None:
            raise FailedPrecondition(
                f"the source has no tensor {name!r} (shape {shape}); a candidate must be a checkpoint of the "
                f"served model's architecture.{did_you_mean(name, files.entries)}"
            )
        if entry.shape != shape:
            raise FailedPrecondition(
                f"the source's tensor {name!r} has shape {entry.shape}; the served model's has shape {shape}"
            )
    known = set(shapes.values())
    for name, entry in files.entries.items():
        if name not in shapes and entry.shape not in known:
            raise FailedPrecondition(
                f"the source has a tensor {name!r} (shape {entry.shape}) that the served model does not have"
            )


def check(located: Located, served: ServedModel) -> Checked:
    """``located`` checked against ``served`` from its config and headers."""
    from ..engine.directions.adapter import lora_config, modules_from_state

    config = _config(located)
    files = located.open_weights()
    try:
        dtype = _dtype(files)
        if located.kind == cf.CHECKPOINT:
            _check_architecture(config, served)
            _check_checkpoint(files, served)
            return Checked(located, dtype, 0)
        meta = {name: torch.empty(e.shape, dtype=e.dtype, device="meta") for name, e in files.entries.items()}
        modules = modules_from_state(served.shapes, lora_config(config), meta)
        factors = sum(m.a.numel() + m.b.numel() for m in modules.values())
        return Checked(located, dtype, 4 * factors)
    finally:
        files.close()
