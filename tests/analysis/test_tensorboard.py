"""TensorBoard export: read back with TensorBoard's own event reader, and once from a real
`tensorboard` server on localhost through its HTTP API."""

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deepmle import results
from deepmle.cli import main

from ..helpers import CONFIGS, once

GRID = ["--set", "model.hidden_sizes=[[8], [16]]", "--set", "train.learning_rate=[0.3, 1.0]",
        "--set", "train.seeds=3", "--set", "train.epochs=2",
        "--set", "train.batch_size=64"]  # fmt: skip


def _export(directory: Path) -> None:
    args = ["run", str(CONFIGS / "seed.toml"), "--out", str(directory / "run"), "--quiet",
            "--no-plots", "--tensorboard", *GRID]  # fmt: skip
    assert main(args) == 0


@pytest.fixture(scope="module")
def run() -> Path:
    """A run with its TensorBoard export, built once per test run: copy it to write."""
    return once("tensorboard-run", _export) / "run"


def _scalars(path: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(path))
    acc.Reload()
    return [(s.step, s.value) for s in acc.Scalars(tag)]


def test_one_tensorboard_run_per_cell_with_mean_curves(run):
    runs = sorted(p.name for p in (run / "tensorboard").iterdir() if p.is_dir())
    assert runs == ["h08_lr0.3", "h08_lr1.0", "h16_lr0.3", "h16_lr1.0"]  # sorted as numbers
    g = results.load_run(run).group((16,))
    for tag in ("train_ll", "val_ll", "val_accuracy"):
        got = _scalars(run / "tensorboard" / "h16_lr0.3", tag)
        assert [step for step, _ in got] == [1, 2]  # step = epoch
        scale = 100.0 if tag == "val_accuracy" else 1.0  # accuracy in %, as in the table
        want = g.curves[tag][:, 0].mean(axis=0) * scale  # mean over the 3 seeds, per epoch
        np.testing.assert_allclose([v for _, v in got], want, rtol=1e-6)
    acc = EventAccumulator(str(run / "tensorboard" / "h08_lr1.0"))
    acc.Reload()
    assert "test_accuracy" not in acc.Tags()["scalars"]  # validation only


def test_the_command_writes_for_any_finished_run(run, tmp_path, capsys):
    import shutil

    run = shutil.copytree(run, tmp_path / "run")
    shutil.rmtree(run / "tensorboard")
    assert main(["tensorboard", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith("tensorboard")
    assert _scalars(run / "tensorboard" / "h08_lr0.3", "val_accuracy")


def _get(url: str, data: dict | None = None) -> object:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_a_real_tensorboard_server_serves_the_cells_and_hparams(run):
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "tensorboard"),
           "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        url = None
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True).start()
        while url is None:
            assert time.monotonic() < deadline and server.poll() is None, f"no server: {lines}"
            found = re.search(r"http://127\.0\.0\.1:\d+", "".join(lines))
            url = found.group(0) if found else time.sleep(0.2)
        while True:  # the server loads the logdir in the background
            try:
                points = _get(f"{url}/data/plugin/scalars/scalars?run=h16_lr1.0&tag=val_accuracy")
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        want = results.load_run(run).group((16,)).curves["val_accuracy"][:, 1].mean(axis=0) * 100
        assert [p[1] for p in points] == [1, 2]
        np.testing.assert_allclose([p[2] for p in points], want, rtol=1e-6)
        groups = _get(f"{url}/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"],
            "colParams": [{"metric": {"tag": "val_accuracy"}, "order": "ORDER_DESC"}],
            "startIndex": 0, "sliceSize": 10,
        })  # fmt: skip
        cells = {g["name"]: g for g in groups["sessionGroups"]}
        assert set(cells) == {"h08_lr0.3", "h08_lr1.0", "h16_lr0.3", "h16_lr1.0"}
        assert cells["h16_lr1.0"]["hparams"] == {"hidden_sizes": "16", "learning_rate": 1.0}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_hparams_experiment_lists_train_and_validation_metrics_only(run):
    """Read back from the event files: no test metric can slip into the HParams dashboard."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = []
    for path in (run / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for content in acc.PluginTagToContent("hparams").values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("experiment"):
                found.append({m.name.tag for m in data.experiment.metric_infos})
    assert found, "no HParams experiment in the event files"
    for tags in found:
        assert tags and all(t.startswith(("train_", "val_")) for t in tags), tags


def test_run_names_sort_as_numbers():
    from types import SimpleNamespace

    from deepmle.analysis.tensorboard import sortable_labels

    groups = [SimpleNamespace(hidden=h) for h in ((128,), (16,), (64, 32), ())]
    shapes, lrs = sortable_labels(groups, [0.01, 0.03, 0.1, 3.0, 10.0, 300.0])
    assert shapes == {(128,): "h128", (16,): "h016", (64, 32): "h064-032", (): "h000"}
    names = list(lrs.values())
    assert names == ["000.01", "000.03", "000.10", "003.00", "010.00", "300.00"]
    assert sorted(names) == names and sorted(shapes.values())[:2] == ["h000", "h016"]
    _, search = sortable_labels(groups, [0.00123456, 0.5, 2.5])
    assert list(search.values()) == sorted(search.values())
    assert all(abs(float(t) - v) <= 5e-3 * v for v, t in search.items())


def test_run_names_are_distinct_at_any_learning_rate_and_fit_a_file_name(tmp_path):
    """1e-20, 2e-20 and 3e-20 are three runs, and a 37-layer network's names are real
    directory names (255 bytes at most), each its own."""
    from types import SimpleNamespace

    from deepmle.analysis.tensorboard import cell_name, sortable_labels

    deep = [tuple(range(100_000, 100_037)), (123_456,) * 37, (16,)]
    groups = [SimpleNamespace(hidden=h) for h in deep]
    lrs = [1e-20, 2e-20, 3e-20, 0.5, 1e30]
    shapes, names = sortable_labels(groups, lrs)
    assert len(set(names.values())) == len(lrs)
    assert all(float(t) == pytest.approx(v, rel=5e-3) for v, t in names.items())
    cells = {cell_name(shapes[g.hidden], names[lr]) for g in groups for lr in lrs}
    assert len(cells) == len(groups) * len(lrs)
    for name in cells:
        (tmp_path / name).mkdir()  # ENAMETOOLONG past the file system's limit
    _, tiny = sortable_labels(groups, [1e-20, 2e-20, 3e-20])
    assert list(tiny.values()) == ["1.00e-20", "2.00e-20", "3.00e-20"]
