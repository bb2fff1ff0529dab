"""The command line end to end, on the real seed config shrunk to the tests' tiny config
(helpers.TINY); the commands run as a subprocess are marked slow."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import results
from deepmle.cli import main

from .helpers import (
    CONFIGS,
    INTERRUPTIBLE,
    TINY,
    contents,
    copy,
    env,
    finish,
    interruptible,
    once,
    wait_for,
)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run(out: Path, *extra: str, config: str = "seed.toml") -> int:
    return main(["run", str(CONFIGS / config), "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def seed_run() -> Path:
    """The tiny run with its figures, built once per test run: read it, or copy it to write."""
    return once("cli-tiny", lambda d: _check(_run(d / "run", "--quiet"))) / "run"


def _check(code: int) -> None:
    assert code == 0


def test_run_writes_every_output_file(seed_run):
    for name in (
        "config.toml",
        "summary.csv",
        "members.csv",
        "curves.csv",
        "params.npz",
        "meta.json",
        "groups/h8.npz",
        "groups/h8.json",
    ):
        assert (seed_run / name).is_file(), name
    for name in ("curves", "weights", "misclassified"):
        assert (seed_run / "plots" / f"{name}.png").stat().st_size > 1000
    assert not (seed_run / "plots" / "heatmap.png").exists()  # one cell: no 1x1 heatmap
    assert not list(seed_run.rglob("*.tmp"))


def test_outputs_hold_the_run(seed_run):
    config = config_lib.load(seed_run / "config.toml")
    assert config.train.epochs == 1 and config.train.seeds == 2
    (summary,) = _csv(seed_run / "summary.csv")
    for col in (
        "hidden_sizes",
        "learning_rate",
        "seeds",
        "diverged",
        "train_ll_mean",
        "val_accuracy_mean",
        "val_accuracy_ci95",
        "test_accuracy_mean",
        "test_accuracy_ci95",
    ):
        assert col in summary
    assert summary["hidden_sizes"] == "8" and summary["seeds"] == "2"
    assert 0.9 < float(summary["test_accuracy_mean"]) <= 1.0  # a fraction, not a percentage
    members = _csv(seed_run / "members.csv")
    assert [m["seed"] for m in members] == ["0", "1"]
    assert np.mean([float(m["test_accuracy"]) for m in members]) == pytest.approx(
        float(summary["test_accuracy_mean"])
    )
    assert len(_csv(seed_run / "curves.csv")) == 2  # 1 epoch x 2 seeds
    params = np.load(seed_run / "params.npz")
    assert params["h8/layer0/w"].shape == (2, 1, 784, 8)
    assert params["h8/layer1/w"].shape == (2, 1, 8, 1)
    meta = json.loads((seed_run / "meta.json").read_text())
    for key in ("versions", "git_commit", "devices", "wall_s", "compile_s", "train_s"):
        assert key in meta
    # compile_s may be 0 here: the tiny config's programs may already be in this process
    assert meta["versions"]["jax"] and meta["compile_s"] >= 0


def test_same_config_again_resumes_and_skips(seed_run, tmp_path, capsys):
    run = copy(seed_run, tmp_path / "run")
    before = (run / "groups" / "h8.npz").read_bytes()
    assert _run(run) == 0
    err = capsys.readouterr().err
    assert "h8: already done, skipped" in err
    assert (run / "groups" / "h8.npz").read_bytes() == before


def test_different_config_is_refused_and_nothing_is_lost(seed_run, tmp_path, capsys):
    run = copy(seed_run, tmp_path / "run")
    before = contents(run)
    assert _run(run, "--set", "train.learning_rate=0.1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert before == contents(run)


def test_overwrite_replaces(tmp_path):
    out = tmp_path / "run"
    assert _run(out, "--quiet", "--no-plots") == 0
    assert (
        _run(out, "--quiet", "--no-plots", "--overwrite", "--set", "train.learning_rate=0.1") == 0
    )
    assert results.load_run(out).summary[0]["learning_rate"] == 0.1


def test_plot_redraws_from_the_run_directory(seed_run, tmp_path, capsys):
    run = copy(seed_run, tmp_path / "run")
    (run / "plots" / "curves.png").unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "plots" / "curves.png").is_file()


@pytest.mark.slow
def test_plot_reads_and_draws_a_run_without_importing_jax(seed_run, tmp_path):
    """`deepmle plot` loads a run from its files with numpy and draws it; starting JAX (and
    optax) would cost more than drawing. Checked in a fresh interpreter after the command."""
    run = copy(seed_run, tmp_path / "run")
    (run / "plots" / "weights.png").unlink()
    code = (
        "import sys; from deepmle import cli\n"
        f"code = cli.main(['plot', {str(run)!r}])\n"
        "print(sorted(m for m in ('jax', 'jaxlib', 'optax') if m in sys.modules))\n"
        "sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert (run / "plots" / "weights.png").stat().st_size > 1000


def _blocked_curves(seed_run: Path, to: Path) -> Path:
    """A copy of the tiny run whose plots/curves.png is a folder of the user's (it cannot be
    written, and deepmle must not remove it), its other figures gone."""
    run = copy(seed_run, to)
    for png in (run / "plots").glob("*.png"):
        png.unlink()
    (run / "plots" / "curves.png").mkdir()
    (run / "plots" / "curves.png" / "mine.txt").write_text("the user's")
    return run


@pytest.mark.slow
@pytest.mark.parametrize("command", ["plot", "run"])
def test_a_figure_that_cannot_be_written_is_one_line_and_the_others_are_drawn(
    seed_run, tmp_path, command
):
    """`deepmle plot`, and `deepmle run` resuming the finished run: every other figure is
    written, the run's files stay, the user's folder is untouched, and the failure is one
    line (exit 2) after the report."""
    run = _blocked_curves(seed_run, tmp_path / "run")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "plots" not in p.parts}
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(run), *TINY, "--quiet"]
    cmd = [sys.executable, "-m", "deepmle", *(args if command == "run" else ["plot", str(run)])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("deepmle: error: figures not drawn: curves.png (cannot write")
    assert f"`deepmle plot {run}` draws them again" in line
    for name in ("weights", "misclassified", "calibration"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000, name
    assert (run / "plots" / "curves.png" / "mine.txt").read_text() == "the user's"
    if command == "run":
        assert f"results in {run}/" in proc.stdout  # the report, then the one line
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "plots" not in p.parts}
    assert after.keys() == before.keys()  # the tables a resume writes again are all there
    assert all(after[p] == before[p] for p in before if "groups" in p.parts)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_ctrl_c_mid_training_with_figures_on_leaves_no_drawing_worker(tmp_path):
    """`deepmle run` forks its drawing workers before it starts JAX. Ctrl-C reaches every
    process of the terminal's group: the workers leave it to the command, which says one
    line, and they end with it (their inherited stderr closes: the output ends)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--out", str(out),
           *INTERRUPTIBLE]  # fmt: skip
    proc = interruptible(cmd, env=env())
    wait_for(out / "groups" / "h16.json", proc)
    workers = _children(proc.pid)
    assert workers
    for pid in (*workers, proc.pid):
        os.kill(pid, signal.SIGINT)
    code, _, err = finish(proc, timeout=60)
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("deepmle: interrupted")
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker ends a moment later
    while [pid for pid in workers if _running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _running(pid)]


