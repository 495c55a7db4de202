"""JSON <-> numpy for TF Serving's REST predict API (row ``instances`` and columnar ``inputs``).

Mirrors ``tensorflow_serving/util/json_tensor.cc``: a single named input may be given without its
name; ``{"b64": ...}`` decodes to bytes for DT_STRING inputs; outputs whose name ends in ``_bytes`` are
written back as ``{"b64": ...}``; NaN/Infinity are accepted and written as those tokens; floats are
written in their shortest round-tripping form for their own precision (0.2 as ``0.2``, not
``0.20000000298023224``). Values are typed as TF Serving types them: any JSON number fits a float
input, converted through double as TF Serving does (``1435774380`` into DT_FLOAT is 1435774336.0, as
``1435774380.0`` is; 1e39 is inf); only integers fit integer inputs; only ``true``/``false`` fit
DT_BOOL, and they fit nothing else (not even ``[1, true]`` into an int input); only strings and
``{"b64": ...}`` fit DT_STRING. Where this module differs from TF Serving:

* integers out of an integer input's range are refused (400), where TF Serving wraps those of
  DT_INT8/DT_INT16/DT_UINT8 that fit an int32 (300 for DT_UINT8 becomes 44) and refuses the rest;
* DT_HALF, DT_BFLOAT16 and complex inputs are accepted like DT_FLOAT (TF Serving: Unimplemented);
* a number beyond the double range (``1e400``, a 400-digit integer) is +/-inf for a float input, where
  TF Serving's parser refuses the document ("Number too big to be stored in double");
* a lone surrogate escape (``"\\udc80"``) passes the parser (TF Serving's refuses it) but is a 400 in a
  DT_STRING value; text after the document is a 400, where TF Serving's parser ignores it;
* non-UTF-8 bytes in a string output not named ``*_bytes`` are written as ``{"b64": ...}`` instead of
  producing invalid JSON;
* messages quoting a client's values are cut at 120 characters (TF Serving: 256 bytes), and an error body
  cuts a whole message at 2,000 (:mod:`kerasapps.serving.errors`).

The body reaches :func:`decode_inputs` parsed by :func:`kerasapps.serving.request_body.parse_request` (which
also undoes ``Content-Encoding`` and bounds the values before parsing); ``decode_inputs(..., max_elements=)``
refuses a request's tensors before they are allocated.

One module, a little over 400 lines: decoding the row and columnar formats and encoding the answers follow
TF Serving's one set of JSON rules (types, ``b64``, NaN, nesting); the request parsing is in ``request_body``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from itertools import chain, islice

import numpy as np

from kerasapps.serving.errors import LONE_SURROGATE, ServingError
from kerasapps.serving.errors import bad as _bad
from kerasapps.serving.errors import json_type as _json_type
from kerasapps.serving.errors import show as _show
from kerasapps.serving.request_body import ParsedRequest

_MAX_RANK = 64  # dimensions a numpy array can have


# -- JSON values -> arrays --------------------------------------------------------------

def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


class _Target:
    """What a signature input's dtype accepts: ``kind`` is string, bool, int, float or "" (none)."""

    __slots__ = ("kind", "dtype", "label", "low", "high")

    def __init__(self, tf_dtype):
        from tensorflow.core.framework import types_pb2

        self.label = types_pb2.DataType.Name(tf_dtype.as_datatype_enum)
        self.dtype = self.low = self.high = None
        if tf_dtype.is_bool:
            self.kind = "bool"
        elif tf_dtype.name == "string":
            self.kind = "string"
        elif tf_dtype.is_quantized or not tf_dtype.is_numpy_compatible:
            self.kind = ""
        elif tf_dtype.is_integer:
            self.kind = "int"
            self.low, self.high = tf_dtype.min, tf_dtype.max
        elif tf_dtype.is_floating or tf_dtype.is_complex:
            self.kind = "float"
        else:
            self.kind = ""
        if self.kind:
            self.dtype = np.dtype(tf_dtype.as_numpy_dtype)


_TARGETS: dict[int, _Target] = {}


def _target(tf_dtype) -> _Target:
    enum = tf_dtype.as_datatype_enum
    target = _TARGETS.get(enum)
    if target is None:
        target = _TARGETS[enum] = _Target(tf_dtype)
    return target


def _shape_fits(spec_shape, shape: tuple) -> bool:
    if spec_shape.rank is None:
        return True
    dims = spec_shape.as_list()
    return len(dims) == len(shape) and all(d is None or d == n for d, n in zip(dims, shape))


