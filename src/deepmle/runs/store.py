"""The run store: the run directory on disk, and the rules that keep a user's files safe.

- Every file is written atomically (temporary file, fsync, rename) with the permissions the
  umask gives, so a crash leaves each file as it was or complete.
- A run directory carries a marker file (MARKER). deepmle writes only into an empty or new
  directory or into its own run directory, and ``overwrite`` replaces only a run directory
  holding nothing but deepmle's own files. The replacement is built beside the old run and
  swapped in when it has finished, so a killed or failed replacement leaves the old run whole.
- Nothing is written through a symbolic link inside a run directory (``no_link``): a resume
  of a run directory holding one where deepmle writes is refused.
- One process at a time writes a run directory (``flock`` on LOCK, which the kernel releases
  when the process dies, even by kill -9).
- Each finished shape ("group") is saved at once: ``groups/<name>.npz`` then
  ``groups/<name>.json``, which records the npz's sha256, the group's identity (a hash of
  the config's content restricted to that shape, not of the file name), the digest of the
  code that trained it (``code_digest``) and its own checksum (``record_sha256``: every
  field resume reuses is covered). Resume uses a group only after checking all of it, under
  the same code; a damaged, foreign or stale group file is renamed ``*.rejected``,
  reported, and its group trained again.
"""

import ast
import ctypes
import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepmle import config as config_lib
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.errors import UserError
from deepmle.population.searches import SEARCHES
from deepmle.runs.results import (
    FORMAT_VERSION,
    GroupResult,
    check_group,
    group_arrays,
    group_from_arrays,
    group_name,
)

MARKER = ".deepmle-run"
LOCK = ".deepmle-lock"
_TOP = r"config\.toml|summary\.csv|members\.csv|curves\.csv|rungs\.csv|params\.npz|meta\.json"
_STATIC = "".join(f"(-{row.prefix}({row.pattern}))?" for row in config_lib.STATIC_KEYS.values())
"""A group name's swept static keys (deepmle.runs.results.group_name)."""
_GROUP = rf"(h[0-9x-]+(-[0-9a-f]{{8}})?{_STATIC}|rungs)\.(npz|json)"
_PLOT = r"(heatmap|curves|lr|weights|misclassified|halving|calibration)\.png"
_HYPER = "|".join(re.escape(k) for k in HYPERPARAMETERS if k != "learning_rate")
_CELL = rf"h[0-9x-]+(-[0-9a-f]{{8}})?{_STATIC}_lr[0-9.e+-]+(_({_HYPER})(inf|[0-9.e+-]+))*"
"""A cell's TensorBoard run: its shape, then each hyperparameter its cells carry
(deepmle.analysis.tensorboard.cell_name)."""
_EVENTS = r"events\.out\.tfevents\.[^/]+"
_TB_DIR = r"(tensorboard|\.tensorboard\.(tmp|old)-[0-9]+)"
OWN_FILES = re.compile(
    rf"^({_TOP}|groups/{_GROUP}(\.rejected[0-9]*)?|plots/{_PLOT}|{_TB_DIR}/({_CELL}/)?{_EVENTS}"
    rf"|(groups/|plots/)?\.({_TOP}|{_GROUP}|{_PLOT})\.[A-Za-z0-9_]+\.tmp)$"
)
"""Paths (relative to the run directory) of the files deepmle writes, temporaries included;
``*.rejected`` group files are deepmle's, set aside, and carried over by a replacement."""
OWN_DIRS = re.compile(rf"^(groups|plots|{_TB_DIR}(/{_CELL})?)$")


class RunDirError(UserError):
    """A run directory that cannot be used as asked (it would lose data, or the OS refuses)."""


