"""Empirical privacy auditing: a statistical lower bound on the epsilon a mechanism achieves.

The standard recipe (Jagielski et al. 2020, "Auditing differentially private
machine learning"; Nasr et al. 2021): run the mechanism many times on two
neighbouring datasets, turn each output into a yes/no guess "was it the
larger dataset?" with a threshold picked on a first half of the samples,
and bound the two error rates on the second half with Clopper-Pearson
intervals. Any (ε, δ)-DP mechanism satisfies
``P[yes | D'] ≤ e^ε · P[yes | D] + δ``, so
``ln((p1_low - δ) / p0_high)`` is an epsilon the mechanism provably exceeds
(with 99.9% confidence) — it must not exceed the claimed epsilon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P[X <= k] for X ~ Binomial(n, p), in log space for stability."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    for i in range(k + 1):
        log_term = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        total += math.exp(log_term + i * log_p + (n - i) * log_q)
    return min(1.0, total)


def clopper_pearson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact two-sided (1 - alpha) interval for a binomial proportion (by bisection)."""

    def solve(target: float, k: int) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if _binomial_cdf(k, n, mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    low = 0.0 if successes == 0 else solve(1 - alpha / 2, successes - 1)
    high = 1.0 if successes == n else solve(alpha / 2, successes)
    return low, high


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """A quick confidence interval, to pick the threshold on the training half."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def epsilon_lower_bound(
    without: Sequence[float], with_: Sequence[float], *, delta: float = 0.0
) -> float:
    """The audited epsilon from samples of one statistic on D and on D' (= D + one person).

    Thresholds are chosen on the first half of each sample set (both
    directions: "large means D'" and "small means D'"), the bound is computed
    on the second half.
    """
    half0, half1 = len(without) // 2, len(with_) // 2
    train0, test0 = list(without[:half0]), list(without[half0:])
    train1, test1 = list(with_[:half1]), list(with_[half1:])
    candidates = sorted(set(train0) | set(train1))

    def rate(values: list[float], threshold: float, upper: bool) -> float:
        hits = sum((v > threshold) if upper else (v < threshold) for v in values)
        return hits / len(values)

    best: tuple[float, float, bool] | None = None
    for t in candidates[:: max(1, len(candidates) // 400)]:
        for upper in (True, False):
            p1 = _wilson(rate(train1, t, upper), len(train1))[0]
            p0 = _wilson(rate(train0, t, upper), len(train0))[1]
            score = math.log(max(p1 - delta, 1e-12) / p0)
            if best is None or score > best[0]:
                best = (score, t, upper)
    assert best is not None
    _, threshold, upper = best
    hits1 = sum((v > threshold) if upper else (v < threshold) for v in test1)
    hits0 = sum((v > threshold) if upper else (v < threshold) for v in test0)
    # 99.9% intervals: a correct mechanism fails this audit about once in a thousand runs.
    p1_low, _ = clopper_pearson(hits1, len(test1), alpha=0.001)
    _, p0_high = clopper_pearson(hits0, len(test0), alpha=0.001)
    if p1_low - delta <= 0:
        return 0.0
    return max(0.0, math.log((p1_low - delta) / p0_high))
