"""Building blocks of the canon's factories: functions on Keras tensors that name their layers from a prefix.

    `conv_block`      Conv2D [+ BatchNormalization] + activation.
    `classifier_top`  the one classifier top: flatten or global pool, hidden dense layers with dropout,
                      `predictions`.
    `pool_features`   the `include_top=False` ending: optional global pooling.
    `head`            a factory's ending: `classifier_top` with `include_top`, else `pool_features`.
"""

from kerasapps.core.lazy import lazy_import

keras = lazy_import("keras")

__all__ = ["conv_block", "classifier_top", "pool_features", "head"]


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


def classifier_top(x, *, classes, classifier_activation, reduce="flatten", hidden=(), activation="relu",
                   dropout=0.0, prefix=""):
    """The classifier of the canon's CNNs: reduce the feature map, hidden dense layers, `predictions`.

    `reduce`: "flatten" (Flatten `{prefix}flatten`), "avg" (GlobalAveragePooling2D `{prefix}avg_pool`) or
    None. `hidden`: the `(name, units)` of the hidden Dense layers, with `activation`, each followed by a
    Dropout `{name}_dropout` when `dropout` > 0; without hidden layers a Dropout `{prefix}dropout` follows
    the reduction. Then the Dense `{prefix}predictions` with `classifier_activation`. AlexNet, ZFNet and
    VGG: flatten, fc1, fc2 with dropout; LeNet-5: flatten, fc1; GoogLeNet: avg_pool, dropout; ResNet:
    avg_pool.
    """
    if reduce == "flatten":
        x = keras.layers.Flatten(name=f"{prefix}flatten")(x)
    elif reduce == "avg":
        x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}avg_pool")(x)
    for name, units in hidden:
        x = keras.layers.Dense(units, activation=activation, name=name)(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    if dropout and not hidden:
        x = keras.layers.Dropout(dropout, name=f"{prefix}dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name=f"{prefix}predictions")(x)


def head(x, *, include_top, pooling, **classifier):
    """A factory's ending: :func:`classifier_top` (given `classifier`) with `include_top`, else the
    optional global `pooling` of :func:`pool_features`."""
    if include_top:
        return classifier_top(x, **classifier)
    return pool_features(x, pooling)