def file_mode() -> int:
    """0o666 less the process's umask, as open() would give; read from /proc where it can
    be, so the umask is never changed, not even for an instant."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def os_error(path: Path, e: OSError) -> RunDirError:
    """One line naming the path and what the OS said (no space left, permission denied, ...)."""
    return RunDirError(f"cannot write {path}: {e.strerror or e}")


def no_link(root: Path, path: Path) -> None:
    """RunDirError if ``path``, or a folder between ``root`` and it, is a symbolic link: what
    deepmle writes inside ``root`` stays inside it, never written through a link to elsewhere."""
    at = Path(root)
    for part in Path(path).relative_to(root).parts:
        at = at / part
        if os.path.islink(at):
            raise RunDirError(
                f"{at} is a symbolic link; deepmle never writes through one (it could lead out "
                f"of {root}): replace it by a plain file or folder, or choose another directory"
            )


def atomic_write_bytes(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write ``data`` to ``path``: readers see the old file or the new one, nothing between.
    With ``root`` (a run directory), a symbolic link on the way from it is refused (no_link)."""
    path = Path(path)
    tmp = None
    if root is not None:
        no_link(root, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise os_error(path, e) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, root: Path | None = None) -> None:
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode(), root
    )


def record_sha256(record: Mapping[str, Any]) -> str:
    """The sha256 of a record's canonical JSON (as write_json writes it), its own
    "record_sha256" aside: a record read back has the same one unless a field was edited."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _sealed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "record_sha256": record_sha256(record)}


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def identity(
    config: config_lib.Config,
    group: "config_lib.Static | tuple[int, ...] | None" = None,
    data_sha256: str = "",
) -> str:
    """A hash of the config's content (its keys and values: not its name, not comments),
    restricted to one group if given (its Static, or a bare shape: ``Config.static_of``), and
    of the data's content (``data.sha256``). The same content on the same data resumes,
    whatever the file is called or the directory it runs in: a group of a sweep has the
    identity of a config of that group alone. A group of a search that ranks across groups
    (successive halving) is never restricted: its stops depend on every cell of the search,
    so its identity is the whole config's and the group's name."""
    whole = not SEARCHES[config.search.method].per_shape
    static = None if group is None else config.static_of(group)
    name = None if static is None else group_name(static.hidden, config.columns(static))
    if static is not None and not whole:
        config = config.only(static)
    content = json.dumps(_content(config), sort_keys=True) + data_sha256
    if name is not None and whole:
        content += "/" + name
    return hashlib.sha256(content.encode()).hexdigest()[:16]


CODE_SOURCES = ("core", "population", "runtime.py", "data.py")
"""What computes a group's numbers, relative to the deepmle package: the one-network core,
the population programs, the XLA:CPU settings and the data pipeline (the config's own effect
is in ``identity``)."""
CODE_PACKAGES = ("jax", "jaxlib", "optax", "numpy")
"""The installed versions a result depends on (numpy draws the initial weights)."""


def _code_of(source: str) -> str:
    """What a module computes, without its comments, docstrings and layout: its syntax tree
    with the docstrings taken out, dumped."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.cache
