"""Is ŷ a probability? Proper scores and calibration of ŷ = P(Y=1 | x) (eq. 1) on a split.

- Brier score: mean (ŷ − y)², a proper score (lower is better); the log-likelihood per
  example (eq. 3 / n) is the other.
- ECE with equal-mass bins: examples sorted by ŷ are cut into ``BINS`` bins of (nearly) equal
  count, and ECE = Σ_b (n_b / n) |mean y − mean ŷ| over the bins. The cuts are those of
  ``sklearn.calibration.calibration_curve(strategy="quantile")`` wherever ŷ has no ties (at
  a whole quantile index, which side the example at the edge falls depends on its value);
  with ties (at 99% accuracy many ŷ round to exactly 1 in float32) ranks still cut the bins
  into equal counts, where quantile edges would merge them.
- The reference ECE: the same statistic for labels drawn from the model's own ŷ,
  y ~ Bernoulli(ŷ), averaged over ``REFERENCE_DRAWS`` draws. A perfectly calibrated model
  scores about this much, not 0: ECE is biased upwards, most where bins are few examples away
  from 0 or 1. An ECE near its reference is no evidence of miscalibration.
- Temperature scaling (Guo et al. 2017): ŷ_T = σ(z / T), one scalar T per member fitted on
  the validation split by maximising its LL. Accuracy is unchanged (the sign of z is).

Pure functions of logits or probabilities of shape [n]; n and the bin count are static.
"""

import jax
import jax.numpy as jnp

from deepmle.core.bins import BINS
from deepmle.core.bins import edges as _edges
from deepmle.core.likelihood import example_log_likelihoods
from deepmle.core.types import Array, PRNGKey

METRICS = ("test_ll", "test_brier", "test_ece", "test_ece_reference")
"""What ``split_metrics`` measures, in order."""
REFERENCE_DRAWS = 200
TEMPERATURE_RANGE = (1e-2, 1e2)
"""T is searched in this range (bisection on log T); a T at a bound says the fit wanted more."""
_BISECTIONS = 60


def _bin_ids(ps: Array, bins: int) -> Array:
    """int32 [n]: ``bin_of_rank`` of ps [n] (float32, ascending) inside a program. Where numpy
    interpolates down from rank j+1 by (1 − g)·(ŷ_{j+1} − ŷ_j) (float32 difference, float64
    product and subtraction), its edge is ŷ_{j+1} itself when that product is at most half
    the float64 gap below ŷ_{j+1}: compared here in float32 after scaling by ŷ_{j+1}'s power
    of two (exact), so only a product within float32 rounding of that half gap can differ."""
    n = ps.shape[0]
    j, s, down = _edges(n, bins)
    b = ps[j + 1]
    mantissa, exponent = jnp.frexp(b)  # b = mantissa · 2^exponent, mantissa in [0.5, 1)
    half_gap = jnp.where(mantissa == 0.5, 2.0**-55, 2.0**-54)  # of float64, over 2^exponent
    scaled = jnp.ldexp(b - ps[j], -exponent) * jnp.asarray(s, ps.dtype)
    on_rank = jnp.asarray(down) & (scaled <= half_gap)
    ends = jnp.asarray(j + 1, jnp.int32) + on_rank.astype(jnp.int32)
    return jnp.sum(jnp.arange(n)[:, None] >= ends[None, :], axis=1, dtype=jnp.int32)


def _bin_sums(d: Array, ids: Array, bins: int) -> Array:
    """Σ over each equal-mass bin ``ids`` [n] of ``d`` [n] (values in ascending order of ŷ):
    [bins]. A sequential scatter-add, not a matmul, whose threaded reduction could vary run
    to run."""
    return jax.ops.segment_sum(d, ids, num_segments=bins, indices_are_sorted=True)


def brier(p: Array, y: Array) -> Array:
    """Mean (ŷ − y)² over examples: p, y [n]."""
    return jnp.mean(jnp.square(p - y))


def ece(p: Array, y: Array, bins: int = BINS) -> Array:
    """Expected calibration error of p [n] against labels y [n], equal-mass bins."""
    order = jnp.argsort(p, stable=True)
    ps = p[order]
    gap = _bin_sums(y[order] - ps, _bin_ids(ps, bins), bins)  # [bins]: Σ_b (y − ŷ)
    return jnp.sum(jnp.abs(gap)) / p.shape[0]


def ece_reference(p: Array, key: PRNGKey, bins: int = BINS, draws: int = REFERENCE_DRAWS) -> Array:
    """Mean ECE of p [n] against labels drawn y ~ Bernoulli(p), ``draws`` times from ``key``:
    what a perfectly calibrated model with these ŷ would score."""
    ps = jnp.sort(p)
    ids = _bin_ids(ps, bins)

    def one(k: Array) -> Array:
        y = (jax.random.uniform(jax.random.fold_in(key, k), ps.shape) < ps).astype(ps.dtype)
        return jnp.sum(jnp.abs(_bin_sums(y - ps, ids, bins))) / ps.shape[0]

    return jnp.mean(jax.lax.map(one, jnp.arange(draws), batch_size=20))


def fit_temperature(z: Array, y: Array) -> Array:
    """T maximising the mean LL of σ(z / T) on logits z [n] and labels y [n] (validation).

    LL is concave in β = 1/T, so its derivative mean((y − σ(βz)) z) falls with β: bisection
    on log β finds the root, or stops at a bound of TEMPERATURE_RANGE."""
    lo, hi = (jnp.log(1.0 / t) for t in TEMPERATURE_RANGE[::-1])

    def halve(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        a, b = bounds
        mid = 0.5 * (a + b)
        rising = jnp.mean((y - jax.nn.sigmoid(jnp.exp(mid) * z)) * z) > 0
        return jnp.where(rising, mid, a), jnp.where(rising, b, mid)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, halve, (lo, hi))
    return jnp.exp(-0.5 * (a + b))


def split_metrics(z: Array, y: Array, key: PRNGKey, suffix: str = "") -> dict[str, Array]:
    """``test_ll`` (per example), ``test_brier``, ``test_ece`` and ``test_ece_reference`` of
    logits z [n] against labels y [n], each name with ``suffix``."""
    p = jax.nn.sigmoid(z)
    return {
        f"test_ll{suffix}": jnp.mean(example_log_likelihoods(z, y)),
        f"test_brier{suffix}": brier(p, y),
        f"test_ece{suffix}": ece(p, y),
        f"test_ece_reference{suffix}": ece_reference(p, key),
    }
