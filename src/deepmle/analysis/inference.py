"""Intervals that fit the claim: uncertainty over seeds *and* the digits a number is measured on.

An interval over seeds on one test set says how training randomness moves a number, not how a
fresh test set would. These say both, and say what many comparisons or a bimodal outcome allow:

- ``paired_bootstrap``: a − b of two cells' test error, resampling seeds and test digits jointly
  (the same seeds and digits for both cells: members of a seed share init and minibatches).
- ``holm`` and ``benjamini_hochberg``: which of many p-values survive (family-wise error rate,
  false discovery rate); ``multiple_comparisons``: both, with the unadjusted count, for a JSON.
- ``seed_outcome``: a bimodal outcome as counts ("4 of 8 seeds trained"), a t-interval only
  when every seed (or none) trained.
- ``temperature_interval``: T of temperature scaling with an interval from resampling the
  validation digits it is fitted on.
- ``ece_null``: ECE against its own null, labels drawn y* ~ Bernoulli(ŷ) from the model.

Resampling is numpy's ``default_rng(seed)``, so every interval is reproducible from its seed.
"""

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepmle.analysis import stats
from deepmle.core import checks, registry
from deepmle.core.bins import BINS, bin_of_rank
from deepmle.core.calibration import TEMPERATURE_RANGE, fit_temperature
from deepmle.core.model import forward
from deepmle.core.types import Array, Dataset
from deepmle.runs.results import GroupResult, RunResults

_CHUNK = 1000
"""Bootstrap draws handled at once: bounds the [draws, digits] weights in memory."""


def _activation(activation: str | Callable[[Array], Array]) -> Callable[[Array], Array]:
    return registry.activation(activation) if isinstance(activation, str) else activation


@partial(jax.jit, static_argnums=2)
def _logits(params: list, x: Array, activation: Callable[[Array], Array]) -> Array:
    one = lambda p: forward(p, x, activation)  # noqa: E731
    return jax.vmap(jax.vmap(one))(params)


def predictions(
    group: GroupResult, x: np.ndarray, activation: str | Callable[[Array], Array]
) -> np.ndarray:
    """Logits z [S, L, n] of every member of ``group`` (seeds S, learning rates L) on
    x [n, n_inputs]. ``activation`` is a config's name or what ``registry.activation`` returns.
    One compiled program per (shape, n); a diverged member's logits are whatever its (possibly
    non-finite) params give."""
    x = np.asarray(x)
    checks.pixels(x)  # values are checked here: inside jit, x is traced
    return np.asarray(_logits(group.params, jnp.asarray(x), _activation(activation)))


def _counts(rng: np.random.Generator, draws: int, n: int) -> np.ndarray:
    """Multinomial resampling counts [draws, n] of n items, each row summing to n: how often
    item j is drawn in an n-out-of-n bootstrap sample (drawn as indices, then counted)."""
    idx = rng.integers(0, n, size=(draws, n))
    flat = (idx + n * np.arange(draws)[:, None]).ravel()
    return np.bincount(flat, minlength=draws * n).reshape(draws, n).astype(np.float64)


class Paired(NamedTuple):
    """a − b of an error rate (a fraction): the point difference, its percentile 95% interval,
    the two-sided bootstrap p and how many seeds and digits it was measured on."""

    diff: float
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_digits: int


def paired_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    draws: int = 10_000,
    seed: int = 0,
) -> Paired:
    """Error of a minus error of b, resampling seeds and test digits jointly.

    ``correct_a``, ``correct_b``: bool [S, N], whether seed s's member of each cell got test digit
    j right. ``valid``: bool [S], the seeds to use (False for a seed where either member
    diverged; None: all); a dropped seed is left out of both. Each draw resamples S of the valid
    seeds and N of the digits with replacement, the same for a and b, and takes the mean of
    D = err_a − err_b over them: (w_s · D · w_dᵀ) / (S·N) with multinomial counts w_s [S], w_d [N]
    (drawn per class of equal columns of D: ``_paired_weights``).
    The interval is the 2.5 and 97.5 percentiles; p = 2·min(P*(d ≤ 0), P*(d ≥ 0)), at least
    1/draws and at most 1. No valid seed: every field NaN but the counts.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"correct_a {a.shape} and correct_b {b.shape}: expected one [S, N]")
    keep = np.ones(a.shape[0], bool) if valid is None else np.asarray(valid, bool)
    if keep.shape != (a.shape[0],):
        raise ValueError(f"valid {keep.shape}: expected [{a.shape[0]}]")
    d = b[keep].astype(np.float64) - a[keep].astype(np.float64)  # err_a − err_b = ok_b − ok_a
    s, n = d.shape
    if s == 0 or n == 0:
        return Paired(math.nan, math.nan, math.nan, math.nan, s, n)
    w_seeds, w_cols, cols = _paired_weights(np.random.default_rng(seed), draws, d)
    stat = np.einsum("bs,sp,bp->b", w_seeds, cols, w_cols) / (s * n)
    p = 2 * min(np.mean(stat <= 0), np.mean(stat >= 0))
    lo_q, hi_q = np.percentile(stat, [2.5, 97.5])
    return Paired(float(d.mean()), float(lo_q), float(hi_q), float(np.clip(p, 1 / draws, 1)), s, n)


def _paired_weights(
    rng: np.random.Generator, draws: int, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The resampling of ``paired_bootstrap`` for D [S, N]: seed counts w_s [draws, S], and
    for each distinct column of D (cols [S, P]) how many of the N resampled digits have it,
    w_c [draws, P]. Digits with equal columns are interchangeable in w_s · D · w_dᵀ, so drawing
    the P class counts (a multinomial with the classes' shares) is the digit bootstrap exactly,
    and P is small (most digits are right in every member of both cells: one column of 0s)."""
    s, n = d.shape
    cols, size = np.unique(d, axis=1, return_counts=True)
    w_seeds = rng.multinomial(s, np.full(s, 1 / s), size=draws).astype(np.float64)
    w_cols = rng.multinomial(n, size / n, size=draws).astype(np.float64)
    return w_seeds, w_cols, cols