def code_digest() -> str:
    """16 hex digits of sha256 over the code of ``CODE_SOURCES`` (each file's path and syntax
    tree without docstrings, in sorted order) and the versions of ``CODE_PACKAGES``: a saved
    group is reused only under the same digest, so an edit of a training function, or another
    jax, retrains it, and an edit of a comment or a docstring does not."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for name in CODE_SOURCES:
        path = root / name
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            code = _code_of(f.read_text(encoding="utf-8"))
            h.update(f"{f.relative_to(root).as_posix()}\0{code}\0".encode())
    for package in CODE_PACKAGES:
        try:
            h.update(f"{package}=={version(package)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{package}: none\0".encode())
    return h.hexdigest()[:16]


def foreign_files(run_dir: Path) -> list[str]:
    """Paths under ``run_dir`` that deepmle did not make: files and directories outside its
    exact names, and every symbolic link (its marker and lock aside)."""
    out = []
    for top, dirs, files in os.walk(run_dir):
        base = Path(top).relative_to(run_dir)
        for name in sorted(dirs):
            rel = (base / name).as_posix()
            if os.path.islink(Path(top) / name) or not OWN_DIRS.match(rel):
                out.append(rel)
                dirs.remove(name)  # not walked into: all of it is the user's
        for name in files:
            rel = (base / name).as_posix()
            own = rel in (MARKER, LOCK) or OWN_FILES.match(rel)
            if os.path.islink(Path(top) / name) or not own:
                out.append(rel)
    return sorted(out)


class _Lock:
    """An exclusive ``flock`` on ``dir/LOCK``; the kernel drops it when the process ends."""

    def __init__(self, directory: Path) -> None:
        path = directory / LOCK
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, file_mode())
        except OSError as e:
            raise os_error(path, e) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise RunDirError(
                f"{directory} is being written by another deepmle process (pid {holder}); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self.fd)


def _is_locked(directory: Path) -> bool:
    try:
        _Lock(directory).release()
    except RunDirError:
        return True
    return False


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(a))


class RunDir:
    """An open run directory, bound to its config and (once ``bind_data`` is called) its data's
    identity: what every saved group and rung is checked against, so that callers save and
    read by name alone. Writes go to ``work``: the run directory itself, or for a replacement a
    sibling that ``finish`` swaps in."""

    def __init__(
        self,
        path: Path,
        work: Path,
        locks: list[_Lock],
        resumed: bool,
        config: config_lib.Config | None = None,
    ) -> None:
        self.path = path
        self.work = work
        self.resumed = resumed
        self._locks = locks
        self.config = config
        self.data_sha256 = ""

    def bind_data(self, data_sha256: str) -> None:
        """The data's content hash (deepmle.data.sha256), part of every record's identity."""
        self.data_sha256 = data_sha256

    def save_group(self, g: GroupResult) -> None:
        save_group(self, self.config, g, self.data_sha256)

    def read_group(
        self, group: "config_lib.Static | tuple[int, ...]"
    ) -> tuple[GroupResult | None, str]:
        """This run's saved ``group``, verified against the bound config, data and this code
        (``read_group``), or (None, why not)."""
        return read_group(self.work, self.config, group, self.data_sha256, code_digest())

    def save_rungs(self, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> None:
        save_rungs(self, self.config, arrays, record, self.data_sha256)

    def read_rungs(self) -> tuple[Any, str]:
        return read_rungs(self.work, self.config, self.data_sha256)

    @property
    def replacing(self) -> bool:
        return self.work != self.path

    def finish(self) -> list[str]:
        """Swap a replacement in and delete the old run; returns notes for the user. Group
        files the old run had set aside (``*.rejected``) move into the new one, and the new
        directory takes the old one's permissions."""
        notes = []
        if self.replacing:
            try:
                for rejected in sorted((self.path / "groups").glob("*.rejected*")):
                    target = self.work / "groups" / rejected.name
                    target.parent.mkdir(exist_ok=True)
                    os.rename(rejected, target)
                os.chmod(self.work, stat.S_IMODE(self.path.stat().st_mode))
                if not _exchange(self.work, self.path):
                    old = self.path.with_name(f".{self.path.name}.deepmle-old-{os.getpid()}")
                    os.rename(self.path, old)
                    os.rename(self.work, self.path)
                    os.rename(old, self.work)
            except OSError as e:
                raise RunDirError(
                    f"cannot put the new run in place of {self.path} ({e.strerror or e}); it is "
                    f"complete at {self.work}, and the old run is untouched"
                ) from None
            left = foreign_files(self.work)  # the old run, now at the staging path
            if left:
                notes.append(
                    f"the replaced run is kept at {self.work}: files appeared in it while this "
                    f"run trained ({', '.join(left[:3])})"
                )
            else:
                shutil.rmtree(self.work, ignore_errors=True)
            self.work = self.path
        return notes

    def release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []


def _staging_dirs(path: Path) -> list[Path]:
    """The staging directories a replacement of ``path`` makes, by their exact names
    (``.NAME.deepmle-new-PID``, ``.NAME.deepmle-old-PID``): a folder whose name merely starts
    alike is not deepmle's."""
    exact = re.compile(rf"^\.{re.escape(path.name)}\.deepmle-(new|old)-[0-9]+$")
    try:
        return sorted(p for p in path.parent.iterdir() if exact.match(p.name) and p.is_dir())
    except OSError:
        return []


