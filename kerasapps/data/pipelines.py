"""Deterministic ``tf.data`` pipelines over in-memory splits.

Training pipelines draw one seeded permutation per (stage, epoch), so a resumed run sees exactly
the batches the uninterrupted run would have seen; augmentation draws from a key derived from
(seed, stage, epoch, step), so it too is the same in a resumed run and in any run with that seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from kerasapps.data.files import Examples
from kerasapps.data.splits import length


def steps_for(n: int, batch_size: int, steps_per_epoch: int | None) -> int:
    steps = math.ceil(n / batch_size)
    return min(steps, steps_per_epoch) if steps_per_epoch else steps


def epoch_order(n: int, seed: int, stage_index: int, epoch: int, limit: int, sampling=None) -> np.ndarray:
    """The example order of one epoch: a permutation seeded by (seed, stage, epoch); with ``sampling`` (each
    example's probability), ``limit`` draws with replacement from the same seed (a balanced sampler)."""
    rng = np.random.default_rng([seed, stage_index, epoch])
    if sampling is not None:
        return rng.choice(n, size=limit, replace=True, p=sampling).astype(np.int64)
    return rng.permutation(n)[:limit].astype(np.int64)


def training_dataset(split, *, batch_size: int, seed: int, stage_index: int, first_epoch: int,
                     epochs: int, steps_per_epoch: int | None,
                     preprocess: Callable | None = None, augment=None,
                     shard: tuple[int, int] | None = None, replica_batch: int | None = None, sampling=None):
    """Batches for epochs ``first_epoch..epochs-1``, each epoch in its own seeded order.

    ``split`` is ``(x, y)`` or ``(x, y, sample_weight)``; ``sampling`` (each example's probability) draws each
    epoch's examples with replacement instead of permuting them (:func:`epoch_order`). Arrays are gathered a batch
    at a time; :class:`~kerasapps.data.files.Examples` are read file by file (in parallel, in order) as each
    epoch's order reaches them. ``augment`` (a :class:`kerasapps.data.image_practice.Augmentation`) works on the raw
    pixels, then the preprocessed batch, then mixes batch and labels, each step with the batch's key.

    ``shard=(index, count)`` is one worker's part of a multi-worker run: of every global batch of
    ``batch_size`` examples (in the epoch's order, as one device would see them) the worker reads only its
    ``index``-th contiguous ``batch_size / count``, so the workers read disjoint files (or gather disjoint
    examples) and together make the global batch; it comes batched by ``replica_batch`` (default: the whole
    part), one batch per replica of the worker. Epochs then hold whole global batches only (the caller's
    ``steps_per_epoch`` sees to it) and each part's augmentation key is folded with the worker's index.
    """
    import tensorflow as tf

    n = length(split)
    steps = steps_for(n, batch_size, steps_per_epoch)
    limit = min(n, steps * batch_size)
    orders = np.stack([epoch_order(n, seed, stage_index, e, limit, sampling) for e in range(first_epoch, epochs)])
    batch = batch_size
    if shard is not None:
        index, count = shard
        if batch_size % count or limit != steps * batch_size:
            raise ValueError(f"a sharded epoch needs whole global batches divisible by {count} workers "
                             f"({n} examples, {steps} steps of {batch_size})")
        part = batch_size // count
        orders = orders.reshape(len(orders), steps, batch_size)[:, :, index * part:(index + 1) * part]
        orders = orders.reshape(len(orders), -1)
        batch = replica_batch or part
    one, gather, reads_files = _indexers(split)
    root = tf.constant([seed, stage_index], tf.int64)

    def key_of(epoch, step):
        key = batch_key(root, epoch, step)
        return key if shard is None else tf.random.experimental.stateless_fold_in(key, shard[0])

    def epoch_batches(epoch, order):
        indices = tf.data.Dataset.from_tensor_slices(order)
        if reads_files:
            batches = indices.map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch)
            return batches.enumerate().map(lambda step, values: (tuple(values), key_of(epoch, step)))
        batches = indices.batch(batch).enumerate()
        return batches.map(lambda step, index: (index, key_of(epoch, step)))

    ds = tf.data.Dataset.from_tensor_slices((np.arange(first_epoch, epochs, dtype=np.int64), orders))
    ds = ds.flat_map(epoch_batches)
    if not reads_files:
        ds = ds.map(lambda index, key: (tuple(gather(index)), key), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    return _batch_steps(ds, preprocess, augment).prefetch(tf.data.AUTOTUNE), steps


def _batch_steps(ds, preprocess, augment):
    """``(values, key)`` batches -> what ``fit`` takes: the augmentation's pixel step, the preprocessing, its
    geometric and mixing steps, then ``(x, y[, sample_weight])``. Steps that draw run one batch at a time: each
    sets its layers' random state from the key."""
    import tensorflow as tf

    def step(function, values, key):
        x, y, *rest = values
        return function(x, y, key) + tuple(rest), key

    if augment is not None and augment.pixels is not None:
        ds = ds.map(lambda values, key: step(lambda x, y, k: (augment.pixels(x, k), y), values, key))
    if preprocess is not None:
        ds = ds.map(lambda values, key: step(lambda x, y, k: (preprocess(x), y), values, key),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None and augment.geometry is not None:
        ds = ds.map(lambda values, key: step(lambda x, y, k: (augment.geometry(x, k), y), values, key))
    if augment is not None and augment.mix is not None:
        ds = ds.map(lambda values, key: step(augment.mix, values, key))
    return ds.map(lambda values, key: values)


def whole_batch_steps(n: int, batch_size: int, steps_per_epoch: int | None) -> int:
    """Steps per epoch when every step must be a whole batch (a sharded multi-worker epoch): the remainder
    of each epoch's order is left out (a different remainder each epoch)."""
    if n < batch_size:
        raise ValueError(f"{n} training examples are fewer than one global batch of {batch_size}")
    return min(n // batch_size, steps_per_epoch) if steps_per_epoch else n // batch_size


def _indexers(split):
    """(one example by index, a batch of examples by indices, whether files are read) for a split whose leaves
    are arrays or :class:`~kerasapps.data.files.Examples` (read with their reader)."""
    import tensorflow as tf

    leaves = tf.nest.flatten(split)
    readers = [leaf.reader if isinstance(leaf, Examples) else None for leaf in leaves]
    tensors = [tf.constant(leaf.paths if isinstance(leaf, Examples) else leaf) for leaf in leaves]

    def one(index):
        values = [reader.read(t[index]) if reader else t[index] for t, reader in zip(tensors, readers)]
        return tf.nest.pack_sequence_as(split, values)

    def gather(index):
        return tf.nest.pack_sequence_as(split, [tf.gather(t, index) for t in tensors])

    return one, gather, any(readers)


def batch_key(root, epoch, step):
    """The random key of one training batch: ``root`` ([seed, stage]) folded with its epoch and step."""
    import tensorflow as tf

    key = tf.random.experimental.stateless_fold_in(root, epoch)
    return tf.cast(tf.random.experimental.stateless_fold_in(key, step), tf.int64)


def evaluation_dataset(split, *, batch_size: int, preprocess: Callable | None = None, cache: bool = True):
    """The split in its own order, batched and preprocessed; arrays are kept in memory after the first pass
    (``cache``), files are read each time (their ``cache`` setting decides)."""
    import tensorflow as tf

    one, _, reads_files = _indexers(tuple(split))
    n = length(split)
    if reads_files:
        ds = tf.data.Dataset.range(n).map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size)
    else:
        ds = tf.data.Dataset.from_tensor_slices(tuple(split)).batch(batch_size)
    if preprocess is not None:
        ds = ds.map(lambda bx, by: (preprocess(bx), by), num_parallel_calls=tf.data.AUTOTUNE)
    if cache and not reads_files:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)
