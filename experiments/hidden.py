"""Research answer 1: what does the hidden layer buy?

    python experiments/hidden.py            # experiments/results/hidden.{json,png}
    python experiments/hidden.py --smoke    # seconds, into a temporary directory

configs/hidden.toml (logistic regression, hidden_sizes = [], against one sigmoid hidden layer
of 8, 16, 32, 64 and 128 cells) on 1 vs 2 and on the hardest pair of research answer 2 (the
first of ``hardest`` in experiments/results/pairs.json, ranked on validation; --pairs-json).
Each shape gets its own learning rate, selected on validation accuracy (deepmle's selection);
test error is reported for the selected cells only, mean ± 95% t-interval over seeds, and each
width is compared with logistic regression paired by seed (logistic − width: what the hidden
layer buys, in points of test error). Run directories go to runs/hidden/<a>v<b> (--runs).
"""

import sys
import time
from pathlib import Path

import numpy as np

from deepmle import runtime
from deepmle.analysis import cells, inference, stats

import plumbing
import reproduce

METRICS = ("val_error", "test_error", "val_ll", "test_ll")
REPRODUCED = ((), (64,))
"""The shapes whose selected cells CI retrains (experiments/reproduce.py): logistic regression
and the 64-wide network, whose published numbers once came from older code."""
SMOKE_SET = (
    "model.hidden_sizes=[[], [8]]",
    "train.epochs=1",
    "train.seeds=2",
    "train.learning_rate=[1.0, 3.0]",
)


def study(
    pair: tuple[int, int], overrides: tuple[str, ...], runs: plumbing.Runs, sklearn: dict
) -> dict:
    """Every shape's selected cell on one pair, and each width minus logistic regression (over
    seeds, and over seeds and test digits); and each shape minus scikit-learn's logistic
    regression (fitted with ``sklearn``, plumbing.sklearn_logistic's options)."""
    a, b = pair
    cfg = cells.pair_config(plumbing.config_file("hidden"), pair, overrides)
    res, ds = runs.train(cfg, f"{a}v{b}")
    selected = {h: cells.select(res.group(h)) for h in cfg.model.hidden_sizes}
    logistic = selected[()]
    right = {
        h: cells.correct(res.group(h), c, ds.test, cfg.model.activation)
        for h, c in selected.items()
    }
    reference, right_sk = plumbing.sklearn_logistic(ds, **sklearn)
    shapes = []
    for h, c in selected.items():
        shapes.append(
            {
                **c.record(METRICS),
                "width": sum(h),
                "by_lr": cells.lr_table(res.group(h)),
                "logistic_minus_this": {m: cells.paired(logistic, c, m) for m in METRICS},
            }
        )
        shapes[-1]["test_error"]["sampling_ci95"] = stats.sampling_ci95(
            c.summary("test_error")["mean"], int(ds.test.y.shape[0])
        )
        shapes[-1]["logistic_minus_this"]["test_error"]["bootstrap"] = cells.bootstrap(
            right[()], logistic, right[h], c
        )
        shapes[-1]["this_minus_sklearn"] = {
            "test_error": cells.minus_reference(right[h], c, right_sk)
        }
    widths = [sh for sh in shapes if sh["width"]]
    p = [sh["logistic_minus_this"]["test_error"]["bootstrap"]["p"] for sh in widths]
    survivors = inference.multiple_comparisons(p)  # its rejects as the widths, not their indices
    for rule in ("holm_rejects", "benjamini_hochberg_rejects"):
        survivors[rule] = [widths[i]["width"] for i in survivors[rule]]
    return {
        "pair": [a, b],
        "n_train": int(ds.train.y.shape[0]),
        "n_val": int(ds.validation.y.shape[0]),
        "n_test": int(ds.test.y.shape[0]),
        "shapes": shapes,
        "sklearn_logistic": reference,
        "multiple_comparisons": {"logistic_minus_width": survivors},
        "trained_s": round(plumbing.trained_s(res), 1),
        "reproduce": [
            reproduce.block(f"{a} v {b}, hidden {list(h)}, lr {c.lr:g}", cfg, res, h, c.lr)
            for h, c in selected.items()
            if h in REPRODUCED
        ],
    }


