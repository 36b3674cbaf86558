"""Scoring: log-likelihood of continuations given contexts, and next-token candidate logits.

The engine behind ``Score`` (the paper's capability and fluency controls, docs/method.md,
"Beyond safety"):
MMLU-style accuracy reads the next-token logits of the answer letters after the prompt, and
perplexity sums the log-probabilities of a text's tokens.

Tokenisation (one rule, used by the tests' direct computation too):
  - context and continuation are encoded SEPARATELY, each with ``add_special_tokens=False``, and
    concatenated: ``tokens = [BOS] + tok(context) + tok(continuation)``. This differs from
    lm-evaluation-harness (which encodes context+continuation as a whole and splits at the
    context's length) only where a tokenizer merges across the boundary; encoding separately
    keeps the context's tokens identical for every continuation, and matches the candidates,
    whose first token is read from the candidate string encoded on its own.
  - the tokenizer's BOS is prepended when it has one. Without a BOS (tiny-random) nothing
    predicts the first token, so with an EMPTY context the continuation is scored from its second
    token (``num_tokens`` is one less than its length; a one-token continuation scores 0 tokens).
  - candidates: each string's FIRST token, encoded as the caller gives it (" A" and "A" differ);
    their logits are read at the last context position (the next-token logits after the context).
    An empty context without a BOS has no such position: that is an InvalidArgument.

Many continuations of the same contexts (the coherence referee's: each prompt's answers at several
points) go through ``score_continuations``: per batch, the prefix every context shares (chat
template, system prompt) is run once, each distinct context once after it, and every continuation
from a copy of its context's KV cache, with logits taken at the continuation's positions only. The
same figures as ``score_prepared`` up to float rounding (the same sums in another order), for a
fraction of the forward passes. Its memory does not grow with the vocabulary times the answers'
tokens: with an ``OutputHead`` (``output_head``: the model's logits are its decoder's final hidden
states through its output embedding, checked on a probe), the continuations' pass keeps only the
last position's logits and the decoder's hidden states (a forward hook), and the answer tokens'
log-probabilities are taken ``slice_tokens`` positions at a time (``HEAD_SLICE_BYTES`` of logits);
every batch checks the head against the model's own logits at its last position. A model whose
logits are more than that (soft-capped, scaled) has no ``OutputHead`` and gets every position's
logits, as ``score_prepared`` does.

Batching: items are sorted by length (longest first) and split into batches of at most
``max_batch_size`` (the server's admission passes fewer rows when long items would not fit the
memory budget, ``job_memory.py``); rows are right-padded with an attention mask, so padding comes after every
real token and never changes what a row sees. Log-softmax is taken in fp32. Results come back in
request order. ``should_cancel()`` is checked before every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import Cancelled, InvalidArgument
from .kv_cache import reserved_cache

__all__ = [
    "HEAD_SLICE_BYTES", "MIN_SHARED_PREFIX", "OutputHead", "ScoreInput", "ScoreOutcome", "candidate_token_ids",
    "check_items", "encode_item", "output_head", "prepare", "score", "score_continuations", "score_prepared",
    "token_item",
]

MIN_SHARED_PREFIX = 8  # a shorter prefix shared by a batch's contexts is not worth a forward pass of its own
HEAD_SLICE_BYTES = 64 << 20  # logits of one slice of answer positions (fp32, with their softmax's temporaries)


@dataclass(frozen=True)
class ScoreOutcome:
    logprob: float  # sum of log p(continuation tokens | everything before), natural log
    num_tokens: int  # how many continuation tokens were scored
    token_logprobs: tuple[float, ...]
    is_greedy: bool  # every scored continuation token is the argmax (vacuously True at 0 tokens)
    candidate_logits: tuple[float, ...]  # next-token logits after the context, candidates' order


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    context_len: int  # tokens before the continuation, BOS included


def encode_item(tokenizer: Any, context: str, continuation: str) -> _Encoded:
    """``[BOS] + tok(context) + tok(continuation)``, each encoded on its own (see module doc)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ctx = tokenizer.encode(context, add_special_tokens=False) if context else []
    cont = tokenizer.encode(continuation, add_special_tokens=False)
    return _Encoded(ids=bos + ctx + cont, context_len=len(bos) + len(ctx))


