"""The named choices a config makes, each resolved here once: activations and optimizers.

Config validation reads the names from these tables; training code receives the resolved
function and optax transformation, never a string. Add a choice by adding a row.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from deepmle.core.types import Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}
"""σ of the notes (eq. 2) and two alternatives for the hidden cells."""


class Optimizer(NamedTuple):
    """An optax optimizer for gradient *ascent*, built for a learning rate that may be traced.

    ``direction`` is an optax transformation factory (called with ``options``); the update is
    +learning_rate times its output. A NamedTuple of module-level functions and numbers, so
    equal configs give equal (hashable) optimizers and share compiled programs.
    ``zero_gradient_keeps_weight``: a weight whose gradient is always 0 never moves (true of
    SGD, momentum and Adam; not of weight decay), which lets deepmle.population.programs leave out
    pixels no training image inks.
    """

    direction: Callable[..., optax.GradientTransformation]
    options: tuple[tuple[str, float], ...] = ()
    zero_gradient_keeps_weight: bool = True

    def __call__(self, learning_rate: Array | float) -> optax.GradientTransformation:
        return optax.chain(
            self.direction(**dict(self.options)),
            optax.scale_by_learning_rate(learning_rate, flip_sign=False),
        )


OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], tuple[str, ...], bool]] = {
    "sgd": (optax.identity, (), True),
    "momentum": (optax.trace, ("decay",), True),
    "adam": (optax.scale_by_adam, (), True),
}
"""name -> (direction factory, the config options it takes, zero_gradient_keeps_weight);
``decay`` is [train] momentum."""


def _unknown(kind: str, name: object, table: dict) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; valid: {', '.join(table)}")


def activation(name: str) -> Callable[[Array], Array]:
    """The hidden-cell function called ``name``; ValueError listing the valid names otherwise."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise _unknown("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


def optimizer(name: str, momentum: float = 0.9) -> Optimizer:
    """The ascent optimizer called ``name`` (``momentum`` is used by "momentum" only)."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS)
    direction, takes, keeps = OPTIMIZERS[name]
    values = {"decay": float(momentum)}
    return Optimizer(direction, tuple((k, values[k]) for k in takes), keeps)
