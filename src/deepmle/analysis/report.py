"""From a run's groups to what a researcher reads: the summary per cell (shape × learning
rate), the honest selection (best cell on validation only), paired comparisons with it, the
printed table and the rows of the CSV files (deepmle.analysis.outputs writes them)."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepmle.analysis.stats import mean_ci95, paired_diff_ci95
from deepmle.core.member import DIVERGENCE_REASONS
from deepmle.runs.results import (
    FINAL_METRICS,
    TEMPERATURE_METRICS,
    GroupResult,
    hidden_label,
    lr_labels,
)

SUMMARY_METRICS = (
    *("train_ll", "val_ll", "val_accuracy", "test_accuracy"),
    *("test_ll", "test_brier", "test_ece", "test_ece_reference", *TEMPERATURE_METRICS),
)
MEMBER_METRICS = tuple(k for k in FINAL_METRICS if not k.startswith("diverged"))


def _calibrated(groups: Sequence[GroupResult]) -> bool:
    """Whether the run fitted temperatures (otherwise their columns are left out)."""
    return any(np.isfinite(g.final.get("temperature", np.nan)).any() for g in groups)


def _metrics(names: Sequence[str], groups: Sequence[GroupResult]) -> tuple[str, ...]:
    """The ``names`` every group holds, the temperature ones only if fitted."""
    keep = _calibrated(groups)
    held = [k for k in names if all(k in g.final for g in groups)]
    return tuple(k for k in held if keep or k not in TEMPERATURE_METRICS)


def _diverged(g: GroupResult) -> np.ndarray:
    return g.final["diverged_epoch"] >= 0


def member_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed) with its final metrics."""
    rows, metrics = [], _metrics(MEMBER_METRICS, groups)
    for g in groups:
        for si, seed in enumerate(g.seeds):
            for li, lr in enumerate(g.learning_rates):
                d = int(g.final["diverged_epoch"][si, li])
                rows.append(
                    {
                        "hidden_sizes": hidden_label(g.hidden),
                        "learning_rate": float(lr),
                        "seed": int(seed),
                        "diverged": d >= 0,
                        "diverged_at_epoch": d + 1 if d >= 0 else "",
                        "diverged_reason": DIVERGENCE_REASONS[
                            int(g.final["diverged_reason"][si, li])
                        ],
                        **{k: float(g.final[k][si, li]) for k in metrics},
                    }
                )
    return rows


def curve_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed, epoch); epochs count from 1."""
    rows = []
    for g in groups:
        for si, seed in enumerate(g.seeds):
            for li, lr in enumerate(g.learning_rates):
                for e in range(g.curves["train_ll"].shape[2]):
                    rows.append(
                        {
                            "hidden_sizes": hidden_label(g.hidden),
                            "learning_rate": float(lr),
                            "seed": int(seed),
                            "epoch": e + 1,
                            **{k: float(v[si, li, e]) for k, v in g.curves.items()},
                        }
                    )
    return rows


def _valid(g: GroupResult, li: int, metric: str) -> np.ndarray:
    """[seeds] values of ``metric`` at learning-rate index ``li``, NaN where diverged."""
    return np.where(_diverged(g)[:, li], np.nan, g.final[metric][:, li].astype(np.float64))


def summary_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per cell (shape × learning rate): mean and 95% interval over the seeds that did
    not diverge, the diverged count, ``selected`` for the best cell on validation, and each
    cell's validation accuracy minus the selected cell's, paired by seed
    (``val_accuracy_diff_mean``/``_ci95``; ``indistinguishable`` when that interval holds 0)."""
    rows, cells, metrics = [], [], _metrics(SUMMARY_METRICS, groups)
    for g in groups:
        for li, lr in enumerate(g.learning_rates):
            ok = ~_diverged(g)[:, li]
            row: dict[str, Any] = {
                "hidden_sizes": hidden_label(g.hidden),
                "depth": len(g.hidden),
                "hidden_units": sum(g.hidden),
                "learning_rate": float(lr),
                "seeds": len(g.seeds),
                "diverged": int((~ok).sum()),
            }
            for k in metrics:
                row[f"{k}_mean"], row[f"{k}_ci95"] = mean_ci95(g.final[k][ok, li])
            rows.append(row)
            cells.append(_valid(g, li, "val_accuracy"))
    best = select_best(rows)
    for i, row in enumerate(rows):
        row["selected"] = i == best
        if best is None:
            diff = (math.nan, math.nan)
        elif i == best:
            diff = (0.0, 0.0)
        else:
            diff = paired_diff_ci95(cells[i], cells[best])
        row["val_accuracy_diff_mean"], row["val_accuracy_diff_ci95"] = diff
        row["indistinguishable"] = i != best and bool(abs(diff[0]) <= diff[1])
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


