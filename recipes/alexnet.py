"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012)."""

from kerasapps.core.lazy import lazy_import
from kerasapps.models.arguments import (
    check_activation,
    check_bool,
    check_choice,
    check_common_args,
    check_positive_int,
    check_rate,
    resolve_input,
)
from kerasapps.models.blocks import conv_block, head
from kerasapps.models.factories import takes_bn_momentum
from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe, cnn_hparams

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
model_layers = lazy_import("kerasapps.models.layers")

__all__ = ["alexnet"]

# Per stem: (kernel, stride, padding) of conv1 and conv2, and the padding of pool1/pool2.
_STEMS = {
    "imagenet": {"conv1": (11, 4, "valid"), "conv2": (5, 1, "same"), "pool": "valid"},
    "small": {"conv1": (5, 1, "same"), "conv2": (5, 1, "same"), "pool": "same"},
}

_IMAGENET_MIN = 67  # == min_input_size(eight_layer_ops(_STEMS["imagenet"])); checked by the tests


@takes_bn_momentum()
def alexnet(
    include_top=True,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
    dropout=0.5,
    lrn=True,
    batch_norm=False,
    activation="relu",
    groups=1,
    fc_units=4096,
    stem="auto",
):
    """AlexNet of "ImageNet Classification with Deep Convolutional Neural Networks".

    Krizhevsky, Sutskever & Hinton, NeurIPS 2012, section 3 and Figure 2,
    in its single-tower form on a 227x227x3 input:

        conv1 96 11x11/4 -> LRN -> maxpool 3x3/2
        conv2 256 5x5    -> LRN -> maxpool 3x3/2
        conv3 384 3x3 -> conv4 384 3x3 -> conv5 256 3x3 -> maxpool 3x3/2
        fc6 4096 -> dropout 0.5 -> fc7 4096 -> dropout 0.5 -> fc8 (classes)

    Parameters at the reference configuration (227x227x3, 1000 classes):
    **62,378,344** with `groups=1` (every layer fully connected across
    channels; the single-GPU form). With `groups=2`, conv2, conv4 and conv5
    only see the kernels on their own GPU, as in the paper's two-GPU network,
    and the count is **60,965,224**, the paper's "60 million parameters".
    (torchvision's `alexnet`, 61,100,840 parameters, follows the later
    "one weird trick" variant with 64-192-384-256-256 kernels, no LRN; it is
    not this network.) LRN uses the paper's constants with alpha *not*
    divided by n (see `kerasapps.models.layers.LocalResponseNormalization`).

    Layer names (paper name in brackets): `block1_conv` [conv1],
    `block1_norm`, `block1_pool`, `block2_conv` [conv2], `block2_norm`,
    `block2_pool`, `block3_conv`, `block4_conv`, `block5_conv`,
    `block5_pool`, `flatten`, `fc1` [fc6], `fc1_dropout`, `fc2` [fc7],
    `fc2_dropout`, `predictions` [fc8]. With `batch_norm=True` each conv is
    followed by `<conv>_bn` and `<conv>_act` (BN before the ReLU and LRN;
    fully connected layers get no BN) and convolutions lose their biases.

    Small inputs: `stem="small"` replaces conv1 by 96 5x5 stride-1 "same"
    kernels and makes pool1/pool2 "same"-padded, so a 32x32 input reaches
    conv3 at 8x8 and the flattened feature map is 3x3x256 (28x28 also gives
    3x3). `stem="auto"` picks "small" when either side is below 67 pixels,
    the minimum of the ImageNet stem. Minimum input: 67x67 ("imagenet"),
    12x12 ("small"). `fc_units` narrows fc6/fc7 for small data sets.

    Args:
        include_top: whether to include the fully connected layers.
        input_shape: `(height, width, channels)`, default `(227, 227, 3)`.
        pooling: `None`, "avg" or "max" global pooling of the last
            feature map when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` (None: logits).
        name: model name.
        dropout: dropout rate after fc6 and fc7 (paper: 0.5; 0 removes the
            Dropout layers).
        lrn: local response normalisation after conv1 and conv2 (paper: on).
        batch_norm: BatchNormalization after every convolution (not in
            the paper).
        activation: activation of the hidden layers (paper: "relu").
        groups: 1 (single tower) or 2 (the paper's two-GPU connectivity of
            conv2, conv4 and conv5).
        fc_units: width of fc6 and fc7 (paper: 4096).
        stem: "auto", "imagenet" or "small" (see above).

    Returns:
        A functional `keras.Model`.
    """
    return eight_layer_net(**locals(), stems=_STEMS, default_shape=(227, 227, 3), imagenet_min=_IMAGENET_MIN)


