"""What the research answers share: a config trained through ``deepmle.sweep`` into a run
directory a rerun resumes, each shape's learning rate selected on validation, and a cell's
numbers over its seeds with 95% Student-t intervals.

A *cell* is one (hidden sizes, learning rate) of a run; its *members* are one per seed. The
selection is the library's (``deepmle.analysis.report.select_best``): among a shape's learning
rates that lost the fewest seeds to divergence, the highest mean validation accuracy (or
another validation metric); test metrics are reported for the selected cell only. A diverged
member is left out of its cell's means (the cell's ``diverged`` count says how many) and out of
the paired differences.

Imported by the scripts beside it (``python experiments/<name>.py`` puts this folder first on
``sys.path``).
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
from deepmle.analysis import inference, report, stats
from deepmle.core.metrics import DIVERGENCE
from deepmle.errors import UserError
from deepmle.runs import store
from deepmle.runs.results import GroupResult, RunResults
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


class Cell(NamedTuple):
    """One shape's selected learning rate and its members' final metrics.

    ``values[metric]`` is float64 [seeds], NaN for a member that diverged, so two cells of one
    run are paired by seed index: members that share a seed share its minibatch order."""

    hidden: tuple[int, ...]
    lr: float
    lr_at_edge: bool
    seeds: int
    diverged: int
    values: dict[str, np.ndarray]

    def summary(self, metric: str) -> dict[str, float]:
        """Mean and 95% half-width over the members that did not diverge, and their n."""
        v = self.values[metric]
        mean, ci = stats.mean_ci95(v[np.isfinite(v)])
        return {"mean": mean, "ci95": ci, "n": int(np.isfinite(v).sum())}

    def record(self, metrics: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: the selection and each metric's summary."""
        return {
            "hidden_sizes": list(self.hidden),
            "selected_lr": self.lr,
            "selected_lr_at_edge": self.lr_at_edge,
            "seeds": self.seeds,
            "diverged_seeds": self.diverged,
            **{m: self.summary(m) for m in metrics},
        }


def paired(a: Cell, b: Cell, metric: str) -> dict[str, float]:
    """a − b of ``metric`` paired by seed, over the seeds where neither diverged: mean, 95%
    half-width and n."""
    mean, ci = stats.paired_diff_ci95(a.values[metric], b.values[metric])
    n = int((np.isfinite(a.values[metric]) & np.isfinite(b.values[metric])).sum())
    return {"mean": mean, "ci95": ci, "n": n}


BOOTSTRAP_DRAWS = 10_000
ALPHA = 0.05
BOOTSTRAP = (
    "bootstrap: a − b of test error with a percentile 95% interval (lo, hi) and two-sided p, "
    f"from {BOOTSTRAP_DRAWS} joint resamples of the seeds and the test digits, the same for "
    "both cells (deepmle.analysis.inference.paired_bootstrap); seeds where either diverged "
    "are left out"
)


def logits(group: GroupResult, c: Cell, x: np.ndarray, activation: str) -> np.ndarray:
    """z [S, n] of the members of cell ``c`` of ``group`` (one per seed, diverged ones
    included) on x [n, n_inputs], from their saved params."""
    li = int(np.flatnonzero(np.asarray(group.learning_rates, np.float64) == c.lr)[0])
    one = group._replace(
        learning_rates=group.learning_rates[li : li + 1],
        params=[{k: v[:, li : li + 1] for k, v in layer.items()} for layer in group.params],
    )
    return inference.predictions(one, x, activation)[:, 0]


def correct(group: GroupResult, c: Cell, split: data.Split, activation: str) -> np.ndarray:
    """bool [S, n]: which digits of ``split`` each member of cell ``c`` classifies right
    (ŷ > 1/2 against y, as the library's accuracy)."""
    return (logits(group, c, split.x, activation) > 0) == (np.asarray(split.y) > 0.5)


def bootstrap(correct_a: np.ndarray, a: Cell, correct_b: np.ndarray, b: Cell) -> dict[str, Any]:
    """a − b of test error (correct_a, correct_b bool [S, n] on the test digits) paired over
    seeds and digits (BOOTSTRAP), over the seeds where neither diverged; JSON-ready."""
    valid = np.isfinite(a.values["test_error"]) & np.isfinite(b.values["test_error"])
    r = inference.paired_bootstrap(correct_a, correct_b, valid=valid, draws=BOOTSTRAP_DRAWS)
    return r._asdict()


