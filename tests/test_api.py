"""The Python API: the commands as functions with real signatures, usable without the CLI."""

import inspect
import pydoc

import pytest

import kerasapps
from kerasapps.core.errors import ConfigError


def test_help_of_train_shows_its_parameters_and_defaults():
    text = pydoc.render_doc(kerasapps.train, renderer=pydoc.plaintext)
    for fragment in ("epochs: 'int | None' = None", "batch_size", "steps_per_epoch", "set: 'Assignments' = ()",
                     "run_dir", "data_dir", "resume: 'bool' = False", "smoke: 'bool' = False",
                     "strategy='default'", "per replica"):
        assert fragment in text, fragment
    assert list(inspect.signature(kerasapps.train).parameters)[:2] == ["recipe", "epochs"]


def test_train_from_python_with_keyword_options(tiny_data_dir, tmp_path):
    run = kerasapps.train("mlp_mnist", epochs=1, smoke=True, run_dir=tmp_path / "run", data_dir=tiny_data_dir,
                          set="units=16", seed=7, verbose=0)
    assert run.run_dir == tmp_path / "run" and (run.run_dir / "model.keras").is_file()
    assert 0.0 <= run.metrics["test"]["accuracy"] <= 1.0
    config = (run.run_dir / "config.yaml").read_text()
    assert "units: 16" in config and "seed: 7" in config and "epochs: 1" in config
    assert kerasapps.evaluate(run.run_dir, data_dir=tiny_data_dir)["metrics"]["accuracy"] == pytest.approx(
        run.metrics["test"]["accuracy"])


def test_an_unknown_key_in_set_is_one_line_naming_the_key(tiny_data_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'unit'.*did you mean units"):
        kerasapps.train("mlp_mnist", smoke=True, run_dir=tmp_path / "run", data_dir=tiny_data_dir, set={"unit": 3})
    assert not (tmp_path / "run").exists()
