"""Experiment configs: TOML files with [data], [model] and [train], as frozen dataclasses.

A config sweeps when it gives lists where one value would do. What changes the compiled
program (``STATIC_KEYS``: ``model.hidden_sizes`` as a list of lists, one network shape each,
``model.activation``, ``train.batch_size``, ``train.optimizer``) makes one group per
combination (a ``Static``), one program each; any traced hyperparameter of [train]
(deepmle.core.hyperparams: learning_rate, prior_std, momentum, init_scale) as a list, or as a
random search ``{ log_uniform = [1e-3, 10.0], samples = 16 }`` (or ``uniform``) drawn once from
``train.search_seed``. A shape's *cells* are the product of the lists; keys drawn together
are drawn jointly, one value of each per cell (the resolved config records the values drawn,
and ``drawn`` names the keys whose lists go together). Every problem is reported as one
``UserError`` line naming the file (or the ``--set``) and the key.
"""

import difflib
import itertools
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepmle import data as data_lib
from deepmle.core import registry
from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.errors import UserError, cut, not_a_file, short

CALIBRATIONS = ("none", "temperature")
"""[train] calibrate: "temperature" fits T per member on validation (deepmle.core.calibration)."""


class ConfigError(UserError):
    """A config that does not parse or does not validate."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "embedded"
    digits: tuple[int, int] = (1, 2)
    path: str = ""
    validation_fraction: float = 0.1


class Static(NamedTuple):
    """A group's static values: what changes the compiled program, so one program per
    distinct Static (``Config.statics``)."""

    hidden: tuple[int, ...]
    activation: str
    batch_size: int
    optimizer: str


class StaticKey(NamedTuple):
    """A static key besides hidden_sizes: its config ``section``, and how a group's name shows
    its value when it is swept: ``prefix`` then the value ('h32-b64'), matching ``pattern`` (a
    regex: deepmle.runs.store recognises its own group files by it)."""

    section: str
    prefix: str
    pattern: str


STATIC_KEYS = {
    "activation": StaticKey("model", "", "|".join(map(re.escape, registry.ACTIVATIONS))),
    "batch_size": StaticKey("train", "b", "[0-9]+"),
    "optimizer": StaticKey("train", "", "|".join(map(re.escape, registry.OPTIMIZERS))),
}
"""The static keys besides hidden_sizes, each a field of ``Static``, in group order: each may
be a list, one group per value."""


@dataclass(frozen=True)
class ModelConfig:
    hidden_sizes: tuple[tuple[int, ...], ...] = ((32,),)
    """One tuple of hidden widths per network shape; a single shape is ``((32,),)``."""
    activation: str | tuple[str, ...] = "sigmoid"
    """One name, or a tuple of two or more (a sweep: one group each)."""


TrainConfig = make_dataclass(
    "TrainConfig",
    [
        ("optimizer", str | tuple[str, ...], field(default="sgd")),
        *[(name, tuple[float, ...], field(default=(row.default,)))
          for name, row in HYPERPARAMETERS.items()],
        ("batch_size", int | tuple[int, ...], field(default=128)),
        ("epochs", int, field(default=10)),
        ("seeds", int, field(default=8)),
        ("search_seed", int, field(default=0)),
        ("calibrate", str, field(default="none")),
        ("drawn", tuple[str, ...], field(default=())),
        ("learning_rate_search", str, field(default="", compare=False)),
    ],
    frozen=True,
)  # fmt: skip
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = """[train]: the optimizer, one tuple of values per traced hyperparameter
(deepmle.core.hyperparams; the cells are their product), ``drawn`` (keys drawn jointly by a
random search: their tuples go together, one value each per cell), the static rest, and
``learning_rate_search``: how values were drawn (a note, not part of identity). ``optimizer``
and ``batch_size`` are one value, or a tuple of two or more (one group each). ``calibrate =
"temperature"`` fits T per member on validation and reports test metrics before and after."""


METHODS = ("grid", "halving")


@dataclass(frozen=True)
class SearchConfig:
    """How cells (shape x learning rate) are searched: "grid" trains every cell to the last
    epoch; "halving" (deepmle.halving) keeps the best 1/eta of the running cells at each rung,
    epochs min_epochs * eta^k, on validation LL."""

    method: str = "grid"
    eta: int = 3
    min_epochs: int = 1


@dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()  # noqa: RUF009 (frozen: one shared default is safe)
    name: str = "config"
    search: SearchConfig = SearchConfig()

    def shapes(self, n_inputs: int) -> tuple[tuple[int, ...], ...]:
        """Every network's layer sizes for data with ``n_inputs`` features, e.g.
        ``((784, 32, 1),)`` on MNIST."""
        return tuple((n_inputs, *hidden, 1) for hidden in self.model.hidden_sizes)

    def statics(self) -> tuple[Static, ...]:
        """Every group's static values: the product hidden_sizes x activation x batch_size x
        optimizer, in that order (the first slowest)."""
        lists = [self.model.hidden_sizes, *(self.values(k) for k in STATIC_KEYS)]
        return tuple(Static(*p) for p in itertools.product(*lists))

    def values(self, key: str) -> tuple[Any, ...]:
        """The values of static key ``key`` (of ``STATIC_KEYS``), one or more."""
        v = getattr(getattr(self, STATIC_KEYS[key].section), key)
        return v if isinstance(v, tuple) else (v,)

    def static_swept(self) -> tuple[str, ...]:
        """The static keys besides hidden_sizes given as lists: the groups' names and the
        tables show them (``columns``)."""
        return tuple(k for k in STATIC_KEYS if len(self.values(k)) > 1)

    def columns(self, static: Static) -> dict[str, Any]:
        """{key: value} of ``static``'s swept keys (``static_swept``): empty unless swept."""
        return {k: getattr(static, k) for k in self.static_swept()}

    def static_of(
        self, group: "Static | tuple[int, ...]", columns: dict[str, Any] | None = None
    ) -> Static:
        """``group`` as a Static; a bare hidden tuple stands for that shape with the swept
        static keys' values ``columns`` (as ``columns`` gives them) and the config's single
        values of the others. ValueError if a swept key has no value in ``columns``."""
        if isinstance(group, Static):
            return group
        columns = columns or {}
        missing = [k for k in self.static_swept() if k not in columns]
        if missing:
            raise ValueError(f"{', '.join(missing)} swept: name a group by its Static")
        rest = (columns.get(k, self.values(k)[0]) for k in STATIC_KEYS)
        return Static(tuple(group), *rest)

    def only(self, static: Static) -> "Config":
        """This config restricted to one group: every static key a single value."""
        one = lambda section: {k: getattr(static, k) for k, row in STATIC_KEYS.items()  # noqa: E731
                               if row.section == section}  # fmt: skip
        model = replace(self.model, hidden_sizes=(static.hidden,), **one("model"))
        return replace(self, model=model, train=replace(self.train, **one("train")))

    def cells(self) -> dict[str, np.ndarray]:
        """Every traced hyperparameter's value per cell, {name: float64 [cells]}: the
        product of the free keys' lists (the first key slowest), each with every joint draw
        of the ``drawn`` keys."""
        t = self.train
        free = [k for k in HYPERPARAMETERS if k not in t.drawn]
        joint = list(zip(*(getattr(t, k) for k in t.drawn), strict=True)) or [()]
        rows = [(*p, *d) for p in itertools.product(*(getattr(t, k) for k in free)) for d in joint]
        names = free + list(t.drawn)
        return {k: np.array([r[names.index(k)] for r in rows], np.float64)
                for k in HYPERPARAMETERS}  # fmt: skip

    @property
    def n_cells(self) -> int:
        """Cells per shape (each trained on every seed)."""
        return len(self.cells()["learning_rate"])

    def hyper_keys(self) -> tuple[str, ...]:
        """The traced hyperparameters a result depends on, which tables and files show: the
        learning rate, those the optimizer reads, and any other away from its neutral value
        (deepmle.core.hyperparams) in some cell."""
        used = {k for o in self.values("optimizer") for k in registry.optimizer_hyperparameters(o)}
        return tuple(
            k for k, row in HYPERPARAMETERS.items()
            if k == "learning_rate" or k in used
            or (row.neutral is not None and any(v != row.neutral for v in getattr(self.train, k)))
        )  # fmt: skip

    def cell_table(self) -> dict[str, np.ndarray]:
        """{name: [cells]} of the hyperparameters results depend on (``hyper_keys``): what
        a run's groups record (deepmle.runs.results.GroupResult.cells)."""
        cells = self.cells()
        return {k: cells[k] for k in self.hyper_keys()}

    def swept(self) -> tuple[str, ...]:
        """The traced hyperparameters with more than one value among the cells."""
        cells = self.cells()
        return tuple(k for k in HYPERPARAMETERS if len(set(cells[k].tolist())) > 1)

    @property
    def is_sweep(self) -> bool:
        return len(self.statics()) > 1 or self.n_cells > 1


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "search": SearchConfig,
}


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(options)})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check(where: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {message}")


def _as_choice(where: str, v: Any, choices: Sequence[str]) -> str:
    _check(where, isinstance(v, str), f"must be a string, got {short(v)}")
    _check(where, v in choices, f"unknown value {short(v)}" + _did_you_mean(v, choices))
    return v


def _as_int(where: str, v: Any, minimum: int) -> int:
    _check(where, _is_int(v), f"must be an integer, got {short(v)}")
    _check(where, v >= minimum, f"must be >= {minimum}, got {v}")
    return v


def _as_hidden_sizes(where: str, v: Any) -> tuple[tuple[int, ...], ...]:
    """[32] or [64, 32] is one shape; [[8], [16], [64, 32]] is a sweep over shapes; [] inside
    the outer list is no hidden layer, logistic regression: [[]] alone, or [[], [32]]."""
    _check(
        where,
        isinstance(v, list) and len(v) > 0,
        f"must be a non-empty list, got {short(v)} (logistic regression, no hidden layer, is [[]])",
    )
    shapes = v if all(isinstance(s, list) for s in v) else [v]
    for s in shapes:
        _check(where, isinstance(s, list), f"each shape must be a list, got {short(s)}")
        for width in s:
            _check(where, _is_int(width), f"hidden sizes must be integers, got {short(width)}")
            _check(where, width >= 1, f"hidden sizes must be >= 1, got {width}")
    out = tuple(tuple(s) for s in shapes)
    _distinct(where, out, "shape")
    return out


def _as_static(where: str, v: Any, one: Callable[..., Any], rule: Any) -> Any:
    """One value (``one(where, v, rule)`` checks it), or a non-empty list of distinct ones: a
    tuple, one group each (a list of one is that value)."""
    if not isinstance(v, list):
        return one(where, v, rule)
    _check(where, len(v) > 0, "must not be an empty list")
    out = tuple(one(where, x, rule) for x in v)
    for i, x in enumerate(out):
        _check(where, x not in out[:i], f"lists {x!r} twice; give each once")
    return out if len(out) > 1 else out[0]


def _as_positive(where: str, lr: Any) -> float:
    _check(where, _is_number(lr), f"must be a number or a list of numbers, got {short(lr)}")
    _check(where, math.isfinite(lr), f"must be finite, got {lr}")
    _check(where, lr > 0, f"must be > 0 (gradient ascent needs a positive step), got {lr}")
    _check(where, FLOAT32_TINY <= lr <= FLOAT32_MAX,
           f"must be a normal float32 number (training runs in float32), got {lr}")  # fmt: skip
    return float(lr)


def _as_hyper_value(where: str, name: str, v: Any) -> float:
    """One value of traced hyperparameter ``name``, checked against its schema row."""
    if name == "learning_rate":
        return _as_positive(where, v)
    row = HYPERPARAMETERS[name]
    _check(where, _is_number(v), f"must be a number or a list of numbers, got {short(v)}")
    _check(where, not math.isnan(v), "must be a number, got nan")
    _check(where, not row.problem(v), row.problem(v))
    _check(where, math.isinf(v) or v == 0 or FLOAT32_TINY <= abs(v) <= FLOAT32_MAX,
           f"must be a normal float32 number (training runs in float32), got {v}")  # fmt: skip
    return float(v)


FLOAT32_TINY, FLOAT32_MAX = 1.1754944e-38, 3.4028235e38
MAX_SAMPLES = 100_000
"""The most learning rates a random search may draw (each is a member of every shape)."""


def _distinct(where: str, values: Sequence[Any], what: str) -> None:
    """Duplicates would train the same members twice and print look-alike cells."""
    seen: dict[Any, Any] = {}
    for v in values:
        key = v if isinstance(v, tuple) else float(np.float32(v))
        shown = list(v) if isinstance(v, tuple) else v
        _check(
            where, key not in seen or seen[key] != v, f"lists {what} {shown} twice; give each once"
        )
        _check(where, key not in seen, f"lists {what}s {seen.get(key)} and {v}, which are the same "
               "in float32 (training's precision); give each once")  # fmt: skip
        seen[key] = v


def _as_hyper(where: str, name: str, v: Any) -> tuple[float, ...] | dict[str, Any]:
    """A number, a list of numbers, or a random-search table (drawn later, in ``from_dict``)."""
    if isinstance(v, dict):
        return _as_search(where, name, v)
    values = v if isinstance(v, list) else [v]
    _check(where, len(values) > 0, "must not be an empty list")
    out = tuple(_as_hyper_value(where, name, x) for x in values)
    _distinct(where, out, "learning rate" if name == "learning_rate" else "value")
    return out


DISTRIBUTIONS = ("log_uniform", "uniform")


def _as_search(where: str, name: str, v: dict[str, Any]) -> dict[str, Any]:
    """{ log_uniform = [low, high], samples = n } (or uniform), checked."""
    keys = [*DISTRIBUTIONS, "samples"]
    for key in v:
        _check(where, key in keys, f"unknown search key {short(key)}" + _did_you_mean(key, keys))
    kinds = [k for k in DISTRIBUTIONS if k in v]
    _check(where, len(kinds) == 1, "a search needs one of log_uniform = [low, high] or "
           f"uniform = [low, high], got {short(v)}")  # fmt: skip
    kind, bounds = kinds[0], v[kinds[0]]
    _check(where, isinstance(bounds, list) and len(bounds) == 2,
           f"a search needs {kind} = [low, high], got {short(bounds)}")  # fmt: skip
    low, high = (_as_hyper_value(where, name, b) for b in bounds)
    _check(where, math.isfinite(low) and math.isfinite(high),
           f"{kind} needs finite bounds, got [{low}, {high}]")  # fmt: skip
    _check(where, low < high, f"{kind} needs low < high, got [{low}, {high}]")
    _check(where, kind != "log_uniform" or low > 0,
           f"log_uniform needs low > 0, got [{low}, {high}] (use uniform)")  # fmt: skip
    samples = v.get("samples")
    _check(
        where,
        _is_int(samples) and 1 <= samples <= MAX_SAMPLES,
        f"samples must be an integer from 1 to {MAX_SAMPLES:,}, got {short(samples)}",
    )
    return {"kind": kind, "bounds": (low, high), "samples": samples}


def draw(searches: dict[str, dict[str, Any]], seed: int) -> dict[str, tuple[float, ...]]:
    """Joint draws: ``samples`` values of each key of ``searches`` (schema order), one per
    cell, from one stream seeded by ``seed``; the cells sorted by the first key's value. One
    key alone: its values ascending (log-uniform: exp of uniform logs)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, s in searches.items():
        low, high = s["bounds"]
        if s["kind"] == "log_uniform":
            out[name] = np.exp(rng.uniform(math.log(low), math.log(high), s["samples"]))
        else:
            out[name] = rng.uniform(low, high, s["samples"])
    order = np.argsort(next(iter(out.values())), kind="stable")
    return {k: tuple(float(x) for x in v[order]) for k, v in out.items()}


def draw_learning_rates(search: dict[str, Any], seed: int) -> tuple[float, ...]:
    """``samples`` learning rates log-uniform in ``log_uniform``, from ``seed``, ascending."""
    low, high = search["log_uniform"]
    one = {"kind": "log_uniform", "bounds": (low, high), "samples": search["samples"]}
    return draw({"learning_rate": one}, seed)["learning_rate"]


def _keys(cls: type) -> list[str]:
    """The keys a section's file may set (notes such as learning_rate_search are not keys)."""
    return [f.name for f in fields(cls) if f.compare]


def _validate_section(
    section: str, raw: dict[str, Any], where: str, origins: dict[tuple[str, str], str]
) -> dict[str, Any]:
    names = _keys(SECTIONS[section])
    out: dict[str, Any] = {}
    for key, v in raw.items():
        source = origins.get((section, key), where)
        at = f"{source}: [{section}] {key}"
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key [{section}] {key}" + _did_you_mean(key, names)
            )
        if isinstance(v, dict) and key not in HYPERPARAMETERS:
            raise ConfigError(
                f"{at}: cannot be drawn from a distribution: only the traced hyperparameters "
                f"({', '.join(HYPERPARAMETERS)}) can; {key} changes the compiled program, so it "
                "can only be a value"
                + (" or a list of shapes" if key == "hidden_sizes" else "")
                + (" or a list" if key in STATIC_KEYS else "")
            )
        match (section, key):
            case ("data", "source"):
                out[key] = _as_choice(at, v, list(data_lib.SOURCES))
            case ("data", "digits"):
                ok = isinstance(v, list) and len(v) == 2 and all(_is_int(d) for d in v)
                ok = ok and all(0 <= d <= 9 for d in v) and v[0] != v[1]
                _check(at, ok, f"must be two distinct digits 0-9, got {short(v)}")
                out[key] = tuple(v)
            case ("data", "path"):
                _check(at, isinstance(v, str), f"must be a string, got {short(v)}")
                out[key] = v
            case ("data", "validation_fraction"):
                _check(at, _is_number(v), f"must be a number, got {short(v)}")
                _check(at, 0 < v < 1, f"must be between 0 and 1 (exclusive), got {v}")
                out[key] = float(v)
            case ("model", "hidden_sizes"):
                out[key] = _as_hidden_sizes(at, v)
            case ("model", "activation"):
                out[key] = _as_static(at, v, _as_choice, list(registry.ACTIVATIONS))
            case ("train", "optimizer"):
                out[key] = _as_static(at, v, _as_choice, list(registry.OPTIMIZERS))
            case ("train", name) if name in HYPERPARAMETERS:
                out[key] = _as_hyper(at, name, v)
            case ("train", "drawn"):
                ok = isinstance(v, list) and all(k in HYPERPARAMETERS for k in v)
                known = ", ".join(HYPERPARAMETERS)
                message = f"must list distinct traced hyperparameters ({known}), got {short(v)}"
                _check(at, ok and len(set(v)) == len(v), message)
                out[key] = tuple(v)
            case ("train", "calibrate"):
                out[key] = _as_choice(at, v, CALIBRATIONS)
            case ("train", "search_seed"):
                out[key] = _as_int(at, v, 0)
            case ("train", "batch_size"):
                out[key] = _as_static(at, v, _as_int, 1)
            case ("train", "epochs" | "seeds"):
                out[key] = _as_int(at, v, 1)
            case ("search", "method"):
                out[key] = _as_choice(at, v, METHODS)
            case ("search", "eta"):
                out[key] = _as_int(at, v, 2)
            case ("search", "min_epochs"):
                out[key] = _as_int(at, v, 1)
    return out


