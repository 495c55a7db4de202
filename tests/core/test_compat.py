"""The internals ``kerasapps.core.compat`` relies on, checked against the installed Keras, TensorFlow and uvicorn.

Each test names the internal it needs, so an upgrade that moves one fails here, by name, rather than in the middle
of a training run or under a served request.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import numpy as np
import pytest

from kerasapps.core import compat


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_compat_imports_nothing_heavy_at_import():
    import ast

    tree = ast.parse(inspect.getsource(compat))
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names} | {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not top_level & {"keras", "tensorflow", "uvicorn", "h11"}, \
        "compat must import Keras, TensorFlow and uvicorn inside its functions"


# -- Keras ---------------------------------------------------------------------------------------------------------

def _built_optimizer(**kwargs):
    import keras

    optimizer = keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5, **kwargs)
    variables = [keras.Variable(np.ones(2, "float32"), name="kernel"), keras.Variable(np.ones(2, "float32"),
                                                                                        name="bias")]
    optimizer.build(variables)
    return optimizer, variables


def test_keras_optimizer_weight_decay_internals():
    optimizer, (kernel, bias) = _built_optimizer()
    assert callable(getattr(optimizer, "_var_key", None)), "keras optimizers no longer have _var_key"
    assert callable(getattr(optimizer, "_use_weight_decay", None)), "keras optimizers no longer have _use_weight_decay"
    source = inspect.getsource(type(optimizer)._use_weight_decay)
    for name in ("_exclude_from_weight_decay", "_exclude_from_weight_decay_pattern",
                 "_exclude_from_weight_decay_cache"):
        assert f'"{name}"' in source or f"self.{name}" in source, f"_use_weight_decay no longer reads {name}"
    compat.exclude_from_weight_decay(optimizer, [bias])
    assert not optimizer._use_weight_decay(bias) and optimizer._use_weight_decay(kernel)


def test_keras_optimizer_ema_internals():
    optimizer, variables = _built_optimizer(use_ema=True)
    assert hasattr(optimizer, "_trainable_variables"), "keras optimizers no longer have _trainable_variables"
    assert hasattr(optimizer, "_model_variables_moving_average"), \
        "keras optimizers no longer have _model_variables_moving_average"
    assert len(optimizer._model_variables_moving_average) == len(optimizer._trainable_variables) == len(variables)


def test_keras_set_keras_mask():
    from keras.src import backend

    assert _parameters(backend.set_keras_mask)[:2] == ["x", "mask"], "keras.src.backend.set_keras_mask moved"


def test_keras_tracked_layers_reach_a_custom_layers_attributes():
    """``_flatten_layers`` finds a sublayer held as an attribute (Model.layers does not), and trainable flags
    set on the outer layer reach it: what saving and restoring the flags needs."""
    import keras

    class Wrapper(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.flip = keras.layers.RandomFlip("horizontal", seed=1)

        def call(self, x, training=None):
            return self.flip(x, training=training)

    inputs = keras.Input((4, 4, 1))
    wrapper = Wrapper()
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(wrapper(inputs)))
    layers = compat.tracked_layers(model)
    assert layers[0] is model and wrapper.flip in layers and wrapper.flip not in model.layers
    assert compat.is_random(wrapper.flip) and compat.is_random(keras.layers.Dropout(0.5, seed=1)), \
        "Keras no longer tracks a layer's seed generators in _seed_generators"
    assert not compat.is_random(model.get_layer("head"))
    model.trainable = False
    assert not wrapper.flip.trainable


def test_keras_data_layer_base_runs_in_tf_data():
    """The base class of Keras's random layers, still importable, still the base of RandomFlip, and a subclass
    of it runs inside ``Dataset.map``."""
    import keras
    import tensorflow as tf

    from kerasapps.data.augment import ElasticDistortion

    base = compat.data_layer_base()
    assert issubclass(keras.layers.RandomFlip, base), "Keras's random layers have another base class"
    layer = ElasticDistortion(alpha=34.0, sigma=4.0, seed=1)
    images = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).random((2, 28, 28, 1), "float32")).batch(2)
    out = next(iter(images.map(lambda x: layer(x, training=True))))
    assert out.shape == (2, 28, 28, 1)


# -- TensorFlow ----------------------------------------------------------------------------------------------------

def test_tensorflow_freezes_a_functions_variables_and_captured_constants():
    import tensorflow as tf

    weight, offset = tf.Variable(2.0), tf.constant(3.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def scaled(x):
        return {"y": x * weight + offset}

    frozen = compat.frozen_function(scaled.get_concrete_function())
    ops = {op.type for op in frozen.graph.get_operations()}
    assert "ReadVariableOp" not in ops and len(frozen.inputs) == 1, "convert_variables_to_constants_v2 changed"
    assert frozen(tf.constant([1.0]))[0].numpy().tolist() == [5.0]


def test_tensorflow_cancellation_internals():
    from tensorflow.python.eager import cancellation, context

    assert callable(getattr(cancellation, "context", None)), "tensorflow.python.eager.cancellation.context is gone"
    assert _parameters(cancellation.context) == [], "cancellation.context() now takes arguments"
    assert callable(getattr(cancellation.CancellationManager, "start_cancel", None)), \
        "CancellationManager.start_cancel is gone"
    # Eager calls must read the manager through the module attribute, or replacing it changes nothing.
    assert "cancellation.context()" in inspect.getsource(context), \
        "tensorflow.python.eager.context no longer calls cancellation.context()"


def test_thread_local_cancellation_gives_each_thread_its_manager():
    from tensorflow.python.eager import cancellation

    assert compat.thread_local_cancellation()
    assert compat.thread_local_cancellation()  # idempotent
    assert getattr(cancellation.context, "_kerasapps_thread_local", False)
    mine = compat.new_cancellation_manager()
    assert isinstance(mine, cancellation.CancellationManager)
    seen = {}
    compat.set_thread_cancellation_manager(mine)
    try:  # this thread's calls read its own manager; another thread's do not see it
        seen["here"] = cancellation.context()
        other = threading.Thread(target=lambda: seen.setdefault("there", cancellation.context()))
        other.start()
        other.join()
    finally:
        compat.set_thread_cancellation_manager(None)
    assert seen["here"] is mine and seen["there"] is None and cancellation.context() is None


def test_a_cancelled_manager_stops_a_running_tensorflow_call():
    import tensorflow as tf

    started = threading.Event()

    def mark():
        started.set()
        return np.int32(0)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def spin(steps):
        zero = tf.py_function(mark, [], tf.int32)  # the call is registered with its manager by now
        return tf.while_loop(lambda i: i < steps, lambda i: i + 1, [zero])[0]

    function = spin.get_concrete_function()
    assert compat.thread_local_cancellation()
    manager, outcome = compat.new_cancellation_manager(), {}

    def call():
        compat.set_thread_cancellation_manager(manager)
        try:
            outcome["result"] = function(tf.constant(2**31 - 1))
        except tf.errors.CancelledError as exc:
            outcome["error"] = exc
        finally:
            compat.set_thread_cancellation_manager(None)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    assert started.wait(120), "the call did not start"
    manager.start_cancel()
    thread.join(120)
    assert not thread.is_alive() and "error" in outcome, "a cancelled CancellationManager did not stop the call"


# -- uvicorn -------------------------------------------------------------------------------------------------------

class _Transport:
    """What H11Protocol.connection_made reads of a transport."""

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 8501) if name in ("peername", "sockname") else default

    def is_closing(self):
        return False

    def write(self, data):
        pass

    def close(self):
        pass


@pytest.fixture
def protocol():
    import uvicorn
    from uvicorn.server import ServerState

    async def app(scope, receive, send):
        pass

    protocol_class = compat.uvicorn_h11_protocol()
    loop = asyncio.new_event_loop()
    try:
        yield protocol_class(uvicorn.Config(app), ServerState(), {}, loop)
    finally:
        loop.close()


def test_uvicorn_h11_protocol_class_and_hooks():
    import h11

    protocol_class = compat.uvicorn_h11_protocol()
    assert _parameters(protocol_class.__init__) == ["self", "config", "server_state", "app_state", "_loop"], \
        "H11Protocol.__init__ changed its parameters"
    hooks = {"connection_made": ["self", "transport"], "connection_lost": ["self", "exc"],
             "data_received": ["self", "data"], "handle_events": ["self"], "on_response_complete": ["self"],
             "send_400_response": ["self", "msg"], "_unset_keepalive_if_required": ["self"]}
    for hook, parameters in hooks.items():
        assert callable(getattr(protocol_class, hook, None)), f"H11Protocol.{hook} is gone"
        assert _parameters(getattr(protocol_class, hook)) == parameters, f"H11Protocol.{hook} changed its parameters"
    assert hasattr(h11.Connection, "trailing_data"), "h11.Connection.trailing_data is gone"


def test_uvicorn_h11_protocol_attributes(protocol):
    import h11

    for name in ("conn", "cycle", "connections", "server_state", "loop", "logger", "transport", "client"):
        assert hasattr(protocol, name), f"H11Protocol instances no longer have {name}"
    assert isinstance(protocol.conn, h11.Connection) and protocol.cycle is None
    assert protocol.connections is protocol.server_state.connections
    assert isinstance(protocol.server_state.default_headers, list), "ServerState.default_headers is gone"
    protocol.connection_made(_Transport())
    assert protocol in protocol.connections and protocol.client == ("127.0.0.1", 8501)
    compat.uvicorn_stop_keep_alive(protocol)
    protocol.connection_lost(None)
    assert protocol not in protocol.connections


def test_uvicorn_request_cycle_attributes():
    from uvicorn.protocols.http.h11_impl import RequestResponseCycle

    source = inspect.getsource(RequestResponseCycle.__init__)
    for name in ("response_complete", "disconnected", "message_event"):
        assert f"self.{name}" in source, f"uvicorn's RequestResponseCycle no longer has {name}"


def test_uvicorn_config_takes_the_limits():
    import uvicorn

    parameters = _parameters(uvicorn.Config.__init__)
    for name in ("http", "ws", "h11_max_incomplete_event_size", "timeout_keep_alive", "limit_concurrency"):
        assert name in parameters, f"uvicorn.Config no longer takes {name}"
