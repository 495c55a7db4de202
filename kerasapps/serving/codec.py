"""JSON <-> numpy for TF Serving's REST predict API (row ``instances`` and columnar ``inputs``).

Mirrors ``tensorflow_serving/util/json_tensor.cc``: a single named input may be given
without its name; ``{"b64": ...}`` decodes to bytes for DT_STRING inputs; outputs whose
name ends in ``_bytes`` are written back as ``{"b64": ...}``; NaN/Infinity are accepted
and written as those tokens; floats are written in their shortest round-tripping form
for their own precision (0.2 as ``0.2``, not ``0.20000000298023224``). Stricter than TF
Serving in one place: integer values that do not fit the input dtype (300 for DT_UINT8)
are rejected rather than wrapped. Non-UTF-8 bytes in a string output not named
``*_bytes`` are written as ``{"b64": ...}`` instead of producing invalid JSON.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from kerasapps.serving.repository import ServingError

_MAX_SHOWN = 120  # characters of a client's value echoed in an error message


def _show(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _bad(message: str) -> ServingError:
    return ServingError(400, message)


def parse_request(body: bytes) -> dict:
    """Parse a request body that must be a JSON object (NaN/Infinity allowed)."""
    if not body:
        raise _bad("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _bad(f"JSON Parse error: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad(f"JSON Value: {_show(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise _bad(f"JSON Value: {_show(signature_name)} not formatted correctly. "
                   "'signature_name' key must be a string value.")
    return doc


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _dtype_label(spec) -> str:
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(spec.dtype.as_datatype_enum)


def _to_bytes(value, spec) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        text = value["b64"]
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"Unable to base64 decode: {_show(value)}") from None
    if isinstance(value, dict):
        raise _bad(f"JSON Value: {_show(value)} not formatted correctly for base64 data")
    raise _bad(f"JSON Value: {_show(value)} is not of expected type: {_dtype_label(spec)}")


def _string_array(value, spec, name: str) -> np.ndarray:
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[bytes] = []

    def walk(item, level):
        if isinstance(item, list):
            if level >= len(shape) or len(item) != shape[level]:
                raise _bad(f"Input '{name}': ragged nested lists at level {level} "
                           f"(every list at a level must have the same length)")
            for element in item:
                walk(element, level + 1)
        elif level != len(shape):
            raise _bad(f"Input '{name}': JSON Value: {_show(item)} found at incorrect "
                       f"level: {level + 1} in the JSON DOM. Expected at level: {len(shape)}")
        else:
            flat.append(_to_bytes(item, spec))

    walk(value, 0)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


_FLOAT32_EXACT_INT = 2**24


def to_array(value, spec, name: str) -> np.ndarray:
    """Convert one JSON value to a numpy array of ``spec``'s dtype and check its shape."""
    import tensorflow as tf

    dtype = spec.dtype
    if dtype == tf.string:
        array = _string_array(value, spec, name)
    else:
        np_dtype = np.dtype(dtype.as_numpy_dtype)
        try:
            raw = np.array(value)
        except ValueError:
            raise _bad(f"Input '{name}': ragged nested lists (every list at a level "
                       "must have the same length)") from None
        kind = raw.dtype.kind
        allowed = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "c": "iuf"}.get(np_dtype.kind)
        if allowed is None:
            raise ServingError(400, f"Input '{name}': conversion of JSON to type "
                               f"{_dtype_label(spec)} is not supported")
        if raw.size and kind not in allowed:
            raise _bad(f"Input '{name}': JSON Value: {_show(value)} is not of expected "
                       f"type: {_dtype_label(spec)}")
        if raw.size and np_dtype.kind in "iu":
            info = np.iinfo(np_dtype)
            low, high = raw.min(), raw.max()
            if low < info.min or high > info.max:
                bad = low if low < info.min else high
                raise _bad(f"Input '{name}': value {bad} is out of range for "
                           f"{_dtype_label(spec)} [{info.min}, {info.max}]")
        if raw.size and np_dtype.kind == "f":
            finfo = np.finfo(np_dtype)
            if kind in "iu" and np.abs(raw).max() > min(2 ** finfo.nmant * 2, 2**53):
                raise _bad(f"Input '{name}': cannot convert JSON value to "
                           f"{_dtype_label(spec)} without loss of precision.")
            finite = raw[np.isfinite(raw)] if kind == "f" else raw
            if finite.size and np.abs(finite).max() > finfo.max:
                raise _bad(f"Input '{name}': cannot convert JSON value to "
                           f"{_dtype_label(spec)} without loss of precision.")
        array = raw.astype(np_dtype)
    if not spec.shape.is_compatible_with(array.shape):
        expected = "?" if spec.shape.rank is None else [
            -1 if d is None else d for d in spec.shape.as_list()]
        raise _bad(f"Input '{name}' has shape {list(array.shape)}, but the signature "
                   f"expects {expected} (-1: any size)")
    return array


