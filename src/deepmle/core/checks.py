"""Argument checks for the public functions: a wrong rank, shape or label is a ValueError that
names the argument and the shape it should have, instead of a silent broadcast.

Shapes are static, so they are checked inside ``jit`` too; values (labels in {0, 1}) only
when the array is concrete, outside ``jit``.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from deepmle.core.hyperparams import HYPERPARAMETERS
from deepmle.core.types import Params


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(np.shape(a))


def _fmt(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def layer_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """``sizes`` as a tuple, checked: at least input and output, every size a positive int,
    exactly one output cell."""
    sizes = tuple(sizes)
    bad = [s for s in sizes if not isinstance(s, int | np.integer) or isinstance(s, bool) or s < 1]
    if len(sizes) < 2 or bad or sizes[-1] != 1:
        raise ValueError(
            f"layer_sizes: expected positive integers from the input to 1 output cell, such as "
            f"(784, 32, 1); got {sizes}"
        )
    return tuple(int(s) for s in sizes)


def params(params: Params) -> tuple[int, ...]:
    """The layer sizes of ``params``, after checking it is a list of {"w": [n_in, n_out],
    "b": [n_out]} layers that chain and end in one output cell."""
    if not isinstance(params, list | tuple) or not params:
        raise ValueError(
            f"params: expected a non-empty list of layers, got {type(params).__name__}"
        )
    sizes = []
    for i, layer in enumerate(params):
        if not isinstance(layer, dict) or set(layer) != {"w", "b"}:
            raise ValueError(f'params[{i}]: expected a dict with keys "w" and "b"')
        w, b = _shape(layer["w"]), _shape(layer["b"])
        n_in = sizes[-1] if sizes else (w[0] if len(w) == 2 else "n_in")
        if len(w) != 2 or w[0] != n_in:
            raise ValueError(
                f'params[{i}]["w"]: expected shape {_fmt([n_in, "n_out"])}, got {_fmt(w)}'
            )
        if b != (w[1],):
            raise ValueError(f'params[{i}]["b"]: expected shape {_fmt([w[1]])}, got {_fmt(b)}')
        sizes += [w[0], w[1]] if i == 0 else [w[1]]
    if sizes[-1] != 1:
        raise ValueError(f'params[-1]["w"]: expected one output cell, got shape {_fmt(w)}')
    return tuple(sizes)


def inputs(x: Any, n_in: int, name: str = "x") -> int:
    """Batch size of ``x`` after checking it is [batch, n_in]."""
    shape = _shape(x)
    if len(shape) != 2 or shape[1] != n_in:
        raise ValueError(f"{name}: expected shape {_fmt(['batch', n_in])}, got {_fmt(shape)}")
    return shape[0]


def pixels(x: Any, name: str = "x") -> None:
    """``x`` must hold real floats and, when concrete, pixel darknesses in [0, 1] (integer
    pixels 0..255 divided by 255). The dtype is static, checked inside ``jit`` too; the values
    only outside it, so no host transfer is added to a traced program."""
    dtype = np.dtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(
            f"{name}: expected real floats in [0, 1], got dtype {dtype} "
            "(integer pixels 0..255: divide by 255)"
        )
    if not isinstance(x, jax.core.Tracer):
        values = np.asarray(x)
        if values.size and not (values.min() >= 0 and values.max() <= 1):
            raise ValueError(
                f"{name}: pixels must be in [0, 1], got values from {values.min()} to "
                f"{values.max()} (integer pixels 0..255: divide by 255)"
            )


def learning_rate(lr: Any) -> None:
    """One learning rate, a scalar: vmap the function to train several."""
    shape = _shape(lr)
    if shape != ():
        raise ValueError(
            f"learning_rate: expected a scalar, got shape {_fmt(shape)}; to train several, "
            "vmap over it (jax.vmap(train, (None, 0, None)))"
        )


def hyperparameters(hparams: dict[str, Any]) -> None:
    """Known traced hyperparameters (deepmle.core.hyperparams), each a scalar."""
    for key, v in hparams.items():
        if key not in HYPERPARAMETERS:
            raise ValueError(
                f"unknown hyperparameter {key!r}; traced ones: {', '.join(HYPERPARAMETERS)}"
            )
        shape = _shape(v)
        if shape != ():
            raise ValueError(
                f"{key}: expected a scalar, got shape {_fmt(shape)}; to train several, "
                "vmap over it (jax.vmap(train, (None, 0, None)))"
            )


def labels(y: Any, n: int, name: str = "y") -> None:
    """``y`` must be [n] (one label per example, not [n, 1]) and, when concrete, 0 or 1."""
    shape = _shape(y)
    if shape != (n,):
        raise ValueError(
            f"{name}: expected shape {_fmt([n])} (one 0/1 label each), got {_fmt(shape)}"
        )
    if not isinstance(y, jax.core.Tracer):
        values = np.asarray(y)
        if values.size and not np.all((values == 0) | (values == 1)):
            odd = values[(values != 0) & (values != 1)].ravel()[:3]
            raise ValueError(f"{name}: labels must be 0 or 1, got {odd.tolist()}")


def logits(z: Any, name: str = "z") -> int:
    """Batch size of ``z`` after checking it is [batch]."""
    shape = _shape(z)
    if len(shape) != 1:
        raise ValueError(
            f"{name}: expected shape [batch] (one logit per example), got {_fmt(shape)}"
        )
    return shape[0]
