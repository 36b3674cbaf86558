"""The scoring tokenisation rule, written out independently of server/engine/scoring.py, for the
tests that check the Score RPC and the engine against a direct transformers computation."""

from __future__ import annotations


def encode(tokenizer, context: str, continuation: str) -> tuple[list[int], int]:
    """[BOS] + tok(context) + tok(continuation), each without special tokens; and the context length."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ctx = tokenizer.encode(context, add_special_tokens=False) if context else []
    cont = tokenizer.encode(continuation, add_special_tokens=False)
    return bos + ctx + cont, len(bos) + len(ctx)
