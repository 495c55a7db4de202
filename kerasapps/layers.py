"""Layers, building blocks and argument checks shared by the factories in `recipes/`.

Everything here uses `keras.layers` / `keras.ops` only, so it runs on every
Keras 3 backend (TensorFlow, JAX, PyTorch). Layers are channels-last.

Layers
    `LocalResponseNormalization`  AlexNet's cross-channel normalisation.
    `ChannelPadding`              zero channels appended to a tensor (the
                                  parameter-free "option A" ResNet shortcut).

Building blocks (functions on Keras tensors, naming layers from a prefix)
    `conv_block`     Conv2D [+ BatchNormalization] + activation.
    `dense_top`      Flatten + fully connected layers with dropout + `predictions`.
    `pool_features`  the `include_top=False` ending: optional global pooling.

Factory helpers (used by `kerasapps.recipes.*` to give every factory the same
argument checks and error messages)
    `check_common_args`, `check_activation`, `check_choice`, `check_rate`,
    `check_positive_int`, `resolve_input_shape`, `min_input_size`,
    `check_min_size`, `choose_stem`.
"""

import keras
from keras import ops

__all__ = [
    "LocalResponseNormalization",
    "ChannelPadding",
    "POOLING_CHOICES",
    "check_common_args",
    "check_activation",
    "check_choice",
    "check_rate",
    "check_positive_int",
    "resolve_input_shape",
    "min_input_size",
    "check_min_size",
    "choose_stem",
    "pool_features",
    "conv_block",
    "set_batch_norm_momentum",
    "dense_top",
]


