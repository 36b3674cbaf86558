"""Host memory freed by a large tensor goes back to the system at once (glibc's malloc).

A switch or a direction build makes and frees one tensor-sized fp32 buffer after another. glibc
serves a block from a memory map only above its mmap threshold, and raises that threshold to the
size of each mapped block freed (up to 32 MiB): after the first few frees, every tensor of a
7B-class layer (and most of a small model's) comes from the heap, whose freed middle is not
given back. Measured on SmolLM2 in bf16 ("stream" storage, theta0 re-read from the checkpoint):
building one reference-stream direction left the process 2.33x the model's bytes larger, for
good; with a fixed 1 MiB threshold, 0.25x. ``return_large_frees`` fixes the threshold (which
also stops glibc adjusting it); a block of 1 MiB or more then costs one mmap/munmap pair, noise
beside the tensor work it holds. Elsewhere (musl, macOS) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["LARGE_BLOCK", "return_large_frees"]

LARGE_BLOCK = 1 << 20  # bytes: a block this large or larger is mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_large_frees(threshold: int = LARGE_BLOCK) -> bool:
    """Map every heap block of ``threshold`` bytes or more on its own; True when glibc took it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
