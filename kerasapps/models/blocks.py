"""Building blocks of the canon's factories: functions on Keras tensors that name their layers from a prefix.

    `conv_block`     Conv2D [+ BatchNormalization] + activation.
    `dense_top`      Flatten + fully connected layers with dropout + `predictions`.
    `pool_features`  the `include_top=False` ending: optional global pooling.
"""

from kerasapps.core.lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["conv_block", "dense_top", "pool_features"]


def pool_features(x, pooling):
    """The `include_top=False` ending of keras.applications: optional global pooling."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def conv_block(
    x,
    filters,
    kernel_size,
    *,
    name,
    strides=1,
    padding="same",
    activation="relu",
    batch_norm=False,
    groups=1,
    bn_epsilon=1e-3,
):
    """Conv2D (named `name`) [+ BatchNormalization `name_bn`] + activation.

    Without batch norm the activation is fused into the convolution, exactly
    as keras.applications' VGG does, so weights transfer layer by layer. With
    batch norm the convolution has no bias and is followed by `name_bn` and
    an Activation layer `name_act`. An integer `padding` adds a ZeroPadding2D
    `name_pad` of that many pixels per side before a "valid" convolution
    (the symmetric padding of the Caffe/PyTorch originals).
    """
    if isinstance(padding, int):
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=not batch_norm,
        activation=None if batch_norm else activation,
        name=name,
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_bn")(x)
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x


def dense_top(x, *, units, dropout, activation, classes, classifier_activation):
    """`flatten`, `fc1`, `fc2` (each followed by `fcN_dropout` when dropout > 0)
    and `predictions`: the classifier of AlexNet, ZFNet and VGG."""
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = keras.layers.Dense(units, activation=activation, name=f"fc{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
