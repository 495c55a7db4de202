"""remat=True (tf.recompute_grad per residual block): same outputs, gradients and fit results as the plain model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasapps.models.recompute import Recompute
from kerasapps.recipes.resnet import resnet20, resnet50

SHAPE = (16, 16, 3)


def flat_layers(model):
    for layer in model.layers:
        if isinstance(layer, Recompute):
            yield from flat_layers(layer.block)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def twins():
    """A plain and a remat ResNet-20 (width 4) with the same weights, layer for layer by name."""
    keras.utils.set_random_seed(0)
    plain = resnet20(input_shape=SHAPE, width=4)
    remat = resnet20(input_shape=SHAPE, width=4, remat=True)
    by_name = {layer.name: layer for layer in flat_layers(remat)}
    assert set(by_name) == {layer.name for layer in flat_layers(plain)}
    for layer in flat_layers(plain):
        by_name[layer.name].set_weights(layer.get_weights())
    return plain, remat, by_name


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *SHAPE)).astype("float32"), rng.integers(0, 10, n)


def test_remat_matches_outputs_and_gradients():
    plain, remat, by_name = twins()
    assert sum(isinstance(layer, Recompute) for layer in remat.layers) == 9  # 3 stages x 3 basic blocks
    assert plain.count_params() == remat.count_params()
    x, y = batch()
    for training in (False, True):
        np.testing.assert_allclose(remat(x, training=training), plain(x, training=training), rtol=1e-5, atol=1e-5)

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True)))
        return dict(zip([v.path for v in model.trainable_variables],
                        tape.gradient(loss, [v.value for v in model.trainable_variables])))

    plain_grads, remat_grads = grads(plain), grads(remat)
    assert len(plain_grads) == len(remat_grads) == len(plain.trainable_variables)
    for layer in flat_layers(plain):
        for variable in layer.trainable_variables:
            twin = next(v for v in by_name[layer.name].trainable_variables if v.name == variable.name)
            np.testing.assert_allclose(remat_grads[twin.path], plain_grads[variable.path], rtol=1e-4, atol=1e-6)


def small_net(remat):
    """Two conv-BN-ReLU residual blocks and a head; remat=True wraps the blocks as the ResNet factories do."""
    from kerasapps.models.recompute import bn_momentum_for_remat, recompute_block

    momentum = bn_momentum_for_remat(0.99) if remat else 0.99

    def block(t, name):
        h = keras.layers.Conv2D(4, 3, padding="same", name=f"{name}_conv")(t)
        h = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(h)
        return keras.layers.Activation("relu", name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([t, h]))

    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    for name in ("block1", "block2"):
        x = recompute_block(lambda t, n=name: block(t, n), x, name=name) if remat else block(x, name)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="predictions")(x))


def test_fit_gives_the_same_weights_and_batchnorm_statistics(tmp_path):
    plain, remat = small_net(False), small_net(True)
    by_name = {layer.name: layer for layer in flat_layers(remat)}
    for layer in flat_layers(plain):
        by_name[layer.name].set_weights(layer.get_weights())
    x, y = batch(24, seed=1)
    x = x + 2.0  # an offset, so that the batch means (and the moving means) are far from 0
    for model in (plain, remat):
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                      jit_compile=False)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    moved = plain.get_layer("block1_bn").moving_mean.numpy()
    assert np.abs(moved).max() > 1e-2  # the moving statistics did move
    for layer in flat_layers(plain):  # moving mean/variance included: two updates with sqrt(m) == one with m
        for mine, theirs in zip(layer.get_weights(), by_name[layer.name].get_weights()):
            np.testing.assert_allclose(theirs, mine, rtol=1e-4, atol=1e-6, err_msg=layer.name)
    remat.save(tmp_path / "remat.keras")
    loaded = keras.saving.load_model(tmp_path / "remat.keras", compile=False)
    np.testing.assert_allclose(loaded(x, training=False), remat(x, training=False), rtol=1e-5, atol=1e-6)


def test_recipes_take_the_remat_key_and_weights_are_refused():
    from kerasapps.core.registry import REGISTRY

    for name in ("resnet20_cifar10", "resnet56_cifar10"):
        recipe = REGISTRY.get(name)
        assert not any(isinstance(layer, Recompute) for layer in recipe.build(recipe.resolve()).layers)
        model = recipe.build(recipe.resolve(overrides=["remat=true", "width=4"]))
        assert sum(isinstance(layer, Recompute) for layer in model.layers) == (int(name[6:8]) - 2) // 2
    with pytest.raises(ValueError, match="weights= loads into the plain model only"):
        resnet50(weights="imagenet", remat=True)
