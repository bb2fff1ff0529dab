"""Figures drawn from a run's results (headless PNGs): ``deepmle plot RUN_DIR`` redraws them.

heatmap.png        mean validation accuracy over hidden sizes × learning rates (a grid)
lr.png             validation accuracy against learning rate (log axis), one line per shape
                   with its 95% band over seeds (when 3 or more learning rates were swept)
curves.png         validation accuracy per epoch, mean over seeds with a 95% t-interval band
weights.png        the selected model's first-layer weights as 28×28 tiles (logistic
                   regression: its θ as one map)
misclassified.png  the selected model's misclassified test digits
calibration.png    reliability diagram of the selected cell on the test split (equal-mass
                   bins, pooled over seeds, 95% Wilson intervals, bin counts) and ŷ's histogram
"""

import io
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepmle.analysis.load import load_run
from deepmle.analysis.stats import mean_ci95
from deepmle.core.metrics import BY_NAME
from deepmle.runs import store
from deepmle.runs.results import RunResults, hidden_label, lr_labels

SHOWN = BY_NAME["val_accuracy"]
"""The metric the heatmap, lr and curves figures plot (its label and scale from the schema)."""
SCALE = 100.0 if SHOWN.percent else 1.0


def _image(pixels: np.ndarray) -> np.ndarray:
    """A row of pixels as a square image (28×28 for MNIST), or as one row if not square."""
    side = math.isqrt(pixels.size)
    return pixels.reshape((side, side) if side * side == pixels.size else (1, -1))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _even_in_log(lrs: list[float]) -> bool:
    """Whether the learning rates are a grid evenly spaced in log (equal columns are honest)."""
    if len(lrs) < 3:
        return True
    steps = np.diff(np.log(lrs))
    return bool(np.allclose(steps, steps[0], rtol=0.1))


