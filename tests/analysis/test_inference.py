"""Intervals over seeds and digits, multiple comparisons, bimodal outcomes, T and ECE nulls:
each against a brute-force loop, scipy or a hand-worked example."""

import itertools
import math
import re
import time

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize
from scipy.stats import false_discovery_control

from deepmle.analysis import inference, stats
from deepmle.core import calibration
from deepmle.core.model import forward
from deepmle.runs.results import GroupResult


def _group(hidden: tuple[int, ...], seeds: int, lrs: int) -> GroupResult:
    """A group of random members, biases nonzero, as a saved run holds them: [S, L, ...]."""
    sizes = (784, *hidden, 1)
    rng = np.random.default_rng(1)
    params = [
        {
            "w": rng.normal(0, 1 / np.sqrt(a), (seeds, lrs, a, b)).astype(np.float32),
            "b": rng.normal(0, 0.5, (seeds, lrs, b)).astype(np.float32),
        }
        for a, b in itertools.pairwise(sizes)
    ]
    return GroupResult(hidden, np.arange(seeds), np.ones(lrs), params, {}, {}, {})


@pytest.mark.parametrize("hidden", [(), (5,), (4, 3)])
def test_predictions_are_every_members_forward_pass(small, hidden):
    g = _group(hidden, seeds=2, lrs=3)
    x = small.test.x[:50]
    z = inference.predictions(g, x, "tanh")
    assert z.shape == (2, 3, 50)
    for s in range(2):
        for li in range(3):
            want = forward(g.member_params(s, li), jnp.asarray(x), jnp.tanh)
            np.testing.assert_allclose(z[s, li], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(inference.predictions(g, x, jnp.tanh), z)
    assert not np.allclose(inference.predictions(g, x, "sigmoid"), z) or not hidden


def test_predictions_refuse_raw_pixels(small):
    with pytest.raises(ValueError, match="pixels must be in"):
        inference.predictions(_group((3,), 1, 1), small.test.x[:5] * 255, "sigmoid")


def _brute(d, draws, rng):
    """The definition, one draw at a time: the mean of D over resampled seeds × digits."""
    s, n = d.shape
    si, dj = rng.integers(0, s, (draws, s)), rng.integers(0, n, (draws, n))
    return np.array([d[np.ix_(si[k], dj[k])].mean() for k in range(draws)])


def test_paired_bootstrap_equals_the_brute_force_resampling(rng):
    a, b = rng.random((3, 9)) < 0.7, rng.random((3, 9)) < 0.5
    d = (~a).astype(float) - (~b).astype(float)
    got = inference.paired_bootstrap(a, b, draws=400, seed=3)
    # the same draws, each expanded into its resampled seeds and digits
    w_s, w_c, cols = inference._paired_weights(np.random.default_rng(3), 400, d)
    stat = np.array(
        [np.repeat(cols, w_c[k].astype(int), axis=1)[np.repeat(np.arange(3), w_s[k].astype(int))]
         .mean() for k in range(400)]
    )  # fmt: skip
    assert got.diff == pytest.approx(np.mean(~a) - np.mean(~b))
    assert (got.lo, got.hi) == pytest.approx(tuple(np.percentile(stat, [2.5, 97.5])), abs=1e-12)
    p = 2 * min(np.mean(stat <= 0), np.mean(stat >= 0))
    assert got.p == pytest.approx(max(p, 1 / 400))
    assert (got.n_seeds, got.n_digits) == (3, 9)
    # and in distribution, the resampling of seed and digit indices itself
    a, b = rng.random((5, 80)) < 0.8, rng.random((5, 80)) < 0.75
    d = (~a).astype(float) - (~b).astype(float)
    big = inference.paired_bootstrap(a, b, draws=20_000, seed=4)
    loop = _brute(d, 20_000, np.random.default_rng(5))
    assert (big.lo, big.hi) == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])), abs=0.005)
    assert big.p == pytest.approx(2 * min(np.mean(loop <= 0), np.mean(loop >= 0)), abs=0.02)


def test_paired_bootstrap_drops_invalid_seeds_from_both(rng):
    a, b = rng.random((4, 30)) < 0.8, rng.random((4, 30)) < 0.6
    valid = np.array([True, False, True, True])
    got = inference.paired_bootstrap(a, b, valid=valid, draws=300)
    assert got == inference.paired_bootstrap(a[valid], b[valid], draws=300)
    assert got.n_seeds == 3
    none = inference.paired_bootstrap(a, b, valid=np.zeros(4, bool))
    assert math.isnan(none.diff) and none.n_seeds == 0


