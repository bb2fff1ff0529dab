"""The traced hyperparameters (deepmle.core.hyperparams) where they act: the prior in the
step and the guard, the initial scale, momentum as data; and the schema's checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle.core import hyperparams, member, model, registry
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.population import randomness


def _spec(small, acting=frozenset(), optimizer="sgd", dtype_n=None):
    n = small.train.y.shape[0] if dtype_n is None else dtype_n
    return member.Spec((784, 8, 1), jax.nn.sigmoid, registry.optimizer(optimizer), 64, 1, n,
                       acting=frozenset(acting))  # fmt: skip


def _one_step(spec, small, hparams, params, dtype=jnp.float32):
    data = jax.tree.map(lambda a: jnp.asarray(a, dtype), small)
    shared = member.Shared(data, jnp.int32(0))
    idx = jnp.arange(64, dtype=jnp.int32)
    state = member.init(spec, hparams, params, shared)
    state, _ = member.step(spec, state, member.Seed(idx, None), shared)
    return state


def test_a_map_step_ascends_the_hand_written_gradient_of_ll_plus_log_prior(small):
    """In float64, one SGD step of a MAP member (784-8-1, σ 0.5) is θ + lr·(∂ mean LL/∂θ by
    the notes' closed forms − w/(N σ²) for weights, nothing for biases)."""
    with jax.enable_x64(True):
        spec = _spec(small, {"prior_std"})
        params = jax.tree.map(
            lambda a: jnp.asarray(a, jnp.float64),
            model.from_normals(randomness.init_normals(0, spec.layer_sizes)),
        )
        lr, sigma, n = 0.3, 0.5, spec.n_train
        hp = {"learning_rate": lr, "prior_std": sigma}
        after = _one_step(spec, small, hp, params, jnp.float64).params

        x = np.asarray(small.train.x[:64], np.float64)
        y = np.asarray(small.train.y[:64], np.float64)
        w1, b1 = np.asarray(params[0]["w"]), np.asarray(params[0]["b"])
        w2, b2 = np.asarray(params[1]["w"])[:, 0], np.asarray(params[1]["b"])[0]
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        h = sig(x @ w1 + b1)  # eq. 2
        y_hat = sig(h @ w2 + b2)  # eq. 1
        err = y - y_hat  # ∂LL/∂ŷ · ŷ(1−ŷ), simplified
        g_w2 = (err[:, None] * h).mean(0) - w2 / (n * sigma**2)
        g_b2 = err.mean()
        back = err[:, None] * w2[None, :] * h * (1 - h)
        g_w1 = x.T @ back / len(y) - w1 / (n * sigma**2)
        g_b1 = back.mean(0)
        want = [(w1 + lr * g_w1, b1 + lr * g_b1), (w2 + lr * g_w2, b2 + lr * g_b2)]
        got = [(after[0]["w"], after[0]["b"]), (after[1]["w"][:, 0], after[1]["b"][0])]
        for (gw, gb), (ww, wb) in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(gw), ww, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(np.asarray(gb), wb, rtol=1e-12, atol=1e-14)
        # and the prior is what moved them: without it the step differs
        assert not np.allclose(np.asarray(after[0]["w"]), w1 + lr * (g_w1 + w1 / (n * sigma**2)))


def test_an_infinite_prior_std_in_a_map_program_is_bitwise_mle(small):
    """A member with prior_std = inf beside MAP members (the prior's code present) steps
    exactly as a member of a program without a prior."""
    params = model.from_normals(randomness.init_normals(0, (784, 8, 1)))
    mle = _one_step(_spec(small), small, {"learning_rate": 0.5}, params)
    inf = _one_step(_spec(small, {"prior_std"}), small,
                    {"learning_rate": 0.5, "prior_std": math.inf}, params)  # fmt: skip
    for a, b in zip(jax.tree.leaves(mle.params), jax.tree.leaves(inf.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(inf.start_log_prior) == 0.0


def test_init_scale_multiplies_the_initial_weights_and_the_guard_uses_its_own_start(small):
    params = model.from_normals(randomness.init_normals(0, (784, 8, 1)))
    spec = _spec(small, {"init_scale"})
    shared = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(0))
    m = member.init(spec, {"learning_rate": 0.5, "init_scale": 0.25}, params, shared)
    for got, base in zip(m.params, params, strict=True):
        np.testing.assert_allclose(np.asarray(got["w"]), 0.25 * np.asarray(base["w"]), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(got["b"]), np.asarray(base["b"]))
    scaled = [{**layer, "w": 0.25 * layer["w"]} for layer in params]
    np.testing.assert_allclose(
        np.asarray(m.start), np.asarray(member.start_lls(spec, scaled, shared.data)), rtol=1e-5
    )


def test_traced_momentum_steps_as_the_fixed_option_did(small):
    """Momentum as a member's data gives the same update as momentum fixed in the program."""
    params = model.from_normals(randomness.init_normals(0, (784, 8, 1)))
    n = small.train.y.shape[0]
    fixed = member.Spec((784, 8, 1), jax.nn.sigmoid, registry.optimizer("momentum", decay=0.7),
                        64, 1, n)  # fmt: skip
    traced = _spec(small, optimizer="momentum")
    data = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(0))

    def two(spec, hp):
        state = member.init(spec, hp, params, data)
        for start in (0, 64):
            idx = jnp.arange(start, start + 64, dtype=jnp.int32)
            state, _ = member.step(spec, state, member.Seed(idx, None), data)
        return state.params

    a = jax.jit(lambda: two(fixed, {"learning_rate": 0.1}))()
    b = jax.jit(lambda: two(traced, {"learning_rate": 0.1, "momentum": 0.7}))()
    c = jax.jit(lambda: two(traced, {"learning_rate": 0.1, "momentum": 0.0}))()
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(np.asarray(a[0]["w"]), np.asarray(c[0]["w"]))


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [("prior_std", 0.0, False), ("prior_std", -1.0, False), ("prior_std", math.inf, True),
     ("momentum", 1.0, False), ("momentum", 0.0, True), ("momentum", -0.1, False),
     ("init_scale", 0.0, False), ("init_scale", 2.0, True), ("learning_rate", 0.0, False)],
)  # fmt: skip
def test_the_schema_says_which_values_each_hyperparameter_takes(name, value, ok):
    assert (HYPERPARAMETERS[name].problem(value) == "") == ok


def test_log_prior_is_minus_half_the_squared_weights_over_sigma_squared():
    params = [{"w": jnp.array([[1.0, 2.0]]), "b": jnp.array([5.0, 5.0])}]
    assert float(hyperparams.log_prior(params, jnp.float32(2.0))) == pytest.approx(-5 / 8)
    assert float(hyperparams.log_prior(params, jnp.float32(jnp.inf))) == 0.0