@keras.saving.register_keras_serializable(package="kerasapps")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al., 2012).

    For the activity `a[..., c]` of channel `c`, with `N` channels:

        b[..., c] = a[..., c] / (k + alpha * sum_{j in W(c)} a[..., j] ** 2) ** beta
        W(c) = max(0, c - size // 2) .. min(N - 1, c + size // 2)

    This is the formula of section 3.3 of "ImageNet Classification with Deep
    Convolutional Neural Networks" (NeurIPS 2012) with its constants as
    defaults (n=5, k=2, alpha=1e-4, beta=0.75). **`alpha` is not divided by
    `size`**, as in the paper and in `tf.nn.local_response_normalization`
    (whose `depth_radius` is `size // 2`). Caffe's LRN layer and PyTorch's
    `nn.LocalResponseNorm` divide alpha by `size`; to reproduce one of those,
    pass `alpha=their_alpha / size`.

    Channels-last; any rank >= 2; the channel count must be static. The sum
    is computed in float32 from `size` shifted slices of the zero-padded
    squared input, so only `keras.ops` is used and it runs on every backend.

    Args:
        size: the number `n` of adjacent channels summed over; an odd
            positive integer (the window is centred on the channel).
        k: the additive constant (the paper's `k`), `>= 0`.
        alpha: the scale of the sum of squares, `>= 0`.
        beta: the exponent, `>= 0`.
    """

    def __init__(self, size=5, k=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(
                "`size` must be an odd positive integer (the window is centred "
                f"on each channel). Received: size={size!r}"
            )
        for argname, value in (("k", k), ("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"`{argname}` must be a non-negative number. Received: {argname}={value!r}"
                )
        self.size = size
        self.k = float(k)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "LocalResponseNormalization needs a channels-last input with a "
                f"known channel count. Received: input_shape={input_shape}"
            )

    def call(self, inputs):
        channels = inputs.shape[-1]
        half = self.size // 2
        squares = ops.square(ops.cast(inputs, "float32"))
        paddings = [[0, 0]] * (len(inputs.shape) - 1) + [[half, half]]
        padded = ops.pad(squares, paddings)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        scale = ops.power(self.k + self.alpha * window_sum, -self.beta)
        return ops.cast(ops.cast(inputs, "float32") * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "k": self.k, "alpha": self.alpha, "beta": self.beta})
        return config


@keras.saving.register_keras_serializable(package="kerasapps")
class ChannelPadding(keras.layers.Layer):
    """Appends `padding` all-zero channels to a channels-last tensor.

    With a stride-2 subsampling (`MaxPooling2D(pool_size=1, strides=2)`) in
    front, this is the parameter-free "option A" shortcut of He et al.,
    "Deep Residual Learning for Image Recognition" (CVPR 2016), section 3.3:
    identity mapping with extra zero entries padded for increasing dimensions.
    """

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(
                f"`padding` must be a non-negative integer. Received: padding={padding!r}"
            )
        self.padding = padding

    def call(self, inputs):
        paddings = [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.padding]]
        return ops.pad(inputs, paddings)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else input_shape[-1] + self.padding
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding})
        return config


# --------------------------------------------------------------------------
# Argument checks shared by the factories. Every error says what was received
# and what is valid.
# --------------------------------------------------------------------------

POOLING_CHOICES = (None, "avg", "max")


def check_choice(value, argname, choices):
    """Raises ValueError unless `value` is one of `choices` (and of its type:
    1 is not accepted for True, nor True for 1)."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(
            f"`{argname}` must be one of {', '.join(repr(c) for c in choices)}. "
            f"Received: {argname}={value!r}"
        )


def check_positive_int(value, argname, minimum=1):
    """Raises ValueError unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{argname}` must be an integer >= {minimum}. Received: {argname}={value!r}"
        )


def check_rate(value, argname):
    """Raises ValueError unless `value` is a number in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(
            f"`{argname}` must be a number in [0, 1). Received: {argname}={value!r}"
        )


def check_activation(value, argname, allow_none=False):
    """Raises ValueError unless `value` names a Keras activation or is callable."""
    if value is None and allow_none:
        return
    if callable(value):
        return
    if isinstance(value, str):
        try:
            keras.activations.get(value)
            return
        except ValueError:
            pass
    valid = "the name of a Keras activation (e.g. 'relu', 'tanh', 'softmax'), a callable"
    if allow_none:
        valid += " or None (logits)"
    raise ValueError(f"`{argname}` must be {valid}. Received: {argname}={value!r}")


def check_common_args(*, include_top, pooling, classes, classifier_activation):
    """Checks the arguments every factory shares with keras.applications."""
    if not isinstance(include_top, bool):
        raise ValueError(
            f"`include_top` must be True or False. Received: include_top={include_top!r}"
        )
    check_choice(pooling, "pooling", POOLING_CHOICES)
    check_positive_int(classes, "classes")
    check_activation(classifier_activation, "classifier_activation", allow_none=True)


def resolve_input_shape(input_shape, *, default_shape, require_static, model_name):
    """Returns `input_shape` as a tuple `(height, width, channels)`.

    The factories build channels-last models: with
    `keras.config.image_data_format()` set to "channels_first" (which Keras
    layers would follow) they raise rather than misread the input.
    `None` gives `default_shape`. Height and width may be None only when
    `require_static` is False (a global-pooling head, or `include_top=False`).
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"{model_name} is built channels-last, so it needs "
            "keras.config.image_data_format() == 'channels_last'. "
            f"Received: image_data_format={keras.config.image_data_format()!r}"
        )
    if input_shape is None:
        return tuple(default_shape)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"{model_name}: `input_shape` must be a tuple (height, width, channels) "
            f"(channels-last). Received: input_shape={input_shape!r}"
        )
    height, width, channels = input_shape
    check_positive_int(channels, "input_shape[-1] (channels)")
    for size in (height, width):
        if size is None:
            if require_static:
                raise ValueError(
                    f"{model_name}: this configuration flattens its feature map, so "
                    "height and width must be known integers. "
                    f"Received: input_shape={tuple(input_shape)}"
                )
        elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"{model_name}: height and width must be positive integers or None. "
                f"Received: input_shape={tuple(input_shape)}"
            )
    return tuple(input_shape)


def _output_size(size, spatial_ops):
    """Feature-map size after `spatial_ops`, or 0 if it collapses.

    Each op is `(kernel, stride, padding)` with padding "valid", "same" or an
    int of explicit zero padding per side, or `("min", m)`, which requires the
    map to be at least `m` wide at that point (e.g. for a later valid pool in
    an auxiliary head). "same" ops are counted as `floor(size / stride)`:
    a map is too small when a strided stage would see less than one full
    stride of real pixels, the rule behind keras.applications' 32x32 minimum
    for ResNet.
    """
    for op in spatial_ops:
        if op[0] == "min":
            if size < op[1]:
                return 0
            continue
        kernel, stride, padding = op
        if padding == "same":
            size = size // stride
        else:
            pad = 0 if padding == "valid" else padding
            size = (size + 2 * pad - kernel) // stride + 1
        if size < 1:
            return 0
    return size


def min_input_size(spatial_ops, limit=4096):
    """The smallest height/width for which `spatial_ops` leave a map >= 1."""
    for size in range(1, limit + 1):
        if _output_size(size, spatial_ops) >= 1:
            return size
    raise ValueError(f"No input size up to {limit} fits the spatial ops {spatial_ops}.")


def check_min_size(input_shape, spatial_ops, *, model_name, configuration):
    """Raises ValueError naming the minimum size if the input is too small."""
    minimum = min_input_size(spatial_ops)
    height, width = input_shape[0], input_shape[1]
    if any(size is not None and size < minimum for size in (height, width)):
        raise ValueError(
            f"{model_name} ({configuration}) needs inputs of at least "
            f"{minimum}x{minimum} pixels. Received: input_shape={tuple(input_shape)}"
        )
    return minimum


def choose_stem(stem, input_shape, *, imagenet_min):
    """Resolves `stem="auto"` to "imagenet" or "small".

    "auto" is "imagenet" when both sides are at least `imagenet_min` (or are
    unknown), "small" otherwise.
    """
    check_choice(stem, "stem", ("auto", "imagenet", "small"))
    if stem != "auto":
        return stem
    sides = [size for size in input_shape[:2] if size is not None]
    return "small" if sides and min(sides) < imagenet_min else "imagenet"


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


def set_batch_norm_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization in ``model``; returns how many.

    Nested models are included. Blocks wrapped for recomputation (:class:`kerasapps.remat.Recompute`)
    run their forward pass twice per training step, so their layers get the momentum whose two
    updates equal one (``sqrt(momentum)``), as the factories give them. Keras' default, 0.99,
    averages over about 100 steps; Torch's (0.1 there, 0.9 here), which the original CIFAR
    ResNets trained with, over about 10: short runs on small data need the faster one.
    """
    from kerasapps.remat import Recompute, bn_momentum_for_remat

    check_rate(momentum, "momentum")
    count = 0

    def walk(layers, value):
        nonlocal count
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = value
                count += 1
            elif isinstance(layer, Recompute):
                walk(layer.block.layers, bn_momentum_for_remat(value))
            elif hasattr(layer, "layers"):
                walk(layer.layers, value)

    walk(model.layers, float(momentum))
    return count


def dense_top(x, *, units, dropout, activation, classes, classifier_activation):
    """`flatten`, `fc1`, `fc2` (each followed by `fcN_dropout` when dropout > 0)
    and `predictions`: the classifier of AlexNet, ZFNet and VGG."""
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = keras.layers.Dense(units, activation=activation, name=f"fc{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def apply_weights(model, weights, imagenet_reference):
    """Load ``weights`` into ``model``: None (keep the initialisation), ``"imagenet"`` or a file path.

    ``"imagenet"`` builds keras.applications' model through ``imagenet_reference()`` (which downloads
    and caches the weights and checks the configuration, as keras.applications does) and copies its
    weights, whose layout ours matches layer for layer. A path is a Keras 3 ``.weights.h5`` file or a
    keras.applications / legacy ``.h5`` weight file.
    """
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        reference = imagenet_reference()
        theirs, ours = reference.get_weights(), model.weights
        mismatched = [f"{v.path} {tuple(v.shape)} vs {w.shape}" for v, w in zip(ours, theirs) if tuple(v.shape) != w.shape]
        if len(theirs) != len(ours) or mismatched:
            raise ValueError(f"{model.name}: ImageNet weights need the paper configuration (no batch norm, default "
                             f"widths); {len(ours)} vs {len(theirs)} weights"
                             + (f", first mismatch {mismatched[0]}" if mismatched else ""))
        model.set_weights(theirs)
        return model
    path = str(weights)
    import os

    if not os.path.isfile(path):
        raise ValueError(f"{model.name}: weights must be None, 'imagenet' or the path of a weights file; "
                         f"received weights={weights!r}, which is not a file")
    if not path.endswith((".weights.h5", ".h5", ".hdf5")):
        raise ValueError(f"{model.name}: weights file must end in .weights.h5 (Keras 3) or .h5 "
                         f"(keras.applications); received {weights!r}")
    try:
        model.load_weights(path)
    except ValueError as exc:
        raise ValueError(f"{model.name}: {path} does not fit this configuration: {exc}") from None
    return model
