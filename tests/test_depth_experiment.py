"""experiments/depth.py --smoke end to end in a subprocess, so the research script cannot rot."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "experiments" / "depth.py"


@pytest.mark.slow
def test_depth_smoke_writes_its_numbers_and_figures(tmp_path):
    subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    record = json.loads((tmp_path / "depth.json").read_text())
    plan = record["plan"]
    assert set(record["results"]) == {"sigmoid", "tanh", "relu"}
    for cells in record["results"].values():
        assert sorted(map(int, cells)) == plan["depths"]
        for depth, cell in cells.items():
            assert cell["selected_lr"] in plan["learning_rates"]
            assert 0.5 < cell["test_accuracy_mean"] <= 1.0
            k, n = cell["trained_seeds"], cell["seeds"]
            assert n == plan["seeds"] and cell["test_accuracy_outcome"].startswith(
                f"{k} of {n} seeds trained"
            )
            mixed = 0 < k < n  # a bimodal cell gets counts, not a t-interval
            assert math.isnan(cell["test_accuracy_ci95"]) == mixed
            for key in ("grad_norm_init", "grad_norm_epoch1"):
                assert len(cell[key]) == int(depth) + 1  # hidden layers and the output
                assert all(v > 0 for v in cell[key])
    for name in ("depth.png", "depth_layers.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _depth(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--smoke", *args], capture_output=True,
                          text=True, timeout=300, **kw)  # fmt: skip


def test_an_unusable_out_is_one_line_before_any_training(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for out, why in ((a_file, "File exists"), (locked, "Permission denied")):
        if why == "Permission denied" and os.access(locked, os.W_OK):  # root writes anywhere
            continue
        done = _depth("--out", str(out))
        line = f"depth.py: error: --out {out}: cannot write there ({why})"
        assert done.returncode == 2 and done.stderr.strip() == line, done.stderr
    assert a_file.read_text() == "mine"


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT once training has begun (its temporary run directories exist)."""
    from .helpers import interruptible

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = interruptible([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path / "o")],
                         env=env)  # fmt: skip
    t0 = time.monotonic()
    while not list(scratch.glob("*/sigmoid")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 180
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err.strip() == "depth.py: interrupted; its runs were temporary: nothing is saved"
    assert not (tmp_path / "o" / "depth.json").exists()
