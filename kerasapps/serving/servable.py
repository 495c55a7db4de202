"""One loaded version of one model (:class:`Servable`): its signatures, called on numpy inputs, cancellable.

A signature's call runs in the calling thread; a :class:`Cancellation` made by the caller lets another thread
stop it, as TF Serving cancels ``Session::Run`` when a request's deadline passes (the running ops stop and the
call raises a 504). TensorFlow's hook for that is internal (:mod:`kerasapps.core.compat`); without it calls run
to their end and a warning says so once. An op's failure on the inputs is a 400 with the op's own message
(:func:`kerasapps.data.images.op_error_message`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from kerasapps.core import compat
from kerasapps.data.images import op_error_message
from kerasapps.serving.errors import ServingError

logger = logging.getLogger("kerasapps.serving")

__all__ = ["DEFAULT_SIGNATURE", "PREDICT_METHOD", "CLASSIFY_METHOD", "REGRESS_METHOD", "Signature", "Cancellation",
           "Servable", "read_signature_def_protos"]

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


@dataclass
class Signature:
    """One callable signature of a loaded SavedModel."""

    name: str
    function: object  # a tf ConcreteFunction taking keyword tensors
    inputs: dict  # input name -> tf.TensorSpec
    outputs: tuple  # output names, sorted
    method_name: str = PREDICT_METHOD  # the SignatureDef's kind: predict, classify or regress


_WARNED = []


class Cancellation:
    """A handle that cancels one model call from another thread (``cancel()``), as TF Serving cancels
    ``Session::Run`` when a request's deadline passes: the running ops stop and the call raises.

    Used as a context manager around the call, in the thread that makes it: TensorFlow then reads this call's
    manager for that thread only, so cancelling one call never stops another thread's.
    """

    def __init__(self):
        self.enabled = compat.thread_local_cancellation()
        if not self.enabled and not _WARNED:
            _WARNED.append(True)
            logger.warning("This TensorFlow has no cancellation hook: model calls past their deadline run to the end")
        self._manager = compat.new_cancellation_manager() if self.enabled else None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self._manager is not None:
            self._manager.start_cancel()

    def __enter__(self):
        compat.set_thread_cancellation_manager(self._manager)
        return self

    def __exit__(self, *exc):
        compat.set_thread_cancellation_manager(None)


@dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: str
    stamp: tuple
    signatures: dict
    signature_def_map: dict  # name -> SignatureDef proto of the 'serve' meta graph
    _loaded: object = field(repr=False, default=None)  # keeps the tf object alive
    _signature_json: dict | None = field(repr=False, default=None)

    @classmethod
    def load(cls, name: str, version: int, path: str, stamp: tuple) -> "Servable":
        import tensorflow as tf

        signature_defs = read_signature_def_protos(path)
        loaded = tf.saved_model.load(path)
        signatures = {}
        for key, fn in loaded.signatures.items():
            args, kwargs = fn.structured_input_signature
            method = signature_defs[key].method_name if key in signature_defs else PREDICT_METHOD
            signatures[key] = Signature(name=key, function=fn, inputs=dict(kwargs),
                                        outputs=tuple(sorted(fn.structured_outputs)), method_name=method)
        return cls(name, version, path, stamp, signatures, signature_defs, loaded)

    @property
    def signature_def(self) -> dict:
        """TF Serving's JSON rendering of the SignatureDef map (REST metadata)."""
        if self._signature_json is None:
            from google.protobuf import json_format

            self._signature_json = {
                key: json_format.MessageToDict(sig, always_print_fields_with_no_presence=True,
                                               preserving_proto_field_name=True)
                for key, sig in sorted(self.signature_def_map.items())}
        return self._signature_json

    def signature(self, signature_name: str) -> Signature:
        key = signature_name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError(
                400,
                f'Serving signature name: "{key[:200]}" not found in signature def '
                f"(available: {', '.join(sorted(self.signatures)) or 'none'})",
            ) from None

    def run(self, signature_name: str, inputs: dict, cancellation: Cancellation | None = None) -> dict:
        """Call a signature on numpy inputs; returns numpy outputs keyed by name.

        ``cancellation`` (made by the caller) lets another thread stop the call: it then raises a 504
        ServingError. An op's failure on the inputs (an assertion, a bad shape) is a 400 with the op's message.
        """
        import tensorflow as tf

        fn = self.signature(signature_name).function
        tensors = {key: tf.constant(value) for key, value in inputs.items()}
        try:
            if cancellation is None:
                result = fn(**tensors)
            else:
                with cancellation:
                    result = fn(**tensors)
        except tf.errors.CancelledError as exc:
            raise ServingError(504, "Deadline exceeded: the model call was cancelled") from exc
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError,
                ValueError, TypeError) as exc:
            raise ServingError(400, op_error_message(exc)) from exc
        except tf.errors.ResourceExhaustedError as exc:
            raise ServingError(503, f"Resource exhausted: {op_error_message(exc)}") from exc
        except tf.errors.OpError as exc:
            raise ServingError(500, op_error_message(exc)) from exc
        return {key: value.numpy() for key, value in result.items()}


def read_signature_def_protos(path: str) -> dict:
    """The ``signature_def`` map (name -> SignatureDef proto) of the 'serve' meta graph of a SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    graphs = [g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags]
    graph = (graphs or list(saved_model.meta_graphs))[0]
    return {key: graph.signature_def[key] for key in sorted(graph.signature_def)}