def heatmap(res: RunResults, plt: Any) -> Any:
    """Mean validation accuracy per cell. An evenly log-spaced grid of learning rates gets one
    labelled column each; drawn ones (a random search) sit at their values on a log axis."""
    rows = res.summary
    shapes = list(dict.fromkeys(r["hidden_sizes"] for r in rows))
    lrs = sorted({r["learning_rate"] for r in rows})
    acc = np.full((len(shapes), len(lrs)), np.nan)
    note = [["" for _ in lrs] for _ in shapes]
    for r in rows:
        i, j = shapes.index(r["hidden_sizes"]), lrs.index(r["learning_rate"])
        acc[i, j] = r[f"{SHOWN.name}_mean"] * SCALE
        d, n = r["diverged"], r["seeds"]
        note[i][j] = "diverged" if d == n else f"{acc[i, j]:.2f}" + (f"\n{d}/{n} div" if d else "")
        if r["selected"]:
            note[i][j] += "\n(selected)"
        elif r["indistinguishable"]:
            note[i][j] += " ≈"
    grid = _even_in_log(lrs)
    width = 1.6 * len(lrs) + 2.5 if grid else 9
    fig, ax = plt.subplots(figsize=(width, 0.8 * len(shapes) + 2.2))
    finite = acc[np.isfinite(acc)]
    lo = np.percentile(finite, 10) if finite.size else 0
    hi = finite.max() if finite.size else 1
    lo = min(lo, hi - 0.5)  # a colour scale at least half a point wide
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
    masked = np.ma.masked_invalid(acc)
    if grid:
        im = ax.imshow(masked, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for i in range(len(shapes)):
            for j in range(len(lrs)):
                dark = np.isfinite(acc[i, j]) and acc[i, j] < (lo + hi) / 2
                ax.text(j, i, note[i][j], ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_xticks(range(len(lrs)), [f"{lr:.3g}" for lr in lrs])
        ax.set_xlabel("learning rate")
        ax.set_yticks(range(len(shapes)), shapes)
    else:
        logs = np.log(lrs)
        mids = np.exp((logs[1:] + logs[:-1]) / 2)
        edges = np.concatenate([[lrs[0] ** 2 / mids[0]], mids, [lrs[-1] ** 2 / mids[-1]]])
        im = ax.pcolormesh(edges, np.arange(len(shapes) + 1) - 0.5, masked, cmap=cmap,
                           vmin=lo, vmax=hi)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale; each cell spans to halfway to its neighbours)")
        ax.set_yticks(range(len(shapes)), shapes)
        ax.invert_yaxis()
        for r in rows:
            i, j = shapes.index(r["hidden_sizes"]), lrs.index(r["learning_rate"])
            if len(lrs) <= 12:
                dark = np.isfinite(acc[i, j]) and acc[i, j] < (lo + hi) / 2
                ax.text(lrs[j], i, note[i][j], ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
            elif r["selected"] or r["indistinguishable"]:
                ax.plot(r["learning_rate"], i, "*" if r["selected"] else "o", mfc="none",
                        mec="white", ms=12 if r["selected"] else 7)  # fmt: skip
        key = "" if len(lrs) <= 12 else "* selected on validation, o ≈ selected (paired 95%), "
        ax.set_title(key + "gray: every seed diverged; n/m div: n of m seeds left out",
                     fontsize=8, loc="left")  # fmt: skip
    for r in rows:
        if 0 < r["diverged"] < r["seeds"]:  # lost seeds: its colour is over fewer of them
            i, j = shapes.index(r["hidden_sizes"]), lrs.index(r["learning_rate"])
            x0, x1 = (j - 0.5, j + 0.5) if grid else (edges[j], edges[j + 1])
            ax.add_patch(plt.Rectangle((x0, i - 0.5), x1 - x0, 1, fill=False, hatch="//",
                                       edgecolor="gray", linewidth=0))  # fmt: skip
    ax.set_ylabel("hidden sizes")
    fig.suptitle("mean validation accuracy (%) over the seeds that did not diverge\n"
                 "hatched: a cell that lost seeds (only cells that lost the fewest are selected)",
                 fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=ax, label="val accuracy %")
    return fig


def _band(values: np.ndarray, percent: bool = False) -> tuple[float, float, float]:
    """(mean, low, high) of the finite entries: the 95% t-interval (none under 2 values),
    clipped to [0, 100] for a percentage."""
    mean, ci = mean_ci95(values[np.isfinite(values)])
    ci = 0.0 if math.isnan(ci) else ci
    low, high = mean - ci, mean + ci
    if percent:
        low, high = max(low, 0.0), min(high, 100.0)
    return mean, low, high


def _healthy(g: Any) -> np.ndarray:
    """[seeds, lrs]: the members that did not diverge, the only ones any figure shows."""
    return g.final["diverged_epoch"] < 0


def _marks(res: RunResults) -> dict[tuple[str, float], str]:
    """(hidden label, lr) -> "selected" or "≈" (the summary's paired comparison)."""
    return {
        (r["hidden_sizes"], r["learning_rate"]): "selected" if r["selected"] else "≈"
        for r in res.summary
        if r["selected"] or r["indistinguishable"]
    }


def _nothing_drawn(ax: Any) -> None:
    """An empty axes says why, instead of a log scale failing on no positive value."""
    ax.text(0.5, 0.5, "every member diverged: nothing to draw", transform=ax.transAxes,
            ha="center", va="center")  # fmt: skip


def lr_curve(res: RunResults, plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.4))
    marks = _marks(res)
    for g in res.groups:
        order = np.argsort(g.learning_rates)
        acc = np.where(_healthy(g), g.final["val_accuracy"] * 100, np.nan)  # [seeds, lrs]
        stats = np.array([_band(acc[:, j], percent=True) for j in order])
        x = g.learning_rates[order]
        (line,) = ax.plot(x, stats[:, 0], marker=".", label=f"hidden {hidden_label(g.hidden)}")
        ax.fill_between(x, stats[:, 1], stats[:, 2], alpha=0.2, color=line.get_color())
        for xi, yi in zip(x, stats[:, 0], strict=True):
            mark = marks.get((hidden_label(g.hidden), float(xi)))
            if mark:
                ax.plot(xi, yi, marker="*" if mark == "selected" else "o", ms=12 if mark ==
                        "selected" else 8, mfc="none", mec="black")  # fmt: skip
    ax.plot([], [], "*", ms=12, mfc="none", mec="black", label="selected on validation")
    if any(m == "≈" for m in marks.values()):
        ax.plot([], [], "o", ms=8, mfc="none", mec="black", label="≈ selected (paired 95%)")
    lrs = [float(lr) for g in res.groups for lr in g.learning_rates]
    ax.set_xlim(min(lrs) / 1.5, max(lrs) * 1.5)  # set, not from the data: all NaN if all diverged
    ax.set_xscale("log")
    if not any(np.isfinite(line.get_ydata()).any() for line in ax.get_lines()):
        _nothing_drawn(ax)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("val accuracy %")
    ax.set_title("validation accuracy: mean over the seeds that did not diverge,\n"
                 "band = 95% t-interval", fontsize=10)  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def learning_curves(res: RunResults, plt: Any) -> Any:
    """Per shape, validation accuracy and train/validation LL per epoch, each a mean over the
    seeds that did not diverge with its 95% band."""
    n = len(res.groups)
    fig, axes = plt.subplots(n, 2, figsize=(11, 3.4 * n + 0.9), squeeze=False)
    names = lr_labels([lr for g in res.groups for lr in g.learning_rates])
    for (acc_ax, ll_ax), g in zip(axes, res.groups, strict=True):
        ok = _healthy(g)  # [seeds, lrs]
        epochs = np.arange(1, g.curves["val_accuracy"].shape[2] + 1)
        for li, lr in enumerate(g.learning_rates):
            keep, name = ok[:, li], f"lr {names[float(lr)]}"
            label = name + (f" ({keep.sum()} of {len(keep)} seeds)" if not keep.all() else "")
            if not keep.any():
                acc_ax.plot([], [], " ", label=f"{name}: all {len(keep)} seeds diverged")
                continue
            acc = g.curves["val_accuracy"][keep, li] * 100  # [seeds, epochs]
            stats = np.array([_band(acc[:, e], percent=True) for e in range(len(epochs))])
            (line,) = acc_ax.plot(epochs, stats[:, 0], label=label)
            acc_ax.fill_between(epochs, stats[:, 1], stats[:, 2], alpha=0.25,
                                color=line.get_color())  # fmt: skip
            for key, style in (("train_ll", "--"), ("val_ll", "-")):
                ll = g.curves[key][keep, li]
                band = np.array([_band(ll[:, e]) for e in range(len(epochs))])
                ll_ax.plot(epochs, band[:, 0], style, color=line.get_color())
                ll_ax.fill_between(epochs, band[:, 1], band[:, 2], alpha=0.15,
                                   color=line.get_color())  # fmt: skip
        acc_ax.set_title(f"hidden {hidden_label(g.hidden)}: validation accuracy", fontsize=10)
        acc_ax.set_xlabel("epoch")
        acc_ax.set_ylabel("val accuracy %")
        acc_ax.legend(fontsize=7)
        ll_ax.set_title(f"hidden {hidden_label(g.hidden)}: LL per digit, train -- and val —",
                        fontsize=10)  # fmt: skip
        ll_ax.set_xlabel("epoch")
        ll_ax.set_ylabel("mean LL per digit")
        for ax in (acc_ax, ll_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("mean over the seeds that did not diverge; band = 95% t-interval of the mean",
                 fontsize=10)  # fmt: skip
    return fig


def selected_member(res: RunResults) -> tuple[list[dict[str, np.ndarray]], str]:
    """Parameters of the selected cell's seed with the best validation accuracy, and a label."""
    best = res.selected
    if best is None:
        raise ValueError("no selected cell: every member diverged")
    g = next(g for g in res.groups if hidden_label(g.hidden) == best["hidden_sizes"])
    li = int(np.flatnonzero(g.learning_rates == best["learning_rate"])[0])
    acc = np.where(g.final["diverged_epoch"][:, li] >= 0, -np.inf, g.final["val_accuracy"][:, li])
    si = int(np.argmax(acc))
    label = (
        f"hidden {best['hidden_sizes']}, lr {best['learning_rate']:.3g}, seed {int(g.seeds[si])}"
    )
    return g.member_params(si, li), label


def weights(res: RunResults, plt: Any) -> Any:
    """θ^(h) of the selected cell's best seed on validation, one 28×28 tile per hidden cell on
    one shared colour scale; each tile's title gives θ^(ŷ)_j, the cell's vote: + for "1"."""
    params, label = selected_member(res)
    w = params[0]["w"]
    if len(params) == 1:  # logistic regression: θ is one 28×28 map, shown large with its scale
        return _logistic_weights(w[:, 0], label, res.config.data.digits, plt)
    out_w = params[-1]["w"][:, 0] if len(params) == 2 else None
    d1, d2 = res.config.data.digits
    n = min(w.shape[1], 64)
    cols = min(n, 8)
    rows_n = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(1.35 * cols + 1.2, 1.45 * rows_n + 1.0),
                             squeeze=False, layout="constrained")  # fmt: skip
    lim = float(np.abs(w[:, :n]).max())
    im = None
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            im = ax.imshow(_image(w[:, j]), cmap="RdBu_r", vmin=-lim, vmax=lim)
            if out_w is not None:
                vote = d1 if out_w[j] > 0 else d2
                ax.set_title(f"θŷ {out_w[j]:+.2f}: {vote}", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="θ^(h) weight (red +, blue −)")
    votes = (f'; tile title: the cell\'s output weight θ^(ŷ)_j, + votes for "{d1}", − for "{d2}"'
             if out_w is not None else "")  # fmt: skip
    fig.suptitle(f"first-layer weights θ^(h), one 28×28 tile per hidden cell{votes}\n{label} "
                 "(the seed with the best validation accuracy of the selected cell)",
                 fontsize=8)  # fmt: skip
    return fig


def _logistic_weights(theta: np.ndarray, label: str, digits: tuple[int, int], plt: Any) -> Any:
    """θ [n_inputs] of ŷ = σ(θᵀx) as one map (28×28 for MNIST): red pixels push ŷ towards the
    first digit."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    lim = np.abs(theta).max()
    im = ax.imshow(_image(theta), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"weight (+ toward {digits[0]})")
    ax.set_title(
        f"logistic regression θ as 28×28\n(red: ink says {digits[0]}, blue: {digits[1]})\n{label}",
        fontsize=9,
    )
    return fig


def _test_split(res: RunResults) -> Any:
    from deepmle import data

    config = res.config
    where = res.meta.get("data", {}).get("path")  # absolute: plots work from any directory
    return data.load(replace(config.data, path=where) if where else config.data).test


def selected_cell_probabilities(res: RunResults, x: np.ndarray) -> tuple[np.ndarray, int]:
    """ŷ [seeds, n] on ``x`` [n, n_inputs] of every non-diverged member of the selected cell, and
    how many seeds that is."""
    from deepmle.core import registry
    from deepmle.core.model import predict_proba

    best = res.selected
    if best is None:
        raise ValueError("no selected cell: every member diverged")
    g = next(g for g in res.groups if hidden_label(g.hidden) == best["hidden_sizes"])
    li = int(np.flatnonzero(g.learning_rates == best["learning_rate"])[0])
    ok = np.flatnonzero(g.final["diverged_epoch"][:, li] < 0)
    act = registry.activation(res.config.model.activation)
    p = np.stack([np.asarray(predict_proba(g.member_params(si, li), x, act)) for si in ok])
    return p, len(ok)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-mass bins of ŷ ``p`` [n] (deepmle.core.calibration's cuts) against labels ``y`` [n]:
    per bin the count, mean ŷ, fraction of y = 1 and its 95% Wilson interval (lo, hi); NaN for
    a bin left empty (fewer examples than bins)."""
    from deepmle.core.calibration import bin_of_rank

    order = np.argsort(p, kind="stable")
    b = bin_of_rank(p[order], bins)
    count = np.bincount(b, minlength=bins).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.bincount(b, weights=p[order].astype(np.float64), minlength=bins) / count
        frac = np.bincount(b, weights=y[order].astype(np.float64), minlength=bins) / count
        z = 1.959963984540054
        centre = (frac + z * z / (2 * count)) / (1 + z * z / count)
        half = z * np.sqrt(frac * (1 - frac) / count + z * z / (4 * count**2))
        half = half / (1 + z * z / count)
        lo, hi = (
            np.where(count > 0, centre - half, np.nan),
            np.where(count > 0, centre + half, np.nan),
        )
    return {"count": count, "mean_p": mean_p, "frac": frac, "lo": lo, "hi": hi}


def calibration(res: RunResults, plt: Any) -> Any:
    from deepmle.core.calibration import BINS

    test = _test_split(res)
    p, n_seeds = selected_cell_probabilities(res, test.x)
    y = np.tile(test.y, n_seeds)
    r = reliability(p.reshape(-1), y, BINS)
    best = res.selected
    d1, d2 = res.config.data.digits
    fig, (ax, gx, hx) = plt.subplots(1, 3, figsize=(15, 4.8), width_ratios=(1, 1.1, 0.9))
    counts = f"{int(r['count'].min())}" + (
        f"-{int(r['count'].max())}" if r["count"].max() > r["count"].min() else ""
    )
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--", label="perfect calibration")
    err = np.clip(np.vstack([r["frac"] - r["lo"], r["hi"] - r["frac"]]), 0, None)
    ax.errorbar(r["mean_p"], r["frac"], yerr=err, fmt="o", ms=4, capsize=3,
                label=f"{BINS} equal-mass bins of {counts} examples, 95% interval")  # fmt: skip
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"mean predicted ŷ = P({d1}) in the bin")
    ax.set_ylabel(f"fraction that are {d1} (y = 1)")
    pm = lambda k: f"{best[f'{k}_mean']:.4f} ± {best[f'{k}_ci95']:.4f}"  # noqa: E731
    ax.set_title(
        f"reliability diagram, test split, pooled over {n_seeds} seeds\n"
        f"ECE {pm('test_ece')} (labels drawn from ŷ: {pm('test_ece_reference')})\n"
        f"Brier {pm('test_brier')} (means over seeds, 95% t-intervals)",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper left")
    k = np.arange(1, BINS + 1)
    gx.axhline(0, color="gray", lw=0.8, ls="--")
    gx.errorbar(k, r["frac"] - r["mean_p"], yerr=err, fmt="o", ms=4, capsize=3)
    tick = lambda m: f"{m:.2g}" if m < 0.9 else f"1−{1 - m:.1g}"  # noqa: E731
    gx.set_xticks(k, [tick(m) for m in r["mean_p"]], rotation=60, fontsize=7)
    gx.set_xlabel(f"bin (labelled by its mean ŷ), {counts} examples each")
    gx.set_ylabel("fraction y = 1 minus mean ŷ")
    gx.set_title("the same bins, distance from the diagonal: above 0, more are "
                 f"{d1}\nthan ŷ says (ŷ too low); below 0, fewer (ŷ too high)",
                 fontsize=8)  # fmt: skip
    hx.hist(p.reshape(-1), bins=50, range=(0, 1), color="tab:blue")
    hx.set_yscale("log")
    hx.set_xlabel(f"ŷ = P({d1})")
    hx.set_ylabel("test examples (log scale)")
    hx.set_title(f"histogram of ŷ ({y.size} = {n_seeds} seeds × {test.y.size} digits)",
                 fontsize=8)  # fmt: skip
    fig.suptitle(
        f"is ŷ a probability? {d1} vs {d2}, hidden {best['hidden_sizes']}, "
        f"lr {best['learning_rate']:.3g} (the cell selected on validation)",
        fontsize=9,
    )
    return fig


def misclassified(res: RunResults, plt: Any) -> Any:
    from deepmle.core import registry
    from deepmle.core.model import predict_proba

    params, label = selected_member(res)
    config = res.config
    test = _test_split(res)
    p = np.asarray(predict_proba(params, test.x, registry.activation(config.model.activation)))
    wrong = np.flatnonzero((p > 0.5) != (test.y > 0.5))
    d1, d2 = config.data.digits
    n = min(len(wrong), 32)
    cols = 8
    rows_n = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(1.4 * cols, 1.6 * rows_n + 0.6), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            i = wrong[k]
            ax.imshow(_image(test.x[i]), cmap="gray_r")
            truth = d1 if test.y[i] > 0.5 else d2
            ax.set_title(f"is {truth}, P({d1})={p[i]:.2f}", fontsize=7)
    fig.suptitle(f"{len(wrong)} of {len(test.y)} test digits misclassified: {label}", fontsize=9)
    return fig


def halving(res: RunResults, plt: Any) -> Any:
    """Successive halving: each cell's mean validation LL over seeds against epoch (plotted as
    -LL, log scale), its line ending where the cell stopped; rungs marked; the selected cell
    highlighted."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    best = res.selected
    for gi, g in enumerate(res.groups):
        ok = (g.final["diverged_epoch"] < 0)[:, :, None]
        values = np.where(ok, g.curves["val_ll"], np.nan)
        n = np.isfinite(values).sum(axis=0)  # NaN past a cell's stop, and where all diverged
        mean = np.where(n > 0, np.nansum(values, axis=0) / np.maximum(n, 1), np.nan)
        epochs = np.arange(1, mean.shape[1] + 1)
        for li, lr in enumerate(g.learning_rates):
            label = f"hidden {hidden_label(g.hidden)}" if li == 0 else None
            ax.plot(epochs, -mean[li], color=colors[gi % len(colors)], lw=0.6, alpha=0.5,
                    marker=".", ms=3, label=label)  # fmt: skip
            if (
                best
                and best["hidden_sizes"] == hidden_label(g.hidden)
                and (best["learning_rate"] == float(lr))
            ):
                ax.plot(epochs, -mean[li], color="black", lw=2.2,
                        label=f"selected: hidden {best['hidden_sizes']}, lr {lr:.3g}")  # fmt: skip
    drawn = any((np.asarray(line.get_ydata(), float) > 0).any() for line in ax.get_lines())
    for r in res.rungs[:-1]:
        ax.axvline(r["epoch"], color="grey", ls="--", lw=0.8)
        ax.text(r["epoch"], 1.0, f" rung {r['rung']}: {r['cells_kept']}/{r['cells_ranked']}",
                transform=ax.get_xaxis_transform(), fontsize=7, va="top")  # fmt: skip
    ax.set_xlim(0.9, res.config.train.epochs * 1.1)  # set: no finite point if all diverged
    ax.set_xscale("log")
    if drawn:  # some -LL > 0 (NaN compares False): a log axis has something to scale
        ax.set_yscale("log")
    else:
        _nothing_drawn(ax)
    ax.set_xlabel("epoch (log scale)")
    ax.set_ylabel("- mean validation LL over seeds (log scale; lower is better)")
    ax.set_title("successive halving: each cell until it stopped", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def figures(res: RunResults) -> list[tuple[str, Callable[[RunResults, Any], Any]]]:
    """The figures a run gets: the lr plot once 3 or more learning rates were swept, the
    selected model's figures unless every member diverged (calibration.png once the run
    measured calibration)."""
    out = [("heatmap", heatmap)] if len(res.summary) > 1 else []  # one cell: the table says it
    out.append(("curves", learning_curves))
    if len(res.config.train.learning_rate) >= 3:
        out.append(("lr", lr_curve))
    if res.rungs:
        out.append(("halving", halving))
    if res.selected is not None:
        out += [("weights", weights), ("misclassified", misclassified)]
        if "test_ece_mean" in res.selected:  # a run saved before calibration has none
            out.append(("calibration", calibration))
    return out


def draw(run_dir: str | Path, results: RunResults | None = None) -> list[Path]:
    """Every figure of a run into ``run_dir/plots/`` (each file atomically); their paths."""
    store.no_link(Path(run_dir), Path(run_dir) / "plots")  # refused before drawing anything
    res = results or load_run(run_dir)
    plt = _pyplot()
    paths = []
    for name, fn in figures(res):
        fig = fn(res, plt)
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # no clipped title
        plt.close(fig)
        path = Path(run_dir) / "plots" / f"{name}.png"
        store.atomic_write_bytes(path, buf.getvalue(), Path(run_dir))
        paths.append(path)
    return paths