def eight_layer_ops(stem):
    """The spatial ops of `eight_layer_net` with `stem` (a row of a `stems` table), for the size checks."""
    conv1, conv2, pool = stem["conv1"], stem["conv2"], stem["pool"]
    return [conv1, (3, 2, pool), conv2, (3, 2, pool), (3, 1, "same"), (3, 2, "valid")]


def eight_layer_net(*, stems, default_shape, imagenet_min, include_top, input_shape, pooling, classes,
                    classifier_activation, name, dropout, lrn, batch_norm, activation, fc_units, stem, groups=1):
    """The five-conv, three-fc network AlexNet and ZFNet share, with their argument checks. `stems` maps
    "imagenet" and "small" to the (kernel, stride, padding) of ``conv1`` and ``conv2`` and the padding of
    pools 1 and 2 (``pool``); the other arguments are the factories'.

    Layer names: ``block1_conv``, ``block1_norm``, ``block1_pool``, ``block2_conv``, ``block2_norm``,
    ``block2_pool``, ``block3_conv`` .. ``block5_conv``, ``block5_pool``, then ``flatten``, ``fc1``, ``fc2``
    (with ``fcN_dropout``) and ``predictions``, or the pooling.
    """
    check_common_args(include_top, pooling, classes, classifier_activation)
    check_rate(dropout, "dropout")
    check_bool(lrn, "lrn")
    check_bool(batch_norm, "batch_norm")
    check_activation(activation, "activation")
    check_choice(groups, "groups", (1, 2))
    check_positive_int(fc_units, "fc_units")
    input_shape, stem = resolve_input(input_shape, model_name=name, default_shape=default_shape,
                                      require_static=include_top, stem=stem, imagenet_min=imagenet_min,
                                      spatial_ops=lambda stem: eight_layer_ops(stems[stem]))
    conv1, conv2, pool_padding = stems[stem]["conv1"], stems[stem]["conv2"], stems[stem]["pool"]
    conv_args = {"activation": activation, "batch_norm": batch_norm}

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = conv_block(inputs, 96, conv1[0], strides=conv1[1], padding=conv1[2], name="block1_conv", **conv_args)
    if lrn:
        x = model_layers.LocalResponseNormalization(name="block1_norm")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding, name="block1_pool")(x)
    x = conv_block(x, 256, conv2[0], strides=conv2[1], padding=conv2[2], groups=groups, name="block2_conv",
                   **conv_args)
    if lrn:
        x = model_layers.LocalResponseNormalization(name="block2_norm")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding=pool_padding, name="block2_pool")(x)
    x = conv_block(x, 384, 3, name="block3_conv", **conv_args)
    x = conv_block(x, 384, 3, groups=groups, name="block4_conv", **conv_args)
    x = conv_block(x, 256, 3, groups=groups, name="block5_conv", **conv_args)
    x = keras.layers.MaxPooling2D(3, strides=2, name="block5_pool")(x)
    x = head(x, include_top=include_top, pooling=pooling, hidden=(("fc1", fc_units), ("fc2", fc_units)),
             activation=activation, dropout=dropout, classes=classes, classifier_activation=classifier_activation)
    return keras.Model(inputs, x, name=name)


# ---------------------------------------------------------------------------- recipe

RECIPES = [cifar10_recipe(
    "alexnet_cifar10", alexnet, "AlexNet (Krizhevsky et al. 2012) with LRN, small stem, on CIFAR-10",
    "Krizhevsky et al. 2012 (ImageNet); CIFAR-10 adaptation: 5x5/1 conv1, 'same' pools, fc 1024",
    hparams=cnn_hparams(lrn=True, fc_units=1024), fixed={"stem": "small"},
    defaults={"learning_rate": 0.01, "l2": 5e-4, "nesterov": False, **PRACTICE})]
