"""weights= in our VGG and ResNet factories: keras.applications' weight files load into ours."""

import keras
import numpy as np
import pytest

from kerasapps.recipes import resnet50, vgg16

CASES = {"vgg16": (vgg16, keras.applications.VGG16), "resnet50": (resnet50, keras.applications.ResNet50)}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("file_format", ["weights.h5", "legacy.h5"])
def test_keras_applications_weight_file_gives_identical_outputs(name, file_format, tmp_path):
    ours_factory, application = CASES[name]
    theirs = application(weights=None, input_shape=(32, 32, 3), classes=10)
    path = tmp_path / f"{name}.{file_format}"
    if file_format == "weights.h5":
        theirs.save_weights(path)
    else:
        theirs.save(path)  # the legacy HDF5 format keras.applications' weight files use
    ours = ours_factory(input_shape=(32, 32, 3), classes=10, weights=str(path))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)),
                               rtol=1e-5, atol=1e-6)
    fresh = ours_factory(input_shape=(32, 32, 3), classes=10)
    assert not np.allclose(keras.ops.convert_to_numpy(fresh(x)), keras.ops.convert_to_numpy(theirs(x)))


def test_bad_weights_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="received weights='nope.h5', which is not a file"):
        vgg16(input_shape=(32, 32, 3), classes=10, weights="nope.h5")
    other = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=7)
    other.save_weights(tmp_path / "seven.weights.h5")
    with pytest.raises(ValueError, match="does not fit this configuration"):
        vgg16(input_shape=(32, 32, 3), classes=10, weights=str(tmp_path / "seven.weights.h5"))
