"""Research answer 2: which digit pairs are hard?

    python experiments/pairs.py            # experiments/results/pairs.{json,png}
    python experiments/pairs.py --smoke    # three pairs, seconds, into a temporary directory

Every pair a < b of the ten digits (Y = 1 for a) is one run of configs/pairs.toml with its
digits replaced: the notes' network (784-32-1 sigmoid, SGD) and logistic regression
(hidden_sizes = []), over the config's learning rates and seeds, on the embedded MNIST. Each
shape's learning rate is selected per pair on validation accuracy (deepmle's selection); test
error is reported for the selected cell only, as mean ± 95% t-interval over seeds. The pairs are
ranked by the network's *validation* error, so that which pairs are called hardest is itself a
validation decision; the test error shown for them carries two intervals: over seeds
(training randomness) and the binomial one of the test digits themselves.

"Where the hidden layer matters most" is logistic − network test error, paired by seed, ranked
by the same difference on validation. Run directories go to runs/pairs/<a>v<b> (--runs): a
rerun after a kill resumes at the first pair not yet saved.
"""

import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from deepmle import runtime
from deepmle.analysis import cells, inference, stats

import plumbing
import reproduce

METRICS = ("val_error", "test_error", "val_ll", "test_ll")
SMOKE_DIGITS = (1, 2, 7)
REPRODUCED = ((1, 2), (7, 9))
"""The pairs whose selected cells CI retrains (experiments/reproduce.py)."""
SMOKE_SET = (
    "model.hidden_sizes=[[], [8]]",
    "train.epochs=1",
    "train.seeds=2",
    "train.learning_rate=[1.0, 3.0]",
)
TOP = 5


