"""Strict JAX for every test (as Equinox's tests do): implicit rank promotion raises, which
catches the classic [batch] vs [batch, 1] broadcast in a log-likelihood.

Every `deepmle` subprocess (a command, a notebook kernel, a research script) gets one
persistent compilation cache for the whole test run, through XDG_CACHE_HOME, as on a
researcher's machine: the suite's subprocesses compile the same few programs. It is the run's
own, empty at its start, so that no test reads what an earlier run or the user's ~/.cache
left, and nothing is written there; a test about the cache itself gives its own directory.
The test processes (each pytest-xdist worker) use the same cache: a program one worker or
subprocess compiled, another reads. The same directory holds what tests share once per run
(helpers.once)."""

import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

from deepmle import config as config_lib  # noqa: E402
from deepmle import data, runtime  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers inherit their controller's environment: one cache for the run
    if not (
        os.environ.get("PYTEST_XDIST_WORKER")
        and "deepmle-tests-" in os.environ.get("XDG_CACHE_HOME", "")
    ):
        home = Path(tempfile.mkdtemp(prefix="deepmle-tests-"))
        config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
        os.environ["XDG_CACHE_HOME"] = str(home)
    runtime.enable_compilation_cache(runtime.default_cache_dir())


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