def _stale_staging(path: Path) -> list[Path]:
    """Staging directories left by a replacement that was killed: deepmle's own, unlocked."""
    return [
        d for d in _staging_dirs(path)
        if (d / MARKER).is_file() and not _is_locked(d) and not foreign_files(d)
    ]  # fmt: skip


def _make_run_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(path, e) from None
    write_json(path / MARKER, {"format": 1, "what": "a deepmle run directory"}, path)


def open_run(path: Path, config: config_lib.Config, overwrite: bool) -> RunDir:
    """Open ``path`` for ``config``: create it, resume it (same config content), or with
    ``overwrite`` prepare to replace it (resuming an interrupted replacement of the same
    config). Refuses, with a RunDirError, whatever could lose a file deepmle did not write, and
    a directory another deepmle process is writing."""
    if os.path.islink(path) and not os.path.exists(path):
        raise RunDirError(f"--out {path} is a symbolic link to nothing")
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} exists and is not a directory")
    if not path.exists() or (not any(path.iterdir())):
        _make_run_dir(path)
        return RunDir(path, path, [_Lock(path)], resumed=False, config=config)
    if not (path / MARKER).is_file():
        found = sorted(p.name for p in path.iterdir())[:3]
        raise RunDirError(
            f"{path} is not a deepmle run directory (it holds {', '.join(found)}); "
            "deepmle writes only into a new, empty or deepmle run directory: choose another --out"
        )
    locks = [_Lock(path)]
    try:
        held = _config_content(path / "config.toml")
        results = _results(path)
        if held is None and results and not overwrite:
            raise RunDirError(
                f"{path} is a deepmle run directory without its config.toml (damaged: it holds "
                f"{', '.join(results[:3])}); --overwrite replaces it, or choose another --out"
            )
        same = held is not None and held == _content(config)
        if held is None and not results:  # killed before its config.toml: nothing to lose
            same = True
        if same and not overwrite:
            links = [
                f
                for f in foreign_files(path)
                if os.path.islink(path / f) and (OWN_FILES.match(f) or OWN_DIRS.match(f))
            ]
            if links:
                no_link(path, path / links[0])
            return RunDir(path, path, locks, resumed=True, config=config)
        if not overwrite:
            raise RunDirError(
                f"{path} holds a run of a different config; --overwrite replaces it (deepmle's "
                "own files only, once the new run has finished), or choose another --out"
            )
        foreign = foreign_files(path)
        if foreign:
            raise RunDirError(
                f"{path} holds files deepmle did not write ({', '.join(foreign[:3])}); "
                "--overwrite never deletes those: move them, or choose another --out"
            )
        for stale in _stale_staging(path):  # an interrupted replacement: resume it if it fits
            if _config_content(stale / "config.toml") == _content(config) and len(locks) == 1:
                locks.append(_Lock(stale))
                return RunDir(path, stale, locks, resumed=True, config=config)
            shutil.rmtree(stale, ignore_errors=True)
        work = path.with_name(f".{path.name}.deepmle-new-{os.getpid()}")
        _make_run_dir(work)
        locks.append(_Lock(work))
        return RunDir(path, work, locks, resumed=False, config=config)
    except BaseException:
        for lock in locks:
            lock.release()
        raise


_TEMPORARY = re.compile(r"(^|/)\.[^/]+\.tmp$")


def _results(path: Path) -> list[str]:
    """What a run directory holds beyond its marker, lock and temporaries: anything there
    means a run wrote into it, so a missing config.toml is damage, not a fresh start."""
    out = []
    for top, _, files in os.walk(path):
        base = Path(top).relative_to(path)
        for name in files:
            rel = (base / name).as_posix()
            if rel not in (MARKER, LOCK) and not _TEMPORARY.search(rel):
                out.append(rel)
    return sorted(out)


def remove_derived(run: RunDir) -> tuple[list[str], list[str]]:
    """Remove deepmle's own ``plots/`` figures and ``tensorboard/`` export, drawn from results
    that a retrained group has replaced. Returns (what was removed, what holds files of the
    user's and was left as it is: still showing the earlier results)."""
    removed, kept = [], []
    for top in ("plots", "tensorboard"):
        folder = run.work / top
        if not folder.is_dir() or folder.is_symlink():
            continue
        if any(f == top or f.startswith(f"{top}/") for f in foreign_files(run.work)):
            kept.append(f"{top}/")
            continue
        try:
            shutil.rmtree(folder)
        except OSError as e:
            raise os_error(folder, e) from None
        removed.append(f"{top}/")
    return removed, kept