def token_item(context_ids: Sequence[int], continuation_ids: Sequence[int]) -> _Encoded:
    """An item already tokenised: ``context_ids`` exactly as given (e.g. a prompt as the model saw it
    under its chat format, BOS included if it had one), then ``continuation_ids``; nothing is added."""
    return _Encoded(ids=[*context_ids, *continuation_ids], context_len=len(context_ids))


def candidate_token_ids(tokenizer: Any, candidates: Sequence[str]) -> list[int]:
    """The first token of each candidate string, encoded as given (no special tokens)."""
    ids = []
    for i, cand in enumerate(candidates):
        toks = tokenizer.encode(cand, add_special_tokens=False) if cand else []
        if not toks:
            raise InvalidArgument(
                f"next_token_candidates[{i}] is empty (encodes to no tokens); give a non-empty string such as \" A\""
            )
        ids.append(toks[0])
    return ids


@dataclass(frozen=True)
class ScoreInput:
    """A Score request encoded and checked: its items' tokens and the candidates' token ids."""

    items: tuple[_Encoded, ...]
    candidate_ids: tuple[int, ...]

    @classmethod
    def of(cls, encoded: Sequence[_Encoded], cand_ids: Sequence[int]) -> ScoreInput:
        """Candidates are read after each context: refuse an item that has no position to read them at."""
        if cand_ids:
            for i, enc in enumerate(encoded):
                if enc.context_len == 0:
                    raise InvalidArgument(
                        f"items[{i}].context is empty and the tokenizer has no BOS token, so there are no next-token "
                        "logits to read the candidates from; give a non-empty context or no candidates"
                    )
        return cls(tuple(encoded), tuple(cand_ids))

    @property
    def longest(self) -> int:
        return max(len(e.ids) for e in self.items)


def check_items(items: Sequence[tuple[str, str]]) -> None:
    """InvalidArgument for no items or an empty continuation (before anything is encoded)."""
    if not items:
        raise InvalidArgument("items is empty; give at least one (context, continuation) item to score")
    for i, (_, continuation) in enumerate(items):
        if not continuation:
            raise InvalidArgument(
                f"items[{i}].continuation is empty; give the text to score (the context may be empty, the continuation may not)"
            )


def prepare(tokenizer: Any, items: Sequence[tuple[str, str]], candidates: Sequence[str] = ()) -> ScoreInput:
    """Encode and check a Score request (InvalidArgument naming the item or candidate at fault)."""
    check_items(items)
    cand_ids = candidate_token_ids(tokenizer, candidates)
    return ScoreInput.of([encode_item(tokenizer, c, x) for c, x in items], cand_ids)


def score(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[str, str]],
    *,
    max_batch_size: int,
    candidates: Sequence[str] = (),
    should_cancel: Callable[[], bool] = lambda: False,
) -> list[ScoreOutcome]:
    """Score each (context, continuation); results in request order (see the module docstring)."""
    if max_batch_size < 1:
        raise InvalidArgument(f"max_batch_size must be >= 1, got {max_batch_size}")
    return score_prepared(model, tokenizer, prepare(tokenizer, items, candidates), rows=max_batch_size,
                          should_cancel=should_cancel)


def score_prepared(
    model: Any, tokenizer: Any, prepared: ScoreInput, *, rows: int, should_cancel: Callable[[], bool] = lambda: False
) -> list[ScoreOutcome]:
    """``score`` for a request ``prepare`` encoded: batches of at most ``rows`` items."""
    encoded, cand_ids = prepared.items, list(prepared.candidate_ids)
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i].ids), i))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    results: list[ScoreOutcome | None] = [None] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), rows):
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed; scoring stopped")
            batch = order[start : start + rows]
            width = max(len(encoded[i].ids) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids = encoded[i].ids
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
            ).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(batch):
                results[i] = _outcome(encoded[i], logits[row], logprobs[row], cand_ids)
    return results  # type: ignore[return-value]


