"""TF Serving's REST API over a :class:`~kerasapps.serving.core.ServingCore`, with TF Serving's paths and JSON
shapes (https://www.tensorflow.org/tfx/serving/api_rest)::

    GET  /v1/models/NAME[/versions/N|/labels/L]            -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   -> {"model_spec": ..., "metadata": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:predict    {"instances": [...]} -> {"predictions": ...}
                                                           {"inputs": ...}      -> {"outputs": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:classify   {"examples": [...]}  -> {"results": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:regress    {"examples": [...]}  -> {"results": ...}

:class:`RestApi` routes a Starlette request: it reads the body within ``max_request_bytes`` and
``request_timeout_s`` (:mod:`kerasapps.serving.request_body`), converts JSON tensors (:mod:`kerasapps.serving.codec`)
and examples (:mod:`kerasapps.serving.examples`), and calls the core. Errors are ``{"error": "..."}``
(:meth:`~kerasapps.serving.errors.ServingError.body`) with TF Serving's status codes: 400 bad request (bad JSON,
shape, dtype, signature, name, version or label; an op's own failure on the inputs, with its message;
classify/regress on a signature of another kind), 404 unknown model or version, 408 body not received within
``request_timeout_s``, 413 body over ``max_request_bytes`` (by Content-Length, by the bytes streamed, or once
gzip-decoded), 415 unknown Content-Encoding, 503 too many model calls queued, 504 not answered within
``request_timeout_s``, 500 anything unexpected. A request's values are counted before they are allocated
(``max_request_elements``). Paths are matched still percent-encoded, like TF Serving; each captured segment is
then decoded once and validated.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote

from kerasapps.serving.errors import ServingError
from kerasapps.serving.metrics import REST, note_call
from kerasapps.serving.model_config import parse_version, validate_model_name
from kerasapps.serving.servable import DEFAULT_SIGNATURE

logger = logging.getLogger("kerasapps.serving")

__all__ = ["RestApi", "METHODS"]

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/([^/:]+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/([^/:]+)|/labels/([^/:]+))?(/metadata)?",
    re.IGNORECASE)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]  # every one is routed (and answered)
_INLINE_BYTES = 64 * 2**10  # bodies up to this are decoded on the event loop (no thread hand-off)


def _decode_segment(segment: str, encoded: bool) -> str:
    if not encoded:
        return segment
    try:
        return unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ServingError(400, f"Failed to decode path segment: {segment[:200]}") from None


def _error_response(error: ServingError):
    from starlette.responses import Response

    return Response(error.body(), status_code=error.status, media_type="application/json")


def _json(payload, status: int = 200):
    from starlette.responses import JSONResponse

    return JSONResponse(payload, status_code=status)


class RestApi:
    """TF Serving's REST API on ``core``: :meth:`dispatch` is the Starlette endpoint of every path."""

    def __init__(self, core):
        self.core = core
        self.options = core.options
        self.metrics = core.metrics

    async def dispatch(self, request):
        if self.metrics is None:
            return await self._answer(request)
        with self.metrics.request(REST) as status:
            status[0] = "499"  # the client went away (the request was cancelled) unless a response is made
            response = await self._answer(request)
            status[0] = str(response.status_code)
            return response

    async def _answer(self, request):
        try:
            return await self._dispatch(request)
        except ServingError as exc:
            return _error_response(exc)
        except Exception as exc:
            logger.exception("Unhandled error serving %s %s", request.method, request.url.path[:200])
            return _error_response(ServingError(500, f"Internal: {type(exc).__name__}: {exc}"))

    async def _dispatch(self, request):
        raw = request.scope.get("raw_path")
        encoded = raw is not None
        path = raw.decode("latin-1").split("?", 1)[0] if encoded else request.url.path
        method = request.method
        if not path.lower().startswith("/v1/"):
            raise ServingError(404, f"Not found: {method} {path[:200]}")
        match = _PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if match:
            name, version, label = self._model_spec(match, encoded)
            note_call(match[4].capitalize(), name)  # a no-op unless the request is measured
            return await self._post(request, name, version, label, match[4].lower())
        match = _STATUS_PATH.fullmatch(path) if method == "GET" else None
        if match:
            if match[1] is None:
                raise ServingError(400, "Missing model name in request.")
            name, version, label = self._model_spec(match, encoded)
            note_call("GetModelMetadata" if match[4] else "GetModelStatus", name)
            async with self.core.deadline():
                if match[4]:
                    return _json(await self.core.metadata(name, version, label))
                status = await self.core.status(name, version, label)
            return _json({"model_version_status": status})
        raise ServingError(400, f"Malformed request: {method} {path[:200]}")

    @staticmethod
    def _model_spec(match, encoded: bool) -> tuple[str, int | None, str | None]:
        name = validate_model_name(_decode_segment(match[1], encoded))
        if match[3] is not None:
            return name, None, _decode_segment(match[3], encoded)
        if match[2] is None:
            return name, None, None
        return name, parse_version(_decode_segment(match[2], encoded)), None

    # -- the body ----------------------------------------------------------------------
    async def _read_body(self, request) -> bytes:
        from starlette.requests import ClientDisconnect

        from kerasapps.serving.core import fail_after
        from kerasapps.serving.request_body import decode_body

        limit = self.options.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ServingError(400, f"Invalid Content-Length: {declared[:50]}")
            if int(declared) > limit:
                raise ServingError(413, f"Request body of {declared} bytes exceeds the limit "
                                        f"of {limit} bytes")
        chunks, total = [], 0
        try:
            async with fail_after(self.options.request_timeout_s):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > limit:
                        raise ServingError(413, f"Request body exceeds the limit of {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ServingError(408, "Timed out reading the request body") from None
        except ClientDisconnect:
            raise ServingError(400, "Client disconnected while sending the body") from None
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            if len(body) > _INLINE_BYTES:
                body = await self.core.in_pool(decode_body, body, encoding, limit)
            else:
                body = decode_body(body, encoding, limit)
        return body

    def _parse(self, body: bytes) -> dict:
        from kerasapps.serving.request_body import count_upper_bound, parse_request

        limit = self.options.max_request_elements
        if count_upper_bound(body) > limit:
            raise ServingError(400, f"Request holds more than {limit} values, the limit "
                                    "(max_request_elements); send fewer instances per request")
        return parse_request(body)

    def _decode(self, doc: dict, servable, signature_name: str):
        from kerasapps.serving.codec import decode_inputs

        signature = servable.signature(signature_name)
        return decode_inputs(doc, signature.inputs, self.options.max_request_elements)

    async def _blocking(self, size: int, fn, *args):
        """``fn(*args)`` on the loop for a small body (no hand-off), else on an admin thread."""
        if size <= _INLINE_BYTES:
            return fn(*args)
        return await self.core.in_pool(fn, *args)

    # -- predict, classify, regress ------------------------------------------------------
    async def _post(self, request, name: str, version: int | None, label: str | None, verb: str):
        from starlette.responses import Response

        started = time.monotonic()
        body = await self._read_body(request)
        remaining = self.options.request_timeout_s - (time.monotonic() - started)
        async with self.core.deadline(max(remaining, 0.0)):
            doc = await self._blocking(len(body), self._parse, body)
            servable = await self.core.resolve(name, version, label)
            signature_name = doc.get("signature_name") or DEFAULT_SIGNATURE
            if verb != "predict":
                content = await self._examples(body, doc, verb, servable, signature_name)
            else:
                content = await self._predict(body, doc, servable, signature_name)
        return Response(content, media_type="application/json")

    async def _examples(self, body: bytes, doc: dict, verb: str, servable, signature_name: str) -> bytes:
        from kerasapps.serving import examples

        serialized = await self._blocking(len(body), examples.examples_from_json, doc, verb)
        if verb == "classify":
            return examples.classification_json(*await self.core.classify(servable, signature_name, serialized))
        return examples.regression_json(await self.core.regress(servable, signature_name, serialized))

    async def _predict(self, body: bytes, doc: dict, servable, signature_name: str) -> bytes:
        from kerasapps.serving.codec import encode_outputs

        batcher = self.core.batcher
        if batcher is not None:
            batcher.prepare_started()
        try:
            inputs, row_format = await self._blocking(len(body), self._decode, doc, servable, signature_name)
        except BaseException:
            if batcher is not None:
                batcher.prepare_ended(failed=True)
            raise
        if batcher is not None:
            batcher.prepare_ended(failed=False)
        outputs = await self.core.predict(servable, signature_name, inputs, deadline_s=None)
        return await self._blocking(sum(getattr(v, "size", 1) for v in outputs.values()) * 8,
                                    encode_outputs, outputs, row_format)
