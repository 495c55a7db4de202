"""Weight penalties and max-norm reach every kernel they say, recomputed blocks included, and leave frozen
layers alone."""

import keras
import numpy as np
import pytest

from kerasapps.core.hparams import HParams
from kerasapps.models.walk import kernel_layers
from kerasapps.recipes.resnet import resnet20
from kerasapps.training.callbacks import MaxNorm
from kerasapps.training.regularizers import apply_weight_penalties

RESNET20_KERNELS = 19 + 1  # 19 convolutions (option-A shortcuts have none) and the classifier


def _fit_one_step(model, callbacks):
    x = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype("float32")
    y = np.arange(8) % model.output_shape[-1]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, callbacks=callbacks, verbose=0)


@pytest.mark.parametrize("remat", [False, True])
def test_penalties_and_max_norm_reach_all_twenty_resnet20_kernels(remat):
    model = resnet20(input_shape=(16, 16, 3), width=4, remat=remat)
    assert len(kernel_layers(model)) == RESNET20_KERNELS
    assert apply_weight_penalties(model, HParams({"l1": 0.0, "l2": 1e-3})) == RESNET20_KERNELS
    assert len(model.losses) == RESNET20_KERNELS  # each penalty reaches the loss
    factors = [layer.kernel.regularizer.l2 for layer in kernel_layers(model)]
    assert factors == pytest.approx([1e-3] * RESNET20_KERNELS)  # the l2 given, on every kernel
    expected = sum(1e-3 * float((layer.kernel.numpy() ** 2).sum()) for layer in kernel_layers(model))
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)  # l2 * sum of squares, no l1
    constraint = MaxNorm(0.05)
    _fit_one_step(model, [constraint])
    assert len(constraint.constrained) == RESNET20_KERNELS
    for layer in kernel_layers(model):
        kernel = layer.kernel.numpy()
        norms = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(axis=0))
        assert norms.max() <= 0.05 + 1e-6, layer.name


def test_max_norm_and_penalties_leave_a_frozen_kernel_alone():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, kernel_initializer=keras.initializers.Constant(3.0), name="frozen")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(hidden))
    model.get_layer("frozen").trainable = False
    before = model.get_layer("frozen").kernel.numpy().copy()
    assert apply_weight_penalties(model, HParams({"l1": 0.0, "l2": 1e-2})) == 1
    assert model.get_layer("frozen").kernel.regularizer is None
    head = model.get_layer("head").kernel.numpy()
    np.testing.assert_allclose(float(sum(model.losses)), 1e-2 * (head ** 2).sum(), rtol=1e-5)  # the head's only
    constraint = MaxNorm(0.5)
    _fit_one_step(model, [constraint])
    np.testing.assert_array_equal(model.get_layer("frozen").kernel.numpy(), before)
    assert [name for name, _ in constraint.constrained] == ["head"]
    assert ("frozen", "frozen: its weights are not being trained") in constraint.skipped