def _content(config: config_lib.Config) -> dict:
    """What makes two runs the same: the resolved config, ``search_seed`` at its default.
    The seed acts only through the learning rates it drew, which the content holds, so an
    unused one (a list of learning rates) is no different config; the default keeps the
    identities of groups saved before."""
    config = replace(config, train=replace(config.train, search_seed=0))
    return config_lib.to_dict(config)


def _config_content(path: Path) -> dict | None:
    """The content of the run's config.toml; None if there is none yet; RunDirError if it is
    there but unreadable (never taken for "the same config")."""
    if not path.exists():
        return None
    try:
        return _content(config_lib.load(path))
    except UserError as e:
        raise RunDirError(
            f"{path} is unreadable ({e}); repair it, or choose another --out"
        ) from None


def write_config(run: RunDir, config: config_lib.Config) -> None:
    atomic_write_bytes(run.work / "config.toml", config_lib.to_toml(config).encode(), run.work)


def save_group(run: RunDir, config: config_lib.Config, g: GroupResult, data_sha256: str) -> None:
    """groups/<name>.npz, then groups/<name>.json (its sha256 and identity, that of the
    config and of the data ``data_sha256``, and its own record_sha256): the json last, so a
    group counts as saved only once both are whole."""
    data = npz_bytes(group_arrays(g))
    atomic_write_bytes(run.work / "groups" / f"{g.name}.npz", data, run.work)
    record = {
        "group": g.name,
        "format": FORMAT_VERSION,
        "identity": identity(config, config.static_of(g.hidden, g.static), data_sha256),
        "code": code_digest(),
        "data_sha256": data_sha256,
        "npz_sha256": hashlib.sha256(data).hexdigest(),
        "info": g.info,
    }
    write_json(run.work / "groups" / f"{g.name}.json", _sealed(record), run.work)


def _read_saved(run_dir: Path, name: str, what: str) -> tuple[dict[str, Any], bytes, str]:
    """(record, npz bytes, "") of ``groups/<name>.json`` and ``.npz``, or ({}, b"", why they
    cannot be used): missing, unreadable, or a record that does not name ``name`` (it is
    then not ``what``)."""
    json_path, npz_path = run_dir / "groups" / f"{name}.json", run_dir / "groups" / f"{name}.npz"
    if not json_path.is_file() or not npz_path.is_file():
        return {}, b"", "is not saved"
    try:
        record = json.loads(json_path.read_text())
        data = npz_path.read_bytes()
    except (OSError, ValueError) as e:
        return {}, b"", f"is unreadable ({e})"
    if not isinstance(record, dict) or record.get("group") != name:
        return {}, b"", f"{json_path.name} is not {what}"
    unsealed = name != RUNGS and "record_sha256" not in record and record.get("format", 1) < 3
    if not unsealed and record.get("record_sha256") != record_sha256(record):  # unsealed: older
        return {}, b"", f"{json_path.name} fails its checksum (edited or damaged)"
    return record, data, ""


def _other_code(recorded: Any, code: str) -> str:
    was = f"code {recorded}" if isinstance(recorded, str) else "code that recorded no digest"
    return f"was trained by other code ({was}; this deepmle is {code})"


