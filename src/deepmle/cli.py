"""The `deepmle` command: parse, call the library, print.

deepmle run CONFIG [--set section.key=value ...] [--out DIR] [--quiet] [--overwrite] ...
deepmle plot RUN_DIR
deepmle tensorboard RUN_DIR

Exit codes: 0 done; 1 every member diverged; 2 bad input (config, data, command line, an
unusable run or cache directory, a grid that cannot fit in memory), one line, nothing lost;
3 an internal error (a bug: traceback printed); 130 interrupted (finished groups are saved).
"""

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from deepmle.errors import UserError

EXIT_OK, EXIT_ALL_DIVERGED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="deepmle", description=__doc__.splitlines()[0])
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
    r.add_argument("--out", type=Path, help="the run directory (default runs/<config name>)")
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
    r.add_argument("--num-processes", type=int, default=1)
    r.add_argument("--process-id", type=int, default=0)
    pl = sub.add_parser("plot", help="redraw the figures of a run directory")
    pl.add_argument("run_dir", type=Path)
    tb = sub.add_parser("tensorboard", help="write TensorBoard event files for a finished run")
    tb.add_argument("run_dir", type=Path)
    return p


def _run(args: argparse.Namespace) -> int:
    from deepmle import config as config_lib
    from deepmle import runtime

    config = config_lib.load(args.config, args.overrides)
    if args.tensorboard:
        from deepmle import tensorboard

        tensorboard.require()
    runtime.set_cpu_flags()
    if not args.no_cache:
        runtime.enable_compilation_cache(args.cache_dir or runtime.default_cache_dir())
    if args.distributed and args.coordinator:
        raise UserError("--distributed detects the cluster; --coordinator names it: use one")
    if args.distributed:
        runtime.initialize_distributed()
    elif args.coordinator:
        runtime.initialize_distributed(args.coordinator, args.num_processes, args.process_id)

    import jax

    from deepmle import data, report, sweep
    from deepmle.progress import Progress

    dataset = data.load(config.data)
    run_dir = args.out or Path("runs") / config.name
    lead = jax.process_index() == 0

    def finishing(results: "sweep.RunResults") -> None:
        if not args.no_plots:
            from deepmle import plots

            plots.draw(results.run_dir, results)
        if args.tensorboard:
            from deepmle import tensorboard

            tensorboard.write(results)

    outcome = sweep.run(
        config,
        dataset,
        run_dir,
        progress=Progress(quiet=args.quiet or not lead),
        overwrite=args.overwrite,
        extra_meta={"config": str(args.config), "overrides": args.overrides},
        finishing=finishing,
    )
    if not lead:
        return EXIT_OK
    res = outcome.results
    print(report.table(res.summary))
    for line in [
        *report.divergence_lines(res.groups),
        *report.edge_lines(res.summary),
        *outcome.notes,
    ]:
        print(line)
    print(f"results in {res.run_dir}/")
    if res.selected is None:
        print("deepmle: every member diverged", file=sys.stderr)
        return EXIT_ALL_DIVERGED
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    from deepmle import plots

    for path in plots.draw(args.run_dir):
        print(path)
    return EXIT_OK


def _tensorboard(args: argparse.Namespace) -> int:
    from deepmle import results, tensorboard

    print(tensorboard.write(results.load_run(args.run_dir)))
    return EXIT_OK


def _out_of_memory(e: BaseException) -> bool:
    return type(e).__name__ == "XlaRuntimeError" and "RESOURCE_EXHAUSTED" in str(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deepmle` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return {"run": _run, "plot": _plot, "tensorboard": _tensorboard}[args.command](args)
    except UserError as e:
        print(f"deepmle: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("deepmle: interrupted; finished groups are saved, re-run to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if _out_of_memory(e):
            print(f"deepmle: error: out of memory ({str(e).splitlines()[0][:200]}); "
                  "run fewer seeds or shapes", file=sys.stderr)  # fmt: skip
            return EXIT_BAD_INPUT
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
