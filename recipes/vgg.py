"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2014)."""

from kerasapps.core.lazy import lazy_import
from kerasapps.models.arguments import (
    check_activation,
    check_bool,
    check_common_args,
    check_positive_int,
    check_rate,
    resolve_input,
)
from kerasapps.models.blocks import conv_block, head
from kerasapps.models.factories import takes_bn_momentum
from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe, cnn_hparams

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
layers = lazy_import("keras.layers")
model_weights = lazy_import("kerasapps.models.weights")

__all__ = ["vgg16", "vgg19"]

_FILTERS = (64, 128, 256, 512, 512)
_CONVS_PER_BLOCK = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}  # Table 1's configurations D and E
_SPATIAL_OPS = [(2, 2, "valid")] * 5  # five 2x2/2 max pools: minimum input 32x32


def _vgg(convs_per_block, *, include_top, input_shape, pooling, classes, classifier_activation, name, dropout,
         batch_norm, activation, fc_units):
    check_common_args(include_top, pooling, classes, classifier_activation)
    check_rate(dropout, "dropout")
    check_bool(batch_norm, "batch_norm")
    check_activation(activation, "activation")
    check_positive_int(fc_units, "fc_units")
    input_shape, _ = resolve_input(input_shape, model_name=name, default_shape=(224, 224, 3),
                                   require_static=include_top, spatial_ops=_SPATIAL_OPS,
                                   configuration="five 2x2 max pools")

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = inputs
    for block, (filters, convs) in enumerate(zip(_FILTERS, convs_per_block), start=1):
        for index in range(1, convs + 1):
            x = conv_block(x, filters, 3, activation=activation, batch_norm=batch_norm,
                           name=f"block{block}_conv{index}")
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = head(x, include_top=include_top, pooling=pooling, hidden=(("fc1", fc_units), ("fc2", fc_units)),
             activation=activation, dropout=dropout, classes=classes, classifier_activation=classifier_activation)
    return keras.Model(inputs, x, name=name)


_DOC = """VGG-{depth} (configuration {letter}) of "Very Deep Convolutional Networks for
    Large-Scale Image Recognition".

    Simonyan & Zisserman, arXiv:1409.1556 (ICLR 2015), Table 1: five blocks
    of 3x3 "same" convolutions ({convs} per block; 64, 128, 256, 512, 512
    filters), each block ending in a 2x2/2 max pool, then fc 4096 -> fc 4096
    -> classes, with dropout 0.5 after both 4096-wide layers (section 3.1).

    Parameters at the reference configuration (224x224x3, 1000 classes):
    **{params:,}**, equal to `keras.applications.VGG{depth}(weights=None)` and to
    torchvision's `vgg{depth}` (the paper's Table 2 rounds it to {paper}M). The
    weighted layers have exactly keras.applications' names, order and shapes
    (`block1_conv1` ... `block5_conv{last}`, `fc1`, `fc2`, `predictions`), so its
    ImageNet weights load by name or by order; the only additions are the
    weightless `fc1_dropout` and `fc2_dropout` (`dropout=0` removes them).
    `batch_norm=True` gives the later "VGG-BN" variant: bias-free convs, each
    followed by `<conv>_bn` and `<conv>_act`.

    At 32x32x3 with 10 classes (the CIFAR shape) the last pool is 1x1x512
    and the model has {small:,} parameters with `fc_units=4096`;
    `fc_units=512` is the usual CIFAR head. The minimum input is 32x32 (as
    in keras.applications): 28x28 images must be padded or resized.

    Args:
        include_top: whether to include `flatten`, `fc1`, `fc2` and
            `predictions`.
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        pooling: `None`, "avg" or "max" global pooling of `block5_pool`
            when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` (None: logits).
        name: model name.
        dropout: dropout rate after fc1 and fc2 (paper: 0.5).
        batch_norm: BatchNormalization after every convolution.
        activation: activation of the hidden layers (paper: "relu").
        fc_units: width of fc1 and fc2 (paper: 4096).
        weights: None, "imagenet" (keras.applications' ImageNet weights,
            downloaded once) or the path of a `.weights.h5` /
            keras.applications `.h5` weight file.

    Returns:
        A functional `keras.Model`.
    """


@takes_bn_momentum()
def vgg16(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
          name="vgg16", dropout=0.5, batch_norm=False, activation="relu", fc_units=4096, weights=None):
    return _create(16, locals())


@takes_bn_momentum()
def vgg19(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
          name="vgg19", dropout=0.5, batch_norm=False, activation="relu", fc_units=4096, weights=None):
    return _create(19, locals())


def _create(depth, args):
    """The generic constructor behind `vgg16` and `vgg19`: `args` are the factory's arguments; "imagenet"
    weights come from keras.applications' model (downloaded once into ~/.keras/models)."""
    weights = args.pop("weights")
    model = _vgg(_CONVS_PER_BLOCK[depth], **args)
    top = {key: args[key] for key in ("include_top", "input_shape", "pooling", "classes", "classifier_activation")}
    return model_weights.apply_weights(model, weights, lambda: getattr(keras.applications, f"VGG{depth}")(
        weights="imagenet", **top))


vgg16.__doc__ = _DOC.format(
    depth=16, letter="D", convs="2, 2, 3, 3, 3", params=138_357_544, paper=138, last=3,
    small=33_638_218,
)
vgg19.__doc__ = _DOC.format(
    depth=19, letter="E", convs="2, 2, 4, 4, 4", params=143_667_240, paper=144, last=4,
    small=38_947_914,
)


# ---------------------------------------------------------------------------- recipe

RECIPES = [cifar10_recipe(
    "vgg16_cifar10", vgg16, "VGG-16 (Simonyan & Zisserman 2014) with batch norm on CIFAR-10",
    "Simonyan & Zisserman 2014 (ImageNet); CIFAR-10 adaptation: batch norm after each conv, fc 512",
    hparams=cnn_hparams(batch_norm=True, fc_units=512),
    defaults={"learning_rate": 0.05, "l2": 5e-4, "warmup_epochs": 2.0, **PRACTICE})]
