"""Figures show exactly what the table shows: each figure's data (``plots.<figure>_data``)
against the run's summary rows, diverged members left out, bands inside [0, 100] %, drawn
learning rates at their values, the selected and ≈ cells marked, cells stopped early by
successive halving marked and kept out of the heatmap's colours."""

import numpy as np
import pytest

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


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_curves_leave_out_diverged_members_and_bands_stay_in_0_100(tmp_path):
    res = _run(tmp_path / "run", "train.learning_rate=[0.3, 1000]")
    assert [r["diverged"] for r in res.summary] == [0, 3]
    fig = plots.learning_curves(res)
    acc_ax, ll_ax = fig.axes[:2]
    drawn = [line for line in acc_ax.get_lines() if len(line.get_xdata())]
    assert len(drawn) == 1  # lr 1000 diverged on every seed: no line, only its legend entry
    assert "lr 1000: all 3 seeds diverged" in [t.get_text() for t in acc_ax.get_legend().texts]
    for band in acc_ax.collections:
        assert band.get_paths()[0].vertices[:, 1].max() <= 100.0
    assert ll_ax.get_ylabel() == "mean LL per digit"  # LL beside accuracy


def test_every_figure_shows_what_the_summary_table_shows(tmp_path):
    """heatmap, lr and curves against summary.csv's rows (the table the report prints), and the
    lines and annotations drawn against the figure's data."""
    res = _run(tmp_path / "run", "train.learning_rate=[0.1, 0.3, 1.0, 1000]")
    rows = {(r["hidden_sizes"], r["learning_rate"]): r for r in res.summary}
    assert rows[("32", 1000.0)]["diverged"] == 3 and rows[("32", 0.3)]["diverged"] == 0
    hm = plots.heatmap_data(res)
    for j, lr in enumerate(hm["lrs"]):
        r = rows[("32", lr)]
        assert hm["stopped"][0, j] == 0 and hm["diverged"][0, j] == r["diverged"]
        assert hm["selected"][0, j] == r["selected"]
        np.testing.assert_allclose(hm["mean"][0, j], 100 * r["val_accuracy_mean"], equal_nan=True)
        np.testing.assert_allclose(hm["ci"][0, j], 100 * r["val_accuracy_ci95"], equal_nan=True)
    notes = _texts(plots.heatmap(res))
    for lr in hm["lrs"]:  # each annotated cell shows its mean and its ±
        r = rows[("32", lr)]
        if r["diverged"] < r["seeds"]:
            want = f"{100 * r['val_accuracy_mean']:.2f}\n± {100 * r['val_accuracy_ci95']:.2f}"
            assert any(t.startswith(want) for t in notes), (want, notes)
    assert "diverged" in notes

    (line,) = plots.lr_data(res)
    ci = np.array([100 * rows[("32", lr)]["val_accuracy_ci95"] for lr in line["x"]])
    want = np.array([100 * rows[("32", lr)]["val_accuracy_mean"] for lr in line["x"]])
    np.testing.assert_allclose(line["mean"], want)
    ok = np.isfinite(want)
    np.testing.assert_allclose(line["low"][ok], want[ok] - ci[ok])
    np.testing.assert_allclose(line["high"][ok], np.minimum(want[ok] + ci[ok], 100))
    assert line["mark"].count("selected") == 1 and not line["stopped"].any()
    drawn = plots.lr_curve(res).axes[0].get_lines()[0]
    np.testing.assert_array_equal(drawn.get_xdata(), line["x"])
    np.testing.assert_array_equal(drawn.get_ydata(), line["mean"])

    (group,) = plots.curves_data(res)
    for c in group["cells"]:
        r = rows[("32", c["lr"])]
        assert c["kept"] == r["seeds_used"] and c["seeds"] == r["seeds"]
        if c["kept"]:  # a grid run's last epoch is its final value
            np.testing.assert_allclose(c["val_accuracy"][-1, 0], 100 * r["val_accuracy_mean"])

    cal = plots.calibration_data(res)  # the selected cell's seeds that did not diverge, pooled
    assert cal["best"] == res.selected and cal["n_seeds"] == res.selected["seeds_used"]
    assert cal["bins"]["count"].sum() == cal["hist"].sum() == cal["n_seeds"] * cal["n_digits"]


