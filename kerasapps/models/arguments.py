"""Argument checks shared by the factories in `recipes/` (keras.applications' ``imagenet_utils`` role).

Every factory gives the same checks and error messages: each error says what was received and
what is valid. A factory's preamble is two calls, as keras.applications' ``validate_activation``
and ``obtain_input_shape``: :func:`check_common_args` (then the factory's own option checks), and
:func:`resolve_input`, which resolves the input shape and the stem and checks the input's size.
Keras is imported only inside the checks that consult it, so recipe modules that
import this one stay free of TensorFlow until a model is built.
"""

from kerasapps.core.lazy import lazy_import

keras = lazy_import("keras")

__all__ = [
    "POOLING_CHOICES",
    "check_common_args",
    "check_activation",
    "check_choice",
    "check_bool",
    "check_rate",
    "check_positive_int",
    "resolve_input_shape",
    "min_input_size",
    "check_min_size",
    "choose_stem",
    "resolve_input",
]

POOLING_CHOICES = (None, "avg", "max")


def check_choice(value, argname, choices):
    """Raises ValueError unless `value` is one of `choices` (and of its type:
    1 is not accepted for True, nor True for 1)."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(
            f"`{argname}` must be one of {', '.join(repr(c) for c in choices)}. "
            f"Received: {argname}={value!r}"
        )


def check_bool(value, argname):
    """Raises ValueError unless `value` is True or False (not 1 or 0)."""
    check_choice(value, argname, (True, False))


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


def check_common_args(include_top, pooling, classes, classifier_activation):
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


def resolve_input(input_shape, *, model_name, default_shape, require_static, spatial_ops, stem=None,
                  imagenet_min=None, configuration="stem={stem!r}"):
    """The input half of a factory's preamble: returns `(input_shape, stem)`.

    Resolves `input_shape` (:func:`resolve_input_shape`); then, for a factory with a `stem` option (given
    with its `imagenet_min`), the stem (:func:`choose_stem`; None without `imagenet_min`); and checks that
    the input is large enough for `spatial_ops` (a list, or a function of the resolved stem). The size
    error names `configuration`, a template formatted with the resolved `stem`.
    """
    input_shape = resolve_input_shape(
        input_shape, default_shape=default_shape, require_static=require_static, model_name=model_name
    )
    if imagenet_min is not None:
        stem = choose_stem(stem, input_shape, imagenet_min=imagenet_min)
    ops = spatial_ops(stem) if callable(spatial_ops) else spatial_ops
    check_min_size(input_shape, ops, model_name=model_name, configuration=configuration.format(stem=stem))
    return input_shape, stem