def edge_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A line with the word "edge" when the selected learning rate or shape is the smallest
    or largest swept: the best may lie beyond the grid."""
    best = next((r for r in rows if r["selected"]), None)
    if best is None:
        return []
    lines = []
    lrs = sorted({r["learning_rate"] for r in rows})
    if len(lrs) > 1 and best["learning_rate"] in (lrs[0], lrs[-1]):
        side = "smallest" if best["learning_rate"] == lrs[0] else "largest"
        lines.append(
            f"selected lr {lr_labels(lrs)[best['learning_rate']]} is at the edge of the grid "
            f"(the {side} "
            "swept); the best may lie beyond"
        )
    size = {r["hidden_sizes"]: (r["hidden_units"], r["depth"]) for r in rows}
    shapes = sorted(size, key=size.__getitem__)
    if len(shapes) > 1 and best["hidden_sizes"] in (shapes[0], shapes[-1]):
        side = "smallest" if best["hidden_sizes"] == shapes[0] else "largest"
        lines.append(
            f"selected hidden sizes {best['hidden_sizes']} are at the edge of the grid (the "
            f"{side} swept); the best may lie beyond"
        )
    return lines


def _num(x: float, digits: int = 4) -> str:
    """Fixed point for ordinary magnitudes, scientific for very large or very small ones."""
    if not math.isfinite(x):
        return str(x)
    if x != 0 and not 1e-4 <= abs(x) < 1e4:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def _pm(mean: float, ci: float, percent: bool) -> str:
    if math.isnan(mean):
        return "—"
    scale, digits = (100.0, 2) if percent else (1.0, 4)
    text = _num(mean * scale, digits)
    return text if math.isnan(ci) else f"{text} ± {_num(ci * scale, digits)}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The printed summary, one line per cell. Test accuracy is shown for the selected cell
    only, so that a sweep's table cannot be read as selection on the test set; "≈" marks the
    cells whose validation accuracy cannot be told apart from the selected one's."""
    sweep = len(rows) > 1
    header = ("hidden", "lr", "diverged", "train LL", "val LL", "val acc %", "test acc %", "")
    lines = [header]
    label = lr_labels([r["learning_rate"] for r in rows])
    for r in rows:
        sel = r["selected"]
        mark = (
            "<- selected on validation"
            if sel and sweep
            else ("≈" if r["indistinguishable"] else "")
        )
        lines.append(
            (
                r["hidden_sizes"],
                label[r["learning_rate"]],
                f"{r['diverged']}/{r['seeds']}",
                _pm(r["train_ll_mean"], r["train_ll_ci95"], False),
                _pm(r["val_ll_mean"], r["val_ll_ci95"], False),
                _pm(r["val_accuracy_mean"], r["val_accuracy_ci95"], True),
                _pm(r["test_accuracy_mean"], r["test_accuracy_ci95"], True) if sel else "",
                mark,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    n = rows[0]["seeds"] if rows else 0
    text.append(f"mean ± 95% t half-width over {n} seeds; diverged seeds excluded")
    if sweep and any(r["indistinguishable"] for r in rows):
        text.append(
            "≈: validation accuracy within the 95% interval of the selected, paired by seed"
        )
    return "\n".join(text)


def calibration_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The selected cell's proper scores and calibration on the test split, one line (and one
    more after temperature scaling, if fitted): Brier, ECE beside its reference, LL."""
    best = next((r for r in rows if r["selected"]), None)
    if best is None or "test_ece_mean" not in best:
        return []

    def scores(suffix: str) -> str:
        m = lambda k: _pm(best[f"{k}{suffix}_mean"], best[f"{k}{suffix}_ci95"], False)  # noqa: E731
        return (
            f"Brier {m('test_brier')}, ECE {m('test_ece')} (labels drawn from ŷ: "
            f"{m('test_ece_reference')}), LL/example {m('test_ll')}"
        )

    lines = [f"selected cell, test split: {scores('')}"]
    if "temperature_mean" in best:
        t = _pm(best["temperature_mean"], best["temperature_ci95"], False)
        lines.append(f"after temperature scaling (T {t}, fitted on validation): {scores('_ts')}")
    return lines


def divergence_lines(groups: Sequence[GroupResult]) -> list[str]:
    """'hidden 32, lr 3: seeds 0, 5 diverged at epochs 2, 4 (...)' for each cell with a
    diverged seed."""
    lines = []
    label = lr_labels([lr for g in groups for lr in g.learning_rates])
    for g in groups:
        for li, lr in enumerate(g.learning_rates):
            at, why = g.final["diverged_epoch"][:, li], g.final["diverged_reason"][:, li]
            bad = [
                (int(s), int(e) + 1, DIVERGENCE_REASONS[int(r)])
                for s, e, r in zip(g.seeds, at, why, strict=True)
                if e >= 0
            ]
            if bad:
                lines.append(
                    f"hidden {hidden_label(g.hidden)}, lr {label[float(lr)]}: "
                    + ", ".join(f"seed {s} diverged at epoch {e} ({r})" for s, e, r in bad)
                    + "; frozen at its last good epoch"
                )
    return lines
