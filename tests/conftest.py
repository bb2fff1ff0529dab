"""Strict JAX for every test (as Equinox's tests do): implicit rank promotion raises, which
catches the classic [batch] vs [batch, 1] broadcast in a log-likelihood."""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from deepmle import config as config_lib  # noqa: E402
from deepmle import data  # noqa: E402


@pytest.fixture(scope="session")
def embedded() -> data.Dataset:
    return data.load(config_lib.DataConfig())


@pytest.fixture(scope="session")
def small(embedded: data.Dataset) -> data.Dataset:
    """A slice of the real data, small enough for many compiles in a test run."""
    cut = lambda s, n: data.Split(s.x[:n], s.y[:n])  # noqa: E731
    return data.Dataset(
        cut(embedded.train, 1024), cut(embedded.validation, 256), cut(embedded.test, 256)
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
