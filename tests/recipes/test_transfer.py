"""image_transfer: a resnet20 trained briefly on five CIFAR-10 classes (image files) carried to a folder of the other
five: the head stage leaves the backbone bit for bit, its features cached or not give the same head, fine-tuning
moves only the unfrozen blocks, and the export names the new classes. Real CIFAR-10 images in CI (tiny generated
ones elsewhere)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kerasapps
from kerasapps.core.errors import ConfigError
from kerasapps.training.checkpoints import load_model

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
KERASAPPS = [str(Path(sys.executable).with_name("kerasapps"))]


def write_classes(data_dir: Path, root: Path, classes, per_class: int) -> Path:
    """CIFAR-10 training images of ``classes`` as PNG files, a folder per class."""
    arrays = np.load(data_dir / "cifar10_subset" / "cifar10_subset.npz")
    for label in classes:
        (root / CIFAR[label]).mkdir(parents=True)
        picked = np.flatnonzero(arrays["y_train"].reshape(-1) == label)[:per_class]
        for i in picked:
            Image.fromarray(arrays["x_train"][i]).save(root / CIFAR[label] / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folders(recipe_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    source = write_classes(recipe_data_dir, root / "first_five", range(5), 60)
    target = write_classes(recipe_data_dir, root / "other_five", range(5, 10), 40)
    run = kerasapps.train("resnet20_cifar10", data=str(source), run_dir=root / "source", verbose=0, epochs=1,
                          batch_size=32)
    return {"source_run": run.run_dir, "target": target}


def _layers(model) -> dict[str, list[np.ndarray]]:
    backbone = model.get_layer("backbone") if any(layer.name == "backbone" for layer in model.layers) else model
    return {layer.name: [w.numpy() for w in layer.weights] for layer in backbone.layers if layer.weights}


def test_head_on_a_pretrained_backbone_then_finetune_the_top_blocks(folders, tmp_path):
    run = kerasapps.train("image_transfer", data=str(folders["target"]), run_dir=tmp_path / "run", verbose=0,
                          epochs=2, batch_size=16,
                          set={"weights": str(folders["source_run"]), "finetune_blocks": "2"})
    stages = run.metrics["stages"]
    assert "features_cached_in_seconds" in stages["head"]  # the frozen backbone ran once per image
    assert "features_cached_in_seconds" not in stages["finetune"]

    source = _layers(load_model(folders["source_run"] / "model.keras", compile=False))
    after_head = load_model(run.run_dir / "stages" / "head.keras", compile=False)
    head_layers = _layers(after_head)
    assert set(head_layers) <= set(source)
    for name, weights in head_layers.items():  # the head stage left every backbone weight as it came
        for a, b in zip(source[name], weights):
            np.testing.assert_array_equal(a, b, err_msg=name)

    final = load_model(run.run_dir / "model.keras", compile=False)
    trained = {"conv4_block2", "conv4_block3"}  # resnet20's top two residual blocks
    changed = {name for name, weights in _layers(final).items()
               if any(not np.array_equal(a, b) for a, b in zip(head_layers[name], weights))}
    assert changed and all(name.rsplit("_", 2)[0] in trained for name in changed), changed
    assert not any(name.endswith("_bn") for name in changed)  # batch normalisation stays frozen
    assert not np.array_equal(after_head.get_layer("predictions").kernel.numpy(),
                              final.get_layer("predictions").kernel.numpy())

    import tensorflow as tf

    export = kerasapps.export(run.run_dir, out=tmp_path / "models")
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    photo = np.asarray(Image.open(sorted((folders["target"] / "ship").glob("*.png"))[0]).resize((75, 50)))
    out = serve(images=tf.constant(photo[None], tf.uint8))  # any size: resized inside the export
    assert out["classes"].numpy()[0].decode() in CIFAR[5:]
    assert json.loads((run.run_dir / "data.json").read_text())["class_names"] == sorted(CIFAR[5:])


def test_cached_and_uncached_heads_agree(folders, tmp_path):
    runs = {mode: kerasapps.train("image_transfer", data=str(folders["target"]), run_dir=tmp_path / mode,
                                  verbose=0, epochs=3, batch_size=16,
                                  set={"weights": str(folders["source_run"]), "finetune_blocks": "0",
                                       "cache_features": mode})
            for mode in ("true", "false")}
    assert "features_cached_in_seconds" in runs["true"].metrics["stages"]["head"]
    assert "features_cached_in_seconds" not in runs["false"].metrics["stages"]["head"]
    cached, uncached = runs["true"].metrics["test"], runs["false"].metrics["test"]
    assert cached["loss"] == pytest.approx(uncached["loss"], rel=1e-3)  # the same head, within float error
    assert cached["accuracy"] == pytest.approx(uncached["accuracy"], abs=0.01)
    kernels = [load_model(r.run_dir / "model.keras", compile=False).get_layer("predictions").kernel.numpy()
               for r in runs.values()]
    np.testing.assert_allclose(kernels[0], kernels[1], atol=1e-4)


def test_what_cannot_cache_or_load_is_one_line_before_anything_is_written(folders, tmp_path):
    target = str(folders["target"])
    with pytest.raises(ConfigError, match="cache_features=true, stage 'head': augmentation changes the images"):
        kerasapps.train("image_transfer", data=target, run_dir=tmp_path / "a", verbose=0,
                        set={"cache_features": "true", "augment_head": True, "weights": str(folders["source_run"])})
    with pytest.raises(ConfigError, match="keras.applications has no ImageNet weights for resnet20"):
        kerasapps.train("image_transfer", data=target, run_dir=tmp_path / "b", verbose=0, set={"weights": "imagenet"})
    with pytest.raises(ConfigError, match="finetune_blocks=11, but backbone resnet20 has 10 blocks"):
        kerasapps.train("image_transfer", data=target, run_dir=tmp_path / "c", verbose=0, set={"finetune_blocks": "11"})
    assert not any((tmp_path / name).exists() for name in "abc")


def test_imagenet_weights_offline_fail_in_one_line(folders, tmp_path):
    """keras.applications' download, with an empty Keras cache: offline, one line naming the file to fetch."""
    import os

    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(KERASAPPS + ["train", "image_transfer", "--data", str(folders["target"]), "--set",
                                       "backbone=vgg16", "--set", "weights=imagenet", "--set", "image_size=32",
                                       "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--steps-per-epoch", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    if done.returncode == 0:
        pytest.skip("the ImageNet weights downloaded: this machine is online")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
    assert "weights=imagenet: cannot download" in errors[0] and "vgg16_weights" in errors[0] and ".h5" in errors[0]
    assert not (tmp_path / "run").exists()
