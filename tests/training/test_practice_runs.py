"""The practice keys in whole runs on real images (the CIFAR-10 subset in CI, tiny generated images elsewhere):
two runs with one seed are bitwise equal and a killed run resumes bit for bit with each of them on; early stopping
keeps the averaged (EMA) weights; flip TTA is what evaluate scores and the export serves; epochs=auto says what it
chose; image_transfer without pretrained weights trains the whole network."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from test_resume import Crash, _weights

import kerasapps
from kerasapps.core.errors import ConfigError

pytestmark = pytest.mark.slow
SMALL = {"width": 4}  # a narrow ResNet-20: the keys, not the network, are under test
RUN = dict(epochs=2, batch_size=16, steps_per_epoch=3, verbose=0)
GROUPS = {
    "images": {"mixup": 0.4, "cutmix": 1.0, "rand_augment_ops": 2, "random_erasing": 0.5, "label_smoothing": 0.1,
               "tta": "flip"},
    "optimizer": {"optimizer": "adamw", "ema": 0.9, "gradient_accumulation": 2, "class_weight": "balanced",
                  "early_stopping": True, "early_stopping_min_delta": 100.0},
    "sampler": {"class_weight": "sampler", "mixup": 0.4},
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_same_seed_runs_are_equal_and_a_killed_run_resumes_bit_for_bit(tmp_path, recipe_data_dir, group):
    keys = {**SMALL, **GROUPS[group]}
    options = dict(data_dir=recipe_data_dir, set=keys, **RUN)
    first = kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "a", **options)
    kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "b", **options)
    with pytest.raises(KeyboardInterrupt):
        kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "c", callbacks=[Crash(1)], **options)
    kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "c", resume=True, data_dir=recipe_data_dir, verbose=0)
    a, b, c = (_weights(tmp_path / name / "model.keras") for name in "abc")
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert first.metrics["test"]["accuracy"] >= 0.0


def test_early_stopping_keeps_the_averaged_weights_of_its_best_epoch(tmp_path, recipe_data_dir):
    """min_delta so large that epoch 0 stays the best: the saved model holds epoch 0's EMA weights, not its raw
    ones, and not the average at the end."""
    seen = {}

    class AfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            from kerasapps.core import compat

            if epoch == 0:
                seen["averaged"] = compat.averaged_weights(self.model)
                seen["raw"] = self.model.get_weights()

    keys = {**SMALL, "ema": 0.9, "early_stopping": True, "early_stopping_min_delta": 100.0}
    kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "run", data_dir=recipe_data_dir, set=keys,
                    callbacks=[AfterFirstEpoch()], **{**RUN, "steps_per_epoch": 4})
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False).get_weights()
    trainable = [i for i, w in enumerate(saved) if not np.array_equal(seen["averaged"][i], seen["raw"][i])]
    assert trainable  # the average differs from the raw weights
    for i, weights in enumerate(saved):
        np.testing.assert_array_equal(weights, seen["averaged"][i])


def test_flip_tta_is_what_evaluate_scores_and_the_export_serves(tmp_path, recipe_data_dir):
    import tensorflow as tf

    run = kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "run", data_dir=recipe_data_dir,
                          set={**SMALL, "tta": "flip"}, **RUN)
    evaluated = kerasapps.evaluate(run.run_dir, data_dir=recipe_data_dir, verbose=0)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    serve = tf.saved_model.load(str(kerasapps.export(run.run_dir, out=tmp_path / "models"))).signatures[
        "serving_default"]
    arrays = np.load(recipe_data_dir / "cifar10_subset" / "cifar10_subset.npz")
    images, labels = arrays["x_test"], arrays["y_test"].reshape(-1)
    answers = np.concatenate([serve(images=tf.constant(images[i:i + 256]))["class_ids"].numpy()
                              for i in range(0, len(images), 256)])
    assert np.mean(answers == labels) == pytest.approx(evaluated["metrics"]["accuracy"], abs=1e-6)
    model = keras.saving.load_model(run.run_dir / "model.keras", compile=False)
    from kerasapps.recipes.cifar import preprocess

    x = preprocess(images[:16])
    plain = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    served = serve(images=tf.constant(images[:16]))["probabilities"].numpy()
    np.testing.assert_allclose(served, plain, atol=1e-5)


def test_epochs_auto_trains_the_epochs_the_data_asks_and_says_so(tmp_path, recipe_data_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="kerasapps"):
        run = kerasapps.train("resnet20_cifar10", run_dir=tmp_path / "run", data_dir=recipe_data_dir,
                              set={**SMALL, "epochs": "auto", "auto_examples": 5000, "max_epochs": 3},
                              batch_size=16, steps_per_epoch=2, verbose=0)
    train_examples = json.loads((tmp_path / "run" / "data.json").read_text())["examples"]["train"]
    expected = min(3, -(-5000 // train_examples))
    stage = run.metrics["stages"]["train"]
    assert stage["epochs"] == expected
    assert stage["epochs_rule"].startswith(f"epochs=auto: 5,000 examples / {train_examples:,} per epoch")
    assert stage["epochs_rule"] in caplog.text
    assert len((tmp_path / "run" / "logs" / "train.csv").read_text().strip().splitlines()) == expected + 1


def test_image_transfer_without_weights_trains_the_whole_network_or_refuses(tmp_path, recipe_data_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="kerasapps"):
        run = kerasapps.train("image_transfer", run_dir=tmp_path / "run", data_dir=recipe_data_dir, verbose=0,
                              epochs=1, batch_size=16, steps_per_epoch=2)
    assert list(run.metrics["stages"]) == ["scratch"]
    assert "no pretrained weights were given" in caplog.text
    model = keras.saving.load_model(run.run_dir / "model.keras", compile=False)
    assert all(layer.trainable for layer in model.get_layer("backbone").layers)
    with pytest.raises(ConfigError, match="untrained_backbone=refuse"):
        kerasapps.train("image_transfer", run_dir=tmp_path / "refused", data_dir=recipe_data_dir, verbose=0,
                        set={"untrained_backbone": "refuse"}, epochs=1)
    assert not (tmp_path / "refused").exists()
