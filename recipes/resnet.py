"""ResNet v1 (He, Zhang, Ren & Sun, 2015): the ImageNet and CIFAR-10 families.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385). ImageNet models (Table 1): `resnet18`, `resnet34`
(basic blocks), `resnet50`, `resnet101`, `resnet152` (bottleneck blocks).
CIFAR-10 models (section 4.2): `resnet20`, `resnet32`, `resnet44`,
`resnet56`, `resnet110`.

All follow keras.applications' ResNet v1 convention (`keras/src/applications/
resnet.py`): convolutions with biases, BatchNormalization with epsilon
1.001e-5, the stride of a bottleneck block on its first 1x1 convolution, and
its layer names (`conv1_conv`, `conv2_block1_1_conv`, `conv2_block1_0_bn`,
`conv5_block3_out`, `avg_pool`, `predictions`). ResNet-50/101/152 are layer
for layer keras.applications' models, so their ImageNet weights load by name
or by order. `count_params()` includes BatchNorm's moving mean and variance
(non-trainable) and the conv biases; torchvision's counts include neither,
so `trainable params - conv biases` is the figure to compare with it.
"""

import textwrap

from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import classes_in
from kerasapps.models.arguments import (
    check_choice,
    check_common_args,
    check_min_size,
    check_positive_int,
    choose_stem,
    resolve_input_shape,
)
from kerasapps.models.blocks import pool_features

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
layers = lazy_import("keras.layers")
model_layers = lazy_import("kerasapps.models.layers")
model_weights = lazy_import("kerasapps.models.weights")

__all__ = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
]

_BN_EPSILON = 1.001e-5
# depth: (block, blocks per stage conv2..conv5)
_IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_STEM_OPS = {"imagenet": [(7, 2, "same"), (3, 2, "same")], "small": []}
_IMAGENET_MIN = 32  # total stride 32, keras.applications' minimum


_BN_MOMENTUM = 0.99  # Keras' default; blocks built for recomputation use its square root (kerasapps.models.recompute)


def _bn(x, name, momentum=_BN_MOMENTUM):
    return layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=momentum, name=name)(x)


def _conv(x, filters, kernel_size, name, strides=1):
    """A conv with torchvision's symmetric padding: "same" at stride 1, an
    explicit `name_pad` ZeroPadding2D and "valid" when strided."""
    if strides > 1 and kernel_size > 1:
        pad_name = name[: -len("_conv")] + "_pad"  # conv3_block1_1_conv -> conv3_block1_1_pad
        x = layers.ZeroPadding2D(kernel_size // 2, name=pad_name)(x)
        return layers.Conv2D(filters, kernel_size, strides=strides, name=name)(x)
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="same", name=name)(x)


def _shortcut(x, filters, stride, kind, name, momentum):
    """`kind`: "identity", "projection" (option B: 1x1 conv + BN) or "A"
    (option A: subsample + zero channels, no parameters)."""
    if kind == "identity":
        return x
    if kind == "projection":
        shortcut = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        return _bn(shortcut, f"{name}_0_bn", momentum)
    if stride > 1:
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    return model_layers.ChannelPadding(filters - x.shape[-1], name=f"{name}_0_pad")(x)


