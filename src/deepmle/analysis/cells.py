"""One shape's selected cell and its members' numbers: what a study compares between shapes.

A *cell* is one (hidden sizes, learning rate) of a run; its *members* are one per seed. The
selection is ``report.select_best``'s: among a shape's learning rates that lost the fewest
seeds to divergence, the highest mean validation accuracy (or another validation metric); test
metrics are reported for the selected cell only. A diverged member is NaN in its cell's values,
so it is left out of the cell's means (``diverged`` says how many) and of paired differences.

- ``Cell``, ``cell``, ``select``: a cell's per-seed values [seeds] and their summaries.
- ``paired``: a − b of two cells over seeds (Student-t); ``bootstrap`` and ``minus_reference``:
  over seeds and test digits (``inference.paired_bootstrap``).
- ``logits``, ``correct``: a cell's members on a split, from their saved params.
- ``lr_table``: what the selection saw; ``pair_config``, ``grid``: what a study trains.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepmle import config as config_lib
from deepmle.analysis import inference, report, stats
from deepmle.core.metrics import DIVERGENCE
from deepmle.core.types import Split
from deepmle.runs.results import GroupResult


class AllDiverged(Exception):
    """Every learning rate of a shape lost every seed: there is no cell to select."""


class Cell(NamedTuple):
    """One shape's learning rate and its members' final metrics.

    ``values[metric]`` is float64 [seeds], NaN for a member that diverged, so two cells of one
    run are paired by seed index: members that share a seed share its minibatch order.
    ``values`` also holds ``val_error`` and ``test_error`` (1 − accuracy)."""

    hidden: tuple[int, ...]
    lr: float
    lr_at_edge: bool
    seeds: int
    diverged: int
    values: dict[str, np.ndarray]

    def summary(self, metric: str) -> dict[str, float]:
        """Mean and 95% t half-width over the members that did not diverge, and their n."""
        v = self.values[metric]
        mean, ci = stats.mean_ci95(v[np.isfinite(v)])
        return {"mean": mean, "ci95": ci, "n": int(np.isfinite(v).sum())}

    def record(self, metrics: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: the selection and each metric's summary."""
        return {
            "hidden_sizes": list(self.hidden),
            "selected_lr": self.lr,
            "selected_lr_at_edge": self.lr_at_edge,
            "seeds": self.seeds,
            "diverged_seeds": self.diverged,
            **{m: self.summary(m) for m in metrics},
        }


def cell(group: GroupResult, li: int) -> Cell:
    """The cell of ``group`` at learning-rate index ``li``: every final metric but the
    divergence records, [seeds] each (``report.cell_values``)."""
    values = {k: report.cell_values(group, li, k) for k in group.final if k not in DIVERGENCE}
    for split in ("val", "test"):  # error rates read more easily than accuracies near 100%
        values[f"{split}_error"] = 1.0 - values[f"{split}_accuracy"]
    lrs = [float(x) for x in group.learning_rates]
    lr = lrs[li]
    edge = len(lrs) > 1 and lr in (min(lrs), max(lrs))
    diverged = int((group.final["diverged_epoch"][:, li] >= 0).sum())
    return Cell(tuple(group.hidden), lr, edge, len(group.seeds), diverged, values)


def select(group: GroupResult, by: Sequence[str] = report.SELECT_BY) -> Cell:
    """The cell of ``group`` (one shape) whose learning rate ``report.select_best`` selects on
    the validation metrics ``by``; AllDiverged when every member diverged."""
    best = report.select_best(report.summary_rows([group]), by)
    if best is None:
        raise AllDiverged(
            f"every seed of hidden sizes {list(group.hidden)} diverged at every learning rate "
            f"{[float(x) for x in group.learning_rates]}: no cell to select; try smaller ones"
        )
    return cell(group, best)


def paired(a: Cell, b: Cell, metric: str) -> dict[str, float]:
    """a − b of ``metric`` paired by seed, over the seeds where neither diverged: mean, 95%
    t half-width (``stats.paired_diff_ci95``) and n."""
    mean, ci = stats.paired_diff_ci95(a.values[metric], b.values[metric])
    n = int((np.isfinite(a.values[metric]) & np.isfinite(b.values[metric])).sum())
    return {"mean": mean, "ci95": ci, "n": n}


