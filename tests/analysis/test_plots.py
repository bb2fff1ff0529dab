"""Figures show exactly what the table shows: diverged members left out, bands inside
[0, 100] %, drawn learning rates at their values, the selected and ≈ cells marked."""

import numpy as np

from deepmle import results
from deepmle.analysis import plots
from deepmle.cli import main

from ..helpers import CONFIGS


def _run(out, *sets):
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-cache", "--no-plots",
            "--quiet", "--set", "train.seeds=3", "--set", "train.epochs=2"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    assert main(args) in (0, 1)
    return results.load_run(out)


def test_curves_leave_out_diverged_members_and_bands_stay_in_0_100(tmp_path):
    res = _run(tmp_path / "run", "train.learning_rate=[0.3, 1000]")
    assert [r["diverged"] for r in res.summary] == [0, 3]
    plt = plots._pyplot()
    fig = plots.learning_curves(res, plt)
    acc_ax, ll_ax = fig.axes[:2]
    drawn = [line for line in acc_ax.get_lines() if len(line.get_xdata())]
    assert len(drawn) == 1  # lr 1000 diverged on every seed: no line, only its legend entry
    assert "lr 1e+03: all 3 seeds diverged" in [t.get_text() for t in acc_ax.get_legend().texts]
    for band in acc_ax.collections:
        assert band.get_paths()[0].vertices[:, 1].max() <= 100.0
    assert ll_ax.get_ylabel() == "mean LL per digit"  # LL beside accuracy
    plt.close(fig)


def test_heatmap_puts_drawn_learning_rates_at_their_values_and_one_cell_gets_none(tmp_path):
    res = _run(tmp_path / "search", "train.learning_rate={ log_uniform = [0.1, 3.0], samples = 4 }",
               "train.search_seed=1")  # fmt: skip
    plt = plots._pyplot()
    fig = plots.heatmap(res, plt)
    assert fig.axes[0].get_xscale() == "log"  # not evenly spaced columns
    plt.close(fig)
    one = _run(tmp_path / "one")
    assert "heatmap" not in [name for name, _ in plots.figures(one)]
    assert np.isfinite(one.summary[0]["val_accuracy_mean"])
