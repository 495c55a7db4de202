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


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
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
    assert set(config["hparams"]) == {*report["best"]["hparams"]}  # units=32 was searched too: the trial's value
    assert config["search"]["steps_per_epoch"] == 3 and config["search"]["max_epochs"] == 1  # the trials' caps only
    trained = invoke("train", "mlp_mnist", "--config", out / "best_config.yaml", "--epochs", 1,
                     "--steps-per-epoch", 2, "--run-dir", tmp_path / "run", "--data-dir", tiny_data_dir)
    assert trained.exit_code == 0, trained.output
    ran = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["hparams"]
    assert ran["learning_rate"] == pytest.approx(report["best"]["hparams"]["learning_rate"])


def test_smoke_search_checks_a_space_in_seconds_and_its_caps_stay_out_of_the_config(tmp_path, tiny_data_dir,
                                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {min: 1.0e-3, max: 1.0e-1, log: true}\nbatch_size: [16, 32]\n")
    args = ["tune", "mlp_mnist", "--smoke", "--trials", 5, "--space", space, "--max-epochs", 3,
            "--data-dir", tiny_data_dir, "--set", "steps_per_epoch=3", "--set", "units=32", "--set", "dropout=0.1"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "smoke search passed" in result.stdout and "tune/mlp_mnist-smoke/best_config.yaml" in result.stdout
    out = tmp_path / "tune" / "mlp_mnist-smoke"
    report = json.loads((out / "results.json").read_text())
    assert len(report["trials"]) == 2  # at most two trials, whatever --trials says
    assert all(row["metrics"]["best_epoch"] == 1 for row in report["trials"])  # one epoch each, not --max-epochs

    config = yaml.safe_load((out / "best_config.yaml").read_text())
    best = report["best"]["hparams"]
    assert config["hparams"] == {"learning_rate": pytest.approx(best["learning_rate"]),
                                 "batch_size": best["batch_size"], "units": 32, "dropout": 0.1}
    search = config["search"]
    smoke = search["smoke"]
    assert (smoke["epochs"], smoke["steps_per_epoch"]) == (1, 2)
    assert 0 < smoke["train_examples"] <= 256 and 0 < smoke["validation_examples"] <= 64  # the smoke slice
    assert (search["max_epochs"], search["steps_per_epoch"], search["validation_split"]) == (3, 3, 0.1)
    assert search["trials"] == 2 and search["best_trial"] == report["best"]["trial"]

    trained = invoke("train", "mlp_mnist", "--config", out / "best_config.yaml", "--smoke", "--run-dir",
                     tmp_path / "run", "--data-dir", tiny_data_dir)
    assert trained.exit_code == 0, trained.output
    ran = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["hparams"]
    assert ran["learning_rate"] == pytest.approx(best["learning_rate"]) and ran["units"] == 32
    assert ran["steps_per_epoch"] is None and ran["epochs"] == "auto"  # the recipe's own: no search cap carried

    space.write_text("learning_rate: [0.01, 0.05]\n")  # a smoke search is replaced, not resumed
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert set(yaml.safe_load((out / "best_config.yaml").read_text())["search"]["space"]) == {"learning_rate"}
    full = invoke("tune", "mlp_mnist", "--trials", 1, "--out", out, "--data-dir", tiny_data_dir)
    assert full.exit_code == 2 and "holds a --smoke search" in full.stderr


def test_tune_needs_trials_unless_smoke():
    result = invoke("tune", "mlp_mnist")
    assert result.exit_code == 2 and "give --trials N" in result.stderr and "--smoke" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
