"""ŷ of a stored member on the host, in numpy: the figures and ``deepmle plot`` read a run
back and draw it without starting JAX.

The same network as deepmle.core.model.forward (eq. 2 per hidden layer, eq. 1 at the
output) in float32, as JAX computes it with x64 off; each activation of
deepmle.core.registry has its numpy twin here, and tests/analysis/test_predict.py checks
that the two give the same ŷ for every row of the registry.
"""

from collections.abc import Callable

import numpy as np

from deepmle.core.types import Params


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^−z) without overflow for large |z|."""
    return np.exp(-np.logaddexp(np.float32(0), -z))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, np.float32(0)),
}
"""deepmle.core.registry.ACTIVATIONS' names -> the same function on numpy arrays."""


def predict_proba(params: Params, x: np.ndarray, activation: str) -> np.ndarray:
    """ŷ = P(Y=1 | x) [batch] for ``x`` [batch, n_inputs] of a member's ``params`` (one
    ``{"w": [n_in, n_out], "b": [n_out]}`` per layer) with the hidden cells' ``activation``
    named as in a config; ValueError for a name with no numpy twin."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"no numpy activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    f = ACTIVATIONS[activation]
    h = np.asarray(x, np.float32)
    for layer in params[:-1]:
        h = f(h @ np.asarray(layer["w"], np.float32) + np.asarray(layer["b"], np.float32))
    out = params[-1]
    z = h @ np.asarray(out["w"], np.float32) + np.asarray(out["b"], np.float32)
    return sigmoid(z[:, 0])
