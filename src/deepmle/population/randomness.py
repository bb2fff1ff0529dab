"""Where a sweep's random numbers come from: numpy on the host, one stream per seed and purpose.

Seed s draws its initial weights from the stream (s, INIT) and its minibatch orders from the
stream (s, SHUFFLE), each a ``numpy.random.SeedSequence`` of its own. So a seed's numbers do not
depend on how many seeds run beside it, a re-run is bitwise identical, and the learning rates
of a seed share both its initialisation and its minibatches (pairing them for comparison).

Drawn here rather than inside the compiled program because on XLA:CPU in-program threefry
normals and a per-epoch ``jax.random.permutation`` (a sort) cost compile and run time
(experiments/benchmark.py); the gather by index still runs on the device, inside the scan.
``deepmle.train.make_train`` keeps the JAX-key path for users who jit and vmap over keys.
"""

import itertools
from collections.abc import Sequence

import numpy as np

INIT, SHUFFLE, CALIBRATION = 0, 1, 2
"""The purposes a seed's randomness is split into."""


def stream(seed: int, purpose: int) -> np.random.Generator:
    """The generator of ``seed`` for ``purpose`` (INIT, SHUFFLE or CALIBRATION)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), purpose])))


def init_normals(seed: int, layer_sizes: Sequence[int]) -> list[np.ndarray]:
    """Standard normals ``[n_in, n_out]`` (float32) per layer: seed's initial weights before the
    LeCun scaling of ``deepmle.core.model.from_normals``."""
    rng = stream(seed, INIT)
    return [
        rng.standard_normal((a, b), dtype=np.float32) for a, b in itertools.pairwise(layer_sizes)
    ]


def epoch_orders(seed: int, n_train: int, batch_size: int, epochs: int) -> np.ndarray:
    """int32 [epochs, steps, batch]: every epoch a fresh permutation of the training examples,
    cut into whole minibatches (the last n_train mod batch_size of each shuffle sit out)."""
    rng = stream(seed, SHUFFLE)
    steps = n_train // batch_size
    return np.stack(
        [
            rng.permutation(n_train)[: steps * batch_size].reshape(steps, batch_size)
            for _ in range(epochs)
        ]
    ).astype(np.int32)


def calibration_key(seed: int) -> np.ndarray:
    """uint32 [2]: the JAX key data (threefry) from which ``seed``'s members draw the labels
    of the calibration reference (deepmle.calibration.ece_reference), from the stream
    (seed, CALIBRATION). The learning rates of a seed share it, as they share its minibatches."""
    return stream(seed, CALIBRATION).integers(0, 2**32, 2, dtype=np.uint32)
