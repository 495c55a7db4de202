"""GoogLeNet / Inception v1 (Szegedy et al., 2014)."""

from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.models.arguments import check_bool, check_common_args, check_rate, resolve_input
from kerasapps.models.blocks import classifier_top, conv_block, head
from kerasapps.models.factories import takes_bn_momentum
from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe, cnn_hparams

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
layers = lazy_import("keras.layers")
model_layers = lazy_import("kerasapps.models.layers")

__all__ = ["googlenet"]

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
_POOL_BEFORE = {"4a": "pool3", "5a": "pool4"}
_AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
_AUTO_IMAGENET_MIN = 80  # == min_input_size(_spatial_ops("imagenet", True)); see the docstring


def _spatial_ops(stem, aux_classifiers):
    ops = [(7, 2, "same"), (3, 2, "same")] if stem == "imagenet" else [(3, 1, "same")]
    ops += [(3, 2, "same"), (3, 2, "same")]  # pool2, pool3
    if aux_classifiers:
        ops.append(("min", 5))  # the aux heads' 5x5/3 average pool at inception 4a
    return ops + [(3, 2, "same")]  # pool4


def _stem(inputs, stem, lrn, batch_norm):
    """conv1 [+ pool1] (the "small" stem: a 3x3 stride-1 conv1), norm1, conv2_reduce, conv2, norm2, pool2."""
    if stem == "imagenet":
        x = conv_block(inputs, 64, 7, strides=2, name="conv1", batch_norm=batch_norm)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    else:
        x = conv_block(inputs, 64, 3, name="conv1", batch_norm=batch_norm)
    if lrn:
        x = model_layers.LocalResponseNormalization(name="norm1")(x)
    x = conv_block(x, 64, 1, name="conv2_reduce", batch_norm=batch_norm)
    x = conv_block(x, 192, 3, name="conv2", batch_norm=batch_norm)
    if lrn:
        x = model_layers.LocalResponseNormalization(name="norm2")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)


def _inception(x, spec, name, batch_norm):
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = spec
    args = {"batch_norm": batch_norm}
    branch1 = conv_block(x, n1x1, 1, name=f"{name}_1x1", **args)
    branch2 = conv_block(x, n3x3_reduce, 1, name=f"{name}_3x3_reduce", **args)
    branch2 = conv_block(branch2, n3x3, 3, name=f"{name}_3x3", **args)
    branch3 = conv_block(x, n5x5_reduce, 1, name=f"{name}_5x5_reduce", **args)
    branch3 = conv_block(branch3, n5x5, 5, name=f"{name}_5x5", **args)
    branch4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch4 = conv_block(branch4, pool_proj, 1, name=f"{name}_pool_proj", **args)
    return layers.Concatenate(name=f"{name}_output")([branch1, branch2, branch3, branch4])


