"""The mnist_transfer recipe: architecture, the freeze, the export, and the real-data targets."""

import json

import numpy as np
import pytest

import kerasapps
from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn


def test_architecture_matches_the_classic_example():
    model = mnist_transfer_cnn()
    assert model.count_params() == 600_165
    assert [layer.name for layer in model.layers] == [
        "image", "features_conv1", "features_conv2", "features_pool", "features_dropout", "features_flatten",
        "head_dense", "head_dropout", "predictions"]
    assert model.output_shape == (None, 5)


def _layer_weights(path, prefix):
    import keras

    model = keras.saving.load_model(path, compile=False)
    return {f"{layer.name}/{i}": w for layer in model.layers if layer.name.startswith(prefix)
            for i, w in enumerate(layer.get_weights())}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data_dir):
    run_dir = tmp_path_factory.mktemp("transfer") / "run"
    kerasapps.train("mnist_transfer", run_dir=run_dir, data_dir=tiny_data_dir, epochs=2, batch_size=32,
                    set={"finetune_epochs": 2, "finetune_batch_size": 32}, verbose=0)
    return run_dir


def test_finetune_leaves_every_feature_weight_bit_identical(tiny_run):
    before = _layer_weights(tiny_run / "stages" / "pretrain.keras", "features_")
    after = _layer_weights(tiny_run / "model.keras", "features_")
    assert set(before) == {"features_conv1/0", "features_conv1/1", "features_conv2/0", "features_conv2/1"}
    for key in before:
        assert np.array_equal(before[key], after[key]), key
    head_before = _layer_weights(tiny_run / "stages" / "pretrain.keras", "head_")
    head_after = _layer_weights(tiny_run / "model.keras", "head_")
    assert not np.array_equal(head_before["head_dense/0"], head_after["head_dense/0"])


def test_finetune_stage_trains_at_its_own_learning_rate(tmp_path, tiny_data_dir):
    import csv

    run_dir = tmp_path / "run"
    kerasapps.train("mnist_transfer", run_dir=run_dir, data_dir=tiny_data_dir, verbose=0, epochs=1,
                    set=["lr_schedule=constant", "learning_rate=0.0007", "finetune_learning_rate=0.0003",
                         "finetune_epochs=1"])
    lrs = {stage: [float(row["lr"]) for row in csv.DictReader(open(run_dir / "logs" / f"{stage}.csv"))]
           for stage in ("pretrain", "finetune")}
    assert lrs == {"pretrain": [pytest.approx(7e-4)], "finetune": [pytest.approx(3e-4)]}
    info = kerasapps.info("mnist_transfer")
    assert info["stages"][1]["overrides"] == {"learning_rate": "finetune_learning_rate", "epochs": "finetune_epochs",
                                              "batch_size": "finetune_batch_size",
                                              "label_smoothing": "finetune_label_smoothing"}


def test_the_head_smooths_as_the_pretraining_unless_told_otherwise():
    """finetune_label_smoothing (unset by default: smoothing the head alone did not help on the validation
    split) gives stage 'finetune' its own label smoothing; unset, both stages take label_smoothing, as every run
    did before the key existed."""
    from kerasapps.training.losses import SmoothedSparseCrossentropy, choose_loss

    recipe = kerasapps.get_recipe("mnist_transfer")
    model = mnist_transfer_cnn()

    def smoothing(*overrides):
        hp = recipe.resolve(overrides=list(overrides))
        losses = [choose_loss(recipe, stage.hparams(hp), model).loss for stage in recipe.stages]
        return [loss.label_smoothing if isinstance(loss, SmoothedSparseCrossentropy) else 0.0 for loss in losses]

    assert smoothing() == [0.0, 0.0]
    assert smoothing("label_smoothing=0.2") == [pytest.approx(0.2), pytest.approx(0.2)]
    assert smoothing("finetune_label_smoothing=0.1") == [0.0, pytest.approx(0.1)]
    assert smoothing("label_smoothing=0.2", "finetune_label_smoothing=0") == [pytest.approx(0.2), 0.0]


def test_stages_learn_on_tiny_data(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["stages"]["pretrain"]["test"]["accuracy"] > 0.9
    assert metrics["stages"]["finetune"]["test"]["accuracy"] > 0.9


def test_savedmodel_serves_raw_uint8_and_returns_digits_5_to_9(tiny_run, tmp_path, tiny_data_dir):
    import tensorflow as tf

    path = kerasapps.export(tiny_run, out=tmp_path / "models")
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["images"]
    data = np.load(tiny_data_dir / "mnist" / "mnist.npz")
    keep = data["y_test"] >= 5
    images, digits = data["x_test"][keep], data["y_test"][keep]
    outputs = serve(images=tf.constant(images))
    assert outputs["probabilities"].shape == (len(images), 5)
    classes = outputs["class_ids"].numpy()
    assert set(classes) <= {5, 6, 7, 8, 9}
    assert (classes == digits).mean() > 0.9
    assert [name.decode() for name in outputs["classes"].numpy()] == [str(c) for c in classes]


@pytest.mark.realdata
@pytest.mark.slow
def test_full_mnist_reaches_the_classic_targets(real_data_dir, tmp_path):
    """The README's main job: 5 + 5 epochs on full MNIST, then the export classifies test digits 5-9."""
    import tensorflow as tf

    run = kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", data_dir=real_data_dir, verbose=0)
    stages = run.metrics["stages"]
    assert stages["pretrain"]["test"]["accuracy"] >= 0.997
    assert stages["finetune"]["test"]["accuracy"] >= 0.990
    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    data = np.load(real_data_dir / "mnist" / "mnist.npz")
    keep = data["y_test"] >= 5
    classes = serve(images=tf.constant(data["x_test"][keep]))["class_ids"].numpy()
    assert (classes == data["y_test"][keep]).mean() >= 0.990
