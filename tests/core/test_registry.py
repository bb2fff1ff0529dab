"""Names are resolved once, from one table that config validation also reads."""

import jax
import jax.numpy as jnp
import optax
import pytest

from deepmle import config as config_lib
from deepmle.core import registry


def test_names_resolve_to_functions_and_transformations():
    assert registry.activation("sigmoid") is jax.nn.sigmoid
    opt = registry.optimizer("momentum", decay=0.5)
    assert opt == registry.optimizer("momentum", decay=0.5) and hash(opt) == hash(
        registry.optimizer("momentum", decay=0.5)
    )
    assert isinstance(opt(0.1), optax.GradientTransformation)
    assert opt.options == (("decay", 0.5),)


@pytest.mark.parametrize(
    ("kind", "fn"), [("activation", registry.activation), ("optimizer", registry.optimizer)]
)
def test_unknown_names_list_the_valid_ones(kind, fn):
    table = registry.ACTIVATIONS if kind == "activation" else registry.OPTIMIZERS
    with pytest.raises(ValueError, match=f"unknown {kind} 'nope'; valid: {', '.join(table)}"):
        fn("nope")


def test_config_validation_reads_the_registry(monkeypatch):
    monkeypatch.setitem(registry.ACTIVATIONS, "swish", "jax.nn.swish")
    assert registry.activation("swish") is jax.nn.swish
    config = config_lib.from_dict({"model": {"activation": "swish"}})
    assert config.model.activation == "swish"
    with pytest.raises(config_lib.ConfigError, match="did you mean 'swish'"):
        config_lib.from_dict({"model": {"activation": "swsh"}})


def test_ascent_optimizer_moves_up_the_gradient():
    tx = registry.optimizer("sgd")(0.5)
    params = {"w": 1.0}
    updates, _ = tx.update({"w": 2.0}, tx.init(params), params)
    assert updates["w"] == pytest.approx(1.0)  # +lr * gradient: ascent


@pytest.mark.parametrize("name", list(registry.OPTIMIZERS))
def test_every_optimizer_row_builds_from_a_config_and_checks_its_options(name):
    """Each row's options come from traced hyperparameters [train] has, and name parameters of
    its factory; an option the factory does not take is a TypeError naming it."""
    train = config_lib.TrainConfig(optimizer=name)
    opt = registry.optimizer(name)
    assert opt.options == ()
    assert all(hasattr(train, key) for key in registry.optimizer_hyperparameters(name))
    assert opt.hyperparameters == registry.optimizer_hyperparameters(name)
    assert opt.zero_gradient_keeps_weight == registry.OPTIMIZERS[name].zero_gradient_keeps_weight
    params = {"w": jnp.ones(3)}
    tx = opt(0.1)
    updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    if opt.zero_gradient_keeps_weight:
        assert not jnp.any(updates["w"])
    with pytest.raises(TypeError, match=f"optimizer '{name}' takes no option 'nope'"):
        registry.optimizer(name, nope=1.0)