def logits(group: GroupResult, c: Cell, x: np.ndarray, activation: str) -> np.ndarray:
    """z [S, n] of the members of cell ``c`` of ``group`` (one per seed, diverged ones
    included) on x [n, n_inputs], from their saved params (``inference.predictions``)."""
    li = int(np.flatnonzero(np.asarray(group.learning_rates, np.float64) == c.lr)[0])
    one = group._replace(
        learning_rates=group.learning_rates[li : li + 1],
        params=[{k: v[:, li : li + 1] for k, v in layer.items()} for layer in group.params],
    )
    return inference.predictions(one, x, activation)[:, 0]


def correct(group: GroupResult, c: Cell, split: Split, activation: str) -> np.ndarray:
    """bool [S, n]: which digits of ``split`` each member of cell ``c`` classifies right
    (ŷ > 1/2 against y, as the library's accuracy)."""
    return (logits(group, c, split.x, activation) > 0) == (np.asarray(split.y) > 0.5)


BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP = (
    "bootstrap: a − b of test error with a percentile 95% interval (lo, hi) and two-sided p, "
    f"from {BOOTSTRAP_DRAWS} joint resamples of the seeds and the test digits, the same for "
    "both cells (deepmle.analysis.inference.paired_bootstrap); seeds where either diverged "
    "are left out"
)
"""What ``bootstrap`` does, in words a study's JSON can carry."""


def bootstrap(correct_a: np.ndarray, a: Cell, correct_b: np.ndarray, b: Cell) -> dict[str, Any]:
    """a − b of test error (correct_a, correct_b bool [S, n] on the test digits) paired over
    seeds and digits (BOOTSTRAP), over the seeds where neither diverged; JSON-ready."""
    valid = np.isfinite(a.values["test_error"]) & np.isfinite(b.values["test_error"])
    r = inference.paired_bootstrap(correct_a, correct_b, valid=valid, draws=BOOTSTRAP_DRAWS)
    return r._asdict()


def minus_reference(correct_a: np.ndarray, a: Cell, reference: np.ndarray) -> dict[str, Any]:
    """a − a deterministic reference's test error (correct_a bool [S, n], reference bool [n]:
    another library's one fit), paired by digit: BOOTSTRAP with the reference standing for
    every seed, over the seeds of ``a`` that did not diverge; JSON-ready."""
    same = np.broadcast_to(reference, correct_a.shape)
    valid = np.isfinite(a.values["test_error"])
    r = inference.paired_bootstrap(correct_a, same, valid=valid, draws=BOOTSTRAP_DRAWS)
    return r._asdict()


def lr_table(group: GroupResult) -> list[dict[str, Any]]:
    """Every learning rate of one shape: its diverged seeds and mean validation accuracy and
    LL (what the selection saw), with the selected one marked."""
    return [
        {
            "lr": r["learning_rate"],
            "diverged_seeds": r["diverged"],
            "seeds_used": r["seeds_used"],
            "val_accuracy_mean": r["val_accuracy_mean"],
            "val_accuracy_ci95": r["val_accuracy_ci95"],
            "val_ll_mean": r["val_ll_mean"],
            "val_ll_ci95": r["val_ll_ci95"],
            "selected": r["selected"],
        }
        for r in report.summary_rows([group])
    ]


def pair_config(path: Path, pair: Sequence[int], overrides: Sequence[str]) -> config_lib.Config:
    """The config file ``path`` with its digits replaced by ``pair`` (a, b) and ``overrides``
    applied after."""
    a, b = pair
    return config_lib.load(path, [f"data.digits=[{a}, {b}]", *overrides])


def grid(cfg: config_lib.Config) -> dict[str, Any]:
    """What ``cfg`` trains, JSON-ready: its shapes, learning rates, seeds and epochs."""
    return {
        "hidden_sizes": [list(h) for h in cfg.model.hidden_sizes],
        "learning_rates": list(cfg.train.learning_rate),
        "seeds": cfg.train.seeds,
        "epochs": cfg.train.epochs,
    }


def fmt(s: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    """'m ± h' of a ``Cell.summary`` or ``paired``, ×``scale`` (percent points by default)."""
    mean = round(scale * s["mean"], digits) + 0.0  # never "-0.00"
    return f"{mean:.{digits}f} ± {scale * s['ci95']:.{digits}f}"