def test_paired_bootstrap_p_is_floored_and_a_clear_difference_is_found(rng):
    a = rng.random((8, 500)) < 0.99
    b = rng.random((8, 500)) < 0.80
    got = inference.paired_bootstrap(a, b, draws=1000)
    assert got.p == pytest.approx(1 / 1000) and got.hi < 0  # a errs less: a − b < 0


def test_paired_bootstrap_is_fast_at_the_studies_size(rng):
    a, b = rng.random((8, 2000)) < 0.98, rng.random((8, 2000)) < 0.97
    inference.paired_bootstrap(a, b, draws=100)
    t = time.perf_counter()
    inference.paired_bootstrap(a, b, draws=10_000)
    assert time.perf_counter() - t < 1.0


def _experiment(rng, seeds, n, effect=0.0):
    """Two cells on a fresh test sample: digit difficulty shared by both, seed noise per
    member; a's error probability exceeds b's by ``effect`` on every digit."""
    hard = rng.beta(0.5, 5.0, n)  # per-digit error probability
    shift = rng.normal(0, 0.01, (seeds, 1))
    err_a = rng.random((seeds, n)) < np.clip(hard + shift + effect, 0, 1)
    err_b = rng.random((seeds, n)) < np.clip(hard + shift, 0, 1)
    return ~err_a, ~err_b


def test_paired_bootstrap_covers_the_truth_about_95_percent(rng):
    trials, covered, rejected = 200, 0, 0
    for k in range(trials):
        a, b = _experiment(rng, seeds=6, n=200)
        r = inference.paired_bootstrap(a, b, draws=500, seed=k)
        covered += r.lo <= 0 <= r.hi
        rejected += r.p < 0.05
    assert 0.88 <= covered / trials <= 0.995
    assert rejected / trials <= 0.10


def test_paired_bootstrap_is_wider_than_over_seeds_when_digits_are_few(rng):
    """Every seed errs on the same few digits: the seeds agree, the digits are the noise."""
    n = 40
    a = np.ones((8, n), bool)
    b = np.ones((8, n), bool)
    a[:, :4] = False  # a misses 4 digits, b 1, on every seed; one seed's extra slip each
    b[:, 0] = False
    a[0, 10] = b[1, 11] = False
    err_a, err_b = 1.0 - a.mean(1), 1.0 - b.mean(1)
    _, t_half = stats.paired_diff_ci95(err_a, err_b)
    r = inference.paired_bootstrap(a, b, draws=2000)
    assert r.hi - r.lo > 4 * 2 * t_half
    assert r.lo <= 0.0  # 3 more errors among 40 digits is not clear evidence


def test_holm_by_hand():
    # sorted 0.005 ≤ 0.05/4, 0.01 ≤ 0.05/3, 0.03 > 0.05/2: stop, though 0.04 ≤ 0.05/1
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_array_equal(inference.holm(p), [True, False, False, True])
    # ties: 0.03 > 0.05/2 stops at the first of them; 0.02 > 0.05/3 at once; 0.015 passes all
    np.testing.assert_array_equal(inference.holm(np.array([0.03, 0.03, 0.001])), [0, 0, 1])
    assert not inference.holm(np.array([0.02, 0.02, 0.02])).any()
    np.testing.assert_array_equal(inference.holm(np.array([0.015, 0.015, 0.04])), [1, 1, 1])
    np.testing.assert_array_equal(inference.holm(np.array([0.001, np.nan])), [True, False])
    assert not inference.holm(np.array([0.03, 0.04]), alpha=0.05).any()
    assert inference.holm(np.array([0.03, 0.04]), alpha=0.1).all()


def test_holm_equals_its_adjusted_p_values(rng):
    """Holm rejects where max_{j≤k} (m − j)·p_(j) ≤ alpha (its adjusted p-values)."""
    for _ in range(200):
        m = int(rng.integers(1, 12))
        p = np.round(rng.random(m) ** 3, 3)  # rounding makes ties
        order = np.argsort(p)
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
        want = np.empty(m, bool)
        want[order] = adj <= 0.05
        np.testing.assert_array_equal(inference.holm(p), want)


