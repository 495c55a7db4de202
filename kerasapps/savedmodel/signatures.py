"""Serving signatures: what an exported SavedModel takes and returns.

Preprocessing lives inside the export, so TF Serving clients send raw inputs: an image classifier's pixels
(``serving_default``) or its image files' bytes (``serving_bytes``, decoded inside as training read the files).
"""

from __future__ import annotations

from collections.abc import Sequence

from kerasapps.core.recipe import Serving

BYTES_SIGNATURE = "serving_bytes"  # an image export's second signature: encoded images (JPEG, PNG, BMP, GIF)
BYTES_INPUT = "image_bytes"  # its input, string [N]; the `_bytes` suffix is what Google's tooling takes as b64


class ImageClassifier(Serving):
    """``images`` (uint8, [N, H, W] or [N, H, W, C]) -> ``probabilities`` [N, K] float32, ``class_ids`` [N] int64
    and ``classes`` [N] string, the class names.

    An input of any size (``height`` and ``width`` None) is fitted to ``read_size`` inside the signature as
    training read the files (:func:`kerasapps.data.images.fit_images`: channels, the central square with
    ``square``, the antialiased resize, rounding to uint8), so the export answers as the run was evaluated.

    ``class_names`` name the head's outputs in order: the data's own labels (the run's, through
    :meth:`for_data`), else the recipe's. ``class_ids`` maps output index to the class id returned
    (the transfer recipe's head predicts digits 5-9 as indices 0-4 and returns 5-9); such a recipe names
    its classes by those ids. Without either, a class is named by its index.

    Beside it, the signature ``serving_bytes`` (:meth:`extra_endpoints`) takes ``image_bytes`` (string [N]):
    each a JPEG, PNG, BMP or GIF file's bytes (TF Serving's ``{"b64": ...}`` over REST, ``DT_STRING`` over gRPC),
    decoded and fitted to ``read_shape`` inside as training read image files
    (:func:`kerasapps.data.images.decode_images`), so any size is taken; it answers as ``serving_default``.
    """

    input_name = "images"

    def __init__(self, height: int | None, width: int | None, channels: int | None = None,
                 class_ids: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
                 read_size: tuple[int, int] | None = None, known_classes: str | None = None,
                 square: bool = False):
        self.height, self.width, self.channels = height, width, channels
        self.square = square  # any-size images: their central square is read (no stretching)
        self.known_classes = known_classes
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.class_names = tuple(map(str, class_names)) if class_names is not None else None
        self.read_size = read_size  # images of any size (height, width None): files are read at this size

    @property
    def read_shape(self) -> tuple:
        """The shape image files are read to for training: the input's, or ``read_size`` for any-size inputs."""
        size = (self.height, self.width) if self.height is not None else tuple(self.read_size or ())
        return size + ((self.channels,) if self.channels else ())

    @property
    def raw_shape(self) -> tuple:
        shape = (self.height, self.width)
        return shape + ((self.channels,) if self.channels else ())

    def input_signature(self) -> list:
        import tensorflow as tf

        return [tf.TensorSpec((None, *self.raw_shape), tf.uint8, name=self.input_name)]

    def fixed_size(self) -> "ImageClassifier":
        """This signature taking images already fitted to ``read_shape`` (what formats without the resize
        hold; their predict side fits files as training read them)."""
        if self.height is not None or not self.read_size:
            return self
        return ImageClassifier(*self.read_size, self.channels, class_ids=self.class_ids, class_names=self.class_names,
                               known_classes=self.known_classes, square=self.square)

    def for_data(self, record):
        names = record.get("class_names")
        if names is None or self.class_ids is not None:
            return self
        return ImageClassifier(self.height, self.width, self.channels, class_names=names, read_size=self.read_size,
                               square=self.square)

    def class_labels(self):
        if self.class_names is not None:
            return self.class_names
        return tuple(map(str, self.class_ids)) if self.class_ids is not None else None

    def outputs(self, model, preprocess, raw) -> dict:
        from kerasapps.data.images import fit_images

        if self.height is None and self.read_size:
            raw = fit_images(raw, self.read_shape, self.square)
        return self.classify(model, preprocess, raw)

    def extra_endpoints(self, model, preprocess) -> dict:
        """``serving_bytes``: ``image_bytes`` string [N], encoded images decoded inside to ``read_shape``."""
        import tensorflow as tf

        from kerasapps.data.images import decode_images

        def serve_bytes(image_bytes):
            return self.classify(model, preprocess, decode_images(image_bytes, self.read_shape, self.square))

        signature = [tf.TensorSpec((None,), tf.string, name=BYTES_INPUT)]
        return {BYTES_SIGNATURE: tf.function(serve_bytes, input_signature=signature)}

    def classify(self, model, preprocess, raw) -> dict:
        """The outputs for images of the model's input size."""
        import tensorflow as tf

        x = preprocess(raw) if preprocess is not None else raw
        probabilities = model(x, training=False)
        return {"probabilities": probabilities, **class_outputs(tf.argmax(probabilities, axis=-1), self.class_ids,
                                                                self.class_names)}

    def describe(self) -> str:
        shape = "[N, " + ", ".join("any" if d is None else str(d) for d in self.raw_shape) + "]"
        if self.height is None and self.read_size:
            shape += f" (resized inside to {self.read_size[0]}x{self.read_size[1]})"
        named = (f" ({', '.join(self.class_names)})" if self.class_names else
                 f" (class ids {', '.join(map(str, self.class_ids))})" if self.class_ids else "")
        return (f"{self.input_name}: uint8 {shape} -> probabilities [N, K] float32, class_ids [N] int64, "
                f"classes [N] string{named}; signature '{BYTES_SIGNATURE}' takes {BYTES_INPUT}: string [N] "
                "(JPEG, PNG, BMP or GIF files' bytes, any size)")


def class_outputs(index, class_ids=None, class_names=None) -> dict:
    """``class_ids`` (int64) and ``classes`` (their names) of the predicted output indices ``index``."""
    import tensorflow as tf

    index = tf.cast(index, tf.int64)
    ids = tf.gather(tf.constant(class_ids, tf.int64), index) if class_ids is not None else index
    if class_names is not None:
        names = tf.gather(tf.constant(list(class_names)), index)
    else:
        names = tf.strings.as_string(ids)
    return {"class_ids": ids, "classes": names}
