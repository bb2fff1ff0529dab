"""The device layout and the compiled programs: the sweep's members equal the one definition
run alone, one compile per shape, and any number of devices or processes gives the same
results as one device."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import runtime, sweep, train
from deepmle.core import member, model, registry
from deepmle.population import groups, programs, randomness

from ..helpers import (
    CONFIGS,
    built,
    deepmle_process,
    finish,
    free_port,
    member_alone,
    once,
    same_members,
)

GRID = [
    "--set", "model.hidden_sizes=[[8], [8, 4]]",
    "--set", "train.learning_rate=[0.3, 1.0]",
    "--set", "train.seeds=3",
    "--set", "train.epochs=1",
    "--set", "train.batch_size=64",
]  # fmt: skip


def _grid(**train_kw) -> config_lib.Config:
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((4,), (6, 4))),
        train=config_lib.TrainConfig(
            **{"learning_rate": (0.3, 1.0, 3.0), "seeds": 2, "epochs": 1, "batch_size": 64}
            | train_kw
        ),
    )


@pytest.mark.parametrize(
    ("seeds", "lrs", "devices", "expected"),
    [
        (2, 4, 4, (2, 2)),  # the example: 2 members per device, no padding
        (8, 4, 1, (1, 1)),
        (8, 4, 2, (2, 1)),  # seeds first: a seed's learning rates share its minibatch
        (3, 2, 4, (4, 1)),  # 8 slots for 6 members; (2, 2) also pads 2, more seeds win
        (1, 1000, 64, (1, 64)),
        (125, 8, 64, (64, 1)),  # docs/sweeps.md's pod: 1,024 slots for 1,000 members
    ],
)
def test_mesh_shape_uses_every_device_with_least_padding(seeds, lrs, devices, expected):
    assert programs.mesh_shape(seeds, lrs, devices) == expected


_OPT, _ACT = list(registry.OPTIMIZERS), list(registry.ACTIVATIONS)
CASES = [
    (_OPT[i % len(_OPT)], _ACT[i % len(_ACT)], 1 if i == 0 else programs.CHUNK_BYTES)
    for i in range(max(len(_OPT), len(_ACT)))
]
"""Every row of the registries (each optimizer, each activation, paired off: each case is a
compile, the suite's main cost), and chunks of one seed."""


@pytest.mark.parametrize(("optimizer", "activation", "chunk_bytes"), CASES)
def test_members_equal_the_one_definition_run_alone(
    small, tmp_path, optimizer, activation, chunk_bytes
):
    """vmaps, the [784, lrs, h] layout, training_matmul, leaving out the pixels no image inks,
    chunks of seeds and sharding change results only within float tolerance of train.run for
    one member, on every pixel, with the same draws; for every registered optimizer and
    activation."""
    lrs = (0.01, 0.3)
    config = _grid(seeds=3, epochs=2, learning_rate=lrs, optimizer=optimizer)
    config = replace(config, model=replace(config.model, activation=activation))
    res = sweep.run(config, small, tmp_path / "run", chunk_bytes=chunk_bytes).results
    spec = train.spec_from_config(config, (784, 4, 1), small.train.y.shape[0])
    g = res.groups[0]
    for s, li in [(0, 0), (2, 1)]:
        state, curves, final = member_alone(spec, small, s, lrs[li])
        chex.assert_trees_all_close(g.member_params(s, li), state.params, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.curves["val_ll"][s, li], curves["val_ll"], rtol=1e-4)
        assert g.final["val_accuracy"][s, li] == pytest.approx(float(final["val_accuracy"]))
        assert g.final["test_ll"][s, li] == pytest.approx(float(final["test_ll"]), rel=1e-4)


def test_pixels_no_training_image_inks_keep_their_initial_weights(embedded, small, tmp_path):
    pixels = programs.split_pixels(embedded)
    assert len(pixels.used) + len(pixels.unused) == 784 and len(pixels.unused) == 147
    assert not embedded.train.x[:, pixels.unused].any()
    assert embedded.test.x[:, pixels.unused].any()  # the test split does ink some of them
    unused = programs.split_pixels(small).unused
    res = sweep.run(_grid(seeds=2, epochs=1), small, tmp_path / "run").results
    w0 = model.from_normals(randomness.init_normals(1, (784, 4, 1)))[0]["w"]
    trained = res.groups[0].params[0]["w"][1]  # seed 1: [lrs, 784, 4]
    for li in range(trained.shape[0]):
        np.testing.assert_array_equal(trained[li][unused], w0[unused])
        assert not np.allclose(trained[li][pixels.used[:50]], w0[pixels.used[:50]])


def test_seeds_per_chunk_fits_the_budget():
    spec = lambda h: member.Spec((784, h, 1), None, None, 128, 1, 1000)  # noqa: E731
    assert programs.seeds_per_chunk(spec(128), 637, 4, 4, programs.CHUNK_BYTES) == 1
    assert programs.seeds_per_chunk(spec(64), 637, 4, 4, programs.CHUNK_BYTES) == 2
    assert programs.seeds_per_chunk(spec(16), 637, 4, 4, programs.CHUNK_BYTES) == 4
    assert programs.seeds_per_chunk(spec(16), 637, 6, 4, 3 * 2**20) == 6
    assert programs.seeds_per_chunk(spec(4096), 784, 8, 4, programs.CHUNK_BYTES) == 1


def test_one_compile_per_shape_and_new_learning_rates_compile_nothing(small, tmp_path):
    cache, log = groups.ProgramCache(), runtime.CompileLog.get()
    before = log.snapshot()
    res = sweep.run(_grid(), small, tmp_path / "a", cache=cache).results
    # one epoch program per shape, and one scores program that both shapes share
    assert built(log.since(before)) == 3
    for g in res.groups:
        assert g.final["val_accuracy"].shape == (2, 3) and g.curves["train_ll"].shape == (2, 3, 1)
    before = log.snapshot()
    again = sweep.run(_grid(learning_rate=(0.01, 0.1, 10.0)), small, tmp_path / "b", cache=cache)
    assert built(log.since(before)) == 0
    assert not np.allclose(again.results.groups[0].final["val_ll"], res.groups[0].final["val_ll"])


def test_a_second_sweep_in_the_same_process_compiles_nothing(small, tmp_path):
    # a notebook's second sweep.run of a shape, given no cache: the process's own is used
    log = runtime.CompileLog.get()
    first = sweep.run(_grid(learning_rate=(0.02, 0.2, 2.0)), small, tmp_path / "a").results
    before = log.snapshot()
    again = sweep.run(_grid(learning_rate=(0.03, 0.3, 3.0)), small, tmp_path / "b").results
    assert built(log.since(before)) == 0
    assert not np.allclose(again.groups[0].final["val_ll"], first.groups[0].final["val_ll"])


def test_a_random_search_is_one_compile_per_shape_whatever_its_samples(small, tmp_path):
    cache, log = groups.ProgramCache(), runtime.CompileLog.get()
    for samples, shapes in ((3, ((4,),)), (7, ((4,), (6, 4)))):
        search = {"log_uniform": [0.01, 3.0], "samples": samples}
        config = config_lib.from_dict({"model": {"hidden_sizes": [list(h) for h in shapes]},
                                       "train": {"learning_rate": search, "seeds": 2,
                                                 "epochs": 1, "batch_size": 64}})  # fmt: skip
        assert len(config.train.learning_rate) == samples
        before = log.snapshot()
        sweep.run(config, small, tmp_path / f"s{samples}", cache=cache)
        assert built(log.since(before)) == len(shapes) + 1  # and the shared scores program


def test_rerun_is_bitwise_identical(small, tmp_path):
    a = sweep.run(_grid(), small, tmp_path / "a").results
    b = sweep.run(_grid(), small, tmp_path / "b").results
    for ga, gb in zip(a.groups, b.groups, strict=True):
        chex.assert_trees_all_equal(ga.params, gb.params)
        chex.assert_trees_all_equal(ga.curves, gb.curves)


def _one_device(d: Path) -> None:
    code, _, err = finish(deepmle_process(d / "run", "--quiet", *GRID))
    assert code == 0, err


@pytest.fixture(scope="module")
def one_device_run() -> Path:
    """GRID on one device, built once per test run (not once per pytest-xdist worker that
    runs a test of this module): read it, or copy it to write."""
    return once("programs-one-device", _one_device) / "run"


@pytest.mark.slow
def test_four_devices_give_the_same_results(one_device_run, tmp_path):
    out = tmp_path / "run"
    code, _, err = finish(deepmle_process(out, "--quiet", *GRID, devices=4))
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["devices"]) == 4
    assert meta["layout"] == {"devices": 4, "mesh": {"seeds": 4, "cells": 1},
                              "members_per_device": 2, "padded_members": 2}  # fmt: skip
    same_members(one_device_run, out)


