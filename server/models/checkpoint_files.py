"""A safetensors checkpoint read one tensor at a time, without mapping its files.

``CheckpointFiles`` indexes every tensor of a checkpoint (a ``.safetensors`` file, a directory
with ``model.safetensors``, or shards listed in ``model.safetensors.index.json``) from the files'
headers, and ``read`` copies one tensor's bytes with ``os.preadv`` into a fresh buffer. Why not
``safetensors.safe_open``: its tensors are views of a memory map, and every page read stays
mapped (counted in the process's resident memory) until the file is closed, so reading a whole
model through it holds the whole model; a read here holds one tensor, and repeated reads are
served by the page cache, which the kernel may reclaim.

The format (https://huggingface.co/docs/safetensors): 8 bytes little-endian header length N,
N bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": ...}``,
then the data; offsets count from the end of the header.

The files stay open for the reader's life, so a checkpoint renamed over keeps being read from
the inode that was indexed; one rewritten in place is detected (``check_unchanged``: size and
modification time) and refused, never read as if it were the same weights. A caller that checked
the files before (a tenant's candidate) passes ``expect``: each file opened must then be the very
file checked (device, inode, size, modification time), opened without following a symlink and
without blocking (a FIFO is refused, never waited on). A header's tensor must fill exactly the
bytes its shape and dtype need.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat as stat_mode
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import FailedPrecondition

__all__ = ["CheckpointFiles", "FileIdentity", "TensorEntry", "checkpoint_files", "file_identity"]

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100 * 2**20
DIGEST_CHUNK = 8 * 2**20
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONVERT_HINT = (
    "only safetensors are loaded; convert with `AutoModelForCausalLM.from_pretrained(path)"
    ".save_pretrained(path, safe_serialization=True)` on a trusted machine"
)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes are: its file, dtype, shape and absolute byte range."""

    file: int  # index into CheckpointFiles.paths
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


FileIdentity = tuple[int, int, int, int]  # (st_dev, st_ino, st_size, st_mtime_ns)


