"""Image augmentation as Keras preprocessing layers, safe inside tf.data.

`build_augmentation(spec)` turns a recipe's augmentation config into a
`keras.Sequential` of Keras's own random layers (RandomTranslation,
RandomRotation, RandomZoom, RandomFlip) plus `ElasticDistortion`, the
elastic deformation of Simard et al. 2003. Use it in the input pipeline on
batches of float images (N, H, W, C)::

    aug = build_augmentation({"shift": 0.1, "rotation": 10, "seed": 1})
    ds = ds.map(lambda x, y: (aug(x, training=True), y))

Always pass `training=True`: without it `ElasticDistortion` is the identity.
:func:`kerasapps.data.image_practice.augmentation` builds the training pipeline's steps from a recipe's keys.
"""

import keras
import numpy as np

from kerasapps.core.compat import data_layer_base
from kerasapps.core.schema import FLIPS

_DataLayer = data_layer_base()  # Keras's base of its random layers (not public: see compat)

__all__ = ["ElasticDistortion", "build_augmentation", "AUGMENTATION_KEYS"]

_FILL_MODES = ("nearest", "constant")


@keras.saving.register_keras_serializable(package="kerasapps")
class ElasticDistortion(_DataLayer):
    """Elastic distortion (Simard, Steinkraus & Platt 2003, "Best practices for
    convolutional neural networks applied to visual document analysis").

    For every image, a displacement field dx, dy is drawn uniformly in
    [-1, 1] per pixel, smoothed by a Gaussian of standard deviation `sigma`
    pixels (kernel truncated at 4 sigma, zero padding at the border, as a
    separable convolution), scaled by `alpha`, and the image is resampled
    bilinearly at (row + dy, col + dx). Simard used alpha=34, sigma=4 on
    28x28 MNIST digits. Each image in a batch gets its own field.

    Active only when called with `training=True`; otherwise, and when
    `alpha == 0`, it returns its input unchanged. Shape and dtype are kept
    (integer images are rounded back). Unlike `keras.layers.RandomElasticTransform`
    (Gaussian noise, the same draw for dx and dy, a Python loop over a static
    batch size, alpha/sigma tied to the image size), this follows the paper
    and handles a dynamic batch dimension.

    It subclasses Keras's `DataLayer` (formerly `TFDataLayer`), the base of
    Keras's own random layers: inside a tf.data graph it switches its ops to
    the TensorFlow backend, so it runs in `Dataset.map` whatever the Keras
    backend. Randomness comes from a `keras.random.SeedGenerator(seed)`, so a
    given seed gives the same sequence of fields.

    Args:
        alpha: displacement scale in pixels, >= 0.
        sigma: Gaussian smoothing width in pixels, >= 0 (0: no smoothing).
        seed: int or None.
        fill_mode: "nearest" (clamp to the edge) or "constant" (`fill_value`)
            for samples that fall outside the image.
        fill_value: value for `fill_mode="constant"`.
        data_format: "channels_last" or "channels_first"; default from the
            Keras config.
    """

    def __init__(
        self,
        alpha,
        sigma,
        seed=None,
        fill_mode="nearest",
        fill_value=0.0,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("alpha", alpha), ("sigma", sigma)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ElasticDistortion: {name} must be a number >= 0; received {name}={value!r}")
        if fill_mode not in _FILL_MODES:
            raise ValueError(
                f"ElasticDistortion: fill_mode must be one of {', '.join(_FILL_MODES)}; "
                f"received fill_mode={fill_mode!r}"
            )
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "ElasticDistortion: data_format must be channels_last or channels_first; "
                f"received data_format={data_format!r}"
            )
        self.data_format = data_format
        self._kernel_1d = _gaussian_kernel_1d(self.sigma)
        self.supports_jit = False

    def call(self, inputs, training=False):
        if not training or self.alpha == 0.0:
            return inputs
        B = self.backend
        images = inputs
        rank = len(images.shape)
        if rank not in (3, 4):
            raise ValueError(
                f"ElasticDistortion expects (H, W, C) or (N, H, W, C) images; received shape {images.shape}"
            )
        if rank == 3:
            images = B.numpy.expand_dims(images, 0)
        if self.data_format == "channels_first":
            images = B.numpy.transpose(images, (0, 2, 3, 1))
        in_dtype = images.dtype
        x = B.cast(images, "float32")
        field = self._displacement_field(B, x)  # (N, H, W, 2): dy, dx in pixels
        out = _bilinear_resample(B, x, field, self.fill_mode, self.fill_value)
        if "int" in str(in_dtype):
            out = B.numpy.round(out)
        out = B.cast(out, in_dtype)
        if self.data_format == "channels_first":
            out = B.numpy.transpose(out, (0, 3, 1, 2))
        if rank == 3:
            out = B.numpy.squeeze(out, 0)
        return out

    def _displacement_field(self, B, images):
        shape = B.core.shape(images)
        n, h, w = shape[0], shape[1], shape[2]
        seed = self._get_seed_generator(B._backend)
        noise = B.random.uniform((n, 2, h, w), minval=-1.0, maxval=1.0, dtype="float32", seed=seed)
        field = B.numpy.reshape(noise, (-1, h, w, 1))  # dy and dx as separate images
        if self._kernel_1d is not None:
            k = self._kernel_1d.shape[0]
            kernel = B.convert_to_tensor(self._kernel_1d, dtype="float32")
            field = B.nn.conv(field, B.numpy.reshape(kernel, (k, 1, 1, 1)), padding="same")
            field = B.nn.conv(field, B.numpy.reshape(kernel, (1, k, 1, 1)), padding="same")
        field = B.numpy.reshape(field, (-1, 2, h, w))
        return B.numpy.transpose(field, (0, 2, 3, 1)) * self.alpha

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "sigma": self.sigma,
            "seed": self.seed,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "data_format": self.data_format,
        }