def _dense_shape(value) -> list[int]:
    """The shape a tensor of ``value`` has, read off its first elements as TF Serving does."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _leaves(value, shape: list[int], name: str) -> list:
    """The leaves of ``value`` in row-major order, once it is checked to be a dense ``shape``."""
    rank = len(shape)
    if rank > _MAX_RANK:
        raise _bad(f"Input '{name}': JSON lists nested {rank} deep, more than the {_MAX_RANK} "
                   "dimensions a tensor can have here")
    level = [value]
    for depth, size in enumerate(shape):
        if set(map(type, level)) != {list}:
            bad = next(item for item in level if type(item) is not list)
            raise _bad(f"Input '{name}': JSON Value: {_show(bad)} found at incorrect level: {depth + 1} "
                       f"in the JSON DOM. Expected at level: {rank}")
        if set(map(len, level)) != {size}:
            bad = next(item for item in level if len(item) != size)
            raise _bad(f"Input '{name}': Encountered list at unexpected size: {len(bad)} at level: "
                       f"{depth} expected size: {size} (every list at a level must have the same length)")
        level = level[0] if len(level) == 1 else list(chain.from_iterable(level))
    return level


_ACCEPTED = {"bool": {bool}, "int": {int}, "float": {int, float}}


def _type_error(leaves: list, accepted: set, target: _Target, name: str, rank: int) -> ServingError:
    bad = next(item for item in leaves if type(item) not in accepted)
    if type(bad) is list:
        return _bad(f"Input '{name}': Encountered list at unexpected level: {rank} expected < {rank} "
                    "(every list at a level must have the same nesting)")
    return _bad(f"Input '{name}': JSON Value: {_show(bad)} Type: {_json_type(bad)} is not of "
                f"expected type: {target.label}")


def _range_error(bad, target: _Target, name: str) -> ServingError:
    return _bad(f"Input '{name}': value {bad} is out of range for {target.label} "
                f"[{target.low}, {target.high}]")


def _double(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past the double range, as 1e400 is
        return math.inf if value > 0 else -math.inf


def _narrow(doubles: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 -> ``dtype``; values past its range become +/-inf, as a C++ cast makes them."""
    if doubles.dtype == dtype:
        return doubles
    with np.errstate(over="ignore"):
        return doubles.astype(dtype)


def _exact_array(value, target: _Target, name: str) -> np.ndarray:
    """The array of ``value``, checking the JSON type of every leaf (any value, any size)."""
    shape = _dense_shape(value)
    leaves = _leaves(value, shape, name)
    kind, types = target.kind, set(map(type, leaves))
    if kind == "string":
        if list in types:
            raise _type_error(leaves, {str, dict}, target, name, len(shape))
        if types <= {str}:
            try:
                data = [text.encode("utf-8") for text in leaves]
            except UnicodeEncodeError:
                bad = next(text for text in leaves if LONE_SURROGATE.search(text))
                raise _bad(f"Input '{name}': JSON Value: {_show(bad)} holds a lone surrogate, "
                           "which is not valid Unicode") from None
        else:
            data = [_to_bytes(item, target, name) for item in leaves]
        array = np.empty(len(data), dtype=object)
        array[:] = data
        return array.reshape(shape)
    accepted = _ACCEPTED[kind]
    if not types <= accepted:
        raise _type_error(leaves, accepted, target, name, len(shape))
    if kind == "bool":
        return np.array(leaves, dtype=bool).reshape(shape)
    if kind == "int":
        try:
            wide = np.array(leaves, dtype=np.int64)
        except OverflowError:  # past int64: a uint64 input's upper half, or out of any range
            wide = None
        low, high = (wide.min(), wide.max()) if wide is not None and wide.size else (
            (min(leaves), max(leaves)) if leaves else (0, 0))
        if low < target.low or high > target.high:
            raise _range_error(low if low < target.low else high, target, name)
        array = np.array(leaves, dtype=target.dtype) if wide is None else wide.astype(target.dtype)
        return array.reshape(shape)
    try:
        doubles = np.array(leaves, dtype=np.float64)
    except OverflowError:
        doubles = np.array([_double(item) for item in leaves], dtype=np.float64)
    return _narrow(doubles, target.dtype).reshape(shape)


