"""A TensorFlow Serving-compatible REST (and gRPC) server over a model base directory or model config.

Serves ``MODEL_BASE/NAME/VERSION/`` SavedModels (TF Serving's layout, what ``kerasapps export``
writes), or the models of a TF Serving model config file, with TF Serving's REST API and JSON shapes
(https://www.tensorflow.org/tfx/serving/api_rest)::

    GET  /v1/models/NAME[/versions/N|/labels/L]            -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   -> {"model_spec": ..., "metadata": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:predict    {"instances": [...]} -> {"predictions": ...}
                                                           {"inputs": ...}      -> {"outputs": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:classify   {"examples": [...]}  -> {"results": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:regress    {"examples": [...]}  -> {"results": ...}

and, with ``grpc_port``, TF Serving's gRPC ``PredictionService`` and ``ModelService``
(:mod:`kerasapps.serving.grpc_api`).

Errors are ``{"error": "..."}`` (valid UTF-8, at most about 2,000 characters) with TF Serving's status
codes: 400 bad request (bad JSON, shape, dtype, signature, name, version or label; an op's own failure on
the inputs, with its message; classify/regress on a signature of another kind), 404 unknown model or
version, 408 body not received within ``request_timeout_s``, 413 body over ``max_request_bytes`` (by
Content-Length, by the bytes streamed, or once gzip-decoded), 415 unknown Content-Encoding, 503 too many
model calls queued, 504 not answered within ``request_timeout_s``, 500 anything unexpected.

No request can exhaust the server: a model call past its deadline is cancelled (its ops stop, as TF
Serving cancels ``Session::Run``) and its thread comes back; at most ``max_in_flight`` model calls run at
once and ``max_queued`` wait, the rest get 503; a request's values are counted before they are allocated
(``max_request_elements``); status, metadata and model loads run on their own threads, so a busy model
never makes ``GET /v1/models/NAME`` wait; header size, count and arrival time and idle keep-alive
connections are bounded in the HTTP layer (:mod:`kerasapps.serving.http_limits`).

Without a version the newest version the model's policy serves answers (see
:mod:`kerasapps.serving.repository`): new versions are found without a restart, removed ones unloaded.
``batching=True`` adds dynamic batching (:mod:`kerasapps.serving.batching`). Binds 127.0.0.1 by default;
there is no authentication, so put a proxy in front before exposing it.

Example::

    from kerasapps.serving.server import serve
    serve("saved_models", port=8501, batching=True)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
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
_INLINE_BYTES = 64 * 2**10  # bodies up to this are decoded on the event loop (no thread hand-off)


def _decode_segment(segment: str, encoded: bool) -> str:
    if not encoded:
        return segment
    try:
        return unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ServingError(400, f"Failed to decode path segment: {segment[:200]}") from None


def _error_response(status: int, message: str):
    from starlette.responses import Response

    from kerasapps.serving.codec import error_body

    return Response(error_body(message), status_code=status, media_type="application/json")


class _Slots:
    """At most ``limit`` model calls at once, ``max_queued`` waiting in arrival order, past that a 503.

    Used on the event loop thread only; a slot is released when the call's thread finishes, so a
    cancelled request's capacity comes back only once its model call has really stopped.
    """

    def __init__(self, limit: int, max_queued: int):
        self.limit, self.max_queued = limit, max_queued
        self.running = 0
        self._waiting: collections.deque = collections.deque()

    async def acquire(self) -> None:
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return
        if len(self._waiting) >= self.max_queued:
            raise ServingError(503, f"Server busy: {self.running} model calls running and {len(self._waiting)} "
                                    f"queued (max_in_flight {self.limit}, max_queued {self.max_queued}); "
                                    "retry later")
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future  # release() hands its slot over: running stays the same
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as this request gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(future)
            raise

    def release(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1


class _Server:
    """Request handling state shared by one app (REST and gRPC): repository, threads, slots, batcher."""

    def __init__(self, model_base, options: ServingOptions):
        self.options = options
        models = None
        if options.model_config_file:
            from kerasapps.serving.repository import read_model_config

            models = read_model_config(options.model_config_file)
        self.repository = ModelRepository(model_base, options.poll_interval_s, models=models,
                                          load_retry_interval_s=options.load_retry_interval_s)
        workers = options.max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.slots = _Slots(options.max_in_flight or workers, options.max_queued)
        self._workers = max(workers, self.slots.limit)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._grpc = None
        self.grpc_port: int | None = None
        self.batcher = None
        if options.batching:
            from kerasapps.serving.batching import DynamicBatcher

            self.batcher = DynamicBatcher(self._call_model, options.max_batch_size,
                                          options.batch_timeout_ms / 1000.0)

    # -- plumbing ----------------------------------------------------------------
    def pool(self, kind: str = "model") -> ThreadPoolExecutor:
        """Threads for model calls ("model") or for loads, scans and large decodes ("admin")."""
        if kind not in self._pools:
            size = self._workers if kind == "model" else 4
            self._pools[kind] = ThreadPoolExecutor(size, thread_name_prefix=f"kerasapps-serving-{kind}")
        return self._pools[kind]

    async def in_pool(self, fn, *args):
        """Run blocking work that is not a model call (a load, a scan, a large decode) off the loop."""
        return await asyncio.wrap_future(self.pool("admin").submit(fn, *args))

    async def _call_model(self, fn, *args):
        """Run ``servable.run``-like ``fn(*args, cancellation)`` in a model thread, within the slots; a
        cancelled await (the deadline passed) cancels the TensorFlow call itself."""
        from kerasapps.serving.repository import Cancellation

        await self.slots.acquire()
        loop = asyncio.get_running_loop()
        try:
            cancellation = Cancellation()
            future = self.pool("model").submit(fn, *args, cancellation)
        except BaseException:
            self.slots.release()
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.slots.release))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancellation.cancel()
            raise

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        poller = None
        if self.options.poll_interval_s > 0:
            poller = asyncio.create_task(self._poll())
        if self.options.grpc_port is not None:
            from kerasapps.serving.grpc_api import start_grpc_server

            self._grpc, self.grpc_port = await start_grpc_server(self, self.options.host, self.options.grpc_port)
            logger.info("gRPC PredictionService on %s:%d", self.options.host, self.grpc_port)
        try:
            yield
        finally:
            if self._grpc is not None:
                await self._grpc.stop(1.0)
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

    # -- the calls REST and gRPC share ----------------------------------------------
    async def resolve(self, name: str, version: int | None = None, label: str | None = None):
        """The servable for a model spec (404 unknown, 400 bad label)."""
        if label is None:
            servable = self.repository.get_cached(name, version)
            if servable is not None:
                return servable
        return await self.in_pool(self.repository.get, name, version, label)

    async def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        return await self.in_pool(self.repository.status, name, version, label)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None = None):
        """504 once ``seconds`` (default: request_timeout_s) pass; what runs inside is cancelled."""
        seconds = self.options.request_timeout_s if seconds is None else seconds
        try:
            async with _fail_after(max(seconds, 0.0)):
                yield
        except TimeoutError:
            raise ServingError(504, "Deadline exceeded: the request did not finish within "
                                    f"{self.options.request_timeout_s:g} s") from None

    async def predict(self, servable, signature_name: str, inputs: dict, deadline_s: float | None = None) -> dict:
        """Run a signature on decoded inputs within the slots, batching and the deadline."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        servable.signature(signature_name)  # 400 for an unknown signature, before queueing
        async with self.deadline(deadline_s):
            if self.batcher is None:
                return await self._call_model(servable.run, signature_name, inputs)
            return await self.batcher.run(servable, signature_name, inputs)

    async def _examples_call(self, verb: str, servable, signature_name: str, examples: list[bytes],
                             deadline_s: float | None):
        import numpy as np

        from kerasapps.serving.examples import check_kind, signature_input

        signature = servable.signature(signature_name or DEFAULT_SIGNATURE)
        check_kind(signature, verb)
        batch = np.empty(len(examples), dtype=object)
        batch[:] = list(examples)
        async with self.deadline(deadline_s):
            return await self._call_model(servable.run, signature.name, {signature_input(signature): batch})

    async def classify(self, servable, signature_name: str, examples: list[bytes], deadline_s: float | None = None):
        """(classes [N, K] or None, scores [N, K] or None) of a classify signature on serialized examples."""
        from kerasapps.serving.examples import classify_outputs

        outputs = await self._examples_call("classify", servable, signature_name, examples, deadline_s)
        return classify_outputs(outputs, len(examples))

    async def regress(self, servable, signature_name: str, examples: list[bytes], deadline_s: float | None = None):
        """The [N] values of a regress signature on serialized examples."""
        from kerasapps.serving.examples import regress_outputs

        outputs = await self._examples_call("regress", servable, signature_name, examples, deadline_s)
        return regress_outputs(outputs, len(examples))

    # -- routing -----------------------------------------------------------------
    async def dispatch(self, request):
        try:
            return await self._dispatch(request)
        except ServingError as exc:
            return _error_response(exc.status, exc.message)
        except Exception as exc:
            logger.exception("Unhandled error serving %s %s", request.method, request.url.path[:200])
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
            name, version, label = self._model_spec(match, encoded)
            return await self._post(request, name, version, label, match[4].lower())
        match = _STATUS_PATH.fullmatch(path) if method == "GET" else None
        if match:
            if match[1] is None:
                raise ServingError(400, "Missing model name in request.")
            name, version, label = self._model_spec(match, encoded)
            async with self.deadline():
                if match[4]:
                    return await self._metadata(name, version, label)
                status = await self.status(name, version, label)
            return self._json({"model_version_status": status})
        raise ServingError(400, f"Malformed request: {method} {path[:200]}")

    @staticmethod
    def _model_spec(match, encoded: bool) -> tuple[str, int | None, str | None]:
        name = validate_model_name(_decode_segment(match[1], encoded))
        if match[3] is not None:
            return name, None, _decode_segment(match[3], encoded)
        if match[2] is None:
            return name, None, None
        return name, parse_version(_decode_segment(match[2], encoded)), None

    @staticmethod
    def _json(payload, status: int = 200):
        from starlette.responses import JSONResponse

        return JSONResponse(payload, status_code=status)

    # -- handlers ------------------------------------------------------------------
    async def _metadata(self, name: str, version: int | None, label: str | None):
        servable = await self.resolve(name, version, label)
        return self._json({
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_def}},
        })

    async def _read_body(self, request) -> bytes:
        from starlette.requests import ClientDisconnect

        from kerasapps.serving.codec import decode_body

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
            async with _fail_after(self.options.request_timeout_s):
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
                body = await self.in_pool(decode_body, body, encoding, limit)
            else:
                body = decode_body(body, encoding, limit)
        return body

    def _parse(self, body: bytes) -> dict:
        from kerasapps.serving.codec import count_upper_bound, parse_request

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
        return await self.in_pool(fn, *args)

    async def _post(self, request, name: str, version: int | None, label: str | None, verb: str):
        from starlette.responses import Response

        started = time.monotonic()
        body = await self._read_body(request)
        remaining = self.options.request_timeout_s - (time.monotonic() - started)
        async with self.deadline(max(remaining, 0.0)):
            doc = await self._blocking(len(body), self._parse, body)
            servable = await self.resolve(name, version, label)
            signature_name = doc.get("signature_name") or DEFAULT_SIGNATURE
            if verb != "predict":
                from kerasapps.serving import examples

                serialized = await self._blocking(len(body), examples.examples_from_json, doc, verb)
                if verb == "classify":
                    content = examples.classification_json(*await self.classify(servable, signature_name, serialized))
                else:
                    content = examples.regression_json(await self.regress(servable, signature_name, serialized))
                return Response(content, media_type="application/json")
            from kerasapps.serving.codec import encode_outputs

            if self.batcher is not None:
                self.batcher.prepare_started()
            try:
                inputs, row_format = await self._blocking(len(body), self._decode, doc, servable, signature_name)
            except BaseException:
                if self.batcher is not None:
                    self.batcher.prepare_ended(failed=True)
                raise
            if self.batcher is not None:
                self.batcher.prepare_ended(failed=False)
            outputs = await self.predict(servable, signature_name, inputs, deadline_s=None)
            content = await self._blocking(sum(getattr(v, "size", 1) for v in outputs.values()) * 8,
                                           encode_outputs, outputs, row_format)
        return Response(content, media_type="application/json")


