"""TensorBoard event files for a run: ``RUN_DIR/tensorboard/``, to browse and compare curves.

One TensorBoard run per cell (shape × learning rate), named like ``h32_lr0.1``, holds the
mean over its seeds (those that did not diverge) of every curve marked ``tensorboard`` in
deepmle.core.metrics (``train_ll``, ``val_ll``, ``val_accuracy``) per epoch, with step =
epoch. HParams dashboard data relates the hidden sizes and the learning rate to the final
validation metrics. Validation only: test accuracy stays where the table puts it, beside the
cell selected on validation.

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
from deepmle.runs.results import RunResults, group_name, hidden_label, lr_labels

CURVES = tuple(m.name for m in METRICS if m.tensorboard and m.measured == "curve")


def cell_name(hidden: tuple[int, ...], lr_label: str) -> str:
    """'h32_lr0.1' for hidden sizes (32,) and learning rate '0.1' (results.lr_labels); the
    shape part is the group's name."""
    return f"{group_name(hidden)}_lr{lr_label}"


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
        lrs = sorted({float(lr) for g in results.groups for lr in g.learning_rates})
        labels = lr_labels(lrs)
        shapes = [hidden_label(g.hidden) for g in results.groups]
        config = hparams.hparams_config_pb(
            hparams=[
                hparams.HParam("hidden_sizes", hparams.Discrete(shapes)),
                hparams.HParam("learning_rate", hparams.RealInterval(lrs[0], lrs[-1])),
            ],
            metrics=[hparams.Metric(m.name) for m in METRICS if m.tensorboard],
        )  # fmt: skip
        top = EventFileWriter(str(tmp))
        event(top, 0, config)
        top.close()
        for g in results.groups:
            healthy = g.final["diverged_epoch"] < 0  # [seeds, lrs]
            for li, lr in enumerate(g.learning_rates):
                name = cell_name(g.hidden, labels[float(lr)])
                writer = EventFileWriter(str(tmp / name))
                trial = {"hidden_sizes": hidden_label(g.hidden), "learning_rate": float(lr)}
                event(writer, 0, hparams.hparams_pb(trial, trial_id=name))
                ok = healthy[:, li]
                if ok.any():
                    tags = [tag for tag in CURVES if tag in g.curves]
                    for e in range(max((g.curves[t].shape[2] for t in tags), default=0)):
                        values = [
                            summary_pb2.Summary.Value(
                                tag=tag, simple_value=float(np.nanmean(g.curves[tag][ok, li, e]))
                            )
                            for tag in tags
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
