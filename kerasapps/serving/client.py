"""``kerasapps predict --url``: query a TF Serving-compatible REST endpoint (ours or TF Serving itself).

Standard library and NumPy only: asking a server needs neither TensorFlow nor Keras here. Image files go to a
model that has the signature ``serving_bytes`` as they are (``{"b64": ...}`` of each file's bytes, decoded by the
model as training read image files, whatever their size); to others as pixels of the input's size.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from kerasapps.core.errors import RunError, UsageError
from kerasapps.savedmodel.inputs import InputSpec, read_inputs
from kerasapps.savedmodel.signatures import BYTES_SIGNATURE

BYTES_PER_REQUEST = 32  # image files sent in one request to ``serving_bytes``

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


def remote_signatures(url: str) -> dict:
    """The served model's signatures (name -> TF Serving's JSON SignatureDef), from its metadata (none: empty)."""
    meta = _request(url.rstrip("/") + "/metadata")
    try:
        return dict(meta["metadata"]["signature_def"]["signature_def"])
    except (KeyError, TypeError, ValueError):
        return {}


def remote_input_specs(url: str, signature: str, signatures: dict | None = None) -> dict[str, InputSpec]:
    """The inputs of ``signature``, from the server's metadata (``signatures``, if already read)."""
    signatures = remote_signatures(url) if signatures is None else signatures
    try:
        inputs = signatures[signature]["inputs"]
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
    signatures = remote_signatures(url)
    if signature == "serving_default" and BYTES_SIGNATURE in signatures and all(map(_is_image_file, inputs)):
        signature = BYTES_SIGNATURE  # the files' bytes, decoded by the model, rather than pixels
    specs = remote_input_specs(url, signature, signatures)
    placed = {}
    for batch, sources, positions in _batches(read_inputs(inputs, specs)):
        columns = {name: _json_values(value) for name, value in batch.items()}
        reply = _request(url.rstrip("/") + ":predict", {"signature_name": signature, "inputs": columns})
        outputs = reply.get("outputs")
        if not isinstance(outputs, dict):
            outputs = {"output": outputs}
        placed.update((position, {"input": source, **{key: value[i] for key, value in outputs.items()}})
                      for i, (source, position) in enumerate(zip(sources, positions)))
    return [placed[i] for i in sorted(placed)]


def _is_image_file(name: str) -> bool:
    from kerasapps.data.files import IMAGE_SUFFIXES

    return name.lower().endswith(IMAGE_SUFFIXES)


def _batches(batches):
    """Batches of encoded files (bytes) cut to :data:`BYTES_PER_REQUEST` files a request; others as they are."""
    for batch, sources, positions in batches:
        if not any(value.dtype == object and value.size and isinstance(value.flat[0], bytes)
                   for value in batch.values()):
            yield batch, sources, positions
            continue
        for start in range(0, len(sources), BYTES_PER_REQUEST):
            cut = slice(start, start + BYTES_PER_REQUEST)
            yield {name: value[cut] for name, value in batch.items()}, sources[cut], positions[cut]


def _json_values(value):
    """A batch as JSON values: bytes as TF Serving's ``{"b64": ...}``, the rest as lists."""
    if value.dtype == object:
        return [{"b64": base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v for v in value.tolist()]
    return value.tolist()
