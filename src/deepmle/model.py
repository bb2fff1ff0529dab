"""The network of logistic-regression cells: hidden cells (eq. 2) feeding one output cell (eq. 1).

h_j = σ(Σ_i x_i θ^(h)_{i,j}),   ŷ = σ(Σ_j h_j θ^(ŷ)_j) = P(Y=1 | x).

The notes' sums start at index 0, a bias unit that is always 1; here that weight is the
separate ``"b"`` of each layer, so ``x @ w + b`` is the notes' sum.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from deepmle.types import Array, Params, PRNGKey

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


def init_params(key: PRNGKey, layer_sizes: Sequence[int], dtype: jnp.dtype = jnp.float32) -> Params:
    """Random parameters for a network with ``layer_sizes`` such as ``(784, 32, 1)``.

    Weights are LeCun-normal, w ~ N(0, 1/n_in), so every pre-activation starts with about
    the variance of one input; biases start at 0. The last size must be 1 (one output cell).

    Returns a list with one ``{"w": [n_in, n_out], "b": [n_out]}`` per layer.
    """
    if len(layer_sizes) < 2 or layer_sizes[-1] != 1:
        raise ValueError(f"layer_sizes must run from the input to 1 output, got {layer_sizes}")
    keys = jax.random.split(key, len(layer_sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (n_in, n_out), dtype) / jnp.sqrt(n_in).astype(dtype),
            "b": jnp.zeros((n_out,), dtype),
        }
        for k, n_in, n_out in zip(keys, layer_sizes[:-1], layer_sizes[1:], strict=True)
    ]


def layer_sizes_of(params: Params) -> tuple[int, ...]:
    """``(784, 32, 1)`` for a network whose hidden layer has 32 cells."""
    return (params[0]["w"].shape[0], *(layer["w"].shape[1] for layer in params))


def forward(params: Params, x: Array, activation: str = "sigmoid") -> Array:
    """The output logit z = Σ_j h_j θ^(ŷ)_j + bias, shape [batch], for x of shape [batch, 784].

    Hidden layers apply eq. 2 (``activation`` is σ unless asked otherwise), any depth.
    """
    act = ACTIVATIONS[activation]
    h = x
    for layer in params[:-1]:
        h = act(h @ layer["w"] + layer["b"][None, :])
    return (h @ params[-1]["w"] + params[-1]["b"][None, :])[:, 0]


def predict_proba(params: Params, x: Array, activation: str = "sigmoid") -> Array:
    """ŷ = σ(z) = P(Y=1 | x) (eq. 1), shape [batch]."""
    return jax.nn.sigmoid(forward(params, x, activation))
