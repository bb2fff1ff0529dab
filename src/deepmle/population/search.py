"""The search driver: a search method (a row of deepmle.population.searches.SEARCHES) says at
which epochs it decides and how many cells continue; this module does the rest, for any
method that ranks cells together across shapes (successive halving today).

A cell is (network shape, hyperparameters); its seeds are its replicates, kept or stopped
together. All shapes train to a rung (the method's ``rungs``); then every running cell of
every shape is ranked by its mean validation LL over seeds at that epoch (a diverged member
counts as the worst, ties go to config order) and the method's ``keep`` of them continue; a
cell with a diverged member never continues, so fewer do where fewer are finite. The test
split plays no part. What it records (each member's stop epoch and rung, a row per rung, a
row per decision) is what the store, report, figures and ``explain`` read, whatever the
method.

The saving is real: between rungs each shape's state is brought to the host and sliced along
its cell axis to the surviving cells (``take_cells``, which knows where that axis sits in each
leaf). Every rung runs its survivors through the ONE program compiled per shape for a fixed
number of cells per call (``capacity``), as many calls per epoch as they need, the last
padded: one compile per shape for the whole search. A survivor trains as in the grid run:
same initial weights, minibatches and maths; only the number of its neighbours in a call
changes, which on XLA:CPU moves results in the last bits (a 784-16-1 member's weights after 3
epochs beside 1 or 15 others: 1.2e-7 apart at most). Each stopped member keeps the final
metrics (test included) and parameters computed at its rung.
"""

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from deepmle import config as config_lib
from deepmle import runtime
from deepmle.core.member import Spec
from deepmle.core.metrics import STOP_METRICS
from deepmle.core.types import Dataset, Split
from deepmle.population import groups, loop, programs
from deepmle.population.loop import take_cells
from deepmle.population.searches import Method
from deepmle.progress import Progress

RUNG_COLUMNS = ("rung", "epoch", "cells_ranked", "cells_kept", "cutoff_val_ll", "member_epochs",
                "grid_member_epochs", "wall_s")  # fmt: skip
"""A rung's row in the record and rungs.csv, in this order whether or not the run resumed."""


def cell_scores(val_ll: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """[cells] mean over seeds of ``val_ll`` [seeds, cells]; -inf for a cell with a diverged
    (``diverged`` [seeds, cells]) or non-finite member: it ranks last."""
    v = np.where(diverged | ~np.isfinite(val_ll), -np.inf, val_ll.astype(np.float64))
    return v.mean(axis=0)


def ranking(scores: Sequence[float]) -> np.ndarray:
    """Cell indices best first: highest score, ties to the earlier cell (config order)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


class Shape(NamedTuple):
    """What a shape's search needs from the orchestration (deepmle.sweep)."""

    label: str
    spec: Spec


class Env(NamedTuple):
    """The orchestration's services: ``prepare(spec, layout, hparams) -> (program, inputs)``,
    ``wait(outputs)`` (hears Ctrl-C), ``on_epoch(epoch, mean_ll, epochs)`` for progress,
    ``checkpoint(arrays, record)`` keeps the run's state after each rung."""

    prepare: Callable[[Spec, programs.Layout, dict[str, np.ndarray]], tuple[Any, Any]]
    wait: Callable[[Any], None]
    on_epoch: Callable[[int, float, int], None]
    checkpoint: Callable[[dict[str, np.ndarray], dict[str, Any]], None]


def make_env(
    dataset: Dataset,
    pixels: programs.Pixels,
    cache: groups.ProgramCache,
    chunk_bytes: int,
    progress: Progress,
    interrupts: runtime.Interrupts,
    checkpoint: Callable[[dict[str, np.ndarray], dict[str, Any]], None],
) -> Env:
    """The services of a sweep's run: each rung's survivors laid out afresh, with the dataset
    on that layout's mesh and their program from ``cache``."""
    on_mesh: dict[Any, programs.DeviceData] = {}

    def prepare(
        spec: Spec, layout: programs.Layout, hparams: dict[str, np.ndarray]
    ) -> tuple[Any, Any]:
        mesh = layout.mesh
        key = (mesh.devices.shape, tuple(d.id for d in mesh.devices.flat))
        if key not in on_mesh:
            on_mesh[key] = programs.device_data(dataset, mesh, pixels)
        program, args, _ = groups.prepare(spec, layout, hparams, on_mesh[key], cache, chunk_bytes)
        return program, args

    def wait(outputs: Any) -> None:
        loop.wait(outputs, interrupts)

    return Env(prepare, wait, progress.epoch, checkpoint)


class _Accum(NamedTuple):
    """A shape's members over the whole run, [seeds, cells, ...], filled rung by rung; the
    arrays take their keys, dtypes and sizes from the first rung's."""

    params: list
    final: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]


