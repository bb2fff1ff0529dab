"""The files a finished run's groups turn into: members.csv, curves.csv, params.npz,
meta.json and summary.csv, written through the run store."""

import csv
import io
from collections.abc import Sequence
from typing import Any

from deepmle.analysis.report import curve_rows, member_rows, summary_rows
from deepmle.runs import store
from deepmle.runs.results import GroupResult, params_arrays


def _csv(rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode()


def write(run: "store.RunDir", groups: Sequence[GroupResult], meta: dict[str, Any]) -> list[dict]:
    """members.csv, curves.csv, params.npz, meta.json, summary.csv (and for successive
    halving rungs.csv) into the run directory; returns the summary rows."""
    summary = summary_rows(groups)
    store.atomic_write_bytes(run.work / "members.csv", _csv(member_rows(groups)), run.work)
    store.atomic_write_bytes(run.work / "curves.csv", _csv(curve_rows(groups)), run.work)
    arrays = {}
    for g in groups:
        arrays |= {f"{g.name}/seeds": g.seeds, f"{g.name}/learning_rates": g.learning_rates}
        arrays |= {f"{g.name}/hyper/{k}": v for k, v in (g.hyper or {}).items()}
        arrays |= params_arrays(g.name, g.params)
    store.atomic_write_bytes(run.work / "params.npz", store.npz_bytes(arrays), run.work)
    rungs = meta.get("search", {}).get("rungs")
    if rungs:
        store.atomic_write_bytes(run.work / "rungs.csv", _csv(rungs), run.work)
    store.write_json(run.work / "meta.json", meta, run.work)
    store.atomic_write_bytes(run.work / "summary.csv", _csv(summary), run.work)
    return summary
