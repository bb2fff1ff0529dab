"""The README's ``deepmle.model``: the network of eqs. 1-2, at home in ``deepmle.core.model``."""

from deepmle.core.model import (
    Activation,
    forward,
    from_normals,
    init_params,
    layer_sizes_of,
    predict_proba,
    training_matmul,
)

__all__ = [
    "Activation",
    "forward",
    "from_normals",
    "init_params",
    "layer_sizes_of",
    "predict_proba",
    "training_matmul",
]
