"""Sweeps: grids, one compile per shape, sharding over devices and processes, divergence,
the persistent compilation cache, and surviving a kill."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import report, results, sweep
from deepmle.cli import main
from deepmle.progress import Progress

CONFIGS = Path(__file__).parent.parent / "configs"
ROOT = Path(__file__).parent.parent
GRID = [
    "--set", "model.hidden_sizes=[[8], [8, 4]]",
    "--set", "train.learning_rate=[0.3, 1.0]",
    "--set", "train.seeds=3",
    "--set", "train.epochs=1",
    "--set", "train.batch_size=64",
]  # fmt: skip


def _grid_config(**train) -> config_lib.Config:
    return config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((4,), (6, 4))),
        train=config_lib.TrainConfig(
            **{"learning_rate": (0.3, 1.0, 3.0), "seeds": 2, "epochs": 1, "batch_size": 64} | train
        ),
    )


def test_grid_is_one_program_per_shape_and_learning_rates_do_not_recompile(small, tmp_path):
    groups, ahead = sweep.run(_grid_config(), small, tmp_path / "a")
    assert [g.hidden for g in groups] == [(4,), (6, 4)]
    for g in groups:
        assert g.final["val_accuracy"].shape == (2, 3)  # [seeds, lrs]
        assert g.curves["train_ll"].shape == (1, 2, 3)  # [epochs, seeds, lrs]
    # init, epoch and final per shape, compiled ahead; none when training
    assert ahead["compiles"] == 3 * 2
    assert [g.info["compiles"] for g in groups] == [0, 0]
    rows = report.summary_rows(groups)
    assert len(rows) == 6 and sum(r["selected"] for r in rows) == 1
    assert len(report.member_rows(groups)) == 12
    # New learning-rate values and a new sweep: the same programs, nothing compiles.
    again, ahead = sweep.run(_grid_config(learning_rate=(0.01, 0.1, 10.0)), small, tmp_path / "b")
    assert ahead["compiles"] == 0 and [g.info["compiles"] for g in again] == [0, 0]
    assert not np.allclose(again[0].final["val_ll"], groups[0].final["val_ll"])


def test_selection_uses_validation_only():
    rows = [
        {"val_accuracy_mean": 0.98, "val_ll_mean": -0.05, "test_accuracy_mean": 0.999},
        {"val_accuracy_mean": 0.99, "val_ll_mean": -0.06, "test_accuracy_mean": 0.90},
        {"val_accuracy_mean": 0.99, "val_ll_mean": -0.04, "test_accuracy_mean": 0.50},
        {"val_accuracy_mean": float("nan"), "val_ll_mean": float("nan")},
    ]
    assert report.select_best(rows) == 2


def test_cli_sweep_and_divergence(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-cache", "--quiet",
            "--set", "train.learning_rate=[0.5, 1e38]", "--set", "train.seeds=2",
            "--set", "train.epochs=2", "--no-plots"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "seed 0 diverged at epoch 1" in printed and "seed 1 diverged at epoch 1" in printed
    ok, bad = results.read_csv(out / "summary.csv")
    assert ok["diverged"] == "0" and bad["diverged"] == "2" and ok["selected"] == "True"
    members = results.read_csv(out / "members.csv")
    assert [m["diverged_at_epoch"] for m in members if m["learning_rate"] == "1e+38"] == ["1", "1"]
    all_bad = [*args[:3], str(tmp_path / "bad"), *args[4:]]
    all_bad[all_bad.index("train.learning_rate=[0.5, 1e38]")] = "train.learning_rate=1e38"
    assert main(all_bad) == 1
    assert "every member diverged" in capsys.readouterr().err
    assert (tmp_path / "bad" / "summary.csv").is_file()


def _env(devices: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _deepmle(out: Path, *extra: str, devices: int = 1, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--out", str(out),
           "--no-plots", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(devices), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _members(run_dir: Path) -> dict[tuple[str, str, str], dict[str, float]]:
    keys = ("hidden_sizes", "learning_rate", "seed")
    return {
        tuple(m[k] for k in keys): {k: float(v) for k, v in m.items() if k not in keys and v
                                    and k != "diverged"}
        for m in results.read_csv(run_dir / "members.csv")
    }  # fmt: skip


def _assert_same_results(a: Path, b: Path) -> None:
    ma, mb = _members(a), _members(b)
    assert ma.keys() == mb.keys()
    for key in ma:
        for metric, value in ma[key].items():
            assert mb[key][metric] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, metric)


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    code, _, err = _finish(_deepmle(out, "--no-cache", "--quiet", *GRID))
    assert code == 0, err
    return out


def test_four_devices_give_the_same_results(one_device_run, tmp_path):
    out = tmp_path / "run"
    code, _, err = _finish(_deepmle(out, "--no-cache", "--quiet", *GRID, devices=4))
    assert code == 0, err
    assert len(json.loads((out / "meta.json").read_text())["devices"]) == 4
    _assert_same_results(one_device_run, out)  # 3 seeds on 4 devices: padding included


def test_two_processes_give_the_same_results(one_device_run, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    procs = [
        _deepmle(out, "--no-cache", "--quiet", *GRID, "--coordinator", f"127.0.0.1:{port}",
                 "--num-processes", "2", "--process-id", str(i), devices=2)
        for i in range(2)
    ]  # fmt: skip
    for p in procs:
        code, _, err = _finish(p)
        assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["process_count"] == 2 and len(meta["devices"]) == 4
    _assert_same_results(one_device_run, out)


def test_persistent_cache_second_run_compiles_nothing(tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache"), "--quiet", *GRID[:2], *GRID[4:]]
    for i, expect_compiles in ((0, True), (1, False)):
        code, _, err = _finish(_deepmle(tmp_path / f"run{i}", *cache))
        assert code == 0, err
        meta = json.loads((tmp_path / f"run{i}" / "meta.json").read_text())
        compiles, hits = meta["compiles"], meta["cache_hits"]
        assert (compiles > 0) == expect_compiles and (hits > 0) != expect_compiles
    assert any((tmp_path / "cache").iterdir())


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def test_kill_and_interrupt_mid_sweep_then_resume(tmp_path):
    """The groups after h16 and h192 take seconds, so each signal lands mid-group."""
    out = tmp_path / "run"
    grid = ["--no-cache", "--set", "model.hidden_sizes=[[16], [192], [256]]",
            "--set", "train.seeds=8", "--set", "train.epochs=3"]  # fmt: skip
    groups = out / "groups"

    proc = _deepmle(out, *grid)
    _wait_for(groups / "h16.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sweep.load_group(out, (16,)) is not None  # finished group intact and readable
    assert sweep.load_group(out, (192,)) is None

    # A shell's background job (as CI may be) starts with SIGINT ignored, an ignored signal
    # stays ignored across exec, and Python then installs no KeyboardInterrupt handler.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        proc = _deepmle(out, *grid)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    _wait_for(groups / "h192.json", proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = _finish(proc)
    assert "h16: already done, skipped" in err
    assert code == 130 and "re-run to resume" in err.strip().splitlines()[-1]
    assert sweep.load_group(out, (192,)) is not None
    assert sweep.load_group(out, (256,)) is None

    code, _, err = _finish(_deepmle(out, *grid))
    assert code == 0, err
    assert "h16: already done" in err and "h192: already done" in err and "h256: done" in err
    assert len(results.read_csv(out / "summary.csv")) == 3
    assert not list(out.rglob("*.tmp"))


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    def drive(**kw) -> str:
        stream = io.StringIO()
        p = Progress(stream=stream, **kw)
        p.begin(groups=2, epochs_per_group=2)
        p.skip(0, 2, "h8", 2)
        p.group_start(1, 2, "h16")
        for e in range(2):
            p.epoch(e, 2, -0.1)
        p.group_done(-0.1, 1.0, 2.0)
        return stream.getvalue()

    bar = drive(bar=True)
    assert "ETA" in bar and "epoch 2/2" in bar and "LL -0.1000" in bar and "\r" in bar
    lines = drive(bar=False)
    assert "ETA" not in lines and lines.count("\n") == 2
    assert "h8: already done" in lines and "group 2/2 h16: done" in lines
    assert drive(bar=True, quiet=True) == ""


@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_sweep_path_matches_the_straightforward_member(small, tmp_path, monkeypatch, chunk_bytes):
    """The speed-ups (shared minibatch, sharded and chunked seeds, compile ahead) change
    results only within float tolerance of `train_member`, one member at a time."""
    import chex
    import jax

    from deepmle.train import device_data, seed_keys, spec_from_config, train_member

    if chunk_bytes is not None:  # one seed per chunk
        monkeypatch.setattr(sweep, "CHUNK_BYTES", chunk_bytes)
        sweep.compiled_program.cache_clear()
    config = _grid_config(seeds=3, epochs=2, learning_rate=(0.3, 2.0))
    (g, _), _ = sweep.run(config, small, tmp_path / "run")
    spec = spec_from_config(config, (784, 4, 1), small.train.y.shape[0])
    if chunk_bytes is not None:
        assert sweep.seeds_per_chunk(spec, 3, 2) == 1
    alone = jax.jit(lambda k, lr: train_member(spec, device_data(small), k, lr))
    for s, li in [(0, 0), (2, 1)]:
        params, metrics = alone(seed_keys(np.arange(3))[s], config.train.learning_rate[li])
        member = [{k: v[s, li] for k, v in layer.items()} for layer in g.params]
        chex.assert_trees_all_close(member, params, rtol=1e-4, atol=1e-5)
        assert g.final["val_accuracy"][s, li] == pytest.approx(float(metrics["val_accuracy"]))
    sweep.compiled_program.cache_clear()


def test_rerun_is_bitwise_identical(small, tmp_path):
    a, _ = sweep.run(_grid_config(), small, tmp_path / "a")
    b, _ = sweep.run(_grid_config(), small, tmp_path / "b")
    for ga, gb in zip(a, b, strict=True):
        for la, lb in zip(ga.params, gb.params, strict=True):
            assert all(np.array_equal(la[k], lb[k]) for k in la)
        assert all(np.array_equal(ga.curves[k], gb.curves[k]) for k in ga.curves)


def test_seeds_per_chunk_fits_the_budget():
    from deepmle.train import Spec

    big, small_net = Spec(layer_sizes=(784, 128, 1)), Spec(layer_sizes=(784, 16, 1))
    assert sweep.seeds_per_chunk(big, 8, 4) == 1  # 1.6 MB of weights per seed
    assert sweep.seeds_per_chunk(small_net, 8, 4) == 8  # 0.2 MB per seed
    assert sweep.seeds_per_chunk(small_net, 12, 4) == 6  # the largest divisor that fits
    assert sweep.seeds_per_chunk(Spec(layer_sizes=(784, 4096, 1)), 8, 4) == 1
