"""ResNet v1 (He, Zhang, Ren & Sun, 2015): the ImageNet and CIFAR-10 families.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385). ImageNet models (Table 1): `resnet18`, `resnet34`
(basic blocks), `resnet50`, `resnet101`, `resnet152` (bottleneck blocks).
CIFAR-10 models (section 4.2): `resnet20`, `resnet32`, `resnet44`,
`resnet56`, `resnet110`.

This module declares the factories, each a signature and one call of the
generic constructor `_resnet` on a row of the depth table, with their
docstrings and figures, and the CIFAR-10 recipes. The blocks and the two
builders live in `kerasapps.models.resnet`.

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

from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.models.factories import takes_bn_momentum
from kerasapps.models.resnet import IMAGENET_DEPTHS, cifar_resnet, imagenet_resnet
from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
model_weights = lazy_import("kerasapps.models.weights")

__all__ = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
]


def _resnet(depth, args):
    """The generic constructor behind the ten factories: `args` are a factory's arguments. ImageNet depths
    (`IMAGENET_DEPTHS`) build `imagenet_resnet`, the others `cifar_resnet`; a factory with `weights`
    (ResNet-50/101/152) loads them, keras.applications' `ResNet{depth}` giving the ImageNet ones."""
    if depth not in IMAGENET_DEPTHS:
        return cifar_resnet(depth, **args)
    if "weights" not in args:
        return imagenet_resnet(depth, **args)
    weights = args.pop("weights")
    if args["remat"] and weights is not None:
        raise ValueError(f"resnet{depth}: weights= loads into the plain model only; build with remat=False, "
                         f"or load the weights afterwards; received weights={weights!r} with remat=True")
    model = imagenet_resnet(depth, **args)
    top = {key: args[key] for key in ("include_top", "input_shape", "pooling", "classes", "classifier_activation")}
    return model_weights.apply_weights(
        model, weights, lambda: getattr(keras.applications, f"ResNet{depth}")(weights="imagenet", **top))


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
# depth: the figures quoted in the docstrings (asserted by tests/recipes/test_cnn_factories.py).
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
        if depth in IMAGENET_DEPTHS:
            block, depths = IMAGENET_DEPTHS[depth]
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


# ---------------------------------------------------------------------------- factories


@takes_bn_momentum()
@_documented(18)
def resnet18(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
             name="resnet18", stem="auto", remat=False):
    return _resnet(18, locals())


@takes_bn_momentum()
@_documented(34)
def resnet34(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
             name="resnet34", stem="auto", remat=False):
    return _resnet(34, locals())


@takes_bn_momentum()
@_documented(50)
def resnet50(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
             name="resnet50", stem="auto", weights=None, remat=False):
    return _resnet(50, locals())


@takes_bn_momentum()
@_documented(101)
def resnet101(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
              name="resnet101", stem="auto", weights=None, remat=False):
    return _resnet(101, locals())


@takes_bn_momentum()
@_documented(152)
def resnet152(include_top=True, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
              name="resnet152", stem="auto", weights=None, remat=False):
    return _resnet(152, locals())


@takes_bn_momentum()
@_documented(20)
def resnet20(include_top=True, input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
             name="resnet20", shortcut="A", width=16, remat=False):
    return _resnet(20, locals())


@takes_bn_momentum()
@_documented(32)
def resnet32(include_top=True, input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
             name="resnet32", shortcut="A", width=16, remat=False):
    return _resnet(32, locals())


@takes_bn_momentum()
@_documented(44)
def resnet44(include_top=True, input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
             name="resnet44", shortcut="A", width=16, remat=False):
    return _resnet(44, locals())


@takes_bn_momentum()
@_documented(56)
def resnet56(include_top=True, input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
             name="resnet56", shortcut="A", width=16, remat=False):
    return _resnet(56, locals())


@takes_bn_momentum()
@_documented(110)
def resnet110(include_top=True, input_shape=None, pooling=None, classes=10, classifier_activation="softmax",
              name="resnet110", shortcut="A", width=16, remat=False):
    return _resnet(110, locals())


# ---------------------------------------------------------------------------- recipes

# ResNet-20's defaults were re-chosen on the CIFAR-10 subset's validation split over 3 seeds (the docs, "How the
# defaults were chosen"): batch 64 at half the rate, label smoothing, random erasing and 5x the weight decay, and
# 100 epochs (validation 0.7775 against 0.71 at 40, seed 1; about 16 minutes on 2 CPU cores for the subset's 3,600
# training images); the paper's (batch 128, SGD 0.1, l2 1e-4, 164 epochs) are `--set` keys away. ResNet-56 takes
# ResNet-20's setting, with warm-up, at its old number of epochs.
def _cifar_recipe(depth, factory):
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
        defaults=defaults)


RECIPES = [_cifar_recipe(20, resnet20), _cifar_recipe(56, resnet56)]