def _group(val_acc, lrs, stopped=None, diverged=None, epochs=3, hidden=(8,), seed=0):
    """A GroupResult with made-up metrics: ``val_acc`` [seeds, lrs]; ``stopped`` [seeds, lrs]
    epochs at which successive halving stopped each member (-1: trained to the end), its
    curves NaN after; ``diverged`` [seeds, lrs] epochs (-1: never)."""
    rng = np.random.default_rng(seed)
    s, n = val_acc.shape
    full = lambda v: np.full((s, n), v)  # noqa: E731
    dive = full(-1) if diverged is None else diverged
    final = {"train_ll": full(-0.05), "train_accuracy": full(0.99), "val_ll": full(-0.05),
             "val_accuracy": val_acc, "test_ll": full(-0.05), "test_accuracy": full(0.99),
             "diverged_epoch": dive, "diverged_reason": np.where(dive >= 0, 2, 0)}  # fmt: skip
    curves = {k: np.repeat(final[k][:, :, None], epochs, axis=2) for k in
              ("train_ll", "val_ll", "val_accuracy")}  # fmt: skip
    if stopped is not None:
        final["stopped_epoch"], final["stopped_rung"] = stopped, np.where(stopped > 0, 0, -1)
        past = np.arange(1, epochs + 1) > np.where(stopped > 0, stopped, epochs)[:, :, None]
        curves = {k: np.where(past, np.nan, v) for k, v in curves.items()}
    h = hidden[0]
    params = [{"w": rng.normal(0, 0.05, (s, n, 784, h)), "b": np.zeros((s, n, h))},
              {"w": rng.normal(0, 1.0, (s, n, h, 1)), "b": np.zeros((s, n, 1))}]  # fmt: skip
    return GroupResult(hidden, np.arange(s), np.asarray(lrs, float), params, final, curves, {})


def _results(tmp_path, *groups):
    return RunResults(tmp_path, config_lib.Config(), list(groups),
                      report.summary_rows(list(groups)), {})  # fmt: skip


def test_cells_stopped_early_are_marked_and_kept_out_of_the_heatmap_colours(tmp_path):
    """A halving run's lr 0.01 stopped at epoch 1 on 60 % (a dip, with a wide interval) beside
    cells trained to the end near 99 %: the heatmap leaves it out of the colour scale and
    says "stopped e1", lr.png draws it as a hollow marker off the line, labelled."""
    lrs = [0.01, 0.1, 1.0]
    acc = np.array([[0.4, 0.985, 0.99], [0.8, 0.987, 0.991], [0.6, 0.986, 0.992]])
    stopped = np.array([[1, -1, -1]] * 3)
    res = _results(tmp_path, _group(acc, lrs, stopped))
    rows = {r["learning_rate"]: r for r in res.summary}
    assert rows[0.01]["stopped_epoch"] == 1 and rows[1.0]["selected"]
    hm = plots.heatmap_data(res)
    np.testing.assert_array_equal(hm["stopped"][0], [1, 0, 0])
    np.testing.assert_array_equal(hm["coloured"][0], [False, True, True])
    assert hm["lo"] > 90  # the 60 % dip does not stretch the finished cells' colours
    fig = plots.heatmap(res)
    assert any(t.startswith("stopped e1\n60.00") for t in _texts(fig))
    assert np.ma.getmaskarray(fig.axes[0].images[0].get_array())[0].tolist() == [1, 0, 0]
    assert "stopped early by the search" in fig.get_suptitle()

    (line,) = plots.lr_data(res)
    np.testing.assert_array_equal(line["stopped"], [1, 0, 0])
    np.testing.assert_allclose(line["mean"][0], 100 * rows[0.01]["val_accuracy_mean"])
    fig = plots.lr_curve(res)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0.1, 1.0])  # the line: finished
    hollow = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [0.01]]
    assert hollow and hollow[0].get_markerfacecolor() == "none"
    assert "stopped at epoch 1 (value then)" in [t.get_text() for t in ax.get_legend().texts]

    (curves,) = plots.halving_data(res)  # halving.png: −(mean val LL), ending at each stop
    g = res.groups[0]
    np.testing.assert_allclose(curves["loss"][1:], -g.curves["val_ll"].mean(axis=0)[1:])
    assert np.isfinite(curves["loss"][0]).tolist() == [True, False, False]
    assert curves["selected"] == 2


