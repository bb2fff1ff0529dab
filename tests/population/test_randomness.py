"""Host randomness: one stream per seed and purpose, independent of how many seeds run."""

import numpy as np

from deepmle.population import randomness


def test_streams_are_deterministic_and_split_by_purpose():
    a = randomness.init_normals(3, (784, 8, 1))
    b = randomness.init_normals(3, (784, 8, 1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [x.shape for x in a] == [(784, 8), (8, 1)] and a[0].dtype == np.float32
    init = randomness.stream(3, randomness.INIT).standard_normal(4)
    shuffle = randomness.stream(3, randomness.SHUFFLE).standard_normal(4)
    assert not np.allclose(init, shuffle)


def test_seeds_differ_and_do_not_depend_on_each_other():
    orders = {s: randomness.epoch_orders(s, 1000, 100, 3) for s in range(4)}
    assert not np.array_equal(orders[0], orders[1])
    # drawing seed 2 alone gives what it gives beside others
    assert np.array_equal(randomness.epoch_orders(2, 1000, 100, 3), orders[2])


def test_every_epoch_is_a_fresh_permutation():
    orders = randomness.epoch_orders(0, 1000, 100, 4)
    assert orders.shape == (4, 10, 100) and orders.dtype == np.int32
    for e in range(4):
        assert len(np.unique(orders[e])) == 1000
    for e in range(1, 4):
        assert not np.array_equal(orders[e], orders[0])


def test_ragged_tail_sits_out():
    orders = randomness.epoch_orders(0, 1050, 100, 2)
    assert orders.shape == (2, 10, 100)
    assert len(np.unique(orders[0])) == 1000 and orders.max() < 1050


def test_every_seed_and_purpose_has_a_stream_of_its_own():
    """E.g. seed s's shuffle is never seed s+1's initialisation (as with [seed + purpose])."""
    heads = {
        (seed, purpose): tuple(randomness.stream(seed, purpose).integers(0, 2**63, 4))
        for seed in range(16)
        for purpose in (randomness.INIT, randomness.SHUFFLE)
    }
    assert len(set(heads.values())) == len(heads)


def test_seeds_start_from_different_weights_of_their_own():
    sizes = (784, 8, 1)
    first = {s: randomness.init_normals(s, sizes) for s in range(4)}
    for s in range(1, 4):
        for layer, seed_0 in zip(first[s], first[0], strict=True):
            assert not np.allclose(layer, seed_0)
    again = randomness.init_normals(2, sizes)  # alone, as beside the others
    assert all(np.array_equal(a, b) for a, b in zip(again, first[2], strict=True))
