"""One way from image bytes or pixels to what a model was trained on, for every path an image takes.

Training and evaluation read image files with :func:`decode_image`; an export whose input takes images of any
size fits them inside its signature with :func:`fit_images`; ``kerasapps predict`` decodes files with
:func:`decode_image` too (at the input's size, or at their own size for an input of any size, which the export
then fits). So one photo gets one answer whether it is evaluated, predicted from a run directory or sent to the
export: the same TensorFlow decoder (Pillow's JPEG decoder differs from it by a level here and there), the same
crop, the same antialiased resize and the same rounding to uint8. An export's signature for encoded images
(``serving_bytes``) decodes the bytes it is sent with :func:`decode_images`, the same way again.
"""

from __future__ import annotations

import re

MAX_IMAGE_PIXELS = 40_000_000  # an encoded image larger than this is refused from its header, before it is decoded


def decode_image(data, shape: tuple | None = None, square: bool = False):
    """PNG/JPEG/BMP/GIF bytes (a scalar string tensor) -> uint8 ``shape`` (:func:`fit_images`); a GIF gives its
    first frame. ``shape`` None or of unknown height and width: the decoded size kept, only the channels
    converted (to ``shape``'s, if it gives them)."""
    import tensorflow as tf

    image = tf.io.decode_image(data, expand_animations=False)
    return fit_images(image, shape, square) if shape is not None else image


def decode_images(data, shape: tuple, square: bool = False):
    """A batch of PNG/JPEG/BMP/GIF bytes (a string tensor [N]) -> uint8 [N, *shape]: each decoded and fitted
    by :func:`decode_image`, as training reads image files (``shape`` gives the height and width). An image whose
    header gives it more than :data:`MAX_IMAGE_PIXELS` pixels is refused before it is decoded (an
    InvalidArgumentError), so a few bytes cannot ask for gigabytes."""
    import tensorflow as tf

    def one(image):
        check = tf.debugging.Assert(header_pixels(image) <= MAX_IMAGE_PIXELS, [
            f"an image of more than {MAX_IMAGE_PIXELS:,} pixels (width x height in its header) is not decoded"])
        with tf.control_dependencies([check]):
            return decode_image(tf.identity(image), shape, square)

    return tf.map_fn(one, data, fn_output_signature=tf.TensorSpec(shape, tf.uint8))


def header_pixels(data):
    """Width x height (int64) that a PNG, JPEG, GIF (its screen) or BMP file's header gives, read without decoding
    it; 0 for bytes of another kind (their decoding fails)."""
    import tensorflow as tf

    padded = tf.strings.join([data, tf.constant(b"\0" * 32)])  # a short file reads zeros past its end

    def number(offset, size, little_endian=True, signed=False):  # an unsigned (or signed: its size) integer
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8), tf.int64)
        value = tf.reduce_sum(raw * (256 ** (tf.range(size, dtype=tf.int64) if little_endian else
                                              tf.range(size - 1, -1, -1, dtype=tf.int64))))
        return tf.where(value >= 2 ** (8 * size - 1), 2 ** (8 * size) - value, value) if signed else value

    def starts(magic: bytes):
        return tf.equal(tf.strings.substr(padded, 0, len(magic)), magic)

    def jpeg():
        size = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return size[0] * size[1]

    zero = tf.constant(0, tf.int64)
    return tf.case([(starts(b"\x89PNG"), lambda: number(16, 4, False) * number(20, 4, False)),
                    (starts(b"\xff\xd8"), jpeg),
                    (starts(b"GIF8"), lambda: number(6, 2) * number(8, 2)),
                    (starts(b"BM"), lambda: number(18, 4, signed=True) * number(22, 4, signed=True))],
                   default=lambda: zero, exclusive=True)


def fit_images(images, shape: tuple, square: bool = False):
    """uint8 images [H, W, C] or [N, H, W, C] (a batch of one size) -> ``shape`` [H', W'(, C')], batched as
    given: grey, RGB and RGBA converted to its channels; with ``square``, the central square cropped (no
    stretching); resized to its height and width, bilinear with antialiasing, rounded to uint8 (an image of
    that size already is left as it is). A ``shape`` whose height and width are None keeps the size."""
    import tensorflow as tf

    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    batched = images.shape.rank == 4
    have = tf.shape(images)[-1]
    if channels == 3:
        images = tf.cond(have == 1, lambda: tf.image.grayscale_to_rgb(images[..., :1]), lambda: images[..., :3])
    else:
        images = tf.cond(have == 1, lambda: images[..., :1],
                         lambda: tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(images[..., :3], tf.float32))),
                                         tf.uint8))
    images.set_shape([None] * (images.shape.rank - 1) + [channels])
    if height is None:
        return images if len(shape) == 3 else images[..., 0]
    if square:
        size = tf.shape(images)[-3:-1]
        side = tf.minimum(size[0], size[1])
        images = tf.image.crop_to_bounding_box(images, (size[0] - side) // 2, (size[1] - side) // 2, side, side)
    size = tf.shape(images)[-3:-1]
    images = tf.cond(tf.reduce_all(size == [height, width]), lambda: images,
                     lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(images, (height, width),
                                                                                antialias=True)), 0, 255), tf.uint8))
    images = tf.reshape(images, ((-1,) if batched else ()) + (height, width, channels))
    return images if len(shape) == 3 else images[..., 0]


_EAGER_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](?:\s*name:\s*\S*)?$")
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_NODE_SUFFIX = re.compile(r"\s*\[\[\{\{node [^}]*\}\}\]\]")


def op_error_message(exc, limit: int = 2000) -> str:
    """A TensorFlow op error in a line a user reads: the op's own message, without TensorFlow's wrapping.

    Dropped: the "Graph execution error:" header, the "Detected at node ... defined at" stack, blank lines, the
    ``{{function_node ...}}`` wrapper names, the ``[[{{node ...}}]]`` an op in a graph is named by and the trailing
    ``[Op:...]``; so "jpeg::Uncompress failed. Invalid
    JPEG data or crop window." for a corrupt image, "assertion failed: [x must be >= 0] ..." for a model's own
    check. Cut at ``limit`` characters. Used for decoding errors here and for a served model's failures.
    """
    text = getattr(exc, "message", None) or str(exc)
    kept, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped == "Graph execution error:":
            continue
        if stripped.startswith("Detected at node") or stripped.startswith("Detected unsupported operations"):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or stripped == "<stack traces unavailable>"
                         or stripped.startswith("File ")):
            continue
        skipping = False
        kept.append(stripped)
    message = _NODE_SUFFIX.sub("", _FUNCTION_NODE.sub("", " ".join(kept)))
    message = _EAGER_OP_SUFFIX.sub("", message).strip() or type(exc).__name__
    return message if len(message) <= limit else message[:limit] + "..."