def test_the_heatmap_scale_is_never_narrower_than_the_widest_interval():
    lo, hi = plots.colour_limits(np.array([99.0, 99.1, 98.9]), np.array([0.4, 0.05, 0.1]))
    assert hi == 99.1 and hi - lo >= 0.8 - 1e-9
    lo, hi = plots.colour_limits(np.array([99.0, 99.1]), np.array([np.nan, 0.01]))
    assert hi - lo >= 0.5 - 1e-9  # and at least half a point
    lo, hi = plots.colour_limits(np.array([50.0, 99.0, 99.1, 99.2]), np.array([1.0, 0, 0, 0]))
    assert lo >= 50.0 and hi == 99.2


def test_many_learning_rates_get_a_log_colour_bar_not_a_legend(tmp_path):
    lrs = np.geomspace(0.01, 10, plots.MANY_LRS + 6)
    res = _results(tmp_path, _group(np.full((3, lrs.size), 0.98), lrs))
    fig = plots.learning_curves(res)
    assert fig.axes[0].get_legend() is None
    bar = fig.axes[-1]
    assert bar.get_yscale() == "log" and "learning rate" in bar.get_ylabel()
    colours = {tuple(ln.get_color()) for ln in fig.axes[0].get_lines()}
    assert len(colours) == lrs.size  # one colour per learning rate, none repeated
    few = _results(tmp_path, _group(np.full((3, 3), 0.98), lrs[:3]))
    assert len(plots.learning_curves(few).axes[0].get_legend().texts) == 3


def test_heatmap_puts_drawn_learning_rates_at_their_values_and_one_cell_gets_none(tmp_path):
    res = _run(tmp_path / "search", "train.learning_rate={ log_uniform = [0.1, 3.0], samples = 4 }",
               "train.search_seed=1")  # fmt: skip
    fig = plots.heatmap(res)
    assert fig.axes[0].get_xscale() == "log"  # not evenly spaced columns
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
    fig = plots.weights(res)
    (image,) = fig.axes[0].images  # every hidden cell in one image, on one colour scale
    mosaic = image.get_array()
    for j in (0, 7, 3):  # the first row's tiles, at the mosaic's pitch
        y, x = plots._tile_origin(j, 8, 28, 28, plots.WEIGHT_GAP, plots.WEIGHT_TOP)
        np.testing.assert_array_equal(mosaic[y : y + 28, x : x + 28],
                                      plots._image(params[0]["w"][1, 1][:, j]))  # fmt: skip
    lim = float(np.abs(params[0]["w"][1, 1]).max())
    assert image.get_clim() == (-lim, lim)
    assert plots.SEED_RULE in fig.get_suptitle()
    test = plots._test_split(res)
    p = np.asarray(predict_proba(g.member_params(1, 1), test.x))
    wrong = int(np.sum((p > 0.5) != (test.y > 0.5)))
    shown = min(wrong, plots.MOST_ERRORS)
    assert wrong > shown  # random weights: more errors than the figure has room for
    d = plots.misclassified_data(res)
    assert d["errors"] == wrong and len(d["index"]) == shown == len(d["images"])
    title = plots.misclassified(res).get_suptitle()
    assert title.startswith(f"{shown} of {wrong} errors shown (the first by test index): "
                            f"{wrong} of {test.y.size} test digits misclassified")  # fmt: skip
    assert "seed 1" in title and plots.SEED_RULE in title


def test_each_shape_keeps_its_colour_in_lr_png_whatever_is_marked_on_it(tmp_path):
    acc = np.array([[0.97, 0.98, 0.99], [0.975, 0.985, 0.991], [0.972, 0.983, 0.99]])
    from matplotlib.colors import to_hex

    lrs = [0.1, 0.3, 1.0]
    res = _results(tmp_path, _group(acc, lrs), _group(acc - 0.01, lrs, hidden=(16,), seed=1))
    fig = plots.lr_curve(res)
    lines = {ln.get_label(): to_hex(ln.get_color()) for ln in fig.axes[0].get_lines()}
    assert (lines["hidden 8"], lines["hidden 16"]) == ("#1f77b4", "#ff7f0e")  # C0, C1


