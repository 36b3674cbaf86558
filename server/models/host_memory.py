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

The blocks under the threshold are another matter: a generation makes thousands of small
tensors (a decode step's activations, one row at a time), on the model worker's own malloc arena,
and their freed pages stay in the arena. Measured through a real server on SmolLM2 in bf16 (40
prompts x 128 new tokens a call): the process grew by about 0.35x the model's bytes with every
evaluation, so the third call's switch peaked at 2.9x where the first peaked at 2.2x.
``trim_heap`` (glibc's ``malloc_trim(0)``, which also returns whole free pages inside an arena)
gives them back; the model host calls it after every job (milliseconds, beside a job's seconds).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

__all__ = ["LARGE_BLOCK", "return_large_frees", "trim_heap"]

LARGE_BLOCK = 1 << 20  # bytes: a block this large or larger is mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


@functools.cache
def _glibc(symbol: str) -> Any:
    """A glibc function, or None where there is none (not Linux, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), symbol)
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Give the free pages of every malloc arena back to the system; True when glibc did."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))


def return_large_frees(threshold: int = LARGE_BLOCK) -> bool:
    """Map every heap block of ``threshold`` bytes or more on its own; True when glibc took it."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
