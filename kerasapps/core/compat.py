"""Every use of a private or internal name of Keras, TensorFlow or uvicorn that the package needs, in one place.

Keras: the training code's weight decay exclusion, EMA weights, loss masks, tracked sublayers and the base class of
its random preprocessing layers. TensorFlow: the serving code's
per-call cancellation (``tensorflow.python.eager.cancellation``) and the ONNX export's frozen functions.
uvicorn: the serving code's HTTP limits, built on
its h11 protocol class (``uvicorn.protocols.http.h11_impl.H11Protocol``) and its hooks. Each function says which
internals it touches and why no public API does the job; ``tests/core/test_compat.py`` checks each against the
installed versions, so an upgrade that moves them fails there, by name, and not in the middle of a user's run.
Like the rest of ``kerasapps.core`` this module imports Keras, TensorFlow and uvicorn only when called.
"""

from __future__ import annotations

import threading


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


# -- TensorFlow: cancelling one eager function call from another thread ---------------------------------------

_THREAD = threading.local()  # .manager: the CancellationManager of the call this thread makes, if any


def new_cancellation_manager():
    """A ``tensorflow.python.eager.cancellation.CancellationManager``: ``start_cancel()`` stops the calls made
    under it (their ops stop and the call raises ``CancelledError``; a manager cancelled before the call starts
    is not seen by it). Public TensorFlow has no way to cancel a running function call; this is the object its
    ``get_cancelable_function`` uses."""
    from tensorflow.python.eager import cancellation

    return cancellation.CancellationManager()


def thread_local_cancellation() -> bool:
    """Make TensorFlow's cancellation context per thread (True when it is; False, patching nothing, when this
    TensorFlow has no such hook and calls run uncancellable).

    Every eager function call reads its manager through ``tensorflow.python.eager.cancellation.context()``
    (``tensorflow.python.eager.context`` calls it), which returns one module global, so two threads starting calls
    at once could swap managers and cancelling one call would stop another's. This replaces that function with one
    that returns the calling thread's manager (:func:`set_thread_cancellation_manager`) when it has one, else what
    the original returns, leaving any other user of the global as it was. Idempotent.
    """
    from tensorflow.python.eager import cancellation

    original = getattr(cancellation, "context", None)
    if getattr(original, "_kerasapps_thread_local", False):
        return True
    if original is None or not hasattr(cancellation, "CancellationManager"):
        return False

    def context():
        manager = getattr(_THREAD, "manager", None)
        return manager if manager is not None else original()

    context._kerasapps_thread_local = True
    cancellation.context = context
    return True


def set_thread_cancellation_manager(manager) -> None:
    """The manager (None: none) under which the calling thread's eager function calls run, once
    :func:`thread_local_cancellation` made TensorFlow read it."""
    _THREAD.manager = manager


# -- uvicorn: its h11 protocol, for limits its configuration cannot express ----------------------------------

def uvicorn_h11_protocol() -> type:
    """uvicorn's h11 HTTP protocol class (``uvicorn.protocols.http.h11_impl.H11Protocol``), to subclass.

    uvicorn's public configuration takes a protocol class (``http=``) but exports none to build on, and has no
    header count limit, no timeout for a request's head and no bound on open connections (``limit_concurrency``
    counts only connections that asked). A subclass overrides its hooks ``connection_made``,
    ``connection_lost``, ``data_received``, ``handle_events``, ``on_response_complete`` and
    ``send_400_response``, and reads its ``conn`` (the h11 connection), ``cycle`` (``response_complete``,
    ``disconnected``, ``message_event``), ``connections``, ``server_state.default_headers``, ``loop``,
    ``transport``, ``client`` and ``logger``.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def uvicorn_stop_keep_alive(protocol) -> None:
    """Stop an h11 protocol's keep-alive timer (its private ``_unset_keepalive_if_required``), before the
    protocol closes the connection itself."""
    protocol._unset_keepalive_if_required()


def tracked_layers(layer) -> list:
    """``layer`` and every layer it tracks, however deep (``layer._flatten_layers()``): also the sublayers a
    custom layer holds as attributes, which the public ``Model.layers`` (one level, models only) misses. Keras
    passes ``trainable`` down to all of them, so whoever saves and restores ``trainable`` flags needs them all."""
    return list(layer._flatten_layers())


def is_random(layer) -> bool:
    """Whether ``layer`` itself draws random numbers in training: it holds a ``keras.random.SeedGenerator``
    (Keras tracks them in ``layer._seed_generators``; the attribute holding one has no fixed name: Dropout's
    ``seed_generator``, RandomFlip's ``generator``)."""
    return bool(getattr(layer, "_seed_generators", None))


def data_layer_base():
    """Keras's base of its random preprocessing layers (``keras.src.layers.preprocessing.data_layer.DataLayer``,
    ``TFDataLayer`` before Keras 3.11): inside a ``tf.data`` graph it switches its ops to the TensorFlow backend,
    so a subclass runs in ``Dataset.map`` whatever the Keras backend. Keras exports no public counterpart."""
    try:  # Keras >= 3.11
        from keras.src.layers.preprocessing.data_layer import DataLayer
    except ImportError:  # pragma: no cover - older Keras 3
        from keras.src.layers.preprocessing.tf_data_layer import TFDataLayer as DataLayer
    return DataLayer


def frozen_function(concrete):
    """A concrete ``tf.function`` with its variables and captured tensors made constants
    (``tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2``): what the ONNX
    export hands tf2onnx, whose own ``from_function`` leaves captured constants as graph inputs. TensorFlow
    exports no public counterpart."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(concrete)
