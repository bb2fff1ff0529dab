"""Reading a finished run back: ``load_run(RUN_DIR)`` is what the report, the plots, the
TensorBoard export and a notebook user all go through."""

import json
from pathlib import Path

from deepmle import config as config_lib
from deepmle.analysis import report
from deepmle.errors import UserError
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
    groups = []
    for hidden in config.model.hidden_sizes:
        g, problem = store.read_group(run_dir, config, hidden, meta.get("data", {}).get("sha256"))
        if g is None:
            raise UserError(f"{run_dir}: group {group_name(hidden)} {problem}")
        groups.append(g)
    return RunResults(run_dir, config, groups, report.summary_rows(groups), meta)