def _gaussian_kernel_1d(sigma, truncate=4.0):
    """Normalised 1-D Gaussian taps (as scipy.ndimage.gaussian_filter), None for sigma 0."""
    if sigma == 0:
        return None
    radius = max(1, int(truncate * sigma + 0.5))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).astype("float32")


def _bilinear_resample(B, images, field, fill_mode, fill_value):
    """Sample images (N, H, W, C) at (row + field[..., 0], col + field[..., 1])."""
    shape = B.core.shape(images)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    np_ = B.numpy
    rows = B.cast(np_.arange(h), "float32")[None, :, None]
    cols = B.cast(np_.arange(w), "float32")[None, None, :]
    y = rows + field[..., 0]
    x = cols + field[..., 1]
    y0 = np_.floor(y)
    x0 = np_.floor(x)
    wy = y - y0
    wx = x - x0
    y0 = B.cast(y0, "int32")
    x0 = B.cast(x0, "int32")
    flat = np_.reshape(images, (-1, c))
    base = (np_.arange(n, dtype="int32") * (h * w))[:, None, None]
    out = None
    outside = None
    for dy, dx, weight in (
        (0, 0, (1.0 - wy) * (1.0 - wx)),
        (0, 1, (1.0 - wy) * wx),
        (1, 0, wy * (1.0 - wx)),
        (1, 1, wy * wx),
    ):
        yi = y0 + dy
        xi = x0 + dx
        yc = np_.clip(yi, 0, h - 1)
        xc = np_.clip(xi, 0, w - 1)
        values = np_.take(flat, base + yc * w + xc, axis=0)  # (N, H, W, C)
        if fill_mode == "constant":
            inside = B.cast((yi == yc) & (xi == xc), "float32")
            outside_w = weight * (1.0 - inside)
            outside = outside_w if outside is None else outside + outside_w
            weight = weight * inside
        term = values * weight[..., None]
        out = term if out is None else out + term
    if fill_mode == "constant":
        out = out + fill_value * outside[..., None]
    return out


