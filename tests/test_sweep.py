"""Running a config end to end: resume after a real kill and a real Ctrl-C, the persistent
compilation cache, divergence as a researcher means it, and the printed table."""

import csv
import json
import signal

import chex
import pytest

from deepmle import config as config_lib
from deepmle import results, runtime, sweep
from deepmle.analysis.load import load_run
from deepmle.cli import main
from deepmle.population.groups import ProgramCache
from deepmle.runs import store

from .helpers import CONFIGS, built, deepmle_process, finish, wait_for


@pytest.mark.slow
def test_kill_and_interrupt_mid_sweep_then_resume(tmp_path):
    """The groups after h16 and h192 take seconds, so each signal lands mid-group."""
    out = tmp_path / "run"
    grid = ["--set", "model.hidden_sizes=[[16], [192], [256]]",
            "--set", "train.seeds=8", "--set", "train.epochs=4"]  # fmt: skip
    groups = out / "groups"

    proc = deepmle_process(out, *grid)
    wait_for(groups / "h16.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    config = config_lib.load(out / "config.toml")
    assert store.read_group(out, config, (16,))[0] is not None  # finished group whole
    assert store.read_group(out, config, (192,))[0] is None

    proc = deepmle_process(out, *grid)
    wait_for(groups / "h192.json", proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert "h16: already done, skipped" in err
    assert code == 130 and "re-run to resume" in err.strip().splitlines()[-1]
    assert store.read_group(out, config, (192,))[0] is not None
    assert store.read_group(out, config, (256,))[0] is None

    code, _, err = finish(deepmle_process(out, *grid))
    assert code == 0, err
    assert "h16: already done" in err and "h192: already done" in err and "h256: done" in err
    assert len(results.load_run(out).summary) == 3
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_persistent_cache_second_run_compiles_nothing(tmp_path):
    args = ["--cache-dir", str(tmp_path / "cache"), "--quiet",
            "--set", "model.hidden_sizes=[[8], [8, 4]]", "--set", "train.epochs=1"]  # fmt: skip
    for i, expect_compiles in ((0, True), (1, False)):
        code, _, err = finish(deepmle_process(tmp_path / f"run{i}", *args))
        assert code == 0, err
        meta = json.loads((tmp_path / f"run{i}" / "meta.json").read_text())
        compiles, hits = meta["compiles"], meta["cache_hits"]
        assert (compiles > 0) == expect_compiles and (hits > 0) != expect_compiles
    assert any((tmp_path / "cache").iterdir())


def test_divergence_means_worse_than_the_start(tmp_path, capsys):
    """lr 1000 keeps a sigmoid network finite but far worse than its initialisation; lr 1e30
    likewise. Both are divergence, reported with the reason."""
    out = tmp_path / "run"
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-plots",
            "--set", "train.learning_rate=[0.3, 1000, 1e30]", "--set", "train.seeds=2",
            "--set", "train.epochs=2"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = results.load_run(out).summary
    assert [r["diverged"] for r in rows] == [0, 2, 2]
    assert rows[0]["selected"]
    assert "train LL far below its initial value (train LL " in printed  # and the LLs
    table = printed.split("mean ±")[0]
    assert max(len(token) for token in table.split()) <= 12  # every number printed compactly
    members = {(m["learning_rate"], m["seed"]): m for m in _members(out)}
    assert members[("1000.0", "0")]["diverged_at_epoch"] == "1"
    stop = members[("1000.0", "0")]  # more than the guard's margin below its start, recorded
    assert float(stop["diverged_train_ll"]) < float(stop["diverged_start_ll"]) - 2


def _members(out):
    import csv

    with open(out / "members.csv") as f:
        return list(csv.DictReader(f))


def test_every_member_diverged_is_exit_1_and_still_writes_the_run(tmp_path, capsys):
    out = tmp_path / "bad"
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-plots",
            "--set", "train.learning_rate=1e38", "--set", "train.seeds=2",
            "--set", "train.epochs=1"]  # fmt: skip
    assert main(args) == 1
    assert "every member diverged" in capsys.readouterr().err
    assert (out / "summary.csv").is_file()


@pytest.mark.parametrize(
    "change", [{"learning_rate": (float("nan"),)}, {"epochs": 0}, {"calibrate": "platt"}]
)
def test_run_validates_a_config_changed_in_code_and_writes_nothing(change, small, tmp_path):
    from dataclasses import replace

    from deepmle import sweep

    base = config_lib.load(CONFIGS / "seed.toml")
    config = replace(base, train=replace(base.train, **change))
    (key,) = change
    with pytest.raises(config_lib.ConfigError, match=f"config 'seed': \\[train\\] {key}"):
        sweep.run(config, small, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_prior_sweep_is_one_program_with_a_column_per_hyperparameter(small, tmp_path, capsys):
    """prior_std x learning rate: one compiled program for the shape, a prior_std column in
    summary.csv and members.csv, explain by KEY=VALUE, and the prior shrinks the weights."""
    import csv

    import numpy as np

    from deepmle import sweep
    from deepmle.analysis import report
    from deepmle.population.groups import ProgramCache

    config = config_lib.from_dict(
        {"model": {"hidden_sizes": [8]},
         "train": {"learning_rate": [0.5, 1.0], "prior_std": [float("inf"), 0.05],
                   "epochs": 2, "seeds": 2, "batch_size": 64}},
        name="map",
    )  # fmt: skip
    cache = ProgramCache()
    out = sweep.run(config, small, tmp_path / "run", cache=cache)
    assert len(cache._programs) == 1  # four cells, one program
    rows = out.results.summary
    assert [(r["learning_rate"], r["prior_std"]) for r in rows] == [
        (0.5, float("inf")), (0.5, 0.05), (1.0, float("inf")), (1.0, 0.05)
    ]  # fmt: skip
    for name in ("summary.csv", "members.csv"):
        with open(tmp_path / "run" / name) as f:
            assert {"learning_rate", "prior_std"} <= set(next(csv.reader(f)))
    g = out.results.groups[0]
    norm = [float(np.sum(g.params[0]["w"][:, i] ** 2)) for i in range(4)]
    assert norm[1] < norm[0] and norm[3] < norm[2]  # σ 0.05 pulls the weights towards 0
    table = report.table(rows)
    assert "prior_std" in table.splitlines()[0]
    assert main(["explain", str(tmp_path / "run"), "h8", "lr=1", "prior_std=0.05"]) == 0
    assert "h8 lr 1 prior_std 0.05: a grid run" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "run"), "h8", "lr=1"]) == 2
    assert "is 2 cells" in capsys.readouterr().err


