"""Every use of a private name of Keras that the training code needs, in one place.

Each function says which internals it touches and why no public API does the job; ``tests/core/test_compat.py``
checks each against the installed Keras, so an upgrade that moves them fails there, by name, and not in the
middle of a user's run. Like the rest of ``kerasapps.core`` this module imports Keras only when called.
"""

from __future__ import annotations


def exclude_from_weight_decay(optimizer, variables) -> None:
    """``optimizer.exclude_from_weight_decay(var_list=variables)``, also once the optimizer is built.

    Keras documents the call for an optimizer not yet built, and it does not save the exclusion with the
    optimizer: an optimizer loaded from a checkpoint is already built and has forgotten it. Its decision is
    read per variable from ``_exclude_from_weight_decay`` (a set of ``_var_key`` ids) through a cache
    (``_exclude_from_weight_decay_cache``) when a training step is traced; a built optimizer gets both set here.
    """
    if not optimizer.built:
        optimizer.exclude_from_weight_decay(var_list=list(variables))
        return
    optimizer._exclude_from_weight_decay = {optimizer._var_key(variable) for variable in variables}
    optimizer._exclude_from_weight_decay_pattern = None
    optimizer._exclude_from_weight_decay_cache = {}


def averaged_weights(model) -> list:
    """``model.get_weights()`` with each trainable variable's exponential moving average (an optimizer with
    ``use_ema=True``) in place of its value; non-trainable variables (batch norm's statistics) as they are.

    Keras swaps the averages in and out (``keras.callbacks.SwapEMAWeights``) but has no call that reads them:
    they live in ``optimizer._model_variables_moving_average``, in the order of ``optimizer._trainable_variables``.
    """
    import keras

    optimizer = model.optimizer
    averages = {id(variable): average for variable, average in
                zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)}
    return [keras.ops.convert_to_numpy(averages.get(id(variable), variable)) for variable in model.weights]


def set_keras_mask(tensor, mask) -> None:
    """Attach ``mask`` to a per-position loss so that Keras's reduction averages over the unmasked positions
    only, as its own ``sparse_categorical_crossentropy(..., ignore_class=...)`` does through the same private
    ``keras.src.backend.set_keras_mask`` (no public counterpart)."""
    from keras.src import backend

    backend.set_keras_mask(tensor, mask=mask)


def tracked_layers(layer) -> list:
    """``layer`` and every layer it tracks, however deep (``layer._flatten_layers()``): also the sublayers a
    custom layer holds as attributes, which the public ``Model.layers`` (one level, models only) misses. Keras
    passes ``trainable`` down to all of them, so whoever saves and restores ``trainable`` flags needs them all."""
    return list(layer._flatten_layers())


def data_layer_base():
    """Keras's base of its random preprocessing layers (``keras.src.layers.preprocessing.data_layer.DataLayer``,
    ``TFDataLayer`` before Keras 3.11): inside a ``tf.data`` graph it switches its ops to the TensorFlow backend,
    so a subclass runs in ``Dataset.map`` whatever the Keras backend. Keras exports no public counterpart."""
    try:  # Keras >= 3.11
        from keras.src.layers.preprocessing.data_layer import DataLayer
    except ImportError:  # pragma: no cover - older Keras 3
        from keras.src.layers.preprocessing.tf_data_layer import TFDataLayer as DataLayer
    return DataLayer
