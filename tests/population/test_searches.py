"""The search methods' table: every row's rungs end at the last epoch, the config knows every
method by name, and the grid is the search that keeps every cell."""

import pytest

from deepmle import config as config_lib
from deepmle.population import halving
from deepmle.population.searches import SEARCHES


def test_the_config_accepts_exactly_the_methods_of_the_table():
    assert tuple(SEARCHES) == config_lib.METHODS


@pytest.mark.parametrize("name", list(SEARCHES))
def test_every_method_decides_last_at_the_last_epoch_and_keeps_some(name):
    config = config_lib.from_dict(
        {"train": {"epochs": 27, "learning_rate": [0.1, 0.3, 1.0]},
         "search": {"method": name, "eta": 3, "min_epochs": 1}}
    )  # fmt: skip
    method = SEARCHES[name]
    rungs = method.rungs(config)
    assert rungs[-1] == 27 and rungs == sorted(set(rungs))
    for n in (1, 7, 64):
        assert 1 <= method.keep(n, config) <= n
        assert 1 <= method.capacity(n, config) <= n


def test_the_grid_keeps_every_cell_and_halving_a_third():
    config = config_lib.from_dict({"train": {"epochs": 27}, "search": {"eta": 3}})
    assert SEARCHES["grid"].rungs(config) == [27] and SEARCHES["grid"].keep(64, config) == 64
    assert SEARCHES["grid"].per_shape and not SEARCHES["halving"].per_shape
    assert SEARCHES["halving"].keep(64, config) == 22
    assert halving.capacity(64, 4, 3) == 4 and halving.capacity(3, 4, 3) == 3