def from_dict(
    raw: dict[str, Any],
    where: str = "<config>",
    name: str = "config",
    origins: dict[tuple[str, str], str] | None = None,
) -> Config:
    """A validated Config from parsed TOML; ``where`` names the source in error messages, and
    ``origins`` the ``--set`` that gave a (section, key), where one did."""
    origins = origins or {}
    sections = {}
    for section, body in raw.items():
        if section not in SECTIONS:
            source = next((o for (s, _), o in origins.items() if s == section), where)
            raise ConfigError(
                f"{source}: unknown section [{section}]" + _did_you_mean(section, list(SECTIONS))
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{section}] must be a table, got {short(body)}")
        values = _validate_section(section, body, where, origins)
        if section == "train":
            values = _draw_searches(values, where, origins)
        sections[section] = SECTIONS[section](**values)
    config = Config(**sections, name=name)
    _check_search(config, where, origins)
    _check_read(config, where, origins)
    row = data_lib.SOURCES[config.data.source]
    if row.needs_path and not config.data.path:
        source = origins.get(("data", "source"), where)
        raise ConfigError(
            f"{source}: [data] path: source {config.data.source!r} needs the path of {row.path}"
        )
    return config


def _draw_searches(
    values: dict[str, Any], where: str, origins: dict[tuple[str, str], str]
) -> dict[str, Any]:
    """[train] with its distributions drawn (``draw``) and ``drawn`` naming the keys drawn
    together; a hand-written ``drawn`` (as a resolved config writes it) checked instead."""
    at = lambda key: f"{origins.get(('train', key), where)}: [train] {key}"  # noqa: E731
    searches = {k: values[k] for k in HYPERPARAMETERS if isinstance(values.get(k), dict)}
    if not searches:
        lists = {k: values.get(k, ()) for k in values.get("drawn", ())}
        sizes = {len(v) for v in lists.values()}
        _check(at("drawn"), len(sizes) <= 1, "the keys drawn together need lists of one "
               f"length, got {', '.join(f'{k}: {len(v)}' for k, v in lists.items())}")  # fmt: skip
        if len(lists) > 1:
            cells = list(zip(*(np.float32(v).tolist() for v in lists.values()), strict=True))
            _check(at("drawn"), len(set(cells)) == len(cells),
                   "lists the same cell twice (in float32); give each once")  # fmt: skip
        return values
    _check(at("drawn"), "drawn" not in values, "is set by the distributions drawn; give lists "
           "with drawn, or distributions without it")  # fmt: skip
    samples = {k: s["samples"] for k, s in searches.items()}
    given = ", ".join(f"{k} {n}" for k, n in samples.items())
    _check(at(next(iter(searches))), len(set(samples.values())) == 1,
           "keys drawn at random are drawn jointly, one value of each per cell, so they need "
           f"the same samples; got {given}")  # fmt: skip
    seed = values.get("search_seed", 0)
    drawn = draw(searches, seed)
    n = next(iter(samples.values()))
    cells = list(zip(*(np.float32(v).tolist() for v in drawn.values()), strict=True))
    same = n - len(set(cells))
    _check(at(next(iter(searches))), same == 0,
           f"{same} of the {n} draws equal another in float32 (training's precision), which "
           "would train the same network twice; draw fewer samples or widen the range")  # fmt: skip
    values = {**values, **drawn}
    if len(drawn) > 1:
        values["drawn"] = tuple(drawn)
    kind = lambda s: s["kind"].replace("_", "-") + "ly"  # noqa: E731
    if list(searches) == ["learning_rate"]:
        (s,) = searches.values()
        note = f"drawn {kind(s)} from [{s['bounds'][0]!r}, {s['bounds'][1]!r}]"
    else:
        note = "; ".join(f"{k} drawn {kind(s)} from [{s['bounds'][0]!r}, {s['bounds'][1]!r}]"
                         for k, s in searches.items()) + " (jointly)"  # fmt: skip
    values["learning_rate_search"] = f"{note}, {n} samples, search_seed {seed}"
    return values


