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

import sys
import time
from pathlib import Path

import numpy as np

from deepmle import data, runtime
from deepmle.analysis import cells, inference, report
from deepmle.runs.results import GroupResult, group_name

import plumbing
import reproduce

CALIBRATION = ("test_brier", "test_ece", "test_ece_reference", "temperature", "log_temperature")
AFTER = ("test_ll_ts", "test_brier_ts", "test_ece_ts", "test_ece_reference_ts")
DERIVED = {
    "log_temperature": lambda v: np.log(v["temperature"]),
    "ece_excess": lambda v: v["test_ece"] - v["test_ece_reference"],
    "ece_excess_ts": lambda v: v["test_ece_ts"] - v["test_ece_reference_ts"],
    "scaling_ece": lambda v: v["test_ece_ts"] - v["test_ece"],
    "scaling_brier": lambda v: v["test_brier_ts"] - v["test_brier"],
    "scaling_nll": lambda v: v["test_ll"] - v["test_ll_ts"],
}
"""Per-seed quantities of a cell, so that their intervals are paired by seed: log T (T is a
ratio: averaged as log T, shown as the geometric mean); ECE minus its own reference, before
and after scaling (0 is "as calibrated as its ŷ can show"); and what temperature scaling did
to the test ECE, Brier score and negative LL per example (after − before: > 0 is worse)."""
METRICS = ("val_accuracy", "val_ll", "test_error", "test_ll", *CALIBRATION, *AFTER, *DERIVED)
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


def derived(c: cells.Cell) -> cells.Cell:
    """The cell with the DERIVED per-seed values beside its metrics."""
    return c._replace(values={**c.values, **{k: f(c.values) for k, f in DERIVED.items()}})


T_DRAWS = 1000
NULL_DRAWS = 1000


def resampled(g: GroupResult, c: cells.Cell, ds: data.Dataset, activation: str) -> dict:
    """What resampling says of cell ``c`` of ``g``, over its seeds that did not diverge: T per
    seed with its interval from resampling the validation digits (and the mean T over seeds,
    resampling seeds too); and ECE before and after scaling against each seed's own Bernoulli
    null, y* ~ Bernoulli(ŷ): how many seeds' ECE exceeds its null's 95th percentile."""
    ok = np.isfinite(c.values["test_error"])
    if not ok.any():
        return {"resampled_seeds": 0}
    z_val = cells.logits(g, c, ds.validation.x, activation)[ok]
    z_test = cells.logits(g, c, ds.test.x, activation)[ok]
    t = inference.temperature_interval(z_val, ds.validation.y, draws=T_DRAWS)
    out = {
        "resampled_seeds": int(ok.sum()),
        "temperature_interval": {
            "per_seed": t.t.tolist(),
            "per_seed_lo": t.lo.tolist(),
            "per_seed_hi": t.hi.tolist(),
            "at_bound": t.at_bound.tolist(),
            "mean": t.mean,
            "mean_lo": t.mean_lo,
            "mean_hi": t.mean_hi,
        },
    }
    for name, z in (("ece_null", z_test), ("ece_null_ts", z_test / t.t[:, None])):
        nulls, exceed = inference.ece_null_seeds(z, ds.test.y, from_logits=True, draws=NULL_DRAWS)
        out[name] = {
            "exceed_q95": exceed,
            "seeds": len(nulls),
            "ece": [r.ece for r in nulls],
            "null_q95": [r.null_q95 for r in nulls],
            "null_sds": [r.sds for r in nulls],
        }
    return out


def study(pair: tuple[int, int], overrides: tuple[str, ...], runs: plumbing.Runs) -> dict:
    """Every cell's calibration on one pair, and the two selections compared."""
    a, b = pair
    cfg = cells.pair_config(plumbing.config_file("calibration"), pair, overrides)
    res, ds = runs.train(cfg, f"{a}v{b}")
    grid = []
    for g in res.groups:
        for li in range(len(g.learning_rates)):
            c = derived(cells.cell(g, li))
            grid.append({**c.record(METRICS), "width": sum(g.hidden)})
    rows = report.summary_rows(res.groups)
    where = [(g, li) for g in res.groups for li in range(len(g.learning_rates))]
    chosen, resamples = {}, {}
    for name, by in SELECTIONS.items():
        best = report.select_best(rows, by)
        if best is None:
            raise cells.AllDiverged(f"{a} v {b}: every seed diverged at every width and lr")
        chosen[name] = derived(cells.cell(*where[best]))
        resamples[name] = resampled(where[best][0], chosen[name], ds, cfg.model.activation)
    acc, ll = chosen["val_accuracy"], chosen["val_ll"]
    per_width = []  # the same question within each width: which lr does each rule pick?
    for g in res.groups:
        shape_rows = report.summary_rows([g])
        picks = {name: report.select_best(shape_rows, by) for name, by in SELECTIONS.items()}
        if None in picks.values():
            per_width.append({"width": sum(g.hidden), "every_seed_diverged": True})
            continue
        c = {name: derived(cells.cell(g, li)) for name, li in picks.items()}
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
            name: {**c.record(METRICS), "group": group_name(c.hidden), **resamples[name]}
            for name, c in chosen.items()
        },
        "same_cell": (acc.hidden, acc.lr) == (ll.hidden, ll.lr),
        "accuracy_minus_ll_selected": {m: cells.paired(acc, ll, m) for m in COMPARED},
        "per_width": per_width,
        "trained_s": round(plumbing.trained_s(res), 1),
        "reproduce": [
            reproduce.block(
                f"{a} v {b}, selected {list(c.hidden)}, lr {c.lr:g}", cfg, res, c.hidden, c.lr
            )
            for c in {(c.hidden, c.lr): c for c in chosen.values()}.values()
        ],
    }


