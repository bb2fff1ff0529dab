"""The research answers (experiments/pairs.py, hidden.py, calibration.py) end to end in their
smoke form, in real subprocesses, so that they cannot rot; and their plumbing (plumbing.py)."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
sys.path.insert(0, str(EXPERIMENTS))
import pairs  # noqa: E402

from deepmle.errors import UserError  # noqa: E402

import plumbing  # noqa: E402
from .helpers import interruptible, wait_for  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _run(script: str, *args: str, env: dict, code: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), "--smoke", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == code, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_the_three_answers_run_and_write_what_they_claim(tmp_path):
    # one compilation cache for the three, as on a researcher's machine: hidden.py's smoke
    # trains the very programs pairs.py's smoke compiled
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out, runs = tmp_path / "out", tmp_path / "runs"
    # Ctrl-C once the first pair is saved: one line, exit 130, and a rerun that keeps it
    cmd = [sys.executable, str(EXPERIMENTS / "pairs.py"), "--smoke", "--out", str(out),
           "--runs", str(runs / "pairs")]  # fmt: skip
    first = runs / "pairs" / "1v2" / "params.npz"  # written once the pair has finished
    proc = interruptible(cmd, env=env)
    wait_for(first, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # two pairs to go: seconds of work left
    assert proc.returncode == 130 and err.strip().count("\n") == 0, err
    assert "interrupted" in err and not (out / "pairs.json").exists()
    groups = sorted((runs / "pairs" / "1v2" / "groups").iterdir())
    saved = {p: p.stat().st_mtime_ns for p in groups}
    _run("pairs.py", "--out", str(out), "--runs", str(runs / "pairs"), env=env)
    assert {p: p.stat().st_mtime_ns for p in groups} == saved and len(saved) == 4  # reused
    pairs = json.loads((out / "pairs.json").read_text())
    plan = pairs["plan"]
    assert [r["pair"] for r in pairs["pairs"]] == [[1, 2], [1, 7], [2, 7]]
    for r in pairs["pairs"]:
        for shape in ("network", "logistic"):
            cell = r[shape]
            assert cell["selected_lr"] in plan["learning_rates"]
            assert 0 <= cell["test_error"]["mean"] < 0.2 and cell["test_error"]["n"] == 2
            assert cell["test_error"]["sampling_ci95"] > 0
        assert r["n_train"] + r["n_val"] > 10_000 and r["n_test"] > 1_500
        d = r["logistic_minus_network"]["test_error"]
        boot = d["bootstrap"]  # over seeds and digits: the same point, an interval around it
        assert boot["diff"] == pytest.approx(d["mean"], abs=1e-6) and boot["n_seeds"] == 2
        assert boot["lo"] <= boot["diff"] <= boot["hi"] and 0 < boot["p"] <= 1
        assert boot["n_digits"] == r["n_test"]
        sk = r["sklearn_logistic"]
        assert sk["selected_C"] in [c["C"] for c in sk["by_C"]] and 0 <= sk["test_error"] < 0.2
        diff = r["network_minus_sklearn"]["test_error"]["diff"]
        assert diff == pytest.approx(
            r["network"]["test_error"]["mean"] - sk["test_error"], abs=1e-6
        )
    m = pairs["multiple_comparisons"]["logistic_minus_network"]
    assert m["tests"] == 3 and m["holm"] <= m["benjamini_hochberg"] <= m["unadjusted"]
    by_val = sorted(pairs["pairs"], key=lambda r: -r["network"]["val_error"]["mean"])
    assert pairs["hardest"] == [r["pair"] for r in by_val]  # ranked on validation, not test
    hardest = tuple(pairs["hardest"][0])

    pairs_json = ("--pairs-json", str(out / "pairs.json"))
    _run("hidden.py", "--out", str(out), "--runs", str(runs / "hidden"), *pairs_json, env=env)
    hidden = json.loads((out / "hidden.json").read_text())
    assert [s["pair"] for s in hidden["studies"]] == [
        [1, 2],
        *([list(hardest)] * (hardest != (1, 2))),
    ]
    for s in hidden["studies"]:
        logistic, net = s["shapes"]
        assert (logistic["width"], net["width"]) == (0, 8)
        assert logistic["logistic_minus_this"]["test_error"]["mean"] == 0
        d = net["logistic_minus_this"]["test_error"]
        errors = (logistic["test_error"]["mean"], net["test_error"]["mean"])
        assert d["mean"] == pytest.approx(errors[0] - errors[1], abs=1e-9)  # no seed diverged

    common = ("--out", str(out), "--runs", str(runs / "calibration"), *pairs_json)
    _run("calibration.py", *common, env=env)
    cal = json.loads((out / "calibration.json").read_text())
    for s in cal["studies"]:
        assert len(s["cells"]) == 2 * 2  # widths × learning rates
        for c in s["cells"]:
            assert c["test_ece"]["mean"] >= 0 and c["test_ece_reference"]["mean"] > 0
            assert math.exp(c["log_temperature"]["mean"]) == pytest.approx(
                c["temperature"]["mean"], rel=0.5
            )
        for c in s["selected"].values():
            t = c["temperature_interval"]  # the library's T, with an interval over val digits
            assert np.mean(t["per_seed"]) == pytest.approx(c["temperature"]["mean"], rel=1e-4)
            assert 0 < min(t["per_seed_lo"]) and np.all(np.less(t["per_seed_lo"], t["per_seed_hi"]))
            e = c["ece_null"]
            assert np.mean(e["ece"]) == pytest.approx(c["test_ece"]["mean"], rel=1e-4)
            assert 0 <= e["exceed_q95"] <= e["seeds"] == 2
        assert set(s["selected"]) == {"val_accuracy", "val_ll"}
        if s["same_cell"]:
            assert all(d["mean"] == 0 for d in s["accuracy_minus_ll_selected"].values())
    for name in ("pairs.png", "hidden.png", "calibration.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_a_missing_pairs_json_is_one_clear_line(tmp_path):
    with pytest.raises(UserError, match=r"run python experiments/pairs\.py"):
        plumbing.studied_pairs(tmp_path / "nowhere.json")
    (tmp_path / "p.json").write_text(json.dumps({"hardest": [[4, 9]]}))
    assert plumbing.studied_pairs(tmp_path / "p.json") == [(1, 2), (4, 9)]


def test_outputs_have_no_nan_and_a_figure_that_fails_leaves_the_old_pair(tmp_path):
    record = {"ci95": math.nan, "values": [1.0, np.inf]}
    plumbing.save(tmp_path, "r", record, lambda p: p.write_bytes(PNG))
    assert json.loads((tmp_path / "r.json").read_text()) == {"ci95": None, "values": [1.0, None]}

    def broken(path):
        raise RuntimeError("the figure failed")

    with pytest.raises(RuntimeError):
        plumbing.save(tmp_path, "r", {"new": 1}, broken)
    assert json.loads((tmp_path / "r.json").read_text())["ci95"] is None  # the old pair, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]
    (tmp_path / "r.json").unlink()
    (tmp_path / "r.json").mkdir()  # cannot be replaced: one line, nothing left behind
    with pytest.raises(UserError, match="cannot write"):
        plumbing.save(tmp_path, "r", {"x": 1}, lambda p: p.write_bytes(PNG))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]


@pytest.mark.slow
def test_another_studys_run_directory_is_refused_in_one_line_and_left_alone(tmp_path):
    (tmp_path / "pairs.json").write_text(json.dumps({"hardest": [[1, 2]]}))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    common = ("--out", str(tmp_path), "--pairs-json", str(tmp_path / "pairs.json"))
    _run("hidden.py", *common, "--runs", str(tmp_path / "runs"), env=env)

    def files():  # the results; .deepmle-lock names the last process that held the directory
        runs = (tmp_path / "runs").rglob("*")
        return {p: p.read_bytes() for p in runs if p.is_file() and p.name != ".deepmle-lock"}

    before = files()
    done = _run("calibration.py", *common, "--runs", str(tmp_path / "runs"), env=env, code=2)
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("calibration.py: error:") and "1v2" in line
    assert files() == before and len(before) > 5


def test_pairs_are_ranked_on_validation_never_on_test():
    def record(pair, val, test, val_gap, test_gap):
        s = lambda m: {"mean": m, "ci95": 0.0, "n": 8}  # noqa: E731
        return {
            "pair": pair,
            "network": {"val_error": s(val), "test_error": s(test)},
            "logistic_minus_network": {"val_error": s(val_gap), "test_error": s(test_gap)},
        }

    # on test the order of both rankings is the reverse of validation's
    records = [record([4, 9], 0.01, 0.03, 0.002, 0.02), record([7, 9], 0.02, 0.01, 0.02, 0.001)]
    assert [r["pair"] for r in pairs.hardest(records)] == [[7, 9], [4, 9]]
    assert [r["pair"] for r in pairs.hidden_matters(records)] == [[7, 9], [4, 9]]


@pytest.mark.parametrize(
    "content", [{"hardest": [[7]]}, {"hardest": [[1, 12]]}, {"hardest": "79"},
                {"hardest": [["7", "9"]]}, {"hardest": [[4, 4]]}, {"best": []}],
)  # fmt: skip
def test_a_pairs_json_without_two_digits_is_one_clear_line(tmp_path, content):
    (tmp_path / "p.json").write_text(json.dumps(content))
    with pytest.raises(UserError, match=r"p\.json"):
        plumbing.studied_pairs(tmp_path / "p.json")


@pytest.mark.slow
def test_bad_arguments_stop_the_script_before_it_trains(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"hardest": [[1, 12]]}))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = ("--runs", str(tmp_path / "runs"))
    done = _run("hidden.py", *runs, "--pairs-json", str(tmp_path / "p.json"), env=env, code=2)
    assert done.stderr.strip() == (
        f"hidden.py: error: {tmp_path / 'p.json'}: its hardest pair [1, 12] is not two digits 0-9"
    )
    done = _run("calibration.py", "--out", "", *runs, env=env, code=2)  # not the current folder
    assert done.stderr.strip() == "calibration.py: error: argument --out: an empty path"
    done = _run("calibration.py", "--runs", " ", env=env, code=2)
    assert done.stderr.strip() == "calibration.py: error: argument --runs: an empty path"
    assert not (tmp_path / "runs").exists()
