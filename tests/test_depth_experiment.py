"""experiments/depth.py --smoke end to end in a subprocess, so the research script cannot rot."""

import json
import math
import subprocess
import sys
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
