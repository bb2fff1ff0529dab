"""The results model: names that stay valid file names and labels that tell cells apart."""

import numpy as np

from deepmle import config as config_lib
from deepmle import data, sweep
from deepmle.analysis.load import load_run
from deepmle.runs import results, store


def test_group_names_stay_short_enough_for_a_file_name():
    assert results.group_name((32,)) == "h32" and results.group_name((64, 32)) == "h64-32"
    assert results.group_name((1234,) * 55) == "h1234x55"
    mixed = results.group_name(tuple(range(100, 160)))
    assert len(mixed) <= results.MAX_NAME and mixed != results.group_name(tuple(range(100, 161)))


def test_learning_rate_labels_tell_every_rate_apart():
    assert results.lr_labels([0.1, 1.0, 3.0]) == {0.1: "0.1", 1.0: "1", 3.0: "3"}
    labels = results.lr_labels([0.1, 0.1000001, 0.10000002])
    assert len(set(labels.values())) == 3 and labels[0.1] == "0.1"
    assert results.lr_labels([0.0011644223751767872])[0.0011644223751767872] == "0.00116"
    assert results.lr_labels([1000.0, 1e30, 1e-7]) == {1000.0: "1000", 1e30: "1e+30", 1e-7: "1e-07"}


def test_a_deeper_sweep_reads_back_from_disk_as_it_was_in_memory(small, tmp_path):
    """Three layers per member ([[6, 4]]): every array of the saved group, read back by
    read_group and by load_run, equals what the sweep held in memory."""
    config = config_lib.Config(
        model=config_lib.ModelConfig(hidden_sizes=((6, 4),)),
        train=config_lib.TrainConfig(learning_rate=(0.3, 1.0), seeds=2, epochs=1,
                                     batch_size=128),
    )  # fmt: skip
    out = tmp_path / "run"
    (mem,) = sweep.run(config, small, out).results.groups
    saved, why = store.read_group(out, config, (6, 4), data.sha256(small))
    assert why == ""
    (loaded,) = load_run(out).groups
    for g in (saved, loaded):
        assert g.hidden == (6, 4) and len(g.params) == 3
        arrays, expected = results.group_arrays(g), results.group_arrays(mem)
        assert arrays.keys() == expected.keys()
        for k, v in expected.items():
            np.testing.assert_array_equal(arrays[k], v, err_msg=k)