@pytest.mark.slow
def test_two_seeds_by_four_learning_rates_fill_four_devices_without_padding(tmp_path):
    grid = ["--set", "train.seeds=2", "--set", "train.learning_rate=[0.1, 0.3, 1.0, 3.0]",
            "--set", "train.epochs=1", "--set", "train.batch_size=64",
            "--quiet"]  # fmt: skip
    runs = {}
    for devices in (1, 4):
        runs[devices] = tmp_path / f"d{devices}"
        code, _, err = finish(deepmle_process(runs[devices], *grid, devices=devices))
        assert code == 0, err
    meta = json.loads((runs[4] / "meta.json").read_text())
    assert meta["layout"] == {"devices": 4, "mesh": {"seeds": 2, "cells": 2},
                              "members_per_device": 2, "padded_members": 0}  # fmt: skip
    same_members(runs[1], runs[4])


@pytest.mark.slow
def test_two_processes_give_the_same_results(one_device_run, tmp_path):
    port = free_port()
    out = tmp_path / "run"
    procs = [
        deepmle_process(out, "--quiet", *GRID, "--coordinator", f"127.0.0.1:{port}",
                        "--num-processes", "2", "--process-id", str(i), devices=2)
        for i in range(2)
    ]  # fmt: skip
    _two_processes_match(procs, out, one_device_run)