def test_benjamini_hochberg_equals_scipy(rng):
    for _ in range(200):
        m = int(rng.integers(1, 50))
        p = np.round(rng.random(m) ** 4, 4)
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        want = false_discovery_control(p) <= alpha
        np.testing.assert_array_equal(inference.benjamini_hochberg(p, alpha), want)
    # BH keeps 0.03 once 0.04 qualifies (0.04 ≤ 2/2·0.05): no step-down stop
    np.testing.assert_array_equal(inference.benjamini_hochberg(np.array([0.03, 0.04])), [1, 1])


def test_multiple_comparisons_counts_what_survives_each_correction():
    # sorted 0.005, 0.01, 0.03, 0.04: Holm stops at 0.03 > 0.05/2; BH keeps all (0.04 ≤ 0.05)
    m = inference.multiple_comparisons([0.01, 0.04, 0.03, 0.005, 0.2])
    assert (m["tests"], m["unadjusted"], m["holm"], m["benjamini_hochberg"]) == (5, 4, 2, 4)
    assert m["holm_rejects"] == [0, 3] and m["benjamini_hochberg_rejects"] == [0, 1, 2, 3]
    assert m["alpha"] == 0.05
    assert inference.multiple_comparisons([0.01, 0.04], alpha=0.01)["unadjusted"] == 0


def test_a_bimodal_outcome_is_counts_not_a_t_interval():
    v = np.array([0.994] * 4 + [0.524] * 4)
    o = inference.seed_outcome(v, inference.trained(v))
    assert (o.n, o.n_trained, o.diverged) == (8, 4, 0)
    assert math.isnan(o.mean) and math.isnan(o.ci95)
    assert o.text() == "4 of 8 seeds trained (99.4 %); 4 at 52.4 %"
    both = inference.seed_outcome(np.array([0.99, 0.98, np.nan]), np.ones(3, bool))
    assert (both.mean, both.ci95) == stats.mean_ci95(np.array([0.99, 0.98]))
    assert both.text() == f"2 of 3 seeds trained: 98.5 ± {100 * both.ci95:.1f} %; 1 diverged"
    none = inference.seed_outcome(np.array([0.52, 0.54]), np.zeros(2, bool))
    assert none.mean == pytest.approx(0.53) and none.text().startswith("0 of 2 seeds trained: ")


def test_trained_rule():
    np.testing.assert_array_equal(
        inference.trained(np.array([0.95, 0.9, 0.89, np.nan])), [True, True, False, False]
    )


def _logits(rng, n, scale=3.0):
    y = (rng.random(n) < 0.5).astype(np.float32)
    z = (scale * (2 * y - 1) + rng.normal(0, 2.5, n)).astype(np.float32)
    return z, y


def test_weighted_fit_equals_fit_temperature_and_scipys_maximiser(rng):
    for scale in (1.0, 3.0, 5.0):
        z, y = _logits(rng, 300, scale)
        t = float(calibration.fit_temperature(jnp.asarray(z), jnp.asarray(y)))
        ones = jnp.ones_like(jnp.asarray(z))
        assert float(inference._fit_weighted(z, y, ones)) == pytest.approx(t, rel=1e-5)

        def nll(log_t, z=z, y=y):
            return -np.mean(y * (z / np.exp(log_t)) - np.logaddexp(0, z / np.exp(log_t)))

        best = optimize.minimize_scalar(
            nll, bounds=(-6, 6), method="bounded", options={"xatol": 1e-8}
        )
        assert np.exp(best.x) == pytest.approx(t, rel=1e-4)
        w = np.bincount(rng.integers(0, 300, 300), minlength=300).astype(np.float32)
        k = w.astype(int)
        repeated = calibration.fit_temperature(np.repeat(z, k), np.repeat(y, k))
        assert float(inference._fit_weighted(z, y, w)) == pytest.approx(float(repeated), rel=1e-5)


