"""Search methods as plug-ins: one row each. A row says at which epochs its method decides,
how many cells continue, and how many cells share a program call
(``Method``); the driver in deepmle.population.search trains, ranks,
records and checkpoints for every method, through the one epoch loop
(deepmle.population.loop). Adding a method is one module for its rule and one row here (and
its name and options in the config's [search] section).

- ``grid``: every cell to the last epoch; shapes are independent, so deepmle.sweep trains
  and saves them one at a time (a random search is a grid of draws);
- ``halving``: successive halving (deepmle.population.halving).

The table imports no jax: the store reads a row's ``per_shape`` to check a saved group's
identity on the read side.
"""

from collections.abc import Callable
from typing import NamedTuple

from deepmle import config as config_lib
from deepmle.population import halving


class Method(NamedTuple):
    """A search method: ``rungs(config)``, the epochs after which it ranks (the last is the
    last epoch, where every running cell is kept); ``keep(n, config)``, how many of ``n``
    ranked cells continue (before the cap at the finite ones); ``capacity(n, config)``, the
    cells per program call for a shape of ``n`` cells (one compile per shape whatever the
    rung); ``per_shape``: shapes are independent (no cross-shape ranking), so the
    orchestration trains and saves them one at a time (deepmle.sweep)."""

    rungs: Callable[[config_lib.Config], list[int]]
    keep: Callable[[int, config_lib.Config], int]
    capacity: Callable[[int, config_lib.Config], int]
    per_shape: bool = False


def _all(n: int, config: config_lib.Config) -> int:
    return n


SEARCHES: dict[str, Method] = {
    "grid": Method(rungs=lambda c: [c.train.epochs], keep=_all, capacity=_all, per_shape=True),
    "halving": Method(rungs=halving.rungs, keep=halving.keep, capacity=halving.cells_per_call),
}
"""[search] method -> its Method."""
