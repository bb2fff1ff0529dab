from pathlib import Path

import pytest

from deepmle import config as config_lib
from deepmle.cli import main

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = config_lib.load(path)
    assert config.name == path.stem
    assert all(shape[0] == 784 and shape[-1] == 1 for shape in config.shapes)


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
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_config_is_one_line_and_exit_2(name, tmp_path, capsys):
    text, message = BAD[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet", "--no-cache"])
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
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(argv, message, capsys):
    argv = [str(CONFIGS / "seed.toml") if a == "CONFIG" else a for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err
