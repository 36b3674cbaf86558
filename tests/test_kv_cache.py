"""The reserved KV cache on the real tiny-random model: the same logits as HF's DynamicCache, step
by step, whether the reservation is large enough or too small (it then grows), through a batch
shrink and a prefix copied to every row."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from safety_landscape.server.engine.kv_cache import ReservedLayer, reserved_cache
from safety_landscape.server.models.loading import load_model, resolve_model


@pytest.fixture(scope="module")
def tiny():
    return load_model(resolve_model("tiny-random"), device="cpu", dtype="float32")


def _run(model, cache, *, steps: int = 6) -> list[torch.Tensor]:
    """Prefix on one row, copied to 3 rows, 3 own tokens each, then decode with a shrink at step 2."""
    torch.manual_seed(0)
    vocab = model.config.vocab_size
    prefix = torch.randint(5, vocab, (1, 7))
    own = torch.randint(5, vocab, (3, 3))
    out = []
    with torch.inference_mode():
        model(input_ids=prefix, cache=cache, use_cache=True)
        cache.batch_repeat_interleave(3)
        logits = model(input_ids=own, cache=cache, use_cache=True).logits[:, -1]
        out.append(logits)
        for step in range(steps):
            if step == 2:
                keep = torch.tensor([0, 2])
                cache.batch_select_indices(keep)
                logits = logits[keep]
            logits = model(input_ids=logits.argmax(-1)[:, None], cache=cache, use_cache=True).logits[:, -1]
            out.append(logits)
    return out


@pytest.mark.parametrize("capacity", [7 + 3 + 6, 4])  # exact room; too little (grows by copying)
def test_same_logits_as_the_dynamic_cache(tiny, capacity):
    cache = reserved_cache(tiny.model.config, capacity)
    assert all(isinstance(layer, ReservedLayer) for layer in cache.layers)
    expected = _run(tiny.model, DynamicCache(config=tiny.model.config))
    got = _run(tiny.model, cache)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert torch.equal(g, e)
    assert cache.get_seq_length() == 7 + 3 + 6
    assert cache.layers[0].keys.shape[0] == 2  # the shrink reached the cache


def test_crop_and_reset(tiny):
    layer = ReservedLayer(capacity=10)
    k = torch.randn(2, 1, 4, 8)
    layer.update(k, k.clone())
    layer.crop(-1)
    assert layer.get_seq_length() == 3 and torch.equal(layer.keys, k[:, :, :3])
    layer.update(k[:, :, :1] + 1, k[:, :, :1] + 1)
    assert layer.get_seq_length() == 4 and torch.equal(layer.keys[:, :, 3:], k[:, :, :1] + 1)
    with pytest.raises(ValueError):  # HF's contract: a positive count is refused
        layer.crop(2)
    layer.reset()
    assert layer.get_seq_length() == 0
