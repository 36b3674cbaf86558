"""Capability and fluency through the ``Score`` RPC (docs/method.md section 6), torch-free.

The maths and formats live in :mod:`.capability` (``perplexity``, ``perplexity_items``,
``mc_prompt``, ``mc_candidates``, ``mc_accuracy``); this module only asks a server for the numbers:

  - :func:`perplexity_at`: each text is scored as the continuation of an empty context (the
    server's tokenisation rule: ``[BOS] + tok(context) + tok(continuation)``, each encoded on its
    own; without a BOS the first token of each text is not scored), and the perplexity is
    ``exp(-sum logprob / sum num_tokens)`` over all texts.
  - :func:`mc_accuracy_at`: one item per question, ``(mc_prompt(q, shots=shots), " A")``, with the
    letters ``mc_candidates(len(q.choices))`` as next-token candidates; the answer is the argmax of
    ``candidate_logits`` (ties -> the lowest letter). The continuation is only there because the
    RPC needs one; its score is not used. ``mc_format`` picks the prompt/letters variant
    (:data:`~.capability.MC_FORMATS`); the server encodes each candidate as given.

Both evaluate at ``at`` (a ``Perturbation``; ``None`` = theta0). Large inputs are split into
requests of at most ``chunk`` items; every chunk must report the same weight-state fingerprint
(a mismatch raises :class:`~.errors.VisageError`: the numbers would mix two models).
"""

from __future__ import annotations

from collections.abc import Sequence

from safety_landscape.v1 import landscape_pb2 as pb

from .call_results import ScoreResult
from .capability import MCQuestion, mc_accuracy, mc_candidates, mc_prompt, perplexity, perplexity_items
from .client import Client
from .errors import ValidationError, VisageError

__all__ = ["mc_accuracy_at", "mc_logits_at", "perplexity_at", "score_at"]

DEFAULT_CHUNK = 256


def score_at(
    client: Client,
    items: Sequence[tuple[str, str]],
    *,
    candidates: Sequence[str] = (),
    at: pb.Perturbation | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[list[ScoreResult], str]:
    """Score ``items`` in requests of at most ``chunk``; (results in order, weight fingerprint)."""
    if chunk < 1:
        raise ValidationError(f"chunk must be >= 1, got {chunk}")
    if not items:
        raise ValidationError("no items to score")
    results: list[ScoreResult] = []
    fingerprint = ""
    for start in range(0, len(items), chunk):
        resp = client.score(items[start : start + chunk], candidates=candidates, at=at)
        fp = resp.weight_state.fingerprint
        if fingerprint and fp != fingerprint:
            raise VisageError(
                f"the server scored chunks at different weights ({fingerprint[:16]} then {fp[:16]}); "
                "retry: a request's weights are named by its perturbation, so this is a server bug"
            )
        fingerprint = fp
        results.extend(resp.results)
    return results, fingerprint


def perplexity_at(client: Client, texts: Sequence[str], at: pb.Perturbation | None = None, *,
                  chunk: int = DEFAULT_CHUNK) -> float:
    """Perplexity of the model at ``at`` over ``texts`` (token-weighted, natural log)."""
    try:
        items = perplexity_items(texts)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    results, _ = score_at(client, items, at=at, chunk=chunk)
    try:
        return perplexity([r.logprob for r in results], [r.num_tokens for r in results])
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def mc_logits_at(
    client: Client,
    questions: Sequence[MCQuestion],
    shots: Sequence[MCQuestion] = (),
    at: pb.Perturbation | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
    mc_format: str = "harness",
) -> list[list[float]]:
    """The answer-letter logits of each question (k-shot MMLU prompts), in question order."""
    if not questions:
        raise ValidationError("no questions; accuracy needs at least one")
    # One request per number of choices (the candidates are per request).
    by_width: dict[int, list[int]] = {}
    for i, q in enumerate(questions):
        by_width.setdefault(len(q.choices), []).append(i)
    logits: list[list[float] | None] = [None] * len(questions)
    fingerprints: set[str] = set()
    for width, indices in sorted(by_width.items()):
        try:
            candidates = mc_candidates(width, mc_format=mc_format)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        items = [(mc_prompt(questions[i], shots=shots, mc_format=mc_format), candidates[0]) for i in indices]
        results, fp = score_at(client, items, candidates=candidates, at=at, chunk=chunk)
        fingerprints.add(fp)
        for i, r in zip(indices, results, strict=True):
            logits[i] = list(r.candidate_logits)
    if len(fingerprints) > 1:
        raise VisageError("the server scored questions at different weights; this is a server bug")
    return logits  # type: ignore[return-value]


def mc_accuracy_at(
    client: Client,
    questions: Sequence[MCQuestion],
    shots: Sequence[MCQuestion] = (),
    at: pb.Perturbation | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
    mc_format: str = "harness",
) -> float:
    """Multiple-choice accuracy in percent (argmax of the letter logits; ties -> lowest letter)."""
    logits = mc_logits_at(client, questions, shots, at, chunk=chunk, mc_format=mc_format)
    return mc_accuracy(questions, logits)
