"""From a run's group results to what a researcher reads: CSV tables, params.npz, the printed
summary, and the honest selection (best cell on validation; its test accuracy beside it)."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepmle import results
from deepmle.stats import mean_ci95
from deepmle.sweep import GroupResult, group_name

SUMMARY_METRICS = ("train_ll", "val_ll", "val_accuracy", "test_accuracy")


def _hidden_label(hidden: Sequence[int]) -> str:
    return "-".join(str(w) for w in hidden)


def member_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed) with its final metrics."""
    rows = []
    for g in groups:
        for si, seed in enumerate(g.seeds):
            for li, lr in enumerate(g.learning_rates):
                d = int(g.final["diverged_epoch"][si, li])
                rows.append(
                    {
                        "hidden_sizes": _hidden_label(g.hidden),
                        "learning_rate": float(lr),
                        "seed": int(seed),
                        "diverged": d >= 0,
                        "diverged_at_epoch": d + 1 if d >= 0 else "",
                        **{
                            k: float(g.final[k][si, li])
                            for k in (
                                "train_ll",
                                "train_accuracy",
                                "val_ll",
                                "val_accuracy",
                                "test_ll",
                                "test_accuracy",
                            )
                        },
                    }
                )
    return rows


def curve_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed, epoch); epochs count from 1."""
    rows = []
    for g in groups:
        epochs = g.curves["train_ll"].shape[0]
        for si, seed in enumerate(g.seeds):
            for li, lr in enumerate(g.learning_rates):
                for e in range(epochs):
                    rows.append(
                        {
                            "hidden_sizes": _hidden_label(g.hidden),
                            "learning_rate": float(lr),
                            "seed": int(seed),
                            "epoch": e + 1,
                            **{k: float(v[e, si, li]) for k, v in g.curves.items()},
                        }
                    )
    return rows


def summary_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per cell (shape × learning rate): mean and 95% interval over the seeds that
    did not diverge, the diverged count, and ``selected`` for the best cell on validation."""
    rows = []
    for g in groups:
        for li, lr in enumerate(g.learning_rates):
            ok = g.final["diverged_epoch"][:, li] < 0
            row: dict[str, Any] = {
                "hidden_sizes": _hidden_label(g.hidden),
                "depth": len(g.hidden),
                "learning_rate": float(lr),
                "seeds": len(g.seeds),
                "diverged": int((~ok).sum()),
            }
            for k in SUMMARY_METRICS:
                mean, ci = mean_ci95(g.final[k][ok, li])
                row[f"{k}_mean"], row[f"{k}_ci95"] = mean, ci
            rows.append(row)
    best = select_best(rows)
    for i, row in enumerate(rows):
        row["selected"] = i == best
    return rows


def select_best(rows: Sequence[dict[str, Any]]) -> int | None:
    """Index of the cell with the highest mean validation accuracy (ties: higher validation LL).
    Test metrics play no part. None when every member of every cell diverged."""
    candidates = [
        (float(r["val_accuracy_mean"]), float(r["val_ll_mean"]), -i)
        for i, r in enumerate(rows)
        if not math.isnan(float(r["val_accuracy_mean"]))
    ]
    return -max(candidates)[2] if candidates else None


def write(run_dir: Path, groups: Sequence[GroupResult], meta: dict[str, Any]) -> list[dict]:
    """summary.csv, members.csv, curves.csv, params.npz and meta.json; returns the summary rows."""
    summary = summary_rows(groups)
    results.write_csv(run_dir / "members.csv", member_rows(groups))
    results.write_csv(run_dir / "curves.csv", curve_rows(groups))
    arrays = {}
    for g in groups:
        name = group_name(g.hidden)
        arrays[f"{name}/seeds"] = g.seeds
        arrays[f"{name}/learning_rates"] = g.learning_rates
        for i, layer in enumerate(g.params):
            arrays |= {f"{name}/layer{i}/{k}": v for k, v in layer.items()}
    results.write_npz(run_dir / "params.npz", arrays)
    results.write_json(run_dir / "meta.json", meta)
    results.write_csv(run_dir / "summary.csv", summary)
    return summary


def _pm(mean: float, ci: float, percent: bool) -> str:
    scale, fmt = (100.0, "{:.2f}") if percent else (1.0, "{:.4f}")
    if math.isnan(mean):
        return "—"
    text = fmt.format(mean * scale)
    return text if math.isnan(ci) else f"{text} ± {fmt.format(ci * scale)}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The printed summary: one line per cell. Test accuracy is shown for the selected cell
    only, so that a sweep's table cannot be read as selection on the test set."""
    header = ("hidden", "lr", "diverged", "train LL", "val LL", "val acc %", "test acc %", "")
    lines = [header]
    for r in rows:
        sel = r["selected"]
        lines.append(
            (
                r["hidden_sizes"],
                f"{r['learning_rate']:g}",
                f"{r['diverged']}/{r['seeds']}",
                _pm(r["train_ll_mean"], r["train_ll_ci95"], False),
                _pm(r["val_ll_mean"], r["val_ll_ci95"], False),
                _pm(r["val_accuracy_mean"], r["val_accuracy_ci95"], True),
                _pm(r["test_accuracy_mean"], r["test_accuracy_ci95"], True) if sel else "",
                "<- selected on validation" if sel and len(rows) > 1 else "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    n = rows[0]["seeds"] if rows else 0
    text.append(
        f"(mean ± half-width of the 95% t-interval over {n} seeds; diverged seeds excluded)"
    )
    return "\n".join(text)


def divergence_lines(groups: Sequence[GroupResult]) -> list[str]:
    """'hidden 32, lr 3: seeds 0, 5 diverged at epochs 2, 4' for each cell with a diverged seed."""
    lines = []
    for g in groups:
        for li, lr in enumerate(g.learning_rates):
            at = g.final["diverged_epoch"][:, li]
            bad = [(int(s), int(e) + 1) for s, e in zip(g.seeds, at, strict=True) if e >= 0]
            if bad:
                lines.append(
                    f"hidden {_hidden_label(g.hidden)}, lr {float(lr):g}: "
                    + ", ".join(f"seed {s} diverged at epoch {e}" for s, e in bad)
                    + " (frozen at its last finite parameters)"
                )
    return lines
