"""TensorFlow Serving's gRPC API over a :class:`~kerasapps.serving.core.ServingCore`, the REST API's beside it.

Serves ``tensorflow.serving.PredictionService`` (Predict, GetModelMetadata, Classify, Regress) and
``tensorflow.serving.ModelService`` (GetModelStatus) with TF Serving's messages, so a client written for
TF Serving's gRPC port (``prediction_service_pb2_grpc.PredictionServiceStub``, ``model_service_pb2_grpc``)
works unchanged. Requests go through the same core as the REST API: the same loaded versions,
in-flight bound, deadlines and batching; messages are converted by :mod:`kerasapps.serving.grpc_messages`.

Behaviour, as TF Serving's servicers (``prediction_service_impl.cc``, ``predict_util.cc``,
``get_model_metadata_impl.cc``, ``get_model_status_impl.cc``, ``classifier.cc``, ``regressor.cc``):

- A request without ``model_spec`` is INVALID_ARGUMENT "Missing ModelSpec". ``model_spec.version``
  pins a version, ``version_label`` names one, neither serves the latest; ``signature_name`` defaults
  to ``serving_default``. Responses carry ``model_spec`` with the name, the version served and (Predict,
  Classify, Regress) the signature name.
- Predict: an unknown signature is FAILED_PRECONDITION; inputs are checked before anything is
  allocated: the number of inputs, their names, each tensor's element count from its ``tensor_shape``
  (all inputs together at most ``max_request_elements``; a short string list, whose last value fills
  the shape, at most ``max_request_bytes`` once filled), its dtype and shape against the signature,
  then it is converted. ``output_filter`` selects outputs (an unknown or repeated name is
  INVALID_ARGUMENT). Outputs are written in the typed value fields (``float_val``, ``int64_val``,
  ``string_val``, ...), as TF Serving writes them, so clients reading those fields work.
- GetModelMetadata: ``metadata_field`` must name ``signature_def`` only; ``metadata["signature_def"]``
  is an ``Any`` holding a ``SignatureDefMap`` with every SignatureDef of the version.
- Classify / Regress take ``input`` (``example_list`` or ``example_list_with_context``, whose context
  is merged into each example as TF Serving does: its serialized bytes are prepended, so an example's
  own feature wins over the context's); the signature must be a classify / regress one.
- GetModelStatus lists the model's versions with their state and status.
- MultiInference and HandleReloadConfigRequest are UNIMPLEMENTED.

Errors: a ``ServingError`` maps to gRPC's code as TF Serving's statuses do (400 and 415 INVALID_ARGUMENT,
404 NOT_FOUND, 408 and 504 DEADLINE_EXCEEDED, 413 and 431 RESOURCE_EXHAUSTED, 500 INTERNAL,
501 UNIMPLEMENTED, 503 UNAVAILABLE); details are the message on one line, cut at 1024 characters as TF
Serving cuts them. Anything unexpected is logged and answered INTERNAL; one request never stops the
server. A request is answered within ``request_timeout_s`` or the client's deadline, whichever comes
first. Messages over ``max_request_bytes`` (after decompression) are refused by gRPC itself with
RESOURCE_EXHAUSTED; metadata (headers) over ``max_header_bytes`` likewise, and so are calls past
``max_connections`` RPCs in progress at once (the REST server's bound on open connections).

:func:`kerasapps.serving.server.create_app` starts it beside the REST API when ``grpc_port`` is set; alone::

    grpc_server, port = await start_grpc_server(core, "127.0.0.1", 8500)  # core: a running ServingCore
    ...
    await grpc_server.stop(grace=5)
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from kerasapps.serving.errors import ServingError, bad
from kerasapps.serving.grpc_messages import (
    model_spec,
    predict_inputs,
    predict_outputs,
    serialized_examples,
    to_array,
    to_tensor_proto,
    version_choice,
)
from kerasapps.serving.metrics import GRPC, note_call
from kerasapps.serving.servable import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD

logger = logging.getLogger("kerasapps.serving")

__all__ = ["start_grpc_server", "PredictionServicer", "ModelServicer", "grpc_code", "serialized_examples"]

SIGNATURE_DEF_FIELD = "signature_def"
MAX_DETAILS = 1024  # TF Serving's ToGRPCStatus cuts error messages here
MAX_SEND_BYTES = 2**31 - 1  # responses: as large as gRPC allows
_OFF_LOOP_ELEMENTS = 1 << 16  # tensors larger than this are converted in a worker thread

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC code TF Serving answers for what its REST API answers with HTTP ``status``."""
    code = _CODES.get(status)
    if code is None:
        code = grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL
    return code


