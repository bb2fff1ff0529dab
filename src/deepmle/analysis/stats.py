"""Honest summaries: over seeds, the mean and the half-width of a 95% Student-t interval; over
the digits a rate is measured on, its binomial sampling half-width."""

import math

import numpy as np
from scipy.special import stdtrit


def t_quantile(df: int, p: float = 0.975) -> float:
    """Student's t quantile: t_{0.975, df} (12.71 for df 1, 2.36 for df 7, → 1.96)."""
    return float(stdtrit(df, p))


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