def _empty(first: programs.GroupArrays, n_cells: int, epochs: int) -> _Accum:
    """Room for every cell: zeros for params, NaN (or -1 for integers) for metrics."""

    def full(a: np.ndarray, *rest: int) -> np.ndarray:
        return np.full((a.shape[0], n_cells, *rest), np.nan if a.dtype.kind == "f" else -1, a.dtype)

    params = [{k: np.zeros((v.shape[0], n_cells, *v.shape[2:]), v.dtype) for k, v in layer.items()}
              for layer in first.params]  # fmt: skip
    final = {k: full(v) for k, v in first.final.items()}
    final |= {k: full(first.final["diverged_epoch"]) for k in STOP_METRICS}
    curves = {k: full(v, epochs) for k, v in first.curves.items()}
    return _Accum(params, final, curves)


class Decision(NamedTuple):
    """One cell ranked at one rung: why it continued or stopped (recorded with a column for
    each other hyperparameter the run's results depend on after ``learning_rate``)."""

    hidden_sizes: str
    learning_rate: float
    rung: int
    epoch: int
    rank: int
    of: int
    val_ll: float
    cutoff_val_ll: float
    kept: bool


def _with_columns(row: dict[str, Any], others: dict[str, float]) -> dict[str, Any]:
    """A decision row with the other hyperparameters' columns after its learning rate."""
    items = list(row.items())
    return dict(items[:2] + list(others.items()) + items[2:])


def _fake_data(spec: Spec) -> Dataset:
    """Shapes only: what the state's structure and axes need (they do not depend on sizes)."""
    split = Split(jax.ShapeDtypeStruct((1, spec.layer_sizes[0]), np.float32),
                  jax.ShapeDtypeStruct((1,), np.float32))  # fmt: skip
    return Dataset(split, split, split)


def _state_treedef(spec: Spec) -> Any:
    """The structure of a group state (its cell-axes tree, with a leaf for the shared one)."""
    axes = programs._state_axes(spec, _fake_data(spec))
    return jax.tree.structure(axes._replace(start_lls=0))


class _Run(NamedTuple):
    """Everything of a halving run between rungs: what a snapshot saves and a resume restores."""

    alive: list[np.ndarray]
    states: list[Any]
    acc: list[Any]
    record: dict[str, Any]


def _to_arrays(r: _Run) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for i, (alive, state, a) in enumerate(zip(r.alive, r.states, r.acc, strict=True)):
        arrays[f"{i}/alive"] = alive
        arrays |= {f"{i}/final/{k}": v for k, v in a.final.items()}
        arrays |= {f"{i}/curves/{k}": v for k, v in a.curves.items()}
        arrays |= {f"{i}/params/{n}/{k}": v for n, layer in enumerate(a.params)
                   for k, v in layer.items()}  # fmt: skip
        if state is not None:
            arrays |= {f"{i}/state/{j}": v for j, v in enumerate(jax.tree.leaves(state))}
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray], record: dict, shapes: Sequence[Shape]) -> _Run:
    alive, states, acc = [], [], []

    def get(i: int, kind: str) -> dict[str, np.ndarray]:
        return {k.split("/", 2)[2]: v for k, v in arrays.items() if k.startswith(f"{i}/{kind}/")}

    for i, shape in enumerate(shapes):
        layers = len(shape.spec.layer_sizes) - 1
        params = [{k: arrays[f"{i}/params/{n}/{k}"] for k in ("w", "b")} for n in range(layers)]
        acc.append(_Accum(params, get(i, "final"), get(i, "curves")))
        alive.append(arrays[f"{i}/alive"])
        leaves = [arrays[f"{i}/state/{j}"] for j in range(len(get(i, "state")))]
        states.append(_state_treedef(shape.spec).unflatten(leaves) if leaves else None)
    return _Run(alive, states, acc, record)


