"""Today's image-training practice, applied to each training batch inside ``tf.data`` with keyed randomness.

:func:`augmentation` gathers what a run's keys ask for into an :class:`Augmentation` of up to three steps, which
the training pipeline (:func:`kerasapps.data.pipelines.training_dataset`) runs on every batch with the batch's
key, derived from (seed, stage, epoch, step):

1. ``pixels``, on the raw batch before the recipe's preprocessing, because these layers expect pixel values
   (0-255): RandAugment (Cubuk et al. 2020, ``keras.layers.RandAugment``: ``rand_augment_ops`` operations of
   strength ``rand_augment_magnitude``) and random erasing (Zhong et al. 2020, ``keras.layers.RandomErasing``:
   each image, with probability ``random_erasing``, gets a box of noise);
2. ``geometry``, after preprocessing: the classic flips, shifts, rotations, zooms and elastic distortion
   (:func:`kerasapps.data.augment.build_augmentation`, ``augment_*`` and ``elastic_*`` keys);
3. ``mix``, on the preprocessed batch and its one-hot labels: MixUp (Zhang et al. 2018, ``keras.layers.MixUp``)
   or CutMix (Yun et al. 2019, ``keras.layers.CutMix``), one of them or neither per batch, with probabilities
   ``mixup_prob`` and ``cutmix_prob`` (scaled to add up to 1 when both are on and they add up to more).

Each step sets its layers' random state from its own fold of the key before it draws, so the same key gives the
same batch whenever it is drawn: a resumed run repeats the uninterrupted one bit for bit. The geometric layers
draw from the key's folds 0, 1, ... as they always have, so runs that use only them are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kerasapps.core.errors import ConfigError
from kerasapps.data.augment import build_augmentation

PIXEL_FOLD, MIX_FOLD = 1000, 2000  # where the pixel and mixing steps' key folds start (geometry: from 0)


def _keyed(generators, key, offset: int) -> None:
    """Set each Keras SeedGenerator's state from its own fold of ``key``: the draws that follow start there."""
    import tensorflow as tf

    for index, generator in enumerate(generators):
        folded = tf.random.experimental.stateless_fold_in(key, offset + index)
        generator.state.assign(tf.cast(folded, generator.state.dtype))


def _first(batch, transform):
    """``transform`` applied to the image batch: the batch itself, or a multi-input model's first input."""
    if isinstance(batch, (tuple, list)):
        return (transform(batch[0]), *batch[1:])
    return transform(batch)


@dataclasses.dataclass
class Augmentation:
    """The per-batch steps a run's keys switch on (each None when off); see the module docstring."""

    pixels: Callable | None = None  # (raw batch, key) -> batch
    geometry: Callable | None = None  # (preprocessed batch, key) -> batch
    mix: Callable | None = None  # (preprocessed batch, labels, key) -> (batch, labels)

    @property
    def changes_inputs(self) -> bool:
        """Whether the training examples differ from epoch to epoch (features computed once would not do)."""
        return any(step is not None for step in (self.pixels, self.geometry, self.mix))


def _pixel_step(hp) -> Callable | None:
    import keras

    layers = []
    if hp.get("rand_augment_ops", 0):
        layers.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=hp.rand_augment_ops,
                                               factor=hp.rand_augment_magnitude, seed=hp.seed, name="rand_augment"))
    if hp.get("random_erasing", 0.0):  # a (p, p) factor: Keras draws each image's probability in that range
        layers.append(keras.layers.RandomErasing(factor=(hp.random_erasing, hp.random_erasing), value_range=(0, 255),
                                                 seed=hp.seed, name="random_erasing"))
    if not layers:
        return None

    def pixels(batch, key):
        _keyed([layer.generator for layer in layers], key, PIXEL_FOLD)

        def transform(images):
            grey = len(images.shape) == 3  # [N, H, W] (MNIST's raw arrays): the layers take [N, H, W, C]
            x = keras.ops.expand_dims(images, -1) if grey else images
            if x.shape[-1] == 1:  # RandAugment's colour operations take RGB: grey goes through as three channels
                x = keras.ops.mean(_through_rgb(layers, keras.ops.repeat(keras.ops.cast(x, "float32"), 3, -1)),
                                   axis=-1, keepdims=True)
            else:
                x = _through_rgb(layers, x)
            x = keras.ops.clip(x, 0.0, 255.0)
            return keras.ops.squeeze(x, -1) if grey else x

        return _first(batch, transform)

    return pixels


