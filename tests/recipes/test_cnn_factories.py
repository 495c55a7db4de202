"""Tests of the CNN canon factories (recipes/lenet ... recipes/resnet, ResNet built by kerasapps.models.resnet)
and kerasapps.models' blocks and argument checks.

Every test parameterised over FACTORY_NAMES runs for each name in a module's
`__all__`, so a new factory is tested for free (and fails until it has its
reference figures below). Reference-size builds use `shapes_only()`, which
creates variables without initialising them: count_params() and the weight
layout are known in milliseconds, even for VGG's 138M parameters.
"""

import contextlib
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerasapps.models.arguments import min_input_size
from kerasapps.models.layers import ChannelPadding, LocalResponseNormalization

MODULES = ["lenet", "alexnet", "zfnet", "vgg", "googlenet", "resnet"]
FACTORIES = {
    name: getattr(module, name)
    for module in (importlib.import_module(f"kerasapps.recipes.{m}") for m in MODULES)
    for name in module.__all__
}
FACTORY_NAMES = sorted(FACTORIES)

# count_params() at the reference configuration (default arguments). Sources
# in each factory's docstring: the paper, keras.applications, torchvision.
REFERENCE_PARAMS = {
    "lenet5": 61_706,
    "alexnet": 62_378_344,
    "zfnet": 62_357_608,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_998_552,
    "resnet18": 11_703_912,
    "resnet34": 21_823_208,
    "resnet50": 25_636_712,
    "resnet101": 44_707_176,
    "resnet152": 60_419_944,
    "resnet20": 271_786,
    "resnet32": 467_562,
    "resnet44": 663_338,
    "resnet56": 859_114,
    "resnet110": 1_740_106,
}
# count_params() at input_shape=(32, 32, 3), classes=10.
SMALL_PARAMS = {
    "lenet5": 62_006,
    "alexnet": 29_983_114,
    "zfnet": 29_978_506,
    "vgg16": 33_638_218,
    "vgg19": 38_947_914,
    "googlenet": 5_976_122,
    "resnet18": 11_196_042,
    "resnet34": 21_315_338,
    "resnet50": 23_608_202,
    "resnet101": 42_678_666,
    "resnet152": 58_391_434,
    "resnet20": 271_786,
    "resnet32": 467_562,
    "resnet44": 663_338,
    "resnet56": 859_114,
    "resnet110": 1_740_106,
}
# Trainable parameters less conv biases (the PyTorch convention: no conv
# biases, BN running statistics are buffers): torchvision's resnet18..152,
# and akamaster/pytorch_resnet_cifar10's resnet20..110 (option A).
TORCH_CONVENTION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}
# Smallest accepted height/width (the "small" stem where there is one).
MIN_SIZE = {"lenet5": 28, "alexnet": 12, "zfnet": 12, "vgg16": 32, "vgg19": 32, "googlenet": 8}
MIN_SIZE.update({f"resnet{d}": 8 for d in (18, 34, 50, 101, 152)})
MIN_SIZE.update({f"resnet{d}": 4 for d in (20, 32, 44, 56, 110)})
# Depth variants: the same code as resnet18 / resnet50 / resnet20 / resnet56 with
# more blocks. Their SGD step and .keras round trip (~60 s of CPU together) are
# marked slow and run only with KERASAPPS_SLOW_TESTS=1; every other test,
# including the reference counts and keras.applications layouts, runs for them.
DEPTH_VARIANTS = {"resnet34", "resnet101", "resnet152", "resnet32", "resnet44", "resnet110"}
RUN_SLOW = os.environ.get("KERASAPPS_SLOW_TESTS") == "1"
TRAINED_NAMES = [
    pytest.param(
        name,
        marks=[
            pytest.mark.slow,
            pytest.mark.skipif(not RUN_SLOW, reason="set KERASAPPS_SLOW_TESTS=1"),
        ],
    )
    if name in DEPTH_VARIANTS
    else name
    for name in FACTORY_NAMES
]
KERAS_APPLICATIONS = {
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "resnet50": "ResNet50",
    "resnet101": "ResNet101",
    "resnet152": "ResNet152",
}