def check_resume(
    config: config_lib.Config,
    method: Method,
    shapes: Sequence[Shape],
    arrays: dict[str, np.ndarray],
    record: dict[str, Any],
) -> str:
    """Empty if a saved rung snapshot (what ``env.checkpoint`` received) is one this run could
    have saved after one of its rungs; else what does not fit: a record whose rungs, cells and
    member-epochs disagree with each other or with ``config``, or arrays of other shapes,
    kinds or cells than the record says ([seeds, cells(, epochs)], alive cell indices)."""
    n_seeds, epochs = config.train.seeds, config.train.epochs
    n_cells = config.n_cells
    rungs = method.rungs(config)
    try:
        k, table = record["rung"], record["rungs"]
        if type(k) is not int or not 0 <= k < len(rungs) or record["start"] != rungs[k]:
            return f"records rung {k!r} ending at epoch {record['start']!r}, not in {rungs}"
        if [(r["rung"], r["epoch"]) for r in table] != list(enumerate(rungs[: k + 1])):
            return "has a rung table that is not this run's"
        ranked, done, prev = len(shapes) * n_cells, 0, 0
        for r, end in zip(table, rungs, strict=False):
            done += n_seeds * r["cells_ranked"] * (end - prev)
            if r["cells_ranked"] != ranked or r["member_epochs"] != done:
                return f"has rung {r['rung']} ranking {r['cells_ranked']} cells, not {ranked}"
            ranked, prev = r["cells_kept"], end
        if record["member_epochs"] != done or len(record["infos"]) != len(shapes):
            return "has member-epochs or timings that do not add up"
        n_decisions = sum(r["cells_ranked"] for r in table[: len(rungs) - 1])
        if len(record["decisions"]) != n_decisions:
            return f"has {len(record['decisions'])} decisions, not {n_decisions}"
        alive = [np.asarray(arrays[f"{i}/alive"]) for i in range(len(shapes))]
        if sum(a.size for a in alive) != table[-1]["cells_kept"]:
            return "keeps other cells than its record says"
        for i, (shape, a) in enumerate(zip(shapes, alive, strict=True)):
            if a.dtype.kind not in "iu" or a.ndim != 1 or np.any(np.diff(a) <= 0):
                return f"has alive cells of shape {i} that are not increasing cell indices"
            if a.size and not 0 <= a[0] <= a[-1] < n_cells:
                return f"has alive cells of shape {i} outside its {n_cells} cells"
            want = {f"{i}/final/{m}": (n_seeds, n_cells) for m in STOP_METRICS}
            sizes = shape.spec.layer_sizes
            for n, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
                want[f"{i}/params/{n}/w"] = (n_seeds, n_cells, n_in, n_out)
                want[f"{i}/params/{n}/b"] = (n_seeds, n_cells, n_out)
            for key in arrays:
                if key.startswith((f"{i}/final/", f"{i}/curves/")):
                    want.setdefault(key, (n_seeds, n_cells, *([epochs] if "curves" in key else [])))
            for key, shape_of in want.items():
                if arrays[key].shape != shape_of or arrays[key].dtype.kind not in "fiub":
                    return f"has {key} of shape {arrays[key].shape}, not {shape_of}"
            stopped = np.setdiff1d(np.arange(n_cells), a)
            rung_of = arrays[f"{i}/final/stopped_rung"]
            if np.any(rung_of[:, a] != -1) or np.any((rung_of[:, stopped] < 0)
                                                     | (rung_of[:, stopped] > k)):  # fmt: skip
                return f"has stopped rungs of shape {i} that disagree with its alive cells"
            leaves = sorted((int(key.rsplit("/", 1)[1]), v) for key, v in arrays.items()
                            if key.startswith(f"{i}/state/"))  # fmt: skip
            axes = jax.tree.leaves(programs._state_axes(shape.spec, _fake_data(shape.spec)),
                                   is_leaf=lambda x: x is None)  # fmt: skip
            if k == len(rungs) - 1 or a.size == 0:
                axes = []
            if [j for j, _ in leaves] != list(range(len(axes))):
                return f"has {len(leaves)} state arrays for shape {i}, not {len(axes)}"
            for ax, (j, v) in zip(axes, leaves, strict=True):
                if v.shape[:1] != (n_seeds,) or (ax is not None and v.shape[ax + 1] != a.size):
                    return f"has state array {i}/state/{j} of shape {v.shape}, not its cells'"
    except (KeyError, TypeError, IndexError, ValueError) as e:
        return f"is incomplete ({type(e).__name__}: {e})"
    return ""


