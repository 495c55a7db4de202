"""Recomputation ("gradient checkpointing"): trade compute for memory in deep models.

Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost": keep only
each block's input during the forward pass and recompute the block's activations in the backward
pass. :class:`Recompute` wraps one block, built as a small functional sub-model, and runs it under
``tf.recompute_grad`` when training; ``recompute_block`` builds that wrapper inside a factory::

    x = recompute_block(lambda t: residual_block(t, ...), x, name="conv2_block1")

Why not ``keras.RematScope(mode="full")``: on the TensorFlow backend it fails under ``fit``
("The custom_gradient decorator currently supports keywords arguments only when eager execution is
enabled", keras-team/keras#21207, verified with Keras 3.15 / TF 2.21); here the recomputed function
takes its input positionally and closes over ``training``.

Batch normalisation: the recomputation runs the block's forward pass a second time, moving-statistic
updates included, so each training step updates BatchNormalization's moving mean and variance twice
with the same batch statistics. ``recompute_block`` therefore builds the block with
``bn_momentum_for_remat(m) = sqrt(m)``: two updates with momentum sqrt(m) equal one with m
(m' * (m' * s + (1 - m') b) + (1 - m') b = m'^2 s + (1 - m'^2) b), so the moving statistics match
the plain model's (tests/models/test_recompute.py checks this after ``fit``).
"""

from __future__ import annotations

import math

import keras


def bn_momentum_for_remat(momentum: float) -> float:
    """The momentum whose two updates per step equal one update with ``momentum``."""
    return math.sqrt(momentum)


@keras.saving.register_keras_serializable(package="kerasapps")
class Recompute(keras.layers.Layer):
    """Runs ``block`` (a functional sub-model) and recomputes its activations in the backward pass.

    Outside training (inference, evaluation, export) the block runs as is.
    """

    def __init__(self, block, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def build(self, input_shape):
        if not self.block.built:
            self.block.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        if not training:
            return self.block(inputs, training=training)
        import tensorflow as tf

        def forward(x):  # positional only: custom_gradient refuses keyword arguments in graph mode
            return self.block(x, training=True)

        return tf.recompute_grad(forward)(inputs)

    def compute_output_shape(self, input_shape):
        return self.block.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "block": keras.saving.serialize_keras_object(self.block)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["block"] = keras.saving.deserialize_keras_object(config["block"])
        return cls(**config)


def recompute_block(block_fn, x, *, name: str):
    """``block_fn(x)`` as a sub-model named ``name`` inside a :class:`Recompute` layer named ``name_remat``.

    ``block_fn`` builds the block's layers on a fresh input of ``x``'s shape; layer names inside the
    block stay those of the plain model (``model.get_layer(name).get_layer(...)`` reaches them).
    """
    inputs = keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=f"{name}_input")
    block = keras.Model(inputs, block_fn(inputs), name=name)
    return Recompute(block, name=f"{name}_remat")(x)
