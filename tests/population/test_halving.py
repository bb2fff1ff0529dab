"""Successive halving: the schedule and ranking rules, slicing a real state along its
learning-rate axis, and a halving run checked against a real grid run of the same config."""

import io
import json
import math
import shutil

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import runtime, sweep, train
from deepmle.analysis import report
from deepmle.analysis.load import load_run
from deepmle.population import groups, halving, search
from deepmle.population.searches import SEARCHES
from deepmle.progress import Progress

from ..helpers import built

SEARCH = [
    "model.hidden_sizes=[[8], [16]]",
    "train.learning_rate=[0.01, 0.05, 0.3, 1.0, 3.0, 30000.0]",
    "train.seeds=2",
    "train.epochs=4",
    "search.eta=2",
]


def _config(tmp_path, method: str, *extra: str) -> config_lib.Config:
    path = tmp_path / "c.toml"
    path.write_text("")
    return config_lib.load(path, [*SEARCH, f"search.method={method}", *extra])


def test_rungs_follow_min_epochs_times_powers_of_eta():
    assert halving.rung_epochs(27, 3, 1) == [1, 3, 9, 27]
    assert halving.rung_epochs(10, 3, 2) == [2, 6, 10]
    assert halving.rung_epochs(9, 3, 1) == [1, 3, 9]  # 9 is the last rung, not a second one
    assert [halving.keep_count(n, 3) for n in (192, 64, 22, 1)] == [64, 22, 8, 1]


def test_ranking_puts_diverged_last_and_breaks_ties_by_config_order():
    val = np.array([[-0.1, -0.05, -0.2, -0.05], [-0.1, -0.05, -0.2, -0.01]])
    diverged = np.array([[False, False, False, False], [False, False, False, True]])
    scores = search.cell_scores(val, diverged)
    assert scores[3] == -math.inf  # the best value, but one seed diverged
    assert search.ranking(scores).tolist() == [1, 0, 2, 3]
    assert search.ranking([-1.0, -0.5, -0.5]).tolist() == [1, 2, 0]


@pytest.fixture(scope="module")
def grid_and_halving(tmp_path_factory, small):
    tmp = tmp_path_factory.mktemp("halving")
    log = runtime.CompileLog.get()
    out = {}
    for method in ("grid", "halving"):
        before = log.snapshot()
        cache = groups.ProgramCache()  # its own: programs another test built do not count
        res = sweep.run(_config(tmp, method), small, tmp / method, cache=cache).results
        out[method] = (res, log.since(before))
    return out


