"""Figures drawn from a run's results (headless PNGs): ``deepmle plot RUN_DIR`` redraws them.

heatmap.png        mean validation accuracy ± its 95% interval over hidden sizes × learning
                   rates; cells successive halving stopped early are hatched, out of the colours
lr.png             validation accuracy against learning rate (log axis), one line per shape
                   with its 95% band over seeds (when 3 or more learning rates were swept);
                   stopped cells as hollow markers at their stop epoch
curves.png         validation accuracy per epoch, mean over seeds with a 95% t-interval band
                   (more than 10 learning rates: coloured by lr on a log colour bar)
weights.png        the selected model's first-layer weights as one mosaic of 28×28 tiles on
                   one colour scale (logistic regression: its θ as one map)
misclassified.png  the selected model's misclassified test digits (how many shown of how many)
calibration.png    reliability diagram of the selected cell on the test split (equal-mass
                   bins, pooled over seeds, 95% Wilson intervals, bin counts) and ŷ's histogram

Each figure is two steps: ``<figure>_data(res)`` computes what it shows (plain arrays, the
numbers a test compares with the run's summary table), and the drawing only lays them out.
Layout is fixed or constrained, never a tight-bbox redraw; many small images are one mosaic.
``draw`` computes each figure's data in the calling process and lays the figures out in
forked worker processes, one figure per task (``start``, then ``finish`` writes them).
"""

import functools
import importlib
import io
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepmle.analysis import report
from deepmle.analysis.load import load_run
from deepmle.analysis.predict import predict_proba
from deepmle.analysis.stats import mean_ci95
from deepmle.core import hyperparams
from deepmle.core.bins import BINS, bin_of_rank
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.metrics import BY_NAME
from deepmle.core.types import Split
from deepmle.errors import UserError
from deepmle.runs import store
from deepmle.runs.results import RunResults, lr_labels

SHOWN = BY_NAME["val_accuracy"]
"""The metric the heatmap, lr and curves figures plot (its label and scale from the schema)."""
SCALE = 100.0 if SHOWN.percent else 1.0
MANY_LRS = 10
"""More learning rates than matplotlib's 10 cycle colours: curves.png colours by lr on a
log colour bar instead of a legend (whose colours would repeat)."""
MOST_ERRORS = 64
"""misclassified.png shows at most this many errors (the first by test index) and says so."""
SEED_RULE = "the seed with the best validation accuracy of the selected cell"
"""How weights.png and misclassified.png choose the one member they show."""
STOP_MARKERS = "vs^Dph"
"""Hollow markers of cells stopped early, one per distinct stop epoch (earliest first)."""


def _image(pixels: np.ndarray) -> np.ndarray:
    """A row of pixels as a square image (28×28 for MNIST), or as one row if not square."""
    side = math.isqrt(pixels.size)
    return pixels.reshape((side, side) if side * side == pixels.size else (1, -1))


def mosaic(tiles: np.ndarray, cols: int, gap: int = 2, top: int = 0) -> np.ndarray:
    """``tiles`` [n, h, w] laid out ``cols`` to a row as one image [rows·(h+gap+top)−gap,
    cols·(w+gap)−gap], NaN between tiles (``top`` more NaN rows above each, for a caption):
    many small maps as one imshow on one colour scale."""
    n, h, w = tiles.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + gap + top) - gap, cols * (w + gap) - gap), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        y, x = r * (h + gap + top) + top, c * (w + gap)
        out[y : y + h, x : x + w] = tiles[k]
    return out


def _tile_origin(k: int, cols: int, h: int, w: int, gap: int, top: int) -> tuple[int, int]:
    """(row, column) of tile ``k``'s top-left pixel in ``mosaic``'s image."""
    r, c = divmod(k, cols)
    return r * (h + gap + top) + top, c * (w + gap)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(
    width: float,
    height: float,
    margins: tuple[float, float, float, float],
    wspace: float = 0.2,
    hspace: float = 0.2,
) -> Any:
    """A matplotlib Figure of ``width`` × ``height`` inches outside pyplot (no global state to
    close), its axes placed by fixed ``margins`` (left, right, top, bottom, in inches): one
    draw per PNG, no tight-bbox or constrained-layout pass measuring every text."""
    from matplotlib.figure import Figure

    left, right, top, bottom = margins
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=wspace, hspace=hspace)  # fmt: skip
    return fig


def _even_in_log(lrs: list[float]) -> bool:
    """Whether the learning rates are a grid evenly spaced in log (equal columns are honest)."""
    if len(lrs) < 3:
        return True
    steps = np.diff(np.log(lrs))
    return bool(np.allclose(steps, steps[0], rtol=0.1))


def _stopped(row: dict[str, Any]) -> int:
    """The epoch successive halving stopped a summary row's cell at; 0 if trained to the end."""
    return int(row["stopped_epoch"]) if row.get("stopped_epoch", "") != "" else 0


def colour_limits(means: np.ndarray, halfwidths: np.ndarray) -> tuple[float, float]:
    """(low, high) of the heatmap's colour scale from the coloured cells' ``means`` [n] and
    95% ``halfwidths`` [n] (in %): up to the best mean, down past the worst tenth, and at
    least as wide as the widest 95% interval (never narrower than half a point), so that two
    colours that differ a lot never stand for means that the intervals cannot tell apart."""
    means = means[np.isfinite(means)]
    if not means.size:
        return 0.0, 1.0
    hi = float(means.max())
    finite = halfwidths[np.isfinite(halfwidths)]
    widest = 2 * float(finite.max()) if finite.size else 0.0
    lo = min(float(np.percentile(means, 10)), hi - max(0.5, widest))
    return max(lo, 0.0) if SHOWN.percent else lo, hi


