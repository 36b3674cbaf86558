"""Host memory freed by a large tensor is given back to the system at once, even when small
tensors made in between are still alive (the pattern of a switch: one tensor-sized buffer after
another, small results kept). Run in a fresh process: free memory an earlier test left in the
heap would be reused first and hide what is measured."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import json, os, torch
from safety_landscape.server.models.host_memory import return_large_frees
MiB = 2**20
def anon():
    with open(f"/proc/{os.getpid()}/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("RssAnon:"))
x = torch.ones(4 * MiB // 4); del x  # a mapped block freed: glibc would raise its threshold past 2 MiB
took = return_large_frees() if os.environ["FIX"] == "1" else False
before = anon(); kept, freed = [], []
for _ in range(64):  # 2 MiB buffers, each followed by a small tensor that stays
    freed.append(torch.ones(2 * MiB // 4)); kept.append(torch.ones(64 * 1024 // 4))
held = anon() - before
freed.clear()
print(json.dumps({"took": took, "held": held, "left": anon() - before, "kept": sum(int(t[0]) for t in kept)}))
"""


def _probe(fix: bool) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={"FIX": "1" if fix else "0", "PATH": ""},
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_large_tensors_leave_no_memory_behind_small_ones_still_held():
    MiB = 2**20
    fixed, default = _probe(fix=True), _probe(fix=False)
    assert fixed["took"] and fixed["kept"] == default["kept"] == 64  # the small tensors are alive and intact
    assert fixed["held"] >= 128 * MiB and default["held"] >= 128 * MiB  # the buffers were really touched
    assert fixed["left"] < 16 * MiB, f"{fixed['left'] / MiB:.0f} MiB of the freed 128 MiB is still resident"
    assert default["left"] >= 100 * MiB  # what the setting prevents: glibc keeps the freed blocks


TRIM_PROBE = r"""
import json, os, threading, torch
from safety_landscape.server.models.host_memory import return_large_frees, trim_heap
MiB = 2**20
def anon():
    with open(f"/proc/{os.getpid()}/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("RssAnon:"))
return_large_frees()
out = {}
def worker():  # like the model host's thread: its own arena, many small blocks, one kept between each
    before = anon(); freed, kept = [], []
    for _ in range(4096):
        freed.append(torch.ones(48 * 1024 // 4)); kept.append(torch.ones(64))
    freed.clear()
    out["left"] = anon() - before
    out["trimmed"] = trim_heap()
    out["after"] = anon() - before
    out["kept"] = sum(int(t[0]) for t in kept)
t = threading.Thread(target=worker); t.start(); t.join()
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_small_blocks_freed_by_a_job_go_back_once_the_heap_is_trimmed():
    """Blocks under the mmap threshold (a generation's small tensors) stay in the worker's arena
    when freed; ``trim_heap``, which the model host runs after each job, gives them back."""
    MiB = 2**20
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], env={"PATH": ""}, capture_output=True, text=True,
                         timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kept"] == 4096  # the small tensors still alive are intact
    assert result["left"] >= 150 * MiB, f"{result['left'] / MiB:.0f} MiB left: glibc gave the blocks back already"
    assert result["trimmed"] and result["after"] < 32 * MiB, f"{result['after'] / MiB:.0f} MiB left after the trim"
