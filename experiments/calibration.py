"""Research answer 4: is ŷ a probability?

    python experiments/calibration.py            # experiments/results/calibration.{json,png}
    python experiments/calibration.py --smoke    # seconds, into a temporary directory

configs/calibration.toml (one sigmoid hidden layer of 8, 32 and 128 cells × six learning rates,
a temperature T fitted per member on validation) on 1 vs 2 and on the hardest pair of research
answer 2 (--pairs-json). For every cell (width, lr): the test Brier score, the ECE (15
equal-mass bins) beside its Bernoulli reference (the ECE of labels drawn from ŷ itself: what a
perfectly calibrated model scores), and T (T > 1: the network was over-confident, its logits
too large). Then two selections over all cells, both on validation only: the deepmle default
(validation accuracy, ties validation LL) and validation LL; their test calibration compared,
paired by seed, and each before and after temperature scaling. deepmle.core.calibration holds
the definitions. Run directories go to runs/calibration/<a>v<b> (--runs).
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

from deepmle import runtime
from deepmle.analysis import report
from deepmle.runs.results import group_name

import cells

CALIBRATION = ("test_brier", "test_ece", "test_ece_reference", "temperature", "log_temperature")
AFTER = ("test_ll_ts", "test_brier_ts", "test_ece_ts", "test_ece_reference_ts")
METRICS = ("val_accuracy", "val_ll", "test_error", "test_ll", *CALIBRATION, *AFTER)
SELECTIONS = {
    "val_accuracy": report.SELECT_BY,
    "val_ll": ("val_ll", "val_accuracy"),
}
"""Two ways to select on validation: deepmle's default, and the validation log-likelihood."""
COMPARED = ("test_error", "test_ll", "test_brier", "test_ece", "log_temperature")
SMOKE_SET = (
    "model.hidden_sizes=[[8], [16]]",
    "train.epochs=1",
    "train.seeds=2",
    "train.learning_rate=[1.0, 3.0]",
)


def with_log_t(c: cells.Cell) -> cells.Cell:
    """The cell with log T beside T: T is a ratio, so it is averaged on the log scale."""
    return c._replace(values={**c.values, "log_temperature": np.log(c.values["temperature"])})


def before_after(c: cells.Cell) -> dict:
    """Test LL, Brier and ECE before minus after temperature scaling, paired by seed."""
    return {
        m: cells.paired(c, c._replace(values={**c.values, m: c.values[f"{m}_ts"]}), m)
        for m in ("test_ll", "test_brier", "test_ece")
    }


def study(pair: tuple[int, int], overrides: tuple[str, ...], runs: Path) -> dict:
    """Every cell's calibration on one pair, and the two selections compared."""
    a, b = pair
    cfg = cells.pair_config("calibration", pair, overrides)
    res, ds = cells.train(cfg, runs, f"{a}v{b}")
    grid = []
    for g in res.groups:
        for li in range(len(g.learning_rates)):
            c = with_log_t(cells.cell(g, li))
            grid.append({**c.record(METRICS), "width": sum(g.hidden)})
    rows = report.summary_rows(res.groups)
    where = [(g, li) for g in res.groups for li in range(len(g.learning_rates))]
    chosen = {}
    for name, by in SELECTIONS.items():
        best = report.select_best(rows, by)
        if best is None:
            raise RuntimeError(f"{a} v {b}: every member diverged")
        chosen[name] = with_log_t(cells.cell(*where[best]))
    acc, ll = chosen["val_accuracy"], chosen["val_ll"]
    per_width = []  # the same question within each width: which lr does each rule pick?
    for g in res.groups:
        shape_rows = report.summary_rows([g])
        picks = {name: report.select_best(shape_rows, by) for name, by in SELECTIONS.items()}
        if None in picks.values():
            continue  # every member of this width diverged
        c = {name: with_log_t(cells.cell(g, li)) for name, li in picks.items()}
        per_width.append(
            {
                "width": sum(g.hidden),
                **{f"lr_selected_on_{name}": x.lr for name, x in c.items()},
                "same_cell": picks["val_accuracy"] == picks["val_ll"],
                "accuracy_minus_ll_selected": {
                    m: cells.paired(c["val_accuracy"], c["val_ll"], m) for m in COMPARED
                },
            }
        )
    return {
        "pair": [a, b],
        "n_train": int(ds.train.y.shape[0]),
        "n_val": int(ds.validation.y.shape[0]),
        "n_test": int(ds.test.y.shape[0]),
        "cells": grid,
        "selected": {
            name: {
                **c.record(METRICS),
                "group": group_name(c.hidden),
                "before_minus_after_scaling": before_after(c),
            }
            for name, c in chosen.items()
        },
        "same_cell": (acc.hidden, acc.lr) == (ll.hidden, ll.lr),
        "accuracy_minus_ll_selected": {m: cells.paired(acc, ll, m) for m in COMPARED},
        "per_width": per_width,
        "trained_s": round(cells.trained_s(res), 1),
    }


