"""What is measured, defined once: every writer and reader of metrics iterates over METRICS.

A metric is computed by ``deepmle.core.member`` (``end_epoch`` for a curve, ``final`` for a
final-only metric) and described by one row here: results save and load it, the report puts
it in members.csv, curves.csv, summary.csv and the table, TensorBoard and the plots show it.
Adding a metric is computing it and adding its row. A run saved before a metric existed
still loads, without it; a metric ``final`` does not compute for a run (the ``calibrated``
rows, without [train] calibrate = "temperature") is absent from its files and its tables,
never a column of NaN.
"""

from typing import Literal, NamedTuple


class Metric(NamedTuple):
    """One measured quantity of a member.

    ``measured``: "curve" metrics are measured at the end of every epoch (a curve [epochs])
    and their last value is also final; "final" metrics only once, after the last epoch.
    ``percent``: shown ×100 with a "%" (accuracies). ``label``: its column and axis title.
    ``summary``: mean ± 95% interval per cell in summary.csv and the table (a test metric
    is printed for the cell selected on validation only); ``table``: a summary metric that is
    also a column of the printed table (the others are summary.csv's only, or a line of
    their own: the calibration line of deepmle.analysis.report). ``tensorboard``: exported
    as a curve (mean over healthy seeds) and as an HParams metric. ``calibrated``: measured
    only by a run that fits a temperature ([train] calibrate = "temperature").
    """

    name: str
    measured: Literal["curve", "final"]
    label: str
    percent: bool = False
    summary: bool = False
    tensorboard: bool = False
    table: bool = True
    calibrated: bool = False

    @property
    def is_test(self) -> bool:
        """Measured on the test split: never used to select, shown beside the selection only."""
        return self.name.startswith("test_")


METRICS = (
    Metric("train_ll", "curve", "train LL", summary=True, tensorboard=True),
    Metric("train_accuracy", "curve", "train acc %", percent=True),
    Metric("val_ll", "curve", "val LL", summary=True, tensorboard=True),
    Metric("val_accuracy", "curve", "val acc %", percent=True, summary=True, tensorboard=True),
    Metric("test_ll", "final", "test LL", summary=True, table=False),
    Metric("test_accuracy", "final", "test acc %", percent=True, summary=True),
    # Is ŷ a probability? (deepmle.core.calibration; the report's calibration line)
    Metric("test_brier", "final", "test Brier", summary=True, table=False),
    Metric("test_ece", "final", "test ECE", summary=True, table=False),
    Metric("test_ece_reference", "final", "test ECE ref", summary=True, table=False),
    # ... and after temperature scaling: T fitted on validation, the test metrics of σ(z / T)
    *(
        Metric(name, "final", label, summary=True, table=False, calibrated=True)
        for name, label in (
            ("temperature", "T"),
            ("test_ll_ts", "test LL (T)"),
            ("test_brier_ts", "test Brier (T)"),
            ("test_ece_ts", "test ECE (T)"),
            ("test_ece_reference_ts", "test ECE ref (T)"),
        )
    ),
)
BY_NAME = {m.name: m for m in METRICS}
CURVES = tuple(m for m in METRICS if m.measured == "curve")
"""The metrics with a curve [epochs]; every metric has a final value."""

HEALTHY, NON_FINITE, WORSE_THAN_INIT = 0, 1, 2
"""Why a member stopped: the final ``diverged_reason``."""
DIVERGENCE_REASONS = (
    "",
    "non-finite LL or parameter",
    "train LL far below its initial value",
)
"""The words for each ``diverged_reason`` code, as the report prints them."""
DIVERGENCE = ("diverged_epoch", "diverged_reason", "diverged_train_ll", "diverged_start_ll")
"""Final per-member records beside the metrics: the 0-based epoch that diverged (-1: never),
its reason code, and the two LLs the guard compared (that epoch's mean train LL and the same
examples' LL at initialisation; NaN if it never diverged)."""

STOP_METRICS = ("stopped_epoch", "stopped_rung")
"""Final entries of a searched run only ([seeds, cells] int): the 1-based epoch and
0-based rung at which a member's cell stopped, -1 for members trained to the last epoch
(deepmle.population.search writes them)."""
