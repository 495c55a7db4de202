"""TF Serving's Classify and Regress APIs: ``tf.Example`` requests, classify/regress signatures, results.

REST bodies are TF Serving's (``tensorflow_serving/util/json_tensor.cc``)::

    {"signature_name": "...", "context": {FEATURE: VALUE|[VALUES]},
     "examples": [{FEATURE: VALUE|[VALUES]}, ...]}
    -> classify: {"results": [[[LABEL, SCORE], ...], ...]}    regress: {"results": [VALUE, ...]}

A JSON integer or boolean becomes an ``int64_list`` value, a decimal a ``float_list`` value, a string or
``{"b64": ...}`` a ``bytes_list`` value; the context's features are merged into every example, as TF Serving
does for ``ExampleListWithContext``. The signature must be of the API's kind (its ``method_name``), as TF
Serving's classifier and regressor check: its one string input takes the serialized examples; a classify
signature answers ``classes`` (string) and/or ``scores`` (float) of shape [N, K], a regress signature
``outputs`` of shape [N] or [N, 1].
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from kerasapps.serving.errors import ServingError, bad, json_type
from kerasapps.serving.servable import CLASSIFY_METHOD, REGRESS_METHOD

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def _feature_values(name: str, content) -> tuple[str, list]:
    """(kind, values) of one JSON feature; every value must be of one kind (TF Serving's AddValueToFeature)."""
    kind, values = None, []
    for value in content if isinstance(content, list) else [content]:
        if isinstance(value, bool) or (isinstance(value, int) and not isinstance(value, bool)):
            if not isinstance(value, bool) and not -2**63 <= value < 2**63:
                raise bad(f"Feature: {name} has uint64 element. Only int64 is supported.")
            this, value = "int64_list", int(value)
        elif isinstance(value, float):
            this = "float_list"
        elif isinstance(value, str):
            this, value = "bytes_list", value.encode("utf-8", "surrogatepass")
        elif isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str):
            this = "bytes_list"
            try:
                value = base64.b64decode(value["b64"] + "=" * (-len(value["b64"]) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise bad(f"Feature: {name} has a value that is not valid base64") from None
        else:
            raise bad(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
        if kind is not None and this != kind:
            raise bad(f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}")
        kind = this
        values.append(value)
    return kind or "float_list", values


def _example(doc, where: str):
    from tensorflow.core.example import example_pb2

    if not isinstance(doc, dict):
        raise bad(f"Example must be JSON object but got JSON {json_type(doc)} ({where})")
    example = example_pb2.Example()
    for name, content in doc.items():
        kind, values = _feature_values(str(name)[:200], content)
        getattr(example.features.feature[name], kind).value.extend(values)
    return example


def examples_from_json(doc: dict, verb: str) -> list[bytes]:
    """The serialized ``tf.Example``s of a REST classify or regress request (context merged in)."""
    context = _example(doc["context"], "context") if "context" in doc else None
    if "examples" not in doc:
        raise bad(f"When method is {verb}, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise bad("Expecting 'examples' value to be an list/array")
    if not examples:
        raise bad("'examples' value is an empty array")
    serialized = []
    for index, item in enumerate(examples):
        example = _example(item, f"example {index}")
        if context is not None:
            merged = type(example)()
            merged.CopyFrom(context)
            merged.MergeFrom(example)
            example = merged
        serialized.append(example.SerializeToString())
    return serialized


def check_kind(signature, verb: str) -> None:
    """A 400 unless ``signature`` is of ``verb``'s kind (TF Serving's message)."""
    method = CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD
    if signature.method_name != method:
        kind = "classification" if verb == "classify" else "regression"
        raise bad(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise bad(f"Expected one input Tensor, got {len(signature.inputs)} (signature {signature.name})")


def signature_input(signature) -> str:
    (name,) = signature.inputs
    return name


def classify_outputs(outputs: dict, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(classes [N, K] bytes or None, scores [N, K] float or None) of a classify signature's outputs."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    if classes is None and scores is None:
        raise ServingError(500, "Expected classification signature outputs 'classes' and/or 'scores'")
    for name, value in (("classes", classes), ("scores", scores)):
        if value is not None and (np.ndim(value) != 2 or np.shape(value)[0] != rows):
            raise ServingError(500, f"Expected Tensor shape: [{rows} num_classes] but got "
                                    f"{list(np.shape(value))} (output {name})")
    if classes is not None and scores is not None and np.shape(classes) != np.shape(scores):
        raise ServingError(500, f"Tensors class and score should match in shape: {list(np.shape(classes))} "
                                f"vs {list(np.shape(scores))}")
    return classes, None if scores is None else np.asarray(scores, np.float32)


def regress_outputs(outputs: dict, rows: int) -> np.ndarray:
    """The [N] values of a regress signature's ``outputs``."""
    values = outputs.get("outputs")
    if values is None:
        raise ServingError(500, "Expected regression signature output 'outputs'")
    values = np.asarray(values, np.float32)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != rows:
        raise ServingError(500, f"Expected output Tensor shape to be either [{rows}] or [{rows}, 1] but got "
                                f"{list(values.shape)}")
    return values


def _float_json(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return str(np.float32(value))  # the shortest text that reads back as the same float32


def classification_json(classes, scores) -> bytes:
    """``{"results": [[[label, score], ...], ...]}``: a missing label is "", a missing score 0, as TF Serving."""
    shape = np.shape(classes if classes is not None else scores)
    rows = []
    for i in range(shape[0]):
        pairs = []
        for k in range(shape[1]):
            label = b"" if classes is None else classes[i][k]
            if isinstance(label, bytes):
                label = label.decode("utf-8", "replace")
            score = 0.0 if scores is None else scores[i][k]
            pairs.append(f"[{json.dumps(label)},{_float_json(score)}]")
        rows.append("[" + ",".join(pairs) + "]")
    return ('{"results":[' + ",".join(rows) + "]}").encode("utf-8")


def regression_json(values) -> bytes:
    """``{"results": [value, ...]}``."""
    return ('{"results":[' + ",".join(_float_json(v) for v in values) + "]}").encode("utf-8")