def draw(studies: list[dict], plan: dict, path: Path) -> None:
    """calibration.png, one row per pair: test ECE against lr per width with its Bernoulli
    reference, the fitted T against lr, and the two selected cells' ECE and Brier before and
    after temperature scaling (bars: 95% over seeds)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(studies), 4, figsize=(21, 4.4 * len(studies)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, s in zip(axes, studies, strict=True):
        label = f"{s['pair'][0]} v {s['pair'][1]}"
        widths = sorted({c["width"] for c in s["cells"]})
        for k, w in enumerate(widths):
            color = cmap(k / max(len(widths) - 1, 1))
            cs = [c for c in s["cells"] if c["width"] == w]
            lr = [c["selected_lr"] for c in cs]

            def line(ax, key, scale=1.0, cs=cs, lr=lr, color=color, w=w, **kw):
                m = np.array([scale * c[key]["mean"] for c in cs], dtype=float)
                h = np.array([scale * c[key]["ci95"] for c in cs], dtype=float)
                ax.errorbar(lr, m, yerr=h, color=color, capsize=3, **kw)

            line(row[0], "test_ece", fmt="o-", label=f"{w} cells")
            line(row[0], "test_ece_reference", fmt="x:", alpha=0.7, label=f"{w}: reference")
            t = np.array([c["log_temperature"]["mean"] for c in cs], dtype=float)
            th = np.array([c["log_temperature"]["ci95"] for c in cs], dtype=float)
            band = [np.exp(t) - np.exp(t - th), np.exp(t + th) - np.exp(t)]
            row[1].errorbar(lr, np.exp(t), yerr=band, fmt="o-", color=color, capsize=3,
                            label=f"{w} cells")  # fmt: skip
        row[0].set(xscale="log", xlabel="learning rate", ylabel="test ECE (15 equal-mass bins)",
                   title=f"{label}: ECE (o) and its reference (x)")  # fmt: skip
        row[1].axhline(1.0, color="black", lw=0.8)
        row[1].set(xscale="log", yscale="log", xlabel="learning rate",
                   ylabel="T fitted on validation (geometric mean)",
                   title=f"{label}: T > 1 = over-confident")  # fmt: skip
        row[1].set_yticks([0.5, 0.7, 1.0, 1.4, 2.0])
        row[1].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        row[1].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        for ax, metric, name in ((row[2], "test_ece", "ECE"), (row[3], "test_brier", "Brier")):
            for k, c in enumerate(s["selected"].values()):
                before, after = c[metric], c[f"{metric}_ts"]
                x = np.array([k - 0.18, k + 0.18])
                ax.bar(x, [before["mean"], after["mean"]], width=0.34,
                       yerr=[before["ci95"], after["ci95"]], capsize=3,
                       color=["tab:red", "tab:blue"], alpha=0.8)  # fmt: skip
                if metric == "test_ece":
                    ref = [c["test_ece_reference"]["mean"], c["test_ece_reference_ts"]["mean"]]
                    ax.plot(x + 0.1, ref, "kD", markersize=5, label="reference" if k == 0 else None)
                for xx, v in zip(x, (before, after), strict=True):
                    ax.annotate(cells.fmt(v, 1, 4), (xx, v["mean"]), xytext=(0, 8),
                                textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
            ticks = [
                f"selected on {sel}\nh {c['group']}, lr {c['selected_lr']:g}"
                for sel, c in s["selected"].items()
            ]
            ax.set_xticks(range(len(ticks)), ticks, fontsize=8)
            ax.set(ylabel=f"test {name}")
            ax.set_title(
                f"{label}: {name} before (red) / after (blue) T"
                + (", ◆ reference" if name == "ECE" else ""),
                fontsize=10,
            )
        for ax in row:
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7, ncol=2)
        row[2].legend(fontsize=7)
        row[1].legend(fontsize=7)
    fig.suptitle(
        f"{plan['seeds']} seeds, {plan['epochs']} epochs; intervals 95% over seeds", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    args = cells.arguments(__doc__, "runs/calibration", cells.pairs_json_argument)
    pairs_json = args.pairs_json.resolve()
    runtime.setup()
    overrides = SMOKE_SET if args.smoke else ()
    pairs = cells.studied_pairs(pairs_json)
    plan = cells.plan(
        "calibration", overrides, pairs=[list(p) for p in pairs], hardest_from=str(pairs_json)
    )
    started = time.perf_counter()
    studies = cells.each_pair(pairs, lambda pair: study(pair, overrides, args.runs))
    wall = time.perf_counter() - started
    record = {
        "question": "Is ŷ a probability?",
        "command": "python experiments/calibration.py" + (" --smoke" if args.smoke else ""),
        "plan": plan,
        "selection": {
            name: f"the cell with the fewest diverged seeds, then the highest mean {by[0]} "
            f"(ties {by[1]}), over every width and lr; test numbers for the selected only"
            for name, by in SELECTIONS.items()
        },
        "definitions": "deepmle.core.calibration: Brier = mean (ŷ−y)²; ECE over 15 equal-mass "
        "bins; ECE reference = mean ECE of y ~ Bernoulli(ŷ) (200 draws); T maximises the "
        "validation LL of σ(z/T); *_ts = test metrics of σ(z/T); log_temperature = log T",
        "intervals": "95% Student-t over seeds (n seeds that did not diverge, or pairs of "
        "seeds for a difference)",
        "wall_s": round(wall, 1),
        "trained_s": round(sum(s["trained_s"] for s in studies), 1),
        "cpu_cores": os.cpu_count(),
        "studies": studies,
    }
    cells.write_json(args.out / "calibration.json", record)
    draw(studies, plan, args.out / "calibration.png")
    for s in studies:
        print(f"{s['pair'][0]} v {s['pair'][1]}:")
        for name, c in s["selected"].items():
            print(
                f"  selected on {name:12} h {c['group']:4} lr {c['selected_lr']:<5g} "
                f"test error {cells.fmt(c['test_error'])} %, ECE {cells.fmt(c['test_ece'], 1, 4)}"
                f" (reference {cells.fmt(c['test_ece_reference'], 1, 4)}), "
                f"T {np.exp(c['log_temperature']['mean']):.2f}, "
                f"after T: ECE {cells.fmt(c['test_ece_ts'], 1, 4)}"
            )
        d = s["accuracy_minus_ll_selected"]
        print(
            "  accuracy- minus LL-selected"
            + (" (the same cell)" if s["same_cell"] else "")
            + f": ECE {cells.fmt(d['test_ece'], 1, 4)}, log T {cells.fmt(d['log_temperature'], 1)}"
            f", test error {cells.fmt(d['test_error'])} points"
        )
        for w in s["per_width"]:
            print(
                f"  width {w['width']}: lr selected on accuracy "
                f"{w['lr_selected_on_val_accuracy']:g}, on LL {w['lr_selected_on_val_ll']:g}"
            )
    print(f"wrote {args.out / 'calibration.json'} and calibration.png in {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(cells.entry(main))
