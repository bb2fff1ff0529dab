"""The README's ``deepmle.likelihood``: eq. 3, at home in ``deepmle.core.likelihood``."""

from deepmle.core.likelihood import (
    accuracy_from_logits,
    example_log_likelihoods,
    log_likelihood,
    log_likelihood_from_logits,
    mean_log_likelihood,
)

__all__ = [
    "accuracy_from_logits",
    "example_log_likelihoods",
    "log_likelihood",
    "log_likelihood_from_logits",
    "mean_log_likelihood",
]