STATIC = {"model": {"hidden_sizes": [[4]], "activation": ["sigmoid", "tanh"]},
          "train": {"batch_size": [64, 128], "learning_rate": [0.3, 1.0], "seeds": 2,
                    "epochs": 1}}  # fmt: skip
"""configs/static_sweep.toml, shrunk: activation x batch size, four groups."""


def test_a_static_sweep_is_one_program_per_group_each_as_if_run_alone(small, tmp_path):
    cache, log = ProgramCache(), runtime.CompileLog.get()
    config = config_lib.from_dict(STATIC)
    before = log.snapshot()
    res = sweep.run(config, small, tmp_path / "sweep", cache=cache).results
    # one epoch program per (activation, batch size), one scores program all four share
    assert built(log.since(before)) == 5
    names = ["h4-sigmoid-b64", "h4-sigmoid-b128", "h4-tanh-b64", "h4-tanh-b128"]
    assert [g.name for g in res.groups] == names
    assert sorted(p.stem for p in (tmp_path / "sweep" / "groups").glob("*.npz")) == sorted(names)
    assert store.foreign_files(tmp_path / "sweep") == []  # its group files are deepmle's own
    with open(tmp_path / "sweep" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["hidden_sizes", "activation", "batch_size"]
    assert [(r["activation"], r["batch_size"]) for r in rows[::2]] == [
        ("sigmoid", "64"), ("sigmoid", "128"), ("tanh", "64"), ("tanh", "128")]  # fmt: skip
    loaded = load_run(tmp_path / "sweep")
    assert [g.name for g in loaded.groups] == names and loaded.summary == res.summary

    alone_raw = {"model": {**STATIC["model"], "activation": "tanh"},
                 "train": {**STATIC["train"], "batch_size": 64}}  # fmt: skip
    alone = sweep.run(config_lib.from_dict(alone_raw), small, tmp_path / "alone", cache=cache)
    (g,) = alone.results.groups
    assert g.name == "h4"  # nothing but the shape swept: the name of before
    chex.assert_trees_all_equal(res.group("h4-tanh-b64").params, g.params)
    record = lambda run, name: json.loads((tmp_path / run / "groups" / f"{name}.json").read_text())  # noqa: E731
    assert record("sweep", "h4-tanh-b64")["identity"] == record("alone", "h4")["identity"]
