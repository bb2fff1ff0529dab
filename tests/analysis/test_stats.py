"""Honest summaries over seeds: Student's t with the sample standard deviation, and paired
differences that remove the noise the seeds share."""

import math
import subprocess
import sys

import numpy as np
import pytest

from deepmle.analysis import stats


def test_interval_uses_students_t_and_the_sample_standard_deviation():
    values = np.array([0.97, 0.99, 0.98])
    mean, half = stats.mean_ci95(values)
    # by hand: s = 0.01 (ddof 1), t_{0.975, 2} = 4.3027, half = 4.3027 * 0.01 / sqrt(3)
    assert mean == pytest.approx(0.98)
    assert half == pytest.approx(4.302652729749 * 0.01 / math.sqrt(3), rel=1e-9)
    assert half > 1.96 * values.std(ddof=1) / math.sqrt(3)  # wider than a normal interval
    assert half > 4.3 * values.std(ddof=0) / math.sqrt(3)  # and uses ddof=1


@pytest.mark.parametrize("p", [0.975, 0.995, 0.9, 0.6, 0.025])
def test_the_t_quantile_is_scipys_to_the_last_digits(p):
    """The closed-form t CDF inverted by bisection (deepmle needs no scipy to draw a run)
    against scipy's stdtrit, every df of a seeds column up to 300 and some far beyond; for
    df past EXACT_DF it is scipy's own."""
    from scipy.special import stdtrit

    for df in [*range(1, 301), 999, 5000, stats.EXACT_DF, stats.EXACT_DF + 1]:
        assert stats.t_quantile(df, p) == pytest.approx(float(stdtrit(df, p)), rel=1e-11), df
    assert stats.t_quantile(4, 0.5) == 0.0


def test_the_t_quantile_holds_in_the_tails_and_refuses_what_is_no_quantile():
    """Far tails (where 2p - 1 loses digits), p next to 0.5 and huge df go to scipy: every
    p within 1e-9 of scipy; p outside (0, 1), NaN or a df that is no count is a ValueError,
    not a loop that never ends."""
    from scipy.special import stdtrit

    ps = [1e-300, 1e-20, 1e-12, 1e-9, 1e-6, 0.4999, 0.5000000001, 1 - 1e-6, 1 - 1e-12]
    for df in (1, 2, 4, 7, 299, 9999, 10001, 100000):
        for p in ps:
            assert stats.t_quantile(df, p) == pytest.approx(float(stdtrit(df, p)), rel=1e-9)
    for df, p in [(3, 1.5), (3, -0.5), (3, 1.0), (3, 0.0), (3, math.nan), (0, 0.9),
                  (2.5, 0.9), (-1, 0.9), (True, 0.9)]:  # fmt: skip
        with pytest.raises(ValueError, match="t_quantile"):
            stats.t_quantile(df, p)


def test_the_read_side_imports_no_scipy():
    code = (
        "import sys, deepmle.analysis.plots; print(sorted(m for m in sys.modules if 'scipy' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_interval_edge_cases():
    assert all(math.isnan(v) for v in stats.mean_ci95(np.array([])))
    mean, half = stats.mean_ci95(np.array([0.5]))
    assert mean == 0.5 and math.isnan(half)


def test_paired_difference_removes_the_shared_seed_noise():
    seed_effect = np.array([0.0, 0.02, -0.02, 0.01, -0.01])
    a, b = 0.95 + seed_effect + 0.003, 0.95 + seed_effect
    mean, half = stats.paired_diff_ci95(a, b)
    assert mean == pytest.approx(0.003) and half == pytest.approx(0.0, abs=1e-12)
    assert stats.mean_ci95(a - b.mean())[1] > 0.01  # unpaired, the seeds' spread swamps it
    mean, _ = stats.paired_diff_ci95(np.array([1.0, np.nan, 3.0]), np.array([0.0, 1.0, 1.0]))
    assert mean == pytest.approx(1.5)  # pairs with a diverged member are left out


def test_sampling_interval_is_the_binomial_half_width_of_a_rate_on_n_digits():
    assert stats.sampling_ci95(0.1, 100) == pytest.approx(1.96 * 0.03)
    assert stats.sampling_ci95(0.1, 400) == pytest.approx(stats.sampling_ci95(0.1, 100) / 2)
    assert stats.sampling_ci95(0.0, 2167) == 0.0