def _through_rgb(layers, images):
    for layer in layers:
        images = layer(images, training=True)
    return images


def _geometry_step(hp) -> Callable | None:
    spec = {"shift": hp.augment_shift, "rotation": hp.augment_rotation, "zoom": hp.augment_zoom,
            "flip": None if hp.augment_flip == "none" else hp.augment_flip,
            "elastic_alpha": hp.elastic_alpha, "elastic_sigma": hp.elastic_sigma if hp.elastic_alpha else None,
            "seed": hp.seed}
    try:
        pipeline = build_augmentation(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if pipeline is None:
        return None
    generators = [layer.generator for layer in pipeline.layers]  # each random layer's keras SeedGenerator

    def geometry(batch, key):
        _keyed(generators, key, 0)
        return _first(batch, lambda images: pipeline(images, training=True))

    return geometry


def mix_probabilities(hp) -> tuple[float, float]:
    """(MixUp's, CutMix's) probability per batch: their ``_prob`` keys, scaled to add up to 1 when both are on and
    add up to more (the defaults then mix half the batches each way, as timm's ``switch_prob`` 0.5)."""
    mixup = hp.mixup_prob if hp.get("mixup", 0.0) else 0.0
    cutmix = hp.cutmix_prob if hp.get("cutmix", 0.0) else 0.0
    total = mixup + cutmix
    return (mixup / total, cutmix / total) if total > 1.0 else (mixup, cutmix)


def _mix_step(hp) -> Callable | None:
    import keras

    p_mixup, p_cutmix = mix_probabilities(hp)
    if not p_mixup and not p_cutmix:
        return None
    mixup = keras.layers.MixUp(alpha=hp.mixup or 0.2, seed=hp.seed, name="mixup")
    cutmix = keras.layers.CutMix(factor=(hp.cutmix or 1.0, hp.cutmix or 1.0), seed=hp.seed, name="cutmix")

    def mix(batch, labels, key):
        import tensorflow as tf

        _keyed([mixup.generator, cutmix.generator], key, MIX_FOLD)
        draw = tf.random.stateless_uniform([], seed=tf.random.experimental.stateless_fold_in(key, MIX_FOLD + 2))
        images = batch[0] if isinstance(batch, (tuple, list)) else batch

        def through(layer):
            def run():
                transformation = layer.get_random_transformation(images, training=True)
                mixed = layer.transform_images(images, transformation, training=True)
                mixed_labels = tf.nest.map_structure(
                    lambda y: layer.transform_labels(y, transformation, training=True), labels)
                return tf.cast(mixed, images.dtype), mixed_labels
            return run

        branch = tf.where(draw < p_mixup, 1, tf.where(draw < p_mixup + p_cutmix, 2, 0))
        mixed, mixed_labels = tf.switch_case(branch, [lambda: (images, labels), through(mixup), through(cutmix)])
        mixed = tf.ensure_shape(mixed, images.shape)
        return (_first(batch, lambda _: mixed), mixed_labels)

    return mix


def augmentation(hp, recipe) -> Augmentation | None:
    """The per-batch practice ``hp`` asks of ``recipe`` (see the module docstring), or None when it asks none; a
    key a recipe cannot take (its input is not an image batch) is a one-line ConfigError."""
    steps = Augmentation(_pixel_step(hp) if recipe.augmentable else None, _geometry_step(hp),
                         _mix_step(hp) if recipe.augmentable else None)
    asked = [key for key in ("augment_shift", "augment_rotation", "augment_zoom", "elastic_alpha", "mixup", "cutmix",
                             "rand_augment_ops", "random_erasing") if hp.get(key)]
    asked += ["augment_flip"] if hp.augment_flip != "none" else []
    if asked and not recipe.augmentable:
        raise ConfigError(f"recipe '{recipe.name}' does not take image augmentation (got {', '.join(sorted(asked))})")
    return steps if steps.changes_inputs else None
