"""Search methods as plug-ins: one row each. A row says at which epochs its method decides,
how many cells continue, and how many cells share a program call
(deepmle.population.search.Method); the driver in deepmle.population.search trains, ranks,
records and checkpoints for every method, through the one epoch loop
(deepmle.population.loop). Adding a method is one module for its rule and one row here (and
its name and options in the config's [search] section).

- ``grid``: every cell to the last epoch; shapes are independent, so deepmle.sweep trains
  and saves them one at a time (a random search is a grid of draws);
- ``halving``: successive halving (deepmle.population.halving).
"""

from deepmle import config as config_lib
from deepmle.population import halving
from deepmle.population.search import Method


def _all(n: int, config: config_lib.Config) -> int:
    return n


SEARCHES: dict[str, Method] = {
    "grid": Method(rungs=lambda c: [c.train.epochs], keep=_all, capacity=_all, per_shape=True),
    "halving": Method(rungs=halving.rungs, keep=halving.keep, capacity=halving.cells_per_call),
}
"""[search] method -> its Method."""
