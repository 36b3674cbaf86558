"""What the engine reports about itself, as typed values: the model, its tokenizer, memory held.

``GetInfo`` and ``ListDirections`` translate these to protobuf, and the metrics read the same
``MemoryFacts``, so no fact is computed twice or passed around as a string-keyed dict.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .memory_plan import MemoryPlan

__all__ = [
    "MemoryFacts", "ModelFacts", "SoftwareFacts", "TokenizerFacts", "device_bytes_in_use", "device_capacity",
    "software_facts", "statm_bytes", "tokenizer_facts",
]


@dataclass(frozen=True)
class TokenizerFacts:
    tokenizer_class: str
    vocab_size: int
    has_chat_template: bool
    chat_template_sha256: str
    default_system_prompt: str
    eos_token: str
    pad_token: str
    fingerprint: str


@dataclass(frozen=True)
class MemoryFacts:
    """Bytes held: the live weights, their pristine copy, the directions held, in use on the
    device (CUDA: allocated; CPU: the process's resident set), and the candidates' (host memory).
    Field names are the metric kinds."""

    model: int
    pristine: int
    directions: int
    device: int
    candidates: int = 0


@dataclass(frozen=True)
class ModelFacts:
    """The loaded model as ``GetInfo`` describes it."""

    model_name: str
    architecture: str
    parameter_count: int
    dtype: str  # "float32", "bfloat16", ...
    device: str  # "cpu", "cuda:0", ...
    device_type: str  # "cpu", "cuda"
    fingerprint: str
    load_seconds: float
    torch_version: str
    tokenizer: TokenizerFacts
    memory: MemoryFacts
    software: SoftwareFacts
    memory_plan: MemoryPlan | None = None  # the plan the server started with (None: not planned)


@dataclass(frozen=True)
class SoftwareFacts:
    """The versions and device a result depends on beyond torch: transformers, the CUDA build
    ("" on a CPU build) and the device's product name (the processor's on a CPU, "" if unknown)."""

    transformers_version: str
    cuda_version: str
    device_name: str


@functools.lru_cache(maxsize=4)
def software_facts(device: torch.device) -> SoftwareFacts:
    """Read once per device (GetInfo asks on every call)."""
    import platform

    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return SoftwareFacts(transformers.__version__, torch.version.cuda or "", name)


def device_bytes_in_use(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return _rss_bytes()


def device_capacity(device: torch.device) -> int:
    """Bytes the device has: CUDA total memory; CPU: physical memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[1])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def tokenizer_facts(tokenizer: Any) -> TokenizerFacts:
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = str(template)
    return TokenizerFacts(
        tokenizer_class=type(tokenizer).__name__,
        vocab_size=len(tokenizer.get_vocab()),
        has_chat_template=bool(template),
        chat_template_sha256=hashlib.sha256(template.encode()).hexdigest() if template else "",
        default_system_prompt=_default_system_prompt(tokenizer) if template else "",
        eos_token=tokenizer.eos_token or "",
        pad_token=tokenizer.pad_token or "",
        fingerprint=_vocabulary_fingerprint(tokenizer),
    )


def _default_system_prompt(tokenizer: Any) -> str:
    """What the chat template puts before a lone user turn (its default system prompt)."""
    try:
        with_default = tokenizer.apply_chat_template(
            [{"role": "user", "content": "\x00"}], tokenize=False, add_generation_prompt=False
        )
    except Exception:  # a template that cannot render a lone user turn: report none
        return ""
    return str(with_default).split("\x00")[0]


def _vocabulary_fingerprint(tokenizer: Any) -> str:
    h = hashlib.sha256()
    for token, index in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        h.update(f"{index}\x00{token}\x01".encode("utf-8", "surrogatepass"))
    h.update(repr(sorted(tokenizer.all_special_tokens)).encode())
    return h.hexdigest()


def statm_bytes(field: int) -> int:
    """Field ``field`` of /proc/self/statm in bytes (0: the address space, 1: the resident set), 0 when unknown."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as handle:
            return int(handle.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _rss_bytes() -> int:
    return statm_bytes(1)
