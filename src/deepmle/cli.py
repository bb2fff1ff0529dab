"""The `deepmle` command: parse, call the library, print.

deepmle run CONFIG [--set section.key=value ...] [--out DIR] [--quiet] [--overwrite] ...
deepmle plot RUN_DIR
deepmle tensorboard RUN_DIR
deepmle explain RUN_DIR h32 lr=0.12

Exit codes: 0 done; 1 every member diverged; 2 bad input (config, data, command line, an
unusable run or cache directory, a grid that cannot fit in memory, figures that could not be
drawn), one line, nothing lost;
3 an internal error (a bug: traceback printed); 130 interrupted (finished groups are saved).
"""

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deepmle.errors import UserError, short

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from deepmle import config as config_lib

EXIT_OK, EXIT_ALL_DIVERGED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(f"{self.prog}: {message}")


def _path(text: str) -> Path:
    """A path argument; an empty one (which would silently mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    from deepmle import __version__

    p = _Parser(prog="deepmle", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"deepmle {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="train every network and seed of an experiment config")
    r.add_argument("config", type=Path, help="a TOML experiment config, e.g. configs/seed.toml")
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="S.K=V",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    r.add_argument("--out", type=_path, help="the run directory (default runs/<config name>)")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a deepmle run directory of another config (its own files only)",
    )
    r.add_argument("--no-plots", action="store_true", help="skip drawing the PNG figures")
    r.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files")
    r.add_argument("--no-cache", action="store_true", help="no persistent compilation cache")
    r.add_argument("--cache-dir", type=Path, help="compilation cache directory")
    r.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run described by the cluster (Slurm, Open MPI, Cloud TPU)",
    )
    r.add_argument("--coordinator", help="host:port of process 0, for a multi-process run")
    r.add_argument("--num-processes", type=int, help="processes in the run (with --coordinator)")
    r.add_argument("--process-id", type=int, help="this process, 0..N-1 (with --coordinator)")
    pl = sub.add_parser("plot", help="redraw the figures of a run directory")
    pl.add_argument("run_dir", type=Path)
    tb = sub.add_parser("tensorboard", help="write TensorBoard event files for a finished run")
    tb.add_argument("run_dir", type=Path)
    ex = sub.add_parser("explain", help="why successive halving stopped or kept a cell")
    ex.add_argument("run_dir", type=Path)
    ex.add_argument("hidden", help="the cell's shape, e.g. h32 or 64-32")
    ex.add_argument(
        "values",
        nargs="+",
        metavar="KEY=VALUE",
        help="its hyperparameters, e.g. lr=0.12 prior_std=0.5 (each within 1%%; as many as "
        "tell it apart)",
    )
    return p


def _run(args: argparse.Namespace) -> int:
    from deepmle import config as config_lib

    config = config_lib.load(args.config, args.overrides)
    run_dir = args.out or _default_out(config.name)
    processes = _processes(args)
    workers = None
    if not args.no_plots:
        from deepmle.analysis import plots

        workers = plots.pool()  # forked before JAX starts; they import matplotlib as it does
    try:
        return _train(args, config, run_dir, processes, workers)
    finally:  # here, not at exit: Python 3.11's exit hook can race the pool's own shutdown
        if workers is not None:
            workers.shutdown(cancel_futures=True)


def _train(
    args: argparse.Namespace,
    config: "config_lib.Config",
    run_dir: Path,
    processes: tuple[int, int] | None,
    workers: "Executor | None",
) -> int:
    """``deepmle run`` once its config is read: train, save, draw (on ``workers``), report."""
    from deepmle import runtime

    if args.tensorboard:
        from deepmle.analysis import tensorboard

        tensorboard.require()
    flags = runtime.set_cpu_flags(runtime.default_cache_dir().parent / "xla_flags.json")
    if not args.no_cache:
        runtime.enable_compilation_cache(args.cache_dir or runtime.default_cache_dir())
    if args.distributed:
        runtime.initialize_distributed()
    elif processes is not None:
        runtime.initialize_distributed(args.coordinator, *processes)

    import jax

    from deepmle import data, sweep
    from deepmle.analysis import inference, plots, report
    from deepmle.progress import Progress

    dataset = data.load(config.data)
    lead = jax.process_index() == 0

    selected: list[list[str]] = []
    not_drawn: list[UserError] = []

    def finishing(results: "sweep.RunResults") -> None:
        """The run's figures drawn by worker processes while this one computes the report's
        inference lines; written before the run directory is complete."""
        drawing = None if args.no_plots else plots.start(results, dataset.test, workers)
        try:
            selected.append(inference.selected_lines(results, dataset))
            if args.tensorboard:
                from deepmle.analysis import tensorboard

                tensorboard.write(results)
        finally:
            if drawing is not None:
                try:
                    plots.finish(results.run_dir, drawing)
                except plots.DrawError as e:  # said after the report; the run completes
                    not_drawn.append(e)

    outcome = sweep.run(
        config,
        dataset,
        run_dir,
        progress=Progress(quiet=args.quiet or not lead),
        overwrite=args.overwrite,
        extra_meta={
            "config": str(args.config),
            "overrides": args.overrides,
            "xla_flags_probe": flags,
        },
        finishing=finishing,
    )
    if not lead:
        return EXIT_OK
    res = outcome.results
    lines = [
        report.table(res.summary),
        *report.rung_lines(res.rungs),
        *report.calibration_lines(res.summary),
        *(selected[0] if selected else inference.selected_lines(res, dataset)),
        *report.divergence_lines(res.groups),
        *report.selection_lines(res.summary),
        *report.edge_lines(res.summary),
        *outcome.notes,
        f"results in {res.run_dir}/",
    ]
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # the reader left (`| head`): the run is complete all the same
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:
        raise UserError(
            f"cannot write to standard output ({e.strerror}); results in {res.run_dir}/"
        ) from None
    if not_drawn:
        raise not_drawn[0]
    if res.selected is None:
        print("deepmle: every member diverged", file=sys.stderr)
        return EXIT_ALL_DIVERGED
    return EXIT_OK


def _default_out(name: str) -> Path:
    """``runs/<name>``, the run directory of a config named ``name`` (its file's stem); a
    name that is not one plain folder name ('', '.', '..', '...', one with a separator) is
    refused: it would land on ``runs/`` itself or outside it."""
    if not name.strip(". ") or any(c in name for c in "/\\\0"):
        raise UserError(
            f"the config's name {name!r} (its file name without .toml) cannot name a run "
            "directory under runs/: rename the file, or give --out"
        )
    return Path("runs") / name


def _processes(args: argparse.Namespace) -> tuple[int, int] | None:
    """(num_processes, process_id) of an explicit multi-process run, checked; None if none."""
    if args.coordinator is None:
        if args.num_processes is not None or args.process_id is not None:
            raise UserError("--num-processes and --process-id need --coordinator HOST:PORT")
        return None
    if args.distributed:
        raise UserError("--distributed detects the cluster; --coordinator names it: use one")
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"--coordinator {args.coordinator}: expected HOST:PORT, port 1-65535")
    n, i = args.num_processes, args.process_id
    if n is None or i is None or n < 1 or not 0 <= i < n:
        raise UserError(
            f"--coordinator needs --num-processes N >= 1 and --process-id 0..N-1, got {n} and {i}"
        )
    return n, i


def _plot(args: argparse.Namespace) -> int:
    from deepmle.analysis import plots

    for path in plots.draw(args.run_dir):
        print(path)
    return EXIT_OK


def _tensorboard(args: argparse.Namespace) -> int:
    from deepmle.analysis import load, tensorboard

    print(tensorboard.write(load.load_run(args.run_dir)))
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from deepmle.analysis import load, report
    from deepmle.core.hyperparams import HYPERPARAMETERS, LABELS

    names = {**{k: k for k in HYPERPARAMETERS}, **{v: k for k, v in LABELS.items()}}
    cell = {}
    for item in args.values:
        key, _, text = item.rpartition("=") if "=" in item else ("lr", "", item)
        if key not in names:
            raise UserError(f"deepmle explain: unknown hyperparameter {short(key)} in "
                            f"{short(item)} (expected {', '.join(names)})")  # fmt: skip
        try:
            cell[names[key]] = float(text)
        except ValueError:
            raise UserError(
                f"deepmle explain: {key}: expected a number like {key}=0.12, got {short(item)}"
            ) from None
    print("\n".join(report.explain(load.load_run(args.run_dir), args.hidden, cell)))
    return EXIT_OK


def _out_of_memory(e: BaseException) -> bool:
    """XLA's allocation failure: jaxlib's XlaRuntimeError, jax's JaxRuntimeError (jax 0.10)."""
    runtime_error = {"XlaRuntimeError", "JaxRuntimeError"}
    named = {c.__name__ for c in type(e).__mro__} & runtime_error
    return bool(named) and "RESOURCE_EXHAUSTED" in str(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deepmle` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        commands = {"run": _run, "plot": _plot, "tensorboard": _tensorboard, "explain": _explain}
        return commands[args.command](args)
    except UserError as e:
        print(f"deepmle: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("deepmle: interrupted; finished groups are saved, re-run to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            return _internal(e)
        name = str(e.filename or e)[:80]
        print(f"deepmle: error: a file name is too long for the file system ({name}...); "
              "each path component may be 255 bytes", file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    except Exception as e:
        if _out_of_memory(e):
            print(f"deepmle: error: out of memory ({str(e).splitlines()[0][:200]}); "
                  "run fewer seeds or shapes", file=sys.stderr)  # fmt: skip
            return EXIT_BAD_INPUT
        return _internal(e)


def _internal(e: BaseException) -> int:
    traceback.print_exc()
    print(
        f"deepmle: internal error ({type(e).__name__}); finished groups are saved. "
        "This is a bug: please report it with the traceback above.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def console() -> None:
    """The console script: ``main``, then exit. After Ctrl-C the process ends at once, without
    the interpreter's teardown, which could crash while XLA still runs a program's threads."""
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