def test_survivors_train_exactly_as_in_the_grid_run(grid_and_halving):
    (grid, _), (halved, _) = grid_and_halving["grid"], grid_and_halving["halving"]
    survivors = 0
    for gg, gh in zip(grid.groups, halved.groups, strict=True):
        stop = gh.final["stopped_epoch"]
        for li in range(len(gg.learning_rates)):
            if stop[0, li] >= 0:
                e = stop[0, li]  # stopped members: their finals are the grid's at that epoch
                for k in ("train_ll", "val_ll", "val_accuracy"):
                    np.testing.assert_allclose(gh.final[k][:, li], gg.curves[k][:, li, e - 1],
                                               rtol=1e-5, atol=1e-6)  # fmt: skip
                assert np.isnan(gh.curves["val_ll"][:, li, e:]).all()
                continue
            survivors += 1
            for k in gg.final:
                np.testing.assert_allclose(gh.final[k][:, li], gg.final[k][:, li],
                                           rtol=1e-5, atol=1e-6, err_msg=k)  # fmt: skip
            for lg, lh in zip(gg.params, gh.params, strict=True):
                for k in lg:
                    np.testing.assert_allclose(lh[k][:, li], lg[k][:, li], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(gh.curves["val_ll"][:, li], gg.curves["val_ll"][:, li],
                                       rtol=1e-5, atol=1e-6)  # fmt: skip
    assert survivors == 12 // 2 // 2 // 1  # 12 cells -> 6 -> 3 at epochs 1, 2; 4 is the last


def test_kept_cells_are_the_top_ones_of_the_grid_curves(grid_and_halving):
    """Replays the rule on the grid run's own curves: at each rung the running cells, ranked
    by mean validation LL over seeds at that epoch (diverged last), keep the top ceil(n/eta)."""
    (grid, _), (halved, _) = grid_and_halving["grid"], grid_and_halving["halving"]
    record = halved.meta["search"]
    cells = [(gi, li) for gi, g in enumerate(grid.groups) for li in range(len(g.learning_rates))]
    running = list(cells)
    for row in record["rungs"][:-1]:
        e = row["epoch"]
        scores = []
        for gi, li in running:
            g = grid.groups[gi]
            diverged = (g.final["diverged_epoch"][:, li] >= 0) & (
                g.final["diverged_epoch"][:, li] < e
            )
            scores.append(search.cell_scores(g.curves["val_ll"][:, li : li + 1, e - 1],
                                              diverged[:, None])[0])  # fmt: skip
        order = search.ranking(scores)[: halving.keep_count(len(running), 2)]
        expect = sorted(running[j] for j in order)
        assert row["cells_ranked"] == len(running) and row["cells_kept"] == len(expect)
        running = expect
        stopped_here = {
            (gi, li)
            for gi, g in enumerate(halved.groups)
            for li in np.flatnonzero(g.final["stopped_epoch"][0] == e)
        }
        assert not stopped_here & set(running)
    finished = sorted(
        (gi, li)
        for gi, g in enumerate(halved.groups)
        for li in np.flatnonzero(g.final["stopped_epoch"][0] < 0)
    )
    assert finished == running
    bad = cells[5]  # lr 30000 diverges in its first epoch: ranked last, stopped at rung 0
    assert halved.groups[bad[0]].final["stopped_rung"][0, bad[1]] == 0


def test_compiles_once_per_shape_for_the_whole_search_and_saves_member_epochs(grid_and_halving):
    """Two shapes, three rungs of 12, 6 and 3 cells: two epoch programs, each serving every
    rung's survivors in calls of halving.capacity cells, and one scores program they share."""
    (_, grid_log), (halved, log) = grid_and_halving["grid"], grid_and_halving["halving"]
    record = halved.meta["search"]
    assert record["rung_epochs"] == [1, 2, 4]
    assert built(log) == 3
    calls = [r["calls_per_epoch"] for g in halved.groups for r in g.info["rungs"]]
    assert max(calls) > 1  # more cells than one call holds: the capacity is reused
    # 12 cells x 2 seeds for 1 epoch, 6 for 1 more, 3 for 2 more; the grid 12 x 2 x 4
    assert record["member_epochs"] == 2 * (12 * 1 + 6 * 1 + 3 * 2) == 48
    assert record["grid_member_epochs"] == 96
    assert [r["member_epochs"] for r in record["rungs"]] == [24, 36, 48]
    assert built(grid_log) == 3


def test_run_directory_explains_the_rungs(grid_and_halving):
    """rungs.csv, members.csv's stop columns, load_run's rung table, and a selection made only
    among the cells trained to the end."""
    import csv

    from deepmle import results
    from deepmle.analysis import report

    halved, _ = grid_and_halving["halving"]
    loaded = results.load_run(halved.run_dir)
    assert loaded.rungs == halved.rungs and len(loaded.rungs) == 3
    with open(halved.run_dir / "rungs.csv") as f:
        rungs = list(csv.DictReader(f))
    assert [(r["epoch"], r["cells_ranked"], r["cells_kept"]) for r in rungs] == [
        ("1", "12", "6"), ("2", "6", "3"), ("4", "3", "3"),
    ]  # fmt: skip
    assert rungs[-1]["cutoff_val_ll"] == "" and float(rungs[0]["cutoff_val_ll"]) < 0
    with open(halved.run_dir / "members.csv") as f:
        members = list(csv.DictReader(f))
    stops = sorted((m["stopped_epoch"], m["stopped_rung"]) for m in members)
    assert stops.count(("", "")) == 3 * 2 and stops.count(("1", "0")) == 6 * 2
    for g in loaded.groups:
        np.testing.assert_array_equal(
            g.final["stopped_epoch"], halved.group(g.name).final["stopped_epoch"]
        )
    best = loaded.selected
    assert best is not None and best["stopped_epoch"] == ""
    printed = report.table(loaded.summary) + "\n".join(report.rung_lines(loaded.rungs))
    assert "rung 0 at epoch 1: kept 6 of 12 cells, cutoff val LL -0." in printed
    assert len([r for r in loaded.summary if r["stopped_epoch"] == ""]) == 3
    assert "9 more cells stopped early" in printed


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("search.method=hyperband", "[search] method: unknown value 'hyperband'"),
        ("search.eta=1", "[search] eta: must be >= 2"),
        ("search.eta=2.5", "[search] eta: must be an integer"),
        ("search.min_epochs=0", "[search] min_epochs: must be >= 1"),
        ("search.min_epochs=4", "[search] min_epochs: must be below [train] epochs (4)"),
        ("search.warmup=1", "unknown key [search] warmup"),
    ],
)
def test_bad_search_is_one_line_and_exit_2(tmp_path, capsys, override, needle):
    from deepmle.cli import main

    path = tmp_path / "c.toml"
    path.write_text('[search]\nmethod = "halving"\n')
    args = [
        "run",
        str(path),
        "--out",
        str(tmp_path / "run"),
        *[a for s in SEARCH for a in ("--set", s)],
    ]
    assert main([*args, "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "run").exists()


def test_halving_a_single_cell_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[search]\nmethod = "halving"\n')
    with pytest.raises(config_lib.ConfigError, match=r"\[search\] method: 'halving' needs more"):
        config_lib.load(path)


def test_explain_says_why_a_cell_stopped(grid_and_halving, capsys):
    from deepmle.cli import main

    halved, _ = grid_and_halving["halving"]
    assert main(["explain", str(halved.run_dir), "h8", "lr=30000"]) == 0
    out = capsys.readouterr().out
    assert "rung 0 at epoch 1: rank 11 of 12" in out and "-inf < cutoff" in out  # h16 is 12th
    assert "(the best 6 of 12 continue): stopped here" in out
    best = halved.selected
    assert main(["explain", str(halved.run_dir), f"h{best['hidden_sizes']}",
                 f"lr={best['learning_rate']}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "trained to the last epoch (4); selected on validation" in out
    assert out.count(": kept") == 2
    assert main(["explain", str(halved.run_dir), "h8", "lr=0.02"]) == 2
    assert "no cell within 1% of lr 0.02" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_mid_rung_then_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    """A real SIGKILL once rung 0's state is saved (rung 1 then runs), a re-run from the
    saved rung, and an uninterrupted run: the same bytes in every result file."""
    import csv
    import json
    import signal

    from deepmle.runs import store

    from ..helpers import deepmle_process, finish, wait_for

    grid = ["--set", "model.hidden_sizes=[[16], [32]]",
            "--set", "train.learning_rate={ log_uniform = [0.01, 10.0], samples = 8 }",
            "--set", "train.seeds=4", "--set", "train.epochs=9",
            "--set", "search.eta=2"]  # fmt: skip
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    # one compilation cache, cold for the killed run: the resumed and the whole run reuse its
    # programs (the same compiled code, so the bytes compared below cannot depend on it)
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = deepmle_process(killed, *grid, config="halving.toml", extra_env=cache)
    wait_for(killed / "groups" / "rungs.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    config = config_lib.load(killed / "config.toml")
    recorded = json.loads((killed / "groups" / "rungs.json").read_text())["data_sha256"]
    saved, problem = store.read_rungs(killed, config, recorded)
    assert saved is not None, problem
    assert saved[1]["rung"] < 4 and not (killed / "meta.json").exists()  # killed mid-run

    code, _, err = finish(deepmle_process(killed, *grid, config="halving.toml", extra_env=cache))
    assert code == 0, err
    assert f"resuming halving after rung {saved[1]['rung']}" in err
    code, _, err = finish(deepmle_process(whole, *grid, config="halving.toml", extra_env=cache))
    assert code == 0, err
    for name in ("params.npz", "members.csv", "curves.csv", "summary.csv"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name

    def rungs(run):
        with open(run / "rungs.csv") as f:
            return [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]

    assert rungs(killed) == rungs(whole) and len(rungs(whole)) == 5


def test_figure_and_tensorboard_runs_end_where_cells_stopped(grid_and_halving):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from deepmle import results
    from deepmle.analysis import plots, tensorboard

    halved, _ = grid_and_halving["halving"]
    loaded = results.load_run(halved.run_dir)
    paths = plots.draw(halved.run_dir, loaded)
    assert halved.run_dir / "plots" / "halving.png" in paths
    tensorboard.write(loaded)
    lrs = [float(lr) for lr in loaded.groups[0].learning_rates]
    shape_names, lr_names = tensorboard.sortable_labels(loaded.groups, lrs)
    for g in loaded.groups:
        for li, lr in enumerate(g.learning_rates):
            name = tensorboard.cell_name(shape_names[g.hidden], lr_names[float(lr)])
            acc = EventAccumulator(str(halved.run_dir / "tensorboard" / name))
            acc.Reload()
            if (g.final["diverged_epoch"][:, li] >= 0).all():
                continue  # no healthy seed: no curve
            steps = [s.step for s in acc.Scalars("val_ll")]
            stop = int(g.final["stopped_epoch"][0, li])
            assert steps == list(range(1, (stop if stop > 0 else 4) + 1)), (name, stop)


@pytest.mark.slow
def test_two_processes_halve_as_one_device_does(tmp_path):
    """2 processes x 2 devices: every rung's survivors re-laid over all four devices (no
    device idle that their count does not force), the same members as on one device."""
    import json

    from ..helpers import deepmle_process, finish, free_port, same_members

    grid = ["--quiet", "--set", "model.hidden_sizes=[[8], [16]]",
            "--set", "train.learning_rate=[0.1, 0.3, 1.0, 3.0]", "--set", "train.seeds=3",
            "--set", "train.epochs=3", "--set", "search.eta=2"]  # fmt: skip
    one = tmp_path / "one"
    code, _, err = finish(deepmle_process(one, *grid, config="halving.toml"))
    assert code == 0, err
    port = free_port()
    out = tmp_path / "two"
    procs = [
        deepmle_process(out, *grid, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(i), devices=2, config="halving.toml")
        for i in range(2)
    ]  # fmt: skip
    for p in procs:
        code, _, err = finish(p)
        assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["process_count"] == 2 and len(meta["devices"]) == 4
    layouts = [r["layout"] for g in meta["groups"].values() for r in g["rungs"]]
    assert [lay["devices"] for lay in layouts] == [4] * len(layouts)
    # 3 seeds x 4 lrs on 4 devices: 1 x 4, no padding
    assert layouts[0]["mesh"] == {"seeds": 1, "cells": 4} and layouts[0]["padded_members"] == 0
    same_members(one, out)

    def kept(run):
        return [
            r["cells_kept"] for r in json.loads((run / "meta.json").read_text())["search"]["rungs"]
        ]

    assert kept(out) == kept(one)


def test_with_eta_3_each_rung_ranks_on_its_own_epoch_and_keeps_a_third(small, tmp_path):
    """Rungs at epochs 1, 3, 9: the second ranks after a two-epoch segment (2..3), where
    ranking on the segment's first epoch instead of its last would show. Every decision's
    value is its cell's mean validation LL at the rung's epoch, and ceil(n/3) continue."""
    config = config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((4,),)),
        train=config_lib.TrainConfig(learning_rate=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0), seeds=2,
                                     epochs=9, batch_size=128),
        search=config_lib.SearchConfig(method="halving", eta=3, min_epochs=1),
    )  # fmt: skip
    res = sweep.run(config, small, tmp_path / "run").results
    record, (g,) = res.meta["search"], res.groups
    assert record["rung_epochs"] == [1, 3, 9]
    assert [(r["cells_ranked"], r["cells_kept"]) for r in record["rungs"]] == [(6, 2), (2, 1),
                                                                              (1, 1)]  # fmt: skip
    for rung, epoch in ((0, 1), (1, 3)):
        ranked = [d for d in record["decisions"] if d["rung"] == rung]
        assert {d["epoch"] for d in ranked} == {epoch}
        for d in ranked:
            li = int(np.flatnonzero(g.learning_rates == d["learning_rate"])[0])
            mean = float(np.mean(g.curves["val_ll"][:, li, epoch - 1].astype(np.float64)))
            assert d["val_ll"] == pytest.approx(mean, rel=1e-9), (rung, d)
        best = max(ranked, key=lambda d: d["val_ll"])
        assert [d["kept"] for d in ranked].count(True) == math.ceil(len(ranked) / 3)
        assert best["kept"]


class _StopAt(Progress):
    """Quiet progress that interrupts the run (a real KeyboardInterrupt, as Ctrl-C raises)
    when epoch ``at`` (0-based) starts; it keeps the warnings it is given."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__(quiet=True, stream=io.StringIO())
        self.at = at

    def epoch(self, epoch: int, mean_ll: float, epochs: int) -> None:
        if epoch == self.at:
            raise KeyboardInterrupt

    @property
    def warnings(self) -> str:
        return self.stream.getvalue()


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, small):
    """The halving config of grid_and_halving, interrupted in rung 1: rung 0's state saved."""
    tmp = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(KeyboardInterrupt):
        sweep.run(_config(tmp, "halving"), small, tmp / "run", progress=_StopAt(1))
    assert json.loads((tmp / "run" / "groups" / "rungs.json").read_text())["record"]["rung"] == 0
    return tmp / "run"


def _resume(run_dir, small) -> str:
    progress = _StopAt()
    sweep.run(config_lib.load(run_dir / "config.toml"), small, run_dir, progress=progress)
    return progress.warnings


def test_a_resumed_run_writes_rungs_csv_as_an_uninterrupted_one(
    grid_and_halving, interrupted, small, tmp_path
):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    assert _resume(out, small).strip() == "deepmle: warning: resuming halving after rung 0"
    whole = grid_and_halving["halving"][0].run_dir

    def rows(run):
        lines = (run / "rungs.csv").read_text().splitlines()
        wall = lines[0].split(",").index("wall_s")
        return [[v for j, v in enumerate(line.split(",")) if j != wall] for line in lines]

    assert rows(out) == rows(whole) and rows(out)[0][0] == "rung"
    assert (out / "params.npz").read_bytes() == (whole / "params.npz").read_bytes()


def test_an_edited_rung_record_is_set_aside_and_trained_again(
    grid_and_halving, interrupted, small, tmp_path
):
    """One edit of the saved record ("rung" 0 -> 1: resume would skip rung 1), the file still
    valid JSON: its checksum fails; the run starts over and ends as the uninterrupted one."""
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    path = out / "groups" / "rungs.json"
    saved = json.loads(path.read_text())
    saved["record"]["rung"] = 1
    path.write_text(json.dumps(saved))
    warnings = _resume(out, small)
    assert "saved rungs rungs.json fails its checksum (edited or damaged)" in warnings
    assert "trained again (kept as rungs.npz.rejected, rungs.json.rejected)" in warnings
    whole = grid_and_halving["halving"][0].run_dir
    assert (out / "params.npz").read_bytes() == (whole / "params.npz").read_bytes()


def _reseal(record: dict) -> dict:
    from deepmle.runs import store

    return {**record, "record_sha256": store.record_sha256(record)}


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda a, r: r.update(rung=1), "records rung 1"),
        (lambda a, r: r.update(member_epochs=r["member_epochs"] + 1), "do not add up"),
        (lambda a, r: r["rungs"][0].update(cells_kept=5), "keeps other cells"),
        (lambda a, r: r["decisions"].pop(), "decisions"),
        (lambda a, r: a.update({"0/alive": a["0/alive"][::-1].copy()}), "not increasing"),
        (lambda a, r: a.update({"1/alive": a["1/alive"] + 6}), "outside its 6"),
        (lambda a, r: a.update({"0/final/val_ll": a["0/final/val_ll"][:, :3]}), "of shape"),
        (lambda a, r: a.update({"0/state/0": a["0/state/0"][:1]}), "state array 0/state/0"),
        (lambda a, r: a.pop("1/params/0/w"), "incomplete"),
    ],
)
def test_a_resealed_snapshot_that_does_not_fit_the_run_is_not_resumed(
    interrupted, small, edit, needle
):
    """An edited snapshot whose checksums were recomputed still parses: its record and arrays
    are checked against each other and the config before a resume uses them."""
    from deepmle.runs import store

    config = config_lib.load(interrupted / "config.toml")
    meta = json.loads((interrupted / "groups" / "rungs.json").read_text())
    saved, why = store.read_rungs(interrupted, config, meta["data_sha256"])
    assert saved is not None, why
    n = small.train.y.shape[0]
    shapes = [search.Shape(str(h[0]), train.spec_from_config(config, (784, *h, 1), n))
              for h in config.model.hidden_sizes]  # fmt: skip
    assert search.check_resume(config, SEARCHES["halving"], shapes, *saved) == ""
    arrays, record = dict(saved[0]), json.loads(json.dumps(saved[1]))
    edit(arrays, record)
    assert needle in search.check_resume(config, SEARCHES["halving"], shapes, arrays, record)