def _others(cell: dict[str, Any]) -> str:
    """A cell's hyperparameters other than the learning rate, as a label ("prior_std 0.3"):
    a run that sweeps more than the learning rate draws a row (a line) per shape and value
    of the others, the learning rate along x."""
    keys = [k for k in HYPERPARAMETERS if k != "learning_rate" and k in cell]
    return ", ".join(f"{hyperparams.label(k)} {float(cell[k]):.3g}" for k in keys)


def series(row: dict[str, Any]) -> str:
    """A summary row's series: its group (hidden sizes, swept static keys), and its other
    hyperparameters if any."""
    others = _others(row)
    return report.group_label(row) + (f", {others}" if others else "")


def heatmap_data(res: RunResults) -> dict[str, Any]:
    """What heatmap.png shows, cell by cell from the summary table: ``shapes`` [S] (a row per
    ``series``: shape, and the other hyperparameters of a run that sweeps them) and ``lrs``
    [L], and [S, L] arrays: ``mean`` and ``ci`` (%), ``stopped`` epoch (0: trained to the
    end), ``diverged`` and ``seeds``, ``selected`` and ``similar`` (≈ selected), ``coloured``
    (what the colour scale shows: finished cells with a mean); ``lo``/``hi`` the scale."""
    rows = res.summary
    shapes = list(dict.fromkeys(series(r) for r in rows))
    lrs = sorted({r["learning_rate"] for r in rows})
    size = (len(shapes), len(lrs))
    d: dict[str, Any] = {"shapes": shapes, "lrs": lrs, "grid": _even_in_log(lrs)}
    d |= {k: np.full(size, np.nan) for k in ("mean", "ci")}
    d |= {k: np.zeros(size, int) for k in ("stopped", "diverged", "seeds")}
    d |= {k: np.zeros(size, bool) for k in ("selected", "similar")}
    for r in rows:
        at = shapes.index(series(r)), lrs.index(r["learning_rate"])
        d["mean"][at] = r[f"{SHOWN.name}_mean"] * SCALE
        d["ci"][at] = r[f"{SHOWN.name}_ci95"] * SCALE
        d["stopped"][at], d["diverged"][at], d["seeds"][at] = _stopped(r), r["diverged"], r["seeds"]
        d["selected"][at], d["similar"][at] = r["selected"], r["indistinguishable"]
    d["coloured"] = np.isfinite(d["mean"]) & (d["stopped"] == 0)
    d["lo"], d["hi"] = colour_limits(d["mean"][d["coloured"]], d["ci"][d["coloured"]])
    return d


def _heatmap_note(d: dict[str, Any], i: int, j: int, room: bool) -> str:
    """A cell's annotation: its mean ± 95% half-width (when there is room), seeds lost, its
    stop and whether it is selected or ≈ selected."""
    mean, ci, lost, n = d["mean"][i, j], d["ci"][i, j], d["diverged"][i, j], d["seeds"][i, j]
    if lost == n:
        note = "diverged"
    else:
        pm = f"\n± {ci:.2f}" if room and math.isfinite(ci) else ""
        note = f"{mean:.2f}{pm}" + (f"\n{lost}/{n} div" if lost else "")
    if d["stopped"][i, j]:
        note = f"stopped e{d['stopped'][i, j]}\n{note}"
    if d["selected"][i, j]:
        note += "\n(selected)"
    elif d["similar"][i, j]:
        note += " ≈"
    return note


def heatmap(res: RunResults, plt: Any = None) -> Any:
    """Mean validation accuracy per cell with its 95% half-width. An evenly log-spaced grid of
    learning rates gets one labelled column each; drawn ones (a random search) sit at their
    values on a log axis. Cells stopped early are hatched and left out of the colour scale."""
    return _heatmap(heatmap_data(res))


def _heatmap(d: Any) -> Any:
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    shapes, lrs, acc, lo, hi = d["shapes"], d["lrs"], d["mean"], d["lo"], d["hi"]
    grid = d["grid"]
    width = 1.6 * len(lrs) + 2.5 if grid else 9
    left = 0.55 + 0.075 * max(len(s) for s in shapes)  # room for the longest shape label
    fig = _figure(
        width + left - 1.0, 0.8 * len(shapes) + 2.4, (left, 0.9, 1.0 if grid else 1.2, 0.6)
    )
    ax = fig.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="lightgray")
    masked = np.ma.masked_invalid(np.where(d["coloured"], acc, np.nan))
    if grid:
        im = ax.imshow(masked, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        edges = np.arange(len(lrs) + 1) - 0.5
        ax.set_xticks(range(len(lrs)), [f"{lr:.3g}" for lr in lrs])
        ax.set_xlabel("learning rate")
    else:
        logs = np.log(lrs)
        mids = np.exp((logs[1:] + logs[:-1]) / 2)
        edges = np.concatenate([[lrs[0] ** 2 / mids[0]], mids, [lrs[-1] ** 2 / mids[-1]]])
        im = ax.pcolormesh(edges, np.arange(len(shapes) + 1) - 0.5, masked, cmap=cmap,
                           vmin=lo, vmax=hi)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale; each cell spans to halfway to its neighbours)")
        ax.invert_yaxis()
    ax.set_yticks(range(len(shapes)), shapes)
    x_at = list(range(len(lrs))) if grid else lrs
    annotate = grid or len(lrs) <= 12
    for i in range(len(shapes)):
        for j in range(len(lrs)):
            x0, x1 = edges[j], edges[j + 1]
            if d["stopped"][i, j]:
                ax.add_patch(Rectangle((x0, i - 0.5), x1 - x0, 1, facecolor="white",
                                       hatch="xx", edgecolor="0.75", linewidth=0))  # fmt: skip
            elif 0 < d["diverged"][i, j] < d["seeds"][i, j]:  # its colour is over fewer seeds
                ax.add_patch(Rectangle((x0, i - 0.5), x1 - x0, 1, fill=False, hatch="//",
                                       edgecolor="gray", linewidth=0))  # fmt: skip
            if annotate and (np.isfinite(acc[i, j]) or d["diverged"][i, j]):
                dark = d["coloured"][i, j] and acc[i, j] < (lo + hi) / 2
                color = "0.3" if d["stopped"][i, j] else "white" if dark else "black"
                ax.text(x_at[j], i, _heatmap_note(d, i, j, room=True), ha="center",
                        va="center", fontsize=8 if grid else 7, color=color)  # fmt: skip
            elif d["selected"][i, j] or d["similar"][i, j]:
                ax.plot(lrs[j], i, "*" if d["selected"][i, j] else "o", mfc="none",
                        mec="white", ms=12 if d["selected"][i, j] else 7)  # fmt: skip
    if not grid:
        key = "" if annotate else "* selected on validation, o ≈ selected (paired 95%), "
        ax.set_title(key + "gray: every seed diverged; n/m div: n of m seeds left out",
                     fontsize=8, loc="left")  # fmt: skip
    ax.set_ylabel("hidden sizes")
    stops = (
        "\ncross-hatched: stopped early by the search at epoch k (its value then, "
        "not coloured: not comparable)"
        if d["stopped"].any()
        else ""
    )
    widest = d["ci"][d["coloured"]]
    widest = 2 * float(np.nanmax(widest)) if np.isfinite(widest).any() else math.nan
    fig.suptitle("mean validation accuracy (%) ± 95% t-interval over the seeds that did not "
                 "diverge\nhatched //: a cell that lost seeds (only cells that lost the fewest "
                 f"are selected){stops}", fontsize=9)  # fmt: skip
    fig.colorbar(im, ax=ax, label=f"val accuracy %: scale {hi - lo:.2f} points,\n"
                                  f"≥ the widest 95% interval ({widest:.2f})")  # fmt: skip
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
    """(series, lr) -> "selected" or "≈" (the summary's paired comparison)."""
    return {
        (series(r), r["learning_rate"]): "selected" if r["selected"] else "≈"
        for r in res.summary
        if r["selected"] or r["indistinguishable"]
    }


