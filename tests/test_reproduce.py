"""The committed research answers come from this code: a few cells of each, retrained from
scratch, give the numbers their JSON records (experiments/reproduce.py)."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from .helpers import ROOT


def _reproduce():
    spec = importlib.util.spec_from_file_location(
        "reproduce", ROOT / "experiments" / "reproduce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_answer_records_cells_to_reproduce_including_a_64_wide_network():
    reproduce = _reproduce()
    widths = set()
    for answer in reproduce.ANSWERS:
        found = reproduce.records(answer)
        assert found, f"{answer}.json has no reproduction records"
        for record in found:
            assert all(len(record[m]) == reproduce.SEEDS for m in reproduce.METRICS)
            widths |= {max(h, default=0) for h in record["config"]["model"]["hidden_sizes"]}
    assert 64 in widths


def test_a_stale_number_is_a_difference_and_the_same_ones_are_not():
    reproduce = _reproduce()
    record = reproduce.records("hidden")[0]
    now = {m: np.asarray(record[m], np.float64) for m in reproduce.METRICS}
    assert reproduce.differences(record, now) == []
    stale = {**now, "test_accuracy": now["test_accuracy"] - 1 / 2167}  # one test digit
    (problem,) = reproduce.differences(record, stale)
    assert problem.startswith("test_accuracy: committed")


@pytest.mark.slow
def test_the_committed_answers_reproduce_from_scratch():
    # as the scripts ran: runtime.setup()'s devices (a seed's numbers are the same on any)
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "reproduce.py")],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines and all(line.endswith(": reproduced") for line in lines), proc.stdout
