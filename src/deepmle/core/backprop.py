"""The notes' chain rule by hand, one layer at a time, no autodiff (eqs. 4-5).

For the output layer (eq. 4):
    ∂LL/∂θ^(ŷ)_j = ∂LL/∂ŷ · ∂ŷ/∂θ^(ŷ)_j,  ∂LL/∂ŷ = y/ŷ − (1−y)/(1−ŷ),  ∂ŷ/∂θ^(ŷ)_j = ŷ(1−ŷ) h_j.
For a hidden layer (eq. 5):
    ∂LL/∂θ^(h)_{i,j} = ∂LL/∂ŷ · ∂ŷ/∂h_j · ∂h_j/∂θ^(h)_{i,j},
    ∂ŷ/∂h_j = ŷ(1−ŷ) θ^(ŷ)_j,  ∂h_j/∂θ^(h)_{i,j} = h_j(1−h_j) x_i
(the notes print x_j in the last factor, a typo: the weight θ^(h)_{i,j} multiplies x_i).

Every path starts with the product ∂LL/∂ŷ · ŷ(1−ŷ), which is exactly y − ŷ. The code uses
that simplified form: taken literally, once ŷ rounds to 0 or 1 in float32 (|z| ≳ 17) the
product is ∞·0 = NaN, although the true value y − ŷ is finite and small.
"""

import jax
import jax.numpy as jnp

from deepmle.core import checks
from deepmle.core.types import Array, Grads, Params


def closed_form_grad(params: Params, x: Array, y: Array) -> Grads:
    """∇_θ LL(θ) for a sigmoid network of any depth, by hand; same pytree as ``params``.

    x: [batch, 784], y: [batch] of 0/1. LL is the sum over the batch (eq. 3).
    """
    checks.labels(y, checks.inputs(x, checks.params(params)[0]))
    activations = [x]  # a_0 = x, a_l = σ(a_{l−1} θ_l + b_l)
    for layer in params[:-1]:
        activations.append(jax.nn.sigmoid(activations[-1] @ layer["w"] + layer["b"][None, :]))
    y_hat = jax.nn.sigmoid(
        activations[-1] @ params[-1]["w"] + params[-1]["b"][None, :]
    )  # [batch, 1]

    delta = y[:, None] - y_hat  # ∂LL/∂ŷ · ŷ(1−ŷ), simplified: ∂LL/∂z of the output cell
    grads = []
    for k in range(len(params) - 1, -1, -1):
        a_in = activations[k]
        grads.append({"w": a_in.T @ delta, "b": jnp.sum(delta, axis=0)})
        if k > 0:
            a = activations[k]
            delta = (delta @ params[k]["w"].T) * a * (1.0 - a)  # ∂ŷ/∂h · ∂h/∂(pre-activation)
    return grads[::-1]


def literal_output_delta(y: Array, y_hat: Array) -> Array:
    """∂LL/∂ŷ · ŷ(1−ŷ) exactly as the notes print it: NaN where ŷ has rounded to 0 or 1."""
    return (y / y_hat - (1.0 - y) / (1.0 - y_hat)) * y_hat * (1.0 - y_hat)