def _nothing_drawn(ax: Any) -> None:
    """An empty axes says why, instead of a log scale failing on no positive value."""
    ax.text(0.5, 0.5, "every member diverged: nothing to draw", transform=ax.transAxes,
            ha="center", va="center")  # fmt: skip


def lr_data(res: RunResults) -> list[dict[str, Any]]:
    """What lr.png shows, one dict per ``series`` (shape, and the other hyperparameters of a
    run that sweeps them): ``label``, and per learning rate (sorted) ``x``
    [L], ``mean``/``low``/``high`` [L] (%, the 95% band clipped to [0, 100]), ``stopped`` [L]
    (the epoch halving stopped the cell at, 0: trained to the end) and ``mark`` [L]
    ("selected", "≈" or "")."""
    marks = _marks(res)
    stops = {(series(r), r["learning_rate"]): _stopped(r) for r in res.summary}
    out = []
    for g in res.groups:
        acc = np.where(_healthy(g), g.final["val_accuracy"] * 100, np.nan)  # [seeds, cells]
        cells = [g.cell(i) for i in range(len(g.learning_rates))]
        for others in dict.fromkeys(_others(c) for c in cells):
            name = report.group_label(g.columns) + (f", {others}" if others else "")
            idx = [i for i, c in enumerate(cells) if _others(c) == others]
            order = [idx[j] for j in np.argsort(g.learning_rates[idx])]
            stats = np.array([_band(acc[:, j], percent=True) for j in order]).reshape(-1, 3)
            x = g.learning_rates[order].astype(np.float64)
            out.append({
                "label": f"hidden {name}", "x": x,
                "mean": stats[:, 0], "low": stats[:, 1], "high": stats[:, 2],
                "stopped": np.array([stops[(name, float(v))] for v in x], int),
                "mark": [marks.get((name, float(v)), "") for v in x],
            })  # fmt: skip
    return out


def lr_curve(res: RunResults, plt: Any = None) -> Any:
    """Validation accuracy against learning rate per shape, the line and band through the
    cells trained to the end; cells stopped early are hollow markers at their stop epoch."""
    return _lr_curve(lr_data(res))


