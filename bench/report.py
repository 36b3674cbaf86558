"""Comparing the runs: verdict agreement with reasons, peak memory, and the printed tables."""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

# -- peak memory ---------------------------------------------------------------------------------


def reset_peak(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator stats, or the kernel's VmHWM (Linux clear_refs 5)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # then the peak below is the process's since start (getrusage)


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open(f"/proc/{os.getpid()}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- verdict agreement ---------------------------------------------------------------------------


@dataclass
class Disagreement:
    point: int
    coefficient: float
    prompt: int
    ours_jailbroken: bool
    reference_jailbroken: bool
    weight_drift: float
    first_text_difference: int  # character index where the completions part, -1 if equal
    reason: str


@dataclass
class VerdictCheck:
    early_stop_equals_full: bool
    early_stop_mismatches: list[tuple[int, int]]  # (point, prompt) where early stop changed a verdict
    differing_verdicts: int  # ours (full) vs reference, over all points and prompts
    differing_texts: int  # completions that differ at all (before truncation effects)
    compared: int
    disagreements: list[Disagreement]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["disagreements"] = [asdict(x) for x in self.disagreements]
        return d


def _first_difference(a: str, b: str) -> int:
    if a == b:
        return -1
    for i, (x, y) in enumerate(zip(a, b, strict=False)):  # a common prefix, then the shorter ends
        if x != y:
            return i
    return min(len(a), len(b))


def check_verdicts(early, full, reference) -> VerdictCheck:
    es_bad = [
        (i, j)
        for i, (e, f) in enumerate(zip(early, full, strict=True))
        for j, (ve, vf, me, mf) in enumerate(zip(e.jailbroken, f.jailbroken, e.matched, f.matched, strict=True))
        if ve != vf or me != mf
    ]
    disagreements: list[Disagreement] = []
    differing_texts = compared = 0
    for i, (f, r) in enumerate(zip(full, reference or [], strict=False)):  # no reference run: nothing to compare
        for j, (vf, vr, tf, tr) in enumerate(zip(f.jailbroken, r.jailbroken, f.texts, r.texts, strict=True)):
            compared += 1
            differing_texts += tf != tr
            if vf == vr:
                continue
            if r.max_abs_drift > 0:
                reason = (
                    f"weights differ: the reference's cumulative += walk is {r.max_abs_drift:.2e} away from "
                    "theta0 + a*d here (greedy decoding can flip on a near-tie), and HF generate batches differently"
                )
            else:
                reason = "same weights bit for bit: HF generate (batch 4, its own kernels/padding) vs our loop's numerics"
            disagreements.append(
                Disagreement(i, f.coefficient, j, vf, vr, r.max_abs_drift, _first_difference(tf, tr), reason)
            )
    return VerdictCheck(not es_bad, es_bad, len(disagreements), differing_texts, compared, disagreements)


# -- printing ------------------------------------------------------------------------------------


def fmt_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(headers))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=False)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: object) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


def mib(n: int) -> float:
    return n / 2**20
