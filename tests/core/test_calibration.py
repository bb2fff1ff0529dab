"""ŷ checked as a probability: the Brier score, ECE and its reference and temperature scaling
computed inside the compiled program equal an independent computation on the saved
parameters (numpy, and sklearn's calibration_curve) to 1e-5."""

import csv
import itertools
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from deepmle import config as config_lib
from deepmle import sweep
from deepmle.analysis import plots, report
from deepmle.analysis.load import load_run
from deepmle.core import calibration
from deepmle.core.bins import bin_of_rank
from deepmle.runs.results import RunResults

from ..helpers import once


def _config(**train_kw) -> config_lib.Config:
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((), (8,))),
        train=config_lib.TrainConfig(
            **{"learning_rate": (0.3, 1.0), "seeds": 2, "epochs": 2, "batch_size": 64} | train_kw
        ),
    )


@pytest.fixture(scope="module")
def calibrated(embedded) -> RunResults:
    """Real digits: the full test split (2,167), a cut of the training split for speed; built
    once per test run (read only)."""
    cut = embedded._replace(train=embedded.train._replace(x=embedded.train.x[:2048],
                                                          y=embedded.train.y[:2048]))  # fmt: skip
    build = lambda d: sweep.run(_config(calibrate="temperature"), cut, d / "run")  # noqa: E731
    return load_run(once("calibration", build) / "run")


def _logits64(params, x) -> np.ndarray:
    h = x.astype(np.float64)
    for layer in params[:-1]:
        h = 1 / (1 + np.exp(-(h @ layer["w"].astype(np.float64) + layer["b"])))
    return (h @ params[-1]["w"].astype(np.float64) + params[-1]["b"])[:, 0]


def _ece_numpy(p: np.ndarray, y: np.ndarray, bins: int = 15) -> tuple[float, np.ndarray]:
    """ECE with equal-mass bins written out directly: n sorted examples cut after rank
    ⌊(n−1)·q_k⌋ for the percentiles q_k = k/bins (as calibration_curve builds them); also
    the bin counts."""
    n = p.size
    order = np.argsort(p, kind="stable")
    virtual = (n - 1) * (np.linspace(0, 1, bins + 1) * 100 / 100)
    cuts = [0, *(int(np.floor(v)) + 1 for v in virtual[1:-1]), n]
    total, counts = 0.0, []
    for a, b in itertools.pairwise(cuts):
        idx = order[a:b]
        total += (b - a) / n * abs(y[idx].mean() - p[idx].mean())
        counts.append(b - a)
    return total, np.array(counts)


def _sklearn_counts(p: np.ndarray, bins: int = 15) -> np.ndarray:
    """The bin sizes calibration_curve(strategy="quantile") forms (its edges, its search)."""
    edges = np.percentile(p, np.linspace(0, 1, bins + 1) * 100)
    return np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)