def file_identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class CheckpointFiles:
    """Every tensor of a set of safetensors files, read one at a time on demand."""

    def __init__(
        self, paths: Sequence[Path], *, expect: Sequence[FileIdentity] | None = None,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        """``expect``: the identity each file must have (opened with O_NOFOLLOW | O_NONBLOCK)."""
        self.paths = [Path(p) for p in paths]
        self._fds: list[int] = []
        self._stamps: list[tuple[int, int]] = []
        self.identities: list[FileIdentity] = []
        self.entries: dict[str, TensorEntry] = {}
        flags = os.O_RDONLY | (os.O_NOFOLLOW | os.O_NONBLOCK if expect is not None else 0)
        try:
            for index, path in enumerate(self.paths):
                fd = os.open(path, flags)
                self._fds.append(fd)
                st = os.fstat(fd)
                if expect is not None and (not stat_mode.S_ISREG(st.st_mode) or file_identity(st) != expect[index]):
                    raise FailedPrecondition(
                        f"{path.name} changed on disk since it was checked (or is not a regular file); register it again"
                    )
                self._stamps.append((st.st_size, st.st_mtime_ns))
                self.identities.append(file_identity(st))
                self.entries.update(_read_header(fd, index, path, st.st_size, max_header_bytes))
        except BaseException:
            self.close()
            raise

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def keys(self) -> list[str]:
        return list(self.entries)

    def nbytes(self) -> int:
        return sum(e.end - e.begin for e in self.entries.values())

    def read(self, name: str, *, pin: bool = False) -> torch.Tensor:
        """A fresh CPU tensor holding ``name`` as stored (pinned memory with ``pin``)."""
        entry = self.entries[name]
        buffer = torch.empty(entry.end - entry.begin, dtype=torch.uint8, pin_memory=pin)
        view = buffer.numpy().data
        done = 0
        while done < len(view):  # preadv may return short on very large reads
            got = os.preadv(self._fds[entry.file], [view[done:]], entry.begin + done)
            if got <= 0:
                raise FailedPrecondition(f"{self.paths[entry.file]}: tensor {name!r} is cut short (truncated file?)")
            done += got
        return buffer.view(entry.dtype).reshape(entry.shape)

    def file_sha256(self, index: int, should_cancel: Callable[[], bool] = lambda: False) -> str | None:
        """sha256 (hex) of file ``index``'s bytes read through its descriptor; None once
        ``should_cancel`` (asked between chunks) says stop."""
        h = hashlib.sha256()
        fd, offset = self._fds[index], 0
        while chunk := os.pread(fd, DIGEST_CHUNK, offset):
            if should_cancel():
                return None
            h.update(chunk)
            offset += len(chunk)
        return h.hexdigest()

    def check_unchanged(self) -> None:
        """FailedPrecondition if a file was rewritten in place since it was indexed."""
        for fd, path, stamp in zip(self._fds, self.paths, self._stamps, strict=True):
            stat = os.fstat(fd)
            if (stat.st_size, stat.st_mtime_ns) != stamp:
                raise FailedPrecondition(
                    f"{path} changed on disk since it was opened; the weights it held are not the ones read "
                    "now: restart the server (or keep the pristine weights in memory: --pristine device)"
                )

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()


def _read_header(fd: int, index: int, path: Path, size: int, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, TensorEntry]:
    head = os.pread(fd, 8, 0)
    if len(head) < 8:
        raise FailedPrecondition(f"{path}: not a safetensors file (shorter than its header)")
    (length,) = struct.unpack("<Q", head)
    if length > min(size - 8, max_bytes):
        raise FailedPrecondition(f"{path}: not a safetensors file (header length {length})")
    try:
        header = json.loads(os.pread(fd, length, 8))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FailedPrecondition(f"{path}: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise FailedPrecondition(f"{path}: unreadable safetensors header (not a JSON object)")
    start = 8 + length
    out: dict[str, TensorEntry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES.get(info.get("dtype", ""))
            begin, end = (int(v) for v in info["data_offsets"])
            shape = tuple(int(n) for n in info["shape"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise FailedPrecondition(f"{path}: tensor {name!r} has a malformed header entry") from None
        if dtype is None:
            raise FailedPrecondition(f"{path}: tensor {name!r} has dtype {info.get('dtype')!r}, which is not read")
        if not 0 <= begin <= end <= size - start:
            raise FailedPrecondition(f"{path}: tensor {name!r} lies outside the file")
        if any(n < 0 for n in shape) or math.prod(shape) * torch.empty((), dtype=dtype).element_size() != end - begin:
            raise FailedPrecondition(f"{path}: tensor {name!r}: shape {shape} does not fill its {end - begin} bytes")
        out[name] = TensorEntry(index, dtype, shape, start + begin, start + end)
    return out


def checkpoint_files(path: Path) -> CheckpointFiles:
    """The checkpoint at ``path``: a .safetensors file, a directory with model.safetensors, or
    shards listed in model.safetensors.index.json. Pickle formats are refused (they run code)."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise FailedPrecondition(f"checkpoint {str(path)!r}: {CONVERT_HINT}")
        return CheckpointFiles([path])
    if not path.is_dir():
        raise FailedPrecondition(f"checkpoint {str(path)!r} does not exist")
    if (path / SINGLE_FILE).is_file():
        return CheckpointFiles([path / SINGLE_FILE])
    index = path / INDEX_FILE
    if index.is_file():
        return _sharded(path, index)
    if any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir()):
        raise FailedPrecondition(f"checkpoint {str(path)!r} holds no safetensors: {CONVERT_HINT}")
    raise FailedPrecondition(f"checkpoint {str(path)!r} has no {SINGLE_FILE} nor {INDEX_FILE}")


def _sharded(path: Path, index: Path) -> CheckpointFiles:
    try:
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise FailedPrecondition(f"checkpoint index {str(index)!r} is unreadable: {e}") from None
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if not (path / shard).is_file():
            raise FailedPrecondition(f"checkpoint shard {shard!r} listed in {index.name} is missing in {str(path)!r}")
    files = CheckpointFiles([path / s for s in shards])
    missing = [k for k in weight_map if k not in files]
    if missing:
        raise FailedPrecondition(f"checkpoint tensor {missing[0]!r} is listed in {index.name} but in no shard")
    return files