def _basic_block(x, filters, stride, shortcut_kind, name, momentum):
    """Two 3x3 convs (the stride on the first) + shortcut; batch norm with `momentum`."""
    if stride == 1 and x.shape[-1] == filters:
        shortcut_kind = "identity"
    shortcut = _shortcut(x, filters, stride, shortcut_kind, name, momentum)
    x = _conv(x, filters, 3, f"{name}_1_conv", strides=stride)
    x = _bn(x, f"{name}_1_bn", momentum)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = _conv(x, filters, 3, f"{name}_2_conv")
    x = _bn(x, f"{name}_2_bn", momentum)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _bottleneck_block(x, filters, stride, shortcut_kind, name, momentum):
    """keras.applications' `residual_block_v1`: 1x1 (strided), 3x3, 1x1 x4."""
    if stride == 1 and x.shape[-1] == 4 * filters:
        shortcut_kind = "identity"
    shortcut = _shortcut(x, 4 * filters, stride, shortcut_kind, name, momentum)
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = _bn(x, f"{name}_1_bn", momentum)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = _bn(x, f"{name}_2_bn", momentum)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _bn(x, f"{name}_3_bn", momentum)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _stages(x, block_fn, widths, depths, strides, shortcut_kind, remat=False):
    """The residual stages; `remat=True` wraps each block for recomputation (kerasapps.models.recompute),
    with the batch-norm momentum whose two updates per step equal one."""
    from kerasapps.models.recompute import bn_momentum_for_remat, recompute_block

    if not isinstance(remat, bool):
        raise ValueError(f"remat must be True or False; received remat={remat!r}")
    momentum = bn_momentum_for_remat(_BN_MOMENTUM) if remat else _BN_MOMENTUM
    for stage, (filters, blocks, stride) in enumerate(zip(widths, depths, strides), start=2):
        for index in range(1, blocks + 1):
            name, block_stride = f"conv{stage}_block{index}", stride if index == 1 else 1
            if not remat:
                x = block_fn(x, filters, block_stride, shortcut_kind, name, momentum)
                continue
            x = recompute_block(
                lambda t, f=filters, s=block_stride, n=name: block_fn(t, f, s, shortcut_kind, n, momentum), x, name=name
            )
    return x


def _top(x, include_top, pooling, classes, classifier_activation):
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return pool_features(x, pooling)