def _two_processes_match(procs: list, out: Path, reference: Path) -> None:
    """Both processes finish; their run has 2 processes x 2 devices and one device's results."""
    for p in procs:
        code, _, err = finish(p)
        assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["process_count"] == 2 and len(meta["devices"]) == 4
    same_members(reference, out)


def test_memory_estimate_refuses_a_grid_that_cannot_fit(small, tmp_path):
    config = _grid(seeds=10**6, learning_rate=(0.1,))
    with pytest.raises(groups.UserError, match=r"need ~[0-9.]+ GB"):
        sweep.run(config, small, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_resume_what_process_0_finds_done(one_device_run, tmp_path):
    """Only process 0 reads the run directory; the other skips the same groups (else their
    collectives would not match and the run would hang)."""
    out = tmp_path / "run"
    shutil.copytree(one_device_run, out)
    (out / "groups" / "h8-4.json").unlink()  # h8 finished, h8-4 not
    port = free_port()
    procs = [
        deepmle_process(out, *GRID, "--coordinator", f"127.0.0.1:{port}",
                        "--num-processes", "2", "--process-id", str(i), devices=2)
        for i in range(2)
    ]  # fmt: skip
    results = [finish(p, timeout=240) for p in procs]
    for code, _, err in results:
        assert code == 0, err
    assert "h8: already done" in results[0][2] and "h8-4: done" in results[0][2]
    same_members(one_device_run, out)


@pytest.mark.slow
def test_distributed_joins_a_cluster_it_detects(one_device_run, tmp_path):
    """--distributed with no arguments: two processes find each other from a Slurm
    environment (as srun would set it), with no --coordinator given."""
    port = free_port(61440 + 100, 65536)
    slurm = {"SLURM_JOB_ID": str(port - 61440), "SLURM_STEP_NODELIST": "localhost",
             "SLURM_NTASKS": "2"}  # fmt: skip
    out = tmp_path / "run"
    procs = []
    for i in range(2):
        env = {**slurm, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)}
        procs.append(deepmle_process(out, "--quiet", *GRID, "--distributed",
                                     devices=2, extra_env=env))  # fmt: skip
    _two_processes_match(procs, out, one_device_run)