def test_calibration_metrics_equal_an_independent_computation(calibrated, embedded):
    x, y = embedded.test.x, embedded.test.y.astype(np.float64)
    checked = 0
    for g in calibrated.groups:
        for si in range(len(g.seeds)):
            for li in range(len(g.learning_rates)):
                z = _logits64(g.member_params(si, li), x)
                p = 1 / (1 + np.exp(-z))
                f = {k: float(v[si, li]) for k, v in g.final.items()}
                assert f["test_brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-5)
                ll = np.mean(y * z - np.logaddexp(0, z))
                assert f["test_ll"] == pytest.approx(ll, abs=1e-5)
                ece, counts = _ece_numpy(p, y)
                assert f["test_ece"] == pytest.approx(ece, abs=1e-5)
                true, pred = calibration_curve(y, p, n_bins=15, strategy="quantile")
                assert len(true) == 15  # no ties in float64
                sk_counts = _sklearn_counts(p)
                sk = float(np.sum(sk_counts / y.size * np.abs(true - pred)))
                # Where numpy's virtual index k(n−1)/15 is whole (k = 5, 10 for n = 2,167),
                # rounding of the values decides which side the edge example falls on:
                # there alone sklearn's bins may differ from ours by that one example.
                moved = int(np.sum(np.abs(np.cumsum(sk_counts - counts))))
                assert moved <= 2
                assert f["test_ece"] == pytest.approx(sk, abs=1e-5 + 2 * moved / y.size)
                if moved == 0:
                    np.testing.assert_allclose(plots.reliability(p, y)["frac"], true, atol=1e-12)
                    np.testing.assert_allclose(plots.reliability(p, y)["mean_p"], pred, rtol=1e-9)
                # temperature: fitted on validation only, the LL there is at its maximum
                t = f["temperature"]
                zv = _logits64(g.member_params(si, li), embedded.validation.x)
                yv = embedded.validation.y
                val_ll = lambda t, zv=zv, yv=yv: np.mean(yv * zv / t - np.logaddexp(0, zv / t))  # noqa: E731
                assert val_ll(t) >= max(val_ll(t * 1.01), val_ll(t / 1.01)) - 1e-7
                assert f["test_brier_ts"] == pytest.approx(
                    np.mean((1 / (1 + np.exp(-z / t)) - y) ** 2), abs=1e-5
                )
                assert f["test_ece_ts"] == pytest.approx(
                    _ece_numpy(1 / (1 + np.exp(-z / t)), y)[0], abs=1e-5
                )
                checked += 1
    assert checked == 8


SIZES = [16, 31, 46, 100, 101, 151, 1001, 2166, 2167, 2171, 5001]
"""Test-split sizes; most with n − 1 divisible by 3 or 5, which puts some of the 14 inner
edges (n − 1)·k/15 at a whole rank of the sorted ŷ (all of them at 16)."""


@pytest.mark.parametrize("n", SIZES)
def test_ece_bins_are_calibration_curves_quantile_bins_at_every_size(n):
    """At a whole index numpy's percentile lands on that rank's ŷ, or a hair below it, by its
    value (its float index may read 721.99... for 722): calibration_curve then puts the
    example in the bin below, or above. The program's bins, the figure's and ECE follow
    calibration_curve example by example, on the float32 ŷ the program has."""
    rng = np.random.default_rng(n)
    z = np.linspace(-8, 8, n) + rng.uniform(-0.4, 0.4, n) * 16 / n  # jittered, distinct
    p = np.asarray(jax.nn.sigmoid(jnp.asarray(rng.permutation(z), jnp.float32)))
    y = (rng.uniform(size=n) < p).astype(np.float32)
    assert np.unique(p).size == n  # no ties: the bins are sklearn's exactly
    edges = np.percentile(p, np.linspace(0, 1, 16) * 100)  # calibration_curve's own two lines
    theirs = np.searchsorted(edges[1:-1], p)
    true, pred = calibration_curve(y, p, n_bins=15, strategy="quantile")
    counts = np.bincount(theirs, minlength=15)
    order = np.argsort(p, kind="stable")
    ids = jax.jit(calibration._bin_ids, static_argnums=1)(jnp.asarray(p[order]), 15)
    np.testing.assert_array_equal(ids, theirs[order])
    np.testing.assert_array_equal(bin_of_rank(p[order]), theirs[order])
    sk = float(np.sum(counts[counts > 0] / n * np.abs(true - pred)))
    ece = jax.jit(calibration.ece)(jnp.asarray(p), jnp.asarray(y))
    assert float(ece) == pytest.approx(sk, abs=2e-6)
    rel = plots.reliability(p, y)
    np.testing.assert_array_equal(rel["count"], counts)
    np.testing.assert_allclose(rel["frac"][counts > 0], true, atol=1e-12)


def test_the_reference_ece_is_the_ece_of_labels_drawn_from_y_hat(calibrated, embedded):
    """Its value matches numpy draws of y ~ Bernoulli(ŷ) within their Monte-Carlo error, a
    calibrated model's ECE sits near it, and it is far above 0."""
    g = calibrated.group((8,))
    p = 1 / (1 + np.exp(-_logits64(g.member_params(0, 1), embedded.test.x)))
    rng = np.random.default_rng(0)
    draws = [_ece_numpy(p, (rng.random(p.size) < p).astype(float))[0] for _ in range(400)]
    ref = float(g.final["test_ece_reference"][0, 1])
    assert ref == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(200))
    assert ref > 10 * np.std(draws) / np.sqrt(200)


