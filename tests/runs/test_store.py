"""The run store keeps a user's files safe: it never deletes what deepmle did not write,
replaces a run only once the replacement has finished, lets one process at a time write a run
directory, and resumes only from group files it has verified. Every failure is made for real:
a real kill, a real corrupt file, a real OS refusal."""

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import data as data_lib
from deepmle import results
from deepmle.cli import main
from deepmle.runs import store

from ..helpers import CONFIGS, INTERRUPTIBLE, TINY, deepmle_process, env, finish, once, wait_for

SHRINK = [*TINY, "--set", "model.hidden_sizes=[[8], [16]]"]
"""The tiny config with a second group, for resuming one group beside another."""


def _run(out, *extra, quiet: bool = True) -> int:
    return main(["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-plots",
                 *(["--quiet"] if quiet else []), *SHRINK, *extra])  # fmt: skip


def _files(directory) -> dict:
    """Every file's bytes but the lock's (which holds the pid of its last holder)."""
    return {
        p.relative_to(directory): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file() and p.name != store.LOCK
    }


@pytest.fixture(scope="module")
def finished():
    """A finished run, built once per test run: read it, or copy it (``_copy``) to write."""
    return once("store-finished", lambda d: _check(_run(d / "run"))) / "run"


def _check(code: int) -> None:
    assert code == 0