def _check_read(config: Config, where: str, origins: dict[tuple[str, str], str]) -> None:
    """A hyperparameter swept over values that nothing in the run reads (momentum beside
    optimizers without it) would train each cell once per value, identical, and show no
    column to tell them apart: refused."""
    keys = config.hyper_keys()
    for k in HYPERPARAMETERS:
        if k not in keys and len(set(getattr(config.train, k))) > 1:
            readers = [o for o in registry.OPTIMIZERS if k in registry.optimizer_hyperparameters(o)]
            names = ", ".join(repr(o) for o in config.values("optimizer"))
            raise ConfigError(
                f"{origins.get(('train', k), where)}: [train] {k}: swept, but no optimizer of "
                f"this run reads it (optimizer {names}; {k} is read by "
                f"{', '.join(repr(o) for o in readers) or 'none'})"
            )


def _check_search(config: Config, where: str, origins: dict[tuple[str, str], str]) -> None:
    """A search that stops cells (any method but the grid) needs a rung before the last epoch
    and more than one cell to choose among."""
    search = config.search
    if search.method == "grid":
        return
    at = lambda key: f"{origins.get(('search', key), where)}: [search] {key}"  # noqa: E731
    epochs = config.train.epochs
    _check(at("min_epochs"), search.min_epochs < epochs, f"must be below [train] epochs "
           f"({epochs}) for a first rung, got {search.min_epochs}")  # fmt: skip
    cells = len(config.statics()) * config.n_cells
    _check(at("method"), cells > 1,
           f"{search.method!r} needs more than one cell (group x hyperparameters) to choose "
           "among; "
           "this config has 1 (use method = \"grid\")")  # fmt: skip


