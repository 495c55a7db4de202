"""ONNX and LiteRT exports answer as the SavedModel of the same run: the same class on at least 99.5% of the real
test examples for the float formats, int8 within a point of its accuracy; a model that takes text is refused in
one line; ``predict`` runs every format with the same command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import UsageError
from kerasapps.savedmodel.export import export

VARIANTS = [("onnx", "none"), ("litert", "none"), ("litert", "float16"), ("litert", "int8")]


def _classes(rows) -> np.ndarray:
    return np.array([row["classes"] for row in rows])


@pytest.mark.realdata
def test_mnist_in_every_format_answers_as_the_saved_model(real_data_dir, tmp_path):
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=real_data_dir, epochs=2, verbose=0)
    arrays = np.load(real_data_dir / "mnist" / "mnist.npz")
    np.save(tmp_path / "test.npy", arrays["x_test"][:2000])
    truth = arrays["y_test"][:2000].astype(str)
    reference = _classes(kerasapps.predict(export(run.run_dir), [tmp_path / "test.npy"]))
    accuracy = np.mean(reference == truth)
    assert accuracy > 0.9
    for fmt, quantize in VARIANTS:
        if quantize == "float16":  # through the command line, as a user exports
            done = CliRunner().invoke(cli, ["export", str(run.run_dir), "--format", fmt, "--quantize", quantize])
            assert done.exit_code == 0, done.output
            path = tmp_path / "litert_models" / "mlp_mnist" / "2"
            assert done.stdout.strip() == f"exported {path.relative_to(tmp_path)}"
        else:
            path = export(run.run_dir, format=fmt, quantize=quantize)
        assert path.parent.parent.name == f"{fmt}_models"  # never inside the SavedModels' folder
        answers = _classes(kerasapps.predict(path, [tmp_path / "test.npy"]))
        if quantize == "int8":
            assert abs(np.mean(answers == truth) - accuracy) <= 0.01, (fmt, quantize)
        else:
            assert np.mean(answers == reference) >= 0.995, (fmt, quantize)
    for root in ("onnx_models", "litert_models"):  # a fresh process, as a user runs it: the formats are known
        printed = subprocess.run([sys.executable, "-m", "kerasapps.cli.main", "predict",
                                  str(tmp_path / root / "mlp_mnist"), str(tmp_path / "test.npy")],
                                 capture_output=True, text=True)
        assert printed.returncode == 0, printed.stderr[-2000:]
        assert [line.split("class ")[1].split(" ")[0] for line in printed.stdout.splitlines()[:20]] == \
            list(reference[:20]), root


@pytest.mark.slow  # trains and exports several runs (the full suite runs it)
def test_a_table_in_every_format_answers_as_the_saved_model_missing_cells_too(real_tables, tmp_path):
    wine = real_tables["wine"]
    run = kerasapps.train("mlp_tabular", data=str(wine), run_dir=tmp_path / "run", verbose=0, epochs=30)
    rows = wine.read_text().splitlines()
    holed = tmp_path / "holed.csv"  # the first column missing in every other row
    holed.write_text("\n".join([rows[0]] + [("n/a," + row.split(",", 1)[1]) if i % 2 else row
                                            for i, row in enumerate(rows[1:])]) + "\n")
    reference = kerasapps.predict(export(run.run_dir), [wine, holed])
    for fmt, quantize in VARIANTS[:3]:
        answers = kerasapps.predict(export(run.run_dir, format=fmt, quantize=quantize), [wine, holed])
        assert np.mean(_classes(answers) == _classes(reference)) >= 0.995, fmt
        assert all(np.isfinite(row["probabilities"]).all() for row in answers)


def test_text_models_are_refused_in_one_line(tiny_data_dir, tmp_path):
    run = kerasapps.train("imdb_sentiment", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0,
                          set={"units": 8, "embedding_dim": 8, "max_tokens": 100})
    for fmt in ("onnx", "litert"):
        with pytest.raises(UsageError, match=r"^recipe 'imdb_sentiment' takes text \(text: strings\), and ONNX "
                                             r"and LiteRT hold no string ops"):
            export(run.run_dir, format=fmt)
    with pytest.raises(UsageError, match="--quantize is for --format litert"):
        export(run.run_dir, format="onnx", quantize="int8")
    assert not (tmp_path / "onnx_models").exists() and not (tmp_path / "litert_models").exists()