def test_temperature_interval(rng):
    zs, ys = zip(*[_logits(np.random.default_rng(0), 400, s) for s in (2.0, 3.0)], strict=True)
    z, y = np.stack(zs), ys[0]
    got = inference.temperature_interval(z, y, draws=300)
    for s in range(2):
        assert got.t[s] == pytest.approx(float(calibration.fit_temperature(z[s], y)), rel=1e-6)
        assert got.lo[s] < got.t[s] < got.hi[s]
    assert got.mean == pytest.approx(got.t.mean()) and got.mean_lo < got.mean < got.mean_hi
    assert not got.at_bound.any()
    few = inference.temperature_interval(z[0, :60], y[:60], draws=300)
    assert few.hi[0] - few.lo[0] > got.hi[0] - got.lo[0]  # fewer digits, a wider interval
    # seeds whose T differ fourfold (T of 4z is 4T): the mean's interval spans the seeds too
    wide = inference.temperature_interval(np.stack([z[0], 4 * z[0]]), y, draws=300)
    assert wide.t[1] == pytest.approx(4 * wide.t[0], rel=1e-4)
    assert wide.mean_lo < 0.5 * (wide.mean + wide.t[0]) and wide.mean_hi > 0.5 * (
        wide.mean + wide.t[1]
    )
    z_sep, y_sep = np.array([0.05, -0.05, 0.03, -0.03]), np.array([1.0, 0.0, 1.0, 0.0])
    sure = inference.temperature_interval(z_sep, y_sep, draws=20)
    assert sure.at_bound[0]  # separable: T wants to go to 0


def test_ece_equals_the_cores_binning(rng):
    for n in (100, 723, 2000):
        p = rng.random(n).astype(np.float32)
        p[: n // 3] = 1.0  # ties, as float32 ŷ near 99% accuracy has
        y = (rng.random(n) < p).astype(np.float32)
        core = float(calibration.ece(jnp.asarray(p), jnp.asarray(y)))
        assert inference.ece(p, y) == pytest.approx(core, abs=1e-6)


def test_ece_null_draws_labels_from_the_model(rng):
    p = rng.random(200)
    y = (rng.random(200) < p).astype(float)
    got = inference.ece_null(p, y, draws=50, seed=7)
    draw = np.random.default_rng(7).random((50, 200))  # the same draws, one at a time
    null = [
        inference.ece(p, (u < np.sort(p)).astype(float)[np.argsort(np.argsort(p))]) for u in draw
    ]
    assert got.null_mean == pytest.approx(np.mean(null), rel=1e-9)
    assert got.null_q95 == pytest.approx(np.percentile(null, 95), rel=1e-9)
    assert inference.ece_null(np.log(p / (1 - p)), y, from_logits=True, draws=50, seed=7) == got


def test_ece_null_flags_overconfidence_not_calibration(rng):
    calibrated, overconfident = 0, 0
    for _ in range(40):
        p = rng.beta(0.5, 0.5, 500)
        y = (rng.random(500) < p).astype(float)
        calibrated += inference.ece_null(p, y, draws=200).exceeds
        sharp = np.clip(np.where(p > 0.5, p + 0.2, p - 0.2), 0.001, 0.999)
        overconfident += inference.ece_null(sharp, y, draws=200).exceeds
    assert calibrated <= 6 and overconfident >= 38
    rows = np.stack([p, sharp, np.full(500, np.nan)])
    results, exceeding = inference.ece_null_seeds(rows, y, draws=200)
    assert len(results) == 2 and exceeding == 1


def test_the_commands_lines_for_the_selected_cell(small, tmp_path):
    """`deepmle run`'s lines under the calibration line: T over seeds and validation digits
    (its interval around the mean of the seeds' T, the program's own fits), and the ECE test
    against each seed's own null; without a fitted temperature, the ECE line alone."""
    from deepmle import config as config_lib
    from deepmle import sweep

    def run(calibrate: str, name: str):
        train = {"learning_rate": [1.0], "seeds": 3, "epochs": 1, "batch_size": 64,
                 "calibrate": calibrate}  # fmt: skip
        cfg = config_lib.from_dict({"model": {"hidden_sizes": [[4]]}, "train": train})
        return sweep.run(cfg, small, tmp_path / name).results

    res = run("temperature", "t")
    ece_line, t_line = inference.selected_lines(res, small)
    assert re.search(r"95th percentile on [0-3] of 3 seeds$", ece_line)
    t = res.groups[0].final["temperature"][:, 0].astype(np.float64)
    mean, lo, hi = map(float, re.search(r": ([\d.]+) \[([\d.]+), ([\d.]+)\]", t_line).groups())
    assert mean == pytest.approx(t.mean(), abs=1e-3) and lo <= mean <= hi
    assert "n = 3 seeds, 256 validation digits" in t_line
    (only,) = inference.selected_lines(run("none", "plain"), small)
    assert "Bernoulli null" in only
