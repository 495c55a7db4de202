"""ZFNet (Zeiler & Fergus, 2013)."""

from kerasapps.models.factories import takes_bn_momentum
from kerasapps.recipes.alexnet import eight_layer_net
from kerasapps.recipes.cifar import PRACTICE, cifar10_recipe, cnn_hparams

__all__ = ["zfnet"]

# Per stem: (kernel, stride, padding) of conv1 and conv2, and the padding of
# pool1/pool2 ("same" reproduces the ceil-mode pooling behind the paper's
# 110 -> 55 and 26 -> 13 map sizes).
_STEMS = {
    "imagenet": {"conv1": (7, 2, 1), "conv2": (5, 2, "valid"), "pool": "same"},
    "small": {"conv1": (3, 1, "same"), "conv2": (5, 1, "same"), "pool": "same"},
}

_IMAGENET_MIN = 63  # == min_input_size(eight_layer_ops(_STEMS["imagenet"])); checked by the tests


@takes_bn_momentum()
def zfnet(
    include_top=True,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="zfnet",
    dropout=0.5,
    lrn=True,
    batch_norm=False,
    activation="relu",
    fc_units=4096,
    stem="auto",
):
    """ZFNet of "Visualizing and Understanding Convolutional Networks".

    Zeiler & Fergus, arXiv:1311.2901 (2013) / ECCV 2014, Figure 3: AlexNet
    with a smaller, denser first layer (7x7 stride 2 instead of 11x11
    stride 4, which removed the aliasing the authors saw in AlexNet's first
    and second layer features) and dense connections in conv3-5. On a
    224x224x3 input, with the map sizes of the paper's figure:

        conv1 96 7x7/2 (pad 1) -> 110x110 -> LRN -> maxpool 3x3/2 -> 55x55
        conv2 256 5x5/2        -> 26x26   -> LRN -> maxpool 3x3/2 -> 13x13
        conv3 384 3x3 -> conv4 384 3x3 -> conv5 256 3x3 -> maxpool 3x3/2 -> 6x6
        fc6 4096 -> dropout 0.5 -> fc7 4096 -> dropout 0.5 -> fc8 (classes)

    Pools 1 and 2 are "same"-padded (the ceil-mode pooling that gives 55
    and 13), pool 5 is "valid". The paper's "contrast normalisation across
    feature maps" after layers 1 and 2 is AlexNet's LRN with its constants
    (`lrn=True`).

    Parameters at the reference configuration (224x224x3, 1000 classes):
    **62,357,608**, counted from the layer sizes of the paper's Figure 3
    (the paper states no total; it is AlexNet's 62,378,344 less the 20,736
    saved by conv1's 7x7x3 instead of 11x11x3 kernels). Neither Keras nor
    torchvision ships ZFNet.

    Layer names: `block1_conv_pad`, `block1_conv`, `block1_norm`, `block1_pool`,
    `block2_conv`, `block2_norm`, `block2_pool`, `block3_conv`,
    `block4_conv`, `block5_conv`, `block5_pool`, `flatten`, `fc1` [fc6],
    `fc1_dropout`, `fc2` [fc7], `fc2_dropout`, `predictions`. With
    `batch_norm=True` each conv is followed by `<conv>_bn` and `<conv>_act`
    and convolutions lose their biases.

    Small inputs: `stem="small"` uses 3x3 stride-1 kernels in conv1 and a
    stride-1 "same" conv2, so a 32x32 (or 28x28) input is pooled to 16x16
    (14x14), 8x8 (7x7) and, after conv5, 3x3. `stem="auto"` picks "small"
    when either side is below 63 pixels, the minimum of the ImageNet stem.
    Minimum input: 63x63 ("imagenet"), 12x12 ("small").

    Args:
        include_top: whether to include the fully connected layers.
        input_shape: `(height, width, channels)`, default `(224, 224, 3)`.
        pooling: `None`, "avg" or "max" global pooling of the last
            feature map when `include_top=False`.
        classes: number of classes.
        classifier_activation: activation of `predictions` (None: logits).
        name: model name.
        dropout: dropout rate after fc6 and fc7 (paper: 0.5).
        lrn: normalisation across feature maps after conv1 and conv2.
        batch_norm: BatchNormalization after every convolution (not in
            the paper).
        activation: activation of the hidden layers (paper: "relu").
        fc_units: width of fc6 and fc7 (Figure 3: 4096).
        stem: "auto", "imagenet" or "small" (see above).

    Returns:
        A functional `keras.Model`.
    """
    return eight_layer_net(**locals(), stems=_STEMS, default_shape=(224, 224, 3), imagenet_min=_IMAGENET_MIN)


# ---------------------------------------------------------------------------- recipe

RECIPES = [cifar10_recipe(
    "zfnet_cifar10", zfnet, "ZFNet (Zeiler & Fergus 2013) with LRN, small stem, on CIFAR-10",
    "Zeiler & Fergus 2013 (ImageNet); CIFAR-10 adaptation: small stem, fc 1024",
    hparams=cnn_hparams(lrn=True, fc_units=1024), fixed={"stem": "small"},
    defaults={"learning_rate": 0.01, "l2": 5e-4, "nesterov": False, **PRACTICE})]
