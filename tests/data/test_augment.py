"""Numbers for kerasapps.augment: ElasticDistortion (Simard et al. 2003) and build_augmentation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasapps.data.augment import (
    AUGMENTATION_KEYS,
    ElasticDistortion,
    _bilinear_resample,
    _gaussian_kernel_1d,
    build_augmentation,
)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=4, h=16, w=16, c=1, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, h, w, c)).astype("float32")


def _ramp(n, size):
    """I(row, col) = col: after bilinear resampling, output - input = dx exactly (inside the image)."""
    cols = np.broadcast_to(np.arange(size, dtype="float32")[None, None, :, None], (n, size, size, 1))
    return np.ascontiguousarray(cols)


def test_alpha_zero_is_exact_identity_and_zero_field_resample_is_identity():
    x = _images(c=3)
    out = ElasticDistortion(0.0, 4.0, seed=1)(x, training=True)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(_np(out), x)
    layer = ElasticDistortion(1.0, 4.0)
    zero = keras.ops.zeros((4, 16, 16, 2))
    for mode in ("nearest", "constant"):
        resampled = _bilinear_resample(layer.backend, keras.ops.convert_to_tensor(x), zero, mode, 0.0)
        np.testing.assert_array_equal(_np(resampled), x)


def test_inactive_unless_training():
    x = _images()
    layer = ElasticDistortion(34.0, 4.0, seed=1)
    np.testing.assert_array_equal(_np(layer(x)), x)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)
    assert not np.array_equal(_np(layer(x, training=True)), x)


@pytest.mark.parametrize("shape", [(3, 20, 12, 3), (20, 12, 1)])
def test_shape_and_dtype_preserved(shape):
    x = np.random.default_rng(0).uniform(size=shape).astype("float32")
    out = ElasticDistortion(8.0, 2.0, seed=0)(x, training=True)
    assert tuple(out.shape) == shape and out.dtype == "float32"
    assert np.isfinite(_np(out)).all()


def test_displacement_follows_simard_scaling():
    """Interior displacement std = alpha * std(U[-1,1]) * ||2-D Gaussian kernel||_2, and grows linearly with alpha."""
    n, size, sigma = 8, 64, 4.0
    g = _gaussian_kernel_1d(sigma).astype("float64")
    expected_unit_std = np.sqrt(1 / 3) * (g**2).sum()  # separable kernel: ||g2d|| = ||g1d||^2
    ramp = _ramp(n, size)
    inner = slice(24, 40)  # beyond the kernel radius (16 px) from every border
    stds, mean_abs = [], []
    for alpha in (1.0, 2.0, 34.0):
        out = _np(ElasticDistortion(alpha, sigma, seed=3)(ramp, training=True))
        dx = (out - ramp)[:, inner, inner, 0]
        stds.append(dx.std())
        mean_abs.append(np.abs(out - ramp).mean())
    assert stds[0] == pytest.approx(expected_unit_std, rel=0.15)
    assert stds[2] == pytest.approx(34 * expected_unit_std, rel=0.15)  # ~1.4 px on MNIST settings
    assert stds[1] / stds[0] == pytest.approx(2.0, rel=1e-3)  # same seed: same field, scaled
    assert mean_abs[0] < mean_abs[1] < mean_abs[2]
    # Pixel change on a random image grows with alpha too.
    x = _images(n=4, h=28, w=28)
    change = [np.abs(_np(ElasticDistortion(a, 4.0, seed=5)(x, training=True)) - x).mean() for a in (1, 4, 16, 34)]
    assert all(a < b for a, b in zip(change, change[1:]))


def test_deterministic_given_seed():
    x = _images()
    a = ElasticDistortion(10.0, 3.0, seed=7)
    b = ElasticDistortion(10.0, 3.0, seed=7)
    first_a, first_b = _np(a(x, training=True)), _np(b(x, training=True))
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(_np(a(x, training=True)), _np(b(x, training=True)))  # second draws agree
    assert not np.array_equal(_np(a(x, training=True)), first_a)  # but each call draws a new field
    assert not np.array_equal(_np(ElasticDistortion(10.0, 3.0, seed=8)(x, training=True)), first_a)
    # Each image in a batch gets its own field.
    same = np.repeat(x[:1], 2, axis=0)
    out = _np(ElasticDistortion(10.0, 3.0, seed=7)(same, training=True))
    assert not np.array_equal(out[0], out[1])


def _pipeline(layer, x):
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(len(x)))).batch(3)  # last batch partial: dynamic N
    ds = ds.map(lambda images, labels: (layer(images, training=True), labels))
    return [(images.numpy(), labels.numpy()) for images, labels in ds]


def test_runs_inside_tf_data_map():
    x = np.repeat(_images(n=1), 7, axis=0)
    batches = _pipeline(ElasticDistortion(10.0, 3.0, seed=2), x)
    assert [b[0].shape for b in batches] == [(3, 16, 16, 1), (3, 16, 16, 1), (1, 16, 16, 1)]
    assert all(b[0].dtype == np.float32 for b in batches)
    images = np.concatenate([b[0] for b in batches])
    assert not np.array_equal(images[0], images[3])  # the seed state advances between batches
    assert np.abs(images - x).mean() > 0.01
    again = np.concatenate([b[0] for b in _pipeline(ElasticDistortion(10.0, 3.0, seed=2), x)])
    np.testing.assert_array_equal(images, again)


def test_keras_round_trip_inside_a_model(tmp_path):
    inputs = keras.Input((16, 16, 1))
    h = ElasticDistortion(12.0, 3.0, seed=4, fill_mode="constant", name="elastic")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.get_layer("elastic")
    assert isinstance(layer, ElasticDistortion)
    assert layer.get_config() == model.get_layer("elastic").get_config()
    assert layer.get_config()["alpha"] == 12.0 and layer.get_config()["fill_mode"] == "constant"
    x = _images()
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), rtol=1e-6)
    # Same seed state saved with the model: the same field in training mode.
    np.testing.assert_allclose(_np(loaded(x, training=True)), _np(model(x, training=True)), rtol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="alpha"):
        ElasticDistortion(-1.0, 4.0)
    with pytest.raises(ValueError, match="nearest, constant"):
        ElasticDistortion(1.0, 4.0, fill_mode="wrap")


def test_build_augmentation_from_spec():
    spec = {"shift": 0.1, "rotation": 10, "zoom": 0.1, "flip": "horizontal",
            "elastic_alpha": 34, "elastic_sigma": 4, "seed": 1}
    aug = build_augmentation(spec)
    assert [layer.name for layer in aug.layers] == ["flip", "shift", "rotation", "zoom", "elastic"]
    by_name = {layer.name: layer for layer in aug.layers}
    assert by_name["rotation"].factor == pytest.approx((-10 / 360, 10 / 360))
    assert by_name["shift"].height_factor == by_name["shift"].width_factor == 0.1
    assert by_name["elastic"].alpha == 34.0 and by_name["elastic"].sigma == 4.0
    assert [layer.seed for layer in aug.layers] == [1, 2, 3, 4, 5]
    x = _images(n=5)
    out = np.concatenate([b[0] for b in _pipeline(aug, x)])
    assert out.shape == x.shape and out.dtype == np.float32 and not np.allclose(out, x)

    assert build_augmentation(None) is None
    assert build_augmentation({}) is None
    assert build_augmentation({"shift": 0, "rotation": None, "elastic_alpha": 0, "elastic_sigma": 4, "seed": 0}) is None
    assert [layer.name for layer in build_augmentation({"elastic_alpha": 5}).layers] == ["elastic"]


def test_build_augmentation_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError) as err:
        build_augmentation({"shift": 0.1, "rotate": 10})
    message = str(err.value)
    assert "rotate" in message
    for key in AUGMENTATION_KEYS:
        assert key in message
    with pytest.raises(ValueError, match="horizontal, vertical, horizontal_and_vertical"):
        build_augmentation({"flip": "sideways"})
    with pytest.raises(ValueError, match="shift"):
        build_augmentation({"shift": 1.5})
