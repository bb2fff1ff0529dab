"""Honest summaries over seeds: the mean and the half-width of a 95% Student-t interval."""

import math

import numpy as np
from scipy import stats as _scipy_stats


def mean_ci95(values: np.ndarray) -> tuple[float, float]:
    """(mean, half-width) of the 95% t-interval for the mean of ``values`` [n].

    The interval is mean ± t_{0.975, n−1} · s / √n with s the sample standard deviation;
    it is NaN for n < 2, and both are NaN for n = 0 (e.g. every seed diverged).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    t = float(_scipy_stats.t.ppf(0.975, df=n - 1))
    return mean, t * float(values.std(ddof=1)) / math.sqrt(n)
