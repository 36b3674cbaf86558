"""A KV cache that reserves room for the whole generation up front.

HF's ``DynamicCache`` grows each layer's keys and values by ``torch.cat`` at every decode step, so
step t copies the whole cache (t positions) once more: about 10% of a CPU decode step at batch 40
for a 135M model, and a large copy for a 7B model's cache on a GPU. ``reserved_cache`` returns a
``DynamicCache`` whose full-attention layers allocate ``capacity`` positions at their first update
and then write each new position in place, returning a view of the positions filled so far. The
values attention sees are the same tensors element for element, so outputs do not change.

Sliding-window and other special layers (Mistral, Gemma) keep HF's own layer classes. A write
beyond ``capacity`` falls back to growing (a copy), so a wrong estimate costs speed, never output.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class ReservedLayer(DynamicLayer):
    """A full-attention cache layer over a preallocated (B, heads, capacity, head_dim) buffer."""

    def __init__(self, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # transformers' CacheLayerMixin.__init__ is unannotated
        self.capacity = capacity
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        end = self._length + new
        if self._key_buffer is None or end > self._key_buffer.shape[-2]:
            self._grow(max(end, self.capacity), key_states, value_states)
        keys, values = self._buffers()
        keys[..., self._length : end, :].copy_(key_states)
        values[..., self._length : end, :].copy_(value_states)
        self._length = end
        return self._publish()

    def _buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._key_buffer is None or self._value_buffer is None:
            raise RuntimeError("a reserved cache layer was read before its first update")
        return self._key_buffer, self._value_buffer

    def _grow(self, room: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        def buffer(states: torch.Tensor, old: torch.Tensor | None) -> torch.Tensor:
            shape = (*states.shape[:-2], room, states.shape[-1])
            out = torch.empty(shape, dtype=states.dtype, device=states.device)
            if old is not None and self._length:
                out[..., : self._length, :].copy_(old[..., : self._length, :])
            return out

        self._key_buffer = buffer(key_states, self._key_buffer)
        self._value_buffer = buffer(value_states, self._value_buffer)

    def _publish(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Point ``keys``/``values`` (what attention reads) at the filled part of the buffers."""
        keys, values = self._buffers()
        self.keys, self.values = live = keys[..., : self._length, :], values[..., : self._length, :]
        return live

    def get_seq_length(self) -> int:
        return self._length if self.is_initialized else 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._length:
            keys, values = self._buffers()
            self._key_buffer = keys.repeat_interleave(repeats, dim=0)
            self._value_buffer = values.repeat_interleave(repeats, dim=0)
            self._publish()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._length:
            keys, values = self._buffers()
            self._key_buffer = keys[indices, ...]
            self._value_buffer = values[indices, ...]
            self._publish()

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``-tokens_to_remove`` positions (HF's contract: a negative count)."""
        if tokens_to_remove > 0:
            super().crop(tokens_to_remove)  # raises HF's own error for the legacy positive form
        if tokens_to_remove < 0 and self._length:
            self._length = max(0, self._length + tokens_to_remove)
            self._publish()

    def reset(self) -> None:
        self._key_buffer = self._value_buffer = None
        self._length = 0
        super().reset()


def reserved_cache(config: Any, capacity: int) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers reserve ``capacity`` positions."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