@pytest.mark.slow
def test_module_entry_point_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhidden_sizes = [32, 0]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "deepmle", "run", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"deepmle: error: {bad}: [model] hidden_sizes: hidden sizes must be >= 1, got 0"
    ]


def test_plot_needs_no_params_npz_and_says_what_is_missing(seed_run, tmp_path, capsys):
    import shutil

    run = copy(seed_run, tmp_path / "run")
    (run / "params.npz").unlink()
    assert main(["plot", str(run)]) == 0  # the figures read the verified group files
    capsys.readouterr()
    shutil.rmtree(run / "groups")
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "group h8 is not saved" in err


@pytest.mark.slow
def test_an_internal_error_has_its_own_exit_code_and_a_traceback(tmp_path):
    """A bug (here: an exception injected into the sweep) exits 3, not 1 or 2."""
    code = (
        "import sys; from deepmle import cli, sweep\n"
        "def broken(*a, **k): raise RuntimeError('injected')\n"
        "sweep.run = broken\n"
        f"sys.exit(cli.main(['run', {str(CONFIGS / 'seed.toml')!r}, '--out', "
        f"{str(tmp_path / 'run')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr and "RuntimeError: injected" in proc.stderr
    assert "internal error" in proc.stderr.strip().splitlines()[-1]


def test_a_sweep_of_three_learning_rates_gets_the_learning_rate_plot(tmp_path, seed_run):
    out = tmp_path / "run"
    assert _run(out, "--quiet", "--set", "train.learning_rate=[0.1, 0.3, 1.0]") == 0
    assert (out / "plots" / "lr.png").stat().st_size > 1000
    assert json.loads((out / "meta.json").read_text())["compile_s"] > 0  # a config new here
    assert not (seed_run / "plots" / "lr.png").exists()  # one learning rate: no lr plot


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip


@pytest.mark.slow
def test_the_main_job_imports_neither_tfds_nor_tensorboard(tmp_path):
    code = (
        "import sys; from deepmle import cli\n"
        f"code = cli.main(['run', {str(CONFIGS / 'seed.toml')!r}, '--out', 'run', '--quiet',"
        f" *{TINY!r}])\n"
        "heavy = [m for m in ('tensorflow_datasets', 'pyarrow', 'tensorboard', 'tensorflow')"
        " if m in sys.modules]\n"
        "print(code, heavy)"
    )
    proc = _python(code, tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("missing", "args", "message"),
    [
        ("tensorflow_datasets", ["--set", "data.source=tfds"], "pip install 'deepmle[tfds]'"),
        ("tensorboard", ["--tensorboard"], "pip install 'deepmle[tensorboard]'"),
    ],
)
def test_an_extra_asked_for_but_not_installed_is_one_line(tmp_path, missing, args, message):
    """The package made unimportable, as on a core install: one line, exit 2, nothing run."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from deepmle import cli\n"
        f"sys.exit(cli.main(['run', {str(CONFIGS / 'seed.toml')!r}, '--out', 'run', "
        f"*{args!r}]))"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_distributed_without_a_cluster_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--distributed",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--distributed found no cluster" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--coordinator", "localhost"], "expected HOST:PORT"),
        (
            ["--coordinator", "localhost:notaport", "--num-processes", "2", "--process-id", "0"],
            "expected HOST:PORT",
        ),
        (
            ["--coordinator", "localhost:-1", "--num-processes", "2", "--process-id", "0"],
            "expected HOST:PORT",
        ),
        (
            ["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"],
            "--process-id 0..N-1",
        ),
        (["--num-processes", "4", "--process-id", "3"], "need --coordinator"),
        (
            ["--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"],
            "use one",
        ),
    ],
)
def test_a_bad_multi_process_setup_is_one_line(tmp_path, capsys, args, message):
    assert _run(tmp_path / "run", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_closed_output_pipe_is_not_a_bug(tmp_path):
    """`deepmle run ... | true`: the reader has gone before the table is printed; the run is
    complete all the same, and the exit code says so."""
    cmd = (f"{sys.executable} -m deepmle run {CONFIGS / 'seed.toml'} --out {tmp_path / 'run'}"
           f" --no-plots --quiet {' '.join(map(repr, TINY))} | true")  # fmt: skip
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and (tmp_path / "run" / "summary.csv").is_file()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("deepmle 0.")


def test_plot_works_from_another_directory_with_a_relative_data_path(tmp_path, monkeypatch):
    from deepmle import data

    a = data.load_embedded()  # real digits, as a Keras-format file of the user's
    (tmp_path / "work").mkdir()
    np.savez(tmp_path / "work" / "mnist.npz", x_train=a["train_images"][:1000],
             y_train=a["train_labels"][:1000], x_test=a["test_images"][:200],
             y_test=a["test_labels"][:200])  # fmt: skip
    monkeypatch.chdir(tmp_path / "work")
    npz = ["--set", "data.source=npz", "--set", "data.path=mnist.npz"]
    assert _run(Path("run"), "--quiet", *npz) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "work/run"]) == 0
    assert (tmp_path / "work" / "run" / "plots" / "misclassified.png").is_file()


@pytest.mark.parametrize("where", ["--out", "plot", "config"])
def test_a_path_component_over_255_bytes_is_one_line(where, tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    argv = {
        "--out": ["run", str(CONFIGS / "seed.toml"), "--out", str(long / "run")],
        "plot": ["plot", str(long)],
        "config": ["run", str(long / "seed.toml")],
    }[where]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "too long" in err


@pytest.mark.parametrize("meta", ["[]", '{"data": null}', '{"data": []}'])
def test_a_meta_json_of_the_wrong_shape_is_one_line(meta, seed_run, tmp_path, capsys):
    run = copy(seed_run, tmp_path / "run")
    (run / "meta.json").write_text(meta)
    for command in ("plot", "tensorboard"):
        assert main([command, str(run)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "meta.json: damaged" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["..toml", "...toml", "....toml"])
def test_a_config_name_that_is_no_folder_name_is_refused(tmp_path, name):
    """The default run directory is runs/<config file stem>: a stem of dots would make it
    runs/ itself (``..toml``) or the folder above it (``...toml``). One line, exit 2, and
    nothing made or written."""
    shutil_src = (CONFIGS / "seed.toml").read_text()
    (tmp_path / name).write_text(shutil_src)
    (tmp_path / "runs").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "deepmle", "run", name, *TINY],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "cannot name a run directory under runs/" in line and "--out" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_an_empty_out_is_refused(tmp_path, monkeypatch, capsys):
    """--out '' would be the current folder, which the user did not name."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(CONFIGS / "seed.toml"), "--out", "", *TINY]) == 2
    assert "--out: an empty path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
