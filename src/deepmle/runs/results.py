"""The results model: what a run produced, as typed arrays with member axes first.

Every array of a group has the axes [seeds, cells, ...]: params ``w`` [seeds, cells, n_in,
n_out], final metrics [seeds, cells], curves [seeds, cells, epochs]. A cell is one set of
traced hyperparameters (deepmle.core.hyperparams): its learning rate, and the others a run's
results depend on (``GroupResult.hyper``). Params have one on-disk
layout, the keys ``<group>/layer<i>/w`` and ``<group>/layer<i>/b``, in ``params.npz`` and
in each group file alike.

``deepmle.analysis.load.load_run(RUN_DIR)`` reads a finished run back into these types.
"""

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepmle import config as config_lib
from deepmle.core.metrics import CURVES, DIVERGENCE, METRICS, STOP_METRICS
from deepmle.core.types import Params

FORMAT_VERSION = 3
"""Of a group file (its record's ``format``; none recorded: 1). 2: metrics read through
deepmle.core.metrics.METRICS, a metric missing from an older file absent from its group.
3: the record holds ``record_sha256``, the checksum of its own fields (deepmle.runs.store)."""


MAX_NAME = 64
"""Group names are file names: longer ones are shortened (runs of equal widths, then a hash)."""


def static_suffix(static: dict[str, Any] | None) -> str:
    """'-tanh-b64-adam': a group's swept static keys as its name ends ('' for none)."""
    keys = config_lib.STATIC_KEYS
    return "".join(f"-{keys[k].prefix}{v}" for k, v in (static or {}).items())


def group_name(hidden: tuple[int, ...], static: dict[str, Any] | None = None) -> str:
    """'h32' for one hidden layer of 32, 'h64-32' for two; 'h1024x40' for forty of 1024;
    'h0' for none (logistic regression: no width is 0, so the name is unambiguous). The swept
    static keys ``static`` (``Config.columns``) follow: 'h32-tanh', 'h32-b64', 'h32-adam'."""
    suffix = static_suffix(static)
    room = MAX_NAME - len(suffix)
    name = "h" + ("-".join(str(w) for w in hidden) or "0")
    if len(name) <= room:
        return name + suffix
    runs = [(w, len(list(g))) for w, g in itertools.groupby(hidden)]
    name = "h" + "-".join(f"{w}x{n}" if n > 1 else str(w) for w, n in runs)
    if len(name) <= room:
        return name + suffix
    digest = hashlib.sha1(",".join(map(str, hidden)).encode()).hexdigest()[:8]
    return f"{name[: room - 9].rstrip('-x')}-{digest}{suffix}"


def lr_labels(learning_rates: Sequence[float]) -> dict[float, str]:
    """Each learning rate printed with the fewest significant digits (at least 3) that tell
    all of them apart, positional for ordinary magnitudes: 0.1 -> '0.1', 1000 -> '1000', and
    0.1 beside 0.1000001 -> '0.1' and '0.1000001'."""
    values = sorted(set(float(lr) for lr in learning_rates))

    def text(v: float, digits: int) -> str:  # 1000 -> '1000', not '1e+03'
        if 1e-4 <= abs(v) < 1e6:
            return np.format_float_positional(v, precision=digits, fractional=False, trim="-")
        return f"{v:.{digits}g}"

    for digits in range(3, 18):
        labels = {v: text(v, digits) for v in values}
        if len(set(labels.values())) == len(values):
            return labels
    return {v: repr(v) for v in values}


LOGISTIC_LABEL = "0 (logistic)"
"""How the tables print the shape with no hidden layer: ŷ = σ(θᵀx), logistic regression."""


def hidden_label(hidden: tuple[int, ...]) -> str:
    """'32' or '64-32', as the tables print a shape; '0 (logistic)' for no hidden layer."""
    return "-".join(str(w) for w in hidden) or LOGISTIC_LABEL