def test_huge_epochs_are_blamed_on_epochs_not_on_seeds_or_shapes(small, tmp_path):
    config = _grid(seeds=2, learning_rate=(0.1,), epochs=10**8)
    with pytest.raises(groups.UserError, match=r"x 100000000 epochs need .* run fewer epochs"):
        sweep.run(config, small, tmp_path / "run")
    config = _grid(seeds=10**6, learning_rate=(0.1,))
    with pytest.raises(groups.UserError, match="run fewer seeds, cells or shapes"):
        sweep.run(config, small, tmp_path / "run")


@pytest.mark.parametrize("chunk", [1, 2, 3, 6])
def test_every_chunking_gives_each_seed_its_own_state_and_minibatches(chunk):
    """6 seeds by chunks of 2 or 3 (more than one, fewer than all) give what one chunk of
    all does: seed s still steps from its own state through its own minibatch order."""
    steps, n, batch = 4, 6, 5
    order = jnp.asarray(np.random.default_rng(0).integers(0, 1000, (steps, n, batch)), jnp.int32)
    state = {"w": jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3), "ll": jnp.ones(n)}

    def fn(state, order):  # per seed (the leading state axis, the order's second)
        weights = jnp.arange(1, batch + 1)[None, None, :]
        seen = jnp.sum(order * weights, axis=(0, 2)).astype(jnp.float32)
        new = {"w": state["w"] * 2 + seen[:, None], "ll": state["ll"] - seen}
        return new, jnp.moveaxis(order[:, :, 0], 0, 1)

    whole = fn(state, order)
    chunked = jax.jit(lambda s, o: programs._by_chunks(fn, chunk, s, o))(state, order)
    chex.assert_trees_all_equal(chunked, whole)


def test_a_sweep_in_chunks_of_two_of_four_seeds_equals_one_chunk_of_all(small, tmp_path):
    """chunk_bytes sized for 2 seeds of 4: every member's results equal the run in one chunk."""
    config = _grid(seeds=4, epochs=2, learning_rate=(0.3, 1.0))
    config = replace(config, model=replace(config.model, hidden_sizes=((4,),)))
    spec = train.spec_from_config(config, (784, 4, 1), small.train.y.shape[0])
    used = len(programs.split_pixels(small).used)
    two = 2 * 4 * 2 * (used * 4 + 4)  # 2 seeds x 2 lrs of float32 weights
    assert programs.seeds_per_chunk(spec, used, 4, 2, two) == 2
    sweep.run(config, small, tmp_path / "two", chunk_bytes=two)
    sweep.run(config, small, tmp_path / "all")
    same_members(tmp_path / "two", tmp_path / "all")


@pytest.mark.slow
def test_the_programs_test_metrics_are_those_of_its_saved_parameters(tmp_path):
    """The command as a user runs it (its own CPU settings): every member's test accuracy and
    LL, measured inside the epoch program, equal those of its saved parameters evaluated
    again outside it. The shape is the one where two CPU devices with Eigen dots once got the
    test split wrong on the first device (784-64-1, 8 seeds x 5 lrs, 7 v 9)."""
    import os
    import subprocess
    import sys

    from deepmle import data
    from deepmle.analysis import inference, load

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--out", str(out),
           "--no-plots", "--quiet", "--set", "model.hidden_sizes=[[64]]",
           "--set", "data.digits=[7, 9]", "--set", "train.epochs=2",
           "--set", "train.learning_rate=[0.1, 0.3, 1.0, 3.0, 10.0]"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = load.load_run(out)
    ds = data.load(res.config.data)
    (g,) = res.groups
    assert g.final["test_accuracy"].shape == (8, 5)
    z = inference.predictions(g, ds.test.x, res.config.model.activation)  # [8, 5, n]
    again = ((z > 0) == (ds.test.y > 0.5)).mean(-1)
    np.testing.assert_allclose(g.final["test_accuracy"], again, atol=1e-6)
