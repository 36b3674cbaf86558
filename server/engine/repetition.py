"""Degeneracy of a text: how much of it repeats itself (pure text and token ids, no model).

The coherence referee (``referee.py``) reads these figures beside the unperturbed model's
log-likelihood: a loop such as "in 2166 in 2166 in 2166 ..." is likely under the model (each
step predicts the next) yet says nothing, and only repetition shows it. Each figure is kept per
answer, so a user can re-threshold later:

- ``repeated_ngram_fraction``: of the answer's word 3-grams (words: runs of letters and digits,
  case-folded), the fraction that already occurred earlier in the same answer; 0 below 3 words.
  A fluent paragraph scores near 0, a loop of period p over n words about (n - p - 2) / (n - 2).
- ``repeated_token_ngram_fraction``: the same over the answer's token 4-grams (token ids), which
  sees loops that have no spaces (punctuation, code, scripts written without them).
- ``longest_word_run`` and ``longest_token_run``: the longest run of one word (one token) repeated
  in a row ("no no no no" is 4); 1 for any non-empty answer without one, 0 for an empty one.

The referee decides on ``repetition`` (the larger of the two fractions) and ``longest_run`` (the
larger of the two runs); docs/method.md, "Outcomes and the coherence referee", gives the rule.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

__all__ = ["TOKEN_NGRAM", "WORD_NGRAM", "RepetitionFigures", "longest_run", "repeated_fraction", "repetition_figures", "words"]

WORD_NGRAM = 3
TOKEN_NGRAM = 4
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's words: maximal runs of letters, digits and underscores, case-folded."""
    return [w.casefold() for w in _WORD.findall(text)]


def repeated_fraction(items: Sequence[Hashable], n: int) -> float:
    """Of the ``n``-grams of ``items``, the fraction equal to an earlier one; 0.0 with none."""
    total = len(items) - n + 1
    if total <= 0:
        return 0.0
    seen: set[tuple[Hashable, ...]] = set()
    repeats = 0
    for i in range(total):
        gram = tuple(items[i : i + n])
        if gram in seen:
            repeats += 1
        else:
            seen.add(gram)
    return repeats / total


def longest_run(items: Sequence[Hashable]) -> int:
    """The longest run of one item repeated in a row (0 for no items)."""
    best = run = 0
    previous: Hashable = object()
    for item in items:
        run = run + 1 if item == previous else 1
        previous = item
        best = max(best, run)
    return best


@dataclass(frozen=True)
class RepetitionFigures:
    """How much one answer repeats itself (see the module docstring for each figure)."""

    words: int
    repeated_ngram_fraction: float
    repeated_token_ngram_fraction: float
    longest_word_run: int
    longest_token_run: int

    @property
    def repetition(self) -> float:
        """The figure the referee thresholds: the larger repeated fraction, words or tokens."""
        return max(self.repeated_ngram_fraction, self.repeated_token_ngram_fraction)

    @property
    def longest_run(self) -> int:
        """The longer run in a row, of a word or of a token."""
        return max(self.longest_word_run, self.longest_token_run)


def repetition_figures(text: str, token_ids: Sequence[int]) -> RepetitionFigures:
    """The figures of one answer: its ``text`` and its tokens (``token_ids``, the answer alone)."""
    ws = words(text)
    return RepetitionFigures(
        words=len(ws),
        repeated_ngram_fraction=repeated_fraction(ws, WORD_NGRAM),
        repeated_token_ngram_fraction=repeated_fraction(token_ids, TOKEN_NGRAM),
        longest_word_run=longest_run(ws),
        longest_token_run=longest_run(token_ids),
    )
