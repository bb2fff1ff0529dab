"""TensorBoard event files for a run: ``RUN_DIR/tensorboard/``, to browse and compare curves.

One TensorBoard run per cell (shape × hyperparameters), named like ``h032_lr0.10`` (and
``_prior_std1.00`` for each other hyperparameter the run's cells carry) (names
that sort as numbers), holds the mean over its seeds (those that did not diverge) of every
curve marked ``tensorboard`` in deepmle.core.metrics (``train_ll``, ``val_ll``,
``val_accuracy`` in %) per epoch, with step = epoch. HParams dashboard data relates the
hidden sizes and each hyperparameter to the final validation metrics. Validation only: test
accuracy stays where the table puts it, beside the cell selected on validation.

Written with TensorBoard's own event writer (``pip install 'deepmle[tensorboard]'``); no
TensorFlow needed, to write or to view (``tensorboard --logdir RUN_DIR/tensorboard``).
"""

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepmle.core.metrics import METRICS
from deepmle.errors import UserError
from deepmle.runs import store
from deepmle.runs.results import MAX_NAME, RunResults, group_name, hidden_label, static_suffix

CURVES = tuple(m for m in METRICS if m.tensorboard and m.measured == "curve")
"""Written per epoch; percentages (accuracy) in %, as the table shows them."""


def sortable_labels(groups: Any, lrs: list[float]) -> tuple[dict[tuple, str], dict[float, str]]:
    """TensorBoard lists runs by name, so names sort as numbers do: hidden sizes zero-padded
    to one width ('h016', 'h128', 'h064-032') and learning rates fixed-point with as many
    decimals as three significant digits of the smallest need, zero-padded to one width
    ('0.03', '0.10', '3.00'; '001', '010', '300'); where fixed point cannot tell them apart
    within 15 decimals (1e-20 beside 2e-20), scientific ('1.00e-20'). A shape name too long
    for a file name (a deep network) is its group's bounded name (``group_name``). Swept
    static keys follow the shape in ``write`` ('h032-tanh_lr0.10', ``static_suffix``)."""
    width = max((len(str(w)) for g in groups for w in g.hidden), default=1)
    shapes = {g.hidden: "h" + ("-".join(str(w).zfill(width) for w in g.hidden) or "0" * width)
              for g in groups}  # fmt: skip
    if any(len(name) > MAX_NAME for name in shapes.values()):  # deep: the groups' short names
        shapes = {g.hidden: group_name(g.hidden) for g in groups}
    for decimals in range(16):
        text = {v: f"{v:.{decimals}f}" for v in lrs}
        close = all(abs(float(t) - v) <= 5e-3 * v for v, t in text.items())
        if close and len(set(text.values())) == len(set(lrs)):
            pad = max(len(t) for t in text.values())
            return shapes, {v: t.zfill(pad) for v, t in text.items()}
    for digits in range(2, 18):  # too small or too large for fixed point: scientific, distinct
        text = {v: f"{v:.{digits}e}" for v in lrs}
        if len(set(text.values())) == len(set(lrs)):
            break
    return shapes, text


def cell_name(shape: str, lr: str) -> str:
    """'h032_lr0.10': a cell's TensorBoard run, from ``sortable_labels``."""
    return f"{shape}_lr{lr}"


def require() -> None:
    """UserError now, before any training, if the tensorboard package is missing."""
    _tb()


def _tb() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import summary_v2 as hparams
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise UserError(
            "TensorBoard export needs the tensorboard package: pip install 'deepmle[tensorboard]'"
        ) from None
    return event_pb2, summary_pb2, hparams, EventFileWriter


def write(results: RunResults) -> Path:
    """Event files for every cell of ``results`` into ``results.run_dir / "tensorboard"``,
    replacing an earlier export whole (built beside it, then renamed into place)."""
    event_pb2, summary_pb2, hparams, EventFileWriter = _tb()
    now = time.time()
    final = Path(results.run_dir) / "tensorboard"
    theirs = [
        f
        for f in store.foreign_files(Path(results.run_dir))
        if f == "tensorboard" or f.startswith("tensorboard/")
    ]
    if theirs:
        raise UserError(
            f"{final} holds files deepmle did not write ({', '.join(theirs[:3])}); a new export "
            "would replace it: move them first"
        )
    tmp = final.with_name(f".tensorboard.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)

    def event(writer: Any, step: int, summary: Any) -> None:
        writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary))

    try:
        keys = list(results.groups[0].cells)
        values = {k: sorted({float(v) for g in results.groups for v in g.cells[k]}) for k in keys}
        shape_names, lr_names = sortable_labels(results.groups, values["learning_rate"])
        names = {k: sortable_labels(results.groups, values[k])[1] for k in keys[1:]}
        shapes = list(dict.fromkeys(hidden_label(g.hidden) for g in results.groups))
        statics = {k: list(dict.fromkeys(g.static[k] for g in results.groups))
                   for k in results.groups[0].static or {}}  # fmt: skip

        def domain(v: list[float]) -> Any:
            finite = all(np.isfinite(v))
            return hparams.RealInterval(v[0], v[-1]) if finite else hparams.Discrete(v)

        config = hparams.hparams_config_pb(
            hparams=[
                hparams.HParam("hidden_sizes", hparams.Discrete(shapes)),
                *[hparams.HParam(k, hparams.Discrete(v)) for k, v in statics.items()],
                *[hparams.HParam(k, domain(values[k])) for k in keys],
            ],
            metrics=[hparams.Metric(m.name, display_name=m.label) for m in METRICS
                     if m.tensorboard],
        )  # fmt: skip
        top = EventFileWriter(str(tmp))
        event(top, 0, config)
        top.close()
        for g in results.groups:
            healthy = g.final["diverged_epoch"] < 0  # [seeds, cells]
            for li, lr in enumerate(g.learning_rates):
                cell = g.cell(li)
                shape = shape_names[g.hidden] + static_suffix(g.static)
                name = cell_name(shape, lr_names[float(lr)]) + "".join(
                    f"_{k}{names[k][cell[k]]}" for k in keys[1:]
                )
                writer = EventFileWriter(str(tmp / name))
                trial = {**g.columns, **cell}
                event(writer, 0, hparams.hparams_pb(trial, trial_id=name))
                ok = healthy[:, li]
                if ok.any():
                    shown = [m for m in CURVES if m.name in g.curves]
                    stop = (
                        int(g.final["stopped_epoch"][0, li]) if "stopped_epoch" in g.final else -1
                    )
                    epochs = max((g.curves[m.name].shape[2] for m in shown), default=0)
                    for e in range(stop if stop > 0 else epochs):  # halving: until its stop
                        values = [
                            summary_pb2.Summary.Value(
                                tag=m.name,
                                simple_value=float(np.nanmean(g.curves[m.name][ok, li, e]))
                                * (100.0 if m.percent else 1.0),
                                metadata=summary_pb2.SummaryMetadata(display_name=m.label),
                            )
                            for m in shown
                        ]
                        event(writer, e + 1, summary_pb2.Summary(value=values))
                writer.close()
        old = final.with_name(f".tensorboard.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise UserError(f"cannot write {final}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
