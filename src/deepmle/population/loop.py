"""The one epoch loop: a shape's running cells trained from one epoch to another through its
compiled program, whatever search asked for them (a grid: every cell, every epoch, in one
segment; successive halving: each rung's survivors, one segment per rung).

``train_cells`` lays the cells out in calls of ``capacity`` cells each (the last padded), so
that every segment of a shape runs the one program compiled for that capacity; per epoch it
dispatches every call's epoch before reading back the previous epoch's metrics for progress,
so the device never waits for the host; with the last epoch it dispatches the shape's scores
program (``programs.scores``) on the members' logits. Between segments the state lives on the host
(``GroupState`` leaves, seeds first, real members only), where a search slices its cells.
"""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from deepmle import runtime
from deepmle.core.member import Spec, final_metrics
from deepmle.population import programs


class Env(NamedTuple):
    """The services a loop needs: ``prepare(spec, layout, hparams) -> (program, inputs)``,
    ``wait(outputs)`` (hears Ctrl-C), ``on_epoch(epoch, mean_ll, epochs)`` for progress."""

    prepare: Callable[[Spec, programs.Layout, dict[str, np.ndarray]], tuple[Any, Any]]
    wait: Callable[[Any], None]
    on_epoch: Callable[[int, float, int], None]


def wait(outputs: Any, interrupts: runtime.Interrupts) -> None:
    """Wait for a running program in small sleeps, so that Ctrl-C is heard at once."""
    leaves = jax.tree.leaves(outputs)
    while not all(a.is_ready() for a in leaves):
        interrupts.check()
        time.sleep(0.02)
    interrupts.check()


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite entries (frozen members report NaN); NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def take_cells(state: Any, axes: Any, index: np.ndarray) -> Any:
    """A group state (host arrays, seeds first) with its cell axis taken at ``index``;
    ``axes`` are the member-level cell axes (``programs._state_axes``), None for leaves a
    seed's cells share."""
    return jax.tree.map(
        lambda ax, a: a if ax is None else np.take(a, index, axis=ax + 1),
        axes, state, is_leaf=lambda a: a is None,
    )  # fmt: skip


def take_seeds(state: Any, index: np.ndarray) -> Any:
    return jax.tree.map(lambda a: np.take(a, index, axis=0), state)


def padded_index(n: int, size: int) -> np.ndarray:
    """0..n-1 then repeats of n-1 up to ``size``: padding members copy the last real one."""
    return np.minimum(np.arange(size), n - 1)


def _concat(trees: list[Any], axes: Any) -> Any:
    """Host group states of consecutive calls joined along their cell axes (``axes``: the
    member-level cell axes, None for leaves a seed's cells share)."""
    return jax.tree.map(
        lambda ax, *a: a[0] if ax is None else np.concatenate(a, axis=ax + 1),
        axes, *trees, is_leaf=lambda a: a is None,
    )  # fmt: skip


class _Call(NamedTuple):
    program: Any
    args: Any
    layout: programs.Layout


def train_cells(
    spec: Spec,
    env: Env,
    host_state: Any,
    hparams: dict[str, np.ndarray],
    n_seeds: int,
    start: int,
    end: int,
    capacity: int,
    keep_state: bool = True,
) -> tuple[Any, programs.GroupArrays, dict[str, Any]]:
    """Epochs [start, end) of one shape's cells (``hparams`` {name: [cells]}) on ``n_seeds``
    seeds, from ``host_state`` (None at epoch 0; else the cells' state, seeds first), in
    calls of ``capacity`` cells: (their state after, on the host, real members only, or None
    unless ``keep_state``; their arrays with ``final`` computed at epoch ``end``; timings)."""
    t0 = time.perf_counter()
    n_cells = len(hparams["learning_rate"])
    full = programs.plan(n_seeds, capacity)
    calls, states = [], []
    for c in range(0, n_cells, capacity):
        idx = np.arange(c, min(c + capacity, n_cells))
        layout = full._replace(n_cells=len(idx))  # padded to the program's capacity
        program, args = env.prepare(spec, layout, {k: v[idx] for k, v in hparams.items()})
        if host_state is None:
            state = programs.placeholder_state(program)
        else:
            axes = programs._state_axes(spec, args.data)
            host = take_cells(host_state, axes, idx[padded_index(len(idx), layout.padded_cells)])
            host = take_seeds(host, padded_index(n_seeds, layout.padded_seeds))
            state = jax.tree.map(
                lambda a, s: programs._global(np.asarray(a, s.dtype), s.sharding),
                host, program.state_shapes,
            )  # fmt: skip
        calls.append(_Call(program, args, layout))
        states.append(state)
    t1 = time.perf_counter()
    curves: list[list[Any]] = [[] for _ in calls]
    finals: list[Any] = [None] * len(calls)
    pending = None
    for e in range(start, end + 1):
        if e < end:  # every call's epoch e dispatched before epoch e-1 is read back
            for i, call in enumerate(calls):
                states[i], metrics, final, logits, params = call.program.compiled(
                    states[i], *call.args, np.int32(e), np.bool_(e == end - 1)
                )
                curves[i].append(metrics)
                if e == end - 1:
                    finals[i] = (final, programs.scores(call.program, logits, call.args), params)
        if pending is not None:
            real = []
            for i, call in enumerate(calls):
                env.wait(curves[i][pending - start])
                host = programs.to_host(curves[i][pending - start])
                curves[i][pending - start] = host
                real.append(host["train_ll"][:n_seeds, : call.layout.n_cells])
            env.on_epoch(pending, finite_mean(np.concatenate(real, axis=1)), spec.epochs)
        pending = e if e < end else None
    host_states, parts = [], []
    for call, state, outputs, curve in zip(calls, states, finals, curves, strict=True):
        env.wait(outputs)
        network, scores, params = programs.to_host(outputs)
        final = final_metrics(network, scores)
        if keep_state:
            axes = programs._state_axes(spec, call.args.data)
            state = take_seeds(programs.to_host(state), np.arange(n_seeds))
            host_states.append(take_cells(state, axes, np.arange(call.layout.n_cells)))
        parts.append(programs.group_arrays(call.layout, params, curve, final))
    arrays = programs.GroupArrays(
        params=[{k: np.concatenate([p.params[i][k] for p in parts], axis=1) for k in layer}
                for i, layer in enumerate(parts[0].params)],
        curves={k: np.concatenate([p.curves[k] for p in parts], axis=1) for k in parts[0].curves},
        final={k: np.concatenate([p.final[k] for p in parts], axis=1) for k in parts[0].final},
    )  # fmt: skip
    info = {
        "epochs": [start + 1, end],
        "cells": n_cells,
        "calls_per_epoch": len(calls),
        "layout": full.describe(),
        "prepare_s": t1 - t0,
        "train_s": time.perf_counter() - t1,
    }
    if not keep_state:
        return None, arrays, info
    return _concat(host_states, programs._state_axes(spec, calls[0].args.data)), arrays, info