def _pvalues(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if p.ndim != 1:
        raise ValueError(f"p {p.shape}: expected one p-value per hypothesis, [m]")
    return np.where(np.isnan(p), 1.0, p)  # no test: a hypothesis that is not rejected


def holm(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """bool [m]: which of the hypotheses with p-values ``p`` [m] Holm's step-down rejects,
    controlling the family-wise error rate at ``alpha``. The k-th smallest p (k = 0..m−1) is
    rejected while p_(k) ≤ alpha / (m − k); the first that is not stops it. NaN counts as 1."""
    p = _pvalues(p)
    m = p.size
    order = np.argsort(p, kind="stable")
    passes = p[order] <= alpha / (m - np.arange(m))
    stop = m if passes.all() else int(np.argmin(passes))
    reject = np.zeros(m, bool)
    reject[order[:stop]] = True
    return reject


def benjamini_hochberg(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """bool [m]: which hypotheses Benjamini-Hochberg rejects, controlling the false discovery
    rate at ``alpha``: every p up to the largest p_(k) ≤ (k/m)·alpha (k = 1..m). NaN counts
    as 1."""
    p = _pvalues(p)
    m = p.size
    order = np.argsort(p, kind="stable")
    below = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / m)
    reject = np.zeros(m, bool)
    if below.size:
        reject[order[: below[-1] + 1]] = True
    return reject


ALPHA = 0.05


def multiple_comparisons(p: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """How many of the p-values ``p`` [m] are below ``alpha`` unadjusted, and how many
    survive Holm (family-wise error) and Benjamini-Hochberg (false discovery rate); with the
    indices that survive each. JSON-ready."""
    p = np.asarray(p, np.float64)
    holm_, bh = holm(p, alpha), benjamini_hochberg(p, alpha)
    return {
        "alpha": alpha,
        "tests": int(p.size),
        "unadjusted": int(np.sum(p < alpha)),
        "holm": int(holm_.sum()),
        "benjamini_hochberg": int(bh.sum()),
        "holm_rejects": [int(i) for i in np.flatnonzero(holm_)],
        "benjamini_hochberg_rejects": [int(i) for i in np.flatnonzero(bh)],
    }


TRAINED_ACCURACY = 0.9
TRAINED_RULE = (
    "a seed trained when its validation accuracy is at least 0.9 (a network that did not "
    "train predicts the majority class: about 54 % on 1 v 2)"
)
"""The rule ``trained`` applies by default, in words a study's JSON can carry."""


def trained(val_accuracy: np.ndarray, threshold: float = TRAINED_ACCURACY) -> np.ndarray:
    """bool [S]: which seeds trained by TRAINED_RULE (NaN, a diverged seed: False)."""
    v = np.asarray(val_accuracy, np.float64)
    return np.isfinite(v) & (v >= threshold)


class Outcome(NamedTuple):
    """A per-seed number that is bimodal over seeds: counts first, and a mean ± t half-width
    only when every seed with a value trained (or none did); otherwise each mode's mean.

    n: seeds with a finite value; n_trained of them; diverged: seeds without one."""

    n: int
    n_trained: int
    diverged: int
    mean: float
    ci95: float
    mean_trained: float
    mean_untrained: float

    def text(self, scale: float = 100.0, digits: int = 1, unit: str = " %") -> str:
        """'4 of 8 seeds trained (99.4 %); 4 at 52.4 %' or '8 of 8 seeds trained: 99.4 ± 0.1 %'."""
        f = lambda v: f"{round(scale * v, digits) + 0.0:.{digits}f}"  # noqa: E731
        total = self.n + self.diverged
        head = f"{self.n_trained} of {total} seeds trained"
        if self.n == 0:
            out = head
        elif math.isfinite(self.mean):
            ci = f" ± {f(self.ci95)}" if math.isfinite(self.ci95) else ""
            out = f"{head}: {f(self.mean)}{ci}{unit}"
        else:
            rest = f"{self.n - self.n_trained} at {f(self.mean_untrained)}{unit}"
            out = f"{head} ({f(self.mean_trained)}{unit}); {rest}"
        return out + (f"; {self.diverged} diverged" if self.diverged else "")


def seed_outcome(values: np.ndarray, trained_seeds: np.ndarray) -> Outcome:
    """The Outcome of ``values`` [S] (NaN: a diverged seed) given which seeds trained, bool [S]
    (for instance ``trained(val_accuracy)``). The t-interval (``stats.mean_ci95``) is given only
    when the finite values are all of one mode: over a mixture it describes neither."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    t = np.asarray(trained_seeds, bool) & ok
    if t.shape != v.shape or v.ndim != 1:
        raise ValueError(f"values {v.shape} and trained {t.shape}: expected one [S]")
    n, k = int(ok.sum()), int(t.sum())
    mean_t = float(v[t].mean()) if k else math.nan
    mean_u = float(v[ok & ~t].mean()) if n > k else math.nan
    mean, ci = stats.mean_ci95(v[ok]) if k in (0, n) else (math.nan, math.nan)
    return Outcome(n, k, int((~ok).sum()), mean, ci, mean_t, mean_u)


def _fit_weighted(z: Array, y: Array, w: Array) -> Array:
    """``fit_temperature`` with example weights w [n] (bootstrap counts): the same bisection
    on log β, the sign of Σ w (y − σ(βz)) z in place of its mean."""
    lo, hi = (jnp.log(1.0 / t) for t in TEMPERATURE_RANGE[::-1])

    def halve(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        a, b = bounds
        mid = 0.5 * (a + b)
        rising = jnp.mean(w * (y - jax.nn.sigmoid(jnp.exp(mid) * z)) * z) > 0
        return jnp.where(rising, mid, a), jnp.where(rising, b, mid)

    a, b = jax.lax.fori_loop(0, 60, halve, (lo, hi))
    return jnp.exp(-0.5 * (a + b))


_fit_draws = jax.jit(jax.vmap(_fit_weighted, in_axes=(None, None, 0)))
_fit_seeds = jax.jit(jax.vmap(fit_temperature, in_axes=(0, None)))


class Temperature(NamedTuple):
    """T per seed [S] with its percentile 95% interval (lo, hi [S]) from resampling validation
    digits; and over seeds: the mean T and its interval from resampling seeds and digits
    jointly. ``at_bound`` [S]: T hit TEMPERATURE_RANGE (the fit wanted more)."""

    t: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    at_bound: np.ndarray
    mean: float
    mean_lo: float
    mean_hi: float


def temperature_interval(
    z_val: np.ndarray, y_val: np.ndarray, *, draws: int = 1000, seed: int = 0
) -> Temperature:
    """T of ``deepmle.core.calibration.fit_temperature`` for each seed's validation logits
    z_val [S, N] (or [N], one seed) against labels y_val [N], with intervals.

    Each draw resamples the N validation digits (the same digits for every seed: they share
    the split) and refits every seed; a seed's interval is the 2.5 and 97.5 percentiles of its
    refits. The summary over seeds is the mean T, its interval the percentiles of the mean of
    the refits over a resample of the seeds (multinomial counts, as ``paired_bootstrap``)."""
    z = np.atleast_2d(np.asarray(z_val, np.float32))
    y = np.asarray(y_val, np.float32)
    if z.ndim != 2 or y.shape != z.shape[1:]:
        raise ValueError(f"z_val {np.shape(z_val)} and y_val {y.shape}: expected [S, N] and [N]")
    s, n = z.shape
    rng = np.random.default_rng(seed)
    w_digits = _counts(rng, draws, n).astype(np.float32)
    w_seeds = _counts(rng, draws, s)
    t = np.asarray(_fit_seeds(jnp.asarray(z), jnp.asarray(y)), np.float64)
    refits = np.stack(
        [np.asarray(_fit_draws(zs, y, w_digits), np.float64) for zs in z]
    )  # [S, draws]
    lo, hi = np.percentile(refits, [2.5, 97.5], axis=1)
    means = np.einsum("bs,sb->b", w_seeds, refits) / s
    mean_lo, mean_hi = np.percentile(means, [2.5, 97.5])
    bound = np.isclose(t, TEMPERATURE_RANGE[0], rtol=1e-3) | np.isclose(
        t, TEMPERATURE_RANGE[1], rtol=1e-3
    )
    return Temperature(t, lo, hi, bound, float(t.mean()), float(mean_lo), float(mean_hi))


def _ece_rows(ps: np.ndarray, ys: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each row of labels ys [B, n] against ps [n] *sorted ascending*: [B]."""
    onehot = np.eye(bins)[bin_of_rank(ps, bins)]  # [n, bins]
    return np.abs((ys - ps) @ onehot).sum(axis=1) / ps.size


def ece(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """ECE of ŷ p [n] against labels y [n] with ``deepmle.core.calibration.ece``'s equal-mass
    bins (a stable sort of p, cut by ``bin_of_rank``), in float64."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    order = np.argsort(p, kind="stable")
    return float(_ece_rows(p[order], y[order][None, :], bins)[0])


class EceNull(NamedTuple):
    """ECE and its null, ECE of labels drawn y* ~ Bernoulli(ŷ) from the model itself: the
    null's mean, sd and 95th percentile; ``exceeds``: ECE above that percentile (a one-sided
    5% test of calibration); ``sds``: (ECE − null mean) / null sd."""

    ece: float
    null_mean: float
    null_sd: float
    null_q95: float
    exceeds: bool
    sds: float


def ece_null(
    p: np.ndarray,
    y: np.ndarray,
    *,
    from_logits: bool = False,
    bins: int = BINS,
    draws: int = 1000,
    seed: int | tuple[int, ...] = 0,
) -> EceNull:
    """ECE of ŷ p [n] (logits z [n] with ``from_logits``) against labels y [n], tested against
    ``draws`` draws of its Bernoulli null."""
    p = np.asarray(p, np.float64)
    if from_logits:
        p = 1.0 / (1.0 + np.exp(-p))
    y = np.asarray(y, np.float64)
    if p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"p {p.shape} and y {y.shape}: expected one [n]")
    value = ece(p, y, bins)
    ps = np.sort(p, kind="stable")
    rng = np.random.default_rng(seed)
    null = np.concatenate(
        [
            _ece_rows(ps, (rng.random((min(_CHUNK, draws - k), ps.size)) < ps).astype(float), bins)
            for k in range(0, draws, _CHUNK)
        ]
    )
    q95 = float(np.percentile(null, 95))
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    sds = (value - mean) / sd if sd > 0 else math.nan
    return EceNull(value, mean, sd, q95, bool(value > q95), sds)


def ece_null_seeds(
    p: np.ndarray, y: np.ndarray, *, from_logits: bool = False, draws: int = 1000, seed: int = 0
) -> tuple[list[EceNull], int]:
    """``ece_null`` for each row of p [S, n] (NaN rows, diverged seeds, skipped), seed s drawn
    from ``default_rng([seed, s])``; and how many seeds exceed their null's 95th percentile."""
    p = np.asarray(p, np.float64)
    out = [
        ece_null(row, y, from_logits=from_logits, draws=draws, seed=(seed, s))
        for s, row in enumerate(p)
        if np.isfinite(row).all()
    ]
    return out, sum(r.exceeds for r in out)


def selected_lines(res: RunResults, dataset: Dataset) -> list[str]:
    """What ``deepmle run`` adds under its calibration line for the cell selected on
    validation: with a fitted temperature, T's interval over seeds and validation digits
    (``temperature_interval``); and how many of its seeds' test ECE exceed their own
    Bernoulli null's 95th percentile (``ece_null_seeds``). [] when nothing was selected."""
    best = next((r for r in res.summary if r["selected"]), None)
    if best is None:
        return []
    g = res.group_of(best)
    li = g.index_of(best)
    ok = g.final["diverged_epoch"][:, li] < 0
    act = res.static(g).activation
    lines = []
    z_test = predictions(g, dataset.test.x, act)[ok, li]  # [seeds, n_test]
    nulls, over = ece_null_seeds(z_test, dataset.test.y, from_logits=True)
    lines.append(
        f"selected cell, test ECE against its own Bernoulli null (labels drawn from ŷ, 1000 "
        f"draws per seed): above the null's 95th percentile on {over} of {len(nulls)} seeds"
    )
    if "temperature" in g.final:
        z_val = predictions(g, dataset.validation.x, act)[ok, li]  # [seeds, n_val]
        t = temperature_interval(z_val, dataset.validation.y)
        lines.append(
            f"selected cell, T resampling seeds and validation digits: {t.mean:.3f} "
            f"[{t.mean_lo:.3f}, {t.mean_hi:.3f}] (95%, n = {int(ok.sum())} seeds, "
            f"{dataset.validation.y.shape[0]} validation digits)"
        )
    return lines
