"""The results model: names that stay valid file names and labels that tell cells apart."""

from deepmle.runs import results


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