@contextlib.contextmanager
def shapes_only():
    """Builds models whose variables have shapes but no values."""
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        keras.utils.clear_session(free_memory=False)


def deterministic_kwargs(factory):
    """Dropout off, so that training-mode losses are comparable."""
    params = inspect.signature(factory).parameters
    return {key: 0.0 for key in ("dropout", "aux_dropout") if key in params}


_SMALL_MODELS = {}


def small_model(name):
    """The (32, 32, 3), 10-class build, shared by the tests that need weights."""
    if name not in _SMALL_MODELS:
        keras.utils.set_random_seed(0)
        factory = FACTORIES[name]
        _SMALL_MODELS[name] = factory(
            input_shape=(32, 32, 3), classes=10, **deterministic_kwargs(factory)
        )
    return _SMALL_MODELS[name]


def batch(size=32, channels=3, n=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, size, size, channels)).astype("float32")
    return x, np.arange(n) % 10


def test_every_factory_has_reference_figures():
    assert set(FACTORY_NAMES) == set(REFERENCE_PARAMS) == set(SMALL_PARAMS) == set(MIN_SIZE)


_REFERENCE_MODELS = {}


def reference_model(name):
    """The default build (reference configuration), shapes only."""
    if name not in _REFERENCE_MODELS:
        with shapes_only():
            _REFERENCE_MODELS[name] = FACTORIES[name]()
    return _REFERENCE_MODELS[name]


@pytest.mark.parametrize("name", FACTORY_NAMES)
def test_reference_parameter_count(name):
    model = reference_model(name)
    assert isinstance(model, keras.Model) and model.name == name
    assert model.layers[-1].name == "predictions"
    assert model.count_params() == REFERENCE_PARAMS[name]
    if name in TORCH_CONVENTION_PARAMS:
        conv_biases = sum(
            int(np.prod(v.shape)) for v in model.trainable_weights
            if v.path.endswith("_conv/bias")
        )
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        assert trainable - conv_biases == TORCH_CONVENTION_PARAMS[name]


@pytest.mark.parametrize("name", sorted(KERAS_APPLICATIONS))
def test_weight_layout_matches_keras_applications(name):
    ours = reference_model(name)
    with shapes_only():
        theirs = getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None)
    assert ours.count_params() == theirs.count_params() == REFERENCE_PARAMS[name]
    assert [(v.path, v.shape) for v in ours.weights] == [(v.path, v.shape) for v in theirs.weights]


@pytest.mark.parametrize("name", ["resnet50", "vgg16"])
def test_keras_applications_weights_give_identical_outputs(name):
    theirs = getattr(keras.applications, KERAS_APPLICATIONS[name])(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    ours = small_model(name)
    ours.set_weights(theirs.get_weights())
    x, _ = batch(n=2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)),
        rtol=1e-5, atol=1e-6,
    )


def test_paper_variants():
    with shapes_only():
        two_tower = FACTORIES["alexnet"](groups=2)
        with_aux = FACTORIES["googlenet"](aux_classifiers=True)
        cifar_b = FACTORIES["resnet20"](shortcut="B")
    assert two_tower.count_params() == 60_965_224  # the paper's two-GPU AlexNet
    assert with_aux.count_params() == 13_378_280
    assert with_aux.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert cifar_b.count_params() == 274_826


@pytest.mark.parametrize("name", TRAINED_NAMES)
def test_small_input_build_and_one_sgd_step(name):
    """(32, 32, 3) with 10 classes: output shape, and one SGD step on a fixed
    batch of 8 lowers the (training-mode, dropout-free) loss. The gradients
    are clipped to a global norm of 0.1 (a step of norm 1e-3): BatchNorm over
    8 samples of a 1x1 map gives ResNet-50 a gradient norm of ~1e4 at
    initialisation, so any unclipped learning rate that moves VGG would
    overshoot there."""
    import tensorflow as tf

    model = small_model(name)
    assert model.count_params() == SMALL_PARAMS[name]
    x, y = batch()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        before = loss_fn(y, probabilities)
    assert tuple(probabilities.shape) == (8, 10)
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)
    gradients = tape.gradient(before, model.trainable_weights)
    optimizer = keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=0.1)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights))
    after = loss_fn(y, model(x, training=True))
    assert float(after) < float(before), (float(before), float(after))


