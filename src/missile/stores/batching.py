"""Group commit for the server's token state: operations that arrive while a batch is
in flight wait and go out together as the next batch.

Every message under a master token asks the token state something (revocation, replay
window), so the state's cost per request bounds a server's rate. What costs is not the
work but the trip: a Redis round trip costs tens of microseconds of client CPU (socket
writes and reads, event-loop wake-ups), and an SQLite transaction a hop to its worker
thread and, to be durable, an fsync. Batching pays that once per batch instead of once
per request:

* with nothing in flight, an operation is sent at once (no added latency when idle);
* while a batch is in flight, operations queue, and the whole queue is the next batch,
  so under load batches grow by themselves (Nagle's algorithm, without its timer).

Each operation keeps its own result or exception, and its caller's time bound: a caller
that gives up (the token factory's ``state_timeout``) leaves the batch running, and its
result is dropped. A batch that fails as a whole fails each of its operations.

A batch may also leave an operation behind: its result is then a future still on its
way, which settles the operation when it is done, and the next batch does not wait for
it. That is how a Redis Cluster's batch goes on without a node that stopped answering,
so that one hung node does not stall the operations of every other node.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

_Op = TypeVar("_Op")
_Result = TypeVar("_Result")

#: Largest batch: bounds the work (and the pipeline or transaction size) of one trip.
MAX_BATCH = 256


class Batcher(ABC, Generic[_Op, _Result]):
    """Runs operations in batches, one batch in flight at a time per event loop."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._queue: list[tuple[_Op, asyncio.Future[_Result]]] = []
        self._running: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @abstractmethod
    async def run_batch(self, ops: Sequence[_Op]) -> Sequence[_Result | BaseException | asyncio.Future[_Result]]:
        """Run ``ops`` in one trip; one result or exception per operation, in order, or a
        future of it for an operation whose result comes later."""

    async def submit(self, op: _Op) -> _Result:
        """Run ``op`` in the next batch and return its result (or raise its exception)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (asyncio.run again, another thread): what was queued on
            # the old one can never run.
            self._loop, self._queue, self._running = loop, [], None
        future: asyncio.Future[_Result] = loop.create_future()
        self._queue.append((op, future))
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            live = [(op, future) for op, future in batch if not future.done()]
            if not live:
                continue
            try:
                results = await self.run_batch([op for op, _ in live])
            except BaseException as exc:  # every waiter must hear of it
                results = [exc] * len(live)
                if not isinstance(exc, Exception):
                    _settle(live, results)
                    raise
            _settle(live, results)


def _settle(
    live: Sequence[tuple[object, asyncio.Future[_Result]]],
    results: Sequence[_Result | BaseException | asyncio.Future[_Result]],
) -> None:
    for (_, future), result in zip(live, results, strict=True):
        if isinstance(result, asyncio.Future):
            result.add_done_callback(functools.partial(_settle_later, future))
        elif future.done():
            continue  # the caller gave up waiting
        elif isinstance(result, asyncio.CancelledError):
            future.cancel()
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def _settle_later(future: asyncio.Future[_Result], result: asyncio.Future[_Result]) -> None:
    """Settle ``future`` with the outcome of ``result``, a result that came after its batch."""
    error = None if result.cancelled() else result.exception()  # read even when unused: never "not retrieved"
    if future.done():
        return  # the caller gave up waiting
    if result.cancelled():
        future.cancel()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result.result())