def _lr_curve(data: Any) -> Any:
    fig = _figure(7, 4.6, (0.7, 0.2, 0.75, 0.55))
    ax = fig.subplots()
    stop_epochs = sorted({int(e) for line in data for e in line["stopped"] if e})
    stop_marker = dict(zip(stop_epochs, STOP_MARKERS * len(stop_epochs), strict=False))
    for d in data:
        done = d["stopped"] == 0
        x = d["x"][done]
        (line,) = ax.plot(x, d["mean"][done], marker=".", label=d["label"])
        ax.fill_between(x, d["low"][done], d["high"][done], alpha=0.2, color=line.get_color())
        for xi, yi, e in zip(d["x"], d["mean"], d["stopped"], strict=True):
            if e:
                ax.plot(xi, yi, stop_marker[int(e)], ms=5, mfc="none", color=line.get_color())
        for xi, yi, mark in zip(d["x"], d["mean"], d["mark"], strict=True):
            if mark:
                ax.plot(xi, yi, marker="*" if mark == "selected" else "o", ms=12 if mark ==
                        "selected" else 8, mfc="none", color="black")  # fmt: skip
    ax.plot([], [], "*", ms=12, mfc="none", mec="black", label="selected on validation")
    if any(m == "≈" for d in data for m in d["mark"]):
        ax.plot([], [], "o", ms=8, mfc="none", mec="black", label="≈ selected (paired 95%)")
    for e, m in stop_marker.items():
        ax.plot([], [], m, ms=5, mfc="none", mec="gray", label=f"stopped at epoch {e} (value then)")
    lrs = [float(lr) for d in data for lr in d["x"]]
    ax.set_xlim(min(lrs) / 1.5, max(lrs) * 1.5)  # set, not from the data: all NaN if all diverged
    ax.set_xscale("log")
    swept = sorted(set(lrs))
    if len(swept) <= 12:  # a grid: its learning rates as the ticks, as the table prints them
        from matplotlib.ticker import FixedFormatter, FixedLocator

        names = lr_labels(swept)  # a locator, not set_xticks: the limits stay the ones set above
        ax.xaxis.set_major_locator(FixedLocator(swept))
        ax.xaxis.set_major_formatter(FixedFormatter([names[v] for v in swept]))
        ax.minorticks_off()
    if not any(np.isfinite(line.get_ydata()).any() for line in ax.get_lines()):
        _nothing_drawn(ax)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("val accuracy %")
    stops = (
        "\nhollow: stopped early by the search, at its stop epoch (not comparable)"
        if stop_epochs
        else ""
    )
    ax.set_title("validation accuracy: mean over the seeds that did not diverge,\n"
                 f"band = 95% t-interval{stops}", fontsize=9)  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def curves_data(res: RunResults) -> list[dict[str, Any]]:
    """What curves.png shows, one dict per shape: ``title``, ``epochs`` [E] and per learning
    rate a ``cells`` entry: ``lr``, ``name``, ``kept`` of ``seeds``, and (when any seed kept)
    [E, 3] (mean, low, high) arrays ``val_accuracy`` (%), ``train_ll``, ``val_ll``."""
    names = lr_labels([lr for g in res.groups for lr in g.learning_rates])
    out = []
    for g in res.groups:
        ok = _healthy(g)  # [seeds, lrs]
        epochs = np.arange(1, g.curves["val_accuracy"].shape[2] + 1)
        cells = []
        for li, lr in enumerate(g.learning_rates):
            keep = ok[:, li]
            others = _others(g.cell(li))
            name = f"lr {names[float(lr)]}" + (f", {others}" if others else "")
            cell: dict[str, Any] = {"lr": float(lr), "name": name,
                                    "kept": int(keep.sum()), "seeds": len(keep)}  # fmt: skip
            if keep.any():
                for key, scale in (("val_accuracy", 100.0), ("train_ll", 1.0), ("val_ll", 1.0)):
                    v = g.curves[key][keep, li] * scale  # [seeds, epochs]
                    cell[key] = np.array([_band(v[:, e], percent=scale == 100.0)
                                          for e in range(len(epochs))]).reshape(-1, 3)  # fmt: skip
            cells.append(cell)
        out.append({"title": report.group_text(g.columns), "epochs": epochs, "cells": cells})
    return out


def learning_curves(res: RunResults, plt: Any = None) -> Any:
    """Per shape, validation accuracy and train/validation LL per epoch, each a mean over the
    seeds that did not diverge with its 95% band; more than ``MANY_LRS`` learning rates are
    coloured by lr on a log colour bar instead of a legend."""
    return _learning_curves(curves_data(res))