def draw(studies: list[dict], plan: dict, path: Path) -> None:
    """hidden.png, per pair: test error of every selected shape (width 0 is logistic
    regression) with its 95% intervals, and logistic − width paired by seed: bars over seeds,
    shade over seeds and test digits (the paired bootstrap), as the table gives both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    colors = ("tab:blue", "tab:red", "tab:green")
    for s, color in zip(studies, colors, strict=False):
        label = f"{s['pair'][0]} v {s['pair'][1]}"
        widths = [sh["width"] for sh in s["shapes"]]
        x = np.arange(len(widths))
        err = [sh["test_error"] for sh in s["shapes"]]
        m = np.array([100 * e["mean"] for e in err])
        shade = np.array([100 * e["sampling_ci95"] for e in err])
        axes[0].fill_between(x, m - shade, m + shade, color=color, alpha=0.12)
        axes[0].errorbar(x, m, yerr=[100 * e["ci95"] for e in err], fmt="o-", color=color,
                         capsize=3, label=label)  # fmt: skip
        for xx, mm, sh in zip(x, m, s["shapes"], strict=True):
            axes[0].annotate(f"lr {sh['selected_lr']:g}", (xx, mm), xytext=(5, -11),
                             textcoords="offset points", fontsize=7, color=color)  # fmt: skip
        d = [sh["logistic_minus_this"]["test_error"] for sh in s["shapes"]][1:]
        means = [100 * v["mean"] for v in d]
        axes[1].errorbar(x[1:], means, yerr=[100 * v["ci95"] for v in d], fmt="o-",
                         color=color, capsize=3, label=f"{label}, over seeds")  # fmt: skip
        lo = np.array([100 * v["bootstrap"]["lo"] for v in d])
        hi = np.array([100 * v["bootstrap"]["hi"] for v in d])
        axes[1].fill_between(x[1:], lo, hi, color=color, alpha=0.12,
                             label=f"{label}, over seeds and test digits")  # fmt: skip
        for xx, v, a, b in zip(x[1:], d, lo, hi, strict=True):
            axes[1].annotate(f"{cells.fmt(v)}\n[{a:.2f}, {b:.2f}]", (xx, 100 * v["mean"]),
                             xytext=(5, 5), textcoords="offset points", fontsize=7,
                             color=color)  # fmt: skip
    ticks = ["logistic" if w == 0 else str(w) for w in widths]
    axes[0].set(
        xticks=x, xticklabels=ticks, xlabel="hidden cells (one sigmoid layer)",
        ylabel="test error (%), validation-selected lr",
        title="test error: bars 95% over seeds, shade 95% test sampling",
    )  # fmt: skip
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set(
        xticks=x[1:], xticklabels=ticks[1:], xlabel="hidden cells",
        ylabel="logistic − network test error (points)",
        title="what the hidden layer buys (95%: bars seeds, shade seeds × digits)",
    )  # fmt: skip
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"{plan['seeds']} seeds, {plan['epochs']} epochs, lr per shape selected on validation "
        f"among {plan['learning_rates']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = plumbing.arguments(__doc__, "runs/hidden", plumbing.pairs_json_argument)
    pairs_json = args.pairs_json.resolve()
    runtime.setup()
    overrides = SMOKE_SET if args.smoke else ()
    pairs = plumbing.studied_pairs(pairs_json)
    pairs_list, source = [list(p) for p in pairs], plumbing.shown(pairs_json)
    plan = plumbing.plan("hidden", overrides, pairs=pairs_list, hardest_from=source)
    started = time.perf_counter()
    sklearn = plumbing.SKLEARN_SMOKE if args.smoke else {}
    studies = plumbing.each_pair(pairs, lambda pair: study(pair, overrides, args.runs, sklearn))
    wall = time.perf_counter() - started
    record = {
        "question": "What does the hidden layer buy?",
        "command": "python experiments/hidden.py" + (" --smoke" if args.smoke else ""),
        "plan": plan,
        "selection": "per pair and shape, the learning rate the library selects on validation "
        "(fewest diverged seeds, then mean validation accuracy, ties validation LL); test "
        "numbers for the selected cells only",
        "intervals": "ci95: 95% Student-t over seeds (n seeds that did not diverge, or pairs of "
        "seeds for a difference); sampling_ci95: 1.96·sqrt(e(1−e)/n_test); "
        + cells.BOOTSTRAP
        + "; this_minus_sklearn: the same bootstrap against scikit-learn's one fit; "
        "multiple_comparisons: the widths' bootstrap p under Holm and Benjamini-Hochberg",
        **plumbing.cost(wall, studies),
        "reproduce": [r for s in studies for r in s.pop("reproduce")],
        "studies": studies,
    }
    plumbing.save(args.out, "hidden", record, lambda path: draw(studies, plan, path))
    for s in studies:
        print(f"{s['pair'][0]} v {s['pair'][1]}: test error %, and logistic − it (points):")
        for sh in s["shapes"]:
            name = "logistic" if sh["width"] == 0 else f"784-{sh['width']}-1"
            d = sh["logistic_minus_this"]["test_error"]
            b = d["bootstrap"]
            buys = (
                f"   buys {cells.fmt(d)} (n = {d['n']}); over seeds and digits "
                f"{100 * b['diff']:.2f} [{100 * b['lo']:.2f}, {100 * b['hi']:.2f}], p {b['p']:.2g}"
            )
            print(
                f"  {name:10} lr {sh['selected_lr']:<5g} {cells.fmt(sh['test_error'])}"
                + ("" if sh["width"] == 0 else buys)
            )
        sk = s["sklearn_logistic"]
        print(
            f"  sklearn    C {sk['selected_C']:<5g} {100 * sk['test_error']:.2f} ({sk['wall_s']} s)"
        )
    print(f"wrote {args.out / 'hidden.json'} and hidden.png in {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(plumbing.entry(main))
