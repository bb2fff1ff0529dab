"""Run a config into a run directory: the orchestration that ties the population programs
(deepmle.population), the run store (deepmle.runs), the outputs and progress together. For
each group (a network shape, with its activation, batch size and optimizer: a
``config.Static``) one compiled program trains every (seed × learning rate) member;
each finished group is saved at once, so a re-run of the same config resumes from the groups
already there.
"""

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from deepmle import config as config_lib
from deepmle import data as data_lib
from deepmle import runtime, train
from deepmle.analysis import outputs, report
from deepmle.core.types import Dataset
from deepmle.population import groups as population
from deepmle.population import loop, programs, search
from deepmle.population.groups import ProgramCache
from deepmle.population.searches import SEARCHES
from deepmle.progress import Progress
from deepmle.runs import store
from deepmle.runs.results import GroupResult, RunResults, group_name, hidden_label


def _finished(
    config: config_lib.Config, run: store.RunDir | None, progress: Progress
) -> tuple[list[GroupResult | None], list[bool]]:
    """Each group's verified saved result (on process 0; None elsewhere) and whether it is
    done. Process 0 decides for all, so every process of a multi-process run trains the same
    groups without reading the run directory. Unusable group files are set aside, reported."""
    found: list[GroupResult | None] = []
    for static in config.statics():
        g = None
        if run is not None and run.resumed:
            g, problem = run.read_group(static)
            if g is None and problem != "is not saved":
                name = group_name(static.hidden, config.columns(static))
                moved = store.reject_group(run, name)
                progress.warn(
                    f"group {name} {problem}: not used, trained again"
                    + (f" (kept as {', '.join(moved)})" if moved else "")
                )
        found.append(g)
    done = np.array([g is not None for g in found])
    if jax.process_count() > 1:
        done = np.asarray(multihost_utils.broadcast_one_to_all(done))
    return found, [bool(d) for d in done]


def _search(
    config: config_lib.Config,
    specs: list,
    dataset: Dataset,
    pixels: programs.Pixels,
    cache: ProgramCache,
    chunk_bytes: int,
    progress: Progress,
    interrupts: runtime.Interrupts,
    run: store.RunDir | None,
) -> tuple[list, dict[str, Any]]:
    """A search that ranks cells across shapes (deepmle.population.search, the method's row of
    SEARCHES), its state saved after each rung and a verified saved state resumed from (one
    process; other runs start over)."""
    method = SEARCHES[config.search.method]
    labels = [_label(config, st) for st in config.statics()]
    shapes = [search.Shape(label, s) for label, s in zip(labels, specs, strict=True)]
    resume = None
    if run is not None and run.resumed and jax.process_count() == 1:
        resume, problem = run.read_rungs()
        if resume is not None:
            problem = search.check_resume(config, method, shapes, *resume)
            resume = None if problem else resume
        if resume is None and problem != "is not saved":
            moved = store.reject_group(run, store.RUNGS)
            progress.warn(f"saved rungs {problem}: not used, trained again"
                          + (f" (kept as {', '.join(moved)})" if moved else ""))  # fmt: skip
        elif resume is not None:
            progress.warn(f"resuming {config.search.method} after rung {resume[1]['rung']}")

    def checkpoint(arrays: dict, record: dict) -> None:
        if run is not None:
            run.save_rungs(arrays, record)

    env = search.make_env(dataset, pixels, cache, chunk_bytes, progress, interrupts, checkpoint)
    arrays, record = search.run(config, method, shapes, env, resume)
    groups = {label: st for label, st in zip(labels, config.statics(), strict=True)}
    record["decisions"] = [_decision(config, groups[d["hidden_sizes"]], d)
                           for d in record["decisions"]]  # fmt: skip
    return arrays, record


def _label(config: config_lib.Config, static: config_lib.Static) -> str:
    """A group as the search labels its decisions: its hidden sizes as the tables print them,
    or, where static keys besides hidden_sizes are swept, its name (``_decision`` then splits
    it into the columns)."""
    columns = config.columns(static)
    return group_name(static.hidden, columns) if columns else hidden_label(static.hidden)


def _decision(
    config: config_lib.Config, static: config_lib.Static, row: dict[str, Any]
) -> dict[str, Any]:
    """A decision row of the search with its group as the tables show it: hidden_sizes, then
    the swept static keys (as summary.csv has them)."""
    items = [(k, v) for k, v in row.items() if k != "hidden_sizes"]
    return {"hidden_sizes": hidden_label(static.hidden), **config.columns(static), **dict(items)}


class Outcome(NamedTuple):
    """What ``run`` returns: the results as ``load_run`` would read them (on processes other
    than 0, the groups trained in this run only), and notes for the user."""

    results: RunResults
    notes: list[str]


