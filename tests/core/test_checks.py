"""Argument checks of the public functions (deepmle.core.checks): a wrong rank, shape, size or
label is a ValueError naming the argument and the shape it should have, never a silent
broadcast; shapes are checked inside jit too, values outside it only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle.core.backprop import closed_form_grad
from deepmle.core.likelihood import (
    accuracy_from_logits,
    example_log_likelihoods,
    log_likelihood,
    log_likelihood_from_logits,
)
from deepmle.core.model import forward, init_params


def _params():
    return init_params(jax.random.key(0), (784, 4, 1))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [((784, 0, 1), "positive integers"), ((784, 8, 2), "1 output"), ((784,), "from the input"),
     ((784, 8.0, 1), "positive integers"), ((784, True, 1), "positive integers")],
)  # fmt: skip
def test_init_params_rejects_bad_layer_sizes(sizes, message):
    with pytest.raises(ValueError, match=message):
        init_params(jax.random.key(0), sizes)


@pytest.mark.parametrize(
    ("x_shape", "message"),
    [((784,), r"x: expected shape \[batch, 784\], got \[784\]"),
     ((3, 28, 28), r"x: expected shape \[batch, 784\], got \[3, 28, 28\]"),
     ((3, 783), r"got \[3, 783\]")],
)  # fmt: skip
def test_forward_names_a_misshapen_input(x_shape, message):
    with pytest.raises(ValueError, match=message):
        forward(_params(), jnp.zeros(x_shape))


def test_forward_checks_shapes_inside_jit_too():
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, 784\]"):
        jax.jit(forward)(_params(), jnp.zeros((3, 783)))


def test_misshapen_params_are_named():
    params = _params()
    params[1]["w"] = jnp.zeros((5, 1))
    with pytest.raises(ValueError, match=r'params\[1\]\["w"\]: expected shape \[4, n_out\]'):
        forward(params, jnp.zeros((2, 784)))
    with pytest.raises(ValueError, match="non-empty list of layers"):
        forward({"w": 1}, jnp.zeros((2, 784)))


@pytest.mark.parametrize(
    ("x", "message"),
    [(np.full((2, 784), 255, np.uint8), "expected real floats in \\[0, 1\\], got dtype uint8"),
     (np.full((2, 784), 255.0, np.float32), "pixels must be in \\[0, 1\\], got values from 255"),
     (np.full((2, 784), 0.5 + 0.5j), "got dtype complex128")],
)  # fmt: skip
def test_forward_refuses_pixels_that_are_not_darknesses_in_0_1(x, message):
    with pytest.raises(ValueError, match=message):
        forward(_params(), x)


def test_forward_checks_pixel_values_outside_jit_only():
    """Inside jit the values are not known; checking them there would need a host sync."""
    z = jax.jit(forward)(_params(), jnp.full((2, 784), 255.0))
    assert z.shape == (2,)


def test_a_label_column_is_refused_not_broadcast(rng):
    """[5] labels against [5, 1] would broadcast into a 5x5 sum: -23.6 instead of -4.8."""
    params = init_params(jax.random.key(0), (784, 3, 1))
    x = jnp.asarray(rng.uniform(size=(5, 784)), jnp.float32)
    y = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"y: expected shape \[5\] .*got \[5, 1\]"):
        log_likelihood(params, x, y[:, None])
    with pytest.raises(ValueError, match=r"y: expected shape \[5\]"):
        jax.jit(log_likelihood)(params, x, y[:, None])  # shapes are checked inside jit too


def test_labels_must_be_zero_or_one(rng):
    params = init_params(jax.random.key(0), (784, 3, 1))
    x = jnp.asarray(rng.uniform(size=(3, 784)), jnp.float32)
    with pytest.raises(ValueError, match="labels must be 0 or 1, got"):
        log_likelihood(params, x, jnp.array([1.0, 7.0, 2.0]))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        accuracy_from_logits(jnp.zeros(2), jnp.array([0.5, 1.0]))


def test_logits_must_be_a_vector():
    with pytest.raises(ValueError, match=r"z: expected shape \[batch\]"):
        log_likelihood_from_logits(jnp.zeros((3, 1)), jnp.zeros(3))


def test_labels_of_another_length_than_the_batch_are_refused_not_broadcast(rng):
    """One label against five logits would broadcast to five copies of it."""
    params = init_params(jax.random.key(0), (784, 3, 1))
    x = jnp.asarray(rng.uniform(size=(5, 784)), jnp.float32)
    z = jnp.linspace(-2.0, 2.0, 5)
    for y in (jnp.ones(1), jnp.ones(4), jnp.ones(6)):
        n = y.shape[0]
        with pytest.raises(ValueError, match=rf"y: expected shape \[5\] .*got \[{n}\]"):
            log_likelihood(params, x, y)
        with pytest.raises(ValueError, match=r"y: expected shape \[5\]"):
            example_log_likelihoods(z, y)
        with pytest.raises(ValueError, match=r"y: expected shape \[5\]"):
            jax.jit(accuracy_from_logits)(z, y)


def test_closed_form_checks_its_arguments():
    params = init_params(jax.random.key(0), (784, 4, 1))
    x, y = jnp.zeros((3, 784)), jnp.array([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"y: expected shape \[3\]"):
        closed_form_grad(params, x, y[:, None])
    with pytest.raises(ValueError, match=r"x: expected shape \[batch, 784\]"):
        closed_form_grad(params, x[:, :100], y)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        closed_form_grad(params, x, y * 3)
