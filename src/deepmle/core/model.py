"""The network of logistic-regression cells: hidden cells (eq. 2) feeding one output cell (eq. 1).

h_j = σ(Σ_i x_i θ^(h)_{i,j}),   ŷ = σ(Σ_j h_j θ^(ŷ)_j) = P(Y=1 | x).

The notes' sums start at index 0, a bias unit that is always 1; here that weight is the
separate ``"b"`` of each layer, so ``x @ w + b`` is the notes' sum.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from deepmle.core import checks
from deepmle.core.types import Array, Params, PRNGKey

Activation = Callable[[Array], Array]
Matmul = Callable[[Array, Array], Array]


def from_normals(normals: Sequence[Array]) -> Params:
    """LeCun-normal parameters from standard-normal draws ``[n_in, n_out]``, one per layer.

    w = z / √n_in, so w ~ N(0, 1/n_in) and every pre-activation starts with about the variance
    of one input; biases start at 0. Works on numpy arrays (host draws) and JAX arrays alike.
    """
    zeros = np.zeros if isinstance(normals[0], np.ndarray) else jnp.zeros
    return [
        {"w": z / np.sqrt(z.shape[0]).astype(z.dtype), "b": zeros((z.shape[1],), z.dtype)}
        for z in normals
    ]


def init_params(key: PRNGKey, layer_sizes: Sequence[int], dtype: jnp.dtype = jnp.float32) -> Params:
    """Random parameters for a network with ``layer_sizes`` such as ``(784, 32, 1)``.

    Returns a list with one ``{"w": [n_in, n_out], "b": [n_out]}`` per layer (``from_normals``).
    """
    sizes = checks.layer_sizes(layer_sizes)
    keys = jax.random.split(key, len(sizes) - 1)
    return from_normals(
        [
            jax.random.normal(k, (a, b), dtype)
            for k, a, b in zip(keys, sizes, sizes[1:], strict=False)
        ]
    )


def layer_sizes_of(params: Params) -> tuple[int, ...]:
    """``(784, 32, 1)`` for a network whose hidden layer has 32 cells."""
    return checks.params(params)


@jax.custom_vjp
def training_matmul(a: Array, w: Array) -> Array:
    """``a @ w`` for a [batch, n_in] by [n_in, n_out]; its reverse-mode derivative is written
    with the input on the left, ∂w = aᵀ·g.

    Mathematically the same as ``a @ w``. Batched over the learning-rate members of a seed,
    which share ``a``, JAX's own transpose rule emits gᵀ·a and XLA:CPU then copies every
    member's weights twice per step; written this way the weight gradient is one
    [n_in, members·n_out] GEMM with no transpose (deepmle.core.member uses it; reverse mode only).
    """
    return a @ w


def _training_matmul_fwd(a: Array, w: Array) -> tuple[Array, tuple[Array, Array]]:
    return a @ w, (a, w)


def _training_matmul_bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    a, w = res
    return g @ w.T, jax.lax.dot_general(a, g, (((0,), (0,)), ((), ())))


training_matmul.defvjp(_training_matmul_fwd, _training_matmul_bwd)


def forward(
    params: Params,
    x: Array,
    activation: Activation = jax.nn.sigmoid,
    *,
    matmul: Matmul = jnp.matmul,
) -> Array:
    """The output logit z = Σ_j h_j θ^(ŷ)_j + bias, shape [batch], for x of shape [batch,
    n_inputs] (784 pixels for MNIST).

    Hidden layers apply eq. 2 with the function ``activation`` (σ unless asked otherwise; a
    config's name becomes one through ``deepmle.core.registry.activation``), any depth.
    """
    if not callable(activation):
        raise TypeError(
            f"activation: expected a function (names: deepmle.core.registry.activation), "
            f"got {activation!r}"
        )
    checks.inputs(x, checks.params(params)[0])
    checks.pixels(x)
    h = x
    for layer in params[:-1]:
        h = activation(matmul(h, layer["w"]) + layer["b"][None, :])
    return (matmul(h, params[-1]["w"]) + params[-1]["b"][None, :])[:, 0]


def predict_proba(params: Params, x: Array, activation: Activation = jax.nn.sigmoid) -> Array:
    """ŷ = σ(z) = P(Y=1 | x) (eq. 1), shape [batch]."""
    return jax.nn.sigmoid(forward(params, x, activation))
