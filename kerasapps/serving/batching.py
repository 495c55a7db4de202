"""Dynamic batching for the serving core (:mod:`kerasapps.serving.core`), so for REST and gRPC alike.

Concurrent predict requests for the same loaded version and signature whose inputs have
the same dtypes and the same shape after axis 0 are queued together, concatenated along
axis 0 once the queue holds ``max_batch_size`` rows or ``timeout_s`` after its first
request, run once in the worker pool and split back by row counts. When the batcher is
idle (no batch running and no other request still being decoded; ``preparing`` is kept
by the caller) a queue runs at once, since only a new arrival could join it: a lone
client pays no batching delay. While a batch runs, arrivals queue up (the model is busy
anyway), and queues run as soon as the batcher goes idle again. A request with
``max_batch_size`` rows or more, or whose inputs do not share one batch dimension, runs on
its own. If a batched run fails, or its outputs are not batch-major, each request is run
on its own so one bad request only fails itself.

All queue bookkeeping happens on the event loop thread, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

logger = logging.getLogger("kerasapps.serving")


def batch_rows(inputs: dict) -> int | None:
    """The shared axis-0 size of all inputs, or None if they have none."""
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


@dataclass
class _Queue:
    servable: object
    signature_name: str
    items: list = field(default_factory=list)  # (inputs, rows, future)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None
    flushed: bool = False


@dataclass
class BatchStats:
    requests: int = 0  # requests that went through a queue
    batches: int = 0  # model calls made for them
    largest: int = 0  # most rows in one call


class DynamicBatcher:
    """Groups concurrent predict calls; ``run_in_pool(fn, *args)`` runs ``fn`` off the loop."""

    def __init__(self, run_in_pool: Callable[..., Awaitable], max_batch_size: int = 32,
                 timeout_s: float = 0.005):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if timeout_s < 0:
            raise ValueError(f"batch timeout must be >= 0, got {timeout_s}")
        self._run_in_pool = run_in_pool
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.stats = BatchStats()
        self.preparing = 0  # requests being decoded that may join a queue soon
        self._executing = 0  # batches handed to the pool and not finished
        self._queues: dict[tuple, _Queue] = {}
        self._tasks: set[asyncio.Task] = set()

    async def run(self, servable, signature_name: str, inputs: dict) -> dict:
        rows = batch_rows(inputs)
        if rows is None or rows == 0 or rows >= self.max_batch_size:
            return await self._run_in_pool(servable.run, signature_name, inputs)
        key = (id(servable), signature_name,
               tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items())))
        future = asyncio.get_running_loop().create_future()
        self._enqueue(key, servable, signature_name, inputs, rows, future)
        return await future

    def _enqueue(self, key, servable, signature_name, inputs, rows, future) -> None:
        queue = self._queues.get(key)
        if queue is not None and queue.rows + rows > self.max_batch_size:
            self._flush(key, queue)
            queue = None
        if queue is None:
            queue = self._queues[key] = _Queue(servable, signature_name)
            queue.timer = asyncio.get_running_loop().call_later(
                self.timeout_s, self._flush, key, queue)
        queue.items.append((inputs, rows, future))
        queue.rows += rows
        self.stats.requests += 1
        if queue.rows >= self.max_batch_size or self._idle():
            self._flush(key, queue)

    def _idle(self) -> bool:
        return self.preparing == 0 and self._executing == 0

    def _flush(self, key, queue: _Queue) -> None:
        if queue.flushed:
            return
        queue.flushed = True
        if queue.timer is not None:
            queue.timer.cancel()
        if self._queues.get(key) is queue:
            del self._queues[key]
        self._executing += 1
        task = asyncio.get_running_loop().create_task(self._execute(queue))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._executing -= 1
        self._flush_if_idle()  # the model is free: run what queued up meanwhile

    def _flush_if_idle(self) -> None:
        if self._idle():
            for key, queue in list(self._queues.items()):
                self._flush(key, queue)

    def prepare_started(self) -> None:
        """A request began decoding; it may join a queue soon."""
        self.preparing += 1

    def prepare_ended(self, failed: bool) -> None:
        """It finished decoding (``failed``: it will not join, so stop waiting for it)."""
        self.preparing -= 1
        if failed:
            self._flush_if_idle()

    async def _execute(self, queue: _Queue) -> None:
        items = [item for item in queue.items if not item[2].done()]  # drop timed-out ones
        if not items:
            return
        self.stats.batches += 1
        self.stats.largest = max(self.stats.largest, sum(rows for _, rows, _ in items))
        if len(items) == 1:
            inputs, _, future = items[0]
            await self._settle(future, queue, inputs)
            return
        names = list(items[0][0])
        batched = {n: np.concatenate([inputs[n] for inputs, _, _ in items]) for n in names}
        total = sum(rows for _, rows, _ in items)
        try:
            outputs = await self._run_in_pool(queue.servable.run, queue.signature_name, batched)
            if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in outputs.values()):
                raise _NotBatchMajor()
        except Exception as exc:  # isolate: each request then fails or succeeds alone
            if not isinstance(exc, _NotBatchMajor):
                logger.debug("Batched run of %d requests failed (%s); running them one by one",
                             len(items), exc)
            self.stats.batches += len(items)
            await asyncio.gather(*(self._settle(f, queue, i) for i, _, f in items))
            return
        offset = 0
        for _, rows, future in items:
            if not future.done():
                future.set_result({k: v[offset:offset + rows] for k, v in outputs.items()})
            offset += rows

    async def _settle(self, future: asyncio.Future, queue: _Queue, inputs: dict) -> None:
        try:
            result = await self._run_in_pool(queue.servable.run, queue.signature_name, inputs)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)


class _NotBatchMajor(Exception):
    pass