def _outcome(enc: _Encoded, logits: torch.Tensor, logprobs: torch.Tensor, cand_ids: list[int]) -> ScoreOutcome:
    # Position p predicts token p+1; the first scored token is the first continuation token with
    # something before it (index 1 when the context is empty and there is no BOS).
    first = max(enc.context_len, 1)
    targets = torch.tensor(enc.ids[first:], dtype=torch.long, device=logits.device)
    if targets.numel():
        prev = torch.arange(first - 1, len(enc.ids) - 1, device=logits.device)
        token_lp = logprobs[prev, targets]
        greedy = bool((logits[prev].argmax(dim=-1) == targets).all())
        token_logprobs = tuple(float(x) for x in token_lp.double().tolist())
    else:
        greedy, token_logprobs = True, ()
    cand: tuple[float, ...] = ()
    if cand_ids:
        row = logits[enc.context_len - 1]
        cand = tuple(float(row[c]) for c in cand_ids)
    return ScoreOutcome(
        logprob=float(sum(token_logprobs)),
        num_tokens=len(token_logprobs),
        token_logprobs=token_logprobs,
        is_greedy=greedy,
        candidate_logits=cand,
    )


@dataclass(frozen=True)
class OutputHead:
    """A model's logits as ``project(decoder's final hidden states)``, taken ``slice_tokens`` positions at a time."""

    decoder: torch.nn.Module
    project: Callable[[torch.Tensor], torch.Tensor]
    slice_tokens: int


def _decoded(model: Any, decoder: torch.nn.Module, **inputs: Any) -> tuple[torch.Tensor, Any]:
    """``model(**inputs)`` and its decoder's final hidden states (B, L, D), caught by a forward hook."""
    caught: list[torch.Tensor] = []

    def hook(_module: Any, _args: Any, output: Any) -> None:
        caught.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = decoder.register_forward_hook(hook)
    try:
        out = model(**inputs)
    finally:
        handle.remove()
    if len(caught) != 1:
        raise RuntimeError(f"the decoder ran {len(caught)} times in one forward pass; expected once")
    return caught[0], out


def _last_column(width: int, device: torch.device) -> torch.Tensor:
    """``logits_to_keep`` for the last position only, as an index tensor: HF then gathers that column
    into a contiguous (B, 1, D) tensor. With the int 1 it slices a strided view, and a bf16 LM head on
    a CPU multiplies it as B matrix-vector products over a weight expanded to (B, D, V) (2.1 GB and
    2.3 s for 40 rows of SmolLM2, measured; bench/memory.py's server path)."""
    return torch.tensor([width - 1], device=device)


def _same_logits(ours: torch.Tensor, model_logits: torch.Tensor) -> bool:
    """Equal up to the rounding of the logits' dtype: 1e-3 relative to the largest logit in fp32, two
    units in the last place in bf16 or fp16 (the same product through another kernel, e.g. on a GPU,
    may round an element the other way); a soft cap or a scale of the logits is far beyond either."""
    tolerance = max(1e-3, 2 * torch.finfo(model_logits.dtype).eps)
    scale = 1.0 + float(model_logits.abs().max())
    return bool(torch.allclose(ours.float(), model_logits.float(), rtol=tolerance, atol=tolerance * scale))


