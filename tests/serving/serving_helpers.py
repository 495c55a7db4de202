"""What the serving tests share: a real server on 127.0.0.1 in this process, and tiny SavedModels.

Test modules here import it by name (pytest puts this folder on ``sys.path``); the fixtures in
``conftest.py`` hand the same functions to tests.
"""

from __future__ import annotations

import os

from user_data import free_port, live_server  # noqa: F401  (the serving tests import them from here)


def write_image_model(path, seed: int) -> None:
    """uint8 [None, 28, 28] 'images' -> {'probabilities', 'classes'} (preprocessing inside), and a
    'classes_only' signature."""
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec([None, 28, 28], tf.uint8, name="images")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28), name="pixels")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="tiny_mnist")
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[spec])
    def serve(images):
        probabilities = model(tf.cast(images, tf.float32) / 255.0)
        return {"probabilities": probabilities, "classes": tf.argmax(probabilities, axis=-1)}

    @tf.function(input_signature=[spec])
    def classes_only(images):
        return {"classes": tf.argmax(model(tf.cast(images, tf.float32) / 255.0), axis=-1)}

    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint("classes_only", classes_only)
    archive.write_out(str(path), verbose=False)


def write_text_model(path) -> None:
    """DT_STRING [None] 'text' -> {'length' int32, 'upper_bytes' string} (a *_bytes output: b64 back)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return {"length": tf.strings.length(text), "upper_bytes": tf.strings.upper(text)}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)


def write_atomically(write, model_dir, version: int, *args) -> None:
    """``write(path, *args)`` into a temporary folder, then renamed to ``model_dir/version`` (as export does)."""
    os.makedirs(model_dir, exist_ok=True)
    tmp = os.path.join(model_dir, f".tmp-{version}")
    write(tmp, *args)
    os.rename(tmp, os.path.join(model_dir, str(version)))


def export_constant(path, value: float) -> None:
    """'serving_default': x float [None] -> y = x * 0 + value: which version answered is in the answer."""
    import keras
    import tensorflow as tf

    scale = tf.Variable(float(value))
    archive = keras.export.ExportArchive()
    archive.track(scale)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": x * 0.0 + scale}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)


def reference(model_base, name, version, inputs, signature="serving_default"):
    """The SavedModel's own answer, called in process."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_base / name / str(version)))
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in loaded.signatures[signature](**tensors).items()}


def images(n, seed=0):
    """``n`` random uint8 28x28 images."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def write_spin_model(path) -> None:
    """int64 scalar 'n' -> {'total'}: counts to n in a while loop (about 3 us a step), a slow model."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64, name="n")])
    def spin(n):
        _, total = tf.while_loop(lambda i, t: i < n, lambda i, t: (i + 1, t + 1.0),
                                 [tf.constant(0, tf.int64), tf.constant(0.0)])
        return {"total": total}

    archive.add_endpoint("serving_default", spin)
    archive.write_out(str(path), verbose=False)