def test_a_resealed_rung_record_is_rejected_on_resume(interrupted, small, tmp_path):
    """The check runs where it matters: a resume given a resealed "rung" 0 -> 1 starts over."""
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    path = out / "groups" / "rungs.json"
    saved = json.loads(path.read_text())
    saved["record"]["rung"] = 1
    path.write_text(json.dumps(_reseal(saved)))
    warnings = _resume(out, small)
    assert "saved rungs records rung 1" in warnings and "trained again" in warnings


def test_a_halving_group_from_a_search_of_other_shapes_is_refused(
    grid_and_halving, small, tmp_path
):
    """h8 of a halving run beside h4, copied into the halving run beside h16 (same h8 config
    otherwise): its stops came from another search, so it is not this run's group."""
    from deepmle import results
    from deepmle.runs import store

    other = sweep.run(_config(tmp_path, "halving", "model.hidden_sizes=[[8], [4]]"), small,
                      tmp_path / "other").results  # fmt: skip
    whole = grid_and_halving["halving"][0].run_dir
    out = tmp_path / "run"
    shutil.copytree(whole, out)
    for suffix in (".npz", ".json"):
        shutil.copy(other.run_dir / "groups" / f"h8{suffix}", out / "groups" / f"h8{suffix}")
    config = config_lib.load(out / "config.toml")
    assert store.read_group(out, config, (8,))[1] == "was trained with a different config"
    warnings = _resume(out, small)
    assert "group h8 was trained with a different config: not used, trained again" in warnings
    assert (out / "groups" / "h8.json.rejected").is_file()
    assert (out / "params.npz").read_bytes() == (whole / "params.npz").read_bytes()
    assert results.load_run(out).group((8,)).info == results.load_run(whole).group((8,)).info


