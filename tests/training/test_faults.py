"""Faults a user meets, each one line and right: divergence named once with the stage's own key, values that
cannot work refused when the configuration is read, run files others can read, unreadable run configs."""

import logging
import os
import stat

import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import ConfigError, UsageError


def test_divergence_is_one_line_naming_the_stages_own_key_and_its_initial_rate(tmp_path, tiny_data_dir):
    args = ["train", "mnist_transfer", "--data-dir", str(tiny_data_dir), "--run-dir", str(tmp_path / "run"),
            "--epochs", "1", "--batch-size", "32", "--set", "optimizer=sgd", "--set", "lr_schedule=cosine",
            "--set", "finetune_learning_rate=1e12"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: loss became"), result.stderr
    assert "learning rate (1e+12)" in lines[0] and "--set finetune_learning_rate=1e+11" in lines[0]


def test_a_finite_loss_that_explodes_gets_one_warning(tmp_path, tiny_data_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="kerasapps"):
        kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, epochs=3, verbose=0,
                        set={"optimizer": "sgd", "learning_rate": 30.0, "init": "normal", "units": 64})
    warnings = [r.message for r in caplog.records if "times the first batch's" in r.message]
    assert len(warnings) == 1 and "lower learning_rate" in warnings[0]


@pytest.mark.parametrize("key", ["lr_drop", "lr_rate"])
def test_a_decay_factor_of_zero_is_refused_when_the_configuration_is_read(tmp_path, tiny_data_dir, key):
    with pytest.raises(ConfigError, match=f"'{key}' must be > 0.0; got '0'"):
        kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, set=[f"{key}=0"])
    assert not (tmp_path / "run").exists()


def test_runs_and_exports_are_readable_by_other_users(tmp_path, tiny_data_dir):
    """TF Serving in a container runs as another user: 0644 files and 0755 folders under umask 022."""
    previous = os.umask(0o022)
    try:
        run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
        export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    finally:
        os.umask(previous)
    files = [p for p in [*run.run_dir.rglob("*"), *export.parent.rglob("*")] if p.is_file() and p.name != ".lock"]
    folders = [export, *[p for p in export.rglob("*") if p.is_dir()]]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o755}
    for name in ("model.keras", "checkpoints/train/epoch-001.keras", "state.json"):
        assert stat.S_IMODE((run.run_dir / name).stat().st_mode) == 0o644, name


def test_an_unreadable_run_config_is_one_line_naming_the_file(tmp_path, tiny_data_dir):
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    (run.run_dir / "config.yaml").write_text("recipe: [mlp_mnist\nhparams: {")
    result = CliRunner().invoke(cli, ["evaluate", str(run.run_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert str(run.run_dir / "config.yaml") in result.stderr and "not a readable run configuration" in result.stderr


def test_the_not_finished_hint_names_the_recipe(tmp_path, tiny_data_dir):
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    (run.run_dir / "model.keras").unlink()
    with pytest.raises(UsageError, match=f"kerasapps train mlp_mnist --resume --run-dir {run.run_dir}"):
        kerasapps.export(run.run_dir, out=tmp_path / "models")


def test_an_export_removes_what_killed_exports_left_and_keeps_live_ones(tmp_path, tiny_data_dir):
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    model_dir = tmp_path / "models" / "mlp_mnist"
    dead, live = model_dir / ".tmp-1-999999999-abcd", model_dir / f".tmp-1-{os.getpid()}-efgh"
    for folder in (dead, live):
        (folder / "variables").mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"half")
    assert kerasapps.export(run.run_dir, out=tmp_path / "models").name == "1"
    assert not dead.exists() and live.exists()