def _fail_after(seconds: float):
    """TimeoutError once ``seconds`` pass; what runs inside is cancelled (asyncio's, the cheapest)."""
    return asyncio.timeout(seconds)


def create_app(model_base, options: ServingOptions | None = None, **overrides):
    """A Starlette app serving the SavedModels under ``model_base`` (or ``options.model_config_file``'s models)
    the way TF Serving does.

    ``options`` is a :class:`~kerasapps.serving.options.ServingOptions`; keyword ``overrides`` replace its
    fields (``create_app(base, poll_interval_s=0, batching=True)``). See ServingOptions for each limit.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    options = dataclasses.replace(options or ServingOptions(), **overrides)
    if options.model_config_file is None and (model_base is None or not os.path.isdir(model_base)):
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

    ``app_options`` are :func:`create_app`'s: ``options`` and ServingOptions fields. The default host is the
    loopback interface; binding anything else exposes unauthenticated model calls.
    """
    import uvicorn

    from kerasapps.serving.http_limits import uvicorn_config_kwargs

    if host not in _LOOPBACK:
        logger.warning("Serving on %s: reachable beyond this machine, with no authentication",
                       host)
    app = create_app(model_base, host=host, port=port, **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log,
                **uvicorn_config_kwargs(app.state.server.options))
