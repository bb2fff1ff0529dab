"""The named choices a config makes, each resolved here once: activations and optimizers.

Config validation reads the names from these tables; training code receives the resolved
function and optax transformation, never a string. Add a choice by adding a row. A row
names its function by import path (resolved by ``activation`` and ``optimizer``), so the
tables import neither jax nor optax: a config is validated on the read side without them.
"""

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.types import Array

if TYPE_CHECKING:
    import optax

ACTIVATIONS: dict[str, str] = {
    "sigmoid": "jax.nn.sigmoid",
    "tanh": "jax.numpy.tanh",
    "relu": "jax.nn.relu",
}
"""σ of the notes (eq. 2) and two alternatives for the hidden cells, by import path."""


def _resolve(path: str) -> Any:
    """The object an import path such as ``"jax.nn.sigmoid"`` names."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class Optimizer(NamedTuple):
    """An optax optimizer for gradient *ascent*, built for a learning rate that may be traced.

    ``direction`` is an optax transformation factory (called with ``options``); the update is
    +learning_rate times its output. A NamedTuple of module-level functions and numbers, so
    equal configs give equal (hashable) optimizers and share compiled programs.
    ``zero_gradient_keeps_weight``: a weight whose gradient is always 0 never moves (true of
    SGD, momentum and Adam; not of weight decay), which lets deepmle.population.programs leave out
    pixels no training image inks.
    """

    direction: Callable[..., "optax.GradientTransformation"]
    options: tuple[tuple[str, float], ...] = ()
    zero_gradient_keeps_weight: bool = True
    traced: tuple[tuple[str, str], ...] = ()
    """(factory parameter, hyperparameter): options taken from the member's traced
    hyperparameters (deepmle.core.hyperparams), e.g. momentum's ``decay``."""

    def __call__(
        self, hparams: "dict[str, Array] | Array | float"
    ) -> "optax.GradientTransformation":
        """The transformation for a member's hyperparameters ``hparams`` (its learning rate
        and traced options), or for a bare learning rate (traced options then at their
        defaults)."""
        if not isinstance(hparams, dict):
            hparams = {"learning_rate": hparams}
        import optax

        traced = {p: hparams.get(k, HYPERPARAMETERS[k].default) for p, k in self.traced}
        return optax.chain(
            self.direction(**dict(self.options), **traced),
            optax.scale_by_learning_rate(hparams["learning_rate"], flip_sign=False),
        )

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        """The traced hyperparameters this optimizer reads, besides the learning rate."""
        return tuple(k for _, k in self.traced)


class Row(NamedTuple):
    """One optimizer of the table: ``factory`` (an import path) makes its optax direction from
    the options a config gives (checked against its signature); ``zero_gradient_keeps_weight`` as in
    ``Optimizer``; ``options`` names, for each factory parameter a config may set, the
    [train] key that sets it."""

    factory: str
    zero_gradient_keeps_weight: bool = True
    options: tuple[tuple[str, str], ...] = ()
    """(factory parameter, traced hyperparameter of deepmle.core.hyperparams) it comes from."""


OPTIMIZERS: dict[str, Row] = {
    "sgd": Row("optax.identity"),
    "momentum": Row("optax.trace", options=(("decay", "momentum"),)),
    "adam": Row("optax.scale_by_adam"),
}
"""name -> Row; "momentum" takes its ``decay`` from each member's traced ``momentum``."""


def _unknown(kind: str, name: object, table: dict) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; valid: {', '.join(table)}")


def activation(name: str) -> Callable[[Array], Array]:
    """The hidden-cell function called ``name``; ValueError listing the valid names otherwise."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise _unknown("activation", name, ACTIVATIONS)
    return _resolve(ACTIVATIONS[name])


def optimizer(name: str, **options: float) -> Optimizer:
    """The ascent optimizer called ``name`` with fixed ``options`` for its factory (the rest of
    its row's options traced, from each member's hyperparameters); ValueError for an unknown
    name, TypeError for an option its factory does not take."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS)
    row = OPTIMIZERS[name]
    factory = _resolve(row.factory)
    takes = inspect.signature(factory).parameters
    for key in options:
        if key not in takes:
            raise TypeError(f"optimizer {name!r} takes no option {key!r}; its options: "
                            f"{', '.join(takes) or 'none'}")  # fmt: skip
    given = tuple(sorted((k, float(v)) for k, v in options.items()))
    traced = tuple((p, k) for p, k in row.options if p not in options)
    return Optimizer(factory, given, row.zero_gradient_keeps_weight, traced)


def optimizer_hyperparameters(name: str) -> tuple[str, ...]:
    """The traced hyperparameters optimizer ``name`` reads besides the learning rate."""
    return tuple(k for _, k in OPTIMIZERS[name].options)
