"""Equal-mass bins of ŷ, as sklearn's ``calibration_curve(strategy="quantile")`` cuts them,
in numpy only: deepmle.core.calibration measures ECE with them inside a program, and the
figures (deepmle.analysis.plots) draw them without importing jax."""

import numpy as np

BINS = 15


def edges(n: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``numpy.percentile`` puts calibration_curve's inner quantile edges among n sorted
    values, as numpy computes it: edge k between ranks j_k and j_k + 1 at the fraction g_k of
    its float virtual index (n−1)·q_k. Returns (j [bins−1] int, 1 − g_k [bins−1] float64,
    g_k ≥ 0.5 [bins−1] bool: numpy then interpolates down from rank j_k + 1)."""
    q = np.linspace(0, 1, bins + 1) * 100  # calibration_curve's percentiles, as it builds them
    virtual = (n - 1) * (q[1:-1] / 100)
    j = np.floor(virtual)
    g = virtual - j
    return j.astype(np.int64), 1 - g, g >= 0.5


def bin_of_rank(p_sorted: np.ndarray, bins: int = BINS) -> np.ndarray:
    """int [n]: the equal-mass bin of each of ``p_sorted`` [n] (ŷ ascending, numpy). Bin k ends
    after rank j_k, or after j_k + 1 where numpy's edge lands on that rank's ŷ itself (a
    whole index such as 722 computed as 721.99...): calibration_curve puts an example equal
    to an edge in the bin below. So the bins are its quantile strategy exactly, wherever ŷ has
    no ties; with ties ranks still cut the bins into equal counts."""
    p_sorted = np.asarray(p_sorted)
    n = p_sorted.size
    j, _, _ = edges(n, bins)
    edge = np.percentile(p_sorted, np.linspace(0, 1, bins + 1) * 100)[1:-1]
    ends = j + 1 + (edge >= p_sorted[j + 1])  # first rank past each cut
    return np.searchsorted(ends, np.arange(n), side="right")