@pytest.mark.parametrize("name", TRAINED_NAMES)
def test_keras_file_round_trip(name, tmp_path):
    model = small_model(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x, _ = batch(n=2)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(model(x))
    )
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", FACTORY_NAMES)
def test_minimum_input_size(name):
    """Below the minimum: ValueError naming it. At it (one channel): a model.
    Every minimum but VGG's (32, as in keras.applications) admits 28x28 MNIST."""
    factory, minimum = FACTORIES[name], MIN_SIZE[name]
    with pytest.raises(ValueError, match=rf"at least {minimum}x{minimum}.*\({minimum - 1}, "):
        factory(input_shape=(minimum - 1, minimum - 1, 1), classes=10)
    with shapes_only():
        smallest = factory(input_shape=(minimum, minimum, 1), classes=10)
    assert smallest.output.shape == (None, 10)
    assert minimum <= 28 or name in ("vgg16", "vgg19")


def _bad_value(default):
    if isinstance(default, bool) or isinstance(default, str):
        return "bogus"
    if isinstance(default, float):
        return 1.5
    return 0


@pytest.mark.parametrize("name", FACTORY_NAMES)
def test_bad_arguments_raise_with_the_received_value(name):
    factory = FACTORIES[name]
    bad = {"pooling": "mean", "classes": 0, "classifier_activation": "softmaxx"}
    for key, parameter in inspect.signature(factory).parameters.items():
        if parameter.default is not None and key not in bad and key != "name":
            bad[key] = _bad_value(parameter.default)
    for key, value in bad.items():
        with pytest.raises(ValueError, match=re.escape(f"{key}={value!r}")):
            factory(**{key: value})
    with pytest.raises(ValueError, match=r"input_shape"):
        factory(input_shape=(32, 32))


def test_googlenet_aux_classifiers_need_the_top():
    with pytest.raises(ValueError, match="include_top=False"):
        FACTORIES["googlenet"](include_top=False, aux_classifiers=True)


def test_stem_minimums_match_the_documented_constants():
    import importlib

    alexnet, googlenet, zfnet = (importlib.import_module(f"kerasapps.recipes.{m}")  # the modules, not the factories
                                 for m in ("alexnet", "googlenet", "zfnet"))

    assert min_input_size(alexnet.eight_layer_ops(alexnet._STEMS["imagenet"])) == alexnet._IMAGENET_MIN == 67
    assert min_input_size(alexnet.eight_layer_ops(zfnet._STEMS["imagenet"])) == zfnet._IMAGENET_MIN == 63
    assert min_input_size(googlenet._spatial_ops("imagenet", True)) == 80