def multiple(p: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """How many of the p-values ``p`` [m] are below ``alpha`` unadjusted, and how many
    survive Holm (family-wise error) and Benjamini-Hochberg (false discovery rate); with the
    indices that survive each."""
    p = np.asarray(p, np.float64)
    holm, bh = inference.holm(p, alpha), inference.benjamini_hochberg(p, alpha)
    return {
        "alpha": alpha,
        "tests": int(p.size),
        "unadjusted": int(np.sum(p < alpha)),
        "holm": int(holm.sum()),
        "benjamini_hochberg": int(bh.sum()),
        "holm_rejects": [int(i) for i in np.flatnonzero(holm)],
        "benjamini_hochberg_rejects": [int(i) for i in np.flatnonzero(bh)],
    }


SKLEARN_C = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
SKLEARN_MAX_ITER = 200
SKLEARN_SMOKE = {"grid": (0.1, 1.0), "max_iter": 50}
"""What a study's --smoke form fits instead: seconds, not the real comparison."""


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


def minus_sklearn(correct_net: np.ndarray, net: Cell, sklearn_right: np.ndarray) -> dict:
    """Network − scikit-learn test error (bool [S, n] and [n]), paired by digit: the
    BOOTSTRAP with scikit-learn's one deterministic fit standing for every seed."""
    same = np.broadcast_to(sklearn_right, correct_net.shape)
    valid = np.isfinite(net.values["test_error"])
    r = inference.paired_bootstrap(correct_net, same, valid=valid, draws=BOOTSTRAP_DRAWS)
    return r._asdict()


def cell(group: GroupResult, li: int) -> Cell:
    """The cell of ``group`` at learning-rate index ``li``."""
    diverged = group.final["diverged_epoch"][:, li] >= 0
    values = {
        k: np.where(diverged, np.nan, np.asarray(v[:, li], np.float64))
        for k, v in group.final.items()
        if k not in DIVERGENCE
    }
    for split in ("val", "test"):  # error rates read more easily than accuracies near 100%
        values[f"{split}_error"] = 1.0 - values[f"{split}_accuracy"]
    lrs = [float(x) for x in group.learning_rates]
    lr = lrs[li]
    edge = len(lrs) > 1 and lr in (min(lrs), max(lrs))
    return Cell(tuple(group.hidden), lr, edge, len(group.seeds), int(diverged.sum()), values)


def select(group: GroupResult, by: Sequence[str] = report.SELECT_BY) -> Cell:
    """The cell of ``group`` (one shape) whose learning rate the library selects on ``by``."""
    rows = report.summary_rows([group])
    best = report.select_best(rows, by)
    if best is None:
        raise AllDiverged(
            f"every seed of hidden sizes {list(group.hidden)} diverged at every learning rate "
            f"{[float(x) for x in group.learning_rates]}: no cell to select; try smaller ones"
        )
    return cell(group, best)


def pair_config(name: str, pair: Sequence[int], overrides: Sequence[str]) -> config_lib.Config:
    """configs/<name>.toml with its digits replaced by ``pair`` and ``overrides`` applied."""
    a, b = pair
    return config_lib.load(CONFIGS / f"{name}.toml", [f"data.digits=[{a}, {b}]", *overrides])


def plan(name: str, overrides: Sequence[str], **more: Any) -> dict[str, Any]:
    """What a study trains, for its JSON: the config, the overrides (the smoke form's), what
    ``more`` adds, and the grid the config resolves to."""
    base = config_lib.load(CONFIGS / f"{name}.toml", list(overrides))
    return {
        "config": f"configs/{name}.toml",
        "overrides": list(overrides),
        **more,
        "hidden_sizes": [list(h) for h in base.model.hidden_sizes],
        "learning_rates": list(base.train.learning_rate),
        "seeds": base.train.seeds,
        "epochs": base.train.epochs,
    }


def each_pair(pairs: Sequence[tuple[int, int]], study: Callable[[tuple[int, int]], dict]) -> list:
    """``study(pair)`` for every pair, in order, each timed on the terminal."""
    out = []
    for pair in pairs:
        t = time.perf_counter()
        out.append(study(pair))
        print(f"{pair[0]} v {pair[1]}: {time.perf_counter() - t:.0f} s", flush=True)
    return out


class AllDiverged(Exception):
    """Every learning rate of a shape lost every seed: the study has no cell to report."""


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


def lr_table(group: GroupResult) -> list[dict[str, Any]]:
    """Every learning rate of one shape: its diverged seeds and mean validation accuracy and
    LL (what the selection saw), with the selected one marked."""
    return [
        {
            "lr": r["learning_rate"],
            "diverged_seeds": r["diverged"],
            "seeds_used": r["seeds_used"],
            "val_accuracy_mean": r["val_accuracy_mean"],
            "val_accuracy_ci95": r["val_accuracy_ci95"],
            "val_ll_mean": r["val_ll_mean"],
            "val_ll_ci95": r["val_ll_ci95"],
            "selected": r["selected"],
        }
        for r in report.summary_rows([group])
    ]


def sampling_ci95(error: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an error rate measured on n
    test digits: what a fresh test set of the same size could move it, which the interval
    over seeds (training randomness on one test set) does not include."""
    return float(1.96 * np.sqrt(error * (1.0 - error) / n))


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
    ap.add_argument("--out", type=_path, help="JSON and PNG (default experiments/results)")
    ap.add_argument(
        "--runs",
        type=_path,
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


def _path(text: str) -> Path:
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


def fmt(s: dict[str, float], scale: float = 100.0, digits: int = 2) -> str:
    """'m ± h' of a summary, ×``scale`` (percent points by default)."""
    mean = round(scale * s["mean"], digits) + 0.0  # never "-0.00"
    return f"{mean:.{digits}f} ± {scale * s['ci95']:.{digits}f}"