def test_reference_draws_are_per_seed_whatever_runs_beside_them(calibrated, embedded, tmp_path):
    """Seed 1 alone gets the same reference ECE as seed 1 among others: the key comes from
    the seed's own stream, not from its position in the program."""
    cut = embedded._replace(train=embedded.train._replace(x=embedded.train.x[:2048],
                                                          y=embedded.train.y[:2048]))  # fmt: skip
    wide = sweep.run(_config(seeds=3, learning_rate=(1.0,)), cut, tmp_path / "a").results
    want = calibrated.group((8,)).final["test_ece_reference"][1, 1]
    assert wide.group((8,)).final["test_ece_reference"][1, 0] == pytest.approx(want, abs=1e-7)


def test_temperature_scaling_undoes_a_known_temperature():
    """Labels drawn from σ(z / 3): the fit recovers T = 3; on logits no temperature can
    improve, T stays at 1."""
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(0, 6, 20_000), jnp.float32)
    y = jnp.asarray(rng.random(20_000) < jax.nn.sigmoid(z / 3.0), jnp.float32)
    assert float(calibration.fit_temperature(z, y)) == pytest.approx(3.0, rel=0.05)
    y1 = jnp.asarray(rng.random(20_000) < jax.nn.sigmoid(z), jnp.float32)
    assert float(calibration.fit_temperature(z, y1)) == pytest.approx(1.0, rel=0.05)


def test_an_over_confident_model_has_an_ece_well_above_its_reference():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, 5000)
    y = jnp.asarray(rng.random(5000) < 1 / (1 + np.exp(-z)), jnp.float32)
    p_over = jax.nn.sigmoid(jnp.asarray(4 * z, jnp.float32))  # 4x over-confident
    key = jax.random.key(0)
    assert float(calibration.ece(p_over, y)) > 3 * float(calibration.ece_reference(p_over, key))
    p_true = jax.nn.sigmoid(jnp.asarray(z, jnp.float32))
    assert float(calibration.ece(p_true, y)) < 2 * float(calibration.ece_reference(p_true, key))


def test_the_columns_the_summary_line_and_the_figure(calibrated, tmp_path):
    with open(calibrated.run_dir / "members.csv") as f:
        row = next(csv.DictReader(f))
    for k in ("test_ll", "test_brier", "test_ece", "test_ece_reference", "temperature",
              "test_brier_ts"):  # fmt: skip
        assert np.isfinite(float(row[k])), k
    sel = calibrated.selected
    assert {"test_brier_mean", "test_ece_ci95", "test_ece_reference_mean"} <= set(sel)
    lines = report.calibration_lines(calibrated.summary)
    assert lines[0].startswith("selected cell, test split: Brier ") and "ECE" in lines[0]
    assert lines[1].startswith("after temperature scaling (T ")
    run_dir = shutil.copytree(calibrated.run_dir, tmp_path / "run")
    assert run_dir / "plots" / "calibration.png" in plots.draw(run_dir, calibrated)
    r = plots.reliability(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.0, 0.0, 1.0, 1.0]), 2)
    np.testing.assert_allclose(r["count"], [2, 2])
    np.testing.assert_allclose(r["mean_p"], [0.15, 0.85])
    np.testing.assert_allclose(r["frac"], [0.0, 1.0])


def test_without_the_option_no_temperature_columns(calibrated, small, tmp_path):
    """The schema's ``calibrated`` rows are not measured at all without the option: no NaN
    columns in the group files, the CSVs or the summary, one calibration line."""
    res = sweep.run(_config(seeds=2, epochs=1), small, tmp_path / "run").results
    assert all("temperature" not in g.final and "test_ece_ts" not in g.final for g in res.groups)
    assert all("test_ece" in g.final for g in res.groups)
    rows = report.summary_rows(res.groups)
    assert "temperature_mean" not in rows[0] and "test_ece_mean" in rows[0]
    assert len(report.calibration_lines(rows)) == 1
    header = (tmp_path / "run" / "members.csv").read_text().splitlines()[0].split(",")
    assert "test_ece_reference" in header and not any(h.endswith("_ts") for h in header)
