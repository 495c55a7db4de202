"""precision=mixed_bfloat16: stages compute in bfloat16, and every model a stage hands on is float32."""

import json

import keras
import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import ConfigError
from kerasapps.recipes.mnist_transfer import mnist_transfer_cnn
from kerasapps.training import precision

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_vnni\nbugs\t\t: amx_bf16_is_not_a_flag_here\n"


def test_auto_picks_bfloat16_only_on_a_cpu_with_amx_bf16():
    assert precision.cpu_has_amx_bf16(SAPPHIRE_RAPIDS)
    assert not precision.cpu_has_amx_bf16(ICE_LAKE)
    assert not precision.cpu_has_amx_bf16("")
    assert precision.resolve("float32") == "float32" and precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert precision.resolve("auto") in ("float32", "mixed_bfloat16")


def test_conversion_keeps_weights_and_trainable_flags_and_changes_the_compute_dtype():
    with precision.building("mixed_bfloat16"):
        mixed = mnist_transfer_cnn()
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert precision.policy_of(mixed) == "mixed_bfloat16"
    mixed.get_layer("features_conv1").trainable = False
    plain = precision.in_policy(mixed, "float32")
    assert precision.policy_of(plain) == "float32" and precision.in_policy(plain, "float32") is plain
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    assert not plain.get_layer("features_conv1").trainable and plain.get_layer("features_conv2").trainable
    for a, b in zip(mixed.weights, plain.weights):
        assert a.dtype == b.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    images = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    out_mixed, out_plain = mixed.predict(images, verbose=0), plain.predict(images, verbose=0)
    assert out_plain.dtype == np.float32
    np.testing.assert_allclose(out_mixed.astype(np.float32), out_plain, atol=0.02)  # bfloat16: 8-bit mantissa


def test_a_mixed_run_trains_in_bfloat16_and_saves_and_exports_float32(tmp_path, tiny_data_dir):
    import tensorflow as tf

    run = kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", data_dir=tiny_data_dir, epochs=2,
                          batch_size=32, set={"precision": "mixed_bfloat16", "finetune_epochs": 2,
                                              "finetune_batch_size": 32}, verbose=0)
    stages = run.metrics["stages"]
    assert {name: stage["precision"] for name, stage in stages.items()} == {
        "pretrain": "mixed_bfloat16", "finetune": "mixed_bfloat16"}
    assert stages["pretrain"]["test"]["accuracy"] > 0.9 and stages["finetune"]["test"]["accuracy"] > 0.9
    for path in (run.run_dir / "model.keras", run.run_dir / "stages" / "pretrain.keras"):
        model = keras.saving.load_model(path, compile=False)
        assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}, path
    checkpoint = sorted((run.run_dir / "checkpoints" / "finetune").glob("*.keras"))[-1]
    assert precision.policy_of(keras.saving.load_model(checkpoint, compile=False)) == "mixed_bfloat16"
    # the frozen features came through two conversions unchanged
    before = keras.saving.load_model(run.run_dir / "stages" / "pretrain.keras", compile=False)
    after = keras.saving.load_model(run.run_dir / "model.keras", compile=False)
    for name in ("features_conv1", "features_conv2"):
        for a, b in zip(before.get_layer(name).get_weights(), after.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)

    serve = tf.saved_model.load(str(kerasapps.export(run.run_dir, out=tmp_path / "models"))).signatures[
        "serving_default"]
    data = np.load(tiny_data_dir / "mnist" / "mnist.npz")
    keep = data["y_test"] >= 5
    outputs = serve(images=tf.constant(data["x_test"][keep]))
    assert outputs["probabilities"].dtype == tf.float32
    assert (outputs["class_ids"].numpy() == data["y_test"][keep]).mean() > 0.9
    saved = json.loads((run.run_dir / "metrics.json").read_text())["stages"]
    assert saved["finetune"]["precision"] == "mixed_bfloat16"


def test_an_unknown_precision_is_one_line_naming_the_choices(tmp_path, tiny_data_dir):
    with pytest.raises(ConfigError, match="'precision' must be one of float32, mixed_bfloat16, auto; got 'fp8'"):
        kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True,
                        set={"precision": "fp8"}, verbose=0)


class _CrashAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("killed")


@pytest.mark.slow  # in the full suite; the fast subset stays under 5 minutes
def test_a_mixed_run_resumed_mid_stage_ends_with_the_uninterrupted_weights(tmp_path, tiny_data_dir):
    options = dict(data_dir=tiny_data_dir, epochs=2, batch_size=32, verbose=0,
                   set={"precision": "mixed_bfloat16", "finetune_epochs": 2, "finetune_batch_size": 32})
    kerasapps.train("mnist_transfer", run_dir=tmp_path / "full", **options)
    with pytest.raises(KeyboardInterrupt):  # killed after the first pretrain epoch's checkpoint
        kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", callbacks=[_CrashAtEpoch(1)], **options)
    kerasapps.train("mnist_transfer", run_dir=tmp_path / "run", data_dir=tiny_data_dir, resume=True, verbose=0)
    full, resumed = (keras.saving.load_model(tmp_path / name / "model.keras", compile=False)
                     for name in ("full", "run"))
    assert precision.policy_of(resumed) == "float32"
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
