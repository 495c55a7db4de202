"""Data: files and TFDS into in-memory splits (:mod:`.sources`, :mod:`.splits`), seeded ``tf.data``
pipelines (:mod:`.pipelines`) and image augmentation (:mod:`.augment`)."""