def _plain_array(value, target: _Target, integral: bool) -> np.ndarray | None:
    """``value``'s array by ``np.array`` alone, for a value known to hold numbers only (see _scan).

    ``integral``: they are all integers. None when the value needs :func:`_exact_array` (ragged,
    out of range, a float into an integer input, ...), which then finds what is wrong.
    """
    try:
        if target.kind == "float":  # any number, through double as TF Serving converts them
            return _narrow(np.array(value, dtype=np.float64), target.dtype)
        if target.kind != "int":
            return None
        raw = np.array(value, dtype=np.int64) if integral else np.array(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if not raw.size:
        return raw.astype(target.dtype)
    if raw.dtype.kind not in "iu" or raw.min() < target.low or raw.max() > target.high:
        return None
    return raw.astype(target.dtype, copy=False)


def _to_bytes(value, target: _Target, name: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"Input '{name}': JSON Value: {_show(value)} holds a lone surrogate, "
                       "which is not valid Unicode") from None
    if _is_b64(value):
        text = value["b64"]
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"Input '{name}': Unable to base64 decode: {_show(value)}") from None
    if isinstance(value, dict):
        raise _bad(f"Input '{name}': JSON Value: {_show(value)} not formatted correctly for base64 data")
    raise _bad(f"Input '{name}': JSON Value: {_show(value)} Type: {_json_type(value)} is not of "
               f"expected type: {target.label}")


def to_array(value, spec, name: str) -> np.ndarray:
    """Convert one JSON value (as ``json.loads`` made it) to a numpy array of ``spec``'s dtype; check its shape."""
    return _array(value, spec, name, plain=False)


def _array(value, spec, name: str, plain: bool, integral: bool = False) -> np.ndarray:
    """:func:`to_array`; ``plain``: ``value`` holds numbers only, ``integral``: integers (see _scan)."""
    target = _target(spec.dtype)
    if not target.kind:
        raise _bad(f"Input '{name}': conversion of JSON to type {target.label} is not supported")
    array = _plain_array(value, target, integral) if plain else None
    if array is None:
        array = _exact_array(value, target, name)
    if not _shape_fits(spec.shape, array.shape):
        expected = "?" if spec.shape.rank is None else [
            -1 if d is None else d for d in spec.shape.as_list()]
        raise _bad(f"Input '{name}' has shape {list(array.shape)}, but the signature "
                   f"expects {expected} (-1: any size)")
    return array


def decode_inputs(doc: dict, specs: dict, max_elements: int | None = None) -> tuple[dict, bool]:
    """Tensors for a predict request: ({input name: array}, row_format).

    ``max_elements``: the most values the request's tensors may hold together, counted from each
    input's shape (as its first elements give it) before any array is made; past it, a 400.
    """
    if not specs:
        raise _bad("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise _bad("Not formatted correctly expecting only one of 'inputs' or "
                   "'instances' keys to exist")
    if has_instances:
        values, keys = _instance_values(doc["instances"], specs)
    elif has_inputs:
        values, keys = _column_values(doc["inputs"], specs)
    else:
        raise _bad("Missing 'inputs' or 'instances' key")
    if max_elements is not None:
        total = sum(math.prod(_dense_shape(value)) for value in values.values())
        if total > max_elements:
            raise _bad(f"Request holds {total} values, more than the limit of {max_elements} "
                       "(--max-request-elements); send fewer instances per request")
    plain = integral = False
    if isinstance(doc, ParsedRequest) and doc.quotes >= 0:
        strings = len(doc) + keys + (type(doc.get("signature_name")) is str)
        plain, integral = doc.quotes == 2 * strings, doc.integral
    arrays = {name: _array(values[name], spec, name, plain, integral) for name, spec in specs.items()}
    return arrays, has_instances


def _instance_values(instances, specs: dict) -> tuple[dict, int]:
    """({input name: JSON value}, number of object keys) of an ``instances`` list."""
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
        (name, _), = specs.items()
        return {name: instances}, 0
    names = set(specs)
    for index, item in enumerate(instances):
        if not _is_named_object(item):
            raise _bad(f"Expecting object but got list at item {index} of input list")
        if item.keys() != names:
            keys = sorted(item) if len(item) <= 64 else list(islice(item, 64))
            raise _bad(f"Failed to process element: {index} of 'instances' list. JSON object: "
                       f"keys {_show(keys)} must be equal to: {','.join(sorted(names))}")
    return {name: [item[name] for item in instances] for name in specs}, len(names) * len(instances)


def _column_values(inputs, specs: dict) -> tuple[dict, int]:
    """({input name: JSON value}, number of object keys) of an ``inputs`` value."""
    if not _is_named_object(inputs):
        if len(specs) > 1:
            raise _bad("inputs is a plain value/list, but expecting an object as multiple "
                       f"input tensors required: {', '.join(sorted(specs))}")
        (name, _), = specs.items()
        return {name: inputs}, 0
    for name in specs:
        if name not in inputs:
            raise _bad(f"Missing named input: {name} in 'inputs' object.")
    return {name: inputs[name] for name in specs}, len(inputs)


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