def draw(studies: list[dict], plan: dict, path: Path) -> None:
    """calibration.png, one row per pair: test ECE against lr per width with its Bernoulli
    reference, the fitted T against lr, and for the selected cell(s) ECE − reference (paired)
    before and after temperature scaling, and what scaling changed (after − before, paired).
    Bars and error bars: mean and 95% over seeds; a point over fewer seeds than the plan's
    says its n."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(studies), 4, figsize=(21, 4.4 * len(studies)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, s in zip(axes, studies, strict=True):
        label = f"{s['pair'][0]} v {s['pair'][1]}"
        widths = sorted({c["width"] for c in s["cells"]})
        lost = sorted({c["selected_lr"] for c in s["cells"] if c["test_ece"]["n"] == 0})
        for k, w in enumerate(widths):
            color = cmap(k / max(len(widths) - 1, 1))
            cs = [c for c in s["cells"] if c["width"] == w and c["test_ece"]["n"] > 0]
            lr = np.array([c["selected_lr"] for c in cs])
            m = {key: np.array([c[key]["mean"] for c in cs], float) for key in
                 ("test_ece", "test_ece_reference", "log_temperature")}  # fmt: skip
            h = {key: np.array([c[key]["ci95"] or 0.0 for c in cs], float) for key in m}
            row[0].errorbar(lr, m["test_ece"], yerr=h["test_ece"], fmt="o-", color=color,
                            capsize=3, label=f"{w} cells")  # fmt: skip
            row[0].errorbar(lr, m["test_ece_reference"], yerr=h["test_ece_reference"], fmt="x:",
                            color=color, alpha=0.7, label=f"{w}: reference")  # fmt: skip
            t, th = m["log_temperature"], h["log_temperature"]
            band = [np.exp(t) - np.exp(t - th), np.exp(t + th) - np.exp(t)]
            row[1].errorbar(lr, np.exp(t), yerr=band, fmt="o-", color=color, capsize=3,
                            label=f"{w} cells")  # fmt: skip
            for c, x, y0, y1 in zip(cs, lr, m["test_ece"], np.exp(t), strict=True):
                n = c["test_ece"]["n"]
                for ax, y in ((row[0], y0), (row[1], y1)) if n < plan["seeds"] else ():
                    ax.annotate(f"n={n}", (x, y), xytext=(4, 4), textcoords="offset points",
                                fontsize=7, color=color)  # fmt: skip
        note = f" (lr {', '.join(f'{x:g}' for x in lost)}: every seed diverged)" if lost else ""
        row[0].set(xscale="log", xlabel="learning rate", ylabel="test ECE (15 equal-mass bins)")
        row[0].set_title(f"{label}: ECE (o) and its reference (x){note}", fontsize=10)
        row[1].axhline(1.0, color="black", lw=0.8)
        row[1].set(xscale="log", yscale="log", xlabel="learning rate",
                   ylabel="T fitted on validation (geometric mean)")  # fmt: skip
        row[1].set_title(f"{label}: T > 1 = over-confident, < 1 under-", fontsize=10)
        row[1].set_yticks([0.5, 0.7, 1.0, 1.4, 2.0])
        row[1].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        row[1].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        chosen = list(s["selected"].items())[: 1 if s["same_cell"] else 2]
        names = " = ".join(s["selected"]) if s["same_cell"] else None
        for ax, keys, ticks, title in (
            (row[2], ("ece_excess", "ece_excess_ts"), ("before T", "after T"),
             "ECE − its reference (paired)"),
            (row[3], ("scaling_ece", "scaling_brier", "scaling_nll"), ("ECE", "Brier", "−LL/digit"),
             "after − before T (paired; > 0 worse)"),
        ):  # fmt: skip
            width = 0.8 / len(chosen)
            for k, (sel, c) in enumerate(chosen):
                x = np.arange(len(keys)) + (k - (len(chosen) - 1) / 2) * width
                v = [c[key] for key in keys]
                who = names or sel
                name = f"selected on {who}: h {c['group']}, lr {c['selected_lr']:g}"
                if ax is row[2]:  # the table's other two columns for this cell
                    t, null, after = c["temperature_interval"], c["ece_null"], c["ece_null_ts"]
                    name += (
                        f"\nseeds above their own null's 95th pct: {null['exceed_q95']}/"
                        f"{null['seeds']} (after T {after['exceed_q95']}/{after['seeds']})"
                        f"\nT over seeds × validation digits {t['mean']:.2f} "
                        f"[{t['mean_lo']:.2f}, {t['mean_hi']:.2f}]"
                    )
                ax.bar(x, [e["mean"] for e in v], width=width * 0.9, yerr=[e["ci95"] for e in v],
                       capsize=3, alpha=0.8, label=name)  # fmt: skip
                for xx, e in zip(x, v, strict=True):
                    ax.annotate(cells.fmt(e, 1, 4) + f"\nn={e['n']}", (xx, e["mean"]),
                                xytext=(0, -24 if e["mean"] < 0 else 6), ha="center",
                                textcoords="offset points", fontsize=7)  # fmt: skip
            ax.axhline(0.0, color="black", lw=0.8)
            ax.set_xticks(range(len(keys)), ticks)
            ax.set_title(f"{label}: {title}", fontsize=10)
            ax.legend(fontsize=7)
            ax.margins(y=0.25)
        for ax in row:
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7, ncol=2)
        row[1].legend(fontsize=7)
    fig.suptitle(
        f"{plan['seeds']} seeds, {plan['epochs']} epochs; intervals 95% over seeds", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    args = plumbing.arguments(__doc__, "runs/calibration", plumbing.pairs_json_argument)
    pairs_json = args.pairs_json.resolve()
    runtime.setup()
    overrides = SMOKE_SET if args.smoke else ()
    pairs = plumbing.studied_pairs(pairs_json)
    pairs_list, source = [list(p) for p in pairs], plumbing.shown(pairs_json)
    plan = plumbing.plan("calibration", overrides, pairs=pairs_list, hardest_from=source)
    started = time.perf_counter()
    studies = plumbing.each_pair(pairs, lambda pair: study(pair, overrides, args.runs))
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
        "seeds for a difference); for the selected cells also temperature_interval: T per "
        f"seed with a percentile 95% interval from {T_DRAWS} resamples of the validation "
        "digits, and the mean T over seeds resampling seeds too; ece_null(_ts): per seed, "
        f"ECE (before, after scaling) against {NULL_DRAWS} draws of its Bernoulli null "
        "y* ~ Bernoulli(ŷ), exceed_q95 = how many seeds exceed their null's 95th percentile "
        "(deepmle.analysis.inference)",
        **plumbing.cost(wall, studies),
        "reproduce": [r for s in studies for r in s.pop("reproduce")],
        "studies": studies,
    }
    plumbing.save(args.out, "calibration", record, lambda path: draw(studies, plan, path))
    for s in studies:
        print(f"{s['pair'][0]} v {s['pair'][1]}:")
        for name, c in s["selected"].items():
            print(
                f"  selected on {name:12} h {c['group']:4} lr {c['selected_lr']:<5g} "
                f"test error {cells.fmt(c['test_error'])} %, ECE {cells.fmt(c['test_ece'], 1, 4)}"
                f" (reference {cells.fmt(c['test_ece_reference'], 1, 4)}), "
                f"ECE − reference {cells.fmt(c['ece_excess'], 1, 4)} (paired), "
                f"T {np.exp(c['log_temperature']['mean']):.2f}; T changed ECE by "
                f"{cells.fmt(c['scaling_ece'], 1, 4)}, Brier by "
                f"{cells.fmt(c['scaling_brier'], 1, 5)}, −LL/digit by "
                f"{cells.fmt(c['scaling_nll'], 1, 4)}"
            )
            if c["resampled_seeds"]:
                t, e, ets = c["temperature_interval"], c["ece_null"], c["ece_null_ts"]
                print(
                    f"    T over seeds {t['mean']:.2f} [{t['mean_lo']:.2f}, {t['mean_hi']:.2f}] "
                    f"(validation digits and seeds resampled); ECE above its own null's 95th "
                    f"percentile in {e['exceed_q95']} of {e['seeds']} seeds, after scaling "
                    f"{ets['exceed_q95']} of {ets['seeds']}"
                )
        d = s["accuracy_minus_ll_selected"]
        print(
            "  accuracy- minus LL-selected"
            + (" (the same cell)" if s["same_cell"] else "")
            + f": ECE {cells.fmt(d['test_ece'], 1, 4)}, log T {cells.fmt(d['log_temperature'], 1)}"
            f", test error {cells.fmt(d['test_error'])} points"
        )
        for w in s["per_width"]:
            if w.get("every_seed_diverged"):
                print(f"  width {w['width']}: every seed diverged at every lr")
                continue
            print(
                f"  width {w['width']}: lr selected on accuracy "
                f"{w['lr_selected_on_val_accuracy']:g}, on LL {w['lr_selected_on_val_ll']:g}"
            )
    print(f"wrote {args.out / 'calibration.json'} and calibration.png in {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(plumbing.entry(main))