def _imagenet_resnet(
    depth, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat=False
):
    check_common_args(
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    input_shape = resolve_input_shape(
        input_shape, default_shape=(224, 224, 3), require_static=False, model_name=name
    )
    stem = choose_stem(stem, input_shape, imagenet_min=_IMAGENET_MIN)
    check_min_size(
        input_shape,
        _STEM_OPS[stem] + [(3, 2, "same")] * 3,
        model_name=name,
        configuration=f"stem={stem!r}",
    )
    block, depths = _IMAGENET_DEPTHS[depth]
    block_fn = _basic_block if block == "basic" else _bottleneck_block

    inputs = keras.Input(shape=input_shape, name="input_layer")
    if stem == "imagenet":
        x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
        x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    else:
        x = layers.Conv2D(64, 3, padding="same", name="conv1_conv")(inputs)
    x = _bn(x, "conv1_bn")
    x = layers.Activation("relu", name="conv1_relu")(x)
    if stem == "imagenet":
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = _stages(x, block_fn, (64, 128, 256, 512), depths, (1, 2, 2, 2), "projection", remat)
    x = _top(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


def _cifar_resnet(
    depth, include_top, input_shape, pooling, classes, classifier_activation, name, shortcut,
    width, remat=False
):
    check_common_args(
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    check_choice(shortcut, "shortcut", ("A", "B"))
    check_positive_int(width, "width")
    input_shape = resolve_input_shape(
        input_shape, default_shape=(32, 32, 3), require_static=False, model_name=name
    )
    check_min_size(
        input_shape, [(3, 2, "same")] * 2, model_name=name, configuration="total stride 4"
    )
    blocks = (depth - 2) // 6
    kind = "A" if shortcut == "A" else "projection"

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = layers.Conv2D(width, 3, padding="same", name="conv1_conv")(inputs)
    x = _bn(x, "conv1_bn")
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = _stages(x, _basic_block, (width, 2 * width, 4 * width), (blocks,) * 3, (1, 2, 2), kind, remat)
    x = _top(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


_IMAGENET_DOC = """ResNet-{depth} v1 ({block} blocks {depths}) of "Deep Residual Learning for
    Image Recognition" (He et al., CVPR 2016, Table 1).

    Parameters at the reference configuration (224x224x3, 1000 classes):
    **{total:,}** in Keras' count, {trainable:,} of them trainable.
{reference}

    Stem `conv1` 7x7/2 + 3x3/2 max pool, then stages conv2..conv5 of blocks
    with {channels} output channels, the stride 2 on the first block of
    conv3..conv5, projection (option B) shortcuts where the shape changes,
    global average pool and `predictions`. Names and convention: see the
    module docstring.

    Small inputs: `stem="small"` replaces the 7x7/2 conv and the max pool by
    a 3x3 stride-1 `conv1_conv` (total stride 8, the usual CIFAR adaptation;
    conv1's kernel then no longer matches ImageNet weights). `stem="auto"`
    (default) uses "imagenet" for inputs of at least 32x32, so 32x32 builds
    keras.applications' network (a 1x1 final map) and 28x28 the small stem.
    Minimum input: 32x32 ("imagenet"), 8x8 ("small"); height and width may
    be None.

    Args:
        include_top: whether to include `avg_pool` and `predictions`.
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        pooling: `None`, "avg" or "max" global pooling of the last stage
            when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` (None: logits).
        name: model name.
        stem: "auto", "imagenet" or "small".
        weights: (ResNet-50/101/152) None, "imagenet" (keras.applications'
            ImageNet weights, downloaded once) or the path of a
            `.weights.h5` / keras.applications `.h5` weight file.
        remat: recompute each residual block's activations in the backward
            pass (`kerasapps.models.recompute.Recompute`, `tf.recompute_grad`): less
            memory, about one more forward pass of compute. Blocks become
            nested sub-models named `convS_blockB`.

    Returns:
        A functional `keras.Model`.
    """

_CIFAR_DOC = """ResNet-{depth} for CIFAR-10 of "Deep Residual Learning for Image
    Recognition" (He et al., CVPR 2016, section 4.2, Table 6).

    A 3x3 `conv1_conv` of 16 filters, three stages (conv2, conv3, conv4) of
    {blocks} basic blocks with 16/32/64 filters (stride 2 on the first block
    of conv3 and conv4), global average pool and `predictions`: 6n+2 = {depth}
    weighted layers with n = {blocks}. The paper reports {paper} parameters.

    Parameters at the reference configuration (32x32x3, 10 classes):
    **{total:,}** in Keras' count with `shortcut="A"` (default, the paper's
    choice for CIFAR: identity shortcuts, stride-2 subsampling and zero
    channels where the shape changes, no parameters); {trainable:,} trainable,
    and {no_bias:,} without the conv biases, torchvision-style: the count of
    the widely used PyTorch reproduction (akamaster/pytorch_resnet_cifar10).
    `shortcut="B"` uses 1x1 projection + BN shortcuts instead ({total_b:,}
    parameters; the Keras CIFAR-10 example's `resnet_v1`, whose projections
    have no BN, has {keras_example:,}).

    Any input of at least 4x4 works (height and width may be None), e.g.
    28x28 MNIST-sized images. `width` scales the filters (16 in the paper).

    Args:
        include_top: whether to include `avg_pool` and `predictions`.
        input_shape: `(height, width, channels)`, default `(32, 32, 3)`.
        pooling: `None`, "avg" or "max" global pooling of the last stage
            when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` (None: logits).
        name: model name.
        shortcut: "A" (zero-padding identity) or "B" (projection).
        width: filters of the first stage (16).
        remat: recompute each residual block's activations in the backward
            pass (`kerasapps.models.recompute`; blocks become sub-models `convS_blockB`).

    Returns:
        A functional `keras.Model`.
    """


_TORCHVISION = "torchvision's `resnet{}` has {:,}: the trainable count less the conv biases."
_KERAS = "Equal to `keras.applications.ResNet{}(weights=None).count_params()`. " + _TORCHVISION
# depth: the figures quoted in the docstrings (asserted by tests/test_cnn_factories.py).
_FIGURES = {
    18: dict(total=11_703_912, trainable=11_694_312, reference=_TORCHVISION.format(18, 11_689_512)),
    34: dict(total=21_823_208, trainable=21_806_184, reference=_TORCHVISION.format(34, 21_797_672)),
    50: dict(total=25_636_712, trainable=25_583_592, reference=_KERAS.format(50, 50, 25_557_032)),
    101: dict(total=44_707_176, trainable=44_601_832,
              reference=_KERAS.format(101, 101, 44_549_160)),
    152: dict(total=60_419_944, trainable=60_268_520,
              reference=_KERAS.format(152, 152, 60_192_808)),
    20: dict(total=271_786, trainable=270_410, no_bias=269_722, total_b=274_826, paper="0.27M"),
    32: dict(total=467_562, trainable=465_290, no_bias=464_154, total_b=470_602, paper="0.46M"),
    44: dict(total=663_338, trainable=660_170, no_bias=658_586, total_b=666_378, paper="0.66M"),
    56: dict(total=859_114, trainable=855_050, no_bias=853_018, total_b=862_154, paper="0.85M"),
    110: dict(total=1_740_106, trainable=1_732_010, no_bias=1_727_962, total_b=1_743_146,
              paper="1.7M"),
}


def _documented(depth):
    """Gives a factory its docstring, filled in from `_FIGURES`."""

    def decorate(factory):
        figures = _FIGURES[depth]
        if depth in _IMAGENET_DEPTHS:
            block, depths = _IMAGENET_DEPTHS[depth]
            channels = "64/128/256/512" if block == "basic" else "256/512/1024/2048"
            reference = textwrap.fill(
                figures["reference"], width=76, initial_indent=" " * 4, subsequent_indent=" " * 4
            )
            factory.__doc__ = _IMAGENET_DOC.format(
                depth=depth, block=block, depths=depths, channels=channels,
                **{**figures, "reference": reference},
            )
        else:
            factory.__doc__ = _CIFAR_DOC.format(
                depth=depth, blocks=(depth - 2) // 6,
                keras_example=figures["total_b"] - 4 * (32 + 64), **figures,
            )
        return factory

    return decorate


@_documented(18)
def resnet18(include_top=True, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet18", stem="auto", remat=False):
    return _imagenet_resnet(
        18, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat
    )


@_documented(34)
def resnet34(include_top=True, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet34", stem="auto", remat=False):
    return _imagenet_resnet(
        34, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat
    )


@_documented(50)
def resnet50(include_top=True, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet50", stem="auto", weights=None, remat=False):
    if remat and weights is not None:
        raise ValueError("resnet50: weights= loads into the plain model only; build with remat=False, "
                         f"or load the weights afterwards; received weights={weights!r} with remat=True")
    model = _imagenet_resnet(
        50, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat
    )
    return model_weights.apply_weights(model, weights, lambda: keras.applications.ResNet50(
        weights="imagenet", include_top=include_top, input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation))


@_documented(101)
def resnet101(include_top=True, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet101", stem="auto", weights=None, remat=False):
    if remat and weights is not None:
        raise ValueError("resnet101: weights= loads into the plain model only; build with remat=False, "
                         f"or load the weights afterwards; received weights={weights!r} with remat=True")
    model = _imagenet_resnet(
        101, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat
    )
    return model_weights.apply_weights(model, weights, lambda: keras.applications.ResNet101(
        weights="imagenet", include_top=include_top, input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation))


@_documented(152)
def resnet152(include_top=True, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet152", stem="auto", weights=None, remat=False):
    if remat and weights is not None:
        raise ValueError("resnet152: weights= loads into the plain model only; build with remat=False, "
                         f"or load the weights afterwards; received weights={weights!r} with remat=True")
    model = _imagenet_resnet(
        152, include_top, input_shape, pooling, classes, classifier_activation, name, stem, remat
    )
    return model_weights.apply_weights(model, weights, lambda: keras.applications.ResNet152(
        weights="imagenet", include_top=include_top, input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation))


@_documented(20)
def resnet20(include_top=True, input_shape=None, pooling=None, classes=10,
             classifier_activation="softmax", name="resnet20", shortcut="A", width=16, remat=False):
    return _cifar_resnet(
        20, include_top, input_shape, pooling, classes, classifier_activation, name,
        shortcut, width, remat,
    )


@_documented(32)
def resnet32(include_top=True, input_shape=None, pooling=None, classes=10,
             classifier_activation="softmax", name="resnet32", shortcut="A", width=16, remat=False):
    return _cifar_resnet(
        32, include_top, input_shape, pooling, classes, classifier_activation, name,
        shortcut, width, remat,
    )


@_documented(44)
def resnet44(include_top=True, input_shape=None, pooling=None, classes=10,
             classifier_activation="softmax", name="resnet44", shortcut="A", width=16, remat=False):
    return _cifar_resnet(
        44, include_top, input_shape, pooling, classes, classifier_activation, name,
        shortcut, width, remat,
    )


@_documented(56)
def resnet56(include_top=True, input_shape=None, pooling=None, classes=10,
             classifier_activation="softmax", name="resnet56", shortcut="A", width=16, remat=False):
    return _cifar_resnet(
        56, include_top, input_shape, pooling, classes, classifier_activation, name,
        shortcut, width, remat,
    )


@_documented(110)
def resnet110(include_top=True, input_shape=None, pooling=None, classes=10,
              classifier_activation="softmax", name="resnet110", shortcut="A", width=16, remat=False):
    return _cifar_resnet(
        110, include_top, input_shape, pooling, classes, classifier_activation, name,
        shortcut, width, remat,
    )


# ---------------------------------------------------------------------------- recipes

# ResNet-20's defaults were re-chosen on the CIFAR-10 subset's validation split over 3 seeds (README, "How the
# defaults were chosen"): batch 64 at half the rate, label smoothing, random erasing and 5x the weight decay, and
# 100 epochs (validation 0.7775 against 0.71 at 40, seed 1; about 16 minutes on 2 CPU cores for the subset's 3,600
# training images); the paper's (batch 128, SGD 0.1, l2 1e-4, 164 epochs) are `--set` keys away. ResNet-56 takes
# ResNet-20's setting, with warm-up, at its old number of epochs.
def _cifar_recipe(depth, factory):
    from kerasapps.core.hparams import HParam
    from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe

    defaults = {
        # 100 epochs of the subset's 3,600 training images as a number of examples: a larger set (full CIFAR-10)
        # trains as many steps in fewer epochs, a smaller one at most 100 epochs (the subset and a photo folder: 100)
        20: {"epochs": "auto", "auto_examples": 360_000, "max_epochs": 100, "batch_size": 64, "learning_rate": 0.05,
             "l2": 5e-4, **PRACTICE},
        # ResNet-20's setting (10-epoch check on the subset's validation split: 0.5100 against 0.4550 for the old
        # defaults), at the old 30 epochs' worth of examples: 100 epochs would take about 50 minutes on 2 CPU cores
        56: {"epochs": "auto", "auto_examples": 108_000, "max_epochs": 100, "batch_size": 64, "learning_rate": 0.05,
             "l2": 5e-4, "warmup_epochs": 2.0, **PRACTICE},
    }[depth]

    def build(hp, meta):
        return factory(input_shape=(32, 32, 3), classes=classes_in(meta, 10), shortcut=hp.shortcut, width=hp.width,
                       remat=hp.remat)

    return cifar10_recipe(
        f"resnet{depth}_cifar10", factory,
        f"ResNet-{depth} (He et al. 2015, section 4.2) on CIFAR-10 with shifts and flips",
        f"He et al. 2015, Table 6: ResNet-{depth} {dict(((20, '8.75'), (56, '6.97')))[depth]}% test error "
        "on full CIFAR-10 (164 epochs, batch 128, SGD 0.1, momentum 0.9, weight decay 1e-4)",
        hparams={"shortcut": HParam("A", str, "A: zero-padded identity shortcuts (the paper's CIFAR choice); "
                                    "B: 1x1 projections", choices=("A", "B")),
                 "width": HParam(16, int, "filters in the first stage (16, 32, 64 in the paper)", minimum=1),
                 "remat": HParam(False, bool, "recompute each residual block's activations in the backward pass "
                                 "(less memory, more compute; tf.recompute_grad per block)")},
        build=build, defaults=defaults)



RECIPES = [_cifar_recipe(20, resnet20), _cifar_recipe(56, resnet56)]
