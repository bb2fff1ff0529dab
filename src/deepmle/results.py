"""The README's ``deepmle.results``: the results types (``deepmle.runs.results``) and
``load_run`` (``deepmle.analysis.load``) under one name, for notebooks."""

from deepmle.analysis.load import load_run
from deepmle.runs.results import GroupResult, RunResults, group_name, hidden_label, lr_labels

__all__ = ["GroupResult", "RunResults", "group_name", "hidden_label", "load_run", "lr_labels"]
