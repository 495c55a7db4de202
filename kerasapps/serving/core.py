"""The serving core: what the REST and the gRPC front ends share, with no protocol of its own.

A :class:`ServingCore` holds the model repository (:mod:`kerasapps.serving.repository`), the threads that load
models and run them, the slots that bound model calls and the dynamic batcher (:mod:`kerasapps.serving.batching`).
Each front end turns its requests into the core's calls, and the core's :class:`~kerasapps.serving.errors.ServingError`
into its own answers:

- :meth:`~ServingCore.resolve` the servable of a model spec (name, and version or label), :meth:`~ServingCore.status`
  TF Serving's ``model_version_status`` rows, :meth:`~ServingCore.metadata` TF Serving's metadata document;
- :meth:`~ServingCore.predict`, :meth:`~ServingCore.classify`, :meth:`~ServingCore.regress` a signature on decoded
  inputs or serialized ``tf.Example`` s, within the slots, batching and a deadline.

No request can exhaust the server: a model call past its deadline (:meth:`~ServingCore.deadline`, 504) is
cancelled (its ops stop, as TF Serving cancels ``Session::Run``) and its thread comes back; at most
``max_in_flight`` model calls run at once and ``max_queued`` wait, the rest get 503 (:class:`Slots`); status,
metadata and model loads run on threads of their own (:meth:`~ServingCore.in_pool`), so a busy model never makes a
status request wait. :meth:`~ServingCore.running` is the core's life: the model base poller while it runs, the
threads shut down after. With ``monitoring`` the core holds the server's metrics
(:mod:`kerasapps.serving.metrics`): the front ends measure their requests, the core notes the version resolved.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from kerasapps.serving.errors import ServingError
from kerasapps.serving.metrics import note_version
from kerasapps.serving.options import ServingOptions
from kerasapps.serving.repository import ModelRepository
from kerasapps.serving.servable import DEFAULT_SIGNATURE, Cancellation

logger = logging.getLogger("kerasapps.serving")

__all__ = ["ServingCore", "Slots", "fail_after"]


def fail_after(seconds: float):
    """TimeoutError once ``seconds`` pass; what runs inside is cancelled (asyncio's, the cheapest)."""
    return asyncio.timeout(seconds)


class Slots:
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

    @property
    def queued(self) -> int:
        """Model calls waiting for a slot now."""
        return len(self._waiting)

    def release(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.running -= 1


class ServingCore:
    """The state one server shares between its front ends: repository, threads, slots, batcher, and with
    ``monitoring`` the metrics (``metrics``, a :class:`~kerasapps.serving.metrics.ServingMetrics`, else None)."""

    def __init__(self, model_base, options: ServingOptions):
        self.options = options
        models = None
        if options.model_config_file:
            from kerasapps.serving.model_config import read_model_config

            models = read_model_config(options.model_config_file)
        self.repository = ModelRepository(model_base, options.poll_interval_s, models=models,
                                          load_retry_interval_s=options.load_retry_interval_s)
        workers = options.max_workers or min(32, (os.cpu_count() or 1) + 4)
        self.slots = Slots(options.max_in_flight or workers, options.max_queued)
        self._workers = max(workers, self.slots.limit)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.batcher = None
        if options.batching:
            from kerasapps.serving.batching import DynamicBatcher

            self.batcher = DynamicBatcher(self.call_model, options.max_batch_size, options.batch_timeout_ms / 1000.0)
        self.metrics = None
        if options.monitoring:
            from kerasapps.serving.metrics import ServingMetrics

            self.metrics = ServingMetrics(self.repository.has_model)
            self.metrics.track_slots(self.slots)
            self.repository.on_load_failure = self.metrics.load_failed

    # -- threads and life ----------------------------------------------------------
    def pool(self, kind: str = "model") -> ThreadPoolExecutor:
        """Threads for model calls ("model") or for loads, scans and large decodes ("admin")."""
        if kind not in self._pools:
            size = self._workers if kind == "model" else 4
            self._pools[kind] = ThreadPoolExecutor(size, thread_name_prefix=f"kerasapps-serving-{kind}")
        return self._pools[kind]

    async def in_pool(self, fn, *args):
        """Run blocking work that is not a model call (a load, a scan, a large decode) off the loop."""
        return await asyncio.wrap_future(self.pool("admin").submit(fn, *args))

    async def call_model(self, fn, *args):
        """Run ``servable.run``-like ``fn(*args, cancellation)`` in a model thread, within the slots; a
        cancelled await (the deadline passed) cancels the TensorFlow call itself."""
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
    async def running(self):
        """The core at work in the running event loop: the model base is polled every ``poll_interval_s``
        (when above 0); on leaving, polling stops and the threads are shut down."""
        poller = asyncio.create_task(self._poll()) if self.options.poll_interval_s > 0 else None
        try:
            yield self
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

    # -- models ----------------------------------------------------------------------
    async def resolve(self, name: str, version: int | None = None, label: str | None = None):
        """The servable for a model spec (404 unknown, 400 bad label)."""
        servable = self.repository.get_cached(name, version) if label is None else None
        if servable is None:
            servable = await self.in_pool(self.repository.get, name, version, label)
        note_version(servable.version)  # a no-op unless the request is measured
        return servable

    async def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        """TF Serving's ``model_version_status`` rows of a model spec, newest version first."""
        return await self.in_pool(self.repository.status, name, version, label)

    async def metadata(self, name: str, version: int | None = None, label: str | None = None) -> dict:
        """TF Serving's model metadata (``GetModelMetadataResponse`` as JSON): the model spec served and every
        SignatureDef of its version."""
        servable = await self.resolve(name, version, label)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_def}},
        }

    # -- calls -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float | None = None):
        """504 once ``seconds`` (default: request_timeout_s) pass; what runs inside is cancelled."""
        seconds = self.options.request_timeout_s if seconds is None else seconds
        try:
            async with fail_after(max(seconds, 0.0)):
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
                return await self.call_model(servable.run, signature_name, inputs)
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
            return await self.call_model(servable.run, signature.name, {signature_input(signature): batch})

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