def decode_inputs(doc: dict, specs: dict) -> tuple[dict, bool]:
    """Tensors for a predict request: ({input name: array}, row_format)."""
    if not specs:
        raise _bad("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise _bad("Not formatted correctly expecting only one of 'inputs' or "
                   "'instances' keys to exist")
    if has_instances:
        return _decode_instances(doc["instances"], specs), True
    if has_inputs:
        return _decode_columns(doc["inputs"], specs), False
    raise _bad("Missing 'inputs' or 'instances' key")


def _decode_instances(instances, specs: dict) -> dict:
    if not isinstance(instances, list):
        raise _bad("Expecting 'instances' to be an list/array")
    if not instances:
        raise _bad("No values in 'instances' array")
    if not _is_named_object(instances[0]):
        if len(specs) > 1:
            raise _bad("instances is a plain list, but expecting list of objects as "
                       f"multiple input tensors required: {', '.join(sorted(specs))}")
        for index, item in enumerate(instances):
            if _is_named_object(item):
                raise _bad(f"Expecting value/list but got object at item {index} of input list")
        (name, spec), = specs.items()
        return {name: to_array(instances, spec, name)}
    names = set(specs)
    columns: dict[str, list] = {name: [] for name in specs}
    for index, item in enumerate(instances):
        if not _is_named_object(item):
            raise _bad(f"Expecting object but got list at item {index} of input list")
        if set(item) != names:
            raise _bad(f"Failed to process element: {index} of 'instances' list. JSON "
                       f"object: keys {sorted(item)} must be equal to: {','.join(sorted(names))}")
        for name in specs:
            columns[name].append(item[name])
    return {name: to_array(columns[name], specs[name], name) for name in specs}


def _decode_columns(inputs, specs: dict) -> dict:
    if not _is_named_object(inputs):
        if len(specs) > 1:
            raise _bad("inputs is a plain value/list, but expecting an object as multiple "
                       f"input tensors required: {', '.join(sorted(specs))}")
        (name, spec), = specs.items()
        return {name: to_array(inputs, spec, name)}
    for name in specs:
        if name not in inputs:
            raise _bad(f"Missing named input: {name} in 'inputs' object.")
    return {name: to_array(inputs[name], spec, name) for name, spec in specs.items()}


# -- responses ------------------------------------------------------------------------

def _leaf_texts(array: np.ndarray, as_bytes: bool) -> np.ndarray:
    """Each element of ``array`` as a JSON token (same shape, dtype str/object)."""
    if array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    kind = array.dtype.kind
    if kind == "f":
        texts = array.astype(str)
        if not np.isfinite(array).all():
            texts = np.where(np.isnan(array), "NaN", texts)
            texts = np.where(np.isposinf(array), "Infinity", texts)
            texts = np.where(np.isneginf(array), "-Infinity", texts)
        return texts
    if kind in "iu":
        return array.astype(str)
    if kind == "b":
        return np.where(array, "true", "false")
    if kind in "OSU":
        out = np.empty(array.shape, dtype=object)
        flat_out, flat_in = out.reshape(-1), array.reshape(-1)
        for i, value in enumerate(flat_in):
            flat_out[i] = _string_token(value, as_bytes)
        return out
    raise ServingError(500, f"Failed to write JSON value for tensor type: {array.dtype}")


def _string_token(value, as_bytes: bool) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not as_bytes:
        try:
            return json.dumps(value.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return '{"b64": "' + base64.b64encode(value).decode("ascii") + '"}'


def _nest(texts) -> str:
    if not isinstance(texts, np.ndarray):
        return str(texts)  # an element of a 1-D array
    if texts.ndim == 0:
        return str(texts[()])
    if texts.ndim == 1:
        return "[" + ",".join(texts.tolist()) + "]"
    return "[" + ",".join(_nest(sub) for sub in texts) + "]"


def encode_array(array: np.ndarray, as_bytes: bool = False) -> str:
    """One tensor as nested JSON lists (a bare token for a scalar)."""
    return _nest(_leaf_texts(np.asarray(array), as_bytes))


def encode_outputs(outputs: dict, row_format: bool) -> bytes:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar) as JSON bytes."""
    if not outputs:
        raise ServingError(500, "Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    as_bytes = {name: name.endswith("_bytes") for name in names}
    if not row_format:
        if len(names) == 1:
            body = encode_array(outputs[names[0]], as_bytes[names[0]])
        else:
            body = "{" + ",".join(
                f"{json.dumps(n)}:{encode_array(outputs[n], as_bytes[n])}" for n in names) + "}"
        return ('{"outputs":' + body + "}").encode("utf-8")
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise ServingError(400, f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise ServingError(400, f"Tensor name: {name} has inconsistent batch size: "
                               f"{shape[0]} expecting: {batch}")
        batch = shape[0]
    if len(names) == 1:
        body = encode_array(outputs[names[0]], as_bytes[names[0]])
    else:
        rows = {n: [_nest(t) for t in _leaf_texts(np.asarray(outputs[n]), as_bytes[n])]
                for n in names}
        keys = {n: json.dumps(n) for n in names}
        body = "[" + ",".join(
            "{" + ",".join(f"{keys[n]}:{rows[n][i]}" for n in names) + "}"
            for i in range(batch)) + "]"
    return ('{"predictions":' + body + "}").encode("utf-8")
