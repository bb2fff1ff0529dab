"""The `deepmle` command refusing what it cannot do in one line, for real: a subprocess of
``python -m deepmle`` each time (marked slow), its exit code and its whole stderr checked."""

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .helpers import CONFIGS, all_diverged, damage_search, env


def deepmle(*args: str | Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "deepmle", *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def diverged() -> Path:
    return all_diverged()


@pytest.mark.slow
def test_every_member_diverged_draws_the_log_scaled_figures_and_exits_1(diverged, tmp_path):
    for name in ("lr", "halving", "curves", "heatmap"):
        assert (diverged / "plots" / f"{name}.png").stat().st_size > 1000, name
    assert not (diverged / "plots" / "weights.png").exists()  # no selected model to show
    run = tmp_path / "run"
    shutil.copytree(diverged, run)
    (run / "plots" / "lr.png").unlink()
    code, _, err = deepmle("plot", run)
    assert code == 0 and (run / "plots" / "lr.png").is_file(), err


@pytest.mark.parametrize("lr", ["0", "-1", "inf", "1e400", "nan"])
@pytest.mark.slow
def test_explain_refuses_a_learning_rate_that_is_no_cell(diverged, lr):
    code, out, err = deepmle("explain", diverged, "h4", f"lr={lr}")
    assert code == 2 and out == ""
    assert one_line(err).startswith("deepmle: error: deepmle explain: lr must be a positive")


@pytest.mark.slow
def test_explain_finds_a_real_cell(diverged):
    code, out, err = deepmle("explain", diverged, "h4", "lr=1e30")
    assert code == 0 and "h4 lr 1e+30: rung 0 at epoch 1" in out, err


@pytest.mark.parametrize(("command", "case"), [("explain", "eta text"), ("plot", "rank text")])
@pytest.mark.slow
def test_a_damaged_search_section_is_one_line_for_the_commands(diverged, tmp_path, command, case):
    run = damage_search(diverged, tmp_path, case)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = deepmle(command, run, *(["h4", "lr=1e30"] if command == "explain" else []))
    assert code == 2 and "damaged search section" in one_line(err)
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


LIMIT_KIB = 5_000_000
"""ulimit -v for the memory tests: room for Python, JAX and the data, not for 8,000 members."""
BIG_GRID = ["--set", "train.learning_rate={ log_uniform = [1e-3, 1.0], samples = 1000 }",
            "--set", "train.epochs=1", "--quiet"]  # fmt: skip


def _limited(code: str, tmp_path: Path) -> tuple[int, str]:
    """``python -c code`` under ``ulimit -v LIMIT_KIB`` (a shell's, not a preexec_fn in
    this multithreaded process)."""
    cmd = f'ulimit -v {LIMIT_KIB} && exec {sys.executable} -c "$0"'
    proc = subprocess.run(["bash", "-c", cmd, code], env=env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return proc.returncode, proc.stderr


def _run_code(out: Path, before: str = "") -> str:
    argv = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), *BIG_GRID]
    return f"{before}\nimport sys\nfrom deepmle.cli import main\nsys.exit(main({argv!r}))"


@pytest.mark.slow
def test_the_memory_check_counts_the_address_space_limit(tmp_path):
    """Under ulimit -v the grid is refused up front with the estimate, before anything is
    compiled or written, not left to fail inside XLA."""
    code, err = _limited(_run_code(tmp_path / "run"), tmp_path)
    line = one_line(err)
    assert code == 2 and "8 seeds x 1000 cells x 1 epochs need ~" in line, line
    assert "GB available" in line and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_real_out_of_memory_inside_xla_is_one_line(tmp_path):
    """The check bypassed, XLA itself runs out (jax 0.10's JaxRuntimeError)."""
    bypass = "from deepmle.population import groups\ngroups.available_bytes = lambda: 10**15"
    code, err = _limited(_run_code(tmp_path / "run", bypass), tmp_path)
    line = one_line(err)
    assert code == 2 and line.startswith("deepmle: error: out of memory (RESOURCE_EXHAUSTED")


def _run_npz(path: Path, out: Path) -> tuple[int, str]:
    code, _, err = deepmle("run", CONFIGS / "seed.toml", "--out", out, "--quiet",
                           "--set", "data.source=npz", "--set", f"data.path={path}")  # fmt: skip
    return code, err


@pytest.mark.slow
def test_an_npz_without_ink_is_one_line(tmp_path):
    y = np.tile(np.array([1, 2, 3]), 100)
    x = np.zeros((300, 28, 28), np.uint8)
    path = tmp_path / "blank.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:60], y_test=y[:60])
    code, err = _run_npz(path, tmp_path / "run")
    assert code == 2 and "x_train: every pixel of digits 1 and 2 is 0 (no ink)" in one_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_npz_declaring_two_million_images_is_refused_from_its_header(tmp_path):
    """The header alone is read: 2,000,000 x 784 bytes are neither allocated nor read."""
    buf = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (2_000_000, 28, 28)}
    np.lib.format.write_array_header_1_0(buf, header)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", buf.getvalue() + bytes(1000))
        for name in ("y_train", "x_test", "y_test"):
            z.writestr(f"{name}.npy", buf.getvalue())
    code, err = _run_npz(path, tmp_path / "run")
    assert code == 2 and "x_train declares 2,000,000 images" in one_line(err)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.slow
def test_a_fifo_or_directory_is_named_for_what_it_is(tmp_path, kind):
    special = tmp_path / "special"
    os.mkfifo(special) if kind == "fifo" else special.mkdir()
    what = "a named pipe (FIFO)" if kind == "fifo" else "a directory"
    code, err = _run_npz(special, tmp_path / "run")
    assert code == 2 and one_line(err) == f"deepmle: error: {special}: is {what}, not a data file"
    code, _, err = deepmle("run", special, "--out", tmp_path / "run")  # a FIFO would block
    assert code == 2 and one_line(err) == f"deepmle: error: {special}: is {what}, not a config file"


@pytest.mark.slow
def test_a_huge_value_is_not_echoed_whole(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(f'[train]\noptimizer = "{"x" * 20_000_000}"\n')
    code, _, err = deepmle("run", path, "--out", tmp_path / "run")
    line = one_line(err)
    assert code == 2 and "[train] optimizer: unknown value 'xxxx" in line
    assert len(line) < 400 and "…" in line