def _copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def test_a_directory_deepmle_did_not_make_is_never_touched(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\chapter{Results}")
    for extra in ((), ("--overwrite",)):
        assert _run(thesis, *extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a deepmle run directory" in err
        assert "--overwrite" not in err.split("directory")[-1] or not extra
    assert [p.name for p in thesis.iterdir()] == ["thesis.tex"]


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert _run(target) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err
    assert target.read_text() == "keep me"


def test_an_os_refusal_is_one_line_naming_the_path(capsys):
    assert _run("/sys/deepmle-run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/sys/deepmle-run" in err


def test_overwrite_refuses_a_run_directory_holding_a_users_file(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "plots").mkdir(exist_ok=True)
    (out / "plots" / "my_notes.txt").write_text("mine")
    before = _files(out)
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 2
    err = capsys.readouterr().err
    assert "plots/my_notes.txt" in err and "never deletes" in err
    assert _files(out) == before


@pytest.mark.slow
def test_overwrite_replaces_only_once_the_new_run_has_finished(finished, tmp_path):
    """A replacing run killed mid-way leaves the old run whole; the next one replaces it."""
    out = _copy(finished, tmp_path)
    before = _files(out)
    proc = deepmle_process(out, "--overwrite", "--quiet", *INTERRUPTIBLE)
    staging = out.with_name(f".{out.name}.deepmle-new-{proc.pid}")
    wait_for(staging / "groups" / "h16.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _files(out) == before  # the old run, untouched
    code, _, err = finish(deepmle_process(out, "--overwrite", "--quiet", *SHRINK,
                                          "--set", "train.learning_rate=0.1"))  # fmt: skip
    assert code == 0, err
    assert results.load_run(out).config.train.learning_rate == (0.1,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left behind


@pytest.mark.slow
def test_a_second_process_is_refused_and_a_killed_ones_lock_does_not_block(finished, tmp_path):
    out = _copy(finished, tmp_path)
    grid = ["--quiet", *INTERRUPTIBLE]
    first = deepmle_process(out, "--overwrite", *grid)
    staging = out.with_name(f".{out.name}.deepmle-new-{first.pid}")
    wait_for(staging / "config.toml", first)
    code, _, err = finish(deepmle_process(out, "--overwrite", *grid))
    assert code == 2 and "another deepmle process" in err and str(first.pid) in err
    first.send_signal(signal.SIGKILL)
    first.wait()
    code, _, err = finish(deepmle_process(out, *SHRINK, "--quiet"))
    assert code == 0, err  # the same config as the run there: resumes, no stale lock


def _resume(out, capsys) -> str:
    assert _run(out, quiet=False) == 0
    return capsys.readouterr().err


def _corrupt(path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "bit flip":
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif how == "broken json":
        path.write_text(path.read_text()[:-10])


@pytest.mark.parametrize(
    ("file", "how", "reason"),
    [
        ("h8.npz", "truncated", "fails its checksum"),
        ("h8.npz", "bit flip", "fails its checksum"),
        ("h8.json", "broken json", "unreadable"),
    ],
)
def test_damaged_group_files_are_reported_and_retrained(
    finished, tmp_path, capsys, file, how, reason
):
    out = _copy(finished, tmp_path)
    _corrupt(out / "groups" / file, how)
    err = _resume(out, capsys)
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith("deepmle: warning: group h8 ") and reason in warning
    assert "trained again" in warning and f"{file}.rejected" in warning
    assert "h16: already done" in err
    config = config_lib.load(out / "config.toml")
    assert store.read_group(out, config, (8,))[0] is not None
    assert (out / "groups" / f"{file}.rejected").is_file()  # kept, not deleted


def test_a_foreign_group_file_is_never_used(finished, tmp_path, capsys):
    """A valid group file of another shape copied over h8, its record with it."""
    out = _copy(finished, tmp_path)
    for suffix in (".npz", ".json"):
        shutil.copy(out / "groups" / f"h16{suffix}", out / "groups" / f"h8{suffix}")
    err = _resume(out, capsys)
    assert "group h8" in err and "trained again" in err
    g = results.load_run(out).group((8,))
    assert g.params[0]["w"].shape == (2, 1, 784, 8)


def test_a_group_recorded_for_another_config_is_not_reused(finished, tmp_path, capsys):
    """The record's identity is checked, not just the checksum: a sound file whose identity
    differs (here: re-signed by hand) is trained again."""
    out = _copy(finished, tmp_path)
    record_path = out / "groups" / "h8.json"
    record = json.loads(record_path.read_text())
    record["identity"] = "0" * 16
    record["record_sha256"] = store.record_sha256(record)
    record_path.write_text(json.dumps(record))
    err = _resume(out, capsys)
    assert "group h8 was trained with a different config" in err


def test_resume_depends_on_content_not_on_the_config_file_name(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    renamed = tmp_path / "renamed.toml"
    shutil.copy(CONFIGS / "seed.toml", renamed)
    args = ["run", str(renamed), "--out", str(out), "--no-plots", *SHRINK]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "h8: already done" in err and "h16: already done" in err


def test_group_record_holds_checksum_and_identity(finished):
    record = json.loads((finished / "groups" / "h8.json").read_text())
    data = (finished / "groups" / "h8.npz").read_bytes()
    config = config_lib.load(finished / "config.toml")
    assert record["npz_sha256"] == hashlib.sha256(data).hexdigest()
    assert record["data_sha256"] == data_lib.sha256(data_lib.load(config.data))
    assert record["identity"] == store.identity(config, (8,), record["data_sha256"])
    assert record["group"] == "h8"


def test_resume_on_other_data_trains_again(finished, tmp_path, capsys, rng):
    """The same config on a different mnist.npz (same path) must not reuse the groups."""
    path = tmp_path / "mnist.npz"
    x = rng.integers(0, 256, (400, 28, 28), dtype=np.uint8)
    y = np.tile(np.array([1, 2]), 200)
    np.savez(path, x_train=x, y_train=y, x_test=x[:100], y_test=y[:100])
    npz = ["--set", "data.source=npz", "--set", f"data.path={path}"]
    out = tmp_path / "run"
    assert _run(out, *npz) == 0
    np.savez(path, x_train=x, y_train=y[::-1], x_test=x[:100], y_test=y[:100])  # labels changed
    assert _run(out, *npz, quiet=False) == 0
    err = capsys.readouterr().err
    assert "group h8 was trained on different data" in err and "h16: already done" not in err


def _own_looking_files(out):
    """Files a user might put in a run directory under names that look like deepmle's."""
    (out / "plots").mkdir(exist_ok=True)
    (out / "plots" / "figure_for_paper.png").write_text("mine")
    (out / ".notes.tmp").write_text("mine")
    (out / "tensorboard" / "old").mkdir(parents=True)
    (out / "tensorboard" / "old" / "events.out.tfevents.1.host").write_text("mine")
    (out / "my_empty_dir").mkdir()
    os.symlink(out / "groups", out / "linked")


def test_overwrite_knows_deepmles_exact_names(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    _own_looking_files(out)
    before = _files(out)
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 2
    err = capsys.readouterr().err
    assert ".notes.tmp" in err and "linked" in err and "my_empty_dir" in err
    assert _files(out) == before
    assert sorted(store.foreign_files(out)) == [
        ".notes.tmp", "linked", "my_empty_dir", "plots/figure_for_paper.png", "tensorboard/old",
    ]  # fmt: skip


def test_overwrite_knows_the_logistic_group_and_the_calibration_figure(tmp_path):
    """A logistic regression run (group h0) with its figures (calibration.png among them) and
    TensorBoard export is all deepmle's own, its cells named by every hyperparameter they carry
    (a MAP sweep: ``_prior_std1.00e+00``, ``_prior_stdinf``): a second export replaces the
    first, and --overwrite replaces the run."""
    out = tmp_path / "run"
    assert _run(out, "--set", "model.hidden_sizes=[[]]", "--set", "train.prior_std=[inf, 1.0]") == 0
    assert main(["plot", str(out)]) == 0 and main(["tensorboard", str(out)]) == 0
    cells = {p.name for p in (out / "tensorboard").iterdir() if p.is_dir()}
    assert cells == {"h0_lr1_prior_std1.00e+00", "h0_lr1_prior_stdinf"}
    assert main(["tensorboard", str(out)]) == 0
    assert (out / "groups" / "h0.npz").is_file() and (out / "plots" / "calibration.png").is_file()
    assert store.foreign_files(out) == []
    for own in (
        "groups/h0.json",
        "groups/h0.npz.rejected1",
        "plots/.calibration.png.ab12.tmp",
        "groups/.h0.npz.x9.tmp",
        "tensorboard/h0_lr1.0/events.out.tfevents.1.host",
        "tensorboard/h032-tanh_lr0.10_momentum0.90_prior_std1.00e-20/events.out.tfevents.1.h",
    ):
        assert store.OWN_FILES.match(own), own  # fmt: skip
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 0
    assert results.load_run(out).config.train.learning_rate == (0.1,)


def test_a_tensorboard_export_never_replaces_a_users_files(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "tensorboard" / "mine").mkdir(parents=True)
    (out / "tensorboard" / "mine" / "notes.txt").write_text("keep")
    assert main(["tensorboard", str(out)]) == 2
    assert "tensorboard/mine" in capsys.readouterr().err
    assert (out / "tensorboard" / "mine" / "notes.txt").read_text() == "keep"


def test_overwrite_through_a_symlink_replaces_its_target_and_keeps_permissions(finished, tmp_path):
    target = tmp_path / "store" / "run"
    target.parent.mkdir()
    shutil.copytree(finished, target)
    os.chmod(target, 0o750)
    link = tmp_path / "link"
    os.symlink(target, link)
    assert _run(link, "--overwrite", "--set", "train.learning_rate=0.1") == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert results.load_run(target).config.train.learning_rate == (0.1,)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "store"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]


def test_set_aside_group_files_survive_an_overwrite(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    _corrupt(out / "groups" / "h8.npz", "bit flip")
    assert _run(out) == 0  # resume: h8 set aside as .rejected, trained again
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 0
    assert (out / "groups" / "h8.npz.rejected").is_file()  # carried over, never deleted


@pytest.mark.slow
def test_an_interrupted_overwrite_resumes_where_it_stopped(finished, tmp_path):
    out = _copy(finished, tmp_path)
    grid = ["--overwrite", *INTERRUPTIBLE]
    proc = deepmle_process(out, *grid)
    staging = out.with_name(f".{out.name}.deepmle-new-{proc.pid}")
    wait_for(staging / "groups" / "h16.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    code, _, err = finish(deepmle_process(out, *grid))
    assert code == 0, err
    assert "h16: already done" in err and "h256: done" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_dangling_symlink_out_is_one_line(tmp_path, capsys):
    os.symlink(tmp_path / "nowhere", tmp_path / "link")
    assert _run(tmp_path / "link") == 2
    assert "symbolic link to nothing" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.slow
def test_files_follow_the_umask(tmp_path, umask):
    code = (
        f"import os; os.umask({umask}); from deepmle.runs import store; from pathlib import Path; "
        f"store.atomic_write_bytes(Path({str(tmp_path / 'f.txt')!r}), b'x')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_half_file(tmp_path):
    """The OS refuses a write (a file-size limit here, as a full disk would): one line naming
    the file, exit 2, no temporary file left, and the files already written intact. The
    compilation cache is empty, so its writes are refused too: they cost a cache entry, not a
    line of output."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--out", str(out),
           "--no-plots", "--quiet", "--cache-dir", str(tmp_path / "cache"), *SHRINK]  # fmt: skip
    # bash: SIGXFSZ ignored (so the write fails with EFBIG instead of killing), files <= 20 KiB
    limited = ["bash", "-c", 'trap "" XFSZ; ulimit -f 20; exec "$@"', "bash", *cmd]
    proc = subprocess.run(limited, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "File too large" in lines[0]
    assert not list(out.rglob("*.tmp"))
    assert config_lib.load(out / "config.toml").train.seeds == 2


def test_foreign_files_lists_what_deepmle_did_not_write(finished, tmp_path):
    out = _copy(finished, tmp_path)
    assert store.foreign_files(out) == []
    (out / "groups" / "extra.npz").write_bytes(np.zeros(1).tobytes())
    (out / "README.txt").write_text("mine")
    assert store.foreign_files(out) == ["README.txt", "groups/extra.npz"]
    assert os.path.exists(out / store.MARKER)


def test_a_run_missing_its_config_toml_is_refused_as_damaged(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "config.toml").unlink()
    before = _files(out)
    assert _run(out, "--set", "train.learning_rate=0.1") == 2
    err = capsys.readouterr().err
    assert "without its config.toml" in err and err.count("\n") == 1
    assert _files(out) == before  # its results are still there
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 0
    assert results.load_run(out).config.train.learning_rate == (0.1,)


def test_overwrite_leaves_a_sibling_whose_name_only_starts_like_its_staging(finished, tmp_path):
    out = _copy(finished, tmp_path)
    backup = tmp_path / f".{out.name}.deepmle-backup"
    shutil.copytree(finished, backup)  # a user's copy of a run, named alike
    assert _run(out, "--overwrite", "--set", "train.learning_rate=0.1") == 0
    assert _files(backup) == _files(finished)


def test_figures_of_retrained_groups_do_not_outlive_their_data(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    assert main(["plot", str(out)]) == 0 and main(["tensorboard", str(out)]) == 0
    assert _run(out) == 0  # nothing retrained: the figures still show these results
    assert (out / "plots" / "heatmap.png").is_file() and (out / "tensorboard").is_dir()
    capsys.readouterr()
    _corrupt(out / "groups" / "h8.npz", "bit flip")
    assert _run(out, quiet=False) == 0  # h8 retrained, with --no-plots and no --tensorboard
    printed = capsys.readouterr().out
    assert not (out / "plots").exists() and not (out / "tensorboard").exists()
    assert "removed plots/" in printed and "removed tensorboard/" in printed


def test_a_file_beside_tensorboard_does_not_block_the_export(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (out / "tensorboard_notes.txt").write_text("mine, beside the export, not in it")
    assert main(["tensorboard", str(out)]) == 0, capsys.readouterr().err
    assert (out / "tensorboard_notes.txt").read_text().startswith("mine")


def test_curves_csv_keeps_its_column_order_after_a_resume(finished, tmp_path):
    out = _copy(finished, tmp_path)
    header = (out / "curves.csv").read_text().splitlines()[0]
    assert header.endswith("epoch,train_ll,train_accuracy,val_ll,val_accuracy")
    (out / "groups" / "h16.json").unlink()  # h8 is loaded from its file, h16 trained again
    assert _run(out) == 0
    assert (out / "curves.csv").read_text().splitlines()[0] == header


def test_a_group_saved_before_a_metric_existed_still_loads_without_it(finished, tmp_path, capsys):
    """A format-1 group file (no recorded format) lacking a metric: it loads and resumes, the
    metric absent from the group, its CSV columns and the table; every other metric there."""
    from deepmle.analysis import load, report
    from deepmle.runs.results import FORMAT_VERSION

    out = _copy(finished, tmp_path)
    npz, record_path = out / "groups" / "h8.npz", out / "groups" / "h8.json"
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files if k not in ("final/test_ll", "curves/train_accuracy")}
    data = store.npz_bytes(arrays)
    npz.write_bytes(data)
    record = json.loads(record_path.read_text())
    assert record.pop("format") == FORMAT_VERSION
    record.pop("record_sha256")  # a format-1 record has no checksum of its own
    record["npz_sha256"] = hashlib.sha256(data).hexdigest()
    record_path.write_text(json.dumps(record))

    res = load.load_run(out)
    old, new = res.group((8,)), res.group((16,))
    assert "test_ll" not in old.final and "train_accuracy" not in old.curves
    assert "test_ll" in new.final and "val_accuracy" in old.curves
    assert "test_ll" not in report.member_rows(res.groups)[0]
    assert "train_accuracy" not in report.curve_rows(res.groups)[0]
    assert "val acc %" in report.table(res.summary)
    assert _resume(out, capsys).count("trained again") == 0


@pytest.mark.slow
def test_a_rewrite_refused_midway_keeps_the_old_file_whole(tmp_path):
    """`ulimit -f` for real: the new file cannot be written past 100 KiB. The old one must
    survive whole (written beside and renamed over, never truncated in place)."""
    path = tmp_path / "summary.csv"
    old = b"hidden_sizes,learning_rate\n" * 1000
    path.write_bytes(old)
    code = ("import sys; from pathlib import Path; from deepmle.runs import store; "
            "store.atomic_write_bytes(Path(sys.argv[1]), b'x' * 10**6)")  # fmt: skip
    # SIGXFSZ ignored: the write fails with EFBIG instead of the process being killed.
    shell = f"trap '' XFSZ; ulimit -f 100; exec {sys.executable} -c \"{code}\" {path}"
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


@pytest.mark.slow
def test_a_group_trained_by_other_code_is_retrained_with_a_line(finished, tmp_path, capsys):
    """A real edit of a training function (each step's learning rate halved, in a copy of the
    package) trains a run in a subprocess; resuming it with this code retrains both groups,
    says why, keeps the stale files, and gives this code's numbers bitwise."""
    import deepmle

    edited = tmp_path / "edited"
    shutil.copytree(os.path.dirname(deepmle.__file__), edited / "deepmle")
    member_py = edited / "deepmle" / "core" / "member.py"
    source = member_py.read_text()
    assert source.count("spec.optimizer(member.hparams)") == 1
    halved = '{**member.hparams, "learning_rate": member.hparams["learning_rate"] / 2}'
    member_py.write_text(
        source.replace("spec.optimizer(member.hparams)", f"spec.optimizer({halved})")
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepmle", "run", str(CONFIGS / "seed.toml"), "--out", str(out),
           "--no-plots", "--quiet", *SHRINK]  # fmt: skip
    proc = subprocess.run(cmd, env=env(extra={"PYTHONPATH": str(edited)}), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stale = json.loads((out / "groups" / "h8.json").read_text())
    assert stale["code"] != store.code_digest()
    before = results.load_run(out).group((8,)).params[0]["w"]
    assert not np.array_equal(before, results.load_run(finished).group((8,)).params[0]["w"])

    err = _resume(out, capsys)
    for name in ("h8", "h16"):
        assert f"group {name} was trained by other code (code {stale['code']}; " in err
        assert "not used, trained again" in err
        assert (out / "groups" / f"{name}.npz.rejected").is_file()
    assert json.loads((out / "groups" / "h8.json").read_text())["code"] == store.code_digest()
    for a, b in zip(results.load_run(out).groups, results.load_run(finished).groups, strict=True):
        for la, lb in zip(a.params, b.params, strict=True):
            for k in la:
                np.testing.assert_array_equal(la[k], lb[k])


def test_the_code_digest_sees_code_not_comments_or_docstrings():
    """An edit of a comment, a docstring or the layout leaves a module's code as it was (no
    retraining); an edit of an expression does not."""
    base = 'def step(lr, g):\n    """One step."""\n    return lr * g\n'
    assert store._code_of(base) == store._code_of(
        '"""Module."""\n\n\ndef step(lr, g):  # the update\n    """Another docstring."""\n'
        "    return lr*g\n"
    )
    assert store._code_of(base) != store._code_of(base.replace("lr * g", "lr / 2 * g"))
    assert store._code_of('def f():\n    """Only a docstring."""\n') != store._code_of(base)
    assert len(store.code_digest()) == 16 and store.code_digest() == store.code_digest()


def test_an_edited_group_record_is_not_reused(finished, tmp_path, capsys):
    """A field of the record that resume reuses (here its info), edited by hand and still
    valid JSON: its checksum fails, and the group is set aside and trained again."""
    out = _copy(finished, tmp_path)
    record_path = out / "groups" / "h8.json"
    record = json.loads(record_path.read_text())
    record["info"]["train_s"] = 1234.5
    record_path.write_text(json.dumps(record))
    err = _resume(out, capsys)
    assert "group h8 h8.json fails its checksum (edited or damaged)" in err
    assert "trained again" in err and (out / "groups" / "h8.json.rejected").is_file()
    assert results.load_run(out).group((8,)).info["train_s"] != 1234.5


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deepmle", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=cwd, timeout=300)


def _tree(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("linked", ["plots", "groups"])
@pytest.mark.slow
def test_a_linked_folder_in_a_run_directory_is_never_written_through(finished, tmp_path, linked):
    """``plots/`` or ``groups/`` a symbolic link to a folder of the user's, holding files
    named as deepmle's: `deepmle run` (resuming) and `deepmle plot` refuse in one line, and
    the user's folder is byte-identical afterwards (nothing replaced, nothing renamed)."""
    out = _copy(finished, tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for name in ("curves.png", "h8.npz", "h8.json"):
        (theirs / name).write_text(f"the user's {name}")
    shutil.rmtree(out / linked, ignore_errors=True)
    if linked == "groups":  # the run's own groups, in the user's folder beside their files
        shutil.copytree(finished / "groups", theirs, dirs_exist_ok=True)
        (theirs / "h8.npz").write_text("the user's h8.npz")
    os.symlink(theirs, out / linked)
    before = _tree(theirs)
    config = str(CONFIGS / "seed.toml")
    commands = [["run", config, "--out", str(out), *SHRINK]]
    commands += [["plot", str(out)]] if linked == "plots" else []  # plot writes plots/ only
    for args in commands:
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert f"{out / linked} is a symbolic link; deepmle never writes through one" in line
        assert _tree(theirs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "theirs"]


@pytest.mark.slow
def test_a_linked_figure_is_never_replaced(finished, tmp_path):
    """plots/curves.png a link to a file of the user's: `deepmle plot` refuses, the file
    keeps its bytes and the link stays a link."""
    out = _copy(finished, tmp_path)
    theirs = tmp_path / "figure.png"
    theirs.write_text("the user's figure")
    (out / "plots").mkdir(exist_ok=True)
    (out / "plots" / "curves.png").unlink(missing_ok=True)
    os.symlink(theirs, out / "plots" / "curves.png")
    proc = _cli("plot", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "curves.png is a symbolic link" in proc.stderr.strip()
    assert theirs.read_text() == "the user's figure" and (out / "plots" / "curves.png").is_symlink()


def test_overwrite_with_the_same_config_trains_every_group_again(finished, tmp_path):
    """--overwrite with the config the run already holds replaces its finished groups: new
    group files with new timings, and (the same training) bitwise the same params."""
    out = _copy(finished, tmp_path)
    before = results.load_run(out)
    inode = (out / "groups" / "h8.npz").stat().st_ino
    assert _run(out, "--overwrite") == 0
    after = results.load_run(out)
    assert (out / "groups" / "h8.npz").stat().st_ino != inode
    for g0, g1 in zip(before.groups, after.groups, strict=True):
        assert g1.info["train_s"] != g0.info["train_s"]
        for l0, l1 in zip(g0.params, g1.params, strict=True):
            for k in l0:
                np.testing.assert_array_equal(l1[k], l0[k])