def run(
    config: config_lib.Config,
    dataset: Dataset,
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
    cache: ProgramCache | None = None,
    memory_limit: int | None = None,
    chunk_bytes: int = programs.CHUNK_BYTES,
    extra_meta: dict[str, Any] | None = None,
    finishing: Callable[[RunResults], None] | None = None,
    figures: bool = False,
) -> Outcome:
    """Train every group of ``config`` into ``run_dir`` (resuming finished groups), write the
    run's files, and return its results. Process 0 alone writes the run directory;
    ``figures`` draws ``plots/`` as the command does; ``finishing(results)`` adds other files
    to it before it is complete. Programs compiled once are kept for the process
    (``cache``: the process's ProgramCache unless given another), so that a notebook's second
    sweep of a shape compiles nothing. From a notebook, call ``deepmle.runtime.setup()`` first
    for the command's devices and compilation cache."""
    if figures:
        from deepmle.analysis import plots

        extra = finishing

        def finishing(results: RunResults) -> None:
            plots.draw(results.run_dir, results)
            if extra is not None:
                extra(results)

    t_start = time.perf_counter()
    config = config_lib.validate(config)
    progress = progress or Progress(quiet=True)
    cache = cache or population.PROCESS_CACHE
    lead = jax.process_index() == 0
    n_train = dataset.train.y.shape[0]
    n_inputs = dataset.train.x.shape[1]
    statics = config.statics()
    specs = [
        train.spec_from_config(config, (n_inputs, *st.hidden, 1), n_train, st) for st in statics
    ]
    table = config.cell_table()
    lrs, hyper = table.pop("learning_rate"), table or None
    layout = programs.plan(config.train.seeds, config.n_cells)
    population.check_memory(specs, layout, dataset, memory_limit)

    run = store.open_run(Path(run_dir), config, overwrite) if lead else None
    with runtime.Interrupts() as interrupts:
        try:
            if run is not None:
                store.write_config(run, config)
            data_sha256 = data_lib.sha256(dataset)
            if run is not None:
                run.bind_data(data_sha256)
            finished, done = _finished(config, run, progress)
            compact = all(spec.optimizer.zero_gradient_keeps_weight for spec in specs)
            data = programs.device_data(
                dataset, layout.mesh, programs.split_pixels(dataset, compact=compact)
            )
            log = runtime.CompileLog.get()
            before = log.snapshot()
            names = [group_name(st.hidden, config.columns(st)) for st in statics]
            progress.begin(len(statics), config.train.epochs)
            groups, trained = [], []
            per_shape = SEARCHES[config.search.method].per_shape
            if not per_shape:  # every shape together, rung by rung
                done = [True] * len(done)
                arrays, record = _search(config, specs, dataset, data.pixels, cache, chunk_bytes,
                                        progress, interrupts, run)  # fmt: skip
                for st, (a, info) in zip(statics, arrays, strict=True):
                    seeds = np.arange(config.train.seeds)
                    g = GroupResult(st.hidden, seeds, lrs, a.params, a.final, a.curves, info,
                                    hyper, config.columns(st) or None)  # fmt: skip
                    if run is not None:
                        run.save_group(g)
                    groups.append(g)
                    trained.append(info)
                extra_meta = {**(extra_meta or {}), "search": record}
            todo = [specs[i] for i, d in enumerate(done) if not d]
            prepare = partial(population.prepare, layout=layout, hparams=config.cells(), data=data,
                              cache=cache,
                              chunk_bytes=chunk_bytes)  # fmt: skip
            background = layout.mesh.devices.flat[0].platform != "cpu"
            with population.Ahead(todo, prepare, background) as ahead:
                for i, (st, spec) in enumerate(zip(statics, specs, strict=True)):
                    if done[i] and not per_shape:
                        continue
                    if done[i]:
                        progress.skip(i, len(statics), names[i], config.train.epochs)
                        if finished[i] is not None:  # process 0 holds the saved results
                            groups.append(finished[i])
                        continue
                    progress.group_start(i, len(statics), names[i])
                    arrays, info = population.train_shape(
                        spec, ahead, progress, interrupts, config.cells(), config.train.seeds
                    )
                    seeds = np.arange(config.train.seeds)
                    columns = config.columns(st) or None
                    g = GroupResult(st.hidden, seeds, lrs, arrays.params, arrays.final,
                                    arrays.curves, info, hyper, columns)  # fmt: skip
                    if run is not None:
                        run.save_group(g)
                    healthy = np.where(g.final["diverged_epoch"] < 0, g.final["train_ll"], np.nan)
                    progress.group_done(
                        loop.finite_mean(healthy), g.info["compile_wait_s"], g.info["train_s"]
                    )
                    groups.append(g)
                    trained.append(g.info)
            meta = {
                **runtime.environment(),
                "code_digest": store.code_digest(),
                **(extra_meta or {}),
                "run_dir": str(Path(run_dir)),
                "data": {
                    "sha256": data_sha256,
                    "path": os.path.abspath(config.data.path) if config.data.path else "",
                },
                "layout": layout.describe(),
                "wall_s": time.perf_counter() - t_start,
                "prepare_s": sum(info["prepare_s"] for info in trained),
                "compile_wait_s": sum(info.get("compile_wait_s", 0.0) for info in trained),
                "train_s": sum(info["train_s"] for info in trained),
                **log.since(before),
                "groups": {g.name: g.info for g in groups},
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            notes = []
            if run is not None:
                summary = outputs.write(run, groups, meta)
                stale, kept = store.remove_derived(run) if trained else ([], [])
                if finishing is not None:  # figures and other extras, before a replacement swaps in
                    finishing(RunResults(run.work, config, groups, summary, meta))
                gone = [d for d in stale if not (run.work / d).exists()]
                notes = [
                    *[f"removed {d}: it showed the results of groups now retrained "
                      f"(`deepmle {'plot' if d == 'plots/' else 'tensorboard'} RUN_DIR` "
                      "draws it anew)" for d in gone],
                    *[f"{d} holds files of yours, so it was left as it is: it shows the results "
                      "from before groups were retrained" for d in kept],
                ]  # fmt: skip
                notes += run.finish()
                final_dir = run.path
            else:
                summary = report.summary_rows(groups)
                final_dir = Path(run_dir)
        finally:
            progress.close()
            if run is not None:
                run.release()
    return Outcome(RunResults(final_dir, config, groups, summary, meta), notes)