def test_a_diverged_cell_never_fills_a_slot(small, tmp_path, capsys):
    """Four cells, two slots at rung 0, three cells diverged: only the finite one continues,
    and explain says why a diverged one stopped without comparing -inf with a cutoff."""
    from deepmle.cli import main

    lrs = "train.learning_rate=[0.3, 30000.0, 60000.0, 90000.0]"
    config = _config(tmp_path, "halving", "model.hidden_sizes=[[8]]", lrs, "train.epochs=2")
    res = sweep.run(config, small, tmp_path / "run").results
    first = [d for d in res.decisions if d["rung"] == 0]
    assert sum(not math.isfinite(d["val_ll"]) for d in first) == 3
    assert [d["learning_rate"] for d in first if d["kept"]] == [0.3]
    assert res.rungs[0]["cells_kept"] == 1 and math.isfinite(res.rungs[0]["cutoff_val_ll"])
    assert main(["explain", str(res.run_dir), "h8", "lr=30000"]) == 0
    out = capsys.readouterr().out
    assert "rank 2 of 4 by mean validation LL over seeds, -inf < cutoff -0." in out
    assert "stopped here (a cell with a diverged seed never continues)" in out
    assert "-inf >=" not in out and "cutoff -inf" not in out


def test_a_search_whose_every_cell_diverges_stops_them_all_at_the_first_rung(small, tmp_path):
    """No finite cell: none continues, no later rung ranks an empty field, and the run ends
    with every member diverged (exit 1 from the command), its decisions explained."""
    from deepmle.analysis import report

    lrs = "train.learning_rate=[30000.0, 60000.0]"
    config = _config(tmp_path, "halving", "model.hidden_sizes=[[8]]", lrs, "train.epochs=2")
    res = sweep.run(config, small, tmp_path / "run").results
    assert [(r["rung"], r["cells_kept"]) for r in res.rungs] == [(0, 0)]
    assert all(not d["kept"] for d in res.decisions) and res.selected is None
    assert (res.group((8,)).final["stopped_rung"] == 0).all()
    (line,) = report.explain(res, "h8", 30000.0)
    assert "-inf, and no cell was finite" in line and "cutoff" not in line
    assert "rung 0 at epoch 1: kept 0 of 2 cells" in report.rung_lines(res.rungs)[0]