def _lrn_reference(x, size, k, alpha, beta):
    """The paper's formula, written out channel by channel."""
    out = np.empty_like(x)
    channels = x.shape[-1]
    for c in range(channels):
        low, high = max(0, c - size // 2), min(channels - 1, c + size // 2)
        out[..., c] = x[..., c] / (k + alpha * (x[..., low : high + 1] ** 2).sum(-1)) ** beta
    return out


@pytest.mark.parametrize("size, k, alpha, beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.5, 0.5)])
def test_local_response_normalization_matches_the_paper_and_tf(size, k, alpha, beta):
    import tensorflow as tf

    x = np.random.default_rng(0).normal(scale=3.0, size=(2, 4, 4, 7)).astype("float32")
    layer = LocalResponseNormalization(size=size, k=k, alpha=alpha, beta=beta)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, _lrn_reference(x, size, k, alpha, beta), rtol=1e-5)
    expected_tf = tf.nn.local_response_normalization(
        x, depth_radius=size // 2, bias=k, alpha=alpha, beta=beta
    )
    np.testing.assert_allclose(got, expected_tf.numpy(), rtol=1e-5)


def test_layers_serialise_and_validate():
    lrn = LocalResponseNormalization(size=3, k=1.0, alpha=0.1, beta=0.5, name="norm")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lrn))
    assert isinstance(restored, LocalResponseNormalization)
    assert restored.get_config() == lrn.get_config()
    with pytest.raises(ValueError, match="size=4"):
        LocalResponseNormalization(size=4)
    padded = ChannelPadding(5)(np.ones((1, 2, 2, 3), "float32"))
    assert padded.shape == (1, 2, 2, 8)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(padded)[..., 3:], 0.0)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None or not RUN_SLOW,
    reason="needs JAX and KERASAPPS_SLOW_TESTS=1 (about 5 minutes of per-op JAX compilation)",
)
def test_factories_run_on_jax(tmp_path):
    """Builds, runs and round-trips the models in a subprocess on the JAX backend."""
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        assert keras.backend.backend() == "jax"
        from kerasapps.models.layers import LocalResponseNormalization
        from test_cnn_factories import FACTORIES, DEPTH_VARIANTS, _lrn_reference
        x = np.random.default_rng(0).normal(scale=3.0, size=(2, 32, 32, 3)).astype("float32")
        np.testing.assert_allclose(
            LocalResponseNormalization(size=3, alpha=0.5)(x),
            _lrn_reference(x, 3, 2.0, 0.5, 0.75), rtol=1e-5)
        for name, factory in FACTORIES.items():
            if name in DEPTH_VARIANTS:
                continue
            model = factory(input_shape=(32, 32, 3), classes=10)
            assert model(x).shape == (2, 10), name
        model = FACTORIES["alexnet"](input_shape=(32, 32, 3), classes=10)
        model.save({str(tmp_path / "alexnet.keras")!r})
        restored = keras.saving.load_model({str(tmp_path / "alexnet.keras")!r})
        np.testing.assert_allclose(restored(x), model(x), rtol=1e-6)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    paths = [os.path.dirname(__file__), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _batch_norms(model):
    from kerasapps.models.recompute import Recompute

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer
        elif isinstance(layer, Recompute):
            yield from _batch_norms(layer.block)
        elif hasattr(layer, "layers"):
            yield from _batch_norms(layer)


def test_cifar_recipes_average_batch_norm_statistics_with_torchs_momentum(tmp_path):
    """Factories keep Keras' 0.99 (keras.applications parity; ``bn_momentum`` changes it); the CIFAR recipes set
    bn_momentum (0.9), also inside recomputed blocks (sqrt: two updates per step), and the saved model keeps it."""
    import kerasapps
    from kerasapps.training import checkpoints

    assert {bn.momentum for bn in _batch_norms(FACTORIES["resnet50"](input_shape=(32, 32, 3), classes=10))} == {0.99}
    assert {bn.momentum for bn in _batch_norms(FACTORIES["resnet20"](input_shape=(32, 32, 3), classes=10))} == {0.99}
    recipe = kerasapps.get_recipe("resnet20_cifar10")
    model = recipe.build(recipe.resolve(overrides=["width=4"]))
    assert {bn.momentum for bn in _batch_norms(model)} == {0.9}
    model.save(tmp_path / "m.keras")
    assert {bn.momentum for bn in _batch_norms(checkpoints.load_model(tmp_path / "m.keras", compile=False))} == {0.9}
    remat = recipe.build(recipe.resolve(overrides=["width=4", "remat=true", "bn_momentum=0.81"]))
    assert {round(bn.momentum, 6) for bn in _batch_norms(remat)} == {0.81, 0.9}  # the stem's, the blocks'
    vgg = kerasapps.get_recipe("vgg16_cifar10")
    assert {bn.momentum for bn in _batch_norms(vgg.build(vgg.resolve(overrides=["bn_momentum=0.5"])))} == {0.5}
