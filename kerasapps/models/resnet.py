"""ResNet v1's blocks and builders (He et al. 2015): the ImageNet and the CIFAR-10 networks.

The public factories (``resnet18`` ... ``resnet110``), their docstrings and the recipes live in
``kerasapps.recipes.resnet``; this module builds the networks they declare:

    `basic_block`, `bottleneck_block`  one residual block, its layers named from a prefix
    `residual_stages`                  the stages conv2.. of blocks, optionally recomputed
    `imagenet_resnet`, `cifar_resnet`  the two builders: checks, stem, stages, top

keras.applications' ResNet v1 convention (``keras/src/applications/resnet.py``): convolutions with
biases, BatchNormalization with epsilon 1.001e-5, the stride of a bottleneck block on its first 1x1
convolution, and its layer names (``conv1_conv``, ``conv2_block1_1_conv``, ``conv2_block1_0_bn``,
``conv5_block3_out``, ``avg_pool``, ``predictions``).
"""

from kerasapps.core.lazy import lazy_import
from kerasapps.models.arguments import check_choice, check_common_args, check_positive_int, resolve_input
from kerasapps.models.blocks import head

keras = lazy_import("keras")
layers = lazy_import("keras.layers")
model_layers = lazy_import("kerasapps.models.layers")

__all__ = [
    "IMAGENET_DEPTHS",
    "basic_block",
    "bottleneck_block",
    "residual_stages",
    "imagenet_resnet",
    "cifar_resnet",
]

BN_EPSILON = 1.001e-5
BN_MOMENTUM = 0.99  # Keras' default; blocks built for recomputation use its square root (kerasapps.models.recompute)
# depth: (block, blocks per stage conv2..conv5)
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_STEM_OPS = {"imagenet": [(7, 2, "same"), (3, 2, "same")], "small": []}
_IMAGENET_MIN = 32  # total stride 32, keras.applications' minimum


def _bn(x, name, momentum=BN_MOMENTUM):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=momentum, name=name)(x)


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


def basic_block(x, filters, stride, shortcut_kind, name, momentum):
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


def bottleneck_block(x, filters, stride, shortcut_kind, name, momentum):
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


def residual_stages(x, block_fn, widths, depths, strides, shortcut_kind, remat=False):
    """The residual stages conv2..; `remat=True` wraps each block for recomputation (kerasapps.models.recompute),
    with the batch-norm momentum whose two updates per step equal one."""
    from kerasapps.models.recompute import bn_momentum_for_remat, recompute_block

    if not isinstance(remat, bool):
        raise ValueError(f"remat must be True or False; received remat={remat!r}")
    momentum = bn_momentum_for_remat(BN_MOMENTUM) if remat else BN_MOMENTUM
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
    return head(x, include_top=include_top, pooling=pooling, reduce="avg", classes=classes,
                classifier_activation=classifier_activation)


def imagenet_resnet(depth, *, include_top, input_shape, pooling, classes, classifier_activation, name, stem,
                    remat=False):
    """ResNet-`depth` of the paper's Table 1 (see `IMAGENET_DEPTHS`), with the ImageNet or the small stem."""
    check_common_args(include_top, pooling, classes, classifier_activation)
    input_shape, stem = resolve_input(
        input_shape, model_name=name, default_shape=(224, 224, 3), require_static=False,
        stem=stem, imagenet_min=_IMAGENET_MIN, spatial_ops=lambda stem: _STEM_OPS[stem] + [(3, 2, "same")] * 3,
    )
    block, depths = IMAGENET_DEPTHS[depth]
    block_fn = basic_block if block == "basic" else bottleneck_block

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
    x = residual_stages(x, block_fn, (64, 128, 256, 512), depths, (1, 2, 2, 2), "projection", remat)
    x = _top(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


def cifar_resnet(depth, *, include_top, input_shape, pooling, classes, classifier_activation, name, shortcut,
                 width, remat=False):
    """ResNet-`depth` (6n+2) of the paper's section 4.2: three stages of n basic blocks, `width`/2x/4x filters."""
    check_common_args(include_top, pooling, classes, classifier_activation)
    check_choice(shortcut, "shortcut", ("A", "B"))
    check_positive_int(width, "width")
    input_shape, _ = resolve_input(
        input_shape, model_name=name, default_shape=(32, 32, 3), require_static=False,
        spatial_ops=[(3, 2, "same")] * 2, configuration="total stride 4",
    )
    blocks = (depth - 2) // 6
    kind = "A" if shortcut == "A" else "projection"

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = layers.Conv2D(width, 3, padding="same", name="conv1_conv")(inputs)
    x = _bn(x, "conv1_bn")
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = residual_stages(x, basic_block, (width, 2 * width, 4 * width), (blocks,) * 3, (1, 2, 2), kind, remat)
    x = _top(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(inputs, x, name=name)
