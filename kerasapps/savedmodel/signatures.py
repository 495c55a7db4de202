"""Serving signatures: what an exported SavedModel takes and returns.

Preprocessing lives inside the export, so TF Serving clients send raw inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from kerasapps.core.recipe import Serving


class ImageClassifier(Serving):
    """``images`` (uint8, [N, H, W] or [N, H, W, C]) -> ``probabilities`` [N, K] and ``classes`` [N] (int64).

    ``class_ids`` maps output index to the class id returned (the transfer recipe's
    head predicts digits 5-9 as indices 0-4 and returns 5-9).
    """

    input_name = "images"

    def __init__(self, height: int, width: int, channels: int | None = None,
                 class_ids: Sequence[int] | None = None, class_names: Sequence[str] | None = None):
        self.height, self.width, self.channels = height, width, channels
        self.class_ids = tuple(class_ids) if class_ids is not None else None
        self.class_names = tuple(class_names) if class_names is not None else None

    @property
    def raw_shape(self) -> tuple:
        shape = (self.height, self.width)
        return shape + ((self.channels,) if self.channels else ())

    def input_signature(self) -> list:
        import tensorflow as tf

        return [tf.TensorSpec((None, *self.raw_shape), tf.uint8, name=self.input_name)]

    def outputs(self, model, preprocess, raw) -> dict:
        import tensorflow as tf

        x = preprocess(raw) if preprocess is not None else raw
        probabilities = model(x, training=False)
        index = tf.argmax(probabilities, axis=-1)
        if self.class_ids is not None:
            index = tf.gather(tf.constant(self.class_ids, tf.int64), index)
        return {"probabilities": probabilities, "classes": tf.cast(index, tf.int64)}

    def describe(self) -> str:
        shape = "[N, " + ", ".join(map(str, self.raw_shape)) + "]"
        classes = f" (class ids {', '.join(map(str, self.class_ids))})" if self.class_ids else ""
        return f"{self.input_name}: uint8 {shape} -> probabilities [N, K] float32, classes [N] int64{classes}"
