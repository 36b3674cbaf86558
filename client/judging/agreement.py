"""How far two judges agree on the same answers: the confusion matrix, the observed agreement and Cohen's kappa.

Pure statistics over paired labels (no store, no server). ``kappa = (p_o - p_e) / (1 - p_e)``, with
``p_o`` the share of answers both judges label alike and ``p_e`` the share expected by chance from
each judge's own label frequencies (Cohen 1960). Kappa is None, never a made-up number, when it is
undefined: no answers, or ``p_e = 1`` (both judges gave one and the same label to every answer, so
chance explains all agreement).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Agreement", "agreement"]


@dataclass(frozen=True)
class Agreement:
    """Two judges' labels on ``n`` answers. ``matrix[i][j]`` counts the answers judge A labelled
    ``categories[i]`` and judge B ``categories[j]``."""

    categories: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return sum(sum(row) for row in self.matrix)

    @property
    def agreed(self) -> int:
        return sum(self.matrix[i][i] for i in range(len(self.categories)))

    @property
    def observed(self) -> float | None:
        """p_o: the share of answers labelled alike (None with no answers)."""
        return self.agreed / self.n if self.n else None

    @property
    def expected(self) -> float | None:
        """p_e: the agreement expected by chance from each judge's label frequencies."""
        n = self.n
        if not n:
            return None
        rows = [sum(row) for row in self.matrix]
        cols = [sum(row[j] for row in self.matrix) for j in range(len(self.categories))]
        return sum(r * c for r, c in zip(rows, cols, strict=True)) / (n * n)

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa; None when undefined (no answers, or p_e = 1)."""
        po, pe = self.observed, self.expected
        if po is None or pe is None or pe >= 1.0:
            return None
        return (po - pe) / (1.0 - pe)

    def to_dict(self) -> dict[str, object]:
        return {"categories": list(self.categories), "matrix": [list(row) for row in self.matrix], "n": self.n,
                "agreement": self.observed, "expected_by_chance": self.expected, "kappa": self.kappa}


def agreement(pairs: Iterable[tuple[str, str]], categories: Sequence[str]) -> Agreement:
    """The confusion matrix of (judge A's label, judge B's label) pairs over ``categories`` (in that
    order); a label outside them is a ValueError (never dropped silently)."""
    index = {c: i for i, c in enumerate(categories)}
    if len(index) != len(categories):
        raise ValueError(f"categories must be distinct, got {list(categories)}")
    counts = [[0] * len(categories) for _ in categories]
    for a, b in pairs:
        if a not in index or b not in index:
            raise ValueError(f"label {a if a not in index else b!r} is not one of {', '.join(categories)}")
        counts[index[a]][index[b]] += 1
    return Agreement(tuple(categories), tuple(tuple(row) for row in counts))
