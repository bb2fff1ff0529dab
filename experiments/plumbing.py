"""What the research scripts share that is not analysis: their command line (--smoke, --out,
--runs, --overwrite), the run directories a rerun resumes, the hardest pair read from research
answer 2's JSON, scikit-learn's reference fit, what a study cost, its JSON and PNG written
atomically, and the exit codes of ``deepmle``'s own command.

The analysis itself (cells, selection, paired differences and intervals) is the library's:
``deepmle.analysis.cells``. Imported by the scripts beside it (``python experiments/<name>.py``
puts this folder first on ``sys.path``).
"""

import argparse
import errno
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepmle import config as config_lib
from deepmle import data, sweep
from deepmle.analysis import cells
from deepmle.analysis.cells import AllDiverged
from deepmle.errors import UserError
from deepmle.runs import store
from deepmle.runs.results import RunResults
from deepmle.runs.store import RunDirError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
CONFIGS = ROOT / "configs"


NOTES_PAIR = (1, 2)
"""The notes' task: is the digit a 1 (Y = 1) or a 2?"""


def studied_pairs(pairs_json: Path) -> list[tuple[int, int]]:
    """1 v 2 and the hardest pair research answer 2 found (ranked on validation; the first of
    ``hardest`` in ``pairs_json``), once if they are the same."""
    try:
        hardest = json.loads(pairs_json.read_text())["hardest"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise UserError(
            f"{pairs_json}: no hardest pair in it ({e}); run python experiments/pairs.py"
        ) from None
    digits = isinstance(hardest, list) and all(type(d) is int and 0 <= d <= 9 for d in hardest)
    if not digits or len(set(hardest)) != 2 or len(hardest) != 2:
        raise UserError(f"{pairs_json}: its hardest pair {hardest!r} is not two digits 0-9")
    pair = tuple(sorted(hardest))  # a pair, whichever digit the file names first
    return [NOTES_PAIR] if pair == NOTES_PAIR else [NOTES_PAIR, pair]


def pairs_json_argument(ap: argparse.ArgumentParser) -> None:
    """--pairs-json: where the hardest pair is read from."""
    ap.add_argument(
        "--pairs-json",
        type=Path,
        default=RESULTS / "pairs.json",
        help="research answer 2's results, whose hardest pair is studied beside 1 v 2",
    )


SKLEARN_C = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
SKLEARN_MAX_ITER = 200
SKLEARN_SMOKE = {"grid": (0.1, 1.0), "max_iter": 10}
"""What a study's --smoke form fits instead: about a second a pair (50 iterations took 3-5 s),
not the real comparison: it checks the plumbing, and 10 lbfgs steps already tell 1 from 2."""


def sklearn_logistic(
    ds: data.Dataset, grid: Sequence[float] = SKLEARN_C, max_iter: int = SKLEARN_MAX_ITER
) -> tuple[dict[str, Any], np.ndarray]:
    """A reference logistic regression from another library: scikit-learn's
    ``LogisticRegression`` (L2, lbfgs) fitted on the training pixels for each C of ``grid``
    (warm-started along the path, at most ``max_iter`` iterations each), C selected on
    validation error (the first of ties), and its test error; with bool [n_test], which test
    digits it gets right (deterministic: one 'seed')."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    t = time.perf_counter()
    x, y = np.asarray(ds.train.x), np.asarray(ds.train.y) > 0.5
    xv, yv = np.asarray(ds.validation.x), np.asarray(ds.validation.y) > 0.5
    model = LogisticRegression(max_iter=max_iter, warm_start=True)
    path, best, best_coef = [], None, None
    for c in grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.set_params(C=c).fit(x, y)
        err = float(np.mean(model.predict(xv) != yv))
        converged = bool(model.n_iter_[0] < max_iter)
        path.append({"C": c, "val_error": err, "iterations": int(model.n_iter_[0]),
                     "converged": converged})  # fmt: skip
        if best is None or err < best["val_error"]:
            best, best_coef = path[-1], (model.coef_.copy(), model.intercept_.copy())
    model.coef_, model.intercept_ = best_coef
    right = model.predict(np.asarray(ds.test.x)) == (np.asarray(ds.test.y) > 0.5)
    record = {
        "model": "sklearn.linear_model.LogisticRegression(penalty='l2', solver='lbfgs', "
        f"max_iter={max_iter}, warm_start=True)",
        "selected_C": best["C"],
        "val_error": best["val_error"],
        "test_error": float(1.0 - right.mean()),
        "by_C": path,
        "wall_s": round(time.perf_counter() - t, 1),
    }
    return record, right


def config_file(name: str) -> Path:
    """configs/<name>.toml: the config a study trains."""
    return CONFIGS / f"{name}.toml"


def plan(name: str, overrides: Sequence[str], **more: Any) -> dict[str, Any]:
    """What a study trains, for its JSON: the config, the overrides (the smoke form's), what
    ``more`` adds, and the grid the config resolves to (``cells.grid``)."""
    base = config_lib.load(config_file(name), list(overrides))
    return {
        "config": f"configs/{name}.toml",
        "overrides": list(overrides),
        **more,
        **cells.grid(base),
    }


def each_pair(pairs: Sequence[tuple[int, int]], study: Callable[[tuple[int, int]], dict]) -> list:
    """``study(pair)`` for every pair, in order, each timed on the terminal."""
    out = []
    for pair in pairs:
        t = time.perf_counter()
        out.append(study(pair))
        print(f"{pair[0]} v {pair[1]}: {time.perf_counter() - t:.0f} s", flush=True)
    return out


class Runs(NamedTuple):
    """Where a study keeps its run directories (--runs), and whether to retrain one that
    holds another config (--overwrite)."""

    folder: Path
    overwrite: bool = False

    def train(self, cfg: config_lib.Config, name: str) -> tuple[RunResults, data.Dataset]:
        """``cfg`` trained into ``folder/name``, and the data it trained on; a rerun with the
        same config reuses the groups already saved there (a killed study resumes where it
        stopped)."""
        ds = data.load(cfg.data)
        return sweep.run(cfg, ds, self.folder / name, overwrite=self.overwrite).results, ds


def cost(wall: float, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a study cost, for its JSON: this process's wall, the seconds its groups took when
    they were trained (each part's ``trained_s``; the same after a resume) and the cores."""
    return {
        "wall_s": round(wall, 1),
        "trained_s": round(sum(p["trained_s"] for p in parts), 1),
        "cpu_cores": os.cpu_count(),
    }


def trained_s(results: RunResults) -> float:
    """Seconds its groups took to compile and train when they were trained (kept in each
    group's info, so a resumed study still reports what a cold run costs)."""
    return float(sum(g.info.get("wall_s", 0.0) for g in results.groups))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as deepmle's own command
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def arguments(
    doc: str, default_runs: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The answers' common command line (--smoke, --out and --runs) and ``more`` of a script."""
    ap = _Parser(description=doc.splitlines()[0])
    if more is not None:
        more(ap)
    ap.add_argument("--smoke", action="store_true", help="a tiny plan in seconds, into a temp dir")
    ap.add_argument("--out", type=path_argument, help="JSON and PNG (default experiments/results)")
    ap.add_argument(
        "--runs",
        type=path_argument,
        help=f"its run directories, resumed by a rerun (default {default_runs}; smoke: temp)",
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain a run directory that holds another config (deepmle's own files only)",
    )
    args = ap.parse_args()
    if args.smoke and (args.out is None or args.runs is None):
        tmp = Path(tempfile.mkdtemp(prefix="deepmle-smoke-"))
        args.out = args.out or tmp / "results"
        args.runs = args.runs or tmp / "runs"
    args.out = args.out or RESULTS
    args.runs = Runs(args.runs or ROOT / default_runs, args.overwrite)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot make this folder ({e.strerror})") from None
    return args


def path_argument(text: str) -> Path:
    """A path argument; an empty one (which would mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it: what a JSON records."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _finite(x: Any) -> Any:
    """NaN (no interval from one seed) as null: JSON has no NaN."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def entry(
    main: Callable[[], None], interrupted: str = "finished runs are saved, re-run to resume"
) -> int:
    """Run a script's ``main`` as the deepmle command runs: bad input (a config, a run
    directory holding another study, a missing pairs.json) is one line and exit code 2;
    Ctrl-C keeps the runs already saved, which a rerun resumes (``interrupted`` says so, or
    what a script without saved runs keeps), exit code 130."""
    name = Path(sys.argv[0]).name
    try:
        main()
    except RunDirError as e:  # its words are deepmle run's: here --runs names the folder
        print(f"{name}: error: {e} (here: --overwrite, or --runs for another folder)",
              file=sys.stderr)  # fmt: skip
        return 2
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except AllDiverged as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted; {interrupted}", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        print(f"{name}: error: a file name is too long ({str(e.filename)[:80]}...)",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def save(out: Path, name: str, record: dict[str, Any], draw: Callable[[Path], None]) -> None:
    """``out/name.json`` (``record``, NaN as null) and ``out/name.png`` (``draw(path)``), each
    replaced atomically (store.atomic_write_bytes). The figure is drawn first, then both are
    written, so a figure that fails to draw leaves the previous pair whole; a path that cannot
    be written is one line (RunDirError)."""
    text = (json.dumps(_finite(record), indent=1, allow_nan=False) + "\n").encode()
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / f"{name}.png"
        draw(png)
        store.atomic_write_bytes(out / png.name, png.read_bytes(), out)
    store.atomic_write_bytes(out / f"{name}.json", text, out)
