"""Figures drawn from a run directory alone (headless PNGs): ``deepmle plot RUN_DIR`` redraws them.

heatmap.png        mean validation accuracy over hidden sizes × learning rates
curves.png         validation accuracy per epoch, mean over seeds with a 95% t-interval band
weights.png        the selected model's first-layer weights as 28×28 tiles
misclassified.png  the selected model's misclassified test digits
"""

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from deepmle import config as config_lib
from deepmle import results
from deepmle.errors import UserError
from deepmle.stats import mean_ci95


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _selected(run_dir: Path) -> tuple[list[dict], dict]:
    rows = results.read_csv(run_dir / "summary.csv")
    best = [r for r in rows if r["selected"] == "True"]
    return rows, (best[0] if best else {})


def heatmap(run_dir: Path, out: Path) -> None:
    plt = _pyplot()
    rows, _ = _selected(run_dir)
    shapes = list(dict.fromkeys(r["hidden_sizes"] for r in rows))
    lrs = sorted({float(r["learning_rate"]) for r in rows})
    acc = np.full((len(shapes), len(lrs)), np.nan)
    note = [["" for _ in lrs] for _ in shapes]
    for r in rows:
        i, j = shapes.index(r["hidden_sizes"]), lrs.index(float(r["learning_rate"]))
        acc[i, j] = float(r["val_accuracy_mean"]) * 100
        d, n = int(r["diverged"]), int(r["seeds"])
        note[i][j] = "diverged" if d == n else f"{acc[i, j]:.2f}" + (f"\n{d}/{n} div" if d else "")
        if r["selected"] == "True":
            note[i][j] += "\n(selected)"
    fig, ax = plt.subplots(figsize=(1.6 * len(lrs) + 2, 0.8 * len(shapes) + 2))
    finite = acc[np.isfinite(acc)]
    lo = np.percentile(finite, 10) if finite.size else 0
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
    im = ax.imshow(np.ma.masked_invalid(acc), cmap=cmap, vmin=lo, aspect="auto")
    for i in range(len(shapes)):
        for j in range(len(lrs)):
            ax.text(
                j,
                i,
                note[i][j],
                ha="center",
                va="center",
                fontsize=8,
                color="white"
                if np.isfinite(acc[i, j]) and acc[i, j] < (lo + np.nanmax(acc)) / 2
                else "black",
            )
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(len(shapes)), shapes)
    ax.set_xlabel("learning rate (log-spaced)")
    ax.set_ylabel("hidden sizes")
    ax.set_title("mean validation accuracy (%) over seeds")
    fig.colorbar(im, ax=ax, label="val accuracy %")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def learning_curves(run_dir: Path, out: Path) -> None:
    plt = _pyplot()
    by_cell: dict[tuple[str, float], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in results.read_csv(run_dir / "curves.csv"):
        by_cell[(r["hidden_sizes"], float(r["learning_rate"]))][int(r["epoch"])].append(
            float(r["val_accuracy"]) * 100
        )
    shapes = list(dict.fromkeys(s for s, _ in by_cell))
    cols = min(len(shapes), 3)
    rows_n = math.ceil(len(shapes) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.6 * rows_n), squeeze=False)
    for ax, shape in zip(axes.flat, shapes, strict=False):
        for (s, lr), epochs in sorted(by_cell.items()):
            if s != shape:
                continue
            xs = sorted(epochs)
            stats = [mean_ci95(np.array(epochs[e])) for e in xs]
            mean = np.array([m for m, _ in stats])
            ci = np.nan_to_num(np.array([c for _, c in stats]))
            ax.plot(xs, mean, label=f"lr {lr:g}")
            ax.fill_between(xs, mean - ci, mean + ci, alpha=0.25)
        ax.set_title(f"hidden {shape}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val accuracy %")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(shapes) :]:
        ax.axis("off")
    fig.suptitle("validation accuracy: mean over seeds, band = 95% t-interval of the mean")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _selected_params(run_dir: Path) -> tuple[list[dict[str, np.ndarray]], str]:
    """Parameters of the selected cell's seed with the best validation accuracy."""
    _, best = _selected(run_dir)
    if not best:
        raise UserError(f"{run_dir}: no selected cell (every member diverged?)")
    members = [
        m
        for m in results.read_csv(run_dir / "members.csv")
        if m["hidden_sizes"] == best["hidden_sizes"]
        and float(m["learning_rate"]) == float(best["learning_rate"])
        and m["diverged"] == "False"
    ]
    seed = int(max(members, key=lambda m: float(m["val_accuracy"]))["seed"])
    name = "h" + best["hidden_sizes"]
    a = results.read_npz(run_dir / "params.npz")
    si = list(a[f"{name}/seeds"]).index(seed)
    li = [float(x) for x in a[f"{name}/learning_rates"]].index(float(best["learning_rate"]))
    n_layers = len(best["hidden_sizes"].split("-")) + 1
    params = [{k: a[f"{name}/layer{i}/{k}"][si, li] for k in ("w", "b")} for i in range(n_layers)]
    return (
        params,
        f"hidden {best['hidden_sizes']}, lr {float(best['learning_rate']):g}, seed {seed}",
    )


def weights(run_dir: Path, out: Path) -> None:
    plt = _pyplot()
    params, label = _selected_params(run_dir)
    w = params[0]["w"]
    n = min(w.shape[1], 64)
    cols = min(n, 8)
    rows_n = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(1.3 * cols, 1.3 * rows_n + 0.6), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            lim = np.abs(w[:, j]).max()
            ax.imshow(w[:, j].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.suptitle(f"θ^(h) columns as 28×28 (red +, blue −): {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def misclassified(run_dir: Path, out: Path) -> None:
    from deepmle import data
    from deepmle.model import predict_proba

    plt = _pyplot()
    params, label = _selected_params(run_dir)
    config = config_lib.load(run_dir / "config.toml")
    test = data.load(config.data).test
    p = np.asarray(predict_proba(params, test.x, config.model.activation))
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
            ax.imshow(test.x[i].reshape(28, 28), cmap="gray_r")
            truth = d1 if test.y[i] > 0.5 else d2
            ax.set_title(f"is {truth}, P({d1})={p[i]:.2f}", fontsize=7)
    fig.suptitle(f"{len(wrong)} of {len(test.y)} test digits misclassified: {label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw(run_dir: Path) -> list[Path]:
    """Every figure of ``run_dir`` into ``run_dir/plots/``; returns their paths."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.csv").is_file():
        raise UserError(f"{run_dir}: not a finished run directory (no summary.csv)")
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    figures = [("heatmap", heatmap), ("curves", learning_curves)]
    if _selected(run_dir)[1]:  # a selected model exists unless every member diverged
        figures += [("weights", weights), ("misclassified", misclassified)]
    paths = []
    for name, fn in figures:
        path = out_dir / f"{name}.png"
        tmp = out_dir / f".{name}.tmp.png"
        fn(run_dir, tmp)
        tmp.replace(path)
        paths.append(path)
    return paths
