"""The per-member functions of deepmle.core.member, one step at a time."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepmle.core import member, model, registry
from deepmle.population import randomness


def _two_steps(small, optimizer: registry.Optimizer, lr: float):
    """Two steps of ``member.step`` from seed 0's weights on the first two minibatches of 64;
    (params after step 1, params after step 2, the two gradients of the mean LL)."""
    spec = member.Spec((784, 8, 1), jax.nn.sigmoid, optimizer, 64, 1, small.train.y.shape[0])
    params = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    shared = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(0))
    orders = jnp.arange(128, dtype=jnp.int32).reshape(2, 64)

    @jax.jit
    def run(params):
        state = member.init(spec, jnp.float32(lr), params, shared)
        out, grads = [], []
        for idx in orders:
            x, y = shared.data.train.x[idx], shared.data.train.y[idx]
            mean_ll = lambda p, x=x, y=y: member._objective(p, x, y, spec)[0]  # noqa: E731
            grads.append(jax.grad(mean_ll)(state.params))
            state, _ = member.step(spec, state, member.Seed(idx, None), shared)
            out.append(state.params)
        return out, grads

    (p1, p2), (g1, g2) = run(params)
    return params, p1, p2, g1, g2


def _close(a, b):
    for la, lb in zip(a, b, strict=True):
        np.testing.assert_allclose(la["w"], lb["w"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(la["b"], lb["b"], rtol=1e-5, atol=1e-7)


def test_momentum_carries_its_velocity_from_one_step_to_the_next(small):
    """The second step ascends lr·(g2 + 0.9·g1): a member that lost its optimizer state
    between steps would step lr·g2, exactly SGD."""
    lr, decay = 0.5, 0.9
    p0, p1, p2, g1, g2 = _two_steps(small, registry.optimizer("momentum", decay=decay), lr)
    _close(p1, jax.tree.map(lambda p, g: p + lr * g, p0, g1))
    expected = jax.tree.map(lambda p, a, b: p + lr * (b + decay * a), p1, g1, g2)
    _close(p2, expected)
    sgd = jax.tree.map(lambda p, g: p + lr * g, p1, g2)
    assert not np.allclose(p2[0]["w"], sgd[0]["w"], rtol=1e-3, atol=1e-6)


def test_adam_keeps_its_moments_from_one_step_to_the_next(small):
    """Two steps equal optax's Adam with its state threaded by hand (ascent: the negated
    gradient descended)."""
    lr = 0.01
    p0, p1, p2, g1, g2 = _two_steps(small, registry.optimizer("adam"), lr)
    adam = optax.adam(lr)
    state = adam.init(p0)
    ref = p0
    for g, got in ((g1, p1), (g2, p2)):
        updates, state = adam.update(jax.tree.map(jnp.negative, g), state, ref)
        ref = optax.apply_updates(ref, updates)
        _close(got, ref)


@pytest.mark.parametrize("optimizer", [("momentum", {"decay": 0.9}), ("adam", {})])
def test_init_starts_the_optimizer_state_at_rest(small, optimizer):
    """No velocity and no moments before the first step, whatever the learning rate."""
    name, options = optimizer
    opt = registry.optimizer(name, **options)
    spec = member.Spec((784, 8, 1), jax.nn.sigmoid, opt, 64, 1, 1024)
    params = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    shared = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(0))
    state = member.init(spec, jnp.float32(0.3), params, shared)
    for leaf in jax.tree.leaves(state.opt_state):
        assert not np.any(np.asarray(leaf, np.float64))


def test_a_frozen_member_has_no_train_metrics_after_its_stop(small):
    """The epoch that diverges reports what it did; every later epoch of the frozen member
    has NaN train LL and accuracy (it trains no more), and a validation measurement."""
    spec = member.Spec((784, 8, 1), jax.nn.sigmoid, registry.optimizer("sgd"), 64, 1, 1024)
    params = model.from_normals(randomness.init_normals(0, spec.layer_sizes))
    shared = member.Shared(jax.tree.map(jnp.asarray, small), jnp.int32(1))
    healthy = member.init(spec, jnp.float32(0.3), params, shared)
    order = jnp.arange(1024, dtype=jnp.int32).reshape(16, 64)
    seed = member.Seed(order, member.start_lls(spec, params, shared.data))
    lls, accs = jnp.full(16, -50.0), jnp.full(16, 0.5)  # far worse than the start
    for before, frozen_before in ((healthy, False), (healthy._replace(diverged_epoch=0), True)):
        epoch = member.Epoch(before, before, lls, accs)
        after, metrics = member.end_epoch(spec, epoch, seed, shared)
        assert int(after.diverged_epoch) == (0 if frozen_before else 1)
        for name in ("train_ll", "train_accuracy"):
            assert np.isnan(float(metrics[name])) == frozen_before, name
        assert np.isfinite(float(metrics["val_accuracy"]))
