"""From a run's groups to what a researcher reads: the summary per cell (shape × traced
hyperparameters: a column for each the results depend on), the honest selection (best cell
on validation only), paired comparisons with it, the printed table and the rows of the CSV
files (deepmle.analysis.outputs writes them)."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepmle.analysis.stats import mean_ci95, paired_diff_ci95
from deepmle.config import STATIC_KEYS
from deepmle.core import hyperparams
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.metrics import DIVERGENCE_REASONS, METRICS, WORSE_THAN_INIT, Metric
from deepmle.errors import UserError
from deepmle.runs.results import GroupResult, lr_labels

SUMMARY_METRICS = tuple(m for m in METRICS if m.summary)


def hyper_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The traced hyperparameters the rows carry a column for, in schema order."""
    return [k for k in HYPERPARAMETERS if rows and k in rows[0]]


def static_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The swept static keys besides hidden_sizes the rows carry a column for (a run's groups'
    ``static``), in config order."""
    return [k for k in STATIC_KEYS if rows and k in rows[0]]


def group_label(row: dict[str, Any]) -> str:
    """'32' or '32, activation tanh': a row's group (hidden sizes and swept static keys)."""
    return ", ".join([row["hidden_sizes"], *(f"{k} {row[k]}" for k in static_keys([row]))])


def group_text(row: dict[str, Any]) -> str:
    """'hidden 32' or 'hidden 32, activation tanh': a row's group as the text prints it."""
    return f"hidden {group_label(row)}"


def cell_labels(rows: Sequence[dict[str, Any]]) -> dict[str, dict[float, str]]:
    """{name: {value: text}}: each hyperparameter's values printed with the fewest digits
    that tell them apart (``lr_labels``)."""
    return {k: lr_labels([r[k] for r in rows]) for k in hyper_keys(rows)}


def cell_text(row: dict[str, Any], labels: dict[str, dict[float, str]]) -> str:
    """'lr 0.5' or 'lr 0.5 prior_std 3': a cell's hyperparameters as the tables print them."""
    return " ".join(f"{hyperparams.label(k)} {labels[k][row[k]]}" for k in labels)


def _present(groups: Sequence[GroupResult], where: str, metrics: Sequence[Metric]) -> list[str]:
    """The names of ``metrics`` every group has (``where``: "final" or "curves"): a run saved
    before a metric existed lacks it, a run without [train] calibrate the ``calibrated`` ones."""
    return [m.name for m in metrics if all(m.name in getattr(g, where) for g in groups)]


def _diverged(g: GroupResult) -> np.ndarray:
    return g.final["diverged_epoch"] >= 0


def _stop(g: GroupResult, key: str, si: int, li: int) -> int | str:
    """A member's stopped_epoch or stopped_rung; "" when trained to the end (or a grid run)."""
    v = int(g.final[key][si, li]) if key in g.final else -1
    return v if v >= 0 else ""


def member_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed) with its final metrics (for a member stopped
    by successive halving, at its stop)."""
    rows, names = [], _present(groups, "final", METRICS)
    for g in groups:
        for si, seed in enumerate(g.seeds):
            for li in range(len(g.learning_rates)):
                d = int(g.final["diverged_epoch"][si, li])
                rows.append(
                    {
                        **g.columns,
                        **g.cell(li),
                        "seed": int(seed),
                        "diverged": d >= 0,
                        "diverged_at_epoch": d + 1 if d >= 0 else "",
                        "diverged_reason": DIVERGENCE_REASONS[
                            int(g.final["diverged_reason"][si, li])
                        ],
                        **{
                            k: float(g.final[k][si, li]) if d >= 0 and k in g.final else ""
                            for k in ("diverged_train_ll", "diverged_start_ll")
                        },
                        **{k: float(g.final[k][si, li]) for k in names},
                        "stopped_epoch": _stop(g, "stopped_epoch", si, li),
                        "stopped_rung": _stop(g, "stopped_rung", si, li),
                    }
                )
    return rows


def curve_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per (shape, learning rate, seed, epoch); epochs count from 1."""
    rows, names = [], _present(groups, "curves", METRICS)
    for g in groups:
        n_epochs = max((v.shape[2] for v in g.curves.values()), default=0)
        for si, seed in enumerate(g.seeds):
            for li in range(len(g.learning_rates)):
                for e in range(n_epochs):
                    rows.append(
                        {
                            **g.columns,
                            **g.cell(li),
                            "seed": int(seed),
                            "epoch": e + 1,
                            **{k: float(g.curves[k][si, li, e]) for k in names},
                        }
                    )
    return rows