class RpcError(Exception):
    """An error answered with a gRPC code of its own (one no HTTP status names, e.g. FAILED_PRECONDITION)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _details(message: str) -> str:
    """One line of valid UTF-8, at most MAX_DETAILS characters (then "...TRUNCATED", as TF Serving)."""
    text = " ".join(str(message).split())
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_DETAILS else text[:MAX_DETAILS] + "...TRUNCATED"


def _code_name(code) -> str:
    """The name of a gRPC code, given as a ``grpc.StatusCode`` or its number."""
    if isinstance(code, grpc.StatusCode):
        return code.name
    for known in grpc.StatusCode:
        if known.value[0] == code:
            return known.name
    return str(code)


class _Handler:
    """What both servicers share: the serving core, deadlines and the error mapping."""

    def __init__(self, core):
        self.core = core

    def deadline_s(self, context) -> float:
        """Seconds this request may take: ``request_timeout_s``, capped by the client's own deadline."""
        budget = float(self.core.options.request_timeout_s)
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, remaining)
        if budget <= 0:
            raise ServingError(504, "Deadline exceeded before the request was handled")
        return budget

    async def answer(self, context, method: str, handle, request):
        """Run ``handle(request, deadline_s)``, answering errors with TF Serving's gRPC statuses (and measuring
        the request with ``monitoring``)."""
        metrics = self.core.metrics
        if metrics is None:
            return await self._answer(context, method, handle, request)
        with metrics.request(GRPC) as status:
            status[0] = grpc.StatusCode.CANCELLED.name  # unless an answer or an error code comes
            note_call(method, request.model_spec.name if request.HasField("model_spec") else "")
            try:
                response = await self._answer(context, method, handle, request)
            except grpc.aio.AbortError:
                status[0] = _code_name(context.code())
                raise
            status[0] = grpc.StatusCode.OK.name
            return response

    async def _answer(self, context, method: str, handle, request):
        try:
            deadline_s = self.deadline_s(context)
            try:
                async with asyncio.timeout(deadline_s):
                    return await handle(request, deadline_s)
            except TimeoutError:
                raise ServingError(504, f"Deadline exceeded: the request did not finish within {deadline_s:g} s") \
                    from None
        except grpc.aio.AbortError:
            raise
        except RpcError as exc:
            await context.abort(exc.code, _details(exc.message))
        except ServingError as exc:
            await context.abort(grpc_code(exc.status), _details(exc.message))
        except Exception as exc:  # noqa: BLE001 - one request must not take the server down
            logger.exception("Unhandled error serving gRPC %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, _details(f"Internal: {type(exc).__name__}: {exc}"))

    async def resolve(self, spec):
        version, label = version_choice(spec)
        return await self.core.resolve(spec.name, version, label)


def _signature_def_map(servable) -> dict:
    mapping = getattr(servable, "signature_def_map", None)
    if mapping is None:
        from kerasapps.serving.servable import read_signature_def_protos

        mapping = read_signature_def_protos(servable.path)
    return mapping


def _response_spec(target, name: str, version: int, signature_name: str | None) -> None:
    target.name = name
    target.version.value = int(version)
    if signature_name is not None:
        target.signature_name = signature_name


async def _maybe_off_loop(core, elements: int, fn):
    """Run ``fn()`` in the core's worker threads (not model threads) when it handles many values, else inline."""
    if elements > _OFF_LOOP_ELEMENTS:
        return await core.in_pool(fn)
    return fn()


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer, _Handler):
    """``tensorflow.serving.PredictionService`` on a :class:`~kerasapps.serving.core.ServingCore`."""

    async def Predict(self, request, context):  # noqa: N802 - gRPC's method names
        return await self.answer(context, "Predict", self._predict, request)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        return await self.answer(context, "GetModelMetadata", self._metadata, request)

    async def Classify(self, request, context):  # noqa: N802
        return await self.answer(context, "Classify", self._classify, request)

    async def Regress(self, request, context):  # noqa: N802
        return await self.answer(context, "Regress", self._regress, request)

    async def MultiInference(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "MultiInference is not supported by kerasapps.serving; use Classify or Regress")

    # -- Predict -----------------------------------------------------------------------------------------

    async def _predict(self, request, deadline_s: float):
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        spec = model_spec(request)
        servable = await self.resolve(spec)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        if signature_name not in servable.signatures:
            raise RpcError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature_name}" not found.')
        signature = servable.signature(signature_name)
        signature_def = _signature_def_map(servable).get(signature_name)
        options = self.core.options
        protos, elements = predict_inputs(request, signature, signature_def, options.max_request_elements,
                                          options.max_request_bytes)
        wanted = predict_outputs(request, signature)
        inputs = await _maybe_off_loop(self.core, elements, lambda: {a: to_array(a, p) for a, p in protos.items()})
        outputs = await self.core.predict(servable, signature_name, inputs,
                                            deadline_s=max(end - loop.time(), 0.0))
        missing = [name for name in wanted if name not in outputs]
        if missing:
            raise ServingError(500, f"The signature returned no output {missing[0]!r}")
        response = predict_pb2.PredictResponse()
        _response_spec(response.model_spec, spec.name, servable.version, signature_name)
        size = sum(int(np.size(outputs[name])) for name in wanted)

        def encode():
            for name in wanted:
                response.outputs[name].CopyFrom(to_tensor_proto(outputs[name]))
            return response

        return await _maybe_off_loop(self.core, size, encode)

    # -- GetModelMetadata --------------------------------------------------------------------------------
    async def _metadata(self, request, deadline_s: float):
        spec = model_spec(request)
        if not request.metadata_field:
            raise bad("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise bad(f"Metadata field {field} is not supported")
        servable = await self.resolve(spec)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in _signature_def_map(servable).items():
            signature_defs.signature_def[key].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _response_spec(response.model_spec, spec.name, servable.version, None)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
        return response

    # -- Classify and Regress ----------------------------------------------------------------------------
    async def _examples_for(self, request, method: str, kind: str):
        """(spec, servable, signature name, serialized examples) of a Classify or Regress request, checked."""
        spec = model_spec(request)
        servable = await self.resolve(spec)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature_def = _signature_def_map(servable).get(signature_name)
        if signature_def is None or signature_name not in servable.signatures:
            raise bad(f"No signature was found with the name: {signature_name}")
        if signature_def.method_name != method:
            raise bad(f"Expected {kind} signature method_name to be {method}. Was: {signature_def.method_name}")
        examples = serialized_examples(request.input)
        limit = self.core.options.max_request_elements
        if len(examples) > limit:
            raise bad(f"The request holds {len(examples)} examples, more than {limit} (the server's "
                      "max_request_elements); send fewer per request")
        return spec, servable, signature_name, examples

    async def _classify(self, request, deadline_s: float):
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        spec, servable, signature_name, examples = await self._examples_for(request, CLASSIFY_METHOD,
                                                                            "classification")
        classes, scores = await self.core.classify(servable, signature_name, examples,
                                                     deadline_s=max(end - loop.time(), 0.0))
        response = classification_pb2.ClassificationResponse()
        _response_spec(response.model_spec, spec.name, servable.version, signature_name)
        labels = None if classes is None else np.asarray(classes)
        values = None if scores is None else np.asarray(scores, dtype=np.float32)
        rows = labels if labels is not None else values
        if rows is None:
            raise ServingError(500, "The classify signature returned neither classes nor scores")
        for i in range(rows.shape[0]):
            row = response.result.classifications.add()
            for c in range(rows.shape[1]):
                item = row.classes.add()
                if labels is not None:
                    label = labels[i, c]
                    item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
                if values is not None:
                    item.score = float(values[i, c])
        return response

    async def _regress(self, request, deadline_s: float):
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        spec, servable, signature_name, examples = await self._examples_for(request, REGRESS_METHOD, "regression")
        values = await self.core.regress(servable, signature_name, examples, deadline_s=max(end - loop.time(), 0.0))
        values = np.asarray(values, dtype=np.float32)
        response = regression_pb2.RegressionResponse()
        _response_spec(response.model_spec, spec.name, servable.version, signature_name)
        for value in values.reshape(-1).tolist():
            response.result.regressions.add().value = value
        return response


def _enum_value(enum_type, name: str, default: int = 0) -> int:
    value = enum_type.values_by_name.get(name)
    return default if value is None else value.number


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer, _Handler):
    """``tensorflow.serving.ModelService`` on a serving core: model status; config reloads are not supported."""

    async def GetModelStatus(self, request, context):  # noqa: N802 - gRPC's method names
        return await self.answer(context, "GetModelStatus", self._status, request)

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "HandleReloadConfigRequest is not supported by kerasapps.serving; "
                            "edit the model config file or the model base instead")

    async def _status(self, request, deadline_s: float):
        spec = model_spec(request)
        version, label = version_choice(spec)
        rows = await self.core.status(spec.name, version, label)
        response = get_model_status_pb2.GetModelStatusResponse()
        states = get_model_status_pb2.ModelVersionStatus.State.DESCRIPTOR
        codes = get_model_status_pb2.ModelVersionStatus.DESCRIPTOR.fields_by_name["status"].message_type \
            .fields_by_name["error_code"].enum_type
        for row in rows:
            status = row.get("status") or {}
            entry = response.model_version_status.add()
            entry.version = int(row["version"])
            entry.state = _enum_value(states, str(row.get("state", "UNKNOWN")))
            entry.status.error_code = _enum_value(codes, str(status.get("error_code", "OK")), default=2)
            entry.status.error_message = str(status.get("error_message", ""))
        return response