def _learning_curves(data: Any) -> Any:
    from matplotlib import colormaps, rcParams
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    lrs = sorted({c["lr"] for d in data for c in d["cells"]})
    many = len(lrs) > MANY_LRS
    norm, cmap = LogNorm(lrs[0], max(lrs[-1], lrs[0] * 1.01)), colormaps["viridis"]
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    n = len(data)
    fig = _figure(11 + 1.2 * many, 3.4 * n + 0.9, (0.7, 0.2, 0.8, 0.55), 0.25, 0.45)
    axes = fig.subplots(n, 2, squeeze=False)
    for (acc_ax, ll_ax), d in zip(axes, data, strict=True):
        epochs, lost, stopped = d["epochs"], [], False
        for li, c in enumerate(d["cells"]):
            part = f" ({c['kept']} of {c['seeds']} seeds)" if c["kept"] < c["seeds"] else ""
            if not c["kept"]:
                lost.append(c["name"])
                if not many:
                    acc_ax.plot([], [], " ", label=f"{c['name']}: all {c['seeds']} seeds diverged")
                continue
            color = cmap(norm(c["lr"])) if many else cycle[li % len(cycle)]
            acc = c["val_accuracy"]
            acc_ax.plot(epochs, acc[:, 0], color=color, label=None if many else c["name"] + part)
            acc_ax.fill_between(epochs, acc[:, 1], acc[:, 2], alpha=0.25, color=color)
            last = int(np.flatnonzero(np.isfinite(acc[:, 0]))[-1])
            if last < len(epochs) - 1:  # stopped early by successive halving: its end marked
                acc_ax.plot(epochs[last], acc[last, 0], "o", ms=4, mfc="none", mec=color)
                stopped = True
            for key, style in (("train_ll", "--"), ("val_ll", "-")):
                band = c[key]
                ll_ax.plot(epochs, band[:, 0], style, color=color)
                ll_ax.fill_between(epochs, band[:, 1], band[:, 2], alpha=0.15, color=color)
        title = f"{d['title']}: validation accuracy"
        if stopped:
            title += " (o: a cell stopped early by halving)"
        if many and lost:
            title += f"\n{len(lost)} of {len(d['cells'])} lrs: every seed diverged (not drawn)"
        acc_ax.set_title(title, fontsize=10)
        acc_ax.set_xlabel("epoch")
        acc_ax.set_ylabel("val accuracy %")
        if not many:
            acc_ax.legend(fontsize=7)
        sep = ":\n" if len(d["title"]) > 24 else ": "  # a shape with swept static keys
        ll_ax.set_title(f"{d['title']}{sep}LL per digit, train -- and val —", fontsize=10)
        ll_ax.set_xlabel("epoch")
        ll_ax.set_ylabel("mean LL per digit")
        for ax in (acc_ax, ll_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
    if many:
        fig.colorbar(ScalarMappable(norm, cmap), ax=axes.ravel().tolist(), shrink=0.8,
                     label=f"learning rate (log scale, {len(lrs)} values)")  # fmt: skip
    fig.suptitle("mean over the seeds that did not diverge; band = 95% t-interval of the mean",
                 fontsize=10)  # fmt: skip
    return fig


def selected_member(res: RunResults) -> tuple[list[dict[str, np.ndarray]], str]:
    """Parameters of the selected cell's seed with the best validation accuracy (SEED_RULE),
    and a label that names the cell and the seed."""
    best = res.selected
    if best is None:
        raise ValueError("no selected cell: every member diverged")
    g = res.group_of(best)
    li = g.index_of(best)
    acc = np.where(g.final["diverged_epoch"][:, li] >= 0, -np.inf, g.final["val_accuracy"][:, li])
    si = int(np.argmax(acc))
    label = f"hidden {series(best)}, lr {best['learning_rate']:.3g}, seed {int(g.seeds[si])}"
    return g.member_params(si, li), label


WEIGHT_COLS, WEIGHT_GAP, WEIGHT_TOP = 8, 2, 7
"""weights.png's mosaic: tiles to a row, NaN pixels between tiles and above each (its caption)."""


def weights_data(res: RunResults) -> dict[str, Any]:
    """What weights.png shows: ``tiles`` [n, 28, 28] (θ^(h)'s first ≤ 64 columns, or θ of a
    logistic regression as one tile), ``votes`` [n] (θ^(ŷ)_j, or None), ``lim`` (the one
    colour scale's ±), ``cells`` (how many hidden cells), ``label`` and ``digits``."""
    params, label = selected_member(res)
    w = np.asarray(params[0]["w"])
    n = 1 if len(params) == 1 else min(w.shape[1], 64)
    tiles = np.stack([_image(w[:, j]) for j in range(n)])
    votes = np.asarray(params[-1]["w"][:n, 0]) if len(params) == 2 else None
    return {"tiles": tiles, "votes": votes, "lim": float(np.abs(tiles).max()),
            "cells": 0 if len(params) == 1 else w.shape[1], "label": label,
            "digits": tuple(res.config.data.digits)}  # fmt: skip


def weights(res: RunResults, plt: Any = None) -> Any:
    """θ^(h) of the selected cell's best seed on validation, one 28×28 tile per hidden cell in
    one image on one shared colour scale; each tile's caption gives θ^(ŷ)_j, the cell's vote:
    + for the first digit."""
    return _weights(weights_data(res))


def _weights(d: Any) -> Any:
    if not d["cells"]:  # logistic regression: θ is one 28×28 map, shown large with its scale
        return _logistic_weights(d["tiles"][0], d["label"], d["digits"])
    (d1, d2), n, votes = d["digits"], len(d["tiles"]), d["votes"]
    cols = min(n, WEIGHT_COLS)
    rows_n = math.ceil(n / cols)
    fig = _figure(1.35 * cols + 1.4, 1.5 * rows_n + 1.0, (0.1, 0.2, 0.6, 0.1))
    ax = fig.subplots()
    cmap = _cmap("RdBu_r")
    top = WEIGHT_TOP if votes is not None else 0
    h, w = d["tiles"].shape[1:]
    im = ax.imshow(mosaic(d["tiles"], cols, WEIGHT_GAP, top), cmap=cmap, vmin=-d["lim"],
                   vmax=d["lim"], interpolation="nearest")  # fmt: skip
    ax.axis("off")
    if votes is not None:
        for j in range(n):
            y, x = _tile_origin(j, cols, h, w, WEIGHT_GAP, top)
            ax.text(x + w / 2, y - 1, f"θŷ {votes[j]:+.2f}: {d1 if votes[j] > 0 else d2}",
                    ha="center", va="bottom", fontsize=7)  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8, label="θ^(h) weight (red +, blue −)")
    vote_key = (f'; caption: the cell\'s output weight θ^(ŷ)_j, + votes for "{d1}", − for "{d2}"'
                if votes is not None else "")  # fmt: skip
    shown = f"{n} of {d['cells']} cells shown" if n < d["cells"] else f"all {n} cells"
    fig.suptitle(f"first-layer weights θ^(h), one 28×28 tile per hidden cell ({shown}, one "
                 f"colour scale){vote_key}\n{d['label']} ({SEED_RULE})", fontsize=8)  # fmt: skip
    return fig


def _cmap(name: str) -> Any:
    """A colormap whose NaN pixels (a mosaic's gaps) are white."""
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="white")


def _logistic_weights(theta: np.ndarray, label: str, digits: tuple[int, int]) -> Any:
    """θ [28, 28] of ŷ = σ(θᵀx) as one map: red pixels push ŷ towards the first digit."""
    fig = _figure(4.6, 4.6, (0.1, 0.2, 0.75, 0.1))
    ax = fig.subplots()
    lim = np.abs(theta).max()
    im = ax.imshow(theta, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"weight (+ toward {digits[0]})")
    ax.set_title(
        f"logistic regression θ as 28×28\n(red: ink says {digits[0]}, blue: {digits[1]})\n{label}",
        fontsize=9,
    )
    return fig


def _test_split(res: RunResults, test: Split | None = None) -> Split:
    """The run's test split: ``test`` if given (the command that trained has it), else read."""
    if test is not None:
        return test
    where = res.meta.get("data", {}).get("path")  # absolute: plots work from any directory
    return _load_test(replace(res.config.data, path=where) if where else res.config.data)


@functools.lru_cache(maxsize=2)
def _load_test(data_config: Any) -> Split:
    """The test split of a (frozen, hashable) DataConfig, read once for the figures that
    need it (misclassified and calibration)."""
    from deepmle import data

    return data.load_test(data_config)