def cell_values(g: GroupResult, li: int, metric: str) -> np.ndarray:
    """float64 [seeds]: ``metric`` of the members at learning-rate index ``li``, NaN where a
    member diverged (so pairing two cells by seed leaves it out)."""
    return np.where(_diverged(g)[:, li], np.nan, g.final[metric][:, li].astype(np.float64))


def summary_rows(groups: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """One row per cell (shape × learning rate): mean and 95% interval over the seeds that did
    not diverge (``seeds_used`` of ``seeds``), the diverged count, ``selected`` for the cell
    ``select_best`` chooses, and each cell's validation accuracy minus the selected cell's,
    paired by seed (``val_accuracy_diff_mean``/``_ci95`` over ``val_accuracy_diff_n`` pairs;
    ``indistinguishable`` when that interval holds 0; no interval under 2 pairs)."""
    rows, cells, summary = [], [], _present(groups, "final", SUMMARY_METRICS)
    for g in groups:
        for li in range(len(g.learning_rates)):
            ok = ~_diverged(g)[:, li]
            row: dict[str, Any] = {
                **g.columns,
                "depth": len(g.hidden),
                "hidden_units": sum(g.hidden),
                **g.cell(li),
                "seeds": len(g.seeds),
                "diverged": int((~ok).sum()),
                "seeds_used": int(ok.sum()),
                "stopped_epoch": _stop(g, "stopped_epoch", 0, li),
            }
            for k in summary:
                row[f"{k}_mean"], row[f"{k}_ci95"] = mean_ci95(g.final[k][ok, li])
            rows.append(row)
            cells.append(cell_values(g, li, "val_accuracy"))
    best = select_best(rows)
    for i, row in enumerate(rows):
        row["selected"] = i == best
        if best is None:
            diff, pairs = (math.nan, math.nan), 0
        elif i == best:
            diff, pairs = (0.0, 0.0), row["seeds_used"]
        else:
            diff = paired_diff_ci95(cells[i], cells[best])
            pairs = int((np.isfinite(cells[i]) & np.isfinite(cells[best])).sum())
        row["val_accuracy_diff_mean"], row["val_accuracy_diff_ci95"] = diff
        row["val_accuracy_diff_n"] = pairs
        finished = row["stopped_epoch"] == ""
        row["indistinguishable"] = (
            i != best and finished and math.isfinite(diff[1]) and bool(abs(diff[0]) <= diff[1])
        )
    return rows


SELECT_BY = ("val_accuracy", "val_ll")
"""What the selection maximises: mean validation accuracy, ties broken by validation LL."""
TIE_DIGITS = 6
"""Means are compared rounded to 6 decimals. Two cells with the same number of correct
validation digits over their seeds get float32 accuracies whose float64 means differ in the
8th digit (the float32 rounding of each seed's count / n); without the rounding that noise,
not the validation LL, would break their tie. Distinct counts differ by 1/(n·seeds), far
above 1e-6 for any validation split up to 10^5 digits × 10 seeds."""


def select_best(rows: Sequence[dict[str, Any]], by: Sequence[str] = SELECT_BY) -> int | None:
    """Index of the selected cell: among the cells trained to the last epoch (successive
    halving stops others early) that lost the fewest seeds to divergence (normally none), the
    one with the highest mean of ``by[0]`` (ties: ``by[1]``, ...; by default validation
    accuracy, then validation LL). A cell whose seeds diverged cannot win on its survivors;
    ``by`` names validation metrics only (ValueError otherwise), so test metrics play no part.
    None when every member of every such cell diverged."""
    if not by or any(not k.startswith("val_") for k in by):
        raise ValueError(f"select_best: by must name validation metrics, got {tuple(by)}")
    finished = [r.get("stopped_epoch", "") == "" for r in rows]
    alive = [
        r for r, f in zip(rows, finished, strict=True)
        if f and int(r.get("seeds_used", r["seeds"] - r["diverged"])) > 0
    ]  # fmt: skip
    if not alive:
        return None
    fewest = min(int(r["diverged"]) for r in alive)
    candidates = [
        (*(round(float(r[f"{k}_mean"]), TIE_DIGITS) for k in by), -i)
        for i, r in enumerate(rows)
        if finished[i]
        and int(r["diverged"]) == fewest
        and not math.isnan(float(r[f"{by[0]}_mean"]))
    ]
    return -max(candidates)[-1] if candidates else None


def selection_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A warning when the selected cell lost seeds (every cell did): its mean is over fewer."""
    best = next((r for r in rows if r["selected"]), None)
    if best is None or not best["diverged"]:
        return []
    label = cell_text(best, cell_labels(rows))
    return [
        f"warning: the selected cell ({group_text(best)}, {label}) lost "
        f"{best['diverged']} of {best['seeds']} seeds to divergence, as every cell lost at "
        f"least {best['diverged']}; its numbers are over the {best['seeds_used']} left"
    ]


def edge_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A line with the word "edge" when the selected value of a swept hyperparameter (one
    line per key) or the selected shape is the smallest or largest swept: the best may lie
    beyond the grid. An infinite edge (``prior_std = inf``, no prior) has no beyond."""
    best = next((r for r in rows if r["selected"]), None)
    if best is None:
        return []
    lines = []
    for k in hyper_keys(rows):
        values = sorted({r[k] for r in rows})
        v = best[k]
        if len(values) > 1 and v in (values[0], values[-1]) and math.isfinite(v):
            side = "smallest" if v == values[0] else "largest"
            lines.append(
                f"selected {hyperparams.label(k)} {lr_labels(values)[v]} is at the edge of the "
                f"grid (the {side} swept); the best may lie beyond"
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
    return f"{text} (no CI)" if math.isnan(ci) else f"{text} ± {_num(ci * scale, digits)}"


def _positive_pm(mean: float, ci: float) -> str:
    """``_pm`` of a quantity that is > 0 (a temperature): an interval reaching 0 or below is
    shown as the range it leaves, "0.49 (95% interval 0 < T <= 1.11)", never "± 0.62"."""
    if math.isnan(mean) or math.isnan(ci) or mean - ci > 0:
        return _pm(mean, ci, False)
    return f"{_num(mean)} (95% interval 0 < T <= {_num(mean + ci)})"


def _mark(r: dict[str, Any], sweep: bool) -> str:
    if r["selected"]:
        return "<- selected on validation" if sweep else ""
    if r["indistinguishable"]:
        return "≈"
    if r["val_accuracy_diff_n"] < 2 and r["seeds_used"] > 0 and sweep:
        n = r["val_accuracy_diff_n"]
        return f"? ({n} paired seed{'' if n == 1 else 's'}: no interval)"
    return ""


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The printed summary, one line per cell, a column per summary metric marked ``table``
    (the calibration metrics get ``calibration_lines`` instead). Test metrics are shown for
    the selected cell only, so that a sweep's table cannot be read as selection on the test
    set; "seeds" is how many seeds each mean is over; "≈" marks the cells whose
    validation accuracy cannot be told apart from the selected one's, "?" those with too few
    seeds to compare. Cells stopped by successive halving are left out (selection is among
    the cells trained to the end)."""
    sweep = len(rows) > 1
    stopped = sum(r.get("stopped_epoch", "") != "" for r in rows)
    rows = [r for r in rows if r.get("stopped_epoch", "") == ""]
    shown = [m for m in SUMMARY_METRICS if m.table and rows and f"{m.name}_mean" in rows[0]]
    keys, statics = hyper_keys(rows), static_keys(rows)
    header = ("hidden", *statics, *map(hyperparams.label, keys), "seeds",
              *(m.label for m in shown), "")  # fmt: skip
    lines = [header]
    labels = cell_labels(rows)
    for r in rows:
        sel = r["selected"]
        used = r["seeds"] - r["diverged"]
        cells = [
            _pm(r[f"{m.name}_mean"], r[f"{m.name}_ci95"], m.percent) if sel or not m.is_test else ""
            for m in shown
        ]
        seeds = f"{used}" if not r["diverged"] else f"{used} of {r['seeds']}"
        values = (labels[k][r[k]] for k in keys)
        groups = (str(r[k]) for k in statics)
        lines.append((r["hidden_sizes"], *groups, *values, seeds, *cells, _mark(r, sweep)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    text.append(
        "mean ± 95% t half-width over the seeds column: diverged seeds left out, no CI under 2"
    )
    text.append("LL: the mean log-likelihood per digit (eq. 3 sums it over the digits)")
    if sweep and any(r["selected"] for r in rows):  # every member diverged: none selected
        text.append(
            "selected: best mean validation accuracy among the cells that lost the fewest seeds"
        )
    if stopped:
        text.append(f"{stopped} more cells stopped early by the search (rungs below)")
    if sweep and any(r["indistinguishable"] for r in rows):
        text.append(
            "≈: validation accuracy within the 95% interval of the selected, paired by seed"
        )
    return "\n".join(text)


def calibration_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The selected cell's proper scores and calibration on the test split, one line (and one
    more after temperature scaling, if fitted): Brier, ECE beside its reference, LL. A score
    the run lacks (saved before it existed) is left out; none at all, no line."""
    best = next((r for r in rows if r["selected"]), None)
    if best is None or "test_ece_mean" not in best:
        return []

    def scores(suffix: str) -> str:
        parts = (("Brier {}", "test_brier"), ("ECE {}", "test_ece"),
                 ("(labels drawn from ŷ: {})", "test_ece_reference"),
                 ("LL/example {}", "test_ll"))  # fmt: skip
        held = [(text, f"{k}{suffix}") for text, k in parts if f"{k}{suffix}_mean" in best]
        shown = [text.format(_pm(best[f"{k}_mean"], best[f"{k}_ci95"], False)) for text, k in held]
        return ", ".join(shown).replace(", (", " (")

    lines = [f"selected cell, test split: {scores('')}"]
    if "temperature_mean" in best:
        t = _positive_pm(best["temperature_mean"], best["temperature_ci95"])
        lines.append(f"after temperature scaling (T {t}, fitted on validation): {scores('_ts')}")
    return lines


def _worse_lls(g: GroupResult, li: int, which: np.ndarray) -> str:
    """' (train LL -3.41 vs -0.72 at init, ...)': what tripped the guard, per seed ``which``
    [seeds] (members.csv has every value)."""
    if "diverged_train_ll" not in g.final:
        return ""
    ll, start = g.final["diverged_train_ll"][which, li], g.final["diverged_start_ll"][which, li]
    if not np.isfinite(ll).any():
        return ""
    pairs = ", ".join(f"{a:.2f} vs {b:.2f}" for a, b in zip(ll[:3], start[:3], strict=True))
    return f" (train LL {pairs}{', ...' if ll.size > 3 else ''} at init)"


def divergence_lines(groups: Sequence[GroupResult]) -> list[str]:
    """One line per cell with a diverged seed: how many of how many, at which epochs and why
    (members.csv names each seed)."""
    lines = []
    labels = cell_labels([g.cell(li) for g in groups for li in range(len(g.learning_rates))])
    for g in groups:
        for li in range(len(g.learning_rates)):
            at, why = g.final["diverged_epoch"][:, li], g.final["diverged_reason"][:, li]
            bad = at >= 0
            if not bad.any():
                continue
            first, last = int(at[bad].min()) + 1, int(at[bad].max()) + 1
            epochs = f"epoch {first}" if first == last else f"epochs {first}-{last}"
            reasons = "; ".join(
                f"{int((why[bad] == r).sum())} {DIVERGENCE_REASONS[r]}"
                + (_worse_lls(g, li, why == r) if r == WORSE_THAN_INIT else "")
                for r in sorted({int(r) for r in why[bad]})
            )
            lines.append(
                f"{group_text(g.columns)}, {cell_text(g.cell(li), labels)}: "
                f"{int(bad.sum())} of "
                f"{len(g.seeds)} seeds diverged at {epochs} ({reasons}); frozen, left out of its "
                "numbers (members.csv names them)"
            )
    return lines


def rung_lines(rungs: Sequence[dict[str, Any]]) -> list[str]:
    """'rung 1 at epoch 3: kept 22 of 64 cells, cutoff val LL -0.0510' per ranking rung, then
    the member-epochs trained against the full grid's."""
    lines = [
        f"rung {r['rung']} at epoch {r['epoch']}: kept {r['cells_kept']} of "
        f"{r['cells_ranked']} cells, cutoff val LL {_num(float(r['cutoff_val_ll']))}"
        for r in rungs
        if r["cutoff_val_ll"] != ""
    ]
    if rungs:
        done, grid = rungs[-1]["member_epochs"], rungs[-1]["grid_member_epochs"]
        lines.append(
            f"the search trained {done} member-epochs, {100 * done / grid:.1f}% of the "
            f"full grid's {grid}; {rungs[-1]['cells_kept']} cells to the last epoch"
        )
    return lines


def _near(a: float, b: float) -> bool:
    """Within 1% (equal for 0 and inf): how ``explain`` matches a value typed by hand."""
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 0.01 * abs(b))


def explain(results: Any, hidden: str, cell: dict[str, float] | float) -> list[str]:
    """Why a cell (``hidden``: its group's name as 'h32' or 'h32-tanh', or '32'; ``cell`` its
    hyperparameters {name: value}, each matched within 1%, as many as tell it apart from the
    group's other cells, or a bare learning rate) continued or stopped at each rung of a
    successive-halving run: its rank and mean validation LL against the cutoff. UserError
    naming what is not there."""
    cell = cell if isinstance(cell, dict) else {"learning_rate": cell}
    for k, v in cell.items():
        if k == "learning_rate" and not (math.isfinite(v) and v > 0):
            raise UserError(f"deepmle explain: lr must be a positive finite number, got {v!r}")
    name = hidden if hidden.startswith("h") else "h" + hidden
    group = next((g for g in results.groups if g.name == name), None)
    if group is None:
        names = ", ".join(sorted(g.name for g in results.groups))
        raise UserError(f"deepmle explain: no group {hidden} in this run (it has {names})")
    rows = [r for r in results.summary if group.matches(r)]
    keys = hyper_keys(rows)
    for k in cell:
        if k not in keys:
            have = ", ".join(map(hyperparams.label, keys))
            raise UserError(f"deepmle explain: this run's cells have no {k} (they have {have})")
    labels = cell_labels(rows)
    match = [r for r in rows if all(_near(r[k], v) for k, v in cell.items())]
    given = " ".join(f"{hyperparams.label(k)} {v:g}" for k, v in cell.items())
    if not match:
        raise UserError(f"deepmle explain: {name} has no cell within 1% of {given}")
    if len(match) > 1:
        apart = [k for k in keys if len({r[k] for r in match}) > 1]
        options = "; ".join(cell_text(r, labels) for r in match[:6])
        raise UserError(f"deepmle explain: {name} {given} is {len(match)} cells ({options}"
                        f"{'; ...' if len(match) > 6 else ''}): give {', '.join(apart)} too, "
                        f"e.g. {hyperparams.label(apart[0])}=VALUE")  # fmt: skip
    row = match[0]
    label = f"{name} {cell_text(row, labels)}"
    decisions = [
        d for d in results.decisions if group.matches(d) and all(d.get(k) == row[k] for k in keys)
    ]
    if not results.rungs:
        return [f"{label}: a grid run; every cell trained to the last epoch"]
    lines, rungs = [], results.rungs
    for d in decisions:
        val, cutoff = d["val_ll"], d["cutoff_val_ll"]
        if math.isfinite(val) or math.isfinite(cutoff):
            side = ">=" if val >= cutoff else "<"
            compared = f"{_num(val)} {side} cutoff {_num(cutoff)}"
        else:
            compared = f"{_num(val)}, and no cell was finite"
        never = "" if math.isfinite(val) else " (a cell with a diverged seed never continues)"
        verdict = "kept" if d["kept"] else "stopped here"
        lines.append(
            f"{label}: rung {d['rung']} at epoch {d['epoch']}: rank {d['rank']} of {d['of']} "
            f"by mean validation LL over seeds, {compared} (the best "
            f"{rungs[d['rung']]['cells_kept']} of {d['of']} continue): {verdict}{never}"
        )
    if row["stopped_epoch"] == "":
        last = results.rungs[-1]["epoch"]
        chosen = "; selected on validation" if row["selected"] else ""
        lines.append(f"{label}: trained to the last epoch ({last}){chosen}")
    return lines
