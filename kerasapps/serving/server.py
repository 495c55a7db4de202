"""A TensorFlow Serving-compatible REST server over a model base directory.

Serves ``MODEL_BASE/NAME/VERSION/`` SavedModels (TF Serving's layout, what
``kerasapps export`` writes) with TF Serving's REST API and JSON shapes
(https://www.tensorflow.org/tfx/serving/api_rest)::

    GET  /v1/models/NAME[/versions/N]            -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata   -> {"model_spec": ..., "metadata": ...}
    POST /v1/models/NAME[/versions/N]:predict    {"instances": [...]} -> {"predictions": ...}
                                                 {"inputs": ...}      -> {"outputs": ...}
    POST /v1/models/NAME[/versions/N]:classify|regress -> 501 (predict signatures only)

Errors are ``{"error": "..."}`` with TF Serving's status codes: 400 bad request (bad
JSON, shape, dtype, signature, name or version), 404 unknown model or version, 413 body
over ``max_request_bytes`` (by Content-Length or by the bytes actually streamed), 408
body not received within ``request_timeout_s``, 504 request not answered within
``request_timeout_s`` (TF Serving maps DEADLINE_EXCEEDED to 504; the model call that
overran cannot be interrupted and finishes in its worker thread, its result discarded),
501 classify/regress, 500 anything unexpected.

Without a version the highest version on disk is served (falling back past versions
that fail to load); new versions are found without a restart, removed ones unloaded (see
:mod:`kerasapps.serving.repository`). Model calls run in a thread pool, so concurrent requests
overlap (TensorFlow releases the GIL); ``batching=True`` adds dynamic batching
(:mod:`kerasapps.serving.batching`). Binds 127.0.0.1 by default; there is no
authentication, so put a proxy in front before exposing it.

Example::

    from kerasapps.serving.server import serve
    serve("saved_models", port=8501, batching=True)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from kerasapps.core.schema import EXPORT_ROOT
from kerasapps.serving.options import ServingOptions
from kerasapps.serving.repository import (
    DEFAULT_SIGNATURE,
    ModelRepository,
    ServingError,
    parse_version,
    validate_model_name,
)

logger = logging.getLogger("kerasapps.serving")

__all__ = ["create_app", "serve", "ServingError", "ModelRepository"]

# Matched against the raw (still percent-encoded) path, like TF Serving; each captured
# segment is then percent-decoded exactly once and validated.
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/([^/:]+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/([^/:]+)|/labels/([^/:]+))?(/metadata)?",
    re.IGNORECASE)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _decode_segment(segment: str, encoded: bool) -> str:
    if not encoded:
        return segment
    try:
        return unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ServingError(400, f"Failed to decode path segment: {segment[:200]}") from None


def _error_response(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


class _Server:
    """Request handling state shared by one app: repository, worker pool, batcher."""

    def __init__(self, model_base, options: ServingOptions):
        self.options = options
        self.repository = ModelRepository(model_base, options.poll_interval_s)
        self._pool: ThreadPoolExecutor | None = None
        self.batcher = None
        if options.batching:
            from kerasapps.serving.batching import DynamicBatcher

            self.batcher = DynamicBatcher(self.in_pool, options.max_batch_size,
                                          options.batch_timeout_ms / 1000.0)

    # -- plumbing ----------------------------------------------------------------
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            workers = self.options.max_workers or min(32, (os.cpu_count() or 1) + 4)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kerasapps-serving")
        return self._pool

    async def in_pool(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool(), functools.partial(fn, *args))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        poller = None
        if self.options.poll_interval_s > 0:
            poller = asyncio.create_task(self._poll())
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            self.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(max(self.options.poll_interval_s, 0.5))
            try:
                await self.in_pool(self.repository.refresh_all)
            except Exception:  # keep polling whatever one scan hit
                logger.exception("Model base poll failed")

    # -- routing -----------------------------------------------------------------
    async def dispatch(self, request):
        try:
            return await self._dispatch(request)
        except ServingError as exc:
            return _error_response(exc.status, exc.message)
        except Exception as exc:
            logger.exception("Unhandled error serving %s %s", request.method, request.url.path)
            return _error_response(500, f"Internal: {type(exc).__name__}: {exc}")

    async def _dispatch(self, request):
        raw = request.scope.get("raw_path")
        encoded = raw is not None
        path = raw.decode("latin-1").split("?", 1)[0] if encoded else request.url.path
        method = request.method
        if not path.lower().startswith("/v1/"):
            raise ServingError(404, f"Not found: {method} {path[:200]}")
        match = _PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if match:
            name, version = self._model_spec(match, encoded)
            return await self._predict(request, name, version, match[4].lower())
        match = _STATUS_PATH.fullmatch(path) if method == "GET" else None
        if match:
            if match[1] is None:
                raise ServingError(400, "Missing model name in request.")
            name, version = self._model_spec(match, encoded)
            with self._deadline():
                if match[4]:
                    return await self._metadata(name, version)
                status = await self.in_pool(self.repository.status, name, version)
            return self._json({"model_version_status": status})
        raise ServingError(400, f"Malformed request: {method} {path[:200]}")

    @staticmethod
    def _model_spec(match, encoded: bool) -> tuple[str, int | None]:
        name = validate_model_name(_decode_segment(match[1], encoded))
        if match[3] is not None:
            label = _decode_segment(match[3], encoded)[:200]
            raise ServingError(404, f"Unrecognized servable version label: {label} "
                                    "(version labels are not supported; use /versions/N)")
        if match[2] is None:
            return name, None
        return name, parse_version(_decode_segment(match[2], encoded))

    @staticmethod
    def _json(payload, status: int = 200):
        from starlette.responses import JSONResponse

        return JSONResponse(payload, status_code=status)

    @contextlib.contextmanager
    def _deadline(self, seconds: float | None = None):
        seconds = self.options.request_timeout_s if seconds is None else seconds
        try:
            with _fail_after(seconds):
                yield
        except TimeoutError:
            raise ServingError(504, "Deadline exceeded: the request did not finish within "
                                    f"{self.options.request_timeout_s:g} s") from None

    # -- handlers ------------------------------------------------------------------
    async def _servable(self, name: str, version: int | None):
        servable = self.repository.get_cached(name, version)
        if servable is None:
            servable = await self.in_pool(self.repository.get, name, version)
        return servable

    async def _metadata(self, name: str, version: int | None):
        servable = await self._servable(name, version)
        return self._json({
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_def}},
        })

    async def _read_body(self, request) -> bytes:
        from starlette.requests import ClientDisconnect

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
            with _fail_after(self.options.request_timeout_s):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > limit:
                        raise ServingError(413, f"Request body exceeds the limit of {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise ServingError(408, "Timed out reading the request body") from None
        except ClientDisconnect:
            raise ServingError(400, "Client disconnected while sending the body") from None
        return b"".join(chunks)

    def _prepare(self, body: bytes, name: str, version: int | None):
        """Parse, resolve and decode a predict request (blocking; runs in the pool)."""
        from kerasapps.serving.codec import decode_inputs, parse_request

        doc = parse_request(body)
        servable = self.repository.get_cached(name, version) or self.repository.get(name, version)
        signature_name = doc.get("signature_name") or DEFAULT_SIGNATURE
        signature = servable.signature(signature_name)
        inputs, row_format = decode_inputs(doc, signature.inputs)
        return servable, signature_name, inputs, row_format

    def _predict_now(self, body: bytes, name: str, version: int | None) -> bytes:
        from kerasapps.serving.codec import encode_outputs

        servable, signature_name, inputs, row_format = self._prepare(body, name, version)
        return encode_outputs(servable.run(signature_name, inputs), row_format)

    async def _predict(self, request, name: str, version: int | None, verb: str):
        from starlette.responses import Response

        started = time.monotonic()
        body = await self._read_body(request)
        remaining = self.options.request_timeout_s - (time.monotonic() - started)
        with self._deadline(max(remaining, 0.0)):
            if verb != "predict":
                await self._servable(name, version)
                raise ServingError(501, f"The {verb} API is not supported by kerasapps.serving "
                                        "(it serves predict signatures); use :predict")
            if self.batcher is None:
                content = await self.in_pool(self._predict_now, body, name, version)
            else:
                from kerasapps.serving.codec import encode_outputs

                self.batcher.prepare_started()
                try:
                    servable, signature_name, inputs, row_format = await self.in_pool(
                        self._prepare, body, name, version)
                except BaseException:
                    self.batcher.prepare_ended(failed=True)
                    raise
                self.batcher.prepare_ended(failed=False)
                outputs = await self.batcher.run(servable, signature_name, inputs)
                content = encode_outputs(outputs, row_format)
        return Response(content, media_type="application/json")


def _fail_after(seconds: float):
    import anyio

    return anyio.fail_after(seconds)


def create_app(model_base, *, max_request_bytes: int = ServingOptions.max_request_bytes,
               request_timeout_s: float = ServingOptions.request_timeout_s, batching: bool = ServingOptions.batching,
               max_batch_size: int = ServingOptions.max_batch_size,
               batch_timeout_ms: float = ServingOptions.batch_timeout_ms,
               poll_interval_s: float = ServingOptions.poll_interval_s, max_workers: int | None = None):
    """A Starlette app serving the SavedModels under ``model_base`` the way TF Serving does.

    Args:
        model_base: folder holding ``NAME/VERSION/saved_model.pb`` exports.
        max_request_bytes: largest accepted request body; larger ones get 413.
        request_timeout_s: budget for reading a body (else 408) and for answering (504).
        batching: group concurrent predict requests into one model call.
        max_batch_size: most rows in one batched call.
        batch_timeout_ms: how long a batch waits for more requests after its first.
        poll_interval_s: how stale a model's version list may get before a rescan
            (0: rescan on every request); also the period of the background poll that
            unloads removed versions and pre-loads new latest ones.
        max_workers: threads running model calls (default min(32, cpus + 4)).
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    options = ServingOptions(max_request_bytes=max_request_bytes, request_timeout_s=request_timeout_s,
                             batching=batching, max_batch_size=max_batch_size, batch_timeout_ms=batch_timeout_ms,
                             poll_interval_s=poll_interval_s, max_workers=max_workers)
    if not os.path.isdir(model_base):
        logger.warning("Model base %s does not exist (yet); every model is 404 until it does",
                       model_base)
    server = _Server(model_base, options)
    app = Starlette(routes=[Route("/{path:path}", server.dispatch, methods=_METHODS)],
                    lifespan=server.lifespan)
    app.state.server = server
    app.state.repository = server.repository
    return app


def serve(model_base=EXPORT_ROOT, host: str = ServingOptions.host, port: int = ServingOptions.port, *,
          log_level: str = "info", access_log: bool = True, **app_options) -> None:
    """Run the server with uvicorn until interrupted (blocking).

    ``app_options`` are :func:`create_app`'s keyword options. The default host is the
    loopback interface; binding anything else exposes unauthenticated model calls.
    """
    import uvicorn

    if host not in _LOOPBACK:
        logger.warning("Serving on %s: reachable beyond this machine, with no authentication",
                       host)
    app = create_app(model_base, **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log)
