"""Names for the pytrees that flow through deepmle, defined once (as optax does)."""

from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array
Layer = dict[str, Array]
"""One layer: ``{"w": [n_in, n_out], "b": [n_out]}``."""
Params = list[Layer]
"""A network: one Layer per weight matrix, input side first.
θ^(h) = ``params[0]["w"]``, θ^(ŷ) = ``params[-1]["w"][:, 0]``; the index-0 bias unit is ``"b"``."""
Grads = Params
Metrics = dict[str, Any]