class GroupResult(NamedTuple):
    """One network shape's members. seeds [S] int; learning_rates [C], one per cell (as
    configured); params per layer ``w`` [S, C, n_in, n_out], ``b`` [S, C, n_out]; final
    {name: [S, C]}; curves {name: [S, C, epochs]}; info: timings and identity; ``hyper``
    {name: [C]}: the cells' other traced hyperparameters that the results depend on (the
    config's ``hyper_keys``), none for a run that sweeps only learning rates; ``static``
    {name: value}: the group's swept static keys besides the shape (``Config.columns``), none
    where only shapes are swept."""

    hidden: tuple[int, ...]
    seeds: np.ndarray
    learning_rates: np.ndarray
    params: Params
    final: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    info: dict[str, Any]
    hyper: dict[str, np.ndarray] | None = None
    static: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return group_name(self.hidden, self.static)

    @property
    def columns(self) -> dict[str, Any]:
        """What the tables show of the group: its hidden sizes and swept static keys."""
        return {"hidden_sizes": hidden_label(self.hidden), **(self.static or {})}

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a summary, member or decision row is of this group."""
        return all(row.get(k) == v for k, v in self.columns.items())

    @property
    def cells(self) -> dict[str, np.ndarray]:
        """Each cell's hyperparameters {name: [C]}, the learning rate first."""
        return {"learning_rate": np.asarray(self.learning_rates), **(self.hyper or {})}

    def cell(self, index: int) -> dict[str, float]:
        """Cell ``index``'s hyperparameters, {name: value}."""
        return {k: float(v[index]) for k, v in self.cells.items()}

    def index_of(self, row: dict[str, Any]) -> int:
        """The index of the cell whose hyperparameters are ``row``'s (a summary or member
        row, which has a column for each); KeyError if none."""
        for i in range(len(self.learning_rates)):
            if all(row.get(k) == v for k, v in self.cell(i).items()):
                return i
        raise KeyError(f"{self.name} has no cell { ({k: row.get(k) for k in self.cells}) }")

    def member_params(self, seed_index: int, lr_index: int) -> Params:
        """One member's parameters, ready for ``deepmle.core.model.forward``."""
        return [{k: v[seed_index, lr_index] for k, v in layer.items()} for layer in self.params]


def params_arrays(name: str, params: Params) -> dict[str, np.ndarray]:
    """The on-disk layout of a group's params: ``<name>/layer<i>/<w|b>``."""
    return {
        f"{name}/layer{i}/{k}": np.asarray(v)
        for i, layer in enumerate(params)
        for k, v in layer.items()
    }


def params_from_arrays(name: str, arrays: dict[str, np.ndarray], n_layers: int) -> Params:
    return [{k: arrays[f"{name}/layer{i}/{k}"] for k in ("w", "b")} for i in range(n_layers)]


def group_arrays(g: GroupResult) -> dict[str, np.ndarray]:
    """Everything of a group as named arrays (a group file's content)."""
    return {
        "seeds": g.seeds,
        "learning_rates": g.learning_rates,
        **{f"hyper/{k}": v for k, v in (g.hyper or {}).items()},
        **params_arrays(g.name, g.params),
        **{f"final/{k}": v for k, v in g.final.items()},
        **{f"curves/{k}": v for k, v in g.curves.items()},
    }


