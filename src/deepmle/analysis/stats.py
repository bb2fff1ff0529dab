"""Honest summaries: over seeds, the mean and the half-width of a 95% Student-t interval; over
the digits a rate is measured on, its binomial sampling half-width."""

import math

import numpy as np

EXACT_DF = 10_000
"""Up to this many degrees of freedom ``t_quantile`` sums the closed form itself; beyond, it
asks scipy (whose import alone is 0.3 s of ``deepmle plot``)."""

TAILS = (1e-6, 0.499)
"""The tail probabilities min(p, 1 - p) the closed form serves (every interval deepmle shows
is 95%); outside, 2p - 1 would lose digits and scipy answers."""


def _t_central(t: float, df: int) -> float:
    """P(|T| < t) for T ~ Student t with integer ``df`` ≥ 1, t ≥ 0: the finite series of
    Abramowitz & Stegun 26.7.3-4 in θ = atan(t/√df)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 0:  # sinθ (1 + c²/2 + 1·3/(2·4) c⁴ + ... up to c^(df-2))
        term = total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)  # 2/π (θ + sinθ (c + 2/3 c³ + ... up to c^(df-2)))
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + s * total)


def t_quantile(df: int, p: float = 0.975) -> float:
    """Student's t quantile: t_{0.975, df} (12.71 for df 1, 2.36 for df 7, → 1.96), for integer
    ``df`` ≥ 1 and 0 < p < 1 (ValueError otherwise). For 1e-6 ≤ min(p, 1-p) ≤ 0.499 and df up
    to EXACT_DF the closed-form CDF is inverted by bisection to the last bit; beyond (far
    tails, where 2p - 1 loses digits, p next to 0.5, huge df) scipy's stdtrit answers.
    tests/analysis/test_stats.py checks both against scipy."""
    if isinstance(df, bool) or not isinstance(df, int | np.integer) or df < 1:
        raise ValueError(f"t_quantile: df must be an integer >= 1, got {df!r}")
    if not 0 < p < 1:  # NaN too
        raise ValueError(f"t_quantile: p must lie in (0, 1), got {p!r}")
    if p == 0.5:
        return 0.0
    tail = min(p, 1 - p)
    if df > EXACT_DF or not TAILS[0] <= tail <= TAILS[1]:
        from scipy.special import stdtrit

        return float(stdtrit(int(df), p))
    if p < 0.5:
        return -t_quantile(df, 1 - p)
    target = 2 * p - 1
    lo, hi = 0.0, 1.0
    while _t_central(hi, int(df)) < target:
        hi *= 2
    while True:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            return hi
        if _t_central(mid, int(df)) < target:
            lo = mid
        else:
            hi = mid


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width) of the 95% t-interval for the mean of ``values`` [n].

    The interval is mean ± t_{0.975, n−1} · s / √n with s the sample standard deviation
    (ddof 1); the half-width is NaN for n < 2, and both are NaN for n = 0 (every seed diverged).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    return mean, t_quantile(n - 1) * float(values.std(ddof=1)) / math.sqrt(n)


def paired_diff_ci95(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean, 95% t half-width) of a − b over the pairs where both are finite: a per-seed
    comparison of two cells whose members share each seed's initialisation and minibatches."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    return mean_ci95(a[both] - b[both])


def sampling_ci95(error: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an error rate measured on n
    digits, 1.96·sqrt(e(1−e)/n): how far a fresh test set of the same size could move it,
    which the interval over seeds (training randomness on one test set) does not include."""
    return float(1.96 * np.sqrt(error * (1.0 - error) / n))
