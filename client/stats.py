"""Uncertainty of the landscape's numbers: Wilson intervals, exact McNemar, seeded bootstraps. Pure, no I/O.

- :func:`wilson_interval` bounds a rate ``k / n`` (an ASR, an over-refusal or an accuracy over ``n``
  prompts) at 95 % by the Wilson score interval, and :func:`prompts_to_decide` says how many prompts
  would put that interval on one side of a threshold if the rate stayed as measured.
- :func:`mcnemar_exact` is the exact two-sided McNemar test of two paired 0/1 outcomes on the same
  prompts (an ASR at the origin before and after a change).
- :func:`bootstrap_visage` bounds VISAGE per series and its mean over directions by resampling the
  prompts and the directions; :func:`paired_bootstrap_visage` compares two landscapes measured on the
  same prompts and directions with the same resamples. The procedure and the seed are in
  docs/statistics.md; every draw comes from ``random.Random(seed).random()``, whose sequence Python
  guarantees for a given seed, so an interval is reproducible across machines and versions.

A series is given as its points' per-prompt verdicts, in grid order: ``[[jailbroken of prompt 0,
prompt 1, ...] at point 0, ...]`` (booleans or 0/1).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "LEVEL",
    "Z95",
    "Bootstrap",
    "PairedComparison",
    "VisageIntervals",
    "bootstrap_visage",
    "mcnemar_exact",
    "paired_bootstrap_visage",
    "percentile",
    "prompts_to_decide",
    "rate_interval",
    "wilson_interval",
]

#: The confidence level of every interval, and its two-sided normal quantile (Phi^-1(0.975)).
LEVEL = 0.95
Z95 = 1.959963984540054

Interval = tuple[float, float]
Score = Callable[[Sequence[float]], float]  # a VISAGE rule on one series' ASR values (percent)
Verdicts = Sequence[Sequence[bool | int]]  # points x prompts


def wilson_interval(k: int, n: int, *, z: float = Z95) -> Interval:
    """The Wilson score interval of the proportion ``k / n`` (0..1).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = k/n``; clipped to [0, 1]
    (the bounds are exact 0 and 1 at ``k = 0`` and ``k = n``). ``n = 0`` gives ``(0, 1)``: nothing
    was measured. ValueError unless ``0 <= k <= n``.
    """
    if not (0 <= k <= n):
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def rate_interval(k: int, n: int) -> Interval:
    """:func:`wilson_interval` in percent (the unit of ASR, over-refusal and accuracy)."""
    low, high = wilson_interval(k, n)
    return (100.0 * low, 100.0 * high)


def prompts_to_decide(rate: float, threshold: float, n: int, *, at_most: bool, cap: int = 1_000_000) -> int | None:
    """The fewest prompts ``N >= n`` whose Wilson interval at the measured ``rate`` (percent) lies
    wholly on one side of ``threshold`` (percent): below it for an ``at_most`` check (``<=``), above
    it otherwise. None when no ``N <= cap`` decides (the rate sits on the threshold)."""
    p, t = rate / 100.0, threshold / 100.0

    def decided(m: int) -> bool:
        low, high = wilson_interval(round(p * m), m)
        return (high <= t or low > t) if at_most else (low >= t or high < t)

    if n > 0 and decided(n):
        return n
    low_n, high_n = max(n, 1), max(n, 1)
    while not decided(high_n):  # doubling, then bisection: decided() is monotone in m for fixed p
        if high_n >= cap:
            return None
        low_n, high_n = high_n, min(cap, high_n * 2)
    while low_n < high_n:
        mid = (low_n + high_n) // 2
        if decided(mid):
            high_n = mid
        else:
            low_n = mid + 1
    return high_n


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (b: only the first
    outcome is 1, c: only the second): ``min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])``; 1.0
    when there is no discordant pair."""
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_exact: counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = math.fsum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation between order statistics
    (``x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)])``, ``h = (len - 1) * q``)."""
    if not values:
        raise ValueError("percentile of no values")
    xs = sorted(values)
    h = (len(xs) - 1) * q
    i = math.floor(h)
    if i + 1 >= len(xs):
        return xs[-1]
    return xs[i] + (h - i) * (xs[i + 1] - xs[i])


@dataclass(frozen=True)
class Bootstrap:
    """How many resamples and from which seed (recorded beside every bootstrap interval)."""

    replicates: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replicates < 10:
            raise ValueError(f"bootstrap replicates must be >= 10, got {self.replicates}")

    def interval(self, values: Sequence[float]) -> Interval:
        """The central percentile interval at :data:`LEVEL`."""
        tail = (1.0 - LEVEL) / 2.0
        return (percentile(values, tail), percentile(values, 1.0 - tail))


#: 2000 replicates from seed 0: what summaries and the gate use unless told otherwise.
DEFAULT_BOOTSTRAP = Bootstrap()


@dataclass(frozen=True)
class VisageIntervals:
    """``per_series``: each series' VISAGE interval (prompts resampled); ``mean``: the interval of
    the mean over the series (prompts and series resampled); ``replicates`` of the mean."""

    per_series: dict[str, Interval]
    mean: Interval
    replicates: tuple[float, ...]


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus baseline (mean VISAGE over directions), its interval and two-sided p-value."""

    difference: float
    interval: Interval
    p_value: float
    replicates: int
    seed: int


