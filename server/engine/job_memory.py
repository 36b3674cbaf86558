"""Memory admission: a job's peak memory, estimated from the model's shape before anything is
allocated, turned into the rows per batch that fit (or a refusal).

The estimate per row (one sequence) of ``T`` tokens, for a decoder of ``L`` layers, hidden size
``D``, MLP size ``I``, ``H`` attention heads (``K`` of them for keys and values, of width ``d``),
vocabulary ``V`` and ``b`` bytes per weight element:
  - the KV cache, reserved for the whole generation: ``2 * L * K * d * b`` per token;
  - one layer's activations: hidden states and MLP (``T * (6 D + 3 I) * b``), the attention
    scores in fp32 (``4 * H * T * T``: what a non-fused attention kernel materialises) and the
    padding mask (``T * T * b``);
  - the logits: the last position's for generation (``2 * 4 * V``), every position's for scoring
    (``T * V * (b + 8)``: the logits, their fp32 copy and the log-softmax); the referee's scorer
    keeps the KV cache and the final hidden states (``T * D * b``) instead, and one slice of
    logits per batch (``scoring.HEAD_SLICE_BYTES``).
It is an upper bound for the usual kernels (fused attention needs less), so a batch that fits
the estimate fits the device. ``rows`` is the largest batch within ``max_batch_size``,
``max_batch_tokens`` (prompt tokens in one forward pass) and the memory budget; a job whose
single longest row does not fit is refused with RESOURCE_EXHAUSTED naming ``max_job_memory_bytes``.

The budget is ``max_job_memory_bytes``, or when that is 0, a share of what is free after the model
loaded: 80% of the CUDA device's free memory; on a CPU, half of the smallest of the available
memory (``MemAvailable``), the cgroup's room (``memory.max - memory.current``) and the address
space left under ``RLIMIT_AS``.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ResourceExhausted
from .facts import statm_bytes
from .memory_plan import Geometry, geometry

__all__ = ["JobMemory", "memory_budget", "model_geometry"]

GIB = float(1 << 30)


def model_geometry(model: Any) -> Geometry:
    """The shape of a loaded model, as the memory plan reads it."""
    return geometry(model, model.config, next(model.parameters()).dtype)


def _activations(g: Geometry, tokens: int) -> int:
    b = g.element_size
    return tokens * (6 * g.hidden + 3 * g.intermediate) * b + 4 * g.heads * tokens * tokens + tokens * tokens * b


def _kv_cache(g: Geometry, tokens: int) -> int:
    return max(1, len(g.layers)) * g.kv_per_position() * tokens


@dataclass(frozen=True)
class JobMemory:
    """The estimate and the budget; ``*_rows``: sequences per batch, at least 1, or a refusal."""

    shape: Geometry
    budget: int
    max_batch_size: int
    max_batch_tokens: int

    def generation_row(self, prompt_tokens: int, new_tokens: int) -> int:
        return (_kv_cache(self.shape, prompt_tokens + new_tokens) + _activations(self.shape, prompt_tokens)
                + 8 * self.shape.vocab)

    def score_row(self, tokens: int) -> int:
        return _activations(self.shape, tokens) + tokens * self.shape.vocab * (self.shape.element_size + 8)

    def generation_rows(self, longest_prompt: int, new_tokens: int) -> int:
        row = self.generation_row(longest_prompt, new_tokens)
        return self._rows(row, longest_prompt, f"one sequence of {longest_prompt} prompt + {new_tokens} new tokens")

    def score_rows(self, longest_item: int) -> int:
        return self._rows(self.score_row(longest_item), longest_item, f"one Score item of {longest_item} tokens")

    def continuation_row(self, tokens: int) -> int:
        """One item of the referee's scorer (``scoring.score_continuations`` with an output head): its
        KV cache, one layer's activations and the decoder's final hidden states; no logits per position."""
        g = self.shape
        return _kv_cache(g, tokens) + _activations(g, tokens) + tokens * g.hidden * g.element_size

    def continuation_rows(self, longest_item: int, slice_tokens: int) -> int:
        """Rows per batch of the referee's scorer, within the budget less one slice of logits
        (``slice_tokens`` positions, fp32, with their softmax's temporaries)."""
        room = JobMemory(self.shape, max(0, self.budget - slice_tokens * self.shape.vocab * 12), self.max_batch_size,
                         self.max_batch_tokens)
        return room._rows(self.continuation_row(longest_item), longest_item,
                          f"one answer of {longest_item} tokens (prompt included) to referee")

    def _rows(self, row_bytes: int, row_tokens: int, what: str) -> int:
        if row_bytes > self.budget:
            raise ResourceExhausted(
                f"{what} needs about {row_bytes / GIB:.2f} GiB; the limit is {self.budget / GIB:.2f} GiB "
                "(max_job_memory_bytes): shorten it",
                limit="max_job_memory_bytes",
            )
        return max(1, min(self.max_batch_size, self.budget // row_bytes, self.max_batch_tokens // max(1, row_tokens)))


def memory_budget(configured: int, device: torch.device) -> int:
    """``configured`` bytes, or the share of free memory the module docstring describes."""
    if configured:
        return configured
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    return int(0.5 * min(_cpu_rooms()))


def _cpu_rooms() -> list[int]:
    rooms = [_meminfo_available()]
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            rooms.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        rooms.append(soft - statm_bytes(0))
    return [max(0, r) for r in rooms]


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30  # unknown: assume a modest machine