def selected_cell_probabilities(res: RunResults, x: np.ndarray) -> tuple[np.ndarray, int]:
    """ŷ [seeds, n] on ``x`` [n, n_inputs] of every non-diverged member of the selected cell, and
    how many seeds that is."""
    best = res.selected
    if best is None:
        raise ValueError("no selected cell: every member diverged")
    g = res.group_of(best)
    li = g.index_of(best)
    ok = np.flatnonzero(g.final["diverged_epoch"][:, li] < 0)
    act = res.static(g).activation
    p = np.stack([predict_proba(g.member_params(si, li), x, act) for si in ok])
    return p, len(ok)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-mass bins of ŷ ``p`` [n] (deepmle.core.bins' cuts) against labels ``y`` [n]:
    per bin the count, mean ŷ, fraction of y = 1 and its 95% Wilson interval (lo, hi); NaN for
    a bin left empty (fewer examples than bins)."""
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


def calibration_data(res: RunResults, test: Split | None = None) -> dict[str, Any]:
    """What calibration.png shows: the reliability bins (``reliability``'s dict) of the
    selected cell's members pooled over ``n_seeds`` seeds on the test split, the histogram
    of ŷ (``hist`` [50] counts over [0, 1]), ``n_digits``, and the summary row ``best``;
    ``test``: the run's test split when the caller has it (else it is read)."""
    test = _test_split(res, test)
    p, n_seeds = selected_cell_probabilities(res, test.x)
    y = np.tile(test.y, n_seeds)
    hist, edges = np.histogram(p.reshape(-1), bins=50, range=(0, 1))
    return {"bins": reliability(p.reshape(-1), y, BINS), "n_seeds": n_seeds, "hist": hist,
            "edges": edges, "n_digits": int(test.y.size), "best": res.selected,
            "digits": tuple(res.config.data.digits)}  # fmt: skip


def calibration(res: RunResults, plt: Any = None) -> Any:
    """The selected cell's reliability diagram on the test split, its distance from the
    diagonal per bin, and the histogram of ŷ (``calibration_data``)."""
    return _calibration(calibration_data(res))


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _unicode_log_labels() -> Any:
    """matplotlib's log-axis tick labels (10², 2×10⁻¹) as plain text, not mathtext: parsing
    them was a fifth of drawing calibration.png. A label it cannot translate stays mathtext."""
    import re

    from matplotlib.ticker import LogFormatterSciNotation

    def plain(label: str) -> str:
        m = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", label)
        if m is None:
            return label
        text = m.group(1).replace(r"\times", "×")
        text = re.sub(r"\^\{(-?\d+)\}", lambda e: e.group(1).translate(_SUPERSCRIPTS), text)
        return label if any(c in text for c in "\\{}^$") else text

    class Plain(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return plain(super().__call__(x, pos))

    return Plain()


def _calibration(d: Any) -> Any:
    r, n_seeds, best = d["bins"], d["n_seeds"], d["best"]
    bins = r["count"].size
    d1, d2 = d["digits"]
    fig = _figure(15, 5.4, (0.7, 0.2, 1.15, 1.0), 0.3)
    ax, gx, hx = fig.subplots(1, 3, width_ratios=(1, 1.1, 0.9))
    counts = f"{int(r['count'].min())}" + (
        f"-{int(r['count'].max())}" if r["count"].max() > r["count"].min() else ""
    )
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--", label="perfect calibration")
    err = np.clip(np.vstack([r["frac"] - r["lo"], r["hi"] - r["frac"]]), 0, None)
    ax.errorbar(r["mean_p"], r["frac"], yerr=err, fmt="o", ms=4, capsize=3,
                label=f"{bins} equal-mass bins of {counts} examples, 95% interval")  # fmt: skip
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
    k = np.arange(1, bins + 1)
    gx.axhline(0, color="gray", lw=0.8, ls="--")
    gx.errorbar(k, r["frac"] - r["mean_p"], yerr=err, fmt="o", ms=4, capsize=3)
    tick = lambda m: f"{m:.2g}" if m < 0.9 else f"1−{1 - m:.1g}"  # noqa: E731
    gx.set_xticks(k, [tick(m) for m in r["mean_p"]], rotation=60, fontsize=7)
    gx.set_xlabel(f"bin (labelled by its mean ŷ), {counts} examples each")
    gx.set_ylabel("fraction y = 1 minus mean ŷ")
    gx.set_title("the same bins, distance from the diagonal: above 0, more are "
                 f"{d1}\nthan ŷ says (ŷ too low); below 0, fewer (ŷ too high)",
                 fontsize=8)  # fmt: skip
    hx.stairs(d["hist"], d["edges"], fill=True, color="tab:blue")
    hx.set_yscale("log")
    hx.yaxis.set_major_formatter(_unicode_log_labels())
    hx.yaxis.set_minor_formatter(_unicode_log_labels())
    hx.set_xlabel(f"ŷ = P({d1})")
    hx.set_ylabel("test examples (log scale)")
    hx.set_title(f"histogram of ŷ ({n_seeds * d['n_digits']} = {n_seeds} seeds × "
                 f"{d['n_digits']} digits)", fontsize=8)  # fmt: skip
    fig.suptitle(
        f"is ŷ a probability? {d1} vs {d2}, hidden {series(best)}, "
        f"lr {best['learning_rate']:.3g} (the cell selected on validation)",
        fontsize=9,
    )
    return fig


ERROR_COLS, ERROR_GAP, ERROR_TOP = 10, 2, 8
"""misclassified.png's mosaic: digits to a row, NaN pixels between digits and above each."""


def misclassified_data(res: RunResults, test: Split | None = None) -> dict[str, Any]:
    """What misclassified.png shows: the selected member's (SEED_RULE) misclassified test
    digits, the first ``MOST_ERRORS`` by test index: ``index`` [k], ``images`` [k, 28, 28],
    ``truth`` [k] (the digit it is), ``p`` [k] (ŷ = P(first digit)); ``errors`` of ``n``;
    ``test``: the run's test split when the caller has it (else it is read)."""
    params, label = selected_member(res)
    config = res.config
    test = _test_split(res, test)
    p = predict_proba(params, test.x, res.static(res.group_of(res.selected)).activation)
    wrong = np.flatnonzero((p > 0.5) != (test.y > 0.5))
    shown = wrong[:MOST_ERRORS]
    d1, d2 = config.data.digits
    x = np.asarray(test.x)
    images = np.stack([_image(x[i]) for i in shown]) if shown.size else np.zeros((0, 1, 1))
    return {"index": shown, "images": images, "p": p[shown],
            "truth": np.where(np.asarray(test.y)[shown] > 0.5, d1, d2),
            "errors": int(wrong.size), "n": int(test.y.size), "label": label,
            "digits": (d1, d2)}  # fmt: skip


def misclassified(res: RunResults, plt: Any = None) -> Any:
    """The selected member's misclassified test digits as one mosaic, each captioned with the
    digit it is and ŷ; the title says how many of the errors are shown and which seed."""
    return _misclassified(misclassified_data(res))


def _misclassified(d: Any) -> Any:
    k, d1 = len(d["index"]), d["digits"][0]
    cols = max(1, min(k, ERROR_COLS))
    rows_n = max(1, math.ceil(k / cols))
    fig = _figure(1.25 * cols + 0.4, 1.45 * rows_n + 0.9, (0.1, 0.1, 0.6, 0.1))
    ax = fig.subplots()
    ax.axis("off")
    if k:
        h, w = d["images"].shape[1:]
        ax.imshow(mosaic(d["images"], cols, ERROR_GAP, ERROR_TOP), cmap=_cmap("gray_r"),
                  vmin=0, vmax=max(1.0, float(d["images"].max())),
                  interpolation="nearest")  # fmt: skip
        for j in range(k):
            y, x = _tile_origin(j, cols, h, w, ERROR_GAP, ERROR_TOP)
            ax.text(x + w / 2, y - 1, f"is {d['truth'][j]}, P({d1})={d['p'][j]:.2f}",
                    ha="center", va="bottom", fontsize=7)  # fmt: skip
    shown = (f"all {d['errors']} errors shown" if k == d["errors"]
             else f"{k} of {d['errors']} errors shown (the first by test index)")  # fmt: skip
    fig.suptitle(f"{shown}: {d['errors']} of {d['n']} test digits misclassified\n"
                 f"{d['label']} ({SEED_RULE})", fontsize=9)  # fmt: skip
    return fig


def halving_data(res: RunResults) -> list[dict[str, Any]]:
    """What halving.png shows, one dict per shape: ``label``, ``lrs`` [L], ``epochs`` [E],
    ``loss`` [L, E] (− the mean validation LL over the seeds that did not diverge, NaN past
    a cell's stop), ``selected`` (the lr index of the selected cell, or None)."""
    best = res.selected
    out = []
    for g in res.groups:
        ok = _healthy(g)[:, :, None]
        values = np.where(ok, g.curves["val_ll"], np.nan)
        n = np.isfinite(values).sum(axis=0)  # NaN past a cell's stop, and where all diverged
        mean = np.where(n > 0, np.nansum(values, axis=0) / np.maximum(n, 1), np.nan)
        chosen = [g.index_of(best)] if best and g.matches(best) else []
        label = report.group_text(g.columns)
        out.append({"label": label, "lrs": np.asarray(g.learning_rates, float),
                    "epochs": np.arange(1, mean.shape[1] + 1), "loss": -mean,
                    "selected": chosen[0] if chosen else None})  # fmt: skip
    return out


def halving(res: RunResults, plt: Any = None) -> Any:
    """Successive halving: each cell's mean validation LL over seeds against epoch (plotted as
    -LL, log scale), its line ending where the cell stopped; rungs marked; the selected cell
    highlighted."""
    return _halving(_halving_view(res))


def _halving_view(res: RunResults, test: Any = None) -> dict[str, Any]:
    """halving.png's data: ``shapes`` (``halving_data``), the ``rungs`` and the ``epochs``."""
    return {"shapes": halving_data(res), "rungs": res.rungs, "epochs": res.config.train.epochs}


def _halving(view: dict[str, Any]) -> Any:
    from matplotlib import rcParams

    fig = _figure(7.5, 4.6, (1.15, 0.2, 0.4, 0.55))
    ax = fig.subplots()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, d in enumerate(view["shapes"]):
        for li, lr in enumerate(d["lrs"]):
            ax.plot(d["epochs"], d["loss"][li], color=colors[gi % len(colors)], lw=0.6,
                    alpha=0.5, marker=".", ms=3, label=d["label"] if li == 0 else None)  # fmt: skip
            if d["selected"] == li:
                ax.plot(d["epochs"], d["loss"][li], color="black", lw=2.2,
                        label=f"selected: {d['label']}, lr {lr:.3g}")  # fmt: skip
    drawn = any((np.asarray(line.get_ydata(), float) > 0).any() for line in ax.get_lines())
    for r in view["rungs"][:-1]:
        ax.axvline(r["epoch"], color="grey", ls="--", lw=0.8)
        ax.text(r["epoch"], 1.0, f" rung {r['rung']}: {r['cells_kept']}/{r['cells_ranked']}",
                transform=ax.get_xaxis_transform(), fontsize=7, va="top")  # fmt: skip
    ax.set_xlim(0.9, view["epochs"] * 1.1)  # set: no finite point if all diverged
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


class Part(NamedTuple):
    """How one figure is made: ``data(res, test)`` computes what it shows (in the calling
    process: plain arrays), ``layout(data)`` draws it (in a worker process)."""

    data: Callable[[RunResults, Split | None], Any]
    layout: Callable[[Any], Any]


PARTS: dict[str, Part] = {
    "calibration": Part(calibration_data, _calibration),
    "heatmap": Part(lambda res, test: heatmap_data(res), _heatmap),
    "curves": Part(lambda res, test: curves_data(res), _learning_curves),
    "lr": Part(lambda res, test: lr_data(res), _lr_curve),
    "halving": Part(_halving_view, _halving),
    "weights": Part(lambda res, test: weights_data(res), _weights),
    "misclassified": Part(misclassified_data, _misclassified),
}
"""File name (without .png) -> its Part; ``figures`` says which a run gets. Drawn in this
order, the slowest to draw first (calibration: three panels of text, 0.45-0.55 s; the others
0.15-0.35 s each), so that the workers finish together (second, it ended 0.5 s after them)."""


def figures(res: RunResults) -> list[tuple[str, Callable[..., Any]]]:
    """The figures a run gets: the lr plot once 3 or more learning rates were swept, the
    selected model's figures unless every member diverged (calibration.png once the run
    measured calibration)."""
    out: list[tuple[str, Callable[..., Any]]] = []
    if len(res.summary) > 1:  # one cell: the table says it
        out.append(("heatmap", heatmap))
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


def png(fig: Any) -> bytes:
    """A figure as PNG bytes, at the size it was laid out (no tight-bbox second pass).
    ValueError for a log axis whose limits are not positive (set from no data, it would draw
    an empty frame without a word; tight-bbox layout used to fail on it loudly)."""
    for ax in fig.axes:
        for scale, limits in ((ax.get_xscale(), ax.get_xlim()), (ax.get_yscale(), ax.get_ylim())):
            if scale == "log" and not min(limits) > 0:
                raise ValueError(f"a log axis of limits {limits}: set them from the data drawn")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def render(name: str, data: Any) -> bytes:
    """Figure ``name`` laid out from its ``data`` as PNG bytes. Titles sit at a fixed height
    (axes.titley): matplotlib would otherwise measure every axis' decorations again per title
    to lift it clear of top tick labels, which no figure here has."""
    from matplotlib import rc_context

    with rc_context({"axes.titley": 1.0}):
        return png(PARTS[name].layout(data))


class DrawError(UserError):
    """Figures that could not be drawn or written; the others, and the run, are saved."""


class Drawing(NamedTuple):
    """Figures being drawn: name -> the PNG's future, or the error its data met."""

    pending: dict[str, "Future[bytes] | Exception"]
    pool: Executor | None


MATPLOTLIB = ("matplotlib.figure", "matplotlib.backends.backend_agg")
"""What a drawing worker imports as it starts (or inherits, forked after the parent did)."""


def _worker_start(parent: int) -> None:
    """A drawing worker: matplotlib imported now, Ctrl-C left to the parent (which says what
    it saved), and gone as soon as the parent is, however it ended."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    for module in MATPLOTLIB:
        importlib.import_module(module)


def pool(workers: int | None = None) -> Executor | None:
    """Processes that draw figures (``start``), forked from this process now: one per CPU up
    to ``workers`` (default 4), or None with fewer than 2 CPUs. None once this process has
    started JAX, whose threads a fork would copy mid-flight (a deadlock): ``deepmle run`` forks
    them first, and they import matplotlib while it starts JAX and trains."""
    n = min(workers or 4, len(os.sched_getaffinity(0)))
    if n < 2 or "jax" in sys.modules:
        return None
    executor = ProcessPoolExecutor(n, multiprocessing.get_context("fork"), _worker_start,
                                   (os.getpid(),))  # fmt: skip
    executor.submit(int)  # a fork context forks every worker at the first task, now
    return executor


def _short(e: BaseException) -> str:
    """An error as a few words on one line: a UserError's own, else its type and first line."""
    first = str(e).splitlines()[0] if str(e) else ""
    return first if isinstance(e, UserError) else f"{type(e).__name__}: {first}".rstrip(": ")


def start(res: RunResults, test: Split | None = None, workers: Executor | None = None) -> Drawing:
    """Start drawing every figure of ``res``, one task each on ``workers`` (``pool``'s, made
    here if not given; none: drawn here), each figure's data computed here (``test``: the
    run's test split, if at hand). ``finish`` writes them and shuts the workers down."""
    chosen = {name for name, _ in figures(res)}
    names = [name for name in PARTS if name in chosen]
    pool = workers or (_pool_for(len(names)))
    pending: dict[str, Future[bytes] | Exception] = {}
    for name in names:
        try:
            data = PARTS[name].data(res, test)
            if pool is None:
                done: Future[bytes] = Future()
                done.set_result(render(name, data))
                pending[name] = done
            else:
                pending[name] = pool.submit(render, name, data)
        except Exception as e:  # one figure's failure stops none of the others
            pending[name] = e
    return Drawing(pending, pool)


def finish(run_dir: str | Path, drawing: Drawing) -> list[Path]:
    """Wait for each figure of ``drawing`` and write it into ``run_dir/plots/`` (atomically);
    their paths. DrawError naming each figure that failed, once every other one is written."""
    paths, failed = [], []
    try:
        for name, job in drawing.pending.items():
            path = Path(run_dir) / "plots" / f"{name}.png"
            try:
                if isinstance(job, Exception):
                    raise job
                store.atomic_write_bytes(path, job.result(), Path(run_dir))
                paths.append(path)
            except Exception as e:
                failed.append(f"{name}.png ({_short(e)})")
    finally:
        if drawing.pool is not None:
            drawing.pool.shutdown(cancel_futures=True)
    if failed:
        raise DrawError(
            f"figures not drawn: {'; '.join(failed)}. The run's results are saved in {run_dir}/"
            f"{f' with {len(paths)} other figures' if paths else ''}; `deepmle plot {run_dir}` "
            "draws them again"
        )
    return paths


def _pool_for(figures: int) -> Executor | None:
    """Workers for ``figures`` figures: none for one (drawn here, no process to start)."""
    if figures < 2:
        return None
    for module in MATPLOTLIB:  # imported once here; the workers inherit it
        importlib.import_module(module)
    return pool(figures)


def draw(
    run_dir: str | Path, results: RunResults | None = None, test: Split | None = None
) -> list[Path]:
    """Every figure of a run into ``run_dir/plots/`` (each file atomically), drawn in parallel
    worker processes; their paths. DrawError for figures that failed, the others written."""
    store.no_link(Path(run_dir), Path(run_dir) / "plots")  # refused before drawing anything
    res = results or load_run(run_dir)
    return finish(run_dir, start(res, test))