def study(
    digits: tuple[int, ...], overrides: tuple[str, ...], runs: plumbing.Runs, sklearn: dict
) -> list[dict]:
    """One record per pair: both shapes' selected cells and their paired difference (over
    seeds, and over seeds and test digits), and scikit-learn's logistic regression (fitted
    with ``sklearn``, plumbing.sklearn_logistic's options) against both."""
    out = []
    for a, b in combinations(digits, 2):
        t = time.perf_counter()
        cfg = cells.pair_config(plumbing.config_file("pairs"), (a, b), overrides)
        res, ds = runs.train(cfg, f"{a}v{b}")
        network = next(h for h in cfg.model.hidden_sizes if h)  # beside logistic regression ()
        net, lin = cells.select(res.group(network)), cells.select(res.group(()))
        n_test = int(ds.test.y.shape[0])
        act = cfg.model.activation
        ok_net = cells.correct(res.group(network), net, ds.test, act)
        ok_lin = cells.correct(res.group(()), lin, ds.test, act)
        reference, ok_sk = plumbing.sklearn_logistic(ds, **sklearn)
        record = {
            "pair": [a, b],
            "n_train": int(ds.train.y.shape[0]),
            "n_val": int(ds.validation.y.shape[0]),
            "n_test": n_test,
            "network": net.record(METRICS),
            "logistic": lin.record(METRICS),
            "logistic_minus_network": {m: cells.paired(lin, net, m) for m in METRICS},
            "sklearn_logistic": reference,
            "network_minus_sklearn": {"test_error": cells.minus_reference(ok_net, net, ok_sk)},
            "logistic_minus_sklearn": {"test_error": cells.minus_reference(ok_lin, lin, ok_sk)},
            "by_lr": {
                "network": cells.lr_table(res.group(network)),
                "logistic": cells.lr_table(res.group(())),
            },
            "trained_s": round(plumbing.trained_s(res), 1),
        }
        for shape in ("network", "logistic"):
            err = record[shape]["test_error"]["mean"]
            record[shape]["test_error"]["sampling_ci95"] = stats.sampling_ci95(err, n_test)
        boot = cells.bootstrap(ok_lin, lin, ok_net, net)
        record["logistic_minus_network"]["test_error"]["bootstrap"] = boot
        if (a, b) in REPRODUCED:
            record["reproduce"] = [
                reproduce.block(f"{a} v {b}, hidden {list(h)}, lr {c.lr:g}", cfg, res, h, c.lr)
                for h, c in ((network, net), ((), lin))
            ]
        out.append(record)
        print(
            f"{a} v {b}: test error network {cells.fmt(record['network']['test_error'])} %, "
            f"logistic {cells.fmt(record['logistic']['test_error'])} %  "
            f"({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    return out


def multiple(records: list[dict]) -> dict:
    """How many pairs' differences survive Holm and Benjamini-Hochberg
    (inference.multiple_comparisons) on the bootstrap p of logistic − network and of
    network − scikit-learn test error; and how many over-seeds t-intervals of logistic −
    network exclude 0 (no correction)."""
    out = {}
    for name, p in (
        (
            "logistic_minus_network",
            lambda r: r["logistic_minus_network"]["test_error"]["bootstrap"],
        ),
        ("network_minus_sklearn", lambda r: r["network_minus_sklearn"]["test_error"]),
    ):
        m = inference.multiple_comparisons([p(r)["p"] for r in records])
        for rule in ("holm", "benjamini_hochberg"):
            m[f"{rule}_rejects"] = [records[i]["pair"] for i in m[f"{rule}_rejects"]]
        out[name] = m
    t = [r["logistic_minus_network"]["test_error"] for r in records]
    out["logistic_minus_network"]["t_interval_over_seeds_excludes_0"] = sum(
        1
        for d in t
        if d["ci95"] is not None and np.isfinite(d["ci95"]) and abs(d["mean"]) > d["ci95"]
    )
    return out


def ranked(records: list[dict], key) -> list[dict]:
    """``records`` sorted by ``key`` descending (validation quantities only)."""
    return sorted(records, key=key, reverse=True)


def hardest(records: list[dict]) -> list[dict]:
    """Pairs by the network's mean validation error, hardest first."""
    return ranked(records, lambda r: r["network"]["val_error"]["mean"])


def hidden_matters(records: list[dict]) -> list[dict]:
    """Pairs by logistic − network validation error (paired mean), largest first."""
    return ranked(records, lambda r: r["logistic_minus_network"]["val_error"]["mean"])


def matrix(records: list[dict], value) -> np.ndarray:
    """10×10, row the larger digit, column the smaller (the lower triangle); NaN elsewhere."""
    m = np.full((10, 10), np.nan)
    for r in records:
        a, b = r["pair"]
        m[b, a] = value(r)
    return m


def draw(records: list[dict], plan: dict, path: Path) -> None:
    """pairs.png: test error of the network, of logistic regression and their paired
    difference as 10×10 heatmaps (every number printed in its square), and the five hardest
    pairs by validation with both intervals of their test error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(24, 6.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    panels = [
        ("network", lambda r: r["network"]["test_error"], "Reds",
         f"784-{plan['network'][0]}-1 network: test error (%)"),
        ("logistic", lambda r: r["logistic"]["test_error"], "Reds",
         "logistic regression: test error (%)"),
        ("diff", lambda r: r["logistic_minus_network"]["test_error"], "PuOr_r",
         "logistic − network test error (points, paired by seed)"),
    ]  # fmt: skip
    for ax, (name, summary, cmap, title) in zip(axes[:3], panels, strict=True):
        m = matrix(records, lambda r, summary=summary: 100 * summary(r)["mean"])
        h = matrix(records, lambda r, summary=summary: 100 * (summary(r)["ci95"] or np.nan))
        if name == "diff":
            lim = np.nanmax(np.abs(m)) or 1.0
            im = ax.imshow(m, cmap=cmap, vmin=-lim, vmax=lim)
        else:
            im = ax.imshow(m, cmap=cmap, vmin=0)
        dark = np.nanmax(np.abs(m)) * 0.6
        marks = {}  # the difference panel: which pairs survive Holm (**) or only BH (*)
        if name == "diff":
            survivors = multiple(records)["logistic_minus_network"]
            marks = {tuple(p): "*" for p in survivors["benjamini_hochberg_rejects"]}
            marks |= {tuple(p): "**" for p in survivors["holm_rejects"]}
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                color = "white" if abs(v) > dark else "black"
                mark = marks.get((j, i), "")
                ax.text(j, i, f"{v:.2f}{mark}\n±{h[i, j]:.2f}", ha="center", va="center",
                        fontsize=6, color=color, linespacing=0.9)  # fmt: skip
        ax.set(xticks=range(10), yticks=range(10), xlabel="digit a (Y = 1)", ylabel="digit b")
        note = (
            "\n** survives Holm, * Benjamini-Hochberg (over seeds and test digits)"
            if name == "diff"
            else ""
        )
        ax.set_title(f"{title}\nmean ± 95% over {plan['seeds']} seeds{note}", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[3]
    top = hardest(records)[:TOP]
    labels = [f"{r['pair'][0]} v {r['pair'][1]}" for r in top]
    y = np.arange(len(top))[::-1]
    for k, (shape, color) in enumerate((("network", "tab:red"), ("logistic", "tab:gray"))):
        s = [r[shape]["test_error"] for r in top]
        m = np.array([100 * v["mean"] for v in s])
        ax.errorbar(m, y + 0.15 - 0.3 * k, xerr=[100 * v["sampling_ci95"] for v in s], fmt="none",
                    ecolor=color, alpha=0.35, elinewidth=6)  # fmt: skip
        ax.errorbar(m, y + 0.15 - 0.3 * k, xerr=[100 * v["ci95"] for v in s], fmt="o",
                    color=color, capsize=3, label=shape)  # fmt: skip
        for yy, mm, v in zip(y, m, s, strict=True):
            ax.annotate(cells.fmt(v), (mm, yy + 0.15 - 0.3 * k), xytext=(4, 4),
                        textcoords="offset points", fontsize=7, color=color)  # fmt: skip
    ax.set_yticks(y, labels)
    ax.set(xlabel="test error (%): bars 95% over seeds; shade 95% test sampling")
    ax.set_title(f"the {TOP} hardest pairs (ranked on validation)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle(
        f"every digit pair, {plan['seeds']} seeds, {plan['epochs']} epochs, lr selected per "
        f"pair and shape on validation among {plan['learning_rates']}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    args = plumbing.arguments(__doc__, "runs/pairs")
    runtime.setup()
    digits = SMOKE_DIGITS if args.smoke else tuple(range(10))
    overrides = SMOKE_SET if args.smoke else ()
    plan = plumbing.plan("pairs", overrides, digits=list(digits))
    plan["network"] = next(h for h in plan["hidden_sizes"] if h)
    started = time.perf_counter()
    sklearn = plumbing.SKLEARN_SMOKE if args.smoke else {}
    records = study(digits, overrides, args.runs, sklearn)
    wall = time.perf_counter() - started
    record = {
        "question": "Which digit pairs are hard?",
        "command": "python experiments/pairs.py" + (" --smoke" if args.smoke else ""),
        "plan": plan,
        "selection": "per pair and shape, the learning rate the library selects on validation "
        "(fewest diverged seeds, then mean validation accuracy, ties validation LL); pairs "
        "ranked on validation error; test numbers for the selected cells only",
        "intervals": "ci95: 95% Student-t over seeds (n seeds that did not diverge); "
        "sampling_ci95: 1.96·sqrt(e(1−e)/n_test), the test set's own binomial noise; "
        + cells.BOOTSTRAP
        + "; network_minus_sklearn: the same bootstrap against scikit-learn's one fit",
        "multiple_comparisons": multiple(records),
        "hardest": [r["pair"] for r in hardest(records)[:TOP]],
        "hidden_matters_most": [r["pair"] for r in hidden_matters(records)[:TOP]],
        **plumbing.cost(wall, records),
        "reproduce": [r for rec in records for r in rec.pop("reproduce", [])],
        "pairs": records,
    }
    plumbing.save(args.out, "pairs", record, lambda path: draw(records, plan, path))
    print("hardest pairs (network validation error), test error % over seeds:")
    for r in hardest(records)[:TOP]:
        net, lin = r["network"]["test_error"], r["logistic"]["test_error"]
        print(
            f"  {r['pair'][0]} v {r['pair'][1]}: network {cells.fmt(net)} "
            f"(test-set ± {100 * net['sampling_ci95']:.2f}), logistic {cells.fmt(lin)}"
        )
    print("where the hidden layer matters most (logistic − network test error, points):")
    for r in hidden_matters(records)[:TOP]:
        d = r["logistic_minus_network"]["test_error"]
        b = d["bootstrap"]
        print(
            f"  {r['pair'][0]} v {r['pair'][1]}: {cells.fmt(d)} (n = {d['n']} seeds); over "
            f"seeds and digits {100 * b['diff']:.2f} [{100 * b['lo']:.2f}, "
            f"{100 * b['hi']:.2f}], p {b['p']:.2g}"
        )
    m = record["multiple_comparisons"]["logistic_minus_network"]
    print(
        f"logistic − network test error, {m['tests']} pairs: p < {m['alpha']} in "
        f"{m['unadjusted']}, Holm {m['holm']}, Benjamini-Hochberg {m['benjamini_hochberg']}"
    )
    print(f"wrote {args.out / 'pairs.json'} and pairs.png in {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(plumbing.entry(main))
