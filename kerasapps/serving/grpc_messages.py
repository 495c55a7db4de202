"""TF Serving's gRPC messages <-> what the serving core takes and gives: tensors, model specs, examples.

A request's ``TensorProto`` is checked before anything is allocated (:func:`predict_inputs`: names, element
counts, dtypes and shapes against the signature) and then converted (:func:`to_array`); an output is written in
the typed value field TF Serving fills (``float_val``, ``int64_val``, ``string_val``, ...; :func:`to_tensor_proto`).
An ``Input`` of a Classify or Regress request becomes serialized ``tf.Example`` s with its context merged in
(:func:`serialized_examples`). Every refusal is a 400 :class:`~kerasapps.serving.errors.ServingError` with TF
Serving's wording.
"""

from __future__ import annotations

import numpy as np

from kerasapps.serving.errors import bad

__all__ = ["check_tensor", "to_array", "to_tensor_proto", "model_spec", "version_choice", "serialized_examples",
           "predict_inputs", "predict_outputs"]

_DT_STRING = 7


def _dtype_name(enum: int) -> str:
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(enum)
    except ValueError:
        return f"DT_{enum}"


def _dims(proto, alias: str) -> list[int]:
    """The shape a TensorProto declares, refused (INVALID_ARGUMENT) when it declares none that is valid."""
    shape = proto.tensor_shape
    dims = [d.size for d in shape.dim]
    if shape.unknown_rank or any(d < 0 for d in dims):
        raise bad(f"tensor parsing error: {alias}")
    return dims


def _count(dims: list[int]) -> int:
    count = 1
    for d in dims:
        count *= d
    return count


def _shape_text(spec) -> str:
    if spec.shape.rank is None:
        return "?"
    return str([-1 if d is None else d for d in spec.shape.as_list()])


def check_tensor(alias: str, proto, spec) -> None:
    """Refuse (400) a request tensor whose dtype or declared shape does not fit the signature's ``spec``."""
    expected = spec.dtype.as_datatype_enum
    if proto.dtype != expected:
        import tensorflow as tf

        try:
            got = tf.dtypes.as_dtype(proto.dtype).name
        except TypeError:
            got = _dtype_name(proto.dtype)
        raise bad(f"Expects arg '{alias}' to be {spec.dtype.name} but {got} is provided")
    dims = _dims(proto, alias)
    if not spec.shape.is_compatible_with(dims):
        raise bad(f"Input '{alias}' has shape {dims}, but the signature expects {_shape_text(spec)} "
                  "(-1: any size)")


def _check_string_expansion(alias: str, proto, count: int, limit: int) -> None:
    """Refuse (400) a string tensor whose last value, repeated to fill its shape (TensorProto's rule for short
    value lists), would make more than ``limit`` bytes."""
    values = proto.string_val
    if proto.dtype != _DT_STRING or not values or count <= len(values):
        return
    total = sum(len(v) for v in values) + (count - len(values)) * len(values[-1])
    if total > limit:
        raise bad(f"Input '{alias}': {len(values)} strings repeated to fill {count} values would make {total} "
                  f"bytes, more than the server's max_request_bytes ({limit})")


def to_array(alias: str, proto) -> np.ndarray:
    """A request TensorProto as a numpy array; a proto whose values do not fit its shape is refused (400)."""
    import tensorflow as tf

    try:
        return tf.make_ndarray(proto)
    except (ValueError, TypeError, IndexError):
        raise bad(f"tensor parsing error: {alias}") from None


# TensorProto's typed value field for each DataType, as Tensor::AsProtoField writes them.
_VALUE_FIELDS = {
    1: "float_val",  # DT_FLOAT
    2: "double_val",  # DT_DOUBLE
    3: "int_val",  # DT_INT32
    4: "int_val",  # DT_UINT8
    5: "int_val",  # DT_INT16
    6: "int_val",  # DT_INT8
    7: "string_val",  # DT_STRING
    8: "scomplex_val",  # DT_COMPLEX64
    9: "int64_val",  # DT_INT64
    10: "bool_val",  # DT_BOOL
    14: "half_val",  # DT_BFLOAT16
    17: "int_val",  # DT_UINT16
    18: "dcomplex_val",  # DT_COMPLEX128
    19: "half_val",  # DT_HALF
    22: "uint32_val",  # DT_UINT32
    23: "uint64_val",  # DT_UINT64
}


