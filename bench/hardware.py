"""Hardware bounds for decode: this machine's matmul throughput and memory bandwidth.

Owns the two roofline ceilings the benchmark compares our tokens/s with:
  - compute: a decode token costs about 2 * N FLOPs (N = parameters, the tied LM head counted once),
    so tokens/s <= GFLOP/s / (2 * N / 1e9), with GFLOP/s from a few large square matmuls;
  - memory: every decode step reads all weight bytes once (small batches are memory-bound), so
    step time >= weight bytes / bandwidth and tokens/s <= batch / step time, with the bandwidth
    from copying a tensor much larger than the caches (read + write bytes per second).
A third figure, the throughput of decode-shaped matmuls (batch rows x the model's widest weight),
shows where between the two a real decode step can land. ``model_matmul_seconds`` goes one step
further: it times every Linear shape of the model itself at a given number of rows (the decode
batch, or a prefill's tokens), so the sum is the time the model's own matmuls need on this machine
at that batch: the floor a forward pass cannot beat without more rows per matmul.
"""

from __future__ import annotations

import functools
import platform
import time
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    logical_cpus: int
    torch_threads: int
    device: str
    gpu: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HardwareRates:
    matmul_gflops: float  # large square matmuls, model dtype
    matmul_size: int
    decode_gemm_gflops: float  # (batch x k) @ (k x n) with the model's largest weight, streamed
    copy_gb_per_s: float  # bytes read + written per second by a large tensor copy
    copy_mib: int
    dtype: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeBounds:
    parameters: int
    weight_bytes: int
    batch: int
    matmul_tokens_per_s: float  # GFLOP/s / (2N)
    memory_step_seconds: float  # weight bytes / bandwidth
    memory_tokens_per_s: float  # batch / step time
    roofline_tokens_per_s: float  # min of the two

    def as_dict(self) -> dict:
        return asdict(self)


def describe_machine(device: torch.device) -> Machine:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return Machine(cpu, os.cpu_count() or 0, torch.get_num_threads(), str(device), gpu)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _linear_over(x: torch.Tensor, weights: list[torch.Tensor]) -> None:
    """``x`` through every weight in turn (the weights stream from memory, as in a decode step)."""
    for w in weights:
        torch.nn.functional.linear(x, w)


def measure_rates(
    device: torch.device, dtype: torch.dtype, *, gemm_shape: tuple[int, int], batch: int, repeats: int = 5
) -> HardwareRates:
    """Best-of-`repeats` timings (the best run is the least disturbed by other processes)."""
    n = 4096 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    t = _best_seconds(functools.partial(torch.matmul, a, b), device, repeats)
    matmul_gflops = 2 * n**3 / t / 1e9
    del a, b

    # Decode-shaped: `batch` rows against several distinct copies of the widest weight, more bytes
    # than the last-level cache holds, so the weights stream from memory as in a real decode step.
    k, m = gemm_shape
    copies = max(2, int((256 << 20) // max(1, k * m * torch.empty((), dtype=dtype).element_size())))
    weights = [torch.randn(m, k, device=device).to(dtype) for _ in range(min(copies, 64))]
    x = torch.randn(batch, k, device=device).to(dtype)
    t = _best_seconds(functools.partial(_linear_over, x, weights), device, repeats)
    decode_gflops = 2 * batch * k * m * len(weights) / t / 1e9
    del weights

    mib = 1024 if device.type == "cuda" else 512
    src = torch.empty(mib << 20, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    t = _best_seconds(functools.partial(dst.copy_, src), device, repeats)
    copy_gbs = 2 * src.numel() / t / 1e9
    del src, dst
    return HardwareRates(matmul_gflops, n, decode_gflops, copy_gbs, mib, str(dtype).replace("torch.", ""))


def decode_bounds(rates: HardwareRates, *, parameters: int, weight_bytes: int, batch: int) -> DecodeBounds:
    matmul_tps = rates.matmul_gflops * 1e9 / (2 * parameters)
    step = weight_bytes / (rates.copy_gb_per_s * 1e9)
    memory_tps = batch / step
    return DecodeBounds(parameters, weight_bytes, batch, matmul_tps, step, memory_tps, min(matmul_tps, memory_tps))


@dataclass(frozen=True)
class MatmulFloor:
    rows: int
    seconds: float  # one forward pass's Linear layers, `rows` rows, best of the repeats
    by_shape: dict  # "rows x in x out (count layers)" -> seconds per forward for that shape, all its layers

    def as_dict(self) -> dict:
        return asdict(self)


def model_matmul_seconds(
    model: torch.nn.Module, rows: int, *, head_rows: int | None = None, repeats: int = 3, stream_bytes: int = 128 << 20
) -> MatmulFloor:
    """Seconds the model's Linear layers take for one forward of ``rows`` rows, timed shape by shape.

    The LM head runs on ``head_rows`` rows (default ``rows``; a prefill needs only each sequence's
    last position). Each shape runs against enough distinct weight copies (``stream_bytes``) that
    the weights come from memory, as in a real forward pass, not from cache. Random inputs, the
    model's dtype and device.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    counts: dict[tuple[int, int, int], int] = {}  # (in, out, rows) -> layers
    sample: dict[tuple[int, int, int], torch.nn.Linear] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            m = head_rows if (module is head and head_rows is not None) else rows
            key = (module.in_features, module.out_features, m)
            counts[key] = counts.get(key, 0) + 1
            sample.setdefault(key, module)
    total, by_shape = 0.0, {}
    for (k, n, m), count in counts.items():
        weight = sample[(k, n, m)].weight
        device, dtype = weight.device, weight.dtype
        copies = max(1, min(count, 64, stream_bytes // max(1, weight.numel() * weight.element_size())))
        weights = [torch.randn(n, k, device=device).to(dtype) for _ in range(copies)]
        x = torch.randn(m, k, device=device).to(dtype)
        per_layer = _best_seconds(functools.partial(_linear_over, x, weights), device, repeats) / copies
        by_shape[f"{m} rows x {k} x {n} ({count} layers)"] = per_layer * count
        total += per_layer * count
        del weights
    return MatmulFloor(rows, total, by_shape)


def dominant_linear(model: torch.nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of the Linear shape holding the most weight bytes in the model."""
    totals: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            shape = (module.in_features, module.out_features)
            totals[shape] = totals.get(shape, 0) + shape[0] * shape[1]
    return max(totals, key=totals.get) if totals else (1, 1)
