"""The `deepmle` command: parse, call the library, print. Bad input is one line and exit code 2.

deepmle run CONFIG [--set section.key=value ...] [--out DIR] [--quiet] [--overwrite]
deepmle plot RUN_DIR
"""

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deepmle.errors import UserError

EXIT_BAD_INPUT = 2
EXIT_ALL_DIVERGED = 1
EXIT_INTERRUPTED = 130


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
        help="replace a run directory that holds a different config",
    )
    r.add_argument("--no-plots", action="store_true", help="skip drawing the PNG figures")
    r.add_argument(
        "--no-cache", action="store_true", help="do not use the persistent compilation cache"
    )
    r.add_argument("--cache-dir", type=Path, help="compilation cache directory")
    r.add_argument("--coordinator", help="host:port of process 0, for a multi-process run")
    r.add_argument("--num-processes", type=int, default=1)
    r.add_argument("--process-id", type=int, default=0)
    pl = sub.add_parser("plot", help="redraw the figures of a run directory")
    pl.add_argument("run_dir", type=Path)
    return p


def _run(args: argparse.Namespace) -> int:
    from deepmle import config as config_lib
    from deepmle import runtime

    config = config_lib.load(args.config, args.overrides)
    runtime.use_eigen_dots()
    if not args.no_cache:
        runtime.enable_compilation_cache(args.cache_dir or runtime.default_cache_dir())
    if args.coordinator:
        runtime.initialize_distributed(args.coordinator, args.num_processes, args.process_id)

    import jax

    from deepmle import data, report, results, sweep
    from deepmle.progress import Progress

    t0 = time.perf_counter()
    dataset = data.load(config.data)
    run_dir = args.out or Path("runs") / config.name
    lead = jax.process_index() == 0
    progress = Progress(quiet=args.quiet or not lead)
    groups, ahead = sweep.run(config, dataset, run_dir, progress, overwrite=args.overwrite)
    if not lead:
        return 0
    meta = {
        **results.environment(),
        "config": str(args.config),
        "overrides": args.overrides,
        "run_dir": str(run_dir),
        "wall_s": time.perf_counter() - t0,
        "compile_s": ahead["wall_s"] + sum(g.info["compile_s"] for g in groups),
        "train_s": sum(g.info["train_s"] for g in groups),
        "compiles": ahead["compiles"] + sum(g.info["compiles"] for g in groups),
        "cache_hits": ahead["cache_hits"] + sum(g.info["cache_hits"] for g in groups),
        "compile_ahead": ahead,
        "groups": {sweep.group_name(g.hidden): g.info for g in groups},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rows = report.write(run_dir, groups, meta)
    if not args.no_plots:
        from deepmle import plots

        plots.draw(run_dir)
    print(report.table(rows))
    for line in report.divergence_lines(groups):
        print(line)
    print(f"results in {run_dir}/")
    if all(r["diverged"] == r["seeds"] for r in rows):
        print("deepmle: every member diverged", file=sys.stderr)
        return EXIT_ALL_DIVERGED
    return 0


def _plot(args: argparse.Namespace) -> int:
    from deepmle import plots

    for path in plots.draw(args.run_dir):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deepmle` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return {"run": _run, "plot": _plot}[args.command](args)
    except UserError as e:
        print(f"deepmle: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if "jax" in sys.modules:
            from deepmle.runtime import wait_for_device

            wait_for_device()
        print("deepmle: interrupted; finished groups are saved, re-run to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
