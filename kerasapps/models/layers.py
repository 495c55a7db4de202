"""Layers of the canon that Keras lacks, serialisable by name (``kerasapps>CLASS``).

Everything here uses `keras.layers` / `keras.ops` only, so it runs on every Keras 3 backend
(TensorFlow, JAX, PyTorch). Layers are channels-last.

    `LocalResponseNormalization`  AlexNet's cross-channel normalisation.
    `ChannelPadding`              zero channels appended to a tensor (the parameter-free "option A"
                                  ResNet shortcut).
    `Maxout`                      the max of `pieces` linear pieces (Goodfellow et al. 2013).
    `MissingValues`               NaN (a missing cell of a table) replaced by a value, with a missing
                                  indicator beside it.

Loading a saved model that holds them needs this module imported (the run directory's loader
imports it).
"""

import keras
from keras import ops

__all__ = ["LocalResponseNormalization", "ChannelPadding", "Maxout", "MissingValues", "ImageStandardization",
           "IMAGE_STANDARDIZATIONS"]


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


@keras.saving.register_keras_serializable(package="kerasapps")
class Maxout(keras.layers.Layer):
    """Maxout over the last axis: ``units * pieces`` inputs -> ``units`` outputs (max of each group)."""

    def __init__(self, pieces: int, **kwargs):
        super().__init__(**kwargs)
        if pieces < 2:
            raise ValueError(f"maxout needs at least 2 pieces; received {pieces}")
        self.pieces = pieces

    def call(self, inputs):
        units = inputs.shape[-1] // self.pieces
        grouped = keras.ops.reshape(inputs, (-1, units, self.pieces))
        return keras.ops.max(grouped, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.pieces)

    def get_config(self):
        return {**super().get_config(), "pieces": self.pieces}


@keras.saving.register_keras_serializable(package="kerasapps")
class MissingValues(keras.layers.Layer):
    """A column of numbers ``[N, 1]`` with NaN for missing cells -> ``[N, 2]``: the numbers with NaN replaced by
    ``fill`` (a training median, standardised), and 1.0 where the cell was missing (0.0 elsewhere); with
    ``indicator=False``, ``[N, 1]``, the filled numbers alone."""

    def __init__(self, fill: float = 0.0, indicator: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.fill, self.indicator = float(fill), bool(indicator)

    def call(self, inputs):
        missing = ops.isnan(inputs)
        filled = ops.where(missing, ops.full_like(inputs, self.fill), inputs)
        return ops.concatenate([filled, ops.cast(missing, inputs.dtype)], axis=-1) if self.indicator else filled

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] * (2 if self.indicator else 1))

    def get_config(self):
        return {**super().get_config(), "fill": self.fill, "indicator": self.indicator}


# keras.applications' preprocess_input modes, as (reverse channels, scale, per-channel mean, per-channel std):
# caffe (VGG, ResNet v1): RGB -> BGR, minus the ImageNet means in 0-255; torch: [0, 1], ImageNet mean and std;
# tf: [-1, 1]; scale: [0, 1]
IMAGE_STANDARDIZATIONS = {
    "caffe": (True, 1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
    "torch": (False, 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tf": (False, 1.0 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    "scale": (False, 1.0 / 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


@keras.saving.register_keras_serializable(package="kerasapps")
class ImageStandardization(keras.layers.Layer):
    """Pixel values 0-255 -> what a network's weights expect: ``(x[..., ::-1 if reverse] * scale - mean) / std``
    per channel, the arithmetic of keras.applications' ``preprocess_input`` for ``caffe``, ``torch`` and ``tf``
    (:data:`IMAGE_STANDARDIZATIONS`), or any given ``mean`` and ``std``. Inside the model, so an export
    carries the preprocessing its weights were trained with. No weights; the same in training and inference.
    """

    def __init__(self, mean=(0.0,), std=(1.0,), scale=1.0 / 255.0, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        if len(self.mean) != len(self.std) or any(v <= 0 for v in self.std):
            raise ValueError(f"mean and std need one value per channel and std > 0; got {mean!r}, {std!r}")
        self.scale, self.reverse_channels = float(scale), bool(reverse_channels)

    @classmethod
    def named(cls, mode: str, channels: int = 3, **kwargs) -> "ImageStandardization":
        """The standardisation of keras.applications' ``preprocess_input(mode=...)`` (grey images: the channel
        means' average)."""
        if mode not in IMAGE_STANDARDIZATIONS:
            raise ValueError(f"mode must be one of {', '.join(IMAGE_STANDARDIZATIONS)}; got {mode!r}")
        reverse, scale, mean, std = IMAGE_STANDARDIZATIONS[mode]
        if channels == 1:
            mean, std, reverse = (sum(mean) / 3,), (sum(std) / 3,), False
        return cls(mean=mean, std=std, scale=scale, reverse_channels=reverse, **kwargs)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, self.compute_dtype)
        std = ops.convert_to_tensor(self.std, self.compute_dtype)
        return (x * self.scale - mean) / std

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std, "scale": self.scale,
                       "reverse_channels": self.reverse_channels})
        return config