def group_from_arrays(
    hidden: tuple[int, ...],
    arrays: dict[str, np.ndarray],
    info: dict,
    static: dict[str, Any] | None = None,
) -> GroupResult:
    """The inverse of ``group_arrays``; KeyError if an array other than a metric is missing.
    A metric the file lacks (saved before the metric existed) is absent from the group."""
    return GroupResult(
        hidden=hidden,
        seeds=arrays["seeds"],
        learning_rates=arrays["learning_rates"],
        params=params_from_arrays(group_name(hidden, static), arrays, len(hidden) + 1),
        final={
            **{m.name: arrays[f"final/{m.name}"] for m in METRICS if f"final/{m.name}" in arrays},
            **{k: arrays[f"final/{k}"] for k in DIVERGENCE[:2]},
            **{  # the two LLs a stop compared; NaN in a run saved before
                k: arrays.get(f"final/{k}", np.full(arrays["final/diverged_epoch"].shape, np.nan))
                for k in DIVERGENCE[2:]
            },
            **{k: arrays[f"final/{k}"] for k in STOP_METRICS if f"final/{k}" in arrays},
        },
        curves={m.name: arrays[f"curves/{m.name}"] for m in CURVES if f"curves/{m.name}" in arrays},
        info=info,
        hyper={k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("hyper/")} or None,
        static=static or None,
    )


def check_group(
    g: GroupResult, sizes: tuple[int, ...], n_seeds: int, cells: dict[str, np.ndarray], epochs: int
) -> str | None:
    """Why ``g`` does not hold the members a config asks for (layer ``sizes``, seeds,
    ``cells`` {name: [C]} as ``GroupResult.cells`` has them, epochs), or None when it does."""
    s, lr = n_seeds, len(cells["learning_rate"])
    if not np.array_equal(g.seeds, np.arange(s)):
        return f"holds seeds {g.seeds.tolist()}, not 0..{s - 1}"
    if g.learning_rates.shape != (lr,) or not np.array_equal(
        g.learning_rates, cells["learning_rate"]
    ):
        return f"holds learning rates {g.learning_rates.tolist()}"
    have = g.cells
    if set(have) != set(cells) or any(not np.array_equal(have[k], cells[k]) for k in cells):
        return f"holds other cells ({', '.join(sorted(have))})"
    for i, (layer, a, b) in enumerate(zip(g.params, sizes[:-1], sizes[1:], strict=True)):
        if layer["w"].shape != (s, lr, a, b) or layer["b"].shape != (s, lr, b):
            return f"layer {i} has shape {layer['w'].shape}, not {(s, lr, a, b)}"
    if any(v.shape != (s, lr) for v in g.final.values()):
        return "final metrics of the wrong shape"
    if any(v.shape != (s, lr, epochs) for v in g.curves.values()):
        return "curves of the wrong shape"
    return None


@dataclass(frozen=True)
class RunResults:
    """A run directory, read back: its config, groups, summary rows (typed, one per cell:
    see deepmle.analysis.report.summary_rows) and meta.json."""

    run_dir: Path
    config: config_lib.Config
    groups: list[GroupResult]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]

    def group(self, hidden: tuple[int, ...] | str) -> GroupResult:
        """The group named ``hidden`` ('h32-tanh'), or of hidden sizes ``hidden`` where that
        is one group; KeyError if none."""
        name = hidden if isinstance(hidden, str) else group_name(hidden)
        for g in self.groups:
            if g.name == name or (not isinstance(hidden, str) and g.hidden == tuple(hidden)):
                return g
        raise KeyError(name)

    def group_of(self, row: dict[str, Any]) -> GroupResult:
        """The group a summary or member row belongs to."""
        return next(g for g in self.groups if g.matches(row))

    def static(self, g: GroupResult) -> config_lib.Static:
        """Group ``g``'s static values (its activation, batch size, optimizer)."""
        return self.config.static_of(g.hidden, g.static)

    @property
    def rungs(self) -> list[dict[str, Any]]:
        """A successive-halving run's rung table (rungs.csv's rows); [] for a grid run. Each
        member's stop is in its group's ``final["stopped_epoch"]`` and ``["stopped_rung"]``."""
        return list(self.meta.get("search", {}).get("rungs", []))

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """Every cell ranked at a rung: its rank, value and the cutoff (population.search)."""
        return list(self.meta.get("search", {}).get("decisions", []))

    @property
    def selected(self) -> dict[str, Any] | None:
        """The summary row selected on validation, or None if every member diverged."""
        return next((r for r in self.summary if r["selected"]), None)