def test_a_halving_search_over_activations_ranks_every_group_together(small, tmp_path):
    """Two activations of one shape are two groups (two epoch programs, one scores program);
    each rung ranks the cells of both together, its decisions carry the activation, and
    explain names the group."""
    log = runtime.CompileLog.get()
    config = _config(tmp_path, "halving", "model.hidden_sizes=[[4]]",
                     'model.activation=["sigmoid", "tanh"]',
                     "train.learning_rate=[0.3, 1.0, 30000.0]", "train.epochs=2",
                     "search.eta=3")  # fmt: skip
    before = log.snapshot()
    res = sweep.run(config, small, tmp_path / "run", cache=groups.ProgramCache()).results
    assert built(log.since(before)) == 3
    assert [g.name for g in res.groups] == ["h4-sigmoid", "h4-tanh"]
    rung0 = [d for d in res.decisions if d["rung"] == 0]
    assert len(rung0) == 6 and {d["of"] for d in rung0} == {6}  # both groups ranked together
    assert sorted(d["rank"] for d in rung0) == [1, 2, 3, 4, 5, 6]
    assert [d["activation"] for d in rung0] == ["sigmoid"] * 3 + ["tanh"] * 3
    assert sum(d["kept"] for d in rung0) == 2  # the best 6 // 3 of all six cells
    loaded = load_run(tmp_path / "run")
    kept = next(d for d in rung0 if d["kept"])
    lines = report.explain(loaded, f"h4-{kept['activation']}", kept["learning_rate"])
    assert lines[0].startswith(f"h4-{kept['activation']} lr ") and "rank" in lines[0]
    assert "kept" in lines[0] and len(lines) == 2  # its rung, then trained to the last epoch