def read_group(
    run_dir: Path,
    config: config_lib.Config,
    group: "config_lib.Static | tuple[int, ...]",
    data_sha256: str | None = None,
    code: str | None = None,
) -> tuple[GroupResult | None, str]:
    """(the verified group, "") or (None, why it cannot be used) for ``group`` of ``config``
    (its Static, or a bare shape: ``Config.static_of``), trained on data whose ``data.sha256``
    is ``data_sha256`` (None: whatever data its record names) by code whose ``code_digest`` is
    ``code`` (None: any; resume asks for its own)."""
    static = config.static_of(group)
    hidden, columns = static.hidden, config.columns(static)
    name = group_name(hidden, columns)
    record, data, why = _read_saved(run_dir, name, f"the record of group {name}")
    if why:
        return None, why
    npz_path = run_dir / "groups" / f"{name}.npz"
    fmt = record.get("format", 1)
    if not isinstance(fmt, int) or not 1 <= fmt <= FORMAT_VERSION:
        return None, f"{name}.json has format {fmt!r}, newer than this deepmle reads"
    recorded = str(record.get("data_sha256", ""))
    if data_sha256 is not None and recorded != data_sha256:
        return None, "was trained on different data"
    if record.get("identity") != identity(config, static, recorded):
        return None, "was trained with a different config"
    if code is not None and record.get("code") != code:
        return None, _other_code(record.get("code"), code)
    if record.get("npz_sha256") != hashlib.sha256(data).hexdigest():
        return None, f"{npz_path.name} fails its checksum (damaged or replaced)"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        g = group_from_arrays(hidden, arrays, record.get("info", {}), columns)
    except (ValueError, KeyError, OSError, EOFError) as e:
        return None, f"{npz_path.name} is unreadable ({e})"
    sizes = (g.params[0]["w"].shape[2], *hidden, 1)  # the input size is the data's (checked above)
    problem = check_group(g, sizes, config.train.seeds, config.cell_table(), config.train.epochs)
    return (None, f"{npz_path.name} {problem}") if problem else (g, "")


RUNGS = "rungs"
"""groups/rungs.npz and .json: a successive-halving run at its last finished rung."""


def save_rungs(
    run: RunDir,
    config: config_lib.Config,
    arrays: Mapping[str, np.ndarray],
    record: dict[str, Any],
    data_sha256: str,
) -> None:
    """A halving run's state at a rung boundary (deepmle.population.search), saved
    like a group: the npz, then a json with its sha256, the run's identity and its own
    record_sha256."""
    data = npz_bytes(arrays)
    atomic_write_bytes(run.work / "groups" / f"{RUNGS}.npz", data, run.work)
    write_json(run.work / "groups" / f"{RUNGS}.json", _sealed({
        "group": RUNGS,
        "identity": identity(config, None, data_sha256),
        "code": code_digest(),
        "data_sha256": data_sha256,
        "npz_sha256": hashlib.sha256(data).hexdigest(),
        "record": record,
    }), run.work)  # fmt: skip


def read_rungs(
    run_dir: Path, config: config_lib.Config, data_sha256: str
) -> tuple[tuple[dict[str, np.ndarray], dict[str, Any]] | None, str]:
    """((arrays, record), "") of a verified rung snapshot of ``config`` on this data, or (None,
    why it cannot be used)."""
    meta, data, why = _read_saved(run_dir, RUNGS, "a rung record")
    if why:
        return None, why
    npz_path = run_dir / "groups" / f"{RUNGS}.npz"
    if meta.get("data_sha256") != data_sha256:
        return None, "was trained on different data"
    if meta.get("identity") != identity(config, None, data_sha256):
        return None, "was trained with a different config"
    if meta.get("code") != code_digest():
        return None, _other_code(meta.get("code"), code_digest())
    if meta.get("npz_sha256") != hashlib.sha256(data).hexdigest():
        return None, f"{npz_path.name} fails its checksum (damaged or replaced)"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, EOFError) as e:
        return None, f"{npz_path.name} is unreadable ({e})"
    return (arrays, meta.get("record", {})), ""


def reject_group(run: RunDir, name: str) -> list[str]:
    """Rename a group's unusable files to ``*.rejected`` (kept, never deleted); their names."""
    moved = []
    for suffix in (".npz", ".json"):
        path = run.work / "groups" / f"{name}{suffix}"
        no_link(run.work, path)
        if path.exists():
            target = path.with_name(path.name + ".rejected")
            n = 1
            while target.exists():
                n += 1
                target = path.with_name(f"{path.name}.rejected{n}")
            try:
                path.rename(target)
            except OSError as e:
                raise os_error(path, e) from None
            moved.append(target.name)
    return moved