def test_every_member_diverged_the_lr_axis_still_spans_the_swept_rates(tmp_path):
    lrs = [0.1, 0.3, 1.0]
    res = _results(tmp_path, _group(np.full((3, 3), 0.5), lrs, diverged=np.zeros((3, 3), int)))
    assert res.selected is None
    fig = plots.lr_curve(res)
    low, high = fig.axes[0].get_xlim()
    assert 0 < low < 0.1 and high > 1.0
    assert plots.png(fig)[:4] == b"\x89PNG"
    empty = plots._figure(3, 3, (0.5, 0.5, 0.5, 0.5))
    ax = empty.subplots()
    ax.plot(np.array([]), np.array([]), marker=".")  # a line and a band of no cell, as
    ax.fill_between(np.array([]), np.array([]), np.array([]))  # lr_curve draws them
    ax.set_xscale("log")  # limits from no point: not positive, refused, not drawn empty
    with pytest.raises(ValueError, match="log axis"):
        plots.png(empty)


def test_a_prior_sweep_draws_a_row_and_a_line_per_prior_with_the_tables_numbers(tmp_path):
    """Cells of lr x prior_std: the heatmap has a row per (shape, prior_std) and lr.png a
    line per (shape, prior_std), each cell where the summary row of its two keys puts it."""
    lrs = np.array([0.3, 1.0, 0.3, 1.0])
    prior = np.array([np.inf, np.inf, 0.5, 0.5])
    acc = np.array([[0.97, 0.99, 0.96, 0.95], [0.975, 0.991, 0.962, 0.951]])
    g = _group(acc, lrs)._replace(hyper={"prior_std": prior})
    res = _results(tmp_path, g)
    hm = plots.heatmap_data(res)
    assert hm["shapes"] == ["8, prior_std inf", "8, prior_std 0.5"] and hm["lrs"] == [0.3, 1.0]
    for r in res.summary:
        i = hm["shapes"].index(f"8, prior_std {r['prior_std']:.3g}")
        j = hm["lrs"].index(r["learning_rate"])
        np.testing.assert_allclose(hm["mean"][i, j], 100 * r["val_accuracy_mean"])
    lines = plots.lr_data(res)
    assert [d["label"] for d in lines] == ["hidden 8, prior_std inf", "hidden 8, prior_std 0.5"]
    np.testing.assert_allclose(lines[1]["mean"], 100 * acc[:, 2:].mean(axis=0))
    assert lines[0]["mark"][1] == "selected" and "selected" not in lines[1]["mark"]


@pytest.mark.parametrize(
    ("span", "major", "minor"),
    [
        ((1, 5000), ["10⁻¹", "10⁰", "10¹", "10²", "10³", "10⁴"], []),
        ((0.3, 2), ["10⁻¹", "10⁰", "10¹"], ["2×10⁻¹", "3×10⁻¹", "4×10⁻¹", "6×10⁻¹", "2×10⁰"]),
    ],
)
def test_log_tick_labels_are_plain_text_with_matplotlibs_values(span, major, minor, monkeypatch):
    """calibration.png's log axis: the labels matplotlib would typeset (10², 2×10⁻¹), as
    text; a label it cannot translate is left as it was."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogFormatterSciNotation

    ax = Figure().subplots()
    ax.plot(span, span)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plots._unicode_log_labels())
    ax.yaxis.set_minor_formatter(plots._unicode_log_labels())
    ax.figure.canvas.draw()
    shown = lambda labels: [t.get_text() for t in labels if t.get_text()]  # noqa: E731
    assert shown(ax.get_yticklabels()) == major
    assert shown(ax.yaxis.get_minorticklabels())[: len(minor)] == minor
    untranslatable = r"$\mathdefault{\alpha}$"
    monkeypatch.setattr(LogFormatterSciNotation, "__call__", lambda *_: untranslatable)
    assert plots._unicode_log_labels()(10.0) == untranslatable
