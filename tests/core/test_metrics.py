"""What is measured, defined once: the schema's rows are what the one definition computes,
no more and no fewer, and the other writers' tables read from it."""

import jax
import pytest

from deepmle import config as config_lib
from deepmle import train
from deepmle.core.metrics import (
    BY_NAME,
    CURVES,
    DIVERGENCE,
    DIVERGENCE_REASONS,
    HEALTHY,
    METRICS,
    NON_FINITE,
    WORSE_THAN_INIT,
)


@pytest.mark.parametrize("calibrate", ["none", "temperature"])
def test_final_returns_exactly_the_schemas_final_metrics(small, calibrate):
    """``member.final``'s keys are the schema's rows (the ``calibrated`` ones only with the
    option) and the divergence records: nothing computed without a row, no row unmeasured."""
    config = config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((4,),)),
        train=config_lib.TrainConfig(epochs=1, batch_size=256, calibrate=calibrate),
    )
    _, metrics = jax.jit(train.make_train(config, small))(jax.random.key(0), 0.5, small)
    want = {m.name for m in METRICS if calibrate == "temperature" or not m.calibrated}
    assert set(metrics) - {"curves"} == want | set(DIVERGENCE)
    assert set(metrics["curves"]) == {m.name for m in METRICS if m.measured == "curve"}


def test_each_metric_has_one_row_and_each_stop_reason_its_words():
    """Names are unique (BY_NAME would silently keep the last of two rows); CURVES holds the
    curve rows in the schema's order; every divergence code has words and no code is shared;
    test metrics are never exported to TensorBoard, where the selection is made."""
    names = [m.name for m in METRICS]
    assert len(set(names)) == len(names) and list(BY_NAME) == names
    assert CURVES == tuple(m for m in METRICS if m.measured == "curve")
    assert {m.name for m in CURVES} == {"train_ll", "train_accuracy", "val_ll", "val_accuracy"}
    assert sorted({HEALTHY, NON_FINITE, WORSE_THAN_INIT}) == list(range(len(DIVERGENCE_REASONS)))
    assert DIVERGENCE_REASONS[HEALTHY] == "" and all(DIVERGENCE_REASONS[1:])
    assert not any(m.is_test and m.tensorboard for m in METRICS)
