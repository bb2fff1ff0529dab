"""Reading a finished run back: ``load_run(RUN_DIR)`` is what the report, the plots, the
TensorBoard export and a notebook user all go through."""

import json
from pathlib import Path
from typing import Any

from deepmle import config as config_lib
from deepmle.analysis import report
from deepmle.errors import UserError, short
from deepmle.runs import store
from deepmle.runs.results import RunResults, group_name


def load_run(run_dir: str | Path) -> RunResults:
    """A finished run from its directory: the resolved config, every group's arrays (verified
    against their checksums) and the summary rows. UserError if it is not a finished run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file() or not (run_dir / "meta.json").is_file():
        raise UserError(
            f"{run_dir}: not a finished deepmle run directory (no config.toml or meta.json)"
        )
    config = config_lib.load(run_dir / "config.toml")
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{run_dir / 'meta.json'}: unreadable ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("data", {}), dict):
        raise UserError(
            f'{run_dir / "meta.json"}: damaged (expected an object with a "data" object, as '
            "deepmle writes it); re-run the config into this directory to rewrite it"
        )
    _check_search(run_dir / "meta.json", meta.get("search", {}))
    groups = []
    for static in config.statics():
        g, problem = store.read_group(run_dir, config, static, meta.get("data", {}).get("sha256"))
        if g is None:
            name = group_name(static.hidden, config.columns(static))
            raise UserError(f"{run_dir}: group {name} {problem}")
        groups.append(g)
    return RunResults(run_dir, config, groups, report.summary_rows(groups), meta)


_INT, _NUM, _BOOL, _STR = (int,), (int, float), (bool,), (str,)
_RUNG = {"rung": _INT, "epoch": _INT, "cells_ranked": _INT, "cells_kept": _INT,
         "cutoff_val_ll": (*_NUM, str), "member_epochs": _INT,
         "grid_member_epochs": _INT}  # fmt: skip
_DECISION = {"hidden_sizes": _STR, "learning_rate": _NUM, "rung": _INT, "epoch": _INT,
             "rank": _INT, "of": _INT, "val_ll": _NUM, "cutoff_val_ll": _NUM,
             "kept": _BOOL}  # fmt: skip
"""The keys of meta.json's "search" rows the report reads, and their JSON types (as
deepmle.population.search writes them)."""


def _typed(v: Any, types: tuple[type, ...]) -> bool:
    return isinstance(v, types) and (bool in types or not isinstance(v, bool))


def _check_search(path: Path, search: Any) -> None:
    """UserError unless meta.json's successive-halving record has the shape the report and
    the figures read: eta an integer >= 2, rungs and decisions lists of rows of typed values."""

    def damaged(what: str) -> UserError:
        return UserError(f"{path}: damaged search section ({what}); re-run the config into this "
                         "directory to rewrite it")  # fmt: skip

    if not isinstance(search, dict):
        raise damaged(f'"search" is {type(search).__name__}, not an object')
    if not search:
        return
    if not _typed(search.get("eta"), _INT) or search["eta"] < 2:
        raise damaged(f'"eta" is {short(search.get("eta"))}, not an integer >= 2')
    for key, schema in (("rungs", _RUNG), ("decisions", _DECISION)):
        rows = search.get(key)
        if not isinstance(rows, list):
            raise damaged(f'"{key}" is {short(rows)}, not a list')
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise damaged(f'"{key}"[{i}] is {short(row)}, not an object')
            for name, types in schema.items():
                v = row.get(name)
                ok = _typed(v, types) and (v == "" if isinstance(v, str) and name != "hidden_sizes"
                                           else name != "grid_member_epochs" or v > 0)  # fmt: skip
                if not ok:
                    raise damaged(f'"{key}"[{i}]["{name}"] is {short(v)}')
