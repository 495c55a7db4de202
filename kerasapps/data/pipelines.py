"""Deterministic ``tf.data`` pipelines over in-memory splits.

Training pipelines draw one seeded permutation per (stage, epoch), so a resumed run sees exactly
the batches the uninterrupted run would have seen; augmentation draws from a key derived from
(seed, stage, epoch, step), so it too is the same in a resumed run and in any run with that seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kerasapps.data.splits import length


def steps_for(n: int, batch_size: int, steps_per_epoch: int | None) -> int:
    steps = math.ceil(n / batch_size)
    return min(steps, steps_per_epoch) if steps_per_epoch else steps


def epoch_order(n: int, seed: int, stage_index: int, epoch: int, limit: int) -> np.ndarray:
    """The example order of one epoch: a permutation seeded by (seed, stage, epoch)."""
    return np.random.default_rng([seed, stage_index, epoch]).permutation(n)[:limit].astype(np.int64)


def training_dataset(split, *, batch_size: int, seed: int, stage_index: int, first_epoch: int,
                     epochs: int, steps_per_epoch: int | None,
                     preprocess: Callable | None = None, augment: Callable | None = None):
    """Batches for epochs ``first_epoch..epochs-1``, each epoch in its own seeded order."""
    import tensorflow as tf

    x, y = split
    n = length(split)
    steps = steps_for(n, batch_size, steps_per_epoch)
    limit = min(n, steps * batch_size)
    orders = np.stack([epoch_order(n, seed, stage_index, e, limit) for e in range(first_epoch, epochs)])
    source = tf.nest.map_structure(tf.constant, (x, y))

    def gather(index):
        return tf.nest.map_structure(lambda a: tf.gather(a, index), source)

    root = tf.constant([seed, stage_index], tf.int64)

    def epoch_batches(epoch, order):
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(lambda step, index: (index, batch_key(root, epoch, step)))

    ds = (tf.data.Dataset.from_tensor_slices((np.arange(first_epoch, epochs, dtype=np.int64), orders))
          .flat_map(epoch_batches)
          .map(lambda index, key: (*gather(index), key), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if preprocess is not None:
        ds = ds.map(lambda bx, by, key: (preprocess(bx), by, key), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    if augment is not None:  # one batch at a time: each call sets the augmentation's random state from its key
        ds = ds.map(lambda bx, by, key: (augment(bx, key), by))
    else:
        ds = ds.map(lambda bx, by, key: (bx, by))
    return ds.prefetch(tf.data.AUTOTUNE), steps


def batch_key(root, epoch, step):
    """The random key of one training batch: ``root`` ([seed, stage]) folded with its epoch and step."""
    import tensorflow as tf

    key = tf.random.experimental.stateless_fold_in(root, epoch)
    return tf.cast(tf.random.experimental.stateless_fold_in(key, step), tf.int64)


def evaluation_dataset(split, *, batch_size: int, preprocess: Callable | None = None, cache: bool = True):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(tuple(split)).batch(batch_size)
    if preprocess is not None:
        ds = ds.map(lambda bx, by: (preprocess(bx), by), num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)