@functools.lru_cache(maxsize=8)
def _resamples(n: int, m: int, boot: Bootstrap) -> tuple[Any, tuple[tuple[int, ...], ...]]:
    """Every replicate's prompt counts (a replicates x n array: how often each prompt is drawn in
    ``n`` draws with replacement) and its ``m`` series indices, in the documented draw order."""
    import numpy as np

    rng = random.Random(boot.seed)
    counts, picks = [], []
    for _ in range(boot.replicates):
        row = [0] * n
        for _ in range(n):
            row[int(rng.random() * n)] += 1
        counts.append(row)
        picks.append(tuple(int(rng.random() * m) for _ in range(m)))
    array = np.array(counts, dtype=np.int64)
    array.flags.writeable = False  # cached: shared by every caller with the same (n, m, boot)
    return array, tuple(picks)


def _check(series: Mapping[str, Verdicts]) -> int:
    """The number of prompts, the same at every point of every series; ValueError otherwise."""
    sizes = {len(row) for rows in series.values() for row in rows}
    if not series or any(not rows for rows in series.values()):
        raise ValueError("bootstrap: every series needs at least one point")
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"bootstrap: every point needs the same, non-zero number of prompts, got {sorted(sizes)}")
    return sizes.pop()


def _replicate_scores(rows: Verdicts, score: Score, counts: Any) -> list[float]:
    """One series' VISAGE under each replicate: ASR = 100 * (drawn jailbroken prompts) / n, exact
    integer counts (points x n verdicts times n x replicates counts)."""
    import numpy as np

    verdicts = np.array([[1 if x else 0 for x in row] for row in rows], dtype=np.int64)
    n = verdicts.shape[1]
    rates = (verdicts @ counts.T) * 100.0 / n  # points x replicates; 100 * k / n as the server computes ASR
    return [score(rates[:, r].tolist()) for r in range(rates.shape[1])]


def _draws(landscapes: Sequence[Mapping[str, Verdicts]], score: Score,
           boot: Bootstrap) -> tuple[list[str], list[dict[str, list[float]]], tuple[tuple[int, ...], ...]]:
    """(sorted series names; per landscape, each series' VISAGE per replicate; per replicate the
    drawn series indices). The same prompt and series draws serve every landscape: the pairing."""
    n = _check(landscapes[0])
    names = sorted(landscapes[0])
    for other in landscapes[1:]:
        if _check(other) != n or sorted(other) != names:
            raise ValueError("paired bootstrap: both landscapes need the same series and the same number of prompts")
    counts, picks = _resamples(n, len(names), boot)
    scores = [{name: _replicate_scores(land[name], score, counts) for name in names} for land in landscapes]
    return names, scores, picks


def bootstrap_visage(series: Mapping[str, Verdicts], score: Score, boot: Bootstrap = DEFAULT_BOOTSTRAP) -> VisageIntervals:
    """VISAGE intervals of one landscape (see the module docstring and docs/statistics.md).

    Replicate ``r`` of ``boot.replicates``: draw ``n`` prompt indices with replacement (``n`` calls
    of ``rng.random()``, index ``floor(u * n)``), then as many series names as there are series, with
    replacement, from the sorted names (index ``floor(u * m)``); recompute every point's ASR on the
    drawn prompts, each series' VISAGE with ``score``, and the mean over the drawn series. Intervals
    are the 2.5 and 97.5 percentiles of the replicates.
    """
    names, (scores,), picks = _draws([series], score, boot)
    per_series = {name: boot.interval(scores[name]) for name in names}
    means = tuple(math.fsum(scores[names[i]][r] for i in picked) / len(picked) for r, picked in enumerate(picks))
    return VisageIntervals(per_series, boot.interval(means), means)


def paired_bootstrap_visage(candidate: Mapping[str, Verdicts], baseline: Mapping[str, Verdicts], score: Score,
                            boot: Bootstrap = DEFAULT_BOOTSTRAP) -> PairedComparison:
    """Candidate minus baseline mean VISAGE, both resampled with the same prompts and directions.

    The p-value is two-sided, the bootstrap's test of "no difference" with the usual add-one
    correction (a Monte Carlo p-value is never 0): ``min(1, 2 * min(#(d <= 0) + 1, #(d >= 0) + 1)
    / (replicates + 1))`` over the replicates' differences ``d``.
    """
    names, (cand, base), picks = _draws([candidate, baseline], score, boot)
    observed = (math.fsum(score(_rates(candidate[s])) for s in names)
                - math.fsum(score(_rates(baseline[s])) for s in names)) / len(names)
    diffs = [math.fsum(cand[names[i]][r] - base[names[i]][r] for i in picked) / len(picked)
             for r, picked in enumerate(picks)]
    below, above = sum(1 for d in diffs if d <= 0.0), sum(1 for d in diffs if d >= 0.0)
    p_value = min(1.0, 2.0 * (min(below, above) + 1) / (len(diffs) + 1))
    return PairedComparison(observed, boot.interval(diffs), p_value, boot.replicates, boot.seed)


def _rates(rows: Verdicts) -> list[float]:
    return [100.0 * sum(1 for x in row if x) / len(row) for row in rows]
