"""A blocking facade over the asyncio engine.

:class:`SyncClient` runs one private event loop in a daemon thread and submits every
call to it, so blocking code (and several threads at once) share one engine, one
renewal lock and one store exactly as asyncio callers do.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from missile.deadlines import check_seconds_or_none
from missile.engine.client import MslClient, Response
from missile.engine.options import MessageOptions

__all__ = ["SyncClient", "EventLoopThread"]

T = TypeVar("T")


class EventLoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="missile-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class SyncClient:
    """Blocking twin of :class:`~missile.engine.client.MslClient`."""

    def __init__(self, client: MslClient, *, timeout: float | None = None) -> None:
        check_seconds_or_none(timeout, "timeout")
        self.client = client
        self.timeout = timeout
        self._loop = EventLoopThread()

    def request(self, data: bytes = b"", options: MessageOptions | None = None) -> Response:
        """Send ``data`` and return the response (see :meth:`MslClient.request`)."""
        return self._loop.run(self.client.request(data, options), self.timeout)

    def close(self) -> None:
        """Stop the background loop."""
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
