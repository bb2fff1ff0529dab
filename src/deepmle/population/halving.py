"""Successive halving (``[search] method = "halving"``): the rule, as a search method of
deepmle.population.searches. Rungs sit at epochs ``min_epochs · eta^k`` below ``epochs``, and a
last rung at ``epochs``; at each rung the best ``ceil(n / eta)`` of the ``n`` running cells
continue (deepmle.population.search ranks them and records why). Synchronous successive
halving (Jamieson & Talwalkar 2016), one bracket.
"""

import math

from deepmle import config as config_lib


def rung_epochs(epochs: int, eta: int, min_epochs: int) -> list[int]:
    """The epochs (1-based, after which a rung ranks): min_epochs · eta^k below ``epochs``,
    then ``epochs``. 27 epochs, eta 3, min_epochs 1: [1, 3, 9, 27]."""
    out, e = [], min_epochs
    while e < epochs:
        out.append(e)
        e *= eta
    return [*out, epochs]


def keep_count(n: int, eta: int) -> int:
    """Cells that continue out of ``n`` ranked: ceil(n / eta), at least one."""
    return max(1, math.ceil(n / eta))


def capacity(n_cells: int, n_rungs: int, eta: int) -> int:
    """Cells per program call of a shape with ``n_cells``: about what reaches the last rung
    (n_cells / eta^(rungs - 1)), at least MIN_CAPACITY and at most n_cells. Every rung's
    survivors run through the one program compiled for it, as many calls per epoch as they
    need, the last padded: one compile per shape for the whole search, and at most
    capacity - 1 padding members per shape and rung."""
    return min(n_cells, max(MIN_CAPACITY, math.ceil(n_cells / eta ** (n_rungs - 1))))


MIN_CAPACITY = 4
"""Below about 4 cells a call, per-call costs (validation, the host's dispatch) outweigh the
padding they save (measured on the bar's search: docs/speed.md)."""


def rungs(config: config_lib.Config) -> list[int]:
    """The config's rung epochs (``rung_epochs`` of its [train] epochs and [search] options)."""
    s = config.search
    return rung_epochs(config.train.epochs, s.eta, s.min_epochs)


def keep(n: int, config: config_lib.Config) -> int:
    """How many of ``n`` ranked cells continue: ceil(n / eta)."""
    return keep_count(n, config.search.eta)


def cells_per_call(n_cells: int, config: config_lib.Config) -> int:
    """``capacity`` for the config's rungs and eta."""
    return capacity(n_cells, len(rungs(config)), config.search.eta)
