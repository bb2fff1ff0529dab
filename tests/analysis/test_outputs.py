"""The files a run's groups turn into, read back as a user would."""

import csv
import math

from deepmle import config as config_lib
from deepmle import sweep


def test_curves_csv_has_no_train_metrics_for_a_member_after_it_froze(small, tmp_path):
    """lr 1000 makes every member worse than its start in epoch 1: that epoch's train metrics
    are what it did, epochs 2-3 train nothing (NaN), validation is still measured."""
    config = config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((4,),)),
        train=config_lib.TrainConfig(learning_rate=(0.3, 1000.0), seeds=2, epochs=3,
                                     batch_size=128),
    )  # fmt: skip
    sweep.run(config, small, tmp_path / "run")
    with (tmp_path / "run" / "curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        frozen = float(r["learning_rate"]) == 1000.0 and int(r["epoch"]) > 1
        for name in ("train_ll", "train_accuracy"):
            assert math.isnan(float(r[name])) == frozen, (name, r)
        assert math.isfinite(float(r["val_accuracy"]))
