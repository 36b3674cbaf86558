"""The interval maths against known values: Wilson (Newcombe 1998's worked examples and the closed
form by hand), exact McNemar (binomial tails by hand), the percentile rule, and the bootstrap: the
documented draw order reproduced independently here, reproducible from its seed, paired draws."""

from __future__ import annotations

import math
import random

import pytest

from safety_landscape.client.stats import (
    Z95,
    Bootstrap,
    bootstrap_visage,
    mcnemar_exact,
    paired_bootstrap_visage,
    percentile,
    prompts_to_decide,
    rate_interval,
    wilson_interval,
)
from safety_landscape.client.visage import rule_score, visage_expectation, visage_reference


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (Wilson score)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_the_published_table(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_closed_form_by_hand():
    # 0 of 80: the upper bound is z^2 / (n + z^2) = 3.841459 / 83.841459 = 0.045818
    z2 = Z95 * Z95
    assert wilson_interval(0, 80) == (0.0, pytest.approx(z2 / (80 + z2), rel=1e-12))
    assert wilson_interval(0, 80)[1] == pytest.approx(0.045818, abs=1e-6)
    # 40 of 80: symmetric about 1/2, half-width z*sqrt(n/4 + z^2/4) / (n + z^2) = 0.107026
    lo, hi = wilson_interval(40, 80)
    assert lo + hi == pytest.approx(1.0, abs=1e-12) and (hi - lo) / 2 == pytest.approx(0.107026, abs=1e-6)
    # k = n mirrors k = 0; percent units for rates
    assert wilson_interval(80, 80) == (pytest.approx(1 - z2 / (80 + z2)), 1.0)
    # 5 of 80: centre (0.0625 + z^2/160) / (1 + z^2/80) = 0.082545, half-width 0.055556
    assert rate_interval(5, 80) == pytest.approx((2.6989, 13.8101), abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: anything is possible
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_prompts_to_decide_is_the_smallest_n_that_excludes_the_threshold():
    # 6.25% on 80 prompts straddles a 10% limit; at the same rate, N prompts put the whole interval below 10%
    assert rate_interval(5, 80)[1] > 10
    n = prompts_to_decide(6.25, 10.0, 80, at_most=True)
    assert n is not None and rate_interval(round(0.0625 * n), n)[1] <= 10.0
    assert rate_interval(round(0.0625 * (n - 1)), n - 1)[1] > 10.0 or round(0.0625 * (n - 1)) != round(0.0625 * n)
    assert prompts_to_decide(0.0, 10.0, 80, at_most=True) == 80  # already decided
    assert prompts_to_decide(25.0, 10.0, 80, at_most=True) == 80  # already decided (fails)
    assert prompts_to_decide(10.0, 10.0, 80, at_most=True, cap=10_000) is None  # on the threshold: never


def test_mcnemar_exact_by_hand():
    # b = 1, c = 9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_percentile_interpolates_between_order_statistics():
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(xs, 0.0) == 1.0 and percentile(xs, 1.0) == 5.0 and percentile(xs, 0.5) == 3.0
    assert percentile(xs, 0.1) == pytest.approx(1.4)  # h = 0.4 between 1 and 2
    assert Bootstrap(10).interval(list(range(41))) == pytest.approx((1.0, 39.0))


def _landscape(seed: int, directions: int = 3, points: int = 7, prompts: int = 40) -> dict[str, list[list[bool]]]:
    rng = random.Random(seed)
    return {f"d{j}": [[rng.random() < min(1.0, 0.1 + abs(i - points // 2) / (points // 2)) for _ in range(prompts)]
                      for i in range(points)] for j in range(directions)}


def _documented_bootstrap(series, score, replicates, seed):
    """docs/statistics.md's procedure, written out independently of the library."""
    rng = random.Random(seed)
    names = sorted(series)
    n = len(series[names[0]][0])
    per = {s: [] for s in names}
    means = []
    for _ in range(replicates):
        idx = [int(rng.random() * n) for _ in range(n)]
        picks = [int(rng.random() * len(names)) for _ in names]
        scores = {s: score([100.0 * sum(1 for i in idx if row[i]) / n for row in series[s]]) for s in names}
        for s in names:
            per[s].append(scores[s])
        means.append(math.fsum(scores[names[p]] for p in picks) / len(picks))
    return per, means


def test_bootstrap_follows_the_documented_procedure_and_its_seed():
    series = _landscape(7)
    boot = Bootstrap(200, seed=11)
    got = bootstrap_visage(series, rule_score("reference"), boot)
    per, means = _documented_bootstrap(series, visage_reference, 200, 11)
    assert got.replicates == pytest.approx(tuple(means), abs=1e-9)
    for name, values in per.items():
        assert got.per_series[name] == pytest.approx(boot.interval(values), abs=1e-9)
    assert got.mean == pytest.approx(boot.interval(means), abs=1e-9)
    again = bootstrap_visage(series, rule_score("reference"), Bootstrap(200, seed=11))
    other = bootstrap_visage(series, rule_score("reference"), Bootstrap(200, seed=12))
    assert again == got and other.replicates != got.replicates
    # the observed VISAGE lies inside each interval
    for name, rows in series.items():
        observed = visage_reference([100.0 * sum(r) / len(r) for r in rows])
        lo, hi = got.per_series[name]
        assert lo <= observed <= hi


def test_bootstrap_interval_of_a_single_rate_is_close_to_wilson():
    # one series of one point: the expectation rule is 100 - ASR, so the interval mirrors the ASR's
    rows = [[i < 24 for i in range(80)]]  # 30% of 80
    got = bootstrap_visage({"d0": rows}, rule_score("expectation"), Bootstrap(4000, seed=0))
    lo, hi = rate_interval(24, 80)
    assert 100 - got.mean[1] == pytest.approx(lo, abs=2.0) and 100 - got.mean[0] == pytest.approx(hi, abs=2.0)
    assert got.mean == got.per_series["d0"]  # one direction: nothing to resample among directions
    fixed = bootstrap_visage({"d0": [[False] * 10]}, rule_score("expectation"), Bootstrap(50))
    assert fixed.mean == (100.0, 100.0)  # no variation, no width
    with pytest.raises(ValueError, match="same, non-zero number of prompts"):
        bootstrap_visage({"d0": [[True] * 3, [True] * 4]}, rule_score("expectation"))


def test_paired_bootstrap_sees_a_shift_that_the_spread_hides():
    base = _landscape(3, prompts=60)
    same = paired_bootstrap_visage(base, base, rule_score("expectation"), Bootstrap(300))
    assert same.difference == 0.0 and same.interval == (0.0, 0.0) and same.p_value == 1.0
    # the candidate jailbreaks 6 more prompts at every point: paired, the difference is certain
    worse = {d: [[x or i < 6 for i, x in enumerate(row)] for row in rows] for d, rows in base.items()}
    shifted = paired_bootstrap_visage(worse, base, rule_score("expectation"), Bootstrap(300))
    observed = (sum(visage_expectation([100 * sum(r) / len(r) for r in worse[d]]) for d in worse)
                - sum(visage_expectation([100 * sum(r) / len(r) for r in base[d]]) for d in base)) / 3
    assert shifted.difference == pytest.approx(observed) and shifted.difference < 0
    assert shifted.interval[1] < 0 and 2 / 301 <= shifted.p_value < 0.05  # add-one: never 0
    with pytest.raises(ValueError, match="same series"):
        paired_bootstrap_visage(base, {"d0": base["d0"]}, rule_score("expectation"))