def _aux_head(x, name, classes, classifier_activation, dropout, batch_norm):
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv_block(x, 128, 1, name=f"{name}_conv", batch_norm=batch_norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    return classifier_top(x, classes=classes, classifier_activation=classifier_activation, reduce=None,
                          dropout=dropout, prefix=f"{name}_")


@takes_bn_momentum()
def googlenet(
    include_top=True,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="googlenet",
    aux_classifiers=False,
    dropout=0.4,
    aux_dropout=0.7,
    lrn=True,
    batch_norm=False,
    stem="auto",
):
    """GoogLeNet (Inception v1) of "Going Deeper with Convolutions".

    Szegedy et al., CVPR 2015 (arXiv:1409.4842), Table 1 and Figure 3:

        conv1 64 7x7/2 -> maxpool 3x3/2 -> LRN -> conv2_reduce 64 1x1
        -> conv2 192 3x3 -> LRN -> maxpool 3x3/2
        -> inception 3a, 3b -> maxpool 3x3/2 -> inception 4a .. 4e
        -> maxpool 3x3/2 -> inception 5a, 5b -> global average pool
        -> dropout 0.4 -> predictions

    Each inception module concatenates a 1x1 branch, a 1x1 reduction + 3x3
    branch, a 1x1 reduction + 5x5 branch and a 3x3 max pool + 1x1
    projection, with the widths of Table 1. All convolutions are ReLU, all
    pools "same"-padded (the paper's 224 -> 112 -> 56 -> 28 -> 14 -> 7).

    Parameters at the reference configuration (224x224x3, 1000 classes,
    no auxiliary heads): **6,998,552** (6,990,272 weights and 8,280
    biases); 13,378,280 with the auxiliary heads. The paper's Table 1 lists
    approximate per-layer weight counts that total about 6.8M (e.g. 159K
    for inception 3a, where the table's own widths give 163,328 weights).
    torchvision's `googlenet` (6,624,904 trainable parameters) differs by
    design: BatchNorm in every conv, no LRN, and 3x3 kernels in the "5x5"
    branch; it is not this network.

    `aux_classifiers=True` adds the two training heads of section 5 on the
    outputs of 4a and 4d (5x5/3 average pool, 128 1x1 conv, fc 1024,
    dropout 0.7, classifier); the model then has three outputs,
    `[predictions, aux1_predictions, aux2_predictions]`, to be trained with
    loss weights 1, 0.3, 0.3 and discarded at inference (build the model
    again without them and load weights by name). It needs
    `include_top=True` and a static input size.

    Layer names: `conv1`, `pool1`, `norm1`, `conv2_reduce`, `conv2`,
    `norm2`, `pool2`, `inception_3a_1x1`, `inception_3a_3x3_reduce`,
    `inception_3a_3x3`, `inception_3a_5x5_reduce`, `inception_3a_5x5`,
    `inception_3a_pool`, `inception_3a_pool_proj`, `inception_3a_output`,
    ..., `pool3`, `pool4`, `avg_pool`, `dropout`, `predictions`,
    `aux1_pool`, `aux1_conv`, `aux1_flatten`, `aux1_fc`, `aux1_dropout`,
    `aux1_predictions` (and `aux2_*`). With `batch_norm=True` each conv is
    followed by `<conv>_bn` and `<conv>_act` and loses its bias.

    Small inputs: `stem="small"` replaces conv1 by 64 3x3 stride-1 kernels
    and drops pool1, so a 32x32 input reaches inception 3a at 16x16, 4a at
    8x8 and 5a at 4x4 (28x28: 14, 7, 4). `stem="auto"` picks "small" when
    either side is below 80 pixels, the smallest size at which the ImageNet
    stem leaves the 4a map at least 5x5 for the auxiliary heads, so that a
    given input size gets the same network with and without them. Minimum
    input: 32x32 ("imagenet"; 80x80 with aux heads), 8x8 ("small"; 20x20
    with aux heads). Without aux heads and with `include_top=False` or a
    global-pooling top, height and width may be None.

    Args:
        include_top: whether to include the global pool, dropout and
            `predictions`.
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        pooling: `None`, "avg" or "max" global pooling of inception 5b
            when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` and the aux
            classifiers (None: logits).
        name: model name.
        aux_classifiers: add the two auxiliary training heads.
        dropout: dropout rate before `predictions` (paper: 0.4).
        aux_dropout: dropout rate in the auxiliary heads (paper: 0.7).
        lrn: local response normalisation after pool1 and conv2.
        batch_norm: BatchNormalization after every convolution (Inception
            v2 style; not in the paper).
        stem: "auto", "imagenet" or "small" (see above).

    Returns:
        A functional `keras.Model`.
    """
    check_common_args(include_top, pooling, classes, classifier_activation)
    check_bool(aux_classifiers, "aux_classifiers")
    check_rate(dropout, "dropout")
    check_rate(aux_dropout, "aux_dropout")
    check_bool(lrn, "lrn")
    check_bool(batch_norm, "batch_norm")
    if aux_classifiers and not include_top:
        raise ValueError(
            "`aux_classifiers=True` adds classifier heads, so it needs include_top=True. "
            f"Received: include_top={include_top!r}"
        )
    input_shape, stem = resolve_input(
        input_shape, model_name=name, default_shape=(224, 224, 3), require_static=aux_classifiers, stem=stem,
        imagenet_min=_AUTO_IMAGENET_MIN, spatial_ops=lambda stem: _spatial_ops(stem, aux_classifiers),
        configuration=f"stem={{stem!r}}, aux_classifiers={aux_classifiers}",
    )

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = _stem(inputs, stem, lrn, batch_norm)
    aux_outputs = []
    for module, spec in _INCEPTION.items():
        if module in _POOL_BEFORE:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=_POOL_BEFORE[module])(x)
        x = _inception(x, spec, f"inception_{module}", batch_norm)
        if aux_classifiers and module in _AUX_AFTER:
            aux_outputs.append(_aux_head(x, _AUX_AFTER[module], classes, classifier_activation, aux_dropout,
                                         batch_norm))
    x = head(x, include_top=include_top, pooling=pooling, reduce="avg", dropout=dropout, classes=classes,
             classifier_activation=classifier_activation)
    outputs = [x] + aux_outputs if aux_classifiers else x
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------- recipe

RECIPES = [cifar10_recipe(
    "googlenet_cifar10", googlenet, "GoogLeNet (Szegedy et al. 2014), inception with 1x1 reductions, on CIFAR-10",
    "Szegedy et al. 2014 (ImageNet); CIFAR-10 adaptation: small stem, batch norm, no LRN, auxiliary heads "
    "optional",
    hparams={**cnn_hparams(dropout=0.4, lrn=False, batch_norm=True),
             "aux_heads": HParam(False, bool, "train the two auxiliary classifiers of section 5 beside the "
                                 "main head (losses weighted 0.3 each; the export serves the main head only)")},
    fixed={"stem": "small"}, renamed={"aux_heads": "aux_classifiers"},
    defaults={"learning_rate": 0.05, "warmup_epochs": 2.0, **PRACTICE})]