def _parse_override(item: str) -> tuple[str, str, Any]:
    """'train.learning_rate=0.1' -> ('train', 'learning_rate', 0.1); bare words are strings."""
    where = f"--set {cut(item)}"
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"{where}: expected section.key=value")
    dotted, text = item.split("=", 1)
    section, key = (s.strip() for s in dotted.split(".", 1))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, key, value


def load(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read and validate a TOML config (UTF-8, a byte-order mark allowed), then apply
    ``"section.key=value"`` overrides; an error in an override names the ``--set``."""
    path = Path(path)
    problem = not_a_file(path, "config file")  # a FIFO would block the read for ever
    if problem:
        raise ConfigError(problem)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    for section, body in raw.items():
        if section in SECTIONS and not isinstance(body, dict):
            raise ConfigError(f"{path}: [{section}] must be one table, got {short(body)}")
    origins = {}
    for item in overrides:
        section, key, value = _parse_override(item)
        if not isinstance(raw.setdefault(section, {}), dict):
            raise ConfigError(f"--set {cut(item)}: [{section}] is not a table")
        raw[section][key] = value
        origins[(section, key)] = f"--set {cut(item)}"
    return from_dict(raw, where=str(path), name=path.stem, origins=origins)


def to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain TOML-ready values (lists, not tuples)."""

    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):  # a numpy scalar set with dataclasses.replace
            return v.item()
        return [plain(x) for x in v] if isinstance(v, tuple | list) else v

    def keep(section: str, k: str, v: Any) -> bool:
        """Left out: a traced hyperparameter at its neutral value, an empty ``drawn`` (so a
        run's identity is the same as before the key existed)."""
        if section != "train":
            return True
        if k == "drawn":
            return bool(v)
        row = HYPERPARAMETERS.get(k)
        return row is None or row.neutral is None or list(v) != [row.neutral]

    def value(section: str, k: str, v: Any) -> Any:
        if section == "train" and k in HYPERPARAMETERS and k != "learning_rate" and len(v) == 1:
            return plain(v[0])  # one value is written as one value, as before lists existed
        return plain(v)

    return {
        s: {
            k: value(s, k, getattr(getattr(config, s), k))
            for k in _keys(cls)
            if keep(s, k, getattr(getattr(config, s), k))
        }
        for s, cls in SECTIONS.items()
        if s != "search" or config.search != SearchConfig()  # a grid's identity as before
    }


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
"""What a TOML basic string (and a comment) may not hold raw: controls but tab, and DEL."""


