"""Names for the pytrees that flow through deepmle, defined once (as optax does).

Importing it does not import jax: the read side (``deepmle plot``, load_run) names these
types without starting JAX. ``Array`` is ``jax.Array`` to a type checker, ``Any`` at run time.
"""

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import jax

    Array = jax.Array
    PRNGKey = jax.Array
else:
    Array = PRNGKey = Any
Layer = dict[str, Array]
"""One layer: ``{"w": [n_in, n_out], "b": [n_out]}``."""
Params = list[Layer]
"""A network: one Layer per weight matrix, input side first.
θ^(h) = ``params[0]["w"]``, θ^(ŷ) = ``params[-1]["w"][:, 0]``; the index-0 bias unit is ``"b"``."""
Grads = Params
Metrics = dict[str, Any]


class Split(NamedTuple):
    """x: float32 [n, n_inputs] in [0, 1] (784 pixels for MNIST); y: float32 [n] of 0/1."""

    x: np.ndarray | Array
    y: np.ndarray | Array


class Dataset(NamedTuple):
    """The three splits; the test split is never used for selection."""

    train: Split
    validation: Split
    test: Split
