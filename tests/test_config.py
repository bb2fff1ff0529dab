import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle.cli import main

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = config_lib.load(path)
    assert config.name == path.stem
    assert all(shape[0] == 784 and shape[-1] == 1 for shape in config.shapes(784))


def test_sweep_config_is_a_grid():
    config = config_lib.load(CONFIGS / "sweep.toml")
    assert config.model.hidden_sizes == ((8,), (16,), (32,), (64,), (128,))
    assert config.train.learning_rate == (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    assert config.is_sweep


def test_overrides_parse_toml_values_and_bare_words():
    config = config_lib.load(
        CONFIGS / "seed.toml",
        [
            "train.learning_rate=[0.1, 0.2]",
            "model.hidden_sizes=[[4], [8, 4]]",
            "data.source=npz",
            "data.path=/x/mnist.npz",
            "train.epochs=3",
        ],
    )
    assert config.train.learning_rate == (0.1, 0.2)
    assert config.model.hidden_sizes == ((4,), (8, 4))
    assert config.data.source == "npz" and config.train.epochs == 3


def test_resolved_config_round_trips(tmp_path):
    config = config_lib.load(CONFIGS / "sweep.toml", ['data.path="a \\"quoted\\" path"'])
    path = tmp_path / "sweep.toml"
    path.write_text(config_lib.to_toml(config))
    assert config_lib.load(path) == config


BAD = {
    "broken TOML": ("[train\nepochs = 1", "not valid TOML"),
    "unknown key": (
        "[train]\nlearning_rat = 0.1",
        "unknown key [train] learning_rat (did you mean 'learning_rate'?)",
    ),
    "unknown section": ("[trian]\nepochs = 1", "unknown section [trian] (did you mean 'train'?)"),
    "wrong type": ('[train]\nepochs = "ten"', "[train] epochs: must be an integer"),
    "bool for int": ("[train]\nseeds = true", "[train] seeds: must be an integer"),
    "negative learning rate": (
        "[train]\nlearning_rate = -0.1",
        "[train] learning_rate: must be > 0",
    ),
    "zero hidden units": (
        "[model]\nhidden_sizes = [0]",
        "[model] hidden_sizes: hidden sizes must be >= 1",
    ),
    "zero seeds": ("[train]\nseeds = 0", "[train] seeds: must be >= 1"),
    "momentum swept where no optimizer reads it": (
        '[train]\noptimizer = ["sgd", "adam"]\nmomentum = [0.0, 0.9]',
        "[train] momentum: swept, but no optimizer of this run reads it (optimizer 'sgd', "
        "'adam'; momentum is read by 'momentum')",
    ),
    "distribution on a static key": (
        "[train]\nbatch_size = { log_uniform = [16, 256], samples = 4 }",
        "[train] batch_size: cannot be drawn from a distribution: only the traced "
        "hyperparameters (learning_rate, prior_std, momentum, init_scale) can",
    ),
    "zero prior_std": ("[train]\nprior_std = [1.0, 0.0]", "[train] prior_std: must be in (0, inf]"),
    "negative prior_std": ("[train]\nprior_std = -1.0", "[train] prior_std: must be in (0, inf]"),
    "momentum of one": ("[train]\nmomentum = [0.5, 1.0]", "[train] momentum: must be in [0, 1)"),
    "zero init_scale": ("[train]\ninit_scale = 0", "[train] init_scale: must be in (0, inf)"),
    "draws of unequal samples": (
        "[train]\nlearning_rate = { log_uniform = [0.1, 1.0], samples = 4 }\n"
        "prior_std = { log_uniform = [0.1, 1.0], samples = 5 }",
        "drawn jointly, one value of each per cell, so they need the same samples",
    ),
    "log-uniform from zero": (
        "[train]\nmomentum = { log_uniform = [0.0, 0.9], samples = 4 }",
        "log_uniform needs low > 0",
    ),
    "unknown optimizer": ('[train]\noptimizer = "adamw"', "did you mean 'adam'?"),
    "bad fraction": ("[data]\nvalidation_fraction = 1.5", "between 0 and 1"),
    "npz without path": ('[data]\nsource = "npz"', "needs the path"),
    "batch larger than data": (
        "[train]\nbatch_size = 100000",
        "batch_size 100000 is larger than the 11430",
    ),
    "missing data file": (
        '[data]\nsource = "npz"\npath = "/no/such/mnist.npz"',
        "data file not found: /no/such/mnist.npz",
    ),
    "infinite learning rate": ("[train]\nlearning_rate = inf", "must be finite, got inf"),
    "nan learning rate": ("[train]\nlearning_rate = [0.1, nan]", "must be finite, got nan"),
    "no validation examples": (
        "[data]\nvalidation_fraction = 0.00001",
        "validation_fraction 1e-05 leaves 0 of 12700 training examples for validation",
    ),
    "no training examples": ("[data]\nvalidation_fraction = 0.99999", "and 0 for training"),
    "bad search key": (
        "[train]\nlearning_rate = { log_uniform = [0.1, 1.0], sample = 4 }",
        "unknown search key 'sample' (did you mean 'samples'?)",
    ),
    "search bounds reversed": (
        "[train]\nlearning_rate = { log_uniform = [1.0, 0.1], samples = 4 }",
        "log_uniform needs low < high",
    ),
    "unknown activation": ('[model]\nactivation = "softmax"', "unknown value 'softmax'"),
    "a shape twice": ("[model]\nhidden_sizes = [[8], [8]]", "lists shape [8] twice"),
    "no activations": ("[model]\nactivation = []", "[model] activation: must not be an empty list"),
    "an activation twice": (
        '[model]\nactivation = ["tanh", "sigmoid", "tanh"]',
        "[model] activation: lists 'tanh' twice",
    ),
    "an unknown activation in a list": (
        '[model]\nactivation = ["tanh", "softmax"]',
        "[model] activation: unknown value 'softmax'",
    ),
    "no batch sizes": ("[train]\nbatch_size = []", "[train] batch_size: must not be an empty list"),
    "a batch size twice": ("[train]\nbatch_size = [64, 64]", "[train] batch_size: lists 64 twice"),
    "a bad batch size in a list": ("[train]\nbatch_size = [64, 0]", "batch_size: must be >= 1"),
    "no optimizers": ("[train]\noptimizer = []", "[train] optimizer: must not be an empty list"),
    "an optimizer twice": (
        '[train]\noptimizer = ["adam", "adam"]',
        "[train] optimizer: lists 'adam' twice",
    ),
    "an unknown optimizer in a list": (
        '[train]\noptimizer = ["sgd", "adamw"]',
        "[train] optimizer: unknown value 'adamw' (did you mean 'adam'?)",
    ),
    "a batch size drawn": (
        "[train]\nbatch_size = { uniform = [16, 64], samples = 2 }",
        "changes the compiled program, so it can only be a value or a list",
    ),
    "a learning rate twice": (
        "[train]\nlearning_rate = [0.5, 0.5]",
        "lists learning rate 0.5 twice",
    ),
    "learning rates equal in float32": (
        "[train]\nlearning_rate = [0.1, 0.1000000001]",
        "the same in float32",
    ),
    "learning rate 0 in float32": ("[train]\nlearning_rate = 1e-320", "normal float32 number"),
    "learning rate inf in float32": ("[train]\nlearning_rate = 1e39", "normal float32 number"),
    "random draws equal in float32": (
        "[train]\nlearning_rate = { log_uniform = [0.5, 0.6], samples = 2000 }",
        "of the 2000 draws equal another in float32",
    ),
    "the docs' range (docs/cli.md), 100,000 draws": (
        "[train]\nlearning_rate = { log_uniform = [1e-3, 10.0], samples = 100000 }",
        "equal another in float32",
    ),
    "an array of [[train]] tables": (
        "[[train]]\nepochs = 2",
        "bad.toml: [train] must be one table",
    ),
    "a search too large": (
        "[train]\nlearning_rate = { log_uniform = [0.1, 1.0], samples = 10000000 }",
        "samples must be an integer from 1 to 100,000",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_is_one_line_and_exit_2(name, tmp_path, capsys):
    text, message = BAD[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("deepmle: error: ")
    assert message in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "/no/such/config.toml"], "config file not found"),
        (["run", "CONFIG", "--set", "train.epochs"], "expected section.key=value"),
        (["run", "CONFIG", "--set", "train.epoch=2"], "did you mean 'epochs'?"),
        (["run", "CONFIG", "--set", "train.learning_rate=-1"], "must be > 0"),
        (["run"], "the following arguments are required: config"),
        (["fly"], "invalid choice: 'fly'"),
        (["plot", "/no/such/run"], "not a finished deepmle run directory"),
        (
            ["run", "CONFIG", "--set", "train.learning_rate=inf"],
            "--set train.learning_rate=inf: [train] learning_rate: must be finite",
        ),
        (
            ["run", "CONFIG", "--set", "train.epochs=zero"],
            "--set train.epochs=zero: [train] epochs: must be an integer",
        ),
        (
            ["run", "CONFIG", "--set", "trian.epochs=2"],
            "--set trian.epochs=2: unknown section [trian] (did you mean 'train'?)",
        ),
        (["run", "CONFIG", "--cache-dir", str(CONFIGS / "seed.toml")], "cache directory"),
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(argv, message, capsys):
    argv = [str(CONFIGS / "seed.toml") if a == "CONFIG" else a for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err


def test_a_byte_order_mark_is_read_as_utf8(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (CONFIGS / "seed.toml").read_bytes())
    assert config_lib.load(path).train.learning_rate == (1.0,)


def test_random_search_draws_once_from_its_seed_and_records_the_draws(tmp_path):
    text = (
        "[train]\nlearning_rate = { log_uniform = [1e-3, 10.0], samples = 16 }\nsearch_seed = 3\n"
    )
    path = tmp_path / "in" / "search.toml"
    path.parent.mkdir()
    path.write_text(text)
    a, b = config_lib.load(path), config_lib.load(path)
    lrs = a.train.learning_rate
    assert lrs == b.train.learning_rate and len(lrs) == 16 and list(lrs) == sorted(lrs)
    assert all(1e-3 <= lr <= 10.0 for lr in lrs) and lrs[0] < 0.01 < 1.0 < lrs[-1]
    other = config_lib.load(path, ["train.search_seed=4"]).train.learning_rate
    assert other != lrs
    resolved = tmp_path / "search.toml"
    resolved.write_text(config_lib.to_toml(a))
    assert (
        "drawn log-uniformly from [0.001, 10.0], 16 samples, search_seed 3" in resolved.read_text()
    )
    assert config_lib.load(resolved) == a  # the run directory alone reproduces the draws


def test_strings_with_quotes_and_control_characters_round_trip(tmp_path):
    config = config_lib.load(CONFIGS / "seed.toml", ['data.path="a \\"quoted\\"\\npath"'])
    assert config.data.path == 'a "quoted"\npath'
    path = tmp_path / "seed.toml"
    path.write_text(config_lib.to_toml(config))
    assert config_lib.load(path) == config


def test_an_array_of_tables_is_blamed_on_the_file_not_on_a_set(tmp_path, capsys):
    path = tmp_path / "arr.toml"
    path.write_text("[[train]]\nepochs = 2\n")
    assert main(["run", str(path), "--set", "train.seeds=2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "arr.toml: [train] must be one table" in err and "--set" not in err


def test_an_unused_search_seed_is_the_same_run(tmp_path, capsys):
    """search_seed acts only through a search's draws: with a list of learning rates it
    changes nothing, so the second run resumes instead of being "a different config"."""
    out = tmp_path / "run"
    base = ["run", str(CONFIGS / "seed.toml"), "--out", str(out), "--no-plots", "--quiet",
            "--set", "train.epochs=1", "--set", "train.seeds=2"]  # fmt: skip
    assert main(base) == 0
    assert main([*base, "--set", "train.search_seed=5"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("momentum", "ok"), [(0.0, True), (0.99, True), (1.0, False), (-0.1, False)]
)
def test_momentum_must_be_below_one(tmp_path, momentum, ok):
    """At decay 1 the velocity never forgets a gradient and grows without bound: refused."""
    path = tmp_path / "m.toml"
    path.write_text(f'[train]\noptimizer = "momentum"\nmomentum = {momentum}\n')
    if ok:
        assert config_lib.load(path).train.momentum == (momentum,)
    else:
        with pytest.raises(
            config_lib.ConfigError, match=r"\[train\] momentum: must be in \[0, 1\)"
        ):
            config_lib.load(path)


NASTY = ["del\x7fchar", "".join(map(chr, range(32))) + "\x7f", 'q"uo\'te', "back\\slash\\",
         "ünï😀code\u2028\u0085", '\\"\\u0041\\n', "tab\there"]  # fmt: skip


@pytest.mark.parametrize("text", NASTY)
def test_every_string_field_round_trips_through_the_written_toml(text, tmp_path):
    """What deepmle writes it reads back: control characters (DEL too), quotes, backslashes
    and unicode in the free-form string (the others are choices among plain words), and in
    the name the header comment shows."""
    base = config_lib.load(CONFIGS / "seed.toml")
    config = replace(base, data=replace(base.data, path=text), name=f"n\n[x]{text}")
    path = tmp_path / "c.toml"
    path.write_bytes(config_lib.to_toml(config).encode())
    assert replace(config_lib.load(path), name=config.name) == config


def _changed(section: str, **values) -> config_lib.Config:
    base = replace(config_lib.load(CONFIGS / "seed.toml"), name="nb")
    if section == "search":
        base = replace(base, train=replace(base.train, learning_rate=(0.1, 0.2), epochs=3))
    return replace(base, **{section: replace(getattr(base, section), **values)})


CHANGED = {
    "lr nan": (_changed("train", learning_rate=(math.nan,)), "learning_rate: must be finite"),
    "lr -1": (_changed("train", learning_rate=(-1.0,)), "learning_rate: must be > 0"),
    "hidden 0": (_changed("model", hidden_sizes=((0,),)), "must be >= 1, got 0"),
    "hidden twice": (_changed("model", hidden_sizes=((8,), (8,))), "shape [8] twice"),
    "platt": (_changed("train", calibrate="platt"), "calibrate: unknown value 'platt'"),
    "min_epochs": (_changed("search", method="halving", min_epochs=3), "must be below"),
    "eta 1": (_changed("search", method="halving", eta=1), "eta: must be >= 2, got 1"),
    "min_epochs 0": (_changed("search", method="halving", min_epochs=0), "min_epochs: must be >="),
    "seeds 0": (_changed("train", seeds=0), "seeds: must be >= 1, got 0"),
    "epochs 0": (_changed("train", epochs=0), "epochs: must be >= 1, got 0"),
}


@pytest.mark.parametrize("case", CHANGED, ids=str)
def test_a_config_changed_in_code_is_validated_by_the_file_rules(case):
    config, message = CHANGED[case]
    with pytest.raises(config_lib.ConfigError, match=f"config .nb.: .*{re.escape(message)}"):
        config_lib.validate(config)


def test_validate_keeps_a_valid_config_and_normalises_plain_values():
    config = _changed("train", learning_rate=0.25)  # a float where a tuple belongs
    assert config_lib.validate(config).train.learning_rate == (0.25,)
    good = config_lib.load(CONFIGS / "sweep.toml")
    assert config_lib.validate(good) == good


def test_cells_are_the_product_of_the_lists_and_joint_draws_go_together():
    """Two lists give their product; three distributions give one draw of each per cell,
    the same from the same search_seed, and the resolved config reads back to them."""
    grid = config_lib.from_dict(
        {"train": {"learning_rate": [0.3, 1.0], "prior_std": [1.0, 0.1, math.inf]}}
    )
    cells = grid.cells()
    assert len(cells["learning_rate"]) == 6 and grid.swept() == ("learning_rate", "prior_std")
    pairs = set(zip(cells["learning_rate"].tolist(), cells["prior_std"].tolist(), strict=True))
    assert pairs == {(lr, s) for lr in (0.3, 1.0) for s in (1.0, 0.1, math.inf)}
    raw = {"optimizer": "momentum", "search_seed": 3,
           "learning_rate": {"log_uniform": [0.01, 3.0], "samples": 5},
           "prior_std": {"log_uniform": [0.1, 10.0], "samples": 5},
           "momentum": {"uniform": [0.0, 0.9], "samples": 5}}  # fmt: skip
    drawn = config_lib.from_dict({"train": raw})
    assert drawn.n_cells == 5 and drawn.train.drawn == ("learning_rate", "prior_std", "momentum")
    assert drawn == config_lib.from_dict({"train": dict(raw)})
    assert drawn.train.learning_rate == tuple(sorted(drawn.train.learning_rate))
    again = config_lib.from_dict(tomllib.loads(config_lib.to_toml(drawn)))
    assert again.cells().keys() == drawn.cells().keys()
    for k, v in drawn.cells().items():
        np.testing.assert_array_equal(again.cells()[k], v)
    assert config_lib.from_dict({"train": {**raw, "search_seed": 4}}) != drawn


def test_a_neutral_hyperparameter_leaves_the_identity_as_it_was():
    """Writing a key at its neutral value (no prior, scale 1) is the same run as before the
    key existed; a value away from it is another run."""
    from deepmle.runs import store

    plain = config_lib.from_dict({"train": {"learning_rate": [0.5]}})
    spelled = config_lib.from_dict({"train": {"learning_rate": [0.5], "prior_std": math.inf,
                                              "init_scale": 1.0}})  # fmt: skip
    assert config_lib.to_dict(plain) == config_lib.to_dict(spelled)
    assert "prior_std" not in config_lib.to_dict(plain)["train"]
    assert store.identity(plain) == store.identity(spelled)
    prior = config_lib.from_dict({"train": {"learning_rate": [0.5], "prior_std": 1.0}})
    assert store.identity(prior) != store.identity(plain)
