"""The traced hyperparameters: what each member of a population has of its own, as data.

A member's hyperparameters are a dict ``{name: float32 scalar}`` (a pytree, ``HParams``),
vmapped like its parameters, so new values never recompile. ``HYPERPARAMETERS`` is their
schema, one row each; a config's [train] may give any of them as a number, a list or a
distribution (deepmle.config), and a run's cells are the product of the lists.

Where each acts, and nowhere else:

- ``learning_rate`` and ``momentum``: the optimizer (deepmle.core.registry), momentum only for
  an optimizer with an option fed from it;
- ``prior_std``: the objective (deepmle.core.member.step and the divergence guard), through
  ``log_prior`` and ``prior_gradient`` below;
- ``init_scale``: the initial weights (deepmle.core.member.init).

Adding one is a row here and the code where it acts. The schema imports no jax (config
validation reads it on the read side); the prior's functions import it where they act.
"""

import math
from typing import NamedTuple

from deepmle.core.types import Array, Params


class Hyper(NamedTuple):
    """One traced hyperparameter: its ``default``, the ``neutral`` value at which it does
    nothing (a run's identity and tables leave it out there; None: it always acts), the
    interval its values must lie in (``low``/``high``, open or closed), whether a
    ``log_uniform`` distribution suits it, and what it is."""

    default: float
    neutral: float | None
    low: float
    high: float
    low_open: bool
    high_open: bool
    doc: str
    log_scale: bool = True

    def problem(self, v: float) -> str:
        """Why ``v`` is no value of this hyperparameter; "" if it is one."""
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        if above and below:
            return ""
        lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be in {lo}{self.low:g}, {self.high:g}{hi}, got {v!r}"


HYPERPARAMETERS: dict[str, Hyper] = {
    "learning_rate": Hyper(
        default=0.5, neutral=None, low=0.0, high=math.inf, low_open=True, high_open=True,
        doc="the step of gradient ascent",
    ),
    "prior_std": Hyper(
        default=math.inf, neutral=math.inf, low=0.0, high=math.inf, low_open=True,
        high_open=False,
        doc="σ of a zero-mean Gaussian prior on the weights (biases flat): MAP; inf is MLE",
    ),
    "momentum": Hyper(
        default=0.9, neutral=None, low=0.0, high=1.0, low_open=False, high_open=True,
        doc="the velocity's decay, for an optimizer that has one", log_scale=False,
    ),
    "init_scale": Hyper(
        default=1.0, neutral=1.0, low=0.0, high=math.inf, low_open=True, high_open=True,
        doc="multiplies the LeCun-normal initial weights",
    ),
}  # fmt: skip
"""name -> Hyper, in the order tables print them."""

HParams = dict[str, Array]
"""A member's hyperparameters: ``{name: float32 []}`` (one member) or [seeds, cells] (a group)."""

LABELS = {"learning_rate": "lr"}
"""Short names the tables and ``deepmle explain`` use (and accept) beside the schema's."""


def label(name: str) -> str:
    return LABELS.get(name, name)


def log_prior(params: Params, prior_std: Array) -> Array:
    """log p(θ) up to a constant: −Σ w² / (2 σ²) over every weight matrix, biases flat; 0 for
    σ = inf. A scalar."""
    import jax.numpy as jnp

    sq = sum(jnp.sum(jnp.square(layer["w"])) for layer in params)
    return -0.5 * sq / jnp.square(prior_std)


def prior_gradient(params: Params, prior_std: Array, n_train: int) -> Params:
    """∂/∂θ of log p(θ) / N: −w / (N σ²) for weights, 0 for biases; the term each
    minibatch's mean-LL gradient gets under MAP, so that N steps' worth ascend LL + log p."""
    import jax.numpy as jnp

    precision = 1.0 / (n_train * jnp.square(prior_std))
    return [{"w": -precision * layer["w"], "b": jnp.zeros_like(layer["b"])} for layer in params]


def add(grads: Params, extra: Params) -> Params:
    import jax

    return jax.tree.map(jax.numpy.add, grads, extra)
