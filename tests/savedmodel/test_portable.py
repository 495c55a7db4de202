"""ONNX and LiteRT exports answer as the SavedModel of the same run: the same class on at least 99.5% of the real
test examples for the float formats, int8 within a point of its accuracy; a model that takes text is refused in
one line; ``predict`` runs every format with the same command."""

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
            info = json.loads((path / "assets.extra" / "kerasapps.json").read_text())
            assert info["int8"].startswith("full integer")  # it answers as the float model: kept
        else:
            assert np.mean(answers == reference) >= 0.995, (fmt, quantize)
    for root in ("onnx_models", "litert_models"):  # a fresh process, as a user runs it: the formats are known
        printed = subprocess.run([sys.executable, "-m", "kerasapps.cli.main", "predict",
                                  str(tmp_path / root / "mlp_mnist"), str(tmp_path / "test.npy")],
                                 capture_output=True, text=True)
        assert printed.returncode == 0, printed.stderr[-2000:]
        assert "INFO:" not in printed.stderr, printed.stderr[-2000:]  # LiteRT's "Created ... XNNPACK delegate"
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


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
def test_an_op_neither_converter_holds_is_refused_in_one_line(tiny_data_dir, tmp_path):
    """A user's recipe that resizes inside its model after a layer (not the input ``Resizing`` an any-size image
    model's core leaves out): neither tf2onnx nor LiteRT's built-in ops hold the antialiased resize, so each
    format refuses it in one line naming the op, and writes nothing."""
    import keras

    from kerasapps.core.progress import progress
    from kerasapps.core.recipe import Recipe
    from kerasapps.data.builtin import load_mnist
    from kerasapps.savedmodel.portable import write_litert, write_onnx
    from kerasapps.savedmodel.signatures import ImageClassifier
    from kerasapps.training import rundir

    def build(hp, meta):
        images = keras.Input((28, 28))
        x = keras.layers.Conv2D(4, 3, padding="same")(keras.layers.Reshape((28, 28, 1))(images))
        x = keras.layers.Resizing(14, 14, antialias=True)(x)
        return keras.Model(images, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x)))

    recipe = Recipe(name="resizes_inside", summary="s", build_model=build, load_data=load_mnist,
                    preprocess=lambda x: keras.ops.cast(x, "float32") / 255.0, serving=ImageClassifier(28, 28))
    run = kerasapps.train(recipe, run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    hp = recipe.resolve(config_file=run.run_dir / rundir.CONFIG, legacy=True)
    for fmt, write in (("ONNX has no op", write_onnx), ("LiteRT has no built-in op", write_litert)):
        folder = tmp_path / fmt.split()[0]
        folder.mkdir()
        with progress("", total=3) as bar, pytest.raises(UsageError) as refused:
            write(recipe, hp, run.run_dir, run.run_dir / "model.keras", folder, bar)
        assert str(refused.value) == (f"recipe 'resizes_inside': {fmt} for ScaleAndTranslate (an antialiased resize "
                                      "inside the model) in its model; export it as a SavedModel")
        assert not any(folder.iterdir())