_FIXED_WIDTH = {"float_val": "<f4", "double_val": "<f8", "scomplex_val": "<f4", "dcomplex_val": "<f8"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def to_tensor_proto(value) -> object:
    """A numpy output as a TensorProto with its values in the typed field TF Serving fills."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        dtype = tf.string
    else:
        try:
            dtype = tf.dtypes.as_dtype(array.dtype)
        except TypeError:
            return tf.make_tensor_proto(array)
    field = _VALUE_FIELDS.get(dtype.as_datatype_enum)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]))
    flat = array.reshape(-1)
    packed = _FIXED_WIDTH.get(field)
    if packed is not None:  # fixed-width values: one packed field, written without a Python loop
        payload = np.ascontiguousarray(flat.view(flat.real.dtype) if flat.dtype.kind == "c" else flat)
        payload = payload.astype(packed, copy=False).tobytes()
        number = tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name[field].number
        proto.MergeFromString(_varint((number << 3) | 2) + _varint(len(payload)) + payload)
        return proto
    if field == "string_val":
        values = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat.tolist()]
    elif field == "half_val":
        values = flat.view(np.uint16).tolist()
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto



# -- requests --------------------------------------------------------------------------------------------

def model_spec(request):
    """A request's ``model_spec``, refused (400 "Missing ModelSpec") when it has none."""
    if not request.HasField("model_spec"):
        raise bad("Missing ModelSpec")
    return request.model_spec


def version_choice(spec) -> tuple[int | None, str | None]:
    """(version, label) a ModelSpec names: one of them, or neither (the latest)."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _keys(mapping) -> str:
    return ",".join(sorted(mapping))


def serialized_examples(input_proto) -> list[bytes]:
    """Serialized ``tf.train.Example`` s of an ``Input``, each with the list's context merged in.

    As TF Serving's ``InputToSerializedExampleTensor``: the context's serialized bytes are prepended to
    each example's, so parsing merges them and an example's own feature replaces the context's. An
    ``Input`` with no example is refused (400 "Input is empty.").
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = input_proto.example_list_with_context
        context = with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in with_context.examples]
    else:
        examples = []
    if not examples:
        raise bad("Input is empty.")
    return examples


def predict_inputs(request, signature, signature_def, max_elements: int, max_bytes: int) -> tuple[dict, int]:
    """The checked protos (alias -> TensorProto) of a PredictRequest and their element count; nothing converted.

    As TF Serving's ``predict_util.cc``: the number of inputs and their names (an input missing from the request
    takes the SignatureDef's default), each tensor's element count from its ``tensor_shape`` (all together at most
    ``max_elements``; a short string list, whose last value fills the shape, at most ``max_bytes`` once filled),
    then its dtype and shape against the signature.
    """
    specs = signature.inputs
    given, defaults = request.inputs, signature_def.defaults if signature_def is not None else {}
    if len(given) > len(specs) or (len(given) < len(specs) and not defaults):
        extra = sorted(set(given) - set(specs))
        missing = sorted(set(specs) - set(given))
        raise bad(f"input size does not match signature: {len(given)}!={len(specs)} len({{{_keys(given)}}}) "
                  f"!= len({{{_keys(specs)}}}). Sent extra: {{{','.join(extra)}}}. "
                  f"Missing but required: {{{','.join(missing)}}}.")
    protos = {}
    for alias in sorted(specs):
        if alias in given:
            protos[alias] = given[alias]
        elif alias in defaults:
            protos[alias] = defaults[alias]
        else:
            info = signature_def.inputs.get(alias) if signature_def is not None else None
            feed = info.name if info is not None else alias
            raise bad(f"Signature input alias: {alias}(feed name: {feed}) not found in request and no default "
                      f"value provided. Inputs expected to be in the request {{{_keys(given)}}}, or default "
                      f"input alias set: {_keys(defaults)}")
    unknown = set(given) - set(specs)
    if unknown:
        raise bad(f"Inputs contains invalid name. Used request inputs: {_keys(set(given) & set(specs))}, "
                  f"request input: {_keys(given)}")
    limit = max_elements
    total = 0
    for alias, proto in protos.items():
        count = _count(_dims(proto, alias))
        total += count
        if total > limit:
            raise bad(f"The request's tensors hold more than {limit} values (the server's "
                      "max_request_elements); send fewer rows per request")
        _check_string_expansion(alias, proto, count, max_bytes)
    for alias, proto in protos.items():
        check_tensor(alias, proto, specs[alias])
    return protos, total


def predict_outputs(request, signature) -> list[str]:
    """The outputs a PredictRequest asks for (its ``output_filter``; empty: all), checked against the signature."""
    names = list(signature.outputs)
    chosen = []
    for alias in request.output_filter:
        if alias not in names:
            raise bad(f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                      f"set {{{_keys(names)}}}.")
        if alias in chosen:
            raise bad(f"duplicate output tensor alias: {alias}")
        chosen.append(alias)
    return chosen or names