async def start_grpc_server(core, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start TF Serving's gRPC services on ``core`` (a :class:`~kerasapps.serving.core.ServingCore`, as an app's
    ``app.state.server``) on ``host:port``.

    Must be awaited in the event loop the core runs in (see :meth:`ServingCore.running`). ``port`` 0
    picks a free port. Returns ``(grpc_server, bound_port)``; stop it with ``await grpc_server.stop(grace)``.
    Limits come from ``core.options``: ``max_request_bytes`` is the largest message received,
    ``max_header_bytes`` the largest metadata, ``max_connections`` the most RPCs in progress at once.
    Raises ``OSError`` when the address cannot be bound (a port in use is an error: the socket is not
    shared with another process through SO_REUSEPORT).
    """
    options = core.options
    grpc_server = grpc.aio.server(maximum_concurrent_rpcs=options.max_connections, options=[
        ("grpc.max_receive_message_length", int(options.max_request_bytes)),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.max_metadata_size", int(options.max_header_bytes)),
        ("grpc.so_reuseport", 0),
    ])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(core), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), grpc_server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = grpc_server.add_insecure_port(address)
    except RuntimeError as exc:
        bound, reason = 0, str(exc)
    else:
        reason = "in use or not available"
    if not bound:
        await grpc_server.stop(None)
        raise OSError(f"Cannot serve gRPC on {address}: {reason}")
    await grpc_server.start()
    logger.info("Serving TF Serving's gRPC API on %s", address.rsplit(":", 1)[0] + f":{bound}")
    return grpc_server, bound
