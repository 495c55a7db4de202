"""`kerasapps tune`: random search on a validation split, best_config.yaml that trains, resume, no test split."""

import dataclasses
import json

import pytest
import yaml
from click.testing import CliRunner

from kerasapps.cli.main import cli
from kerasapps.core.errors import ConfigError, UsageError
from kerasapps.tools.tune import tune

CHEAP = ["steps_per_epoch=3", "units=32"]
SPACE = {"learning_rate": {"min": 1e-4, "max": 1e-1, "log": True}, "batch_size": [16, 32]}


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def test_three_trial_search_writes_a_best_config_that_trains(tmp_path, tiny_data_dir):
    out = tmp_path / "search"
    result = invoke("tune", "mlp_mnist", "--trials", 3, "--max-epochs", 1, "--out", out, "--json",
                    "--data-dir", tiny_data_dir, *[a for kv in CHEAP for a in ("--set", kv)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scores = [row["score"] for row in report["trials"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert report["objective"] == "val_accuracy"
    assert set(report["best"]["hparams"]) == {"learning_rate", "batch_size", "l2", "dropout", "units"}

    config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert config["recipe"] == "mlp_mnist"
    for key, value in report["best"]["hparams"].items():
        assert config["hparams"][key] == pytest.approx(value)
    trained = invoke("train", "mlp_mnist", "--config", out / "best_config.yaml", "--epochs", 1,
                     "--steps-per-epoch", 2, "--run-dir", tmp_path / "run", "--data-dir", tiny_data_dir)
    assert trained.exit_code == 0, trained.output
    ran = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["hparams"]
    assert ran["learning_rate"] == pytest.approx(report["best"]["hparams"]["learning_rate"])


class _Tripwire:
    """Stands in for the test split: any use of it fails the test."""

    def __init__(self, reads):
        self.reads = reads

    def __getattr__(self, name):
        self.reads.append(name)
        raise AssertionError(f"tune read the test split ({name})")

    def __len__(self):
        self.reads.append("len")
        raise AssertionError("tune read the test split (len)")

    def __getitem__(self, index):
        self.reads.append("getitem")
        raise AssertionError("tune read the test split (getitem)")


def test_tune_never_reads_the_test_split_and_resumes(tmp_path, tiny_data_dir, caplog):
    import logging

    from kerasapps.recipes.mlp import MLP_MNIST

    reads = []

    def load_data(hp, ctx):
        splits = dict(MLP_MNIST.load_data(hp, ctx))
        splits["test"] = (_Tripwire(reads), _Tripwire(reads))
        return splits

    guarded = dataclasses.replace(MLP_MNIST, name="mlp_guarded", load_data=load_data)
    options = dict(max_epochs=1, space=SPACE, out=tmp_path / "s", overrides=CHEAP, data_dir=tiny_data_dir,
                   validation_split=0.2)
    first = tune(guarded, trials=1, **options)
    assert [row["trial"] for row in first["trials"]] == ["0"]
    trial0 = (tmp_path / "s" / "search" / "trial_0" / "trial.json").read_text()

    logger = logging.getLogger("kerasapps")  # the CLI's tests may have stopped it propagating to caplog's root
    logger.addHandler(caplog.handler)
    caplog.clear()
    try:
        with caplog.at_level(logging.INFO, logger="kerasapps"):
            resumed = tune(guarded, trials=2, **options)  # same directory: keeps trial 0, runs only trial 1
    finally:
        logger.removeHandler(caplog.handler)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    assert len(progress) == 1 and progress[0].startswith("trial 2 of 2: ")  # the one trial left to run
    assert f"(best so far: val_accuracy {first['best']['score']:.4f})" in progress[0]
    assert sorted(row["trial"] for row in resumed["trials"]) == ["0", "1"]
    assert (tmp_path / "s" / "search" / "trial_0" / "trial.json").read_text() == trial0
    assert reads == []

    with pytest.raises(UsageError, match="different space"):
        tune(guarded, trials=2, **{**options, "space": {"learning_rate": [0.01, 0.1]}})


@pytest.mark.parametrize("space, fragment", [
    ({"learning_rat": [0.1]}, "unknown key 'learning_rat'"),
    ({"learning_rate": {"min": 0.0, "max": 0.1, "log": True}}, "log scale needs min > 0"),
    ({"batch_size": {"min": 64, "max": 32}}, "need min < max"),
    ({"optimizer": ["adam", "lbfgs"]}, "must hold mini-batch optimizers .* not full-batch lbfgs"),
])
def test_bad_space_is_a_config_error(tmp_path, tiny_data_dir, space, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tune("mlp_mnist", trials=1, space=space, out=tmp_path / "s", data_dir=tiny_data_dir)
    assert not (tmp_path / "s").exists()


def test_bad_space_file_is_a_one_line_error(tmp_path, tiny_data_dir):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {min: 1.0e-4, max: 1.0e-1, log: true}\nwidth: [1, 2]\n")
    result = invoke("tune", "mlp_mnist", "--trials", 1, "--space", space, "--out", tmp_path / "s",
                    "--data-dir", tiny_data_dir)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'width' in the search space" in lines[0]


def test_a_full_batch_optimizer_is_refused_before_anything_is_written(tmp_path, tiny_data_dir):
    with pytest.raises(ConfigError, match="optimizer=lbfgs trains full-batch and only `kerasapps train` drives it"):
        tune("mlp_mnist", trials=1, out=tmp_path / "search", overrides=["optimizer=lbfgs"], data_dir=tiny_data_dir)
    assert not (tmp_path / "search").exists()
