"""The `deepmle` command refusing what it cannot do in one line, for real: a subprocess of
``python -m deepmle`` each time, its exit code and its whole stderr checked."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepmle import results
from deepmle.errors import UserError

from .helpers import CONFIGS, env

ALL_DIVERGE = ["--set", "train.learning_rate=[1e30, 2e30, 3e30]", "--set", "train.epochs=2",
               "--set", "train.seeds=1", "--set", "model.hidden_sizes=[4]",
               "--set", "search.method=halving", "--set", "search.eta=2"]  # fmt: skip


def deepmle(*args: str | Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "deepmle", *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Path:
    """A successive-halving run of 3 learning rates where every member diverges."""
    out = tmp_path_factory.mktemp("refusals") / "run"
    code, stdout, err = deepmle("run", CONFIGS / "seed.toml", "--out", out, "--quiet",
                                *ALL_DIVERGE)  # fmt: skip
    assert (code, one_line(err)) == (1, "deepmle: every member diverged")
    assert "selected" not in stdout
    return out


def test_every_member_diverged_draws_the_log_scaled_figures_and_exits_1(diverged):
    for name in ("lr", "halving", "curves", "heatmap"):
        assert (diverged / "plots" / f"{name}.png").stat().st_size > 1000, name
    assert not (diverged / "plots" / "weights.png").exists()  # no selected model to show
    (diverged / "plots" / "lr.png").unlink()
    code, _, err = deepmle("plot", diverged)
    assert code == 0 and (diverged / "plots" / "lr.png").is_file(), err


@pytest.mark.parametrize("lr", ["0", "-1", "inf", "1e400", "nan"])
def test_explain_refuses_a_learning_rate_that_is_no_cell(diverged, lr):
    code, out, err = deepmle("explain", diverged, "h4", f"lr={lr}")
    assert code == 2 and out == ""
    assert one_line(err).startswith("deepmle: error: deepmle explain: lr must be a positive")


def test_explain_finds_a_real_cell(diverged):
    code, out, err = deepmle("explain", diverged, "h4", "lr=1e30")
    assert code == 0 and "h4 lr 1e+30: rung 0 at epoch 1" in out, err


DAMAGE = {
    "eta text": lambda s: s.update(eta="3"),
    "eta 1": lambda s: s.update(eta=1),
    "rungs object": lambda s: s.update(rungs={"a": 1}),
    "decisions missing": lambda s: s.pop("decisions"),
    "decision a number": lambda s: s["decisions"].__setitem__(0, 7),
    "rank text": lambda s: s["decisions"][0].update(rank="1"),
    "kept number": lambda s: s["decisions"][0].update(kept=1),
    "val_ll null": lambda s: s["decisions"][0].update(val_ll=None),
    "cutoff word": lambda s: s["rungs"][0].update(cutoff_val_ll="low"),
    "epoch float": lambda s: s["rungs"][-1].update(epoch=2.5),
    "grid 0": lambda s: s["rungs"][-1].update(grid_member_epochs=0),
    "search list": None,
}


def _damaged(run: Path, tmp_path: Path, case: str) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    meta = json.loads((copy / "meta.json").read_text())
    if DAMAGE[case] is None:
        meta["search"] = [1, 2]
    else:
        DAMAGE[case](meta["search"])
    (copy / "meta.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_search_section_is_refused_by_load_run(diverged, tmp_path, case):
    with pytest.raises(UserError, match=r"meta.json: damaged search section \(.*\); re-run"):
        results.load_run(_damaged(diverged, tmp_path, case))


@pytest.mark.parametrize(("command", "case"), [("explain", "eta text"), ("plot", "rank text")])
def test_a_damaged_search_section_is_one_line_for_the_commands(diverged, tmp_path, command, case):
    run = _damaged(diverged, tmp_path, case)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = deepmle(command, run, *(["h4", "lr=1e30"] if command == "explain" else []))
    assert code == 2 and "damaged search section" in one_line(err)
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
