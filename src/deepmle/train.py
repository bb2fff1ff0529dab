"""The front door to training one network from a config: ``spec_from_config`` resolves the
config's names into a ``Spec`` of the core, and ``make_train(config, dataset) -> train(key,
lr, data)`` is the core's ``run`` for one member, from a JAX key.

The maths lives in ``deepmle.core.member``; ``deepmle.sweep`` trains whole populations.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from deepmle import config as config_lib
from deepmle.config import Config, Static
from deepmle.core import checks, registry
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.member import Spec, key_orders, member, run
from deepmle.core.model import init_params
from deepmle.core.types import Array, Dataset, Metrics, Params, PRNGKey
from deepmle.errors import UserError

CALIBRATION_FOLD = 2**32 - 1
"""``fold_in`` data of the calibration key off the shuffle key, whose epochs fold in 0, 1, ...:
no epoch count reaches it."""


def spec_from_config(
    config: Config, layer_sizes: tuple[int, ...], n_train: int, static: Static | None = None
) -> Spec:
    """The Spec of one group of ``config``: layer sizes ``layer_sizes`` (n_inputs, *hidden, 1),
    ``static``'s activation, batch size and optimizer (None: the config's single values), names
    resolved through the registry (the config boundary: activation functions and optax
    optimizers from here on, never names)."""
    static = static or config.static_of(tuple(layer_sizes[1:-1]))
    if static.batch_size > n_train:
        raise UserError(
            f"[train] batch_size {static.batch_size} is larger than the {n_train} training examples"
        )
    try:
        activation = registry.activation(static.activation)
        optimizer = registry.optimizer(static.optimizer)
    except (ValueError, TypeError) as e:
        raise UserError(f"config {config.name}: {e}") from None
    cells = config.cells()
    acting = frozenset(
        k for k, row in HYPERPARAMETERS.items()
        if row.neutral is not None and bool(np.any(cells[k] != row.neutral))
    )  # fmt: skip
    return Spec(
        layer_sizes=tuple(layer_sizes),
        activation=activation,
        optimizer=optimizer,
        batch_size=static.batch_size,
        epochs=config.train.epochs,
        n_train=n_train,
        calibrate=config.train.calibrate == "temperature",
        acting=acting,
    )


def _check_data(data: Dataset, n_inputs: int, n_train: int) -> None:
    """ValueError unless ``data`` has the training split ``train`` was made for (its
    minibatch orders index that many examples), float pixels in [0, 1] of the inputs ``train``
    was made for and 0/1 labels."""
    for name in ("train", "validation", "test"):
        split = getattr(data, name)
        n = checks.inputs(split.x, n_inputs, f"data.{name}.x")
        checks.pixels(split.x, f"data.{name}.x")
        checks.labels(split.y, n, f"data.{name}.y")
    if data.train.y.shape[0] != n_train:
        raise ValueError(
            f"data.train: {data.train.y.shape[0]} examples, but train was made for {n_train} "
            "(make_train(config, dataset) with this data)"
        )


def _as_arrays(data: Dataset) -> Dataset:
    """``data`` as JAX arrays, so that numpy arrays work outside jit too (a traced minibatch
    index cannot index a numpy array); inside jit a no-op. ValueError naming what is not an
    array of numbers."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data: expected a deepmle Dataset, got {type(data).__name__}")
    try:
        return jax.tree.map(jnp.asarray, data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"data: every split's x and y must be numeric arrays ({e})") from None


def make_train(
    config: Config, dataset: Dataset
) -> Callable[[PRNGKey, Array, Dataset], tuple[Params, Metrics]]:
    """``train(key, learning_rate, data) -> (params, metrics)`` for the config's (single)
    network shape, on ``data``: ``dataset`` or another of its shapes, best as device arrays
    (``jax.device_put(dataset)``). ``learning_rate`` is a learning rate, or a dict of traced
    hyperparameters (deepmle.core.hyperparams: ``{"learning_rate": 0.5, "prior_std": 1.0}``),
    the rest at the config's first cell's values. A prior or initial scale acts only if the
    config sets one away from its neutral value (the program otherwise has no code for it).

    Pure, jittable and vmappable over the key and the hyperparameters. The data is an argument,
    not a closure: closed over, jit would embed the dataset in the program as a constant
    (about 90 MB of program text for the embedded data, and seconds of compile). The key is
    split by purpose into ``init`` and ``shuffle``; the calibration reference's key is
    ``fold_in(shuffle, CALIBRATION_FOLD)``, beside the shuffle's per-epoch folds (so adding it
    changed no earlier draw); metrics hold the ``final`` entries and ``"curves"`` (each
    [epochs]). Same maths as ``deepmle run``, whose random draws come from numpy streams per
    seed instead (deepmle.population.randomness).
    """
    config = config_lib.validate(config)
    if len(config.statics()) != 1:
        raise UserError(
            "make_train takes a config with one group (one value of each static "
            "key: hidden_sizes, activation, batch_size, optimizer); use deepmle.sweep"
        )
    spec = spec_from_config(
        config, config.shapes(dataset.train.x.shape[1])[0], dataset.train.y.shape[0]
    )

    defaults = {k: v[0] for k, v in config.cells().items()}

    def train(
        key: PRNGKey, learning_rate: Array | dict[str, Array], data: Dataset
    ) -> tuple[Params, Metrics]:
        hparams = (
            dict(learning_rate)
            if isinstance(learning_rate, dict)
            else {"learning_rate": learning_rate}
        )
        checks.hyperparameters(hparams)
        hparams = {k: jnp.asarray(hparams.get(k, v), jnp.float32) for k, v in defaults.items()}
        data = _as_arrays(data)
        _check_data(data, spec.layer_sizes[0], spec.n_train)
        init_key, shuffle_key = jax.random.split(key)
        calibration_key = jax.random.fold_in(shuffle_key, CALIBRATION_FOLD)
        params = init_params(init_key, spec.layer_sizes)
        orders = key_orders(spec, shuffle_key)
        state, curves, metrics = run(
            member(spec), params, orders, hparams, data, jax.random.key_data(calibration_key)
        )
        return state.params, {**metrics, "curves": curves}

    return train
