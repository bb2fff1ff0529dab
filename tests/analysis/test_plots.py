"""Figures show exactly what the table shows: diverged members left out, bands inside
[0, 100] %, drawn learning rates at their values, the selected and ≈ cells marked."""

import numpy as np

from deepmle import config as config_lib
from deepmle import results
from deepmle.analysis import plots, report
from deepmle.cli import main
from deepmle.core.model import predict_proba
from deepmle.runs.results import GroupResult, RunResults

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
    assert "lr 1000: all 3 seeds diverged" in [t.get_text() for t in acc_ax.get_legend().texts]
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


def test_weights_and_misclassified_show_the_seed_best_on_validation_never_on_test(tmp_path):
    """Seed 1 is the best on validation among the seeds that did not diverge; seed 0 is the
    best on test, seed 2 diverged with the best validation accuracy of all (each cell lost a
    seed, so the more accurate lr 1.0 is selected)."""
    rng = np.random.default_rng(0)
    s, lrs = 4, np.array([0.1, 1.0])
    params = [
        {"w": rng.normal(0, 0.05, (s, 2, 784, 8)), "b": np.zeros((s, 2, 8))},
        {"w": rng.normal(0, 1.0, (s, 2, 8, 1)), "b": np.zeros((s, 2, 1))},
    ]
    final = {
        "train_ll": np.full((s, 2), -0.05),
        "train_accuracy": np.full((s, 2), 0.99),
        "val_ll": np.full((s, 2), -0.05),
        "val_accuracy": np.array([[0.9, 0.98], [0.9, 0.99], [0.9, 1.0], [0.9, 0.97]]),
        "test_ll": np.full((s, 2), -0.05),
        "test_accuracy": np.array([[0.5, 1.0], [0.5, 0.9], [0.5, 0.95], [0.5, 0.95]]),
        "diverged_epoch": np.array([[-1, -1], [-1, -1], [-1, 1], [0, -1]]),
        "diverged_reason": np.array([[0, 0], [0, 0], [0, 2], [2, 0]]),
    }
    g = GroupResult((8,), np.arange(s), lrs, params, final, {}, {})
    res = RunResults(tmp_path, config_lib.Config(), [g], report.summary_rows([g]), {})
    assert res.selected["learning_rate"] == 1.0
    chosen, label = plots.selected_member(res)
    assert label.endswith("seed 1")
    for layer, own in zip(chosen, g.member_params(1, 1), strict=True):
        np.testing.assert_array_equal(layer["w"], own["w"])
    plt = plots._pyplot()
    fig = plots.weights(res, plt)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(),
                                  plots._image(params[0]["w"][1, 1][:, 0]))  # fmt: skip
    plt.close(fig)
    fig = plots.misclassified(res, plt)
    test = plots._test_split(res)
    p = np.asarray(predict_proba(g.member_params(1, 1), test.x))
    wrong = int(np.sum((p > 0.5) != (test.y > 0.5)))
    assert fig.get_suptitle().startswith(f"{wrong} of {test.y.size} test digits")
    assert fig.get_suptitle().endswith("seed 1")
    plt.close(fig)