def toml_string(s: str) -> str:
    """``s`` as a TOML basic string: quotes, backslashes and every control character
    (DEL too, which JSON leaves raw) escaped, so that tomllib reads back ``s``."""
    body = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", body) + '"'


def validate(config: Config, where: str = "") -> Config:
    """``config`` checked by the same rules as a file (one definition: it is read back through
    ``from_dict``), for a Config built or changed in code (``dataclasses.replace``);
    ConfigError naming the first problem, ``where`` saying whose config it is."""
    if not isinstance(config, Config):
        raise ConfigError(f"expected a deepmle Config, got {type(config).__name__}")
    where = where or f"config {config.name!r}"
    checked = from_dict(to_dict(config), where=where, name=config.name)
    return replace(
        checked,
        train=replace(checked.train, learning_rate_search=config.train.learning_rate_search),
    )


def to_toml(config: Config) -> str:
    """The resolved config as a TOML document that ``load`` reads back to the same Config."""

    def value(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return toml_string(v)
        if isinstance(v, float):
            return repr(v)
        return str(v)

    lines = [f"# resolved config of {_CONTROL.sub('?', repr(config.name))}"]
    for section, body in to_dict(config).items():
        lines += ["", f"[{section}]"]
        for k, v in body.items():
            if (section, k) == ("train", "learning_rate") and config.train.learning_rate_search:
                note = config.train.learning_rate_search
                lines.append(f"# {'learning rates ' if note.startswith('drawn') else ''}{note}")
            lines.append(f"{k} = {value(v)}")
    return "\n".join(lines) + "\n"