# --------------------------------------------------------------------------
# From a config dict
# --------------------------------------------------------------------------

AUGMENTATION_KEYS = (
    "shift",
    "rotation",
    "zoom",
    "flip",
    "elastic_alpha",
    "elastic_sigma",
    "fill_mode",
    "seed",
)
_FLIPS = tuple(flip for flip in FLIPS if flip != "none")
_DEFAULT_ELASTIC_SIGMA = 4.0


def _fraction(spec, key, upper):
    value = spec[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < upper:
        raise ValueError(f"augmentation {key} must be a number in [0, {upper}); received {key}={value!r}")
    return float(value)


def build_augmentation(spec):
    """A `keras.Sequential` named "augmentation" from a config dict, or None.

    Keys (zero, None, False or absent: omitted):

    - `shift`: fraction of height and width, RandomTranslation(shift, shift);
    - `rotation`: maximum angle in DEGREES either way, RandomRotation(rotation / 360);
    - `zoom`: fraction, RandomZoom(height_factor=(-zoom, zoom)), aspect ratio kept
      (width_factor=None);
    - `flip`: "horizontal", "vertical" or "horizontal_and_vertical";
    - `elastic_alpha`, `elastic_sigma`: ElasticDistortion (sigma defaults to 4.0,
      Simard's MNIST value; sigma alone does nothing);
    - `fill_mode`: how shift/rotation/zoom/elastic fill pixels from outside the
      image: "nearest" (default, as Keras 2's ImageDataGenerator) or "constant" (0);
    - `seed`: int; layer i gets seed + i, so the layers draw independently.

    Layers run in the order flip, shift, rotation, zoom, elastic. Unknown keys
    are a ValueError listing the valid ones. Returns None when nothing is on.
    """
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError(f"augmentation spec must be a dict; received {spec!r}")
    unknown = sorted(set(spec) - set(AUGMENTATION_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown augmentation key(s) {', '.join(unknown)}; valid keys: {', '.join(AUGMENTATION_KEYS)}"
        )
    spec = {k: v for k, v in spec.items() if k == "seed" or v not in (None, 0, False, "")}
    seed = spec.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"augmentation seed must be an int; received seed={seed!r}")
    fill_mode = spec.get("fill_mode", "nearest")
    if fill_mode not in _FILL_MODES:
        raise ValueError(
            f"augmentation fill_mode must be one of {', '.join(_FILL_MODES)}; received fill_mode={fill_mode!r}"
        )

    layers = []

    def next_seed():
        return None if seed is None else seed + len(layers)

    if "flip" in spec:
        if spec["flip"] not in _FLIPS:
            raise ValueError(
                f"augmentation flip must be one of {', '.join(_FLIPS)}; received flip={spec['flip']!r}"
            )
        layers.append(keras.layers.RandomFlip(spec["flip"], seed=next_seed(), name="flip"))
    if "shift" in spec:
        shift = _fraction(spec, "shift", 1)
        layers.append(
            keras.layers.RandomTranslation(shift, shift, fill_mode=fill_mode, seed=next_seed(), name="shift")
        )
    if "rotation" in spec:
        degrees = _fraction(spec, "rotation", 180)
        layers.append(
            keras.layers.RandomRotation(degrees / 360.0, fill_mode=fill_mode, seed=next_seed(), name="rotation")
        )
    if "zoom" in spec:
        zoom = _fraction(spec, "zoom", 1)
        layers.append(keras.layers.RandomZoom((-zoom, zoom), fill_mode=fill_mode, seed=next_seed(), name="zoom"))
    if "elastic_alpha" in spec:
        alpha = spec["elastic_alpha"]
        sigma = spec.get("elastic_sigma", _DEFAULT_ELASTIC_SIGMA)
        layers.append(ElasticDistortion(alpha, sigma, seed=next_seed(), fill_mode=fill_mode, name="elastic"))
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