def output_head(model: Any) -> OutputHead | None:
    """The model's ``OutputHead`` when its logits are exactly its output embedding applied to its
    decoder's final hidden states (checked on a 3-token probe, so a soft-capped or scaled head is
    never taken for one), else None. ``model`` may be a stand-in exposing ``get_decoder``,
    ``project_hidden`` (the head at the weights it scores with), ``parameters`` and ``config``."""
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    project = getattr(model, "project_hidden", None) or getattr(model, "get_output_embeddings", lambda: None)()
    if not isinstance(decoder, torch.nn.Module) or decoder is model or project is None:
        return None
    device = next(model.parameters()).device
    probe = torch.tensor([[1, 2, 3]], dtype=torch.long, device=device) % int(model.config.vocab_size)
    with torch.inference_mode():
        try:
            hidden, out = _decoded(model, decoder, input_ids=probe, use_cache=False)
        except RuntimeError:  # its decoder ran other than once per forward pass: not this model's layout
            return None
        if hidden.shape[:2] != probe.shape or not _same_logits(project(hidden), out.logits):
            return None
    vocab = int(out.logits.shape[-1])
    return OutputHead(decoder, project, max(1, HEAD_SLICE_BYTES // (vocab * 12)))


def score_continuations(
    model: Any, tokenizer: Any, prepared: ScoreInput, *, rows: int, head: OutputHead | None = None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> list[ScoreOutcome]:
    """``score_prepared`` for continuations of repeated contexts (see the module docstring): every item
    needs a context, and no candidates are read. Batches of at most ``rows`` items of similar length;
    with ``head`` (``output_head(model)``), no batch holds every position's logits."""
    encoded = prepared.items
    if prepared.candidate_ids or any(e.context_len == 0 or len(e.ids) == e.context_len for e in encoded):
        raise ValueError("score_continuations needs a context and a continuation in every item, and reads no candidates")
    # Longest continuations first, so a batch pads little; contexts repeat within a batch all the same.
    order = sorted(range(len(encoded)), key=lambda i: (-(len(encoded[i].ids) - encoded[i].context_len), i))
    results: list[ScoreOutcome | None] = [None] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), rows):
            if should_cancel():
                raise Cancelled("the call was cancelled or its deadline passed; scoring stopped")
            batch = order[start : start + rows]
            for i, outcome in zip(batch, _continuation_batch(model, tokenizer, [encoded[i] for i in batch], head),
                                  strict=True):
                results[i] = outcome
    return results  # type: ignore[return-value]


def _continuation_batch(model: Any, tokenizer: Any, items: Sequence[_Encoded], head: OutputHead | None) -> list[ScoreOutcome]:
    """One batch: [shared prefix, once] [each context's own suffix, left-padded, once] [each item's
    continuation, right-padded, from a copy of its context's cache]."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    contexts: dict[tuple[int, ...], int] = {}
    owner = [contexts.setdefault(tuple(e.ids[: e.context_len]), len(contexts)) for e in items]
    distinct = list(contexts)
    shared = _shared_prefix(distinct)
    width = max(len(c) - shared for c in distinct)
    longest = max(len(e.ids) - e.context_len for e in items)
    cache = reserved_cache(model.config, shared + width + longest)
    # Contexts: (C, shared + width), each row's own tokens after its left padding.
    ctx_ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
    ctx_mask = torch.ones((len(distinct), shared + width), dtype=torch.long)
    for row, ctx in enumerate(distinct):
        own = ctx[shared:]
        ctx_ids[row, width - len(own) :] = torch.tensor(own, dtype=torch.long)
        ctx_mask[row, shared : shared + width - len(own)] = 0
    ctx_mask = ctx_mask.to(device)
    if shared:
        model(input_ids=torch.tensor([distinct[0][:shared]], device=device), cache=cache, use_cache=True,
              logits_to_keep=_last_column(shared, device))
        cache.batch_repeat_interleave(len(distinct))
    positions = (ctx_mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    last = model(input_ids=ctx_ids.to(device), attention_mask=ctx_mask, position_ids=positions, cache=cache,
                 use_cache=True, logits_to_keep=_last_column(width, device)).logits[:, -1, :].float()  # (C, V)
    # Continuations: (B, longest), right-padded, after a copy of their context's cache.
    select = torch.tensor(owner, device=device)
    cache.batch_select_indices(select)
    cont_ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    cont_mask = torch.zeros((len(items), longest), dtype=torch.long)
    for row, e in enumerate(items):
        cont = e.ids[e.context_len :]
        cont_ids[row, : len(cont)] = torch.tensor(cont, dtype=torch.long)
        cont_mask[row, : len(cont)] = 1
    lengths = torch.tensor([e.context_len for e in items], device=device)
    cont_positions = lengths[:, None] + torch.arange(longest, device=device)[None, :]
    inputs = dict(input_ids=cont_ids.to(device), attention_mask=torch.cat([ctx_mask[select], cont_mask.to(device)], dim=1),
                  position_ids=cont_positions, cache=cache, use_cache=True)
    targets = [torch.tensor(e.ids[e.context_len :], dtype=torch.long, device=device) for e in items]
    first = torch.log_softmax(last, dim=-1)  # (C, V): each context's first-token log-probs
    first_lp = [first[owner[row], int(t[0])] for row, t in enumerate(targets)]
    first_greedy = [int(last[owner[row]].argmax()) == int(t[0]) for row, t in enumerate(targets)]
    if head is None:
        logits = model(**inputs).logits.float()  # (B, L, V)
        rest = [_token_logprobs(logits[row, : len(t) - 1], t[1:]) for row, t in enumerate(targets)]
    else:
        rest = _sliced_logprobs(model, head, inputs, targets)
    out = []
    for row, t in enumerate(targets):
        lp, greedy = rest[row]
        token_logprobs = (float(first_lp[row].double()), *(float(x) for x in lp.double().tolist()))
        out.append(ScoreOutcome(logprob=float(sum(token_logprobs)), num_tokens=len(t), token_logprobs=token_logprobs,
                                is_greedy=first_greedy[row] and bool(greedy.all()), candidate_logits=()))
    return out


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and whether it is the argmax, per position of (N, V) fp32 ``logits``."""
    logits, targets = logits.float(), targets.to(logits.device)  # the head's device may be another (a device map)
    chosen = logits.gather(1, targets[:, None]).squeeze(1)
    return chosen - torch.logsumexp(logits, dim=-1), logits.argmax(dim=-1) == targets


def _sliced_logprobs(
    model: Any, head: OutputHead, inputs: dict[str, Any], targets: Sequence[torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each row's log-probs of its targets after the first, ``head.slice_tokens`` positions at a time."""
    ids = inputs["input_ids"]
    hidden, out = _decoded(model, head.decoder, logits_to_keep=_last_column(ids.shape[1], ids.device), **inputs)
    if not _same_logits(head.project(hidden[:, -1].contiguous()), out.logits[:, -1]):
        raise RuntimeError("the output head gave other logits than the model at the batch's last position; "
                           "scoring stopped rather than report a wrong likelihood")
    device = hidden.device
    rows = torch.cat([torch.full((len(t) - 1,), row, dtype=torch.long) for row, t in enumerate(targets)]).to(device)
    cols = torch.cat([torch.arange(len(t) - 1) for t in targets]).to(device)
    wanted = torch.cat([t[1:] for t in targets])
    lps, greedy = [], []
    for start in range(0, len(wanted), head.slice_tokens):
        end = start + head.slice_tokens
        lp, g = _token_logprobs(head.project(hidden[rows[start:end], cols[start:end]]), wanted[start:end])
        lps.append(lp)
        greedy.append(g)
    flat_lp = torch.cat(lps) if lps else torch.zeros(0, device=device)
    flat_greedy = torch.cat(greedy) if greedy else torch.zeros(0, dtype=torch.bool, device=device)
    sizes = [len(t) - 1 for t in targets]
    return list(zip(flat_lp.split(sizes), flat_greedy.split(sizes), strict=True))


def _shared_prefix(contexts: Sequence[Sequence[int]]) -> int:
    """Tokens every context starts with (each keeps at least one of its own), if at least MIN_SHARED_PREFIX."""
    if len(contexts) < 2:
        return 0
    first, limit = contexts[0], min(len(c) for c in contexts) - 1
    length = 0
    while length < limit and all(c[length] == first[length] for c in contexts):
        length += 1
    return length if length >= MIN_SHARED_PREFIX else 0
