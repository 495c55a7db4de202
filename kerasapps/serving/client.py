"""``kerasapps predict --url``: query a TF Serving-compatible REST endpoint (ours or TF Serving itself).

Standard library and NumPy only: asking a server needs neither TensorFlow nor Keras here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from kerasapps.core.errors import RunError, UsageError
from kerasapps.savedmodel.inputs import InputSpec, read_inputs

_DTYPES = {"DT_UINT8": "uint8", "DT_INT32": "int32", "DT_INT64": "int64", "DT_FLOAT": "float32",
           "DT_DOUBLE": "float64", "DT_STRING": "string"}


def _request(url: str, body: dict | None = None, timeout: float = 60.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise (UsageError if 400 <= exc.code < 500 else RunError)(f"{url} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RunError(f"cannot reach {url}: {reason}") from None


def remote_input_specs(url: str, signature: str) -> dict[str, InputSpec]:
    """The inputs of ``signature``, from the server's metadata."""
    meta = _request(url.rstrip("/") + "/metadata")
    try:
        inputs = meta["metadata"]["signature_def"]["signature_def"][signature]["inputs"]
    except KeyError:
        raise UsageError(f"{url} has no signature '{signature}'") from None
    specs = {}
    for name, info in inputs.items():
        dims = info.get("tensor_shape", {}).get("dim", [])
        shape = tuple(None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims)
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise UsageError(f"input '{name}' has dtype {info.get('dtype')}, which predict cannot send")
        specs[name] = InputSpec(name, shape, dtype)
    return specs


def predict_url(url: str, inputs: list[str], *, signature: str = "serving_default") -> list[dict]:
    """Send input files (images, ``.npy`` arrays or text files, or tables for a model of named columns, as the
    signature takes) to ``URL:predict`` (URL like http://HOST:PORT/v1/models/NAME); one dict per example,
    in the order given."""
    if "/v1/models/" not in url:
        raise UsageError(f"--url must look like http://HOST:PORT/v1/models/NAME; got {url}")
    specs = remote_input_specs(url, signature)
    placed = {}
    for batch, sources, positions in read_inputs(inputs, specs):
        columns = {name: value.tolist() for name, value in batch.items()}
        reply = _request(url.rstrip("/") + ":predict", {"signature_name": signature, "inputs": columns})
        outputs = reply.get("outputs")
        if not isinstance(outputs, dict):
            outputs = {"output": outputs}
        placed.update((position, {"input": source, **{key: value[i] for key, value in outputs.items()}})
                      for i, (source, position) in enumerate(zip(sources, positions)))
    return [placed[i] for i in sorted(placed)]