def run(
    config: config_lib.Config,
    method: Method,
    shapes: Sequence[Shape],
    env: Env,
    resume: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None,
) -> tuple[list[tuple[programs.GroupArrays, dict[str, Any]]], dict[str, Any]]:
    """Train ``config``'s cells by the search ``method``: every shape's host arrays (final
    metrics with STOP_METRICS) and timings, and the record meta.json keeps under "search".
    After each rung ``env.checkpoint(arrays, record)`` receives the run's state; ``resume``
    (what a checkpoint received) continues from that rung, bitwise as if never stopped."""
    search = config.search
    n_seeds, epochs = config.train.seeds, config.train.epochs
    values, keys = config.cells(), config.hyper_keys()
    n_cells = config.n_cells
    cap = method.capacity(n_cells, config)
    rungs = method.rungs(config)
    if resume is not None:
        r = _from_arrays(*resume, shapes)
    else:
        record = {"rung": -1, "start": 0, "rungs": [], "decisions": [], "member_epochs": 0,
                  "infos": [[] for _ in shapes]}  # fmt: skip
        r = _Run([np.arange(n_cells) for _ in shapes], [None] * len(shapes),
                 [None] * len(shapes), record)  # fmt: skip
    alive, states, acc, rec = r
    table, decisions, infos = rec["rungs"], rec["decisions"], rec["infos"]
    for k, end in enumerate(rungs):
        if k <= rec["rung"]:
            continue
        start = rec["start"]
        t0 = time.perf_counter()
        for i, shape in enumerate(shapes):
            if alive[i].size == 0:
                continue
            states[i], arrays, info = loop.train_cells(
                shape.spec,
                loop.Env(env.prepare, env.wait, env.on_epoch),
                states[i],
                {k: v[alive[i]] for k, v in values.items()},
                n_seeds,
                start,
                end,
                cap,
            )
            rec["member_epochs"] += n_seeds * alive[i].size * (end - start)
            acc[i] = acc[i] or _empty(arrays, n_cells, epochs)
            a, idx = acc[i], alive[i]
            for key, v in arrays.curves.items():
                a.curves[key][:, idx, start:end] = v
            for key, v in arrays.final.items():
                a.final[key][:, idx] = v
            for layer, new in zip(a.params, arrays.params, strict=True):
                for key in layer:
                    layer[key][:, idx] = new[key]
            infos[i].append({"rung": k, **info})
        cells = [(i, int(li)) for i in range(len(shapes)) for li in alive[i]]
        scores = [
            cell_scores(
                acc[i].curves["val_ll"][:, li : li + 1, end - 1],
                (acc[i].final["diverged_epoch"][:, li : li + 1] >= 0),
            )[0]
            for i, li in cells
        ]
        if not cells:  # every cell stopped at an earlier rung
            break
        last = k == len(rungs) - 1
        finite = int(np.isfinite(scores).sum())
        n_keep = len(cells) if last else min(method.keep(len(cells), config), finite)
        order = ranking(scores)
        cutoff = float(scores[order[n_keep - 1]]) if n_keep else math.nan
        rank = np.empty(len(cells), int)
        rank[order] = np.arange(1, len(cells) + 1)
        kept = rank <= n_keep
        for j, (i, li) in enumerate(cells):
            if not last:
                row = Decision(
                    shapes[i].label, float(values["learning_rate"][li]), k, end, int(rank[j]),
                    len(cells), float(scores[j]), cutoff, bool(kept[j]),
                )._asdict()  # fmt: skip
                others = {h: float(values[h][li]) for h in keys if h != "learning_rate"}
                decisions.append(_with_columns(row, others))
            if not kept[j]:
                acc[i].final["stopped_epoch"][:, li] = end
                acc[i].final["stopped_rung"][:, li] = k
        table.append({  # the order of RUNG_COLUMNS
            "rung": k,
            "epoch": end,
            "cells_ranked": len(cells),
            "cells_kept": int(kept.sum()),
            "cutoff_val_ll": "" if last else cutoff,
            "member_epochs": rec["member_epochs"],
            "grid_member_epochs": n_seeds * n_cells * len(shapes) * end,
            "wall_s": time.perf_counter() - t0,
        })  # fmt: skip
        for i, shape in enumerate(shapes):
            keep_here = np.array([kept[j] for j, (si, _) in enumerate(cells) if si == i], bool)
            alive[i] = alive[i][keep_here]
            if last or alive[i].size == 0:
                states[i] = None
            elif not keep_here.all():
                axes = programs._state_axes(shape.spec, _fake_data(shape.spec))
                states[i] = take_cells(states[i], axes, np.flatnonzero(keep_here))
        rec["rung"], rec["start"] = k, end
        env.checkpoint(_to_arrays(_Run(alive, states, acc, rec)), rec)
    out = [
        (programs.GroupArrays(a.params, a.curves, a.final),
         {"rungs": info, "train_s": sum(r["train_s"] for r in info),
          "prepare_s": sum(r["prepare_s"] for r in info)})
        for a, info in zip(acc, infos, strict=True)
    ]  # fmt: skip
    record = {
        **dataclasses.asdict(search),  # the method and its options
        "rung_epochs": rungs,
        "rungs": [{c: row[c] for c in RUNG_COLUMNS} for row in table],
        "member_epochs": rec["member_epochs"],
        "grid_member_epochs": n_seeds * n_cells * len(shapes) * epochs,
        "decisions": decisions,
    }
    return out, record
