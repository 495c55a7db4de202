"""An export's model name: a second run of the same recipe with another signature (a regression after a classifier
of another table) is refused under the recipe's name and exported beside it with ``--name``; and a run's Keras
model loads in another program through ``kerasapps.load_model``, where ``keras.saving.load_model`` alone cannot
find the canon's layers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import UsageError
from kerasapps.savedmodel.formats import EXPORT_INFO


@pytest.mark.slow  # trains and exports several runs (the full suite runs it)
def test_another_signature_needs_its_own_name(real_tables, tmp_path):
    wine = kerasapps.train("mlp_tabular", data=str(real_tables["wine"]), run_dir=tmp_path / "wine", verbose=0,
                           epochs=2)
    diabetes = kerasapps.train("mlp_tabular", data=str(real_tables["diabetes"]), run_dir=tmp_path / "diabetes",
                               verbose=0, epochs=2, set={"objective": "regression"})
    first = kerasapps.export(wine.run_dir)
    again = kerasapps.export(wine.run_dir)  # the same signature: the next version
    assert (first.name, again.name) == ("1", "2")
    with pytest.raises(UsageError, match=r"saved_models/mlp_tabular version 2 takes and answers otherwise .*pass "
                                         r"another --name \(it defaults to the recipe's\)"):
        kerasapps.export(diabetes.run_dir)
    assert sorted(p.name for p in (tmp_path / "saved_models" / "mlp_tabular").iterdir()) == ["1", "2"]
    done = CliRunner().invoke(cli, ["export", str(diabetes.run_dir), "--name", "diabetes"])
    assert done.exit_code == 0, done.output
    info = json.loads((tmp_path / "saved_models" / "diabetes" / "1" / EXPORT_INFO).read_text())
    assert info["recipe"] == "mlp_tabular" and "prediction" in info["signature"]
    answers = kerasapps.predict(tmp_path / "saved_models" / "diabetes", [real_tables["diabetes"]])
    assert len(answers) == 442 and all(np.isfinite(row["prediction"]) for row in answers)
    forced = kerasapps.export(diabetes.run_dir, force=True)  # the user's explicit choice: the next version
    assert forced.name == "3" and "prediction" in json.loads((forced / EXPORT_INFO).read_text())["signature"]
    bad = CliRunner().invoke(cli, ["export", str(diabetes.run_dir), "--name", "../up"])
    assert bad.exit_code == 2 and "a model name is letters, digits" in bad.stderr


@pytest.mark.slow  # trains and exports several runs (the full suite runs it)
def test_a_runs_model_loads_in_another_program(recipe_data_dir, tmp_path):
    run = kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "run", data_dir=recipe_data_dir, smoke=True,
                          verbose=0)
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    plain = subprocess.run([sys.executable, "-c", "import keras, sys; keras.saving.load_model(sys.argv[1])",
                            str(run.run_dir / "model.keras")], capture_output=True, text=True)
    assert plain.returncode != 0 and "ChannelPadding" in plain.stderr  # what a user met before
    registered = subprocess.run([sys.executable, "-c", "import keras, sys, kerasapps.training.registered; "
                                 "print(keras.saving.load_model(sys.argv[1]).count_params())",
                                 str(run.run_dir / "model.keras")], capture_output=True, text=True)
    assert registered.returncode == 0, registered.stderr[-2000:]  # the README's plain-Keras way
    script = ("import sys, numpy as np, kerasapps; model = kerasapps.load_model(sys.argv[1]); "
              "np.save(sys.argv[3], model.predict(np.load(sys.argv[2]).astype('float32'), verbose=0))")
    done = subprocess.run([sys.executable, "-c", script, str(run.run_dir), str(tmp_path / "images.npy"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    model = kerasapps.load_model(run.run_dir / "model.keras")
    assert np.allclose(np.load(tmp_path / "out.npy"), model.predict(images.astype("float32"), verbose=0), atol=1e-6)
    with pytest.raises(UsageError, match="no such run directory or .keras file"):
        kerasapps.load_model(tmp_path / "nowhere")
